"""Make the workbooks of tests/data/workbooks/ with a real producer: LibreOffice headless.

One spreadsheet, written here as flat OpenDocument XML (.fods) with the number formats Japanese
offices use (#,##0, #,##0;"△"#,##0, ￥#,##0), an empty cell, formulas and 備考 notes with
髙 ① ～ ㈱ 﨑 № ｶﾅ, is converted by `soffice --headless --convert-to` into 20180516.xlsx, .xls
and .ods; a second one (errors.fods) has a date cell and a =1/0 cell (#DIV/0!). The same data
as CSV is results.csv (cp932), written here too. Run: python tests/data/workbooks/make.py [DIR]
(tests/importer/test_workbook.py runs it into a temporary folder when soffice is installed).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTE = "髙 ① ～ ㈱ 﨑 № ｶﾅ"
# The CSV equivalent of the first sheet of 20180516.fods (what the workbooks must store).
CSV_ROWS = [
    ["No.", "売上", "粗利", "件数", "備考"],
    ["1", "1,200,000", "△5,000", "2", NOTE],
    ["2", "980,000", "", "3", "ｶﾅ"],
    ["3", "2,180,000", "0", "1", ""],
]

_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 xmlns:number="urn:oasis:names:tc:opendocument:xmlns:datastyle:1.0"
 xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0"
 xmlns:of="urn:oasis:names:tc:opendocument:xmlns:of:1.2"
 office:version="1.2" office:mimetype="application/vnd.oasis.opendocument.spreadsheet">
<office:styles>
 <number:number-style style:name="N1"><number:number number:decimal-places="0" number:min-integer-digits="1" number:grouping="true"/></number:number-style>
 <number:number-style style:name="N2N"><number:text>△</number:text><number:number number:decimal-places="0" number:min-integer-digits="1" number:grouping="true"/></number:number-style>
 <number:number-style style:name="N2"><number:number number:decimal-places="0" number:min-integer-digits="1" number:grouping="true"/><style:map style:condition="value()&lt;0" style:apply-style-name="N2N"/></number:number-style>
 <number:currency-style style:name="N3"><number:currency-symbol number:language="ja" number:country="JP">￥</number:currency-symbol><number:number number:decimal-places="0" number:min-integer-digits="1" number:grouping="true"/></number:currency-style>
 <number:date-style style:name="D1"><number:year number:style="long"/><number:text>/</number:text><number:month number:style="long"/><number:text>/</number:text><number:day number:style="long"/></number:date-style>
 <style:style style:name="comma" style:family="table-cell" style:data-style-name="N1"/>
 <style:style style:name="triangle" style:family="table-cell" style:data-style-name="N2"/>
 <style:style style:name="yen" style:family="table-cell" style:data-style-name="N3"/>
 <style:style style:name="date" style:family="table-cell" style:data-style-name="D1"/>
</office:styles>
<office:body><office:spreadsheet>
"""
_TAIL = "</office:spreadsheet></office:body></office:document>\n"


def _text(value: str) -> str:
    return f'<table:table-cell office:value-type="string"><text:p>{value}</text:p></table:table-cell>'


def _number(value: float, style: str = "", formula: str = "") -> str:
    styled = f' table:style-name="{style}"' if style else ""
    formula = f' table:formula="of:={formula}"' if formula else ""
    return f'<table:table-cell{styled}{formula} office:value-type="float" office:value="{value:g}"/>'


def _yen(value: float) -> str:
    return (f'<table:table-cell table:style-name="yen" office:value-type="currency" office:currency="JPY" '
            f'office:value="{value:g}"/>')


_EMPTY = "<table:table-cell/>"


def _table(name: str, rows: list[list[str]]) -> str:
    body = "".join(f"<table:table-row>{''.join(row)}</table:table-row>\n" for row in rows)
    return f'<table:table table:name="{name}">\n{body}</table:table>\n'


def results_fods() -> str:
    """The results spreadsheet: sheet 売上 (the data) and sheet 別シート (other values, for 読み込むシート)."""
    header = [_text(name) for name in CSV_ROWS[0]]
    first = _table("売上", [
        header,
        [_number(1), _yen(1200000), _number(-5000, "triangle"), _number(2, "comma"), _text(NOTE)],
        [_number(2), _number(980000, "comma"), _EMPTY, _number(3, "comma", "[.D2]+1"), _text("ｶﾅ")],
        [_number(3), _number(2180000, "comma", "[.B2]+[.B3]"), _number(0, "triangle"), _number(1), _EMPTY],
    ])
    other = _table("別シート", [header, [_number(1), _number(7), _EMPTY, _EMPTY, _EMPTY]])
    return _HEAD + first + other + _TAIL


def errors_fods() -> str:
    """A date cell in 売上 (B2) and a =1/0 cell in 粗利 (C3)."""
    header = [_text(name) for name in CSV_ROWS[0]]
    date = '<table:table-cell table:style-name="date" office:value-type="date" office:date-value="2018-05-16"/>'
    error = '<table:table-cell table:formula="of:=1/0" office:value-type="float" office:value="0"/>'
    return _HEAD + _table("売上", [
        header,
        [_number(1), date, _number(1), _number(1), _EMPTY],
        [_number(2), _number(5), error, _number(1), _EMPTY],
    ]) + _TAIL


def results_csv() -> bytes:
    """The CSV equivalent (cp932, CRLF, as Excel saves it)."""
    def quoted(cell: str) -> str:
        return f'"{cell}"' if "," in cell else cell
    return "".join(",".join(quoted(cell) for cell in row) + "\r\n" for row in CSV_ROWS).encode("cp932")


def convert(fods: Path, ending: str, out: Path) -> Path:
    """Convert with LibreOffice headless (a private profile, so runs in parallel do not collide)."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            ["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", ending,
             "--outdir", str(out), str(fods)],
            check=True, capture_output=True, timeout=120,
        )
    made = out / f"{fods.stem}.{ending}"
    if not made.exists():
        raise RuntimeError(f"soffice did not write {made}")
    return made


def make(out: Path) -> list[Path]:
    """Write every file into `out`; return the workbooks made."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        sources = {"20180516": results_fods(), "errors": errors_fods()}
        made = []
        for stem, text in sources.items():
            fods = Path(work) / f"{stem}.fods"
            fods.write_text(text, encoding="utf-8")
            endings = ("xlsx", "xls", "ods") if stem == "20180516" else ("xlsx",)
            made += [convert(fods, ending, out) for ending in endings]
    (out / "results.csv").write_bytes(results_csv())
    return made


if __name__ == "__main__":
    if shutil.which("soffice") is None:
        sys.exit("soffice (Debian libreoffice-calc-nogui) is needed")
    for path in make(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
