"""The LibreOffice-made workbooks (tests/data/workbooks/) on every channel store what their CSV stores.

Mail through a real SMTP session (smtplib), FTP through ftplib and a check, the API, 手動取込
through the web test client and `flask import-csv`; each is compared with the same data sent as
CSV through the same channel.
"""
from __future__ import annotations

import ftplib
import io
import re
import smtplib
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Import, ImportErrorRecord
from app.services import ftpcheck, runner
from tests.data.workbooks import make
from tests.fixtures.api import api_options, auth
from tests.fixtures.ingest import ingest_options, manual_upload, stored
from tests.fixtures.smtp import SMTP_SENDER
from tests.fixtures.waiting import wait_for

DATA = Path(make.__file__).parent
CSV = make.results_csv()
NOTE = "髙 ① ～ ㈱ 﨑 № ｶﾅ"
EXPECTED = [
    (1, {"売上": 1200000, "粗利": -5000, "件数": 2}, NOTE),
    (2, {"売上": 980000, "件数": 3}, "ｶﾅ"),
    (3, {"売上": 2180000, "粗利": 0, "件数": 1}, None),
]
ENDINGS = ["xlsx", "xls", "ods"]


def workbook(ending: str) -> bytes:
    return (DATA / f"20180516.{ending}").read_bytes()


def rows_of(acc) -> list[tuple]:
    db.session.expire_all()
    return [(no, values, note) for no, values, note, *_ in stored(acc)]


def finished(account_id: int, count: int) -> list[Import] | None:
    db.session.expire_all()
    rows = list(db.session.scalars(select(Import).where(Import.account_id == account_id).order_by(Import.id)))
    done = [row for row in rows if row.status in (Import.SUCCEEDED, Import.FAILED)]
    return done if len(done) >= count else None


def test_the_csv_equivalent_stores_the_expected_rows(app, make_account):
    acc = make_account("acme", **ingest_options())
    imp = runner.run_import(_receive(acc.id, "20180516.csv", CSV).id)
    assert imp.status == Import.SUCCEEDED and imp.encoding
    assert rows_of(acc) == EXPECTED


def _receive(account_id: int, name: str, data: bytes) -> Import:
    from app.services import ingest
    return ingest.receive(account_id, name, data, channel="cli", sender="test")


@pytest.mark.parametrize("ending", ENDINGS)
def test_mail_attachment(smtp_server, smtp_account, smtp_mail, ending):
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address, [(f"20180516.{ending}", workbook(ending))])
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=10) as client:
        client.send_message(message, from_addr=SMTP_SENDER)
    [imp] = wait_for(lambda: finished(smtp_account.id, 1), timeout=60, what="the workbook import")
    assert (imp.channel, imp.filename, imp.status, imp.row_count) == ("mail", f"20180516.{ending}", "succeeded", 3)
    assert imp.encoding is None and not imp.ignored_attachments
    assert rows_of(smtp_account) == EXPECTED


def test_mail_workbook_error_report_names_row_and_column_letter(smtp_server, smtp_account, smtp_mail):
    from app.models import OutboxMail
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address,
                                [("20180516.xlsx", (DATA / "errors.xlsx").read_bytes())])
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=10) as client:
        client.send_message(message, from_addr=SMTP_SENDER)
    [imp] = wait_for(lambda: finished(smtp_account.id, 1), timeout=60, what="the workbook import")
    assert imp.status == Import.FAILED
    mail = wait_for(lambda: db.session.scalar(select(OutboxMail).where(OutboxMail.import_id == imp.id)),
                    what="the error report")
    assert "Excelファイルの取込でエラーが見つかった" in mail.body
    assert "2行目 B列(売上) 値「2018-05-16」: 日付のセルです。数値を入力してください" in mail.body
    assert "3行目 C列(粗利) 値「#DIV/0!」: エラーのセルです(#DIV/0!)" in mail.body
    stored_errors = db.session.scalars(select(ImportErrorRecord).where(ImportErrorRecord.import_id == imp.id)).all()
    assert [(e.line, e.column, e.column_letter) for e in stored_errors] == [(2, "売上", "B"), (3, "粗利", "C")]


@pytest.fixture
def ftp_books(app, make_account):
    made = make_account("acme", **ingest_options(
        mode="ftp", status="active", ftp_days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        ftp_start="00:00", ftp_end="23:59", ftp_interval=60, ftp_delay=5), ftp_password=True)
    return made


def test_ftp_upload_and_check(app, ftp_books, ftp_server, import_worker):
    client = ftplib.FTP()
    client.connect("127.0.0.1", ftp_server.port, timeout=10)
    try:
        client.login(ftp_books.ftp_username, ftp_books.ftp_password)
        for ending in ENDINGS:
            client.storbinary(f"STOR 2018051{ENDINGS.index(ending) + 6}.{ending}", io.BytesIO(workbook(ending)))
        client.storbinary("STOR 20180519.csv", io.BytesIO(CSV))
        result = ftpcheck.check_account(ftp_books.id)
        assert [(f.name, f.succeeded) for f in result.files] == [
            ("20180516.xlsx", True), ("20180517.xls", True), ("20180518.ods", True), ("20180519.csv", True)]
        moved = sorted(client.nlst("processed"))
        assert [name.rsplit(".", 1)[1] for name in moved] == ["xlsx", "xls", "ods", "csv"]
    finally:
        client.close()
    for day in ("20180516", "20180517", "20180518", "20180519"):
        assert [(no, values, note) for no, values, note, *_ in stored(ftp_books, day)] == EXPECTED, day


@pytest.mark.parametrize("ending", ENDINGS)
def test_api_upload(app, client, make_account, import_worker, ending):
    app.config["API_RATE_PER_MINUTE"] = 10_000
    acc = make_account("acme", **api_options())
    response = client.post(f"/api/v1/imports?wait=1&filename=20180516.{ending}", headers=auth(acc.token),
                           data=workbook(ending))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["row_count"] == 3
    assert rows_of(acc) == EXPECTED


def test_api_errors_carry_the_column_letter(app, client, make_account, import_worker):
    app.config["API_RATE_PER_MINUTE"] = 10_000
    acc = make_account("acme", **api_options())
    response = client.post("/api/v1/imports?wait=1&filename=20180516.xlsx", headers=auth(acc.token),
                           data=(DATA / "errors.xlsx").read_bytes())
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert [(e["line"], e["column"], e["column_letter"]) for e in errors] == [(2, "売上", "B"), (3, "粗利", "C")]


@pytest.mark.parametrize("ending", ENDINGS)
def test_manual_upload(app, client, make_account, login, ending):
    acc = make_account("acme", **ingest_options())
    login(acc.email)
    response = manual_upload(client, f"20180516.{ending}", workbook(ending))
    assert response.status_code == 302
    imp = db.session.scalars(select(Import)).one()
    runner.run_import(imp.id)
    assert rows_of(acc) == EXPECTED
    html = client.get("/upload").get_data(as_text=True)
    assert 'accept=".csv,.xlsx,.xlsm,.xls,.ods,.zip,.gz,text/csv"' in html


def test_manual_dry_run_shows_letters(app, client, make_account, login):
    acc = make_account("acme", **ingest_options())
    login(acc.email)
    html = manual_upload(client, "20180516.xlsx", (DATA / "errors.xlsx").read_bytes(), dry_run=True).get_data(as_text=True)
    assert re.search(r"<td[^>]*>B列\(売上\)</td>", html) and re.search(r"<td[^>]*>C列\(粗利\)</td>", html)


@pytest.mark.parametrize("ending", ENDINGS)
def test_cli_import(app, make_account, tmp_path, ending):
    acc = make_account("acme", **ingest_options())
    path = tmp_path / f"20180516.{ending}"
    path.write_bytes(workbook(ending))
    result = app.test_cli_runner().invoke(args=["import-csv", "acme", str(path)])
    assert result.exit_code == 0, result.output
    assert "3行" in result.stdout
    assert rows_of(acc) == EXPECTED


def test_cli_errors_name_the_column_letter(app, make_account, tmp_path):
    make_account("acme", **ingest_options())
    path = tmp_path / "20180516.xlsx"
    path.write_bytes((DATA / "errors.xlsx").read_bytes())
    result = app.test_cli_runner().invoke(args=["import-csv", "acme", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == ("20180516.xlsx:2:B列(売上):2018-05-16: 日付のセルです。"
                                             "数値を入力してください")


def test_the_sheet_setting_picks_the_sheet_and_a_missing_one_is_refused(app, make_account):
    from app.services import integration
    acc = make_account("acme", **ingest_options())
    integration.update_settings(acc.id, {"sheet_name": "別シート"}, actor="test")
    imp = runner.run_import(_receive(acc.id, "20180516.xlsx", workbook("xlsx")).id)
    assert imp.status == Import.SUCCEEDED and rows_of(acc) == [(1, {"売上": 7}, None)]
    integration.update_settings(acc.id, {"sheet_name": "6月"}, actor="test")
    imp = runner.run_import(_receive(acc.id, "20180517.xlsx", workbook("xlsx")).id)
    assert imp.status == Import.FAILED
    assert "シート「6月」がファイルにありません(このファイルのシート: 「売上」、「別シート」)" in imp.errors[0].message


def test_the_sheet_setting_is_validated(app, make_account):
    from app.errors import Invalid
    from app.services import integration
    acc = make_account("acme", **ingest_options())
    with pytest.raises(Invalid) as caught:
        integration.update_settings(acc.id, {"sheet_name": "売上[5月]"}, actor="test")
    assert "使えない文字" in caught.value.errors["sheet_name"][0]
    with pytest.raises(Invalid):
        integration.update_settings(acc.id, {"sheet_name": "x" * 32}, actor="test")
    assert integration.get_settings(acc.id).sheet_name == ""
