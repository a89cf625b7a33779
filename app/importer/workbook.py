"""Results workbooks (.xlsx, .xlsm, .xls, .ods) as records of typed cells (docs/spec.md section 2, "Workbooks").

python-calamine reads all four formats. One sheet is read: the first, or the one named by the
account's 「読み込むシート」. Each non-blank row becomes (row number, cells) for
records.RecordReader, which applies the CSV header, member-key and value rules:

- a number cell is a float as stored (an .xls integer cell too), a text cell is str;
- a date, time, boolean or error cell is a records.BadCell (a cell error in a value column);
- a formula contributes its cached value. calamine returns "" both for an error cell and for a
  formula saved without a value, so for .xlsx/.xlsm the sheet's XML is scanned as well (only
  when it contains a formula or an error cell at all): an error cell becomes a BadCell naming
  its error (#DIV/0!), a formula without a cached value refuses the file. For .xls and .ods
  there is no such scan: an error cell or an uncalculated formula reads as an empty cell.

Cost: calamine loads the whole sheet into memory (its own cells, a few tens of bytes each) and
hands rows out one at a time; the upload size cap bounds the workbook, so the sheet too.
"""
from __future__ import annotations

import datetime as dt
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from xml.etree import ElementTree

from app.errors import ImportRejected, RowError
from app.importer.records import BadCell, column_letter

UNREADABLE_MESSAGE = (
    "ファイルを表計算ファイル(.xlsx / .xlsm / .xls / .ods)として読み取れません。"
    "ファイルが壊れているか、中身が拡張子と違う形式です。Excelで開いて保存し直してから送ってください。"
)
PASSWORD_MESSAGE = (
    "ファイルがパスワードで保護されているため読み取れません。"
    "パスワードを解除して保存し直してから送ってください。"
)
NO_CACHED_VALUE_MESSAGE = (
    "数式の計算結果が保存されていません。Excelで開いて保存し直してから送ってください。"
)
NO_SHEET_MESSAGE = "ファイルにシートがありません。"
DATE_CELL = "日付のセルです"
TIME_CELL = "時刻のセルです"
BOOL_CELL = "TRUE/FALSE(論理値)のセルです"
ERROR_CELL = "エラーのセルです"

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # an OLE file: .xls, or an encrypted .xlsx
# Whether a sheet part has a formula (<f>) or an error cell (t="e") at all; prefixes allowed.
_FORMULA_OR_ERROR = re.compile(rb"<(?:[A-Za-z0-9_]+:)?f[\s>/]|\bt=[\"']e[\"']")
_CELL_REF = re.compile(r"([A-Z]+)(\d+)")


def sheet_records(data: bytes, sheet_name: str = "") -> Iterator[tuple[int, list]]:
    """Open the workbook and return its records, (row number, cells from column A), blank rows left out.

    Raises ImportRejected for an unreadable or protected workbook, a missing sheet or a formula
    without a cached value; all of these are found before the first record is returned.
    """
    import python_calamine  # loaded by the first workbook, not by every process that imports the importer

    try:
        book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except python_calamine.PasswordError:
        raise _rejected(PASSWORD_MESSAGE) from None
    except Exception:  # calamine raises several kinds (zip, XML, CFB, its own) for a damaged file
        raise _rejected(PASSWORD_MESSAGE if _encrypted(data) else UNREADABLE_MESSAGE) from None
    try:
        names = list(book.sheet_names)
        name = pick_sheet(names, sheet_name)
        sheet = book.get_sheet_by_name(name)
        start_row, start_column = sheet.start or (0, 0)
        rows = sheet.iter_rows()
    except ImportRejected:
        raise
    except Exception:
        raise _rejected(UNREADABLE_MESSAGE) from None
    errors = _xlsx_cell_errors(data, name)
    return _records(rows, start_row, start_column, errors)


def pick_sheet(names: list[str], wanted: str) -> str:
    """The sheet to read: the first one, or `wanted` (exactly, else compared after NFKC and case folding)."""
    if not names:
        raise _rejected(NO_SHEET_MESSAGE)
    wanted = (wanted or "").strip()
    if not wanted:
        return names[0]
    if wanted in names:
        return wanted
    folded = _fold(wanted)
    for name in names:
        if _fold(name) == folded:
            return name
    listed = "、".join(f"「{name}」" for name in names)
    raise _rejected(f"外部連携設定の「読み込むシート」のシート「{wanted}」がファイルにありません"
                    f"(このファイルのシート: {listed})。シート名か設定を直してください。")


def _fold(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().casefold()


def _rejected(message: str) -> ImportRejected:
    return ImportRejected([RowError(message=message)])


def _records(rows: Iterator[list], start_row: int, start_column: int,
             errors: dict[tuple[int, int], str]) -> Iterator[tuple[int, list]]:
    """Convert calamine's rows to records: row numbers as the sheet shows them, cells from column A."""
    lead = [""] * start_column
    for offset, row in enumerate(rows):
        row_index = start_row + offset
        cells = lead + row if start_column else row
        blank = True
        for index, cell in enumerate(cells):
            kind = type(cell)
            if kind is float:
                blank = False
            elif kind is str:
                if cell:
                    if blank and cell.strip():
                        blank = False
                elif errors and (row_index, index) in errors:
                    cells[index] = BadCell(f"{ERROR_CELL}({errors[row_index, index]})", errors[row_index, index])
                    blank = False
            else:
                cells[index] = _typed(cell)
                blank = False
        if not blank:
            yield row_index + 1, cells


def _typed(cell: object) -> float | BadCell:
    """A cell that is neither float nor str: an .xls integer becomes a float, the rest BadCells."""
    if isinstance(cell, bool):
        return BadCell(BOOL_CELL, "TRUE" if cell else "FALSE")
    if isinstance(cell, int):
        return float(cell)
    if isinstance(cell, dt.datetime):
        return BadCell(DATE_CELL, cell.isoformat(sep=" "))
    if isinstance(cell, dt.date):
        return BadCell(DATE_CELL, cell.isoformat())
    if isinstance(cell, (dt.time, dt.timedelta)):
        return BadCell(TIME_CELL, str(cell))
    return BadCell(ERROR_CELL, str(cell))


# ---------------------------------------------------------------------------- the sheet XML of .xlsx/.xlsm


def _encrypted(data: bytes) -> bool:
    """True for an encrypted Office file (an OLE file with EncryptionInfo) or an encrypted .ods."""
    if data.startswith(_CFB_MAGIC):
        return "EncryptionInfo".encode("utf-16-le") in data
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return b"encryption-data" in archive.read("META-INF/manifest.xml")
    except Exception:
        return False


def _xlsx_cell_errors(data: bytes, sheet_name: str) -> dict[tuple[int, int], str]:
    """For an .xlsx/.xlsm: {(row, column) 0-based: error text} of the sheet's error cells.

    Raises ImportRejected when a formula has no cached value. Anything else (an .xls, an .ods)
    gives {}.
    """
    if not data.startswith(b"PK"):
        return {}
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        part = _sheet_part(archive, sheet_name)
    except Exception:
        return {}  # not an Office Open XML package (an .ods): calamine has read it already
    if part is None or not _has_formula_or_error(archive, part):
        return {}
    try:
        with archive.open(part) as stream:
            return _scan(stream)
    except ImportRejected:
        raise
    except Exception:
        raise _rejected(UNREADABLE_MESSAGE) from None


def _sheet_part(archive: zipfile.ZipFile, sheet_name: str) -> str | None:
    """The zip member holding the named sheet, from xl/workbook.xml and its relationships."""
    workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    target_id = None
    for sheet in workbook.iter(f"{{{_MAIN}}}sheet"):
        if sheet.get("name") == sheet_name:
            target_id = sheet.get(f"{{{_RELS}}}id")
            break
    if target_id is None:
        return None
    rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    for rel in rels.iter(f"{{{_PACKAGE_RELS}}}Relationship"):
        if rel.get("Id") == target_id:
            target = rel.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return None


def _has_formula_or_error(archive: zipfile.ZipFile, part: str) -> bool:
    """Read the part in chunks and look for <f> or t="e" without parsing it (most sheets have neither)."""
    tail = b""
    with archive.open(part) as stream:
        while chunk := stream.read(1 << 20):
            if _FORMULA_OR_ERROR.search(tail + chunk):
                return True
            tail = chunk[-32:]
    return False


def _scan(stream) -> dict[tuple[int, int], str]:
    """Stream-parse a sheet part: collect error cells, refuse the first formula without a value."""
    errors: dict[tuple[int, int], str] = {}
    row_index, column_index = -1, -1
    cell = f"{{{_MAIN}}}c"
    row_tag = f"{{{_MAIN}}}row"
    formula, value_tag = f"{{{_MAIN}}}f", f"{{{_MAIN}}}v"
    for event, element in ElementTree.iterparse(stream, events=("start", "end")):
        tag = element.tag
        if event == "start":
            if tag == row_tag:
                row_index = int(element.get("r")) - 1 if element.get("r") else row_index + 1
                column_index = -1
            elif tag == cell:
                ref = element.get("r")
                match = _CELL_REF.fullmatch(ref or "")
                column_index = _column_index(match.group(1)) if match else column_index + 1
            continue
        if tag == cell:
            has_formula = element.find(formula) is not None
            value = element.find(value_tag)
            if element.get("t") == "e":
                errors[row_index, column_index] = (value.text or "#エラー") if value is not None else "#エラー"
            elif has_formula and value is None and element.get("t") != "inlineStr":
                where = f"{column_letter(column_index)}{row_index + 1}"
                raise ImportRejected([RowError(message=f"{NO_CACHED_VALUE_MESSAGE}(セル {where})",
                                               line=row_index + 1, letter=column_letter(column_index))])
            element.clear()
        elif tag == row_tag:
            element.clear()
    return errors


def _column_index(letters: str) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - 64
    return index - 1
