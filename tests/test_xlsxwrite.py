"""The minimal .xlsx writer: what it writes, python-calamine and the importer's workbook reader read back."""
from __future__ import annotations

import io
import zipfile

import python_calamine

from app.importer.workbook import sheet_records
from app.importer.xlsxwrite import write_xlsx


def _read(data: bytes) -> list[list]:
    return python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0).to_python()


def test_text_is_escaped_and_kept_as_written():
    data = write_xlsx([["a<b>&\"c'", "  spaced  ", "改行\nあり", "制御\x01文字"], [1, 2.5, -3, 1e20]])
    assert _read(data) == [["a<b>&\"c'", "  spaced  ", "改行\nあり", "制御文字"], [1.0, 2.5, -3.0, 1e20]]


def test_empty_cells_are_left_out_and_columns_stay_in_place():
    data = write_xlsx([["No.", None, "備考"], [1, "", "x"]])
    assert _read(data) == [["No.", "", "備考"], [1.0, "", "x"]]
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
    assert '<c r="C2" t="inlineStr">' in sheet and 'r="B2"' not in sheet


def test_the_sheet_name_is_cleaned_and_read_by_the_importer():
    data = write_xlsx([["No.", "売上"], [1, 5]], sheet_name="実績[5/16]")
    assert python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data)).sheet_names == ["実績516"]
    assert list(sheet_records(data, "実績516")) == [(1, ["No.", "売上"]), (2, [1.0, 5.0])]
