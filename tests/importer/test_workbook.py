"""Workbooks (.xlsx/.xls/.ods made by LibreOffice, tests/data/workbooks/make.py) read into the same rows as the CSV."""
from __future__ import annotations

import io
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from app.errors import ImportRejected, RowError
from app.importer.layout import parse_all
from app.importer.records import RecordReader
from app.importer.workbook import NO_CACHED_VALUE_MESSAGE, sheet_records
from tests.data.workbooks import make

DATA = Path(make.__file__).parent
COLUMNS = {"売上": 1, "粗利": 2, "件数": 3}
MEMBERS = {"1": 10, "2": 20, "3": 30}
WORKBOOKS = ["20180516.xlsx", "20180516.xls", "20180516.ods"]


def read(data: bytes, sheet: str = "", member_key: str = "no", members=None):
    reader = RecordReader(sheet_records(data, sheet), columns=COLUMNS, member_key=member_key,
                          members=members or MEMBERS)
    return list(reader.rows()), reader.errors


def csv_rows():
    rows, errors = parse_all(make.results_csv().decode("cp932"), columns=COLUMNS, member_key="no", members=MEMBERS)
    assert not errors
    return rows


@pytest.mark.parametrize("name", WORKBOOKS)
def test_each_producer_format_gives_the_rows_of_the_csv(name):
    rows, errors = read((DATA / name).read_bytes())
    assert not errors
    assert rows == csv_rows()
    assert rows[0].note == "髙 ① ～ ㈱ 﨑 № ｶﾅ" and rows[0].values == {1: 1200000.0, 2: -5000.0, 3: 2.0}
    assert rows[1].values == {1: 980000.0, 3: 3.0}  # the empty cell is absent; D3 is a formula (=D2+1)
    assert rows[2].values[1] == 2180000.0  # a formula's cached value


def test_the_committed_csv_is_what_make_writes():
    assert (DATA / "results.csv").read_bytes() == make.results_csv()


def test_a_date_cell_and_an_error_cell_are_cell_errors_with_row_and_column_letter():
    rows, errors = read((DATA / "errors.xlsx").read_bytes())
    assert rows == []
    assert [e.as_text() for e in errors] == [
        "2行目 B列(売上) 値「2018-05-16」: 日付のセルです。数値を入力してください",
        "3行目 C列(粗利) 値「#DIV/0!」: エラーのセルです(#DIV/0!)。数値を入力してください",
    ]
    assert errors[0].letter == "B" and errors[0].column == "売上"


def _without_cached_values(data: bytes) -> bytes:
    """The xlsx with the <v> of every formula cell removed (as a generator that never calculates writes it)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename.startswith("xl/worksheets/sheet1"):
                content, dropped = re.subn(rb"(</f>)<v>[^<]*</v>", rb"\1", content)
                assert dropped == 2
            target.writestr(info, content)
    return out.getvalue()


def test_a_formula_without_a_cached_value_refuses_the_file():
    data = _without_cached_values((DATA / "20180516.xlsx").read_bytes())
    with pytest.raises(ImportRejected) as caught:
        read(data)
    (error,) = caught.value.errors
    assert NO_CACHED_VALUE_MESSAGE in error.message and "Excelで開いて保存し直して" in error.message
    assert error.as_text().startswith("3行目 D列: ")  # D3 (=D2+1) is the first formula


def test_the_named_sheet_is_read_and_a_missing_one_names_the_sheets():
    rows, errors = read((DATA / "20180516.xlsx").read_bytes(), sheet="別シート")
    assert not errors and [(r.member_id, r.values) for r in rows] == [(10, {1: 7.0})]
    rows, _ = read((DATA / "20180516.ods").read_bytes(), sheet="別シート")
    assert [(r.member_id, r.values) for r in rows] == [(10, {1: 7.0})]
    with pytest.raises(ImportRejected) as caught:
        read((DATA / "20180516.xlsx").read_bytes(), sheet="6月")
    message = caught.value.errors[0].message
    assert "シート「6月」がファイルにありません" in message and "「売上」、「別シート」" in message


@pytest.mark.parametrize("data", [b"PK\x03\x04 not a zip", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600,
                                  "No.,売上\r\n1,2\r\n".encode("cp932"), b""])
def test_a_corrupt_workbook_is_refused_in_japanese(data):
    with pytest.raises(ImportRejected) as caught:
        read(data)
    assert "表計算ファイル" in caught.value.errors[0].message


def test_an_encrypted_office_file_says_password():
    fake = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100 + "EncryptionInfo".encode("utf-16-le") + b"\0" * 400
    with pytest.raises(ImportRejected) as caught:
        read(fake)
    assert "パスワードで保護されている" in caught.value.errors[0].message


def test_member_keys_typed_as_numbers_and_header_errors_name_letters():
    data = (DATA / "20180516.xlsx").read_bytes()
    records = iter([(1, ["社員ID", "売上"]), (2, [1001.0, 5.0]), (3, ["E7", "△1,000"]), (4, [12.5, 1.0])])
    reader = RecordReader(records, columns={"売上": 1}, member_key="employee_id", members={"1001": 10, "E7": 70})
    rows = list(reader.rows())
    assert [(r.member_id, r.values) for r in rows] == [(10, {1: 5.0}), (70, {1: -1000.0})]  # 1001.0 is "1001"
    assert [e.as_text() for e in reader.errors] == [
        "4行目 A列(社員ID) 値「12.5」: メンバー設定に存在しない社員IDです(無効なメンバーを含む)"]
    reader = RecordReader(sheet_records(data), columns={"売上": 1}, member_key="no", members=MEMBERS)
    list(reader.rows())
    assert {(e.letter, e.column) for e in reader.errors} == {("C", "粗利"), ("D", "件数")}
    assert reader.errors[0].as_text().startswith("1行目 C列(粗利): ")


def test_csv_errors_have_no_letter():
    _, errors = parse_all("No.,売上\r\n1,abc\r\n", columns={"売上": 1}, member_key="no", members=MEMBERS)
    assert errors[0].letter is None and errors[0].as_text().startswith("2行目 列「売上」")
    assert RowError("x", line=5, column="売上", letter="C").as_text() == "5行目 C列(売上): x"


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed")
def test_the_workbooks_regenerated_with_soffice_read_the_same(tmp_path):
    made = make.make(tmp_path)
    assert sorted(path.name for path in made) == sorted([*WORKBOOKS, "errors.xlsx"])
    for name in WORKBOOKS:
        rows, errors = read((tmp_path / name).read_bytes())
        assert not errors and rows == csv_rows(), name
    _, errors = read((tmp_path / "errors.xlsx").read_bytes())
    assert [e.letter for e in errors] == ["B", "C"]
