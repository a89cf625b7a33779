"""データ未着の通知: the expected periods, and a simulated November 2026 driven by the scheduler's job and clock.

Files are imported as the channels do (ingest + the worker's step); their receipt times are then
set to the simulated ones. The scheduler's OverdueChecks job runs with an injected clock; the
mails are what the outbox holds (their delivery through a real SMTP sink: test_overdue_mail.py).
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from app.extensions import db
from app.models import Import, IntegrationSettings, OutboxMail
from app.models_links import OverduePeriod
from app.services import overdue
from app.services.overdue import Expectation, expected_periods
from servers.scheduler import OverdueChecks
from tests.fixtures.ingest import csv_file, import_file, ingest_options

TOKYO = ZoneInfo("Asia/Tokyo")
GOOD = csv_file([[1, 100, 50, 1, ""]])
BAD = csv_file([[99, 100, 50, 1, ""]])  # member No. 99 does not exist


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=TOKYO)


def november(expectation: Expectation) -> list[overdue.Expected]:
    return expected_periods(expectation, at(1, 0), dt.datetime(2026, 12, 1, tzinfo=TOKYO) - dt.timedelta(minutes=1),
                            TOKYO)


# ---------------------------------------------------------------------------- the schedule


def test_same_day_files_are_expected_on_weekdays_but_not_on_public_holidays():
    periods = november(Expectation(daily="same", daily_time=9 * 60 + 30))
    days = [p.date.day for p in periods]
    # November 2026: 21 weekdays; 3rd (文化の日) and 23rd (勤労感謝の日) are holidays.
    assert days == [2, 4, 5, 6, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 24, 25, 26, 27, 30]
    assert periods[0].deadline == at(2, 9, 30) and {p.kind for p in periods} == {"day"}
    with_holidays = november(Expectation(daily="same", skip_holidays=False))
    assert {3, 23} <= {p.date.day for p in with_holidays} and len(with_holidays) == 21


def test_previous_day_files_are_expected_on_the_next_working_day():
    periods = {p.date: p.deadline for p in november(Expectation(daily="previous", daily_time=10 * 60))}
    assert periods[dt.date(2026, 11, 6)] == at(9, 10)  # Friday's file by Monday
    assert periods[dt.date(2026, 11, 20)] == at(24, 10)  # Friday's by Tuesday: Monday 23rd is 勤労感謝の日
    assert periods[dt.date(2026, 11, 2)] == at(4, 10)  # Monday's by Wednesday: Tuesday 3rd is 文化の日
    assert dt.date(2026, 11, 23) not in periods and dt.date(2026, 11, 7) not in periods
    # Deadlines in November: October 30th's file (Friday) came due on Monday 2nd.
    assert dt.date(2026, 10, 30) in periods and dt.date(2026, 11, 30) not in periods


def test_a_monthly_file_is_expected_by_day_n_of_the_next_month():
    monthly = Expectation(monthly_day=5, monthly_time=12 * 60)
    assert november(monthly) == [overdue.Expected("month", dt.date(2026, 10, 1), at(5, 12))]
    short = Expectation(monthly_day=31)
    february = expected_periods(short, dt.datetime(2027, 2, 1, tzinfo=TOKYO), dt.datetime(2027, 3, 1, tzinfo=TOKYO),
                                TOKYO)
    assert [(p.date, p.deadline.date()) for p in february] == [(dt.date(2027, 1, 1), dt.date(2027, 2, 28))]


def test_the_deadline_is_inclusive_to_the_minute():
    exp = Expectation(daily="same")
    assert expected_periods(exp, at(2, 0), at(2, 9, 29), TOKYO) == []
    assert [p.date.day for p in expected_periods(exp, at(2, 0), at(2, 9, 30), TOKYO)] == [2]


# ---------------------------------------------------------------------------- the month, evaluated


def watched(make_account, **settings):
    acc = make_account("acme", **ingest_options(overdue_enabled="on", **settings))
    # Turned on before the simulated month (the real clock's "now" is not part of the test).
    db.session.execute(update(IntegrationSettings).where(IntegrationSettings.account_id == acc.id)
                       .values(overdue_since=dt.datetime(2026, 10, 31, 15, 0)))  # 11-01 00:00 in Tokyo
    db.session.commit()
    return acc


def received(imp: Import, when: dt.datetime) -> Import:
    db.session.execute(update(Import).where(Import.id == imp.id)
                       .values(received_at=when.astimezone(dt.timezone.utc).replace(tzinfo=None)))
    db.session.commit()
    return imp


def mails(account_id: int, kind: str) -> list[OutboxMail]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMail).where(OutboxMail.account_id == account_id,
                                                            OutboxMail.kind == kind).order_by(OutboxMail.id)))


def test_a_simulated_month_alerts_once_per_missing_day_at_its_deadline_and_tells_the_late_arrival(app, make_account):
    acc = watched(make_account, overdue_daily="same", overdue_daily_time="09:30")
    missing = {10, 18}
    for day in november(Expectation(daily="same")):
        if day.date.day not in missing:
            received(import_file(acc.id, f"{day.date:%Y%m%d}.csv", GOOD), at(day.date.day, 8, 0))
    failed = received(import_file(acc.id, "20261118.csv", BAD), at(18, 8, 45))
    assert failed.status == Import.FAILED

    job = OverdueChecks(app, clock=lambda: at(1, 0))
    first_alert: dict[str, dt.datetime] = {}
    ticks = sorted({at(1, 0) + dt.timedelta(hours=h) for h in range(30 * 24)}
                   | {at(d, 9, 29) for d in range(1, 31)} | {at(d, 9, 30) for d in range(1, 31)})
    for now in ticks:
        if now == at(11, 14):  # the 10th's file comes a day late
            received(import_file(acc.id, "20261110.csv", GOOD), at(11, 13, 50))
        job.tick(now)
        for mail in mails(acc.id, overdue.KIND_ALERT):
            first_alert.setdefault(mail.subject, now)

    alerts = mails(acc.id, overdue.KIND_ALERT)
    assert len(alerts) == 2
    assert sorted(first_alert.values()) == [at(10, 9, 30), at(18, 9, 30)]  # at the deadline, not a minute before
    assert "2026/11/10 分" in alerts[0].subject and "2026/11/18 分" in alerts[1].subject
    assert alerts[0].to_addrs == ["errors@acme.example"]
    # The failed file of the 18th is named in its mail, with its reason.
    assert "20261118.csv" in alerts[1].body and "取込に失敗しました" in alerts[1].body
    assert "理由: 2行目 No.「99」: メンバー設定に存在しないNo.です" in alerts[1].body

    arrived = mails(acc.id, overdue.KIND_ARRIVED)
    assert len(arrived) == 1 and "2026/11/10 分のデータが届きました" in arrived[0].subject
    assert "20261110.csv" in arrived[0].body
    entries = {e.period_date.day: e for e in db.session.scalars(select(OverduePeriod))}
    assert set(entries) == missing  # no entry for weekends, 3rd or 23rd, nor for the days whose file came
    assert entries[10].state == OverduePeriod.CLOSED and entries[10].closed_at == dt.datetime(2026, 11, 11, 5, 0)
    assert entries[18].state == OverduePeriod.OPEN
    assert [e.period_date for e in overdue.open_periods(acc.id)] == [dt.date(2026, 11, 18)]
    # Evaluating again, later, sends nothing more.
    job.tick(at(30, 23, 59))
    assert len(mails(acc.id, overdue.KIND_ALERT)) == 2 and len(mails(acc.id, overdue.KIND_ARRIVED)) == 1


def test_a_missing_monthly_file_alerts_at_its_deadline_and_closes_when_it_comes(app, make_account):
    acc = watched(make_account, overdue_monthly_day="5", overdue_monthly_time="12:00")
    job = OverdueChecks(app, clock=lambda: at(5, 11, 59, month=12))
    job.tick()
    assert mails(acc.id, overdue.KIND_ALERT) == []
    job.tick(at(5, 12, 0, month=12))
    (alert,) = mails(acc.id, overdue.KIND_ALERT)
    assert "2026/11 分" in alert.subject and "月次・翌月5日まで" in alert.body
    assert "期限: 2026/12/05 12:00(Asia/Tokyo)" in alert.body
    assert [overdue.banner_text(e, TOKYO) for e in overdue.open_periods(acc.id)] == [
        "2026/11 分のデータが届いていません(期限 12/05 12:00)"]
    received(import_file(acc.id, "20261100.csv", GOOD), at(7, 9, 0, month=12))
    job.tick(at(7, 9, 1, month=12))
    assert len(mails(acc.id, overdue.KIND_ARRIVED)) == 1 and overdue.open_periods(acc.id) == []


def test_previous_day_mode_alerts_fridays_file_on_monday(app, make_account):
    acc = watched(make_account, overdue_daily="previous", overdue_daily_time="10:00")
    for day in (2, 4, 5):  # Monday, Wednesday, Thursday of the first week (3rd is a holiday)
        received(import_file(acc.id, f"202611{day:02d}.csv", GOOD), at(day + 1, 8))
    job = OverdueChecks(app, clock=lambda: at(9, 9, 59))
    job.tick(at(6, 10, 0))  # the 5th's file came: nothing
    job.tick()
    assert mails(acc.id, overdue.KIND_ALERT) == []
    job.tick(at(9, 10, 0))
    (alert,) = mails(acc.id, overdue.KIND_ALERT)
    assert "2026/11/06 分" in alert.subject and "日次・前日分" in alert.body
    assert "期限: 2026/11/09 10:00" in alert.body


def test_no_alert_while_stopped_or_turned_off_and_none_for_deadlines_before_it_was_turned_on(app, make_account):
    acc = watched(make_account, overdue_daily="same")
    settings = db.session.get(IntegrationSettings, acc.settings.id)
    settings.status = "stopped"
    db.session.commit()
    assert overdue.evaluate(acc.id, at(2, 9, 30)).opened == []
    settings.status = "active"
    settings.overdue_since = dt.datetime(2026, 11, 2, 1, 0)  # 10:00 in Tokyo, after the 2nd's deadline
    db.session.commit()
    assert overdue.evaluate(acc.id, at(2, 23, 0)).opened == []
    assert [e.period_date.day for e in overdue.evaluate(acc.id, at(4, 9, 30)).opened] == [4]
    settings.overdue_enabled = False
    db.session.commit()
    assert overdue.open_periods(acc.id) == [] and overdue.watched_accounts() == []
