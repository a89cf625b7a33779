"""A minimal one-sheet .xlsx writer (inline strings and numbers only); pure.

openpyxl is not a dependency and python-calamine only reads, so the few parts a spreadsheet
program needs are written as XML text into a zip: [Content_Types].xml, the package and workbook
relationships, xl/workbook.xml and xl/worksheets/sheet1.xml. Text cells are inline strings
(t="inlineStr"), so no shared-strings part is needed; numbers are plain <v> cells.
"""
from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable
from xml.sax.saxutils import escape, quoteattr

from app.importer.records import column_letter

# Characters XML 1.0 cannot hold at all (a control character in a column name or 備考).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

_CONTENT_TYPES = (
    _HEAD + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    _HEAD + f'<Relationships xmlns="{_PKG_RELS}">'
    f'<Relationship Id="rId1" Type="{_DOC_RELS}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK_RELS = (
    _HEAD + f'<Relationships xmlns="{_PKG_RELS}">'
    f'<Relationship Id="rId1" Type="{_DOC_RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
    "</Relationships>"
)

Cell = str | int | float | None


def _text(value: str) -> str:
    return escape(_NOT_XML.sub("", value))


def _cell(ref: str, value: Cell) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # xml:space keeps leading and trailing spaces of a text cell.
        return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{_text(str(value))}</t></is></c>'
    return f'<c r="{ref}"><v>{value!r}</v></c>'


def _sheet(rows: Iterable[Iterable[Cell]]) -> str:
    parts = [_HEAD, f'<worksheet xmlns="{_MAIN}"><sheetData>']
    for row_number, row in enumerate(rows, start=1):
        cells = "".join(_cell(f"{column_letter(index)}{row_number}", value) for index, value in enumerate(row))
        parts.append(f'<row r="{row_number}">{cells}</row>')
    parts.append("</sheetData></worksheet>")
    return "".join(parts)


def _workbook(sheet_name: str) -> str:
    # A sheet name holds at most 31 characters and none of : \ / ? * [ ].
    name = re.sub(r"[:\\/?*\[\]]", "", _NOT_XML.sub("", sheet_name))[:31] or "Sheet1"
    return (_HEAD + f'<workbook xmlns="{_MAIN}" xmlns:r="{_DOC_RELS}"><sheets>'
            f'<sheet name={quoteattr(name)} sheetId="1" r:id="rId1"/></sheets></workbook>')


def write_xlsx(rows: Iterable[Iterable[Cell]], sheet_name: str = "Sheet1") -> bytes:
    """Return the bytes of an .xlsx workbook whose one sheet holds `rows` from cell A1."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _ROOT_RELS)
        archive.writestr("xl/workbook.xml", _workbook(sheet_name))
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        archive.writestr("xl/worksheets/sheet1.xml", _sheet(rows))
    return buffer.getvalue()
