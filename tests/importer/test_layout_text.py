"""Tab-separated text and the separator rule (docs/spec.md section 2, "Layout").

Excel's 「テキスト(タブ区切り)」 and 「Unicode テキスト」 are tab separated; the header line tells
the separator (tabs and no commas), and every other rule is the CSV one.
"""
from __future__ import annotations

import csv
import io

import pytest

from app.importer.encoding import decode
from app.importer.layout import SEMICOLON_SEPARATOR, CsvReader, parse_all, separator
from app.importer.members import MemberRow, parse_members
from tests.fixtures.encodings import PRODUCERS, produce
from tests.fixtures.importer import COLUMNS, MEMBERS_BY_EMPLOYEE_ID, MEMBERS_BY_NO, csv_text

HEADER = ["No.", "売上", "粗利", "件数", "備考"]
ROWS = [
    ["1", "1,200,000", "△5,000", "3", "髙﨑①㈱～№"],
    ["2", "￥980,000", "(12,345)", "", "A社, 新規"],  # a comma in a cell of a tab-separated line
    ["7", "450000", "-7500", "1,234", 'タブ\t入り "引用" と\r\n改行'],
    ["12", "", "", "", "ｶﾌﾞｼｷｶﾞｲｼｬ"],
]
EXPECTED = [
    (2, 101, {1: 1200000.0, 2: -5000.0, 3: 3.0}, "髙﨑①㈱～№"),
    (3, 102, {1: 980000.0, 2: -12345.0}, "A社, 新規"),
    (4, 107, {1: 450000.0, 2: -7500.0, 3: 1234.0}, 'タブ\t入り "引用" と\r\n改行'),
    (6, 112, {}, "ｶﾌﾞｼｷｶﾞｲｼｬ"),
]


def tsv_text(rows: list[list[str]], newline: str = "\r\n") -> str:
    """Write rows tab separated, quoting as Excel does (cells with a tab, a quote or a line break)."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter="\t", lineterminator=newline).writerows(rows)
    return buffer.getvalue()


def read(text: str, member_key: str = "no") -> tuple[list, list]:
    members = MEMBERS_BY_NO if member_key == "no" else MEMBERS_BY_EMPLOYEE_ID
    rows, errors = parse_all(text, columns=COLUMNS, member_key=member_key, members=members)
    return ([(row.line, row.member_id, row.values, row.note) for row in rows],
            [(error.line, error.column, error.value, error.message) for error in errors])


def test_tsv_fixture_really_is_tab_separated_with_quotes() -> None:
    text = tsv_text([HEADER, *ROWS])
    assert text.startswith("No.\t売上\t粗利\t件数\t備考\r\n")
    assert '"タブ\t入り ""引用"" と\r\n改行"' in text and "A社, 新規" in text


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
def test_tab_separated_text_is_read_like_csv(newline: str) -> None:
    # The quoted note has a CRLF of its own: with newline "\r" the file has mixed line ends.
    if newline == "\r":
        rows = [*ROWS[:2], [*ROWS[2][:4], "タブ\t入り"], ROWS[3]]
        expected = [*EXPECTED[:2], (4, 107, EXPECTED[2][2], "タブ\t入り"), (5, 112, {}, "ｶﾌﾞｼｷｶﾞｲｼｬ")]
    else:
        rows, expected = ROWS, EXPECTED
    tsv = read(tsv_text([HEADER, *rows], newline))
    assert tsv == (expected, [])
    assert tsv == read(csv_text([HEADER, *rows], newline))  # the same file as CSV reads the same


@pytest.mark.parametrize(
    "rows",
    [
        [["1", "abc", "1,2", "1e5", ""], ["999", "5", "", "", ""]],  # value and member errors
        [["1", "5,000-", "12%", "2024/5/1", ""], ["2", "-", "", "", ""]],  # the special messages
        [["1", "5", "", "", "", "x"]],  # a value beyond the header
        [["1", "5"], [], ["2", "6", "", "", "", "", ""]],  # short rows, a blank line, Excel's trailing tabs
        [["1", "1", "", "", '複数行\n"引用"'], ["3", "1", "", "", ""]],
    ],
    ids=["errors", "special-messages", "extra-cell", "short-and-trailing", "quoted-newline-then-error"],
)
def test_errors_of_tab_separated_text_are_those_of_the_same_csv(rows: list[list[str]]) -> None:
    tsv = read(tsv_text([HEADER, *rows]))
    assert tsv == read(csv_text([HEADER, *rows]))
    assert tsv[0] or tsv[1]  # never a comparison of two empty readings


def test_tab_separated_syntax_error_names_its_line() -> None:
    rows, errors = read('No.\t売上\r\n1\t5\r\n2\t"6\r\n7\t7\r\n')
    assert [row[0] for row in rows] == [2]
    assert [(line, fragment in message) for line, _column, _value, message in errors
            for fragment in ["閉じられない"]] == [(3, True)]


def test_tab_separated_header_errors_name_tab_separated_columns() -> None:
    _, errors = read("No.\t売上\t顧客名\r\n1\t5\t山田\r\n")
    assert [(line, column) for line, column, _value, _message in errors] == [(1, "顧客名")]


def test_employee_id_key_in_tab_separated_text() -> None:
    rows, errors = read("社員ID\t売上\r\nE001\t\\1,000\r\n007\t（５，０００）\r\n", member_key="employee_id")
    assert errors == []
    assert rows == [(2, 201, {1: 1000.0}, None), (3, 207, {1: -5000.0}, None)]


# -- the separator rule ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No.\t売上\r\n1\t2\r\n", "\t"),
        ("No.,売上\r\n1,2\r\n", ","),
        ("No.\t売上,税込\r\n", ","),  # a comma in the header line: CSV, whatever else it has
        ("No.,売上\t税込\r\n", ","),
        ("No.\r\n1\r\n", ","),  # one column: nothing to tell, CSV
        ("", ","),
        ("\r\n\r\n  \r\nNo.\t売上\r\n", "\t"),  # blank lines before the header
        (",,,\r\n\t\t\r\nNo.\t売上\r\n", "\t"),  # separators only: as blank as an empty line
        ("\ufeffNo.\t売上\r\n", "\t"),
        ("No.\t売上\r1\t2\r", "\t"),  # old Mac line ends
        ("No.\t売上", "\t"),  # no final line end
        ("No.\t売上;粗利\r\n", "\t"),  # tabs win over semicolons
        ("No.,売上;粗利\r\n", ","),
        ("No.\r\n1,2\r\n", ","),  # only the header line counts
        ("No.\r\n1\t2\r\n", ","),
    ],
)
def test_separator_is_told_by_the_header_line(text: str, expected: str) -> None:
    errors: list = []
    assert separator(text, errors) == expected
    assert errors == []


@pytest.mark.parametrize(
    ("text", "line"),
    [("No.;売上;粗利\r\n1;2;3\r\n", 1), ("\r\n\r\nNo.;売上\r\n1;2\r\n", 3), ("No.;売上\n1;2\n", 1),
     ("\ufeffNo.;\"売上\"\r\n", 1)],
)
def test_semicolon_separated_file_is_refused_saying_so(text: str, line: int) -> None:
    rows, errors = read(text)
    assert rows == []
    assert errors == [(line, None, None, SEMICOLON_SEPARATOR)]
    assert "セミコロン(;)" in SEMICOLON_SEPARATOR and "カンマ(,)かタブ" in SEMICOLON_SEPARATOR


def test_semicolon_file_has_only_the_separator_error() -> None:
    # Nothing else is reported: the header cannot be understood, so neither can any row.
    reader = CsvReader("No.;売上\r\nabc;x\r\n", columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    assert list(reader.batches()) == []
    assert [error.message for error in reader.errors] == [SEMICOLON_SEPARATOR]


# -- every accepted encoding, written by real converters -----------------------------------------

TSV = tsv_text([HEADER, *ROWS])
# (command, what decode reports); PRODUCERS adds nkf's and iconv's EUC-JP and ISO-2022-JP.
TEXT_PRODUCERS = {
    "iconv CP932": (["iconv", "-f", "UTF-8", "-t", "CP932"], "cp932"),
    "nkf -s": (["nkf", "-W", "-s", "-x"], "cp932"),
    "nkf UTF-8": (["nkf", "-W", "-w", "-x"], "utf-8"),
    "nkf UTF-8-BOM": (["nkf", "-W", "--oc=UTF-8-BOM", "-x"], "utf-8-sig"),
    "iconv UTF-16": (["iconv", "-f", "UTF-8", "-t", "UTF-16"], "utf-16-le"),
    "iconv UTF-16LE with BOM": (["sh", "-c", "printf '\\377\\376'; iconv -f UTF-8 -t UTF-16LE"], "utf-16-le"),
    "nkf -w16L": (["nkf", "-W", "-w16L", "-x"], "utf-16-le"),
    "nkf -w16B": (["nkf", "-W", "-w16B", "-x"], "utf-16-be"),
    **PRODUCERS,
}


@pytest.mark.parametrize("producer", TEXT_PRODUCERS)
def test_tab_separated_text_in_every_encoding(producer: str) -> None:
    command, name = TEXT_PRODUCERS[producer]
    data = produce(command, TSV)
    text, got = decode(data)
    assert got == name
    expected = EXPECTED
    if producer == "nkf CP50220":  # CP50220 has no half-width katakana: it writes full-width ones
        expected = [*EXPECTED[:3], (6, 112, {}, "カブシキガイシャ")]
    assert read(text) == (expected, [])


def test_tab_separated_member_list() -> None:
    text = tsv_text([["No.", "社員ID", "氏名", "部署", "メールアドレス"], ["1", "E001", "髙橋 一郎", "営業, 一課", ""]])
    decoded, name = decode(text.encode("utf-16"))
    members, errors = parse_members(decoded)
    assert (name, errors) == ("utf-16-le", [])
    assert members == [MemberRow(line=2, no=1, employee_id="E001", name="髙橋 一郎", department="営業, 一課",
                                 email=None)]


def test_semicolon_member_list_is_refused_saying_so() -> None:
    members, errors = parse_members("No.;社員ID;氏名\r\n1;E001;山田\r\n")
    assert members == []
    assert [(error.line, error.message) for error in errors] == [(1, SEMICOLON_SEPARATOR)]
