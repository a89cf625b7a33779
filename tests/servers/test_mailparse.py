"""servers/mailparse.py: From: rules and attachment extraction on hand-built raw messages (no app)."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

from servers.mailparse import MailRejected, MailUnreadable, base_name, parse_head, parse_mail
from tests.fixtures.smtp import (
    smtp_csv,
    smtp_disposition_plain,
    smtp_disposition_rfc2047,
    smtp_disposition_rfc2231,
    smtp_raw_mail,
)

DATA = Path(__file__).resolve().parent.parent / "data"
JAPANESE_NAME = "売上データ_20180516.csv"
SENDER = "sales@partner.example"


def mail(parts, **kwargs) -> bytes:
    kwargs.setdefault("sender", SENDER)
    return smtp_raw_mail(to="sp-x@renkei.localhost", parts=parts, **kwargs)


# Raw messages kept in tests/data so they can be replayed by hand (`swaks --data @file`);
# they are written by the builders above and checked to still be what the builders make.
SAMPLES = {
    "smtp_name_rfc2231.eml": lambda: mail([(smtp_disposition_rfc2231(JAPANESE_NAME), smtp_csv())]),
    "smtp_name_rfc2047_utf8.eml": lambda: mail([(smtp_disposition_rfc2047(JAPANESE_NAME), smtp_csv())]),
    "smtp_name_rfc2047_iso2022jp.eml": lambda: mail(
        [(smtp_disposition_rfc2047(JAPANESE_NAME, "ISO-2022-JP"), smtp_csv())]
    ),
}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_japanese_attachment_names_in_each_encoding(sample):
    path = DATA / sample
    expected = SAMPLES[sample]()
    if not path.exists():  # first run writes the sample; later runs check it did not drift
        path.write_bytes(expected)
    raw = path.read_bytes()
    assert raw == expected
    parsed = parse_mail(raw)
    assert [a.filename for a in parsed.csvs] == [JAPANESE_NAME]
    assert parsed.csvs[0].data == smtp_csv()


def test_the_encodings_are_really_on_the_wire():
    assert b"filename*0*=UTF-8''" in SAMPLES["smtp_name_rfc2231.eml"]()
    assert b"filename*1*=" in SAMPLES["smtp_name_rfc2231.eml"]()
    assert b'filename="=?UTF-8?B?' in SAMPLES["smtp_name_rfc2047_utf8.eml"]()
    assert b'filename="=?ISO-2022-JP?B?' in SAMPLES["smtp_name_rfc2047_iso2022jp.eml"]()


@pytest.mark.parametrize(
    "disposition, expected",
    [
        (smtp_disposition_plain("20180516.csv"), "20180516.csv"),
        (smtp_disposition_plain("20180500.CSV"), "20180500.CSV"),
        (smtp_disposition_plain("C:\\\\Users\\\\sato\\\\20180516.csv"), "20180516.csv"),
        (smtp_disposition_plain("../../etc/20180516.csv"), "20180516.csv"),
        (b"Content-Disposition: inline; filename=20180516.csv", "20180516.csv"),
        (b'Content-Type: text/csv; name="20180516.csv"', "20180516.csv"),
        (b"Content-Disposition: attachment; filename*=UTF-8''%E5%A3%B2%E4%B8%8A.csv", "売上.csv"),
        (b'Content-Disposition: attachment; filename="=?UTF-8?B?5aOy5LiK?=_0516.csv"', "売上_0516.csv"),
    ],
)
def test_csv_names_are_decoded_and_reduced_to_the_base_name(disposition, expected):
    parsed = parse_mail(mail([(disposition, b"No.,\r\n")]))
    assert [a.filename for a in parsed.csvs] == [expected]


def test_every_csv_in_order_other_attachments_listed_as_ignored():
    parsed = parse_mail(mail([
        (smtp_disposition_plain("20180516.csv"), b"a"),
        (b"Content-Type: application/pdf\r\n" + smtp_disposition_plain("manual.pdf"), b"%PDF"),
        (smtp_disposition_plain("20180517.csv"), b"b"),
        (b"Content-Type: image/png\r\nContent-Disposition: attachment", b"png"),
    ]))
    assert [(a.filename, a.data) for a in parsed.csvs] == [("20180516.csv", b"a"), ("20180517.csv", b"b")]
    assert parsed.ignored == ["manual.pdf", "(名前なし)"]


def test_body_without_file_name_is_neither_csv_nor_ignored():
    parsed = parse_mail(mail([]))
    assert parsed.csvs == [] and parsed.ignored == []


def test_eight_bit_and_quoted_printable_payloads_keep_their_bytes():
    data = smtp_csv()
    raw = (
        b"From: sales@partner.example\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/csv\r\nContent-Transfer-Encoding: 8bit\r\n"
        b'Content-Disposition: attachment; filename="20180516.csv"\r\n\r\n' + data + b"\r\n"
        b"--b\r\nContent-Type: text/csv\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        b'Content-Disposition: attachment; filename="20180517.csv"\r\n\r\nNo.,=94=84=8F=E3\r\n'
        b"--b--\r\n"
    )
    parsed = parse_mail(raw)
    assert parsed.csvs[0].data == data
    # The CRLF before a boundary belongs to the boundary (RFC 2046), not to the file.
    assert parsed.csvs[1].data == "No.,売上".encode("cp932")


def test_a_single_part_message_can_be_the_csv():
    raw = (
        b"From: sales@partner.example\r\nMIME-Version: 1.0\r\nContent-Type: text/csv\r\n"
        b'Content-Disposition: attachment; filename="20180516.csv"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + base64.encodebytes(b"No.,\r\n")
    )
    assert [a.filename for a in parse_mail(raw).csvs] == ["20180516.csv"]


def test_a_forwarded_message_is_one_ignored_attachment():
    inner = mail([(smtp_disposition_plain("20180516.csv"), b"inner")], sender="someone@else.example")
    raw = (
        b"From: sales@partner.example\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        b"--outer\r\nContent-Type: message/rfc822\r\n"
        b'Content-Disposition: attachment; filename="fwd.eml"\r\n\r\n' + inner + b"\r\n--outer--\r\n"
    )
    parsed = parse_mail(raw)
    assert parsed.csvs == [] and parsed.ignored == ["fwd.eml"]


def test_malformed_name_parameter_does_not_break_parsing():
    broken = b"Content-Disposition: attachment; filename*0*=ISO-2022-JP''%1B%24BGd%; filename*1*=3Ee.csv"
    parsed = parse_mail(mail([(broken, b"x"), (smtp_disposition_plain("20180516.csv"), b"y")]))
    assert [a.filename for a in parsed.csvs] == ["20180516.csv"]
    assert parsed.ignored == ["(名前なし)"]


@pytest.mark.parametrize(
    "from_header, expected",
    [
        (b"sales@partner.example", "sales@partner.example"),
        (b"Sales@Partner.EXAMPLE", "sales@partner.example"),
        (b'"Sato, Hanako" <SALES@partner.example>', "sales@partner.example"),
        (b"=?UTF-8?B?" + base64.b64encode("佐藤 花子".encode()) + b"?= <sales@partner.example>",
         "sales@partner.example"),
        ("佐藤 花子 <sales@partner.example>".encode(), "sales@partner.example"),  # raw UTF-8 (RFC 6532)
        (b"sales@partner.example (Sato)", "sales@partner.example"),
        (b"\r\n <sales@partner.example>", "sales@partner.example"),  # folded
    ],
)
def test_from_address_ignores_display_name_and_case(from_header, expected):
    raw = mail([(smtp_disposition_plain("a.csv"), b"1")], from_header=from_header)
    assert parse_mail(raw).sender == expected
    assert parse_head(raw).sender == expected  # the check before 250 reads the same address


@pytest.mark.parametrize(
    "from_header",
    [
        b"sales",  # no domain
        b"",  # empty
        b"undisclosed-recipients:;",  # group without address
        b"sales@partner.example, boss@partner.example",  # two addresses
        b"sales@partner.example <evil@attacker.example>",  # parsers disagree
        b"sales@partner.example@attacker.example",
        b"\x82\xa0 <sales@partner.example>",  # raw bytes that are not UTF-8
    ],
)
def test_ambiguous_or_unparsable_from_is_rejected(from_header):
    raw = mail([(smtp_disposition_plain("a.csv"), b"1")], from_header=from_header)
    with pytest.raises(MailRejected) as error:
        parse_mail(raw)
    head = parse_head(raw)
    assert head.sender is None and head.rejection == error.value.reason


def test_two_from_headers_are_rejected():
    raw = mail([], extra_headers=b"From: boss@partner.example\r\n")
    with pytest.raises(MailRejected, match="複数"):
        parse_mail(raw)
    assert "複数" in parse_head(raw).rejection


def test_missing_from_is_rejected():
    raw = mail([]).replace(b"From: sales@partner.example\r\n", b"")
    with pytest.raises(MailRejected, match="ありません"):
        parse_mail(raw)


def test_dedupe_keys_identify_message_and_part():
    parts = [(smtp_disposition_plain("20180516.csv"), b"a"), (smtp_disposition_plain("20180517.csv"), b"b")]
    first = parse_mail(mail(parts, message_id="<1@x>"))
    again = parse_mail(mail(parts, message_id="<1@x>"))
    other = parse_mail(mail(parts, message_id="<2@x>"))
    keys = [first.dedupe_key(i, a) for i, a in enumerate(first.csvs)]
    assert keys == [again.dedupe_key(i, a) for i, a in enumerate(again.csvs)]
    assert len(set(keys)) == 2
    assert keys[0] != other.dedupe_key(0, other.csvs[0])
    assert all(len(key) <= 200 for key in keys)


def test_without_message_id_the_whole_message_is_the_identity():
    parts = [(smtp_disposition_plain("20180516.csv"), b"a")]
    one = parse_mail(mail(parts, message_id=None))
    same = parse_mail(mail(parts, message_id=None))
    changed = parse_mail(mail(parts, message_id=None, extra_headers=b"X-Note: 2\r\n"))
    assert one.dedupe_key(0, one.csvs[0]) == same.dedupe_key(0, same.csvs[0])
    assert one.dedupe_key(0, one.csvs[0]) != changed.dedupe_key(0, changed.csvs[0])


@pytest.mark.parametrize(
    "name, expected",
    [("a/b/c.csv", "c.csv"), ("a\\b\\c.csv", "c.csv"), ("c.csv\x00", "c.csv"), ("  c.csv ", "c.csv")],
)
def test_base_name(name, expected):
    assert base_name(name) == expected


def test_head_identity_matches_the_full_parse():
    parts = [(smtp_disposition_plain("20180516.csv"), b"a")]
    for message_id in ("<1@x>", None):
        raw = mail(parts, message_id=message_id)
        assert parse_head(raw).identity == parse_mail(raw).identity


def test_nesting_too_deep_is_unreadable_for_the_full_parse_but_not_for_the_head():
    head = b"From: sales@partner.example\r\nMessage-ID: <deep@x>\r\nMIME-Version: 1.0\r\n"
    body = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n) for n in range(1000))
    raw = head + body + b"Content-Type: text/plain\r\n\r\nx\r\n"
    with pytest.raises(MailUnreadable, match="深すぎる"):
        parse_mail(raw)
    assert parse_head(raw).sender == SENDER


@pytest.mark.parametrize("nl", [b"\r\n", b"\n", b"\r"])
def test_head_stops_at_the_first_empty_line_whatever_the_line_ends(nl):
    raw = nl.join([b"From: sales@partner.example", b"Subject: x", b"", b"From: evil@x.example", b"", b"body"])
    assert parse_head(raw).sender == SENDER == parse_mail(raw).sender
    twice = nl.join([b"From: sales@partner.example", b"From: evil@x.example", b"", b"body"])
    assert "複数" in parse_head(twice).rejection
