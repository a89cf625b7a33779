"""Records, line numbers and whole-file rules of a results CSV (docs/spec.md section 2)."""
from __future__ import annotations

import types

import pytest

from app.importer.encoding import decode
from app.importer.layout import NO_DATA_MESSAGE, CsvReader, Row, parse_all
from tests.fixtures.importer import COLUMNS, MEMBERS_BY_EMPLOYEE_ID, MEMBERS_BY_NO, csv_bytes, csv_text

SPEC_EXAMPLE = "社員ID,売上,粗利,件数,備考\r\nE001,120000,30000,2,\r\nE002,\"50,000\",12000,1,A社 新規\r\n"


def _parse_no(text: str) -> tuple[list[Row], list]:
    return parse_all(text, columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)


def test_spec_example() -> None:
    rows, errors = parse_all(SPEC_EXAMPLE, columns=COLUMNS, member_key="employee_id", members=MEMBERS_BY_EMPLOYEE_ID)
    assert errors == []
    assert rows == [
        Row(line=2, member_id=201, values={1: 120000.0, 2: 30000.0, 3: 2.0}, note=None),
        Row(line=3, member_id=202, values={1: 50000.0, 2: 12000.0, 3: 1.0}, note="A社 新規"),
    ]


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
def test_quoted_newlines_keep_later_line_numbers(newline: str) -> None:
    text = newline.join([
        "No.,売上,備考",
        "1,10,一行",
        '2,20,"二行の',
        '備考"',
        '7,"1,000","三行',
        "",
        '備考"',
        "12,30,",
        "",
        "1,40,最後",
    ]) + newline
    rows, errors = _parse_no(text)
    assert errors == []
    assert [(row.line, row.member_id, row.values, row.note) for row in rows] == [
        (2, 101, {1: 10.0}, "一行"),
        (3, 102, {1: 20.0}, f"二行の{newline}備考"),
        (5, 107, {1: 1000.0}, f"三行{newline}{newline}備考"),
        (8, 112, {1: 30.0}, None),
        (10, 101, {1: 40.0}, "最後"),
    ]


def test_error_line_numbers_after_quoted_newlines() -> None:
    text = 'No.,売上,備考\r\n1,1,"a\r\nb\r\nc"\r\n\r\n2,x,\r\n"1\r\n",5,\r\n3,5,\r\n'
    rows, errors = _parse_no(text)
    assert [row.line for row in rows] == [2, 7]  # a line break around a key is only space
    assert [(error.line, error.column, error.value) for error in errors] == [
        (6, "売上", "x"),  # the record after a 3-line record and a blank line
        (9, "No.", "3"),  # unknown member; starts on the line after the 2-line record
    ]


def test_blank_lines_and_excel_trailing_commas_are_ignored() -> None:
    text = (
        "\r\n"
        "No.,売上,粗利,,,\r\n"
        "\r\n"
        "1,100,,,,\r\n"
        ",,,,,\r\n"
        "   \r\n"
        ", ,\u3000,,,\r\n"
        "2,200,20,,,\r\n"
        "\r\n"
        "\r\n"
    )
    rows, errors = _parse_no(text)
    assert errors == []
    assert [(row.line, row.member_id, row.values) for row in rows] == [
        (4, 101, {1: 100.0}),
        (8, 102, {1: 200.0, 2: 20.0}),
    ]


def test_file_without_final_newline() -> None:
    rows, errors = _parse_no("No.,売上\r\n1,5")
    assert errors == [] and [row.values for row in rows] == [{1: 5.0}]


def test_extra_non_empty_cells_are_an_error() -> None:
    text = csv_text([["No.", "売上"], ["1", "5", "", "x"], ["2", "6", "", ""], ["3", "y", "z"]])
    rows, errors = _parse_no(text)
    assert [row.line for row in rows] == [3]
    assert [(error.line, error.column, error.value) for error in errors] == [
        (2, "4列目", "x"),
        (4, "3列目", "z"),
        (4, "No.", "3"),  # the other problems of that row are still reported
        (4, "売上", "y"),
    ]
    assert "見出し" in errors[0].message


def test_unknown_member_rejects_that_row_only_and_every_error_is_listed() -> None:
    text = csv_text([["No.", "売上"], ["1", "10"], ["3", "20"], ["2", "30"], ["4", "40"]])
    rows, errors = _parse_no(text)
    assert [row.line for row in rows] == [2, 4]
    assert [(error.line, error.column, error.value) for error in errors] == [(3, "No.", "3"), (5, "No.", "4")]
    assert all("メンバー設定に存在しないNo.です" in error.message for error in errors)


def test_rows_for_the_same_member_are_kept_separately() -> None:
    text = csv_text([["社員ID", "売上", "備考"], ["E001", "10", "午前"], ["E002", "5", ""], ["E001", "20", "午後"]])
    rows, errors = parse_all(text, columns=COLUMNS, member_key="employee_id", members=MEMBERS_BY_EMPLOYEE_ID)
    assert errors == []
    assert [(row.line, row.member_id, row.values, row.note) for row in rows] == [
        (2, 201, {1: 10.0}, "午前"), (3, 202, {1: 5.0}, None), (4, 201, {1: 20.0}, "午後"),
    ]


@pytest.mark.parametrize(
    "text",
    ["No.,売上\r\n", "No.,売上", "No.,売上,,\r\n\r\n,,\r\n  \r\n", "\r\n\r\nNo.,売上\r\n\r\n"],
)
def test_no_data_rows_is_an_error(text: str) -> None:
    rows, errors = _parse_no(text)
    assert rows == []
    assert [error.message for error in errors] == [NO_DATA_MESSAGE]
    assert "データ行がありません" in NO_DATA_MESSAGE


@pytest.mark.parametrize("text", ["", "\r\n\r\n", ",,,\r\n", "  \r\n"])
def test_empty_file_is_an_error(text: str) -> None:
    rows, errors = _parse_no(text)
    assert rows == []
    assert len(errors) == 1 and "空のファイル" in errors[0].message and "データ行がありません" in errors[0].message


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('No.,売上\r\n1,5\r\n2,"6\r\n3,7\r\n', 3, "閉じられない"),
        ('No.,売上\r\n1,"5"x\r\n', 2, "\"\""),
        ('No.,"売上"x\r\n1,5\r\n', 1, "\"\""),
    ],
)
def test_csv_syntax_errors_name_the_starting_line(text: str, line: int, fragment: str) -> None:
    rows, errors = _parse_no(text)
    # Rows before the damage were streamed already; the error still rejects the file.
    assert [row.line for row in rows] == ([2] if line == 3 else [])
    assert [error.line for error in errors] == [line]
    assert fragment in errors[0].message


def test_rows_is_a_lazy_stream_and_errors_are_complete_at_the_end() -> None:
    text = csv_text([["No.", "売上"], ["1", "1"], ["999", "2"], ["2", "x"], ["7", "3"]])
    reader = CsvReader(text, columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    stream = reader.rows()
    assert isinstance(stream, types.GeneratorType)
    assert [row.line for row in stream] == [2, 5]
    assert [error.line for error in reader.errors] == [3, 4]
    # A second pass starts afresh instead of doubling the errors.
    assert [row.line for row in reader.rows()] == [2, 5]
    assert [error.line for error in reader.errors] == [3, 4]


@pytest.mark.parametrize("plain", [True, False], ids=["plain lines", "quoted cells"])
def test_a_big_file_comes_in_batches_read_as_they_are_needed(plain: bool) -> None:
    # Memory holds one batch of rows, never the whole file: the error at the end is not known
    # when the first batch arrives, plain lines or quoted cells alike.
    good = [["1", "1"] if plain else ["1", "1,000"]] * 30_000
    text = csv_text([["No.", "売上"], *good, ["999", "2"], ["7", "3"]])
    reader = CsvReader(text, columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    stream = reader.batches()
    first = next(stream)
    assert first[0][0] == 2 and len(first) < 30_000 and reader.errors == []
    rest = [row for batch in stream for row in batch]
    assert len(first) + len(rest) == 30_001 and rest[-1][0] == 30_003
    assert [(error.line, error.value) for error in reader.errors] == [(30_002, "999")]


def test_cp932_file_end_to_end() -> None:
    data = csv_bytes([
        ["社員ID", "売上", "件数", "備考"],
        ["E001", "１２，０００", "△３", "①～㈱髙﨑Ⅰ№ ｱｲｳ"],
        ["007", " 1,234 ", "", ""],
    ], encoding="cp932")
    text, name = decode(data)
    assert name == "cp932"
    rows, errors = parse_all(text, columns=COLUMNS, member_key="employee_id", members=MEMBERS_BY_EMPLOYEE_ID)
    assert errors == []
    assert [(row.line, row.member_id, row.values, row.note) for row in rows] == [
        (2, 201, {1: 12000.0, 3: -3.0}, "①～㈱髙﨑Ⅰ№ ｱｲｳ"),
        (3, 207, {1: 1234.0}, None),
    ]


def test_many_rows_fast_path_and_slow_path_agree() -> None:
    lines = [["No.", "売上", "粗利", "件数", "備考"]]
    expected = []
    for index in range(1, 301):
        plain = [str(index), str(index * 2), str(index % 7)]
        if index % 3 == 0:
            cells = [f"{int(plain[0]):,}", f"△{plain[1]}", f"　{plain[2]}　"]
            values = {1: float(index), 2: -float(index * 2), 3: float(index % 7)}
        else:
            cells = plain
            values = {1: float(index), 2: float(index * 2), 3: float(index % 7)}
        if index % 5 == 0:
            cells[2] = ""
            values.pop(3)
        lines.append(["12", *cells, ""])
        expected.append((index + 1, 112, values))
    rows, errors = _parse_no(csv_text(lines))
    assert errors == []
    assert [(row.line, row.member_id, row.values) for row in rows] == expected


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
def test_unicode_line_separators_inside_cells_are_not_line_breaks(newline: str) -> None:
    text = newline.join(["No.,売上,備考", "1,1,a\u2028b\x0cc\x85d\x1ee", "2,2,"]) + newline
    rows, errors = _parse_no(text)
    assert errors == []
    assert [(row.line, row.note) for row in rows] == [(2, "a\u2028b\x0cc\x85d\x1ee"), (3, None)]


def test_mixed_line_ends() -> None:
    rows, errors = _parse_no("No.,売上\r\n1,1\n2,2\r7,7\r\n\r12,12")
    assert errors == []
    assert [(row.line, row.member_id) for row in rows] == [(2, 101), (3, 102), (4, 107), (6, 112)]
