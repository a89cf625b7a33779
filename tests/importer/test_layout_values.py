"""Value and member-key rules of a results CSV (docs/spec.md section 2, "Layout")."""
from __future__ import annotations

import pytest

from app.importer.layout import parse_all
from app.importer.values import BAD_SEPARATOR, DATE, LONE_DASH, NOT_A_NUMBER, PERCENT, TRAILING_MINUS, parse_value
from tests.fixtures.importer import COLUMNS, MEMBERS_BY_EMPLOYEE_ID, MEMBERS_BY_NO, csv_text

ACCEPTED = [
    ("0", 0.0),
    ("7", 7.0),
    ("120000", 120000.0),
    ("007", 7.0),
    ("12.5", 12.5),
    ("0.25", 0.25),
    ("-100", -100.0),
    ("-12.5", -12.5),
    ("-0", 0.0),
    ("△100", -100.0),
    ("▲100", -100.0),
    ("△ 100", -100.0),
    ("▲1,234.5", -1234.5),
    ("\u2212100", -100.0),  # MINUS SIGN
    ("－100", -100.0),  # FULLWIDTH HYPHEN-MINUS
    ("1,234", 1234.0),
    ("1,234,567", 1234567.0),
    ("12,345.67", 12345.67),
    ("-1,000", -1000.0),
    ("１２３", 123.0),  # full-width digits
    ("１，２３４", 1234.0),  # full-width comma
    ("１２．５", 12.5),  # full-width period
    ("－１２", -12.0),
    (" 100 ", 100.0),
    ("\u3000100\u3000", 100.0),  # full-width spaces
    ("\t100", 100.0),
    ("99999999999", 99999999999.0),
    # Currency and accounting forms (docs/spec.md section 2, "Layout").
    ("￥1,200,000", 1200000.0),  # full-width yen sign (U+FFE5)
    ("¥1,200,000", 1200000.0),  # U+00A5
    ("\\1,200,000", 1200000.0),  # what a cp932 yen sign (0x5C) decodes to
    ("＼1,200,000", 1200000.0),  # full-width backslash, NFKC "\\"
    ("¥ 1,200", 1200.0),
    ("￥12.5", 12.5),
    ("1,200,000円", 1200000.0),
    ("1,200,000 円", 1200000.0),
    ("(5,000)", -5000.0),  # Excel's accounting format
    ("( 5,000 )", -5000.0),
    ("(0)", 0.0),
    ("(12.5)", -12.5),
    ("(￥5,000)", -5000.0),
    ("￥(5,000)", -5000.0),
    ("(5,000円)", -5000.0),
    ("(5,000)円", -5000.0),
    ("-￥5,000", -5000.0),
    ("￥-5,000", -5000.0),
    ("\\-5,000", -5000.0),
    ("-\\5,000", -5000.0),
    ("△￥5,000", -5000.0),
    ("￥△5,000", -5000.0),
    ("▲ ￥ 5,000", -5000.0),
    ("△5,000円", -5000.0),
    ("-5,000円", -5000.0),
    # ... and their full-width forms.
    ("￥１，２００，０００", 1200000.0),
    ("１，２００，０００円", 1200000.0),
    ("（５，０００）", -5000.0),
    ("（￥５，０００）", -5000.0),
    ("－￥５，０００", -5000.0),
    ("￥－５，０００", -5000.0),
    ("△￥５，０００", -5000.0),
    ("\u3000￥\u3000１，２００\u3000", 1200.0),
]
REJECTED = [
    ("abc", NOT_A_NUMBER),
    ("1e5", NOT_A_NUMBER),
    ("1E5", NOT_A_NUMBER),
    ("nan", NOT_A_NUMBER),
    ("NaN", NOT_A_NUMBER),
    ("inf", NOT_A_NUMBER),
    ("-inf", NOT_A_NUMBER),
    ("Infinity", NOT_A_NUMBER),
    ("1_000", NOT_A_NUMBER),
    ("=1+2", NOT_A_NUMBER),
    ("+100", NOT_A_NUMBER),
    ("--100", NOT_A_NUMBER),
    ("12.", NOT_A_NUMBER),
    (".5", NOT_A_NUMBER),
    ("1.2.3", NOT_A_NUMBER),
    ("1 000", NOT_A_NUMBER),
    ("0x10", NOT_A_NUMBER),
    ("²", NOT_A_NUMBER),  # NFKC would say "2", but it is not a digit anyone types for a count
    ("١٢", NOT_A_NUMBER),  # Arabic-Indic digits: float() takes them, the contract does not
    ("12,34", BAD_SEPARATOR),
    ("1,2345", BAD_SEPARATOR),
    ("1234,567", BAD_SEPARATOR),
    (",123", BAD_SEPARATOR),
    ("1,,234", BAD_SEPARATOR),
    ("1,234,", BAD_SEPARATOR),
    ("12.3,4", NOT_A_NUMBER),
    ("¥1,000円", NOT_A_NUMBER),  # one currency mark, not two
    ("￥￥1,000", NOT_A_NUMBER),
    ("-(5,000)", NOT_A_NUMBER),  # two minus signs
    ("(-5,000)", NOT_A_NUMBER),
    ("(△5,000)", NOT_A_NUMBER),
    ("--5,000", NOT_A_NUMBER),
    ("-￥-5,000", NOT_A_NUMBER),
    ("(5,000", NOT_A_NUMBER),
    ("5,000)", NOT_A_NUMBER),
    ("()", NOT_A_NUMBER),
    ("￥", NOT_A_NUMBER),
    ("円", NOT_A_NUMBER),
    ("\\", NOT_A_NUMBER),
    ("$100", NOT_A_NUMBER),
    ("100ドル", NOT_A_NUMBER),
    ("1,000千円", NOT_A_NUMBER),
    ("￥1,2345", BAD_SEPARATOR),
    ("(12,34)", BAD_SEPARATOR),
    ("12,34円", BAD_SEPARATOR),
    # A trailing minus marks the end of an amount on a Japanese receipt: never a negative.
    ("5,000-", TRAILING_MINUS),
    ("1-", TRAILING_MINUS),
    ("5000 -", TRAILING_MINUS),
    ("￥5,000-", TRAILING_MINUS),
    ("5,000円-", TRAILING_MINUS),
    ("５，０００－", TRAILING_MINUS),
    ("5,000△", TRAILING_MINUS),
    ("5--", NOT_A_NUMBER),
    # A lone dash: what Excel's accounting format shows for zero.
    ("-", LONE_DASH),
    ("△", LONE_DASH),
    ("￥-", LONE_DASH),
    ("¥ -", LONE_DASH),
    ("－", LONE_DASH),
    # Percent values and dates get their own messages.
    ("12%", PERCENT),
    ("12.5%", PERCENT),
    ("-3%", PERCENT),
    ("100 %", PERCENT),
    ("１２％", PERCENT),
    ("2024/5/1", DATE),
    ("2024/05/01", DATE),
    ("2024-05-01", DATE),
    ("5/1/2024", DATE),
    ("2024.5.1", DATE),
    ("5/1", DATE),
    ("5月1日", DATE),
    ("2024年5月1日", DATE),
    ("２０２４年５月１日", DATE),
    ("5月", DATE),
    ("1.2.3", NOT_A_NUMBER),  # not a year in front: no date
    ("3年", NOT_A_NUMBER),
]


@pytest.mark.parametrize(("cell", "value"), ACCEPTED)
def test_parse_value_accepts(cell: str, value: float) -> None:
    assert parse_value(cell) == value


def test_minus_zero_is_plain_zero() -> None:
    assert str(parse_value("-0")) == "0.0"


@pytest.mark.parametrize("cell", ["", " ", "\u3000", "\t"])
def test_parse_value_empty_is_no_value(cell: str) -> None:
    assert parse_value(cell) is None


@pytest.mark.parametrize(("cell", "message"), REJECTED)
def test_parse_value_rejects(cell: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_value(cell)
    assert str(caught.value) == message


@pytest.mark.parametrize(("cell", "value"), ACCEPTED)
def test_values_through_the_reader(cell: str, value: float) -> None:
    text = csv_text([["No.", "売上", "件数"], ["1", cell, "3"]])
    rows, errors = parse_all(text, columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    assert errors == []
    assert rows[0].values == {1: value, 3: 3.0}


@pytest.mark.parametrize(("cell", "message"), REJECTED)
def test_value_errors_through_the_reader(cell: str, message: str) -> None:
    text = csv_text([["No.", "件数", " 売上 "], ["1", "3", cell], ["2", "4", "5"]])
    rows, errors = parse_all(text, columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    assert [row.line for row in rows] == [3]  # the bad row is not yielded, the good one is
    assert [(error.line, error.column, error.value, error.message) for error in errors] == [
        (2, "売上", cell, message)
    ]


def test_empty_cells_are_absent_and_short_rows_are_padded() -> None:
    text = csv_text([["No.", "売上", "粗利", "件数", "備考"], ["1", "", "5", " "], ["2"], ["7", "1", "", "", ""]])
    rows, errors = parse_all(text, columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    assert errors == []
    assert [(row.member_id, row.values, row.note) for row in rows] == [
        (101, {2: 5.0}, None),
        (102, {}, None),
        (107, {1: 1.0}, None),
    ]


def test_every_bad_cell_of_a_row_is_reported() -> None:
    text = csv_text([["No.", "売上", "粗利", "件数"], ["999", "abc", "1,2", "1e5"]])
    _, errors = parse_all(text, columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    assert [(error.line, error.column, error.value) for error in errors] == [
        (2, "No.", "999"), (2, "売上", "abc"), (2, "粗利", "1,2"), (2, "件数", "1e5"),
    ]


# member_key -> the key column's header and the account's members by that key
KEYS = {"no": ("No.", MEMBERS_BY_NO), "employee_id": ("社員ID", MEMBERS_BY_EMPLOYEE_ID)}


@pytest.mark.parametrize(
    ("member_key", "cell", "member_id"),
    [("no", cell, member_id) for cell, member_id in
     [("1", 101), ("12", 112), ("007", 107), (" 2 ", 102), ("１２", 112), ("\u30007", 107), ("0012", 112)]]
    + [("employee_id", cell, member_id) for cell, member_id in
       [("E001", 201), (" E002 ", 202), ("007", 207), ("E001\u3000", 201)]],
)
def test_member_key_accepted(member_key: str, cell: str, member_id: int) -> None:
    header, members = KEYS[member_key]
    text = csv_text([[header, "売上"], [cell, "1"]])
    rows, errors = parse_all(text, columns=COLUMNS, member_key=member_key, members=members)
    assert errors == []
    assert rows[0].member_id == member_id


@pytest.mark.parametrize(
    ("member_key", "cell", "message"),
    [("no", cell, message) for cell, message in [
        ("3", "メンバー設定に存在しないNo.です"),
        ("9999", "メンバー設定に存在しないNo.です"),
        ("0", "1以上の整数"),
        ("000", "1以上の整数"),
        ("-1", "1以上の整数"),
        ("1.0", "1以上の整数"),
        ("1.5", "1以上の整数"),
        ("E001", "1以上の整数"),
        ("No.1", "1以上の整数"),
        ("1,000", "1以上の整数"),
        ("", "No.が空です"),
        ("\u3000", "No.が空です"),
    ]] + [("employee_id", cell, message) for cell, message in [
        ("7", "メンバー設定に存在しない社員IDです"),  # leading zeros matter: "7" is not "007"
        ("07", "メンバー設定に存在しない社員IDです"),
        ("e001", "メンバー設定に存在しない社員IDです"),
        ("Ｅ００１", "メンバー設定に存在しない社員IDです"),  # exact text, no NFKC
        ("E003", "メンバー設定に存在しない社員IDです"),
        ("", "社員IDが空です"),
        (" ", "社員IDが空です"),
    ]],
)
def test_member_key_errors(member_key: str, cell: str, message: str) -> None:
    header, members = KEYS[member_key]
    text = csv_text([[header, "売上"], [cell, "100"]])
    rows, errors = parse_all(text, columns=COLUMNS, member_key=member_key, members=members)
    assert rows == []
    assert [(error.line, error.column, error.value) for error in errors] == [(2, header, cell)]
    assert message in errors[0].message


def test_member_error_column_is_the_files_own_header() -> None:
    text = csv_text([["Ｎｏ．", "売上"], ["5", "100"]])
    _, errors = parse_all(text, columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    assert [(error.column, error.value) for error in errors] == [("Ｎｏ．", "5")]


@pytest.mark.parametrize(
    ("cell", "note"),
    [("A社 新規", "A社 新規"), ("  前後の空白  ", "前後の空白"), ("", None), ("\u3000", None),
     ("=1+2", "=1+2"), ("改行\r\nあり", "改行\r\nあり"), ("１２３", "１２３")],
)
def test_note_is_free_text(cell: str, note: str | None) -> None:
    text = csv_text([["No.", "売上", "備考"], ["1", "1", cell]])
    rows, errors = parse_all(text, columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    assert errors == []
    assert rows[0].note == note


@pytest.mark.parametrize("cell", ["①", "½", "Ⅱ", "㈱", "1²"])
def test_compatibility_characters_are_not_numbers(cell: str) -> None:
    # NFKC would turn these into digits; nobody types them to mean a number.
    with pytest.raises(ValueError):
        parse_value(cell)


def test_not_a_number_lists_the_accepted_forms() -> None:
    for form in ("1,234", "-100", "△100", "▲100", "(100)", "￥1,234", "1,234円", "全角"):
        assert form in NOT_A_NUMBER


@pytest.mark.parametrize("message", [TRAILING_MINUS, LONE_DASH, PERCENT, DATE])
def test_special_messages_say_what_to_write(message: str) -> None:
    assert "数値" in message or "マイナス" in message
    assert message == TRAILING_MINUS or "0" in message or "12" in message or "yyyymmdd" in message


def test_trailing_minus_message_explains_receipts_and_negatives() -> None:
    assert "末尾" in TRAILING_MINUS and "マイナスとして読みません" in TRAILING_MINUS
    assert "-5,000" in TRAILING_MINUS and "△5,000" in TRAILING_MINUS


def test_a_cp932_currency_file_reads_its_backslash_yen() -> None:
    from app.importer.encoding import decode

    data = "No.,売上,粗利\r\n1,\"\\1,200,000\",\"(5,000)\"\r\n2,\"￥980,000\",△5\r\n".encode("cp932")
    assert data.count(b"\\") == 1  # guards the fixture: cp932 writes the half-width yen as 0x5C
    text, _name = decode(data)
    rows, errors = parse_all(text, columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    assert errors == []
    assert [row.values for row in rows] == [{1: 1200000.0, 2: -5000.0}, {1: 980000.0, 2: -5.0}]


@pytest.mark.parametrize("cell", ["-" * 5000, "5" + "-" * 5000, "(" * 3000 + "5" + ")" * 3000])
def test_long_runs_of_marks_are_refused_without_recursion(cell: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_value(cell)
    assert str(caught.value) == NOT_A_NUMBER
