"""Other systems' column names (docs/spec.md section 2): aliases, the member key in any column, extra columns."""
from __future__ import annotations

from app.importer.layout import CsvReader, parse_all
from tests.fixtures.importer import (
    COLUMNS,
    MEMBERS_BY_EMPLOYEE_ID,
    MEMBERS_BY_NO,
    csv_text,
)

ALIASES = {"売上金額": 1, "ｱﾗﾘ": 2}  # 売上 and 粗利


def _parse(rows: list[list[str]], member_key: str = "no", **rules):
    members = MEMBERS_BY_NO if member_key == "no" else MEMBERS_BY_EMPLOYEE_ID
    return parse_all(csv_text(rows), columns=COLUMNS, member_key=member_key, members=members, **rules)


def test_an_alias_is_read_as_its_column_after_nfkc() -> None:
    rows, errors = _parse([["No.", " 売上金額 ", "アラリ"], ["1", "100", "7"]], aliases=ALIASES)
    assert errors == []
    assert [(row.member_id, row.values) for row in rows] == [(101, {1: 100.0, 2: 7.0})]


def test_without_the_alias_the_header_is_unknown() -> None:
    rows, errors = _parse([["No.", "売上金額"], ["1", "100"]])
    assert rows == []
    assert [(error.line, error.column) for error in errors] == [(1, "売上金額")]
    assert "グラフ列にない見出し" in errors[0].message and "別名を登録" in errors[0].message


def test_the_member_key_may_be_in_column_3() -> None:
    rows, errors = _parse([["売上", "備考", "No.", "件数"], ["100", "A社", "12", "3"], ["5", "", "7", ""]])
    assert errors == []
    assert [(row.line, row.member_id, row.values, row.note) for row in rows] == [
        (2, 112, {1: 100.0, 3: 3.0}, "A社"), (3, 107, {1: 5.0}, None)]


def test_errors_of_a_key_in_column_3_name_its_header_and_value() -> None:
    _, errors = _parse([["売上", "件数", "社員ID"], ["abc", "1", "E999"]], member_key="employee_id")
    assert [(error.line, error.column, error.value) for error in errors] == [(2, "社員ID", "E999"), (2, "売上", "abc")]
    assert "メンバー設定に存在しない社員ID" in errors[0].message


def test_a_key_alias_finds_the_key_column() -> None:
    rows, errors = _parse([["売上", "担当者コード"], ["100", "E002"]], member_key="employee_id",
                          key_aliases=["担当者ｺｰﾄﾞ"])
    assert errors == []
    assert [(row.member_id, row.values) for row in rows] == [(202, {1: 100.0})]
    _, errors = _parse([["売上", "担当者コード"], ["100", "E404"]], member_key="employee_id", key_aliases=["担当者コード"])
    assert [(error.column, error.value) for error in errors] == [("担当者コード", "E404")]


def test_a_header_without_a_key_column_says_which_header_is_expected() -> None:
    _, errors = _parse([["売上", "粗利"], ["1", "2"]], member_key="employee_id", key_aliases=["担当者コード"])
    assert len(errors) == 1 and errors[0].line == 1
    assert "メンバー識別IDの列がありません" in errors[0].message
    assert "「社員ID」(または別名「担当者コード」)" in errors[0].message


def test_two_key_columns_are_an_error() -> None:
    rows, errors = _parse([["No.", "売上", "No"], ["1", "2", "1"]])
    assert rows == [] and [error.column for error in errors] == ["No"]
    assert "メンバー識別IDの列が1列目「No.」と3列目「No」の2つあります" in errors[0].message
    _, errors = _parse([["No.", "売上", "担当者"], ["1", "2", "1"]], key_aliases=["担当者"])
    assert [error.column for error in errors] == ["担当者"] and "2つあります" in errors[0].message


def test_a_name_and_its_alias_together_are_a_duplicate() -> None:
    rows, errors = _parse([["No.", "売上", "売上金額"], ["1", "2", "3"]], aliases=ALIASES)
    assert rows == [] and [(error.line, error.column) for error in errors] == [(1, "売上金額")]
    assert "「売上金額」と2列目の「売上」は同じグラフ列「売上」の見出しです" in errors[0].message


def test_extra_columns_are_refused_then_ignored_by_the_setting() -> None:
    file = [["日付", "顧客名", "No.", "売上", "備考"], ["2018/05/16", "=cmd|' /C calc'!A0", "1", "100", "x"],
            ["不正な日付", "", "2", "200", ""]]
    rows, errors = _parse(file)
    assert rows == [] and [error.column for error in errors] == ["日付", "顧客名"]
    assert all("外部連携設定の「見出しにない列」を「無視する」" in error.message for error in errors)

    reader = CsvReader(csv_text(file), columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO, ignore_unknown=True)
    rows = list(reader.rows())
    assert reader.errors == []  # the contents of 日付 and 顧客名 are never read
    assert [(row.member_id, row.values, row.note) for row in rows] == [(101, {1: 100.0}, "x"), (102, {1: 200.0}, None)]
    assert reader.ignored_headers == ["日付", "顧客名"]


def test_ignoring_keeps_the_other_header_rules() -> None:
    # An empty header, a duplicate and a value past the last header are still errors.
    _, errors = _parse([["No.", "売上", "", "売上"], ["1", "2", "", "3", "9"]], ignore_unknown=True)
    assert [(error.line, error.column) for error in errors] == [(1, "3列目"), (1, "売上")]
    _, errors = _parse([["No.", "売上"], ["1", "2", "9"]], ignore_unknown=True)
    assert [(error.line, error.column, error.value) for error in errors] == [(2, "3列目", "9")]
    # Only ignored columns: no graph column at all.
    _, errors = _parse([["No.", "日付"], ["1", "x"]], ignore_unknown=True)
    assert len(errors) == 1 and "グラフ列の見出しが1つもありません(無視した見出し: 日付)" in errors[0].message


def test_the_other_member_key_beside_the_right_one_is_an_extra_column() -> None:
    file = [["社員ID", "No.", "売上"], ["E001", "1", "5"]]
    _, errors = _parse(file)
    assert [error.column for error in errors] == ["社員ID"] and "使いません" in errors[0].message
    reader = CsvReader(csv_text(file), columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO, ignore_unknown=True)
    assert [row.member_id for row in reader.rows()] == [101] and reader.ignored_headers == ["社員ID"]
    # Alone, it is the wrong key for the setting, ignored or not.
    _, errors = _parse([["売上", "社員ID"], ["5", "E001"]], ignore_unknown=True)
    assert [error.column for error in errors] == ["社員ID"] and "メンバー設定のNo." in errors[0].message


def test_the_valid_headers_list_the_key_and_the_aliases() -> None:
    _, errors = _parse([["No.", "利益"], ["1", "1"]], aliases=ALIASES, key_aliases=["番号"])
    assert "使える見出し: No.(別名 番号)、売上(別名 売上金額)、粗利(別名 ｱﾗﾘ)、件数、備考" in errors[0].message
