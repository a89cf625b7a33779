"""Property-based tests of the import path: whatever bytes arrive, the answer is rows or errors, never a crash.

- any byte string, received and run as the worker runs it (ingest.receive, then
  runner.run_import, with the account's pinned encoding and member key): the import ends
  succeeded with rows or failed with errors, never with the system error of a crash; stored
  rows have increasing line numbers inside the file, the account's members and columns, and
  finite numbers only (inf is not JSON); a failed import stores no rows;
- parse_filename: any name gives a Period or ImportRejected.

Only the production entry is used, so the test holds whatever parse tiers the reader has inside.
"""
from __future__ import annotations

import codecs
import csv
import io
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.errors import ImportRejected
from app.extensions import db
from app.importer import Period, parse_filename
from app.models import Import, ImportErrorRecord
from app.services import ingest, runner
from tests.fixtures.ingest import SENDER, ingest_options, stored_lines

COLUMNS = (("売上", "円"), ("粗利", "円"), ("件数", "件"))
MEMBERS = ((1, "E001", "髙橋 一郎"), (2, "007", "佐藤 花子"), (3, "ｱ", "鈴木 次郎"))
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Each example of these is a stored import with its commits (about 30 ms): fewer examples. The
# `senders` accounts are made once per test and shared by its examples, which only add imports.
IMPORT_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=100,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                  HealthCheck.function_scoped_fixture])


def physical_line_count(data: bytes) -> int:
    """Lines as the importer counts them: CRLF, CR and LF each end one line.

    Counted on the bytes: in every encoding the importer accepts, CR and LF bytes are only ever
    those characters (never part of a multi-byte character).
    """
    return len(re.findall(rb"\r\n|\r|\n", data)) + 1


@pytest.fixture
def senders(app, make_account):
    """(pinned encoding, member key) -> an account that imports with those settings."""
    return {(pinned, key): make_account(f"{key.replace('_', '')}{pinned.replace('-', '')}",
                                        **ingest_options(members=MEMBERS, columns=COLUMNS, encoding=pinned,
                                                         member_key=key))
            for pinned in ("auto", "cp932", "utf-8") for key in ("no", "employee_id")}


def check(acc, data: bytes) -> None:
    """Receive `data` as 20180516.csv and run the import the way the worker does; check the outcome."""
    received = ingest.receive(acc.id, "20180516.csv", data, channel="api", sender=SENDER)
    imp = runner.run_import(received.id)
    db.session.expire_all()
    rows = [line[:3] for _import_id, line in stored_lines(imp.id)]
    errors = db.session.scalars(select(ImportErrorRecord).where(ImportErrorRecord.import_id == imp.id)).all()
    lines = physical_line_count(data)
    assert all(error.message and error.message != runner.SYSTEM_ERROR_MESSAGE for error in errors), \
        [e.message for e in errors]
    assert imp.status in (Import.SUCCEEDED, Import.FAILED), imp.status
    if imp.status == Import.FAILED:
        assert errors and not rows, "a failed import has errors and stores nothing"
        for error in errors:
            assert error.line is None or 1 <= error.line <= lines + 1, (error.line, lines)
        return
    assert rows and not errors, "a succeeded import stores rows and has no errors"
    numbers = [row.line for row in rows]
    assert numbers == sorted(set(numbers)), numbers  # strictly increasing
    assert all(2 <= number <= lines for number in numbers), (numbers, lines)
    for row in rows:
        assert row.member_id in acc.member.values()
        assert {int(k) for k in row.values} <= set(acc.column.values())
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in row.values.values()), row.values


# ---------------------------------------------------------------------------------------
# Strategies


PINNED = st.sampled_from(["auto", "cp932", "utf-8"])
KEYS = st.sampled_from(["no", "employee_id"])

# Cells a sender could plausibly (or maliciously) write.
_NUMBERS = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.integers(0, 10**9).map(lambda n: f"{n:,}"),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(0, 10**6).map(lambda n: f"▲{n}"),
    st.integers(1, 800).map(lambda n: "9" * n),
    st.sampled_from(["", " ", "1,00", "12.3.4", "１２３", "１，２３４", "－５", "①", "1e5", "NaN", "=1+2", "+81",
                     "@SUM(A1)", "-cmd|' /C calc'!A0", "-", "△", "0", "007", "E001", "ｱ"]),
)
_TEXT = st.text(alphabet=st.sampled_from(list('ab髙橋①～㈱ Ａ,"\r\n\t\x0c\u2028-=+@.0123456789')), max_size=12)
CELLS = st.one_of(_NUMBERS, _TEXT)
HEADERS = st.lists(st.sampled_from(["売上", "粗利", "件数", "備考", "氏名", "", "売上 ", "ｹﾝｽｳ", "No.", "社員ID"]),
                   max_size=5)


@st.composite
def csv_files(draw) -> bytes:
    """CSV-ish bytes: a (mostly) plausible header, random cells, quoting right or wrong, in cp932 or UTF-8."""
    key = draw(st.sampled_from(["No.", "社員ID", "No", "Ｎｏ．", "", "\ufeffNo."]))
    header = [key, *draw(HEADERS)]
    rows = draw(st.lists(st.lists(CELLS, max_size=7), max_size=8))
    newline = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    buffer = io.StringIO(newline="")
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    csv.writer(buffer, lineterminator=newline, quoting=quoting).writerows([header, *rows])
    text = buffer.getvalue()
    if draw(st.booleans()):
        # Break it: cut anywhere (an unclosed quote), or splice in stray quotes and separators.
        position = draw(st.integers(0, len(text)))
        text = text[:position] + draw(st.sampled_from(["", '"', '""', ',', '\r', '\n', '"x', "\x00"])) + (
            text[position:] if draw(st.booleans()) else "")
    encoding = draw(st.sampled_from(["cp932", "utf-8", "utf-8-sig"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.booleans()):
        # Mixed encodings and stray bytes: append a line in the other encoding, or noise.
        other = "cp932" if encoding != "cp932" else "utf-8"
        data += draw(st.sampled_from([f"1,2,髙橋①{newline}".encode(other), b"\xed\xa0\x80", b"\x81",
                                      codecs.BOM_UTF8, b"\xff\xfe"]))
    return data


# ---------------------------------------------------------------------------------------
# Properties


@IMPORT_SETTINGS
@given(data=st.binary(max_size=3000), pinned=PINNED, member_key=KEYS)
def test_any_bytes_give_rows_or_errors(senders, data, pinned, member_key):
    check(senders[pinned, member_key], data)


@IMPORT_SETTINGS
@given(data=csv_files(), pinned=PINNED, member_key=KEYS)
def test_csv_like_bytes_give_rows_or_errors(senders, data, pinned, member_key):
    check(senders[pinned, member_key], data)


@IMPORT_SETTINGS
@given(prefix=st.binary(max_size=200), member_key=KEYS)
def test_a_good_header_with_any_bytes_after_it(senders, prefix, member_key):
    header = ("No." if member_key == "no" else "社員ID") + ",売上,粗利,件数,備考\r\n"
    check(senders["auto", member_key], header.encode("cp932") + prefix)


NAMES = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\A[0-9０-９]{6,9}(\.csv|\.CSV|\.txt|)\Z"),
    st.builds(lambda d, sep, ext: f"{sep}{d}{ext}", st.text(alphabet="0123456789", min_size=8, max_size=8),
              st.sampled_from(["", "../", "..\\", "C:\\x\\", "/", "\\\\host\\share\\", "a/b\\"]),
              st.sampled_from([".csv", ".Csv", ".csv ", ".csv\x00", ""])),
)


@PROPERTY_SETTINGS
@given(name=NAMES)
def test_parse_filename_gives_a_period_or_a_rejection(name):
    try:
        period = parse_filename(name)
    except ImportRejected as error:
        assert error.errors and "ファイル名" in error.errors[0].message
        return
    assert isinstance(period, Period)
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    assert base.lower().endswith(".csv") and period.name == base
    digits = base[:8]
    assert digits.isascii() and digits.isdigit()
    assert period.key == (digits if period.kind == "day" else digits[:6])
