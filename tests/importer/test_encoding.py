"""Decoding received bytes (docs/spec.md section 2, "Characters")."""
from __future__ import annotations

import random
import subprocess

import pytest

from app.errors import ImportRejected
from app.importer import eucjp
from app.importer.encoding import decode
from tests.fixtures.encodings import PRODUCERS, produce

# Characters Excel writes in cp932 that Python's shift_jis codec cannot handle or maps differently.
CP932_TEXT = (
    "社員ID,売上,備考\r\n"
    "E001,100,①～㈱髙﨑Ⅰ№\r\n"
    "E002,200,ｱｲｳ ﾃｽﾄ(半角カナ)\r\n"
    "E003,300,～－∥￢\r\n"
)
UTF8_TEXT = "社員ID,売上,備考\r\nE001,100,①～㈱髙﨑Ⅰ№ 😀\r\n"
PLAIN_JAPANESE = "社員ID,売上,備考\n高橋,100,東京都千代田区の新規案件\n山田,200,大阪支店で受注しました\n" * 5


def test_cp932_text_really_needs_cp932() -> None:
    # Guards the fixture: if shift_jis could encode it, the cp932 test would prove nothing.
    with pytest.raises(UnicodeEncodeError):
        CP932_TEXT.encode("shift_jis")


@pytest.mark.parametrize(
    ("data", "text", "name"),
    [
        (UTF8_TEXT.encode("utf-8"), UTF8_TEXT, "utf-8"),
        (b"\xef\xbb\xbf" + UTF8_TEXT.encode("utf-8"), UTF8_TEXT, "utf-8-sig"),
        (CP932_TEXT.encode("cp932"), CP932_TEXT, "cp932"),
        (b"No.,a\r\n1,2\r\n", "No.,a\r\n1,2\r\n", "utf-8"),  # ASCII is UTF-8
        (b"", "", "utf-8"),
        (b"\xef\xbb\xbf", "", "utf-8-sig"),
        (PLAIN_JAPANESE.encode("euc_jp"), PLAIN_JAPANESE, "euc-jp"),
        (PLAIN_JAPANESE.encode("iso2022_jp"), PLAIN_JAPANESE, "iso2022-jp"),
    ],
    ids=["utf-8", "utf-8-bom", "cp932", "ascii", "empty", "bom-only", "euc-jp", "iso-2022-jp"],
)
def test_auto_decodes(data: bytes, text: str, name: str) -> None:
    assert decode(data) == (text, name)
    assert decode(data, "auto") == (text, name)


def _random_invalid_bytes() -> bytes:
    """Bytes that are neither UTF-8 nor cp932 nor any Japanese encoding."""
    generator = random.Random(932)
    noise = bytes(generator.randrange(1, 256) for _ in range(2000))  # no NUL: that has its own message
    # A cp932 lead byte before 0xFF or a space is invalid in UTF-8, cp932 and EUC-JP alike.
    return b"No.,a\r\n" + noise + b"\x82\xff\x81 " * 20


@pytest.mark.parametrize(
    "data",
    [_random_invalid_bytes(), b"No.,a\r\n1,\x82\xff\r\n", b"\x88\x7f,\x81\r\n", bytes(range(0x80, 0x100)) * 3],
    ids=["random", "lead-ff", "lead-7f", "high-bytes"],
)
def test_neither_encoding_is_rejected(data: bytes) -> None:
    with pytest.raises(ImportRejected) as caught:
        decode(data)
    (error,) = caught.value.errors
    assert "文字コード" in error.message
    assert "Shift_JIS(cp932)" in error.message and "UTF-8" in error.message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"No.,a\r\n1,2\x00\r\n", "NULバイト"),
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 30, "ZIP"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 30, ".xls"),
        ("No.\t売上\r\n".encode("utf-32"), "UTF-32"),
        ("No.,売上\r\n".encode("utf-16-be"), "NULバイト"),
    ],
    ids=["nul", "zip", "xls", "utf-32-bom", "utf-16-no-bom"],
)
@pytest.mark.parametrize("pinned", [None, "cp932", "utf-8"])
def test_binary_files_are_rejected(data: bytes, expected: str, pinned: str | None) -> None:
    with pytest.raises(ImportRejected) as caught:
        decode(data, pinned)
    (error,) = caught.value.errors
    assert expected in error.message
    assert "CSV" in error.message


@pytest.mark.parametrize(
    ("data", "pinned", "text", "name"),
    [
        (CP932_TEXT.encode("cp932"), "cp932", CP932_TEXT, "cp932"),
        (UTF8_TEXT.encode("utf-8"), "utf-8", UTF8_TEXT, "utf-8"),
        (b"\xef\xbb\xbf" + UTF8_TEXT.encode("utf-8"), "utf-8", UTF8_TEXT, "utf-8-sig"),
        # ASCII is valid in both; the pin decides the reported name.
        (b"No.,a\r\n", "cp932", "No.,a\r\n", "cp932"),
        (b"No.,a\r\n", "utf-8", "No.,a\r\n", "utf-8"),
        # Valid UTF-8 that also decodes as cp932: the pin wins, even though auto would say utf-8.
        ("件数".encode("utf-8"), "cp932", "莉ｶ謨ｰ", "cp932"),
        (CP932_TEXT.encode("cp932"), "Shift_JIS", CP932_TEXT, "cp932"),  # never Python's shift_jis codec
        (CP932_TEXT.encode("cp932"), " CP932 ", CP932_TEXT, "cp932"),
    ],
)
def test_pinned_decodes(data: bytes, pinned: str, text: str, name: str) -> None:
    assert decode(data, pinned) == (text, name)


@pytest.mark.parametrize(
    ("data", "pinned", "line", "label"),
    [
        # A cp932 file read as UTF-8 fails on its first Japanese byte: line 1 (the header).
        (CP932_TEXT.encode("cp932"), "utf-8", 1, "UTF-8"),
        # ASCII header, Japanese only from line 3 on.
        (("No.,a\r\n1,2\r\n3,髙橋\r\n").encode("cp932"), "utf-8", 3, "UTF-8"),
        (b"\xef\xbb\xbfNo.,a\r\n1,2\r\n3,4\r\n5,\xff\r\n", "utf-8", 4, "UTF-8"),
        # LF-only line ends count the same.
        (b"No.,a\n1,2\n3,4\n5,6\n7,\x82\xff\n", "cp932", 5, "Shift_JIS(cp932)"),
        (b"No.,a\r\n1,\x81\r\n", "cp932", 2, "Shift_JIS(cp932)"),  # a lead byte cut off by the line end
        (("No.,a\r\n1,2\r\n3,😀\r\n").encode("utf-8"), "cp932", 3, "Shift_JIS(cp932)"),
    ],
)
def test_pinned_failure_names_encoding_and_line(data: bytes, pinned: str, line: int, label: str) -> None:
    with pytest.raises(ImportRejected) as caught:
        decode(data, pinned)
    (error,) = caught.value.errors
    assert error.line == line
    assert label in error.message
    assert f"{line}行目" in caught.value.message


def test_bom_with_invalid_utf8_is_rejected_with_line() -> None:
    with pytest.raises(ImportRejected) as caught:
        decode(b"\xef\xbb\xbfNo.,a\r\n1,\x82\xa0\r\n")
    (error,) = caught.value.errors
    assert error.line == 2
    assert "UTF-8" in error.message


def test_unknown_pin_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        decode(b"No.\r\n", "latin-1")


# -- EUC-JP and ISO-2022-JP with the NEC / IBM extensions, as real producers write them ------

EXTENDED_TEXT = "社員ID,売上,備考\r\nE001,100,髙﨑①㈱～№\r\nE002,200,高崎 ⅰⅱ Ⅲ ∵ ￢ ∥ －\r\n"

def cp932_characters(*, user_defined: bool) -> list[str]:
    """Every character cp932 has (double-byte and half-width katakana), in code order."""
    chars = [chr(code) for code in range(0xFF61, 0xFFA0)]
    for lead in [*range(0x81, 0xA0), *range(0xE0, 0xFD)]:
        for trail in range(0x40, 0xFD):
            try:
                char = bytes((lead, trail)).decode("cp932")
            except UnicodeDecodeError:
                continue
            if user_defined or not 0xE000 <= ord(char) <= 0xF8FF:
                chars.append(char)
    return chars


@pytest.mark.parametrize("producer", PRODUCERS)
def test_extension_characters_round_trip(producer: str) -> None:
    command, name = PRODUCERS[producer]
    data = produce(command, EXTENDED_TEXT)
    assert data != EXTENDED_TEXT.encode("utf-8")  # really converted

    assert decode(data) == (EXTENDED_TEXT, name)


@pytest.mark.parametrize("producer", PRODUCERS)
def test_every_cp932_character_round_trips(producer: str) -> None:
    # The strong check: every character cp932 has, through each producer, reads back the same.
    # nkf drops user-defined characters for CP51932 / ISO-2022-JP and writes CP5022x ones as
    # bytes no decoder reads; iconv and nkf's eucJP-ms keep them (rows 85-94, U+E000-U+E757).
    command, name = PRODUCERS[producer]
    keeps_user_defined = producer in ("iconv EUCJP-MS", "nkf eucJP-ms")
    chars = cp932_characters(user_defined=keeps_user_defined)
    if producer == "nkf CP50220":  # CP50220 has no half-width katakana: it writes full-width ones
        chars = [char for char in chars if not 0xFF61 <= ord(char) <= 0xFF9F]
    text = "\n".join(chars) + "\n"

    decoded, got_name = decode(produce(command, text))

    assert got_name == name
    assert [got for got, want in zip(decoded.split("\n"), chars) if got != want] == []
    assert decoded == text


def test_every_eucjp_ms_code_reads_as_iconv_reads_it() -> None:
    # Each code alone on a line; iconv -c leaves a line empty where it has no character, so
    # the lines stay aligned. A file with code set 3 is eucJP-ms (rows 89-92 user-defined).
    codes = [bytes((0x8E, byte)) for byte in range(0xA1, 0xE0)]
    codes += [bytes((row, cell)) for row in range(0xA1, 0xFF) for cell in range(0xA1, 0xFF)]
    codes += [bytes((0x8F, row, cell)) for row in range(0xA1, 0xFF) for cell in range(0xA1, 0xFF)]
    data = b"".join(code + b"\n" for code in codes)
    done = subprocess.run(["iconv", "-c", "-f", "EUCJP-MS", "-t", "UTF-8"], input=data, capture_output=True,
                          timeout=60)
    theirs = done.stdout.decode("utf-8").split("\n")
    assert len(theirs) == len(codes) + 1

    for fast in (True, False):  # Python's euc_jp plus fixes, and the table alone
        ours = [_read_eucjp_ms(code, fast=fast) for code in codes]
        assert [(code.hex(), mine, their) for code, mine, their in zip(codes, ours, theirs) if mine != their] == []


def _read_eucjp_ms(code: bytes, *, fast: bool) -> str:
    try:
        return eucjp.decode_euc(code, eucjp_ms=True, fast=fast)
    except eucjp.Unreadable:
        return ""


@pytest.mark.parametrize(
    ("command", "name"),
    [(["iconv", "-f", "UTF-8", "-t", "EUC-JP"], "euc-jp"), (["nkf", "-W", "-e"], "euc-jp"),
     (["iconv", "-f", "UTF-8", "-t", "ISO-2022-JP"], "iso2022-jp"), (["nkf", "-W", "-j"], "iso2022-jp")],
    ids=["iconv EUC-JP", "nkf -e", "iconv ISO-2022-JP", "nkf -j"],
)
def test_plain_jis_x_0208_text_still_decodes(command: list[str], name: str) -> None:
    assert decode(produce(command, PLAIN_JAPANESE)) == (PLAIN_JAPANESE, name)


@pytest.mark.parametrize("text", ["No.,memo\r\n1,ありがとうございます\r\n",
                                  "No.,備考\r\n1,アイウエオ\r\n"])
def test_euc_jp_that_is_also_valid_cp932_is_read_as_euc_jp(text: str) -> None:
    data = produce(["nkf", "-W", "-e"], text)
    data.decode("cp932")  # guards the fixture: cp932 alone would take it "successfully"
    assert decode(data) == (text, "euc-jp")


def test_cp932_half_width_katakana_that_is_also_valid_euc_jp_stays_cp932() -> None:
    text = "No.,memo\r\n1,ｶﾌﾞｼｷｶﾞｲｼｬ\r\n"
    data = text.encode("cp932")
    eucjp.decode_eucjp_ms(data)  # guards the fixture: it reads as (random) EUC-JP kanji too
    assert decode(data) == (text, "cp932")


@pytest.mark.parametrize(
    ("data", "label", "line"),
    [
        # EUC-JP row 9 has no character in any mapping.
        ("社員ID,売上,備考\r\nE001,100,髙".encode("euc_jp", "ignore") + b"\xfc\xe2\xa9\xa1\r\n", "EUC-JP", 2),
        # nkf --oc=CP50221 writes a user-defined character as ESC $ B 7F 21: no ISO-2022-JP.
        (b"\x1b$B<R0w\x1b(BID\r\nE001,\x1b$B\x7f!\x1b(B\r\n", "ISO-2022-JP", 2),
        (b"No.,\x1b$B Gd>e\r\n1,100\r\n", "ISO-2022-JP", 1),  # a space inside a two-byte run
        (b"No.,\x1b$BGd>e\x1b(B\r\n1,\x92\r\n", "ISO-2022-JP", 2),  # 8-bit byte: cp932 would read it
    ],
    ids=["euc-undefined-row", "iso2022-user-defined", "iso2022-space", "iso2022-8bit"],
)
def test_unreadable_extended_japanese_is_refused_naming_the_encoding(data: bytes, label: str, line: int) -> None:
    with pytest.raises(ImportRejected) as caught:
        decode(data)
    (error,) = caught.value.errors
    assert label in error.message
    assert "Shift_JIS(cp932) または UTF-8 で保存し直して" in error.message
    assert error.line == line


# -- UTF-16 with a BOM: Excel's 「Unicode テキスト」 ------------------------------------------

UTF16_TEXT = "No.\t売上\t備考\r\n1\t100\t①～㈱髙﨑Ⅰ№ 😀\r\n2\t200\tｱｲｳ\r\n"


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (UTF16_TEXT.encode("utf-16-le").join([b"\xff\xfe", b""]), "utf-16-le"),
        (b"\xfe\xff" + UTF16_TEXT.encode("utf-16-be"), "utf-16-be"),
        (UTF16_TEXT.encode("utf-16"), "utf-16-le"),  # Python writes the machine's order (little-endian here)
    ],
    ids=["le", "be", "python-utf-16"],
)
def test_utf16_with_a_bom_is_decoded(data: bytes, name: str) -> None:
    assert decode(data) == (UTF16_TEXT, name)
    assert decode(data, "auto") == (UTF16_TEXT, name)


@pytest.mark.parametrize(
    ("command", "name"),
    [(["iconv", "-f", "UTF-8", "-t", "UTF-16"], "utf-16-le"),  # glibc iconv writes a BOM and little-endian
     (["nkf", "-W", "-w16L", "-x"], "utf-16-le"), (["nkf", "-W", "-w16B", "-x"], "utf-16-be")],
    ids=["iconv UTF-16", "nkf -w16L", "nkf -w16B"],
)
def test_utf16_written_by_real_converters_is_decoded(command: list[str], name: str) -> None:
    data = produce(command, UTF16_TEXT)
    assert data[:2] in (b"\xff\xfe", b"\xfe\xff")  # guards the fixture: the converter wrote a BOM
    assert decode(data) == (UTF16_TEXT, name)


def test_every_cp932_character_round_trips_through_utf16() -> None:
    # iconv, not nkf: nkf passes characters through JIS and writes ～ － ￥ as U+301C U+2212 U+00A5.
    chars = cp932_characters(user_defined=True)
    text = "\r\n".join(chars) + "\r\n"
    assert decode(produce(["iconv", "-f", "UTF-8", "-t", "UTF-16"], text)) == (text, "utf-16-le")
    assert decode(b"\xfe\xff" + text.encode("utf-16-be")) == (text, "utf-16-be")


@pytest.mark.parametrize(
    ("body", "offset", "line"),
    [
        # A high surrogate followed by a letter, a low surrogate alone, a high one at the very end.
        ("No.\t売上\r\n1\t".encode("utf-16-le") + b"\x3d\xd8" + "x\r\n".encode("utf-16-le"), 22, 2),
        ("No.\r\n".encode("utf-16-le") + b"\x00\xde" + "\r\n".encode("utf-16-le"), 12, 2),
        ("No.\r\n1\r\n2\r\n".encode("utf-16-le") + b"\x3d\xd8", 24, 4),
    ],
    ids=["high-then-letter", "lone-low", "high-at-end"],
)
def test_utf16_lone_surrogate_is_refused_with_position(body: bytes, offset: int, line: int) -> None:
    with pytest.raises(ImportRejected) as caught:
        decode(b"\xff\xfe" + body)
    (error,) = caught.value.errors
    assert "UTF-16" in error.message and "サロゲート" in error.message
    assert f"ファイル先頭から {offset + 1} バイト目" in error.message
    assert error.line == line


def test_utf16_lone_surrogate_position_in_big_endian() -> None:
    data = b"\xfe\xff" + "No.\r\n".encode("utf-16-be") + b"\xdc\x00"
    with pytest.raises(ImportRejected) as caught:
        decode(data)
    assert "ファイル先頭から 13 バイト目" in caught.value.errors[0].message


def test_utf16_odd_byte_count_is_refused_with_position() -> None:
    data = "No.\t売上\r\n1\t2\r\n".encode("utf-16") + b"\x31"
    with pytest.raises(ImportRejected) as caught:
        decode(data)
    (error,) = caught.value.errors
    assert "バイト数が奇数" in error.message
    assert f"ファイル先頭から {len(data)} バイト目" in error.message
    assert error.line == 3


def test_utf16_surrogate_pair_is_one_character() -> None:
    assert decode("No.\r\n1\t😀\r\n".encode("utf-16"))[0] == "No.\r\n1\t😀\r\n"


def test_utf16_with_a_nul_character_is_refused() -> None:
    with pytest.raises(ImportRejected) as caught:
        decode("No.\r\n1\x00\r\n".encode("utf-16"))
    (error,) = caught.value.errors
    assert "NUL" in error.message and error.line == 2


@pytest.mark.parametrize(("pinned", "label"), [("cp932", "Shift_JIS(cp932)"), ("utf-8", "UTF-8")])
@pytest.mark.parametrize("data", [UTF16_TEXT.encode("utf-16"), b"\xfe\xff" + UTF16_TEXT.encode("utf-16-be")],
                         ids=["le", "be"])
def test_utf16_file_with_a_pinned_encoding_is_refused_naming_both(data: bytes, pinned: str, label: str) -> None:
    with pytest.raises(ImportRejected) as caught:
        decode(data, pinned)
    (error,) = caught.value.errors
    assert error.message.startswith("UTF-16(Excelの「Unicode テキスト」)のファイルですが")
    assert f"文字コードが{label}に指定されています" in error.message
    assert "「自動」" in error.message


def test_utf16_without_a_bom_is_still_refused_as_binary() -> None:
    with pytest.raises(ImportRejected) as caught:
        decode(produce(["nkf", "-W", "-w16L0", "-x"], UTF16_TEXT))
    assert "UTF-16" in caught.value.errors[0].message and "NUL" in caught.value.errors[0].message
