"""Property-based tests of the pure CSV layer (app/importer): whatever bytes arrive, the answer
is rows or errors, never a crash.

- decode + CsvReader: any byte string gives valid rows and/or RowErrors; the only exception
  allowed is ImportRejected (from decode); row line numbers increase and stay inside the file;
  every stored value is a finite number (inf is not JSON);
- parse_filename: any name gives a Period or ImportRejected.
"""
from __future__ import annotations

import codecs
import csv
import io
import math
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import ImportRejected, RowError
from app.importer import CsvReader, Period, decode, parse_filename

COLUMNS = {"売上": 1, "粗利": 2, "件数": 3}
MEMBERS = {"no": {"1": 11, "2": 12, "3": 13}, "employee_id": {"E001": 21, "007": 22, "ｱ": 23}}
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def physical_line_count(text: str) -> int:
    """Lines as the importer counts them: CRLF, CR and LF each end one line."""
    return len(re.findall(r"\r\n|\r|\n", text)) + 1


def read(data: bytes, pinned: str | None, member_key: str) -> tuple[str | None, list, list[RowError]]:
    """decode + CsvReader the way ingest does; ImportRejected from decode is an answer too."""
    try:
        text, _encoding = decode(data, pinned)
    except ImportRejected as error:
        assert error.errors and all(isinstance(e, RowError) and e.message for e in error.errors)
        return None, [], list(error.errors)
    reader = CsvReader(text, columns=COLUMNS, member_key=member_key, members=MEMBERS[member_key])
    rows = list(reader.rows())
    return text, rows, reader.errors


def check(data: bytes, pinned: str | None, member_key: str) -> None:
    text, rows, errors = read(data, pinned, member_key)
    assert all(isinstance(error, RowError) and error.message for error in errors)
    if text is None:
        assert not rows
        return
    assert rows or errors, "a file gives rows or errors, never nothing"
    lines = physical_line_count(text)
    numbers = [row.line for row in rows]
    assert numbers == sorted(set(numbers)), numbers  # strictly increasing
    assert all(2 <= number <= lines for number in numbers), (numbers, lines)
    for error in errors:
        assert error.line is None or 1 <= error.line <= lines + 1, (error, lines)
    for row in rows:
        assert row.member_id in MEMBERS[member_key].values()
        assert set(row.values) <= set(COLUMNS.values())
        assert all(isinstance(v, float) and math.isfinite(v) for v in row.values.values()), row.values


# ---------------------------------------------------------------------------------------
# Strategies


PINNED = st.sampled_from([None, "auto", "cp932", "utf-8"])
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


@PROPERTY_SETTINGS
@given(data=st.binary(max_size=3000), pinned=PINNED, member_key=KEYS)
def test_any_bytes_give_rows_or_errors(data, pinned, member_key):
    check(data, pinned, member_key)


@PROPERTY_SETTINGS
@given(data=csv_files(), pinned=PINNED, member_key=KEYS)
def test_csv_like_bytes_give_rows_or_errors(data, pinned, member_key):
    check(data, pinned, member_key)


@PROPERTY_SETTINGS
@given(prefix=st.binary(max_size=200), member_key=KEYS)
def test_a_good_header_with_any_bytes_after_it(prefix, member_key):
    header = ("No." if member_key == "no" else "社員ID") + ",売上,粗利,件数,備考\r\n"
    check(header.encode("cp932") + prefix, None, member_key)


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
