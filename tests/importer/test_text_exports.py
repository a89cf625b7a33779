"""Text exports LibreOffice wrote from one spreadsheet (tests/data/text, make_text_exports.py).

The spreadsheet's cells are numbers shown with ￥#,##0, △#,##0, #,##0"円", (#,##0) and ¥#,##0;
saved as shown, they reach the files as the text accountants see. Every export reads the same.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from app.importer.encoding import decode
from app.importer.layout import parse_all
from tests.fixtures.importer import COLUMNS

DATA = Path(__file__).resolve().parent.parent / "data" / "text"
MEMBERS = {"1": 1, "2": 2, "3": 3}
EXPECTED = [
    (2, 1, {1: 1200000.0, 2: -5000.0, 3: 3.0}, "髙﨑①㈱～№"),
    (3, 2, {1: 980000.0, 2: -12345.0}, "ｶﾌﾞｼｷｶﾞｲｼｬ 新規"),
    (4, 3, {1: 450000.0, 2: -7500.0, 3: 1234.0}, None),
    (5, 1, {1: -100.0, 2: 2500.0, 3: 0.0}, "タブ\t入り"),
]
EXPORTS = {
    "results-utf16.txt": "utf-16-le",  # Excel's 「Unicode テキスト」: UTF-16LE, BOM, tabs
    "results-utf8.txt": "utf-8",
    "results-cp932.txt": "cp932",  # 「テキスト(タブ区切り)」
    "results-cp932.csv": "cp932",  # 「CSV(コンマ区切り)」, for comparison
}


def read(data: bytes) -> tuple[str, list, list]:
    text, name = decode(data)
    rows, errors = parse_all(text, columns=COLUMNS, member_key="no", members=MEMBERS)
    return name, [(row.line, row.member_id, row.values, row.note) for row in rows], errors


@pytest.mark.parametrize("name", EXPORTS)
def test_each_libreoffice_export_reads_the_same(name: str) -> None:
    assert read((DATA / name).read_bytes()) == (EXPORTS[name], EXPECTED, [])


def test_the_exports_hold_the_forms_they_are_meant_to() -> None:
    # Guards the fixtures: the formatted text, not plain numbers, is what the files hold.
    utf16 = (DATA / "results-utf16.txt").read_bytes()
    assert utf16.startswith(b"\xff\xfeN\x00o\x00.\x00\t\x00")
    text = utf16.decode("utf-16")
    for form in ("￥1,200,000", "△5,000", "980,000円", "(12,345)", "¥450,000", "-￥7,500", "1,234"):
        assert form in text
    cp932 = (DATA / "results-cp932.txt").read_bytes()
    assert b"\t\\450,000\t" in cp932  # cp932 has the half-width yen sign as 0x5C: a backslash
    assert b"\t\x81\x8f1,200,000\t" in cp932  # and ￥ as 818F
    assert "髙﨑①" in cp932.decode("cp932")


@pytest.mark.slow
def test_the_script_makes_these_files(tmp_path) -> None:
    if shutil.which("soffice") is None:
        pytest.skip("soffice is not installed (Debian package libreoffice-calc-nogui)")
    spec = importlib.util.spec_from_file_location("make_text_exports", DATA / "make_text_exports.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    made = script.export("results-utf16.txt", tmp_path)
    assert read(made) == ("utf-16-le", EXPECTED, [])
