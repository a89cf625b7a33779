"""The scheduler: which minutes fire over a simulated week (injected clock), catch-up, overlap, survival."""
from __future__ import annotations

import datetime as dt
import os
import threading
from zoneinfo import ZoneInfo

import pytest

from app.extensions import db
from app.models import Import
from app.services import accounts, checktimes, ftpcheck, ingest, integration, queue
from servers import scheduler as scheduler_module
from servers.scheduler import FtpCheckScheduler
from tests.fixtures.ftp import ftp_csv

TOKYO = ZoneInfo("Asia/Tokyo")
MONDAY = dt.datetime(2026, 11, 30, 0, 0, tzinfo=TOKYO)  # a Monday
WEEK_MINUTES = 7 * 24 * 60


def at(day: int, hhmm: str) -> dt.datetime:
    """Day 0 = MONDAY; day 7 = the next Monday."""
    hour, minute = map(int, hhmm.split(":"))
    return MONDAY + dt.timedelta(days=day, hours=hour, minutes=minute)


def put(home, name: str, data: bytes, when: dt.datetime) -> None:
    """Write a file as an upload that finished at `when` (the scheduler's injected clock), not at today's date."""
    path = home / name
    path.write_bytes(data)
    os.utime(path, (when.timestamp(), when.timestamp()))


def ftp_settings(account_id: int, **schedule) -> None:
    integration.update_settings(
        account_id, {"mode": "ftp", "status": "active", "error_to": ["ops@example.com"], **schedule}, actor="test")


class Recorder:
    """A dispatch that records (account id, minute) instead of running checks."""

    def __init__(self):
        self.fired: list[tuple[int, dt.datetime]] = []

    def __call__(self, account_id: int, minute: dt.datetime) -> None:
        self.fired.append((account_id, minute))


@pytest.fixture
def week_accounts(app, make_account):
    """Accounts with distinct schedules, plus three that must never fire."""
    ids = {}
    weekdays = make_account("weekdays").id
    ftp_settings(weekdays, ftp_days=["mon", "tue", "wed", "thu", "fri"], ftp_start="09:00", ftp_end="18:00",
                 ftp_interval=60, ftp_delay=5)
    ids["weekdays"] = weekdays
    weekend = make_account("weekend").id
    ftp_settings(weekend, ftp_days=["sat", "sun"], ftp_start="22:00", ftp_end="23:30", ftp_interval=30, ftp_delay=29)
    ids["weekend"] = weekend
    # Sunday's 23:30 slot, 45 minutes late, is checked on Monday at 00:15.
    late = make_account("late").id
    ftp_settings(late, ftp_days=["sun"], ftp_start="23:30", ftp_end="23:30", ftp_interval=60, ftp_delay=45)
    ids["late"] = late
    for slug, change in [("stopped", {"status": "stopped"}), ("mail", {"mode": "mail", "senders": ["a@b.example"]}),
                         ("disabled", None)]:
        account_id = make_account(slug).id
        ftp_settings(account_id, ftp_days=list(checktimes.WEEKDAYS), ftp_start="00:00", ftp_end="23:55",
                     ftp_interval=5, ftp_delay=0)
        if change:
            integration.update_settings(account_id, change, actor="test")
        else:
            accounts.set_integration_enabled(slug, False)
        ids[slug] = account_id
    return ids


def test_schedule_fires_exactly_at_the_check_minutes_over_a_simulated_week(app, week_accounts):
    clock_now = [MONDAY]
    recorder = Recorder()
    ticker = FtpCheckScheduler(app, clock=lambda: clock_now[0], dispatch=recorder)
    for minute in range(WEEK_MINUTES):
        clock_now[0] = MONDAY + dt.timedelta(minutes=minute, seconds=3)  # ticks run a little after :00
        ticker.tick()

    fired = {}
    for account_id, minute in recorder.fired:
        fired.setdefault(account_id, []).append(minute)
    expected_weekdays = [at(day, f"{hour:02d}:05") for day in range(5) for hour in range(9, 19)]
    expected_weekend = [at(day, hhmm) for day in (5, 6) for hhmm in ("22:29", "22:59", "23:29", "23:59")]
    assert fired[week_accounts["weekdays"]] == expected_weekdays
    assert fired[week_accounts["weekend"]] == expected_weekend
    # Only the previous Sunday's slot falls inside this week; this Sunday's fires next Monday.
    assert fired[week_accounts["late"]] == [at(0, "00:15")]
    assert set(fired) == {week_accounts["weekdays"], week_accounts["weekend"], week_accounts["late"]}
    assert len(recorder.fired) == len(set(recorder.fired))

    # The settings tab's list of next check times agrees with what fired.
    for name in ("weekdays", "weekend", "late"):
        settings = integration.get_settings(week_accounts[name])
        listed = checktimes.next_check_times(settings, MONDAY - dt.timedelta(minutes=1), 100, TOKYO)
        assert [t for t in listed if t < MONDAY + dt.timedelta(days=7)] == fired[week_accounts[name]]


def test_late_tick_catches_up_missed_minutes_once(app, week_accounts):
    recorder = Recorder()
    ticker = FtpCheckScheduler(app, dispatch=recorder)
    weekdays = week_accounts["weekdays"]
    ticker.tick(at(0, "09:00"))
    assert ticker.tick(at(0, "09:07")) == [(weekdays, at(0, "09:05"))]
    assert ticker.tick(at(0, "09:07")) == []
    # After a long pause only the last CATCH_UP_MINUTES are evaluated.
    assert ticker.tick(at(0, "11:10")) == [(weekdays, at(0, "11:05"))]
    assert recorder.fired == [(weekdays, at(0, "09:05")), (weekdays, at(0, "11:05"))]


def test_due_check_runs_and_imports_the_uploaded_file(app, ftp_account, import_worker):
    app.config["FTP_QUIET_SECONDS"] = 0
    home = ftpcheck.home_path(ftp_account.username, create=True)
    put(home, "20180516.csv", ftp_csv(), at(0, "09:03"))
    now = [at(0, "09:04")]
    ticker = FtpCheckScheduler(app, clock=lambda: now[0])
    try:
        assert ticker.tick() == []
        assert (home / "20180516.csv").exists()
        now[0] = at(0, "09:05") + dt.timedelta(seconds=1)
        assert ticker.tick() == [(ftp_account.id, at(0, "09:05"))]
    finally:
        ticker.shutdown(wait=True)
    db.session.rollback()
    assert [(i.filename, i.status) for i in db.session.scalars(db.select(Import))] == [("20180516.csv", "succeeded")]
    assert [p.name for p in (home / "processed").iterdir()] == ["20180516_20261130-090501.csv"]


def test_a_due_check_files_what_the_worker_ended_after_the_previous_check(app, ftp_account):
    """No worker runs here and the check does not wait: the file is received, then filed by the next due check."""
    app.config.update(FTP_QUIET_SECONDS=0, IMPORT_WAIT_SECONDS=0)
    home = ftpcheck.home_path(ftp_account.username, create=True)
    put(home, "20180516.csv", ftp_csv(), at(0, "09:03"))
    now = [at(0, "09:05")]
    results: list[ftpcheck.CheckResult] = []
    ticker = FtpCheckScheduler(app, clock=lambda: now[0],
                               dispatch=lambda account_id, minute: results.append(ticker.run_check(account_id)))
    assert ticker.tick() == [(ftp_account.id, at(0, "09:05"))]
    assert (results[0].files, results[0].running) == ([], ["20180516.csv"])
    assert (home / "20180516.csv").exists()

    assert queue.process_next().status == "succeeded"  # the worker's step, after that check
    now[0] = at(0, "10:05")
    assert ticker.tick() == [(ftp_account.id, at(0, "10:05"))]
    assert [(f.name, f.succeeded) for f in results[1].files] == [("20180516.csv", True)]
    assert [p.name for p in (home / "processed").iterdir()] == ["20180516_20261130-100500.csv"]
    db.session.rollback()
    assert [(i.filename, i.status) for i in db.session.scalars(db.select(Import))] == [("20180516.csv", "succeeded")]


def test_a_long_check_is_not_overlapped_by_the_next_one(app, ftp_account, monkeypatch, import_worker):
    app.config["FTP_QUIET_SECONDS"] = 0
    home = ftpcheck.home_path(ftp_account.username, create=True)
    put(home, "20180516.csv", ftp_csv(), at(0, "09:04"))
    inside, release = threading.Event(), threading.Event()
    real_receive = ingest.receive

    def slow_receive(*args, **kwargs):
        inside.set()
        release.wait(10)
        return real_receive(*args, **kwargs)

    monkeypatch.setattr(ingest, "receive", slow_receive)
    ticker = FtpCheckScheduler(app, clock=lambda: at(0, "09:05"))
    results = []
    first = threading.Thread(target=lambda: results.append(ticker.run_check(ftp_account.id)))
    first.start()
    try:
        assert inside.wait(10)
        second = ticker.run_check(ftp_account.id)
        assert second is not None and second.busy
    finally:
        release.set()
        first.join(10)
    assert [f.name for f in results[0].files] == ["20180516.csv"]
    db.session.rollback()
    assert db.session.scalar(db.select(db.func.count(Import.id))) == 1


def test_errors_are_logged_and_the_scheduler_keeps_going(app, week_accounts, caplog):
    calls = []

    def failing(account_id, minute):
        calls.append(minute)
        raise RuntimeError("boom")

    now = [at(0, "09:05")]
    ticker = FtpCheckScheduler(app, clock=lambda: now[0], dispatch=failing)
    ticker.safe_tick()
    assert "scheduler tick failed" in caplog.text
    now[0] = at(0, "10:05")
    ticker.safe_tick()
    assert calls == [at(0, "09:05"), at(0, "10:05")]
    # A check that raises is logged by run_check, not raised.
    assert FtpCheckScheduler(app).run_check(9999) is None


def test_start_and_stop_the_scheduler_thread(app):
    running = scheduler_module.start(app, clock=lambda: at(0, "09:00"))
    try:
        job = running.scheduler.jobs[0]
        assert (job.interval, job.unit, job.at_time.second) == (1, "minutes", 0)
        assert running._thread.is_alive()
        # データ未着 is evaluated every minute with the same clock.
        assert running.overdue_checks.clock is running.checks.clock
        overdue_job = next(j for j in running.scheduler.jobs if j.job_func.func == running.overdue_checks.safe_tick)
        assert (overdue_job.interval, overdue_job.unit, overdue_job.at_time.second) == (1, "minutes", 0)
    finally:
        running.stop()
    assert not running._thread.is_alive()


def test_one_accounts_failing_overdue_evaluation_does_not_stop_the_others(app, make_account, caplog, monkeypatch):
    from app.services import overdue
    from servers.scheduler import OverdueChecks

    first = make_account("first", error_to=["a@first.example"], senders=["s@first.example"], overdue_enabled="on",
                         overdue_daily="same")
    second = make_account("second", error_to=["a@second.example"], senders=["s@second.example"],
                          overdue_enabled="on", overdue_daily="same")
    real = overdue.evaluate

    def evaluate(account_id, now):
        if account_id == first.id:
            raise RuntimeError("boom")
        return real(account_id, now)

    monkeypatch.setattr(overdue, "evaluate", evaluate)
    done = OverdueChecks(app, clock=lambda: at(0, "09:30")).tick()
    assert len(done) == 1 and f"overdue evaluation of account #{first.id} failed" in caplog.text
    assert overdue.watched_accounts() == [first.id, second.id]


def test_a_file_dated_after_the_clock_is_imported_by_a_later_due_check(app, ftp_account, import_worker):
    # The file's mtime is a week ahead of the scheduler's clock (clock skew, a client that set it).
    app.config["FTP_QUIET_SECONDS"] = 0
    home = ftpcheck.home_path(ftp_account.username, create=True)
    put(home, "20180516.csv", ftp_csv(), at(7, "09:00"))
    now = [at(0, "09:05")]
    ticker = FtpCheckScheduler(app, clock=lambda: now[0], dispatch=lambda account_id, minute: results.append(
        ticker.run_check(account_id)))
    results: list[ftpcheck.CheckResult] = []
    assert ticker.tick() == [(ftp_account.id, at(0, "09:05"))]
    assert (results[0].files, results[0].waiting) == ([], ["20180516.csv"])

    now[0] = at(0, "10:05")
    assert ticker.tick() == [(ftp_account.id, at(0, "10:05"))]
    assert [(f.name, f.succeeded) for f in results[1].files] == [("20180516.csv", True)]
    db.session.rollback()
    assert [(i.filename, i.status) for i in db.session.scalars(db.select(Import))] == [("20180516.csv", "succeeded")]
    assert [p.name for p in (home / "processed").iterdir()] == ["20180516_20261130-100500.csv"]
