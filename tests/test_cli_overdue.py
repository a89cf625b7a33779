"""`flask integration overdue SLUG [--at ISO]`: the open 未着 periods, exit 1 when there are any (for monitoring scripts)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from app.extensions import db
from app.models import IntegrationSettings, OutboxMail
from tests.fixtures.ingest import csv_file, import_file


def test_exit_codes_follow_the_open_periods(app, make_account):
    acc = make_account("acme", error_to=["ops@acme.example"], senders=["erp@acme.example"], members=[(1, "E1", "山田")],
                       columns=[("売上", "円")], overdue_enabled="on", overdue_daily="same", overdue_daily_time="09:30")
    db.session.execute(update(IntegrationSettings).where(IntegrationSettings.account_id == acc.id)
                       .values(overdue_since=dt.datetime(2026, 11, 30, 15, 0)))
    db.session.commit()
    runner = app.test_cli_runner()

    early = runner.invoke(args=["integration", "overdue", "acme", "--at", "2026-12-01T09:29"])
    assert early.exit_code == 0, early.output
    assert early.output == "未着のデータはありません (no overdue data)。\n"

    due = runner.invoke(args=["integration", "overdue", "acme", "--at", "2026-12-01T09:30+09:00"])
    assert due.exit_code == 1
    assert due.output == ("2026/12/01 分のデータが届いていません(期限 09:30) "
                          "(overdue: 20261201, deadline 2026-12-01T09:30:00+09:00)\n")
    again = runner.invoke(args=["integration", "overdue", "acme", "--at", "2026-12-01T10:00"])
    assert again.exit_code == 1
    assert db.session.scalar(db.select(db.func.count(OutboxMail.id)).where(OutboxMail.kind == "overdue")) == 1

    assert import_file(acc.id, "20261201.csv", csv_file([[1, 5]], header=["No.", "売上"])).status == "succeeded"
    came = runner.invoke(args=["integration", "overdue", "acme", "--at", "2026-12-01T10:01"])
    assert came.exit_code == 0 and "未着のデータはありません" in came.output


def test_a_wrong_time_or_account_is_an_error(app, make_account):
    make_account("acme")
    runner = app.test_cli_runner()
    wrong = runner.invoke(args=["integration", "overdue", "acme", "--at", "12月1日"])
    assert wrong.exit_code == 2 and "ISO 8601" in wrong.stderr
    assert runner.invoke(args=["integration", "overdue", "nobody"]).exit_code == 1


def test_set_takes_the_overdue_settings_validated_as_on_the_screen(app, make_account):
    from app.services import integration

    acc = make_account("acme", error_to=["ops@acme.example"], senders=["erp@acme.example"])
    runner = app.test_cli_runner()
    saved = runner.invoke(args=["integration", "set", "acme", "--overdue", "on", "--overdue-daily", "previous",
                                "--overdue-daily-time", "10:15", "--overdue-days", "mon,fri",
                                "--overdue-monthly-day", "3", "--overdue-holidays", "off"])
    assert saved.exit_code == 0, saved.output
    settings = integration.get_settings(acc.id)
    assert (settings.overdue_enabled, settings.overdue_daily, settings.overdue_daily_time, settings.overdue_days,
            settings.overdue_monthly_day, settings.overdue_skip_holidays) == (
        True, "previous", "10:15", ["mon", "fri"], 3, False)
    wrong = runner.invoke(args=["integration", "set", "acme", "--overdue-monthly-day", "0"])
    assert wrong.exit_code == 1
    assert "エラー: 月次ファイルの期限(翌月の日) (overdue_monthly_day): 月次ファイルの期限は翌月の 1〜31 日で" in wrong.stderr
