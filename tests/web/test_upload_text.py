"""手動取込 of tab-separated and UTF-16 text (issue 15): 検証のみ names the encoding, the upload imports."""
from __future__ import annotations

import re

from app.extensions import db
from app.models import Import
from app.services import runner
from tests.fixtures.ingest import manual_upload, stored_lines

# Excel's 「Unicode テキスト」: UTF-16LE with a BOM, tab separated, CRLF.
UNICODE_TEXT = "No.\t売上\t件数\t備考\r\n1\t￥120,000\t2\t㈱髙﨑①\r\n2\t(5,000)\t\t\r\n".encode("utf-16")
SEMICOLONS = "No.;売上;件数\r\n1;100;1\r\n".encode("cp932")


def test_dry_run_of_unicode_text_shows_rows_and_its_encoding(client, board):
    html = manual_upload(client, "20180516.csv", UNICODE_TEXT, dry_run=True).get_data(as_text=True)
    assert "エラーはありません" in html
    assert re.search(r"<dt>データ行数</dt><dd>2 行</dd>", html)
    assert "UTF-16LE(BOM付き)" in html


def test_dry_run_of_a_semicolon_file_says_the_separator_is_the_problem(client, board):
    html = manual_upload(client, "20180516.csv", SEMICOLONS, dry_run=True).get_data(as_text=True)
    assert "区切り文字がセミコロン(;)です" in html
    assert db.session.scalar(db.select(db.func.count(Import.id))) == 0


def test_upload_of_unicode_text_is_imported(client, board):
    response = manual_upload(client, "20180516.csv", UNICODE_TEXT)
    assert response.status_code == 302
    imp = db.session.scalars(db.select(Import)).one()
    runner.run_import(imp.id)
    db.session.expire_all()
    assert (imp.status, imp.row_count, imp.encoding) == ("succeeded", 2, "utf-16-le")
    values = sorted(sorted(line.values.values()) for _import_id, line in stored_lines())
    assert values == [[-5000.0], [2.0, 120000.0]]
    html = client.get(f"/imports/{imp.id}").get_data(as_text=True)
    assert "UTF-16LE(BOM付き)" in html
