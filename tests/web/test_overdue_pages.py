"""データ未着 on the screens: the fields of 外部連携設定, the banner on メイン, the list in 取込履歴."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from app.extensions import db
from app.models import IntegrationSettings, SettingsChange
from app.services import columns, members, overdue
from app.services import integration as service
from tests.fixtures.html import field_block, integration_form, page_text
from tests.fixtures.ingest import csv_file, import_file

URL = "/settings/integration"


# The 未着 fields, as filled in by the tests unless they say otherwise.
OVERDUE_FIELDS = {
    "overdue_enabled": "on", "overdue_daily": "previous", "overdue_daily_time": "１０:００",
    "overdue_days": ["mon", "tue", "wed", "thu", "fri", "sat"], "overdue_skip_holidays": "on",
    "overdue_monthly_day": "５", "overdue_monthly_time": "12:00",
}


def form_data(**overrides) -> dict:
    return integration_form(**{**OVERDUE_FIELDS, **overrides})


def test_the_fields_save_and_show_again(client, admin):
    assert client.post(URL, data=form_data()).status_code == 302
    settings = service.get_settings(admin.id)
    assert (settings.overdue_enabled, settings.overdue_daily, settings.overdue_daily_time) == (True, "previous", "10:00")
    assert settings.overdue_days == ["mon", "tue", "wed", "thu", "fri", "sat"]
    assert (settings.overdue_monthly_day, settings.overdue_monthly_time, settings.overdue_skip_holidays) == (5, "12:00", True)
    assert settings.overdue_since is not None  # alerts count from now on
    html = page_text(client.get(URL))
    block = html[html.index('id="overdue-section"'):]
    assert "データ未着の通知" in block and "期待するファイル(日次)" in block and "対象曜日" in block
    assert '<option selected value="on">通知する</option>' in block
    assert '<option selected value="previous">' in block and 'value="10:00"' in block and 'value="5"' in block
    assert 'value="sat" id="overdue_days-sat"\n          checked' in block
    change = db.session.scalars(db.select(SettingsChange).order_by(SettingsChange.id.desc())).first()
    assert "データ未着の通知: 通知しない → 通知する" in change.summary
    assert "月次ファイルの期限(翌月の日): (なし) → 翌月5日" in change.summary


def test_wrong_values_are_told_next_to_their_fields_in_japanese(client, admin):
    response = client.post(URL, data=form_data(overdue_daily_time="25:00", overdue_monthly_day="32"))
    assert response.status_code == 422
    html = page_text(response)
    assert "時刻「25:00」は 00:00〜23:59 の範囲で入力してください。" in field_block(html, "overdue_daily_time")
    assert "月次ファイルの期限は翌月の 1〜31 日で入力してください" in field_block(html, "overdue_monthly_day")

    nothing = page_text(client.post(URL, data=form_data(overdue_daily="none", overdue_monthly_day="")))
    assert "期待するファイル(日次)を選ぶか、月次ファイルの期限を入力してください。" in field_block(nothing, "overdue_daily")
    no_days = page_text(client.post(URL, data=form_data(overdue_days=[])))
    assert "対象曜日を1つ以上選んでください。" in field_block(no_days, "overdue_days")
    # Off, nothing else is required.
    assert client.post(URL, data=form_data(overdue_enabled="off", overdue_daily="none", overdue_monthly_day="",
                                           overdue_days=[])).status_code == 302


def test_the_banner_on_main_and_the_list_in_the_history(client, admin):
    service.update_settings(admin.id, {"overdue_enabled": "on", "overdue_daily": "same", "overdue_daily_time": "09:30",
                                       "error_to": ["ops@example.com"], "senders": ["erp@example.com"]}, actor="t")
    db.session.execute(update(IntegrationSettings).where(IntegrationSettings.account_id == admin.id)
                       .values(overdue_since=dt.datetime(2026, 11, 30, 15, 0)))  # 12-01 00:00 in Tokyo
    db.session.commit()
    tokyo = dt.timezone(dt.timedelta(hours=9))
    overdue.evaluate(admin.id, dt.datetime(2026, 12, 1, 9, 30, tzinfo=tokyo))
    html = page_text(client.get("/?month=2026-11"))  # shown whichever month the board shows
    assert '<p class="flash flash-error overdue">2026/12/01 分のデータが届いていません(期限 09:30)</p>' in html
    assert html.count("データが届いていません") == 1

    members.create_member(admin.id, 1, "E001", "山田 太郎")
    columns.add_column(admin.id, "売上", "円")
    assert import_file(admin.id, "20261201.csv", csv_file([[1, 5]], header=["No.", "売上"])).status == "succeeded"
    overdue.evaluate(admin.id, dt.datetime(2026, 12, 1, 9, 45, tzinfo=tokyo))

    history = page_text(client.get("/imports"))
    listed = history[history.index('id="overdue-history"'):]
    assert "2026/12/01 分" in listed and "2026-12-01 09:30" in listed and '<span class="badge succeeded">届きました</span>' in listed
    assert "データが届いていません" not in page_text(client.get("/"))
    assert 'id="overdue-history"' not in page_text(client.get("/imports?status=failed"))
