"""File names and query periods (docs/spec.md section 2, "Names")."""
from __future__ import annotations

import datetime

import pytest

from app.errors import ImportRejected, Invalid
from app.importer.filename import Period, parse_filename, parse_period


@pytest.mark.parametrize(
    ("name", "kind", "date", "base", "key", "label"),
    [
        ("20180516.csv", "day", datetime.date(2018, 5, 16), "20180516.csv", "20180516", "2018年5月16日"),
        ("20180500.csv", "month", datetime.date(2018, 5, 1), "20180500.csv", "201805", "2018年5月"),
        ("20181231.csv", "day", datetime.date(2018, 12, 31), "20181231.csv", "20181231", "2018年12月31日"),
        ("20240229.csv", "day", datetime.date(2024, 2, 29), "20240229.csv", "20240229", "2024年2月29日"),
        ("20181200.csv", "month", datetime.date(2018, 12, 1), "20181200.csv", "201812", "2018年12月"),
        ("20180516.CSV", "day", datetime.date(2018, 5, 16), "20180516.CSV", "20180516", "2018年5月16日"),
        ("20180500.Csv", "month", datetime.date(2018, 5, 1), "20180500.Csv", "201805", "2018年5月"),
        ("upload/2018/20180516.csv", "day", datetime.date(2018, 5, 16), "20180516.csv", "20180516", "2018年5月16日"),
        ("/home/ftp/acme/20180500.csv", "month", datetime.date(2018, 5, 1), "20180500.csv", "201805", "2018年5月"),
        ("C:\\Users\\taro\\Desktop\\20180516.csv", "day", datetime.date(2018, 5, 16), "20180516.csv", "20180516",
         "2018年5月16日"),
        ("..\\dir/mixed\\20180516.csv", "day", datetime.date(2018, 5, 16), "20180516.csv", "20180516", "2018年5月16日"),
    ],
)
def test_accepted_names(name: str, kind: str, date: datetime.date, base: str, key: str, label: str) -> None:
    period = parse_filename(name)
    assert period == Period(kind, date, base)
    assert (period.key, period.label) == (key, label)


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("20180230.csv", "20180230.csv"),  # 30 February
        ("20190229.csv", "20190229.csv"),  # not a leap year
        ("20180532.csv", "20180532.csv"),
        ("20181300.csv", "20181300.csv"),  # month 13
        ("20180000.csv", "20180000.csv"),  # month 00
        ("20181301.csv", "20181301.csv"),
        ("00000101.csv", "00000101.csv"),  # year 0
        ("2018051.csv", "2018051.csv"),  # 7 digits
        ("201805160.csv", "201805160.csv"),  # 9 digits
        ("201805.csv", "201805.csv"),  # the query form is not a file name
        ("2018-05-16.csv", "2018-05-16.csv"),
        ("abcdefgh.csv", "abcdefgh.csv"),
        ("2018051a.csv", "2018051a.csv"),
        ("２０１８０５１６.csv", "２０１８０５１６.csv"),  # full-width digits
        ("20180516.txt", "20180516.txt"),  # wrong extension
        ("20180516.xlsb", "20180516.xlsb"),  # a workbook format that is not read
        ("20180516.xlsx.txt", "20180516.xlsx.txt"),
        ("20180516.csv.txt", "20180516.csv.txt"),
        ("20180516", "20180516"),  # no extension
        ("20180516csv", "20180516csv"),
        (" 20180516.csv", " 20180516.csv"),
        ("20180516 .csv", "20180516 .csv"),
        ("売上20180516.csv", "売上20180516.csv"),
        ("dir/sub\\2018-05.csv", "2018-05.csv"),
        (".csv", ".csv"),
        ("", ""),
        ("dir/", ""),
    ],
)
def test_rejected_names_show_both_forms(name: str, base: str) -> None:
    with pytest.raises(ImportRejected) as caught:
        parse_filename(name)
    (error,) = caught.value.errors
    assert error.value == base
    assert "yyyymmdd.csv" in error.message and "20180516.csv" in error.message
    assert "yyyymm00.csv" in error.message and "20180500.csv" in error.message
    assert error.message in caught.value.message


@pytest.mark.parametrize(
    ("text", "kind", "date", "key", "label"),
    [
        ("20180516", "day", datetime.date(2018, 5, 16), "20180516", "2018年5月16日"),
        ("201805", "month", datetime.date(2018, 5, 1), "201805", "2018年5月"),
        (" 201812 ", "month", datetime.date(2018, 12, 1), "201812", "2018年12月"),
        ("20180500", "month", datetime.date(2018, 5, 1), "201805", "2018年5月"),
    ],
)
def test_parse_period(text: str, kind: str, date: datetime.date, key: str, label: str) -> None:
    period = parse_period(text)
    assert (period.kind, period.date, period.key, period.label) == (kind, date, key, label)
    # The name is the file name that would carry this period, so queries meet imports.
    assert parse_filename(period.name) == period


@pytest.mark.parametrize("text", ["", "2018", "201813", "201800", "20180230", "2018-05", "2018051", "abcdef",
                                  "１２３４５６", "20180516.csv"])
def test_parse_period_rejects(text: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_period(text)
    assert caught.value.field == "period"
    assert "20180516" in caught.value.message and "201805" in caught.value.message


def test_period_is_hashable_and_frozen() -> None:
    period = parse_filename("20180516.csv")
    assert {period: 1}[parse_filename("20180516.csv")] == 1
    with pytest.raises(AttributeError):
        period.kind = "month"  # type: ignore[misc]


def test_the_period_key_is_the_names_digits_for_years_before_1000():
    # glibc's strftime writes year 1 as "1": the key must still be the file's own eight digits.
    assert parse_filename("00010101.csv").key == "00010101"
    assert parse_filename("09990500.csv").key == "099905"


def test_period_key_of_a_stored_period_matches_the_file_name():
    from app.importer.filename import period_key
    assert period_key("day", parse_filename("00010101.csv").date) == "00010101"
    assert period_key("month", parse_filename("20180500.csv").date) == "201805"


@pytest.mark.parametrize("name", ["20180516.xlsx", "20180516.XLSM", "20180516.xls", "20180516.ods", "20180500.xlsx"])
def test_workbook_endings_are_accepted_names(name: str) -> None:
    from app.importer.filename import is_accepted, is_workbook
    period = parse_filename(name)
    assert period.key == ("201805" if name.startswith("20180500") else "20180516")
    assert is_accepted(name) and is_workbook(name)


def test_the_name_message_lists_every_accepted_ending() -> None:
    from app.importer.filename import ACCEPTED_ENDINGS, FILENAME_MESSAGE
    assert all(ending in FILENAME_MESSAGE for ending in ACCEPTED_ENDINGS)
    assert ACCEPTED_ENDINGS == (".csv", ".xlsx", ".xlsm", ".xls", ".ods")
