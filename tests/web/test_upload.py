"""手動取込: a real upload queues an import; 検証のみ shows the outcome and stores nothing."""
from __future__ import annotations

import re

from app.extensions import db
from app.importer.filename import FILENAME_MESSAGE
from app.models import Import, User
from app.services import files, runner, users
from tests.fixtures.ingest import line_count, manual_upload

GOOD = "No.,売上,件数,備考\r\n1,120000,2,㈱髙﨑①\r\n2,\"50,000\",1,\r\n1,100,,\r\n".encode("cp932")
BAD = "No.,売上,件数\r\n99,100,1\r\n1,abc,1\r\n".encode()


def _counts() -> tuple[int, int]:
    imports = db.session.scalar(db.select(db.func.count(Import.id)))
    results = line_count()
    return imports, results


def test_upload_page_has_the_form(client, board):
    html = client.get("/upload").get_data(as_text=True)
    assert 'type="file"' in html and 'enctype="multipart/form-data"' in html
    assert "検証のみ" in html and "yyyymmdd.csv" in html


def test_dry_run_with_errors_shows_every_error_and_stores_nothing(client, board):
    response = manual_upload(client, "20180516.csv", BAD, dry_run=True)
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert "2 件のエラー" in html
    rows = re.findall(r"<tr>\s*<td[^>]*>(\d+)</td>\s*<td[^>]*>([^<]*)</td>\s*<td[^>]*>([^<]*)</td>", html)
    assert ("2", "No.", "99") in rows and ("3", "売上", "abc") in rows
    assert "何も保存していません" in html
    assert _counts() == (0, 0)


def test_dry_run_with_a_bad_name_lists_the_name_rule(client, board):
    html = manual_upload(client, "売上.csv", GOOD, dry_run=True).get_data(as_text=True)
    assert "件のエラーがあります" in html
    assert FILENAME_MESSAGE in html
    assert _counts() == (0, 0)


def test_valid_dry_run_shows_period_rows_and_encoding(client, board):
    html = manual_upload(client, "20180500.csv", GOOD, dry_run=True).get_data(as_text=True)

    assert "エラーはありません" in html
    assert re.search(r"<dt>データ行数</dt><dd>3 行</dd>", html)
    assert "2018年5月" in html and "Shift_JIS(cp932)" in html
    assert _counts() == (0, 0)


def test_upload_queues_an_import_and_shows_its_page(client, board):
    response = manual_upload(client, "20180516.csv", GOOD)

    assert response.status_code == 302
    imp = db.session.scalars(db.select(Import)).one()
    assert response.headers["Location"].endswith(f"/imports/{imp.id}")
    assert imp.status == Import.QUEUED and imp.channel == "web"
    assert imp.sender == "admin@acme.example" and files.read(imp.id) == GOOD
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "受け付けました。取込結果はこのページに表示されます" in html
    assert "待機中" in html and 'http-equiv="refresh"' in html

    # What the worker does next, and what the page then shows.
    runner.run_import(imp.id)
    html = client.get(f"/imports/{imp.id}").get_data(as_text=True)
    assert "成功" in html and 'http-equiv="refresh"' not in html
    assert _counts() == (1, 3)


def test_missing_file_is_a_field_error(client, board):
    html = client.post("/upload", data={}, content_type="multipart/form-data").get_data(as_text=True)
    assert "ファイルを選択してください。" in html
    assert _counts() == (0, 0)


def test_too_big_file_is_refused(app, client, board):
    app.config["MAX_UPLOAD_BYTES"] = 10
    html = manual_upload(client, "20180516.csv", GOOD).get_data(as_text=True)
    assert "ファイルが大きすぎます" in html and "10 バイト" in html
    assert _counts() == (0, 0)


def test_upload_is_for_admins_only(client, board):
    users.create_user(board.id, "viewer@acme.example", "password-123", User.VIEWER)
    client.post("/logout")
    client.post("/login", data={"email": "viewer@acme.example", "password": "password-123"})
    assert client.get("/upload").status_code == 403
    assert manual_upload(client, "20180516.csv", GOOD).status_code == 403
    assert _counts() == (0, 0)


def test_upload_needs_the_csrf_token(app, client, board):
    app.config["WTF_CSRF_ENABLED"] = True
    assert manual_upload(client, "20180516.csv", GOOD).status_code == 400
    assert _counts() == (0, 0)
