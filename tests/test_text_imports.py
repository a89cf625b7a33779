"""Text exports and accountants' value forms through the real import path (issue 15).

`flask import-csv` and every channel's receive → worker run: tab-separated text and UTF-16
(Excel's 「Unicode テキスト」) as LibreOffice, iconv and nkf write them, currency and
accounting values, and the refusals (semicolons, a pinned encoding, a broken UTF-16 file) with
the old data kept.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.importer.layout import SEMICOLON_SEPARATOR
from app.importer.values import TRAILING_MINUS
from app.models import Import
from tests.fixtures.encodings import produce
from tests.fixtures.ingest import csv_file, import_file, ingest_options, stored, write_file

DATA = Path(__file__).resolve().parent / "data" / "text"
# What tests/data/text/results.fods holds, as stored: (No., values, note).
LIBREOFFICE_ROWS = [
    (1, {"売上": 1200000, "粗利": -5000, "件数": 3}, "髙﨑①㈱～№"),
    (2, {"売上": 980000, "粗利": -12345}, "ｶﾌﾞｼｷｶﾞｲｼｬ 新規"),
    (3, {"売上": 450000, "粗利": -7500, "件数": 1234}, None),
    (1, {"売上": -100, "粗利": 2500, "件数": 0}, "タブ\t入り"),
]
LIBREOFFICE_FILES = {"results-utf16.txt": "utf-16-le", "results-utf8.txt": "utf-8",
                     "results-cp932.txt": "cp932", "results-cp932.csv": "cp932"}
TSV = ("No.\t売上\t粗利\t件数\t備考\r\n"
       "1\t￥1,200,000\t△5,000\t3\t髙﨑①㈱～№\r\n"
       '2\t"1,200円"\t(12,345)\t\t"A社, ""新規""\r\n二行目"\r\n'
       "3\t－￥５，０００\t（５，０００）\t１２\t\r\n")
TSV_ROWS = [
    (1, {"売上": 1200000, "粗利": -5000, "件数": 3}, "髙﨑①㈱～№"),
    (2, {"売上": 1200, "粗利": -12345}, 'A社, "新規"\r\n二行目'),
    (3, {"売上": -5000, "粗利": -5000, "件数": 12}, None),
]


def rows_of(acc) -> list[tuple]:
    return [(no, values, note) for no, values, note, _import_id in stored(acc)]


@pytest.mark.parametrize("name", LIBREOFFICE_FILES)
def test_libreoffice_text_exports_import_with_the_same_values(cli, app, make_account, tmp_path, name):
    acc = make_account("acme", **ingest_options())
    path = write_file(tmp_path, "20180516.csv", (DATA / name).read_bytes())

    result = cli("import-csv", "acme", path)

    assert result.exit_code == 0, result.output
    assert "成功" in result.stdout and "4行" in result.stdout
    assert rows_of(acc) == LIBREOFFICE_ROWS
    assert db.session.scalars(select(Import)).one().encoding == LIBREOFFICE_FILES[name]


@pytest.mark.parametrize(
    ("command", "encoding"),
    [(["iconv", "-f", "UTF-8", "-t", "UTF-16"], "utf-16-le"), (["nkf", "-W", "-w16L", "-x"], "utf-16-le"),
     (["nkf", "-W", "-w16B", "-x"], "utf-16-be"), (["iconv", "-f", "UTF-8", "-t", "CP932"], "cp932"),
     (["nkf", "-W", "--oc=UTF-8-BOM", "-x"], "utf-8-sig"), (["nkf", "-W", "-e", "-x"], "euc-jp"),
     (["nkf", "-W", "-j", "-x"], "iso2022-jp")],
    ids=["iconv UTF-16", "nkf -w16L", "nkf -w16B", "iconv CP932", "nkf UTF-8-BOM", "nkf -e", "nkf -j"],
)
def test_tab_separated_file_of_each_converter_imports(cli, app, make_account, tmp_path, command, encoding):
    acc = make_account("acme", **ingest_options())
    path = write_file(tmp_path, "20180516.csv", produce(command, TSV))

    result = cli("import-csv", "acme", path)

    assert result.exit_code == 0, result.output
    assert rows_of(acc) == TSV_ROWS
    assert db.session.scalars(select(Import)).one().encoding == encoding


@pytest.mark.parametrize("channel", ["mail", "ftp", "api", "web", "cli"])
def test_utf16_export_imports_alike_on_every_channel(app, make_account, channel):
    acc = make_account("acme", **ingest_options())
    imp = import_file(acc.id, "20180516.csv", (DATA / "results-utf16.txt").read_bytes(), channel=channel,
                      sender="sender@example.com")
    assert (imp.status, imp.row_count, imp.encoding) == ("succeeded", 4, "utf-16-le")
    assert rows_of(acc) == LIBREOFFICE_ROWS


def test_currency_and_accounting_values_of_a_cp932_csv(cli, app, make_account, tmp_path):
    # What Excel writes for cells formatted ¥#,##0 / #,##0"円" / #,##0;(#,##0): \ is cp932's yen sign.
    acc = make_account("acme", **ingest_options())
    data = csv_file([[1, "\\1,200,000", "(5,000)", "1,234円", ""], [2, "￥980,000", "△￥3,000", "(12)", ""],
                     [3, "-\\50", "￥(7,500)", "０", ""]])
    assert b'"\\1,200,000"' in data  # guards the fixture: a backslash in the bytes

    result = cli("import-csv", "acme", write_file(tmp_path, "20180516.csv", data))

    assert result.exit_code == 0, result.output
    assert rows_of(acc) == [(1, {"売上": 1200000, "粗利": -5000, "件数": 1234}, None),
                            (2, {"売上": 980000, "粗利": -3000, "件数": -12}, None),
                            (3, {"売上": -50, "粗利": -7500, "件数": 0}, None)]


def test_value_form_errors_refuse_the_file_and_keep_the_old_data(cli, app, make_account, tmp_path):
    acc = make_account("acme", **ingest_options())
    assert cli("import-csv", "acme", write_file(tmp_path, "20180516.csv", csv_file([[1, 100, 10, 1, ""]]))).exit_code == 0
    (tmp_path / "bad").mkdir()
    data = csv_file([[1, "5,000-", "12%", "2024/5/1", ""], [2, "-", "5月1日", "1", ""]])

    result = cli("import-csv", "acme", write_file(tmp_path / "bad", "20180516.csv", data))

    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"20180516.csv:2:売上:5,000-: {TRAILING_MINUS}"
    assert lines[1].startswith("20180516.csv:2:粗利:12%: パーセントの値です")
    assert lines[2].startswith("20180516.csv:2:件数:2024/5/1: 日付のようです")
    assert lines[3].startswith("20180516.csv:3:売上:-: 「-」だけでは数値になりません")
    assert lines[4].startswith("20180516.csv:3:粗利:5月1日: 日付のようです")
    assert rows_of(acc) == [(1, {"売上": 100, "粗利": 10, "件数": 1}, None)]


def test_semicolon_file_is_refused_naming_the_separator(cli, app, make_account, tmp_path):
    make_account("acme", **ingest_options())
    data = "No.;売上;粗利;件数;備考\r\n1;100;10;1;\r\n".encode("cp932")

    result = cli("import-csv", "acme", write_file(tmp_path, "20180516.csv", data))

    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"20180516.csv:1::: {SEMICOLON_SEPARATOR}"
    imp = db.session.scalars(select(Import)).one()
    assert (imp.status, imp.error_count) == ("failed", 1)


def test_pinned_cp932_refuses_a_utf16_file_naming_its_encoding(cli, app, make_account, tmp_path):
    acc = make_account("acme", **ingest_options(encoding="cp932"))
    assert cli("import-csv", "acme", write_file(tmp_path, "20180516.csv", csv_file([[1, 100, 10, 1, ""]]))).exit_code == 0
    (tmp_path / "u16").mkdir()

    result = cli("import-csv", "acme", write_file(tmp_path / "u16", "20180516.csv",
                                             (DATA / "results-utf16.txt").read_bytes()))

    assert result.exit_code == 1
    assert "UTF-16(Excelの「Unicode テキスト」)のファイルですが" in result.stderr
    assert "文字コードがShift_JIS(cp932)に指定されています" in result.stderr
    assert rows_of(acc) == [(1, {"売上": 100, "粗利": 10, "件数": 1}, None)]  # old data kept


def test_broken_utf16_file_is_refused_with_the_position_and_keeps_the_old_data(cli, app, make_account, tmp_path):
    acc = make_account("acme", **ingest_options())
    good = (DATA / "results-utf16.txt").read_bytes()
    assert cli("import-csv", "acme", write_file(tmp_path, "20180516.csv", good)).exit_code == 0
    (tmp_path / "bad").mkdir()
    broken = good[:40] + b"\x00\xdc" + good[40:]  # a lone low surrogate in line 2 (the header is 32 bytes)

    result = cli("import-csv", "acme", write_file(tmp_path / "bad", "20180516.csv", broken))

    assert result.exit_code == 1
    assert result.stderr.startswith("20180516.csv:2::: UTF-16 のファイルですが、対になっていないサロゲート")
    assert "ファイル先頭から 41 バイト目" in result.stderr
    assert rows_of(acc) == LIBREOFFICE_ROWS


def test_dry_run_names_utf16(cli, app, make_account, tmp_path):
    make_account("acme", **ingest_options())
    path = write_file(tmp_path, "20180500.csv", (DATA / "results-utf16.txt").read_bytes())
    result = cli("import-csv", "acme", path, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "検証OK" in result.stdout and "4行" in result.stdout and "utf-16-le" in result.stdout
