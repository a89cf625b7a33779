"""The メンバー設定 bulk-load CSV: No.,社員ID,氏名,部署,メールアドレス."""
from __future__ import annotations

import pytest

from app.importer.encoding import decode
from app.importer.members import HEADER_MESSAGE, MemberRow, parse_members
from tests.fixtures.importer import csv_bytes, csv_text

HEADER = ["No.", "社員ID", "氏名", "部署", "メールアドレス"]


def test_cp932_member_file() -> None:
    data = csv_bytes([
        HEADER,
        ["1", "0012", "髙橋 一郎", "営業①課", "takahashi@example.co.jp"],
        ["2", "", "ﾔﾏﾀﾞ ﾀﾛｳ", "", ""],
        ["３", "E003", " 﨑村　花子 ", "㈱本社", " hanako@example.com "],
    ], encoding="cp932")
    text, name = decode(data)
    assert name == "cp932"
    members, errors = parse_members(text)
    assert errors == []
    assert members == [
        MemberRow(line=2, no=1, employee_id="0012", name="髙橋 一郎", department="営業①課", email="takahashi@example.co.jp"),
        MemberRow(line=3, no=2, employee_id=None, name="ﾔﾏﾀﾞ ﾀﾛｳ", department=None, email=None),
        MemberRow(line=4, no=3, employee_id="E003", name="﨑村　花子", department="㈱本社", email="hanako@example.com"),
    ]


@pytest.mark.parametrize(
    "header",
    [
        HEADER,
        ["No", "社員ID", "氏名", "部署", "メールアドレス"],
        ["Ｎｏ．", "社員ＩＤ", " 氏名 ", "部署", "メールアドレス", "", ""],
        ["\ufeffNo.", "社員ID", "氏名", "部署", "ﾒｰﾙｱﾄﾞﾚｽ"],  # half-width kana: NFKC
    ],
)
def test_tolerant_header(header: list[str]) -> None:
    members, errors = parse_members(csv_text([header, ["1", "", "山田", "", ""]]))
    assert errors == []
    assert [member.name for member in members] == ["山田"]


@pytest.mark.parametrize(
    "header",
    [
        ["No.", "氏名", "社員ID", "部署", "メールアドレス"],
        ["No.", "社員ID", "氏名", "部署"],
        ["No.", "社員ID", "氏名", "部署", "メールアドレス", "電話"],
        ["番号", "社員ID", "氏名", "部署", "メールアドレス"],
        ["No.", "社員ID", "名前", "部署", "メール"],
    ],
)
def test_wrong_header_is_one_error(header: list[str]) -> None:
    members, errors = parse_members(csv_text([header, ["1", "", "山田", "", ""], ["x", "", "", "", "bad"]]))
    assert members == []
    assert [(error.line, error.message) for error in errors] == [(1, HEADER_MESSAGE)]
    assert "No.,社員ID,氏名,部署,メールアドレス" in HEADER_MESSAGE


@pytest.mark.parametrize(
    ("row", "column", "fragment"),
    [
        (["", "E9", "山田", "", ""], "No.", "必須"),
        (["0", "E9", "山田", "", ""], "No.", "1以上の整数"),
        (["-1", "E9", "山田", "", ""], "No.", "1以上の整数"),
        (["1.5", "E9", "山田", "", ""], "No.", "1以上の整数"),
        (["abc", "E9", "山田", "", ""], "No.", "1以上の整数"),
        (["9", "E9", "", "", ""], "氏名", "必須"),
        (["9", "E9", "\u3000", "", ""], "氏名", "必須"),
        (["9", "E9", "山田", "", "yamada"], "メールアドレス", "形式"),
        (["9", "E9", "山田", "", "a@@example.com"], "メールアドレス", "形式"),
        (["9", "E9", "山田", "", "a@b@example.com"], "メールアドレス", "形式"),
        (["9", "E9", "山田", "", "@example.com"], "メールアドレス", "形式"),
        (["9", "E9", "山田", "", "yamada@"], "メールアドレス", "形式"),
        (["9", "E9", "山田", "", "yama da@example.com"], "メールアドレス", "形式"),
        (["9", "E9", "山田", "", "yamada@example\u3000.com"], "メールアドレス", "形式"),
        (["9", "E9", "山田", "", "", "extra"], "6列目", "見出し"),
    ],
)
def test_row_errors(row: list[str], column: str, fragment: str) -> None:
    members, errors = parse_members(csv_text([HEADER, ["1", "E1", "先頭", "", ""], row]))
    assert [member.no for member in members] == [1]
    assert len(errors) == 1, [error.as_text() for error in errors]
    (error,) = errors
    assert (error.line, error.column) == (3, column)
    assert error.value == row[HEADER.index(column) if column in HEADER else 5]
    assert fragment in error.message


def test_duplicates_within_the_file_name_the_first_line() -> None:
    text = csv_text([
        HEADER,
        ["1", "007", "山田", "", ""],
        ["2", "008", "田中", "", ""],
        ["\u30001", "7", "佐藤", "", ""],  # same No. after trimming; "7" is not "007"
        ["3", "007", "鈴木", "", ""],
        ["4", "", "高橋", "", ""],
        ["5", "", "伊藤", "", ""],  # several members without 社員ID are fine
    ])
    members, errors = parse_members(text)
    assert [member.line for member in members] == [2, 3, 6, 7]
    assert [(error.line, error.column, error.value) for error in errors] == [(4, "No.", "\u30001"), (5, "社員ID", "007")]
    assert "2行目" in errors[0].message and "2行目" in errors[1].message


def test_every_error_of_a_row_is_reported() -> None:
    members, errors = parse_members(csv_text([HEADER, ["x", "", "", "", "nope"]]))
    assert members == []
    assert [(error.line, error.column) for error in errors] == [(2, "No."), (2, "氏名"), (2, "メールアドレス")]


def test_blank_lines_quoted_newlines_and_line_numbers() -> None:
    text = 'No.,社員ID,氏名,部署,メールアドレス,,\r\n\r\n1,,"山田\r\n太郎",,,,\r\n,,,,,,\r\n2,,,,\r\n'
    members, errors = parse_members(text)
    assert [(member.line, member.name) for member in members] == [(3, "山田\r\n太郎")]
    assert [(error.line, error.column) for error in errors] == [(6, "氏名")]


@pytest.mark.parametrize(("text", "fragment"), [("", "空のファイル"), ("\r\n", "空のファイル"),
                                                 ("No.,社員ID,氏名,部署,メールアドレス\r\n", "データ行がありません")])
def test_empty_files(text: str, fragment: str) -> None:
    members, errors = parse_members(text)
    assert members == []
    assert len(errors) == 1 and fragment in errors[0].message


def test_csv_syntax_error() -> None:
    members, errors = parse_members('No.,社員ID,氏名,部署,メールアドレス\r\n1,,"山田,,\r\n')
    assert members == []
    assert [error.line for error in errors] == [2]


def test_a_no_with_thousands_of_digits_is_a_row_error_not_a_crash():
    rows, errors = parse_members("No.,社員ID,氏名,部署,メールアドレス\n" + "9" * 5000 + ",E1,山田,,\n")
    assert rows == []
    assert [(e.line, e.column) for e in errors] == [(2, "No.")]


FORMULA_KEYS = ["=HYPERLINK(\"http://evil.example\")", "@SUM(1+1)", "+81", "-2+3", "-123", "=1+1"]


@pytest.mark.parametrize("key", FORMULA_KEYS)
def test_a_key_starting_like_a_formula_is_a_row_error(key: str) -> None:
    members, errors = parse_members(csv_text([HEADER, ["1", "E1", "先頭", "", ""], ["2", key, "山田", "", ""]]))
    assert [member.no for member in members] == [1]
    (error,) = errors
    assert (error.line, error.column, error.value) == (3, "社員ID", key)
    assert "社員IDは「=」「+」「-」「@」で始められません(表計算ソフトで開いたときに数式として実行されるため)" == error.message


@pytest.mark.parametrize("key", ["E-001", "00-12", "＝ABC", "A=B"])
def test_keys_with_those_characters_elsewhere_are_fine(key: str) -> None:
    members, errors = parse_members(csv_text([HEADER, ["1", key, "山田", "", ""]]))
    assert not errors and [member.employee_id for member in members] == [key]


def test_reading_goes_on_after_a_csv_syntax_error_so_every_error_comes_out_at_once() -> None:
    text = ("No.,社員ID,氏名,部署,メールアドレス\r\n"
            "1,E1,山田,,\r\n"
            '2,"E2"x,田中,,\r\n'          # line 3: text after a closing quote
            '3,E3,"鈴木\r\n 次郎",,\r\n'  # lines 4-5: one record with a quoted newline
            "4,E1,佐藤,,\r\n"             # line 6: 社員ID of line 2
            '5,E5,"閉じない,,\r\n6,E6,x,,\r\n')  # line 7: unclosed quote swallows the rest
    members, errors = parse_members(text)
    assert [member.line for member in members] == [2, 4]
    assert [(error.line, error.column, error.value) for error in errors] == [
        (3, None, '2,"E2"x,田中,,'), (6, "社員ID", "E1"), (7, None, '5,E5,"閉じない,,')]
    assert "CSVの形式" in errors[0].message and "重複" in errors[1].message and "閉じられない" in errors[2].message


def test_the_errors_listed_are_capped_and_every_one_counted() -> None:
    rows = [HEADER, *([str(no), f"E{no}", "", "", ""] for no in range(1, 251))]
    members, errors = parse_members(csv_text(rows))
    assert members == []
    assert len(errors) == 100 and errors.total == 250
    assert [error.line for error in errors] == list(range(2, 102))
