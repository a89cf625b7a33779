"""Small rules written once (issue 13, item 6): each test fails when two places that show or
check the same thing start to disagree again, and asserts on what a user sees."""
from __future__ import annotations

import json
import re
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app import config
from app.errors import ImportRejected, Invalid
from app.extensions import db
from app.models import Import, IntegrationSettings, OutboxMail
from app.services import checktimes, integration, members
from tests.fixtures.api import GOOD_ROWS, api_options, csv_bytes

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def acct(app, make_account, import_worker):
    """An API-mode account with members 1-3 and columns 売上(円), 粗利(円), 件数(件) that gets success mails."""
    app.config["API_RATE_PER_MINUTE"] = 10_000
    acc = make_account("acme", **api_options())
    settings = db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == acc.id))
    settings.success_to = ["boss@acme.example"]
    db.session.commit()
    return acc


def api_import(client, acc, filename: str, rows=None) -> dict:
    response = client.post(f"/api/v1/imports?wait=1&filename={filename}", data=csv_bytes(rows),
                           headers={**acc.headers, "Content-Type": "text/csv"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def mail_of(import_id: int) -> str:
    return db.session.scalars(select(OutboxMail.body).where(OutboxMail.import_id == import_id)).one()


def page(client, url: str, email: str) -> str:
    with client.session_transaction() as session:
        session.clear()
    assert client.post("/login", data={"email": email, "password": "password-123"}).status_code == 302
    response = client.get(url)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_cli_and_api_print_an_import_as_the_same_json(app, client, acct):
    api_import(client, acct, "20180516.csv")
    api_import(client, acct, "20180500.csv")
    from_api = client.get("/api/v1/imports", headers=acct.headers).get_json()["imports"]
    result = app.test_cli_runner().invoke(args=["imports", "list", "acme", "--json"])
    assert result.exit_code == 0, result.output
    from_cli = json.loads(result.stdout)
    assert from_cli == from_api
    assert [(i["period"], i["status_label"]) for i in from_cli] == [("201805", "成功"), ("20180516", "成功")]
    assert all(ISO_Z.match(i["received_at"]) and ISO_Z.match(i["finished_at"]) for i in from_cli)


@pytest.mark.parametrize("filename, label, kind", [("20180516.csv", "2018年5月16日", "日次"),
                                                   ("20180500.csv", "2018年5月", "月次")])
def test_the_import_page_and_the_report_mail_name_the_period_alike(client, acct, filename, label, kind):
    imported = api_import(client, acct, filename)
    assert f"期間: {label}({kind})" in mail_of(imported["id"])
    html = page(client, f"/imports/{imported['id']}", acct.email)
    assert re.search(rf"<dd>\s*{label}\s*</dd>", html), "the import page shows another period label"


def test_screen_and_mail_show_numbers_with_the_same_decimals(client, acct):
    rows = [GOOD_ROWS[0], ["1", "1234.5678", "0.125", "2", ""], ["2", "50000", "1", "1", ""]]
    imported = api_import(client, acct, "20180516.csv", rows)
    body = mail_of(imported["id"])
    assert "売上: 51,234.57円" in body and "粗利: 1.12円" in body
    board = page(client, "/?month=2018-05", acct.email)
    assert ">1,234.57<" in board and ">51,234.57<" in board and ">1.12<" in board


def test_a_member_no_has_one_limit_in_the_form_and_the_csv_load(app, acct):
    largest, too_large = 2**31 - 1, 2**31
    header = "No.,社員ID,氏名,部署,メールアドレス\r\n"
    members.import_members(acct.id, f"{header}{largest},X1,上限 太郎,,\r\n".encode())
    with pytest.raises(ImportRejected) as from_csv:
        members.import_members(acct.id, f"{header}{too_large},X2,超過 次郎,,\r\n".encode())
    with pytest.raises(Invalid) as from_form:
        members.create_member(acct.id, str(too_large), "X3", "超過 三郎")
    members.create_member(acct.id, "１２３４５６７８９", "X4", "全角 四郎")  # 9 full-width digits: fine in both
    assert from_form.value.errors["no"] == [from_csv.value.errors[0].message + "。"]


@pytest.mark.parametrize("changes, field", [
    ({"ftp_start": "18:00", "ftp_end": "09:00"}, "ftp_end"),
    ({"ftp_interval": "30", "ftp_delay": "30"}, "ftp_delay"),
    ({"ftp_interval": "7"}, "ftp_interval"),
    ({"ftp_delay": "75"}, "ftp_delay"),
])
def test_the_settings_and_the_scheduler_refuse_a_schedule_with_one_message(app, acct, changes, field):
    schedule = {"ftp_start": "09:00", "ftp_end": "18:00", "ftp_interval": "60", "ftp_delay": "0", **changes}
    with pytest.raises(Invalid) as from_settings:
        integration.update_settings(acct.id, {"mode": "ftp", "ftp_days": "mon", **changes}, actor="t")
    with pytest.raises(ValueError) as from_scheduler:
        checktimes.validate_schedule(schedule["ftp_start"], schedule["ftp_end"],
                                     int(schedule["ftp_interval"]), int(schedule["ftp_delay"]))
    assert from_settings.value.errors[field] == [str(from_scheduler.value)]


def test_interval_choices_and_their_message_agree():
    assert tuple(integration.INTERVAL_LABELS) == checktimes.INTERVALS
    assert all(label in checktimes.INTERVAL_MESSAGE for label in integration.INTERVAL_LABELS.values())


def test_every_zone_reader_falls_back_to_the_one_default(app):
    from servers.scheduler import FtpCheckScheduler

    app.config["TIMEZONE"] = ""
    with app.app_context():
        zones = {integration.timezone(), config.timezone(app), FtpCheckScheduler(app).clock().tzinfo}
    assert zones == {ZoneInfo("Asia/Tokyo")}


def test_one_base_name_rule_for_mail_upload_ftp_and_the_importer(client, acct):
    from app.importer.filename import base_name, parse_filename
    from app.services import ingest
    from servers import mailparse

    assert mailparse.base_name is ingest.base_name is base_name
    assert parse_filename("C:\\Users\\営業\\20180516.csv").name == "20180516.csv"
    assert base_name("C:\\Users\\営業\\2018\x000516.csv ") == "20180516.csv"
    imported = api_import(client, acct, "sub%2F20180516.csv")
    assert imported["filename"] == "20180516.csv"
    assert db.session.get(Import, imported["id"]).filename == "20180516.csv"


def test_the_board_and_the_month_api_bound_december_alike(client, acct):
    api_import(client, acct, "20181231.csv", [GOOD_ROWS[0], ["1", "100", "1", "1", ""]])
    api_import(client, acct, "20190101.csv", [GOOD_ROWS[0], ["1", "7", "1", "1", ""]])
    month = client.get("/api/v1/results?period=201812", headers=acct.headers).get_json()
    assert (month["from"], month["to"]) == ("2018-12-01", "2018-12-31")
    assert month["totals"]["売上"] == 100
    board = page(client, "/?month=2018-12", acct.email)
    assert ">100<" in board and ">107<" not in board
