"""Header rules of a results CSV (docs/spec.md section 2, "Layout")."""
from __future__ import annotations

import pytest

from app.errors import RowError
from app.importer.layout import CsvReader, parse_all
from tests.fixtures.importer import COLUMNS, MEMBERS_BY_EMPLOYEE_ID, MEMBERS_BY_NO, csv_text


def _parse(header: list[str], member_key: str = "no", columns: dict[str, int] = COLUMNS) -> tuple[list, list[RowError]]:
    key = "1" if member_key == "no" else "E001"
    members = MEMBERS_BY_NO if member_key == "no" else MEMBERS_BY_EMPLOYEE_ID
    width = len(header)
    while width > 1 and not header[width - 1]:
        width -= 1  # Excel writes the trailing empty columns on every row too
    row = [key] + ["5"] * (width - 1) + [""] * (len(header) - width)
    return parse_all(csv_text([header, row]), columns=columns, member_key=member_key, members=members)


@pytest.mark.parametrize(
    ("header", "member_key", "values"),
    [
        (["No.", "売上", "粗利", "件数"], "no", {1: 5.0, 2: 5.0, 3: 5.0}),
        (["No.", "件数"], "no", {3: 5.0}),  # any subset, any order
        (["No.", "件数", "売上"], "no", {3: 5.0, 1: 5.0}),
        (["No", "売上"], "no", {1: 5.0}),
        (["NO.", "売上"], "no", {1: 5.0}),
        (["no.", "売上"], "no", {1: 5.0}),
        (["No．", "売上"], "no", {1: 5.0}),  # full-width period
        (["Ｎｏ．", "売上"], "no", {1: 5.0}),  # full-width letters
        (["№", "売上"], "no", {1: 5.0}),  # NFKC: "No"
        ([" No. ", "売上"], "no", {1: 5.0}),
        (["\ufeffNo.", "売上"], "no", {1: 5.0}),  # a BOM that survived decoding
        (["社員ID", "売上"], "employee_id", {1: 5.0}),
        (["社員ＩＤ", "売上"], "employee_id", {1: 5.0}),
        (["社員Id", "売上"], "employee_id", {1: 5.0}),
        (["No.", " 売上 "], "no", {1: 5.0}),  # trimmed
        (["No.", "　売上　"], "no", {1: 5.0}),  # full-width spaces trimmed
        (["No.", "売上", "", "", ""], "no", {1: 5.0}),  # Excel's trailing empty columns
        (["No.", "売上", "備考"], "no", {1: 5.0}),
        (["No.", "備考", "売上"], "no", {1: 5.0}),
    ],
)
def test_accepted_headers(header: list[str], member_key: str, values: dict[int, float]) -> None:
    rows, errors = _parse(header, member_key)
    assert errors == []
    assert [row.values for row in rows] == [values]


def test_column_names_are_compared_after_nfkc() -> None:
    # The account's names may themselves be written with full-width or compatibility characters.
    columns = {"ＰＶ数": 1, "売上(円)": 2, "ｱﾎﾟ件数": 3}
    rows, errors = _parse(["No.", "PV数", "売上（円）", "アポ件数"], columns=columns)
    assert errors == []
    assert rows[0].values == {1: 5.0, 2: 5.0, 3: 5.0}


def test_header_keeps_what_the_file_says() -> None:
    reader = CsvReader(csv_text([["No.", " 売上 ", "備考", "", ""], ["1", "5", "x"]]),
                       columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    assert reader.header == []
    list(reader.rows())
    assert reader.header == ["No.", "売上", "備考"]


@pytest.mark.parametrize(
    ("header", "member_key", "expected"),
    [
        # Column 1 literally the other key: say which key the setting expects.
        (["社員ID", "売上"], "no", [("社員ID", ["「社員ID」", "メンバー設定のNo.", "「No.」"])]),
        (["No.", "売上"], "employee_id", [("No.", ["「No.」", "メンバー設定の社員ID", "「社員ID」"])]),
        (["社員ＩＤ", "売上"], "no", [("社員ＩＤ", ["メンバー設定のNo."])]),
        # No header names the key: say which header is expected (any column will do), then the rest.
        (["番号", "売上"], "no", [(None, ["メンバー識別IDの列がありません", "「No.」", "メンバー設定のNo."]),
                                  ("番号", ["グラフ列にない見出し"])]),
        (["売上", "粗利"], "no", [(None, ["メンバー識別IDの列がありません。見出しが「No.」の列"])]),
        (["氏名", "売上"], "employee_id", [(None, ["見出しが「社員ID」の列", "メンバー設定の社員ID"]),
                                          ("氏名", ["グラフ列にない見出し"])]),
        (["", "売上"], "no", [(None, ["メンバー識別IDの列がありません"]), ("1列目", ["1列目の見出しが空"])]),
        (["Number", "売上"], "no", [(None, ["「No.」"]), ("Number", ["グラフ列にない見出し"])]),
        # Unknown, repeated and empty headers list the valid names.
        (["No.", "売上高"], "no", [("売上高", ["グラフ列にない見出し", "売上、粗利、件数、備考"])]),
        (["No.", "売上", "売上"], "no", [("売上", ["重複", "2列目と3列目", "売上、粗利、件数、備考"])]),
        (["No.", "売上", "売　上"], "no", [("売　上", ["グラフ列にない見出し"])]),  # an inner space stays
        (["No.", "売上", "ｳﾘｱｹﾞ"], "no", [("ｳﾘｱｹﾞ", ["グラフ列にない見出し"])]),
        (["No.", "売上", "備考", "備考"], "no", [("備考", ["重複", "3列目と4列目"])]),
        (["No.", "売上", "", "粗利"], "no", [("3列目", ["3列目の見出しが空", "売上、粗利、件数、備考"])]),
        (["No."], "no", [(None, ["グラフ列の見出しが1つもありません", "売上、粗利、件数、備考"])]),
        (["No.", "備考"], "no", [(None, ["グラフ列の見出しが1つもありません"])]),
        # Every header problem at once.
        (["社員ID", "売上", "売上", "利益", "", "件数"], "no", [
            ("社員ID", ["メンバー設定のNo."]),
            ("売上", ["重複"]),
            ("利益", ["グラフ列にない見出し"]),
            ("5列目", ["見出しが空"]),
        ]),
    ],
)
def test_header_errors(header: list[str], member_key: str, expected: list[tuple[str | None, list[str]]]) -> None:
    rows, errors = _parse(header, member_key)
    assert rows == []  # header errors stop the file: no row is parsed
    assert [error.line for error in errors] == [1] * len(expected)
    assert len(errors) == len(expected), [error.as_text() for error in errors]
    for error, (column, fragments) in zip(errors, expected):
        assert error.column == column
        for fragment in fragments:
            assert fragment in error.message


def test_header_errors_stop_before_rows() -> None:
    text = csv_text([["No.", "売上高"], ["999", "abc"], ["x", "1"]])
    rows, errors = parse_all(text, columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    assert rows == []
    assert [(error.line, error.column) for error in errors] == [(1, "売上高")]


def test_header_after_blank_lines_keeps_its_line_number() -> None:
    text = "\r\n\r\nNo.,売上高\r\n1,2\r\n"
    _, errors = parse_all(text, columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    assert [(error.line, error.column) for error in errors] == [(3, "売上高")]


def test_graph_column_named_like_the_note_wins() -> None:
    rows, errors = _parse(["No.", "備考"], columns={"備考": 9})
    assert errors == []
    assert rows[0].values == {9: 5.0} and rows[0].note is None


def test_unknown_member_key_setting_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        CsvReader("", columns=COLUMNS, member_key="name", members={})
