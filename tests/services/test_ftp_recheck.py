"""The automatic re-check: files a check left because they were still settling are checked again after the quiet period."""
from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

from app.extensions import db
from app.models import Import, IntegrationSettings
from app.services import ftpcheck, ftpreport, integration
from servers.scheduler import RECHECK_POLL_SECONDS, FtpCheckScheduler, RunningScheduler
from tests.fixtures.ftp import ftp_csv
from tests.fixtures.html import element

T = dt.datetime(2026, 11, 28, 9, 15, 30, tzinfo=ZoneInfo("Asia/Tokyo"))


def _put(home, name: str, written: dt.datetime) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / name).write_bytes(ftp_csv())
    os.utime(home / name, (written.timestamp(), written.timestamp()))


def _settings(account_id: int) -> IntegrationSettings:
    db.session.rollback()
    return db.session.scalar(db.select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))


def _imports() -> list[tuple[str, str]]:
    db.session.rollback()
    return [(i.filename, i.status) for i in db.session.scalars(db.select(Import).order_by(Import.id))]


def test_a_file_within_the_quiet_period_is_checked_again_once_it_has_passed(app, client, login, ftp_account,
                                                                           import_worker):
    app.config["FTP_QUIET_SECONDS"] = 10
    login("admin@acme.example")
    home = ftpcheck.home_path(ftp_account.username, create=True)
    _put(home, "20261201.csv", T - dt.timedelta(seconds=2))  # finished uploading 2 s before the scheduled check

    first = ftpcheck.check_account(ftp_account.id, now=T, trigger=ftpreport.SCHEDULED)

    assert (first.files, first.waiting, first.reasons) == ([], ["20261201.csv"], {"20261201.csv": "quiet"})
    assert _settings(ftp_account.id).ftp_recheck_at == dt.datetime(2026, 11, 28, 0, 15, 40)  # T + 10 s, UTC
    page = client.get("/settings/integration").get_data(as_text=True)
    assert element(page, "ftp-recheck").text == "自動の再チェック予定: 09:15:40"  # TIMEZONE (Asia/Tokyo)
    clock = [T + dt.timedelta(seconds=9)]
    ticker = FtpCheckScheduler(app, clock=lambda: clock[0])
    try:
        assert ticker.recheck_tick() == []  # not due yet
        clock[0] = T + dt.timedelta(seconds=10)
        assert ticker.recheck_tick() == [ftp_account.id]
        assert ticker.recheck_tick() == []  # claimed once: at most one re-check per account
    finally:
        ticker.shutdown(wait=True)

    assert _imports() == [("20261201.csv", Import.SUCCEEDED)]
    assert [p.name for p in (home / "processed").iterdir()] == ["20261201_20261128-091540.csv"]
    settings = _settings(ftp_account.id)
    assert (settings.last_ftp_check_trigger, settings.ftp_recheck_at) == (ftpreport.RECHECK, None)
    last = element(client.get("/settings/integration").get_data(as_text=True), "last-check")
    assert last.classes == {"last-check", "check-success"}
    assert last.text.startswith("最終チェック: 2026-11-28 09:15:40 (自動の再チェック)")
    assert settings.last_ftp_check_result["outcome"] == ftpreport.SUCCESS
    assert settings.last_ftp_check_at == dt.datetime(2026, 11, 28, 0, 15, 40)


def test_one_pending_recheck_per_account_and_none_for_temporary_names_or_a_stopped_account(app, ftp_account):
    app.config["FTP_QUIET_SECONDS"] = 10
    home = ftpcheck.home_path(ftp_account.username, create=True)
    _put(home, "20261201.csv", T)
    ftpcheck.check_account(ftp_account.id, now=T)
    _put(home, "20261202.csv", T + dt.timedelta(seconds=5))
    ftpcheck.check_account(ftp_account.id, now=T + dt.timedelta(seconds=5))
    # The later check replaced the pending re-check (one column per account): due at its own clock + 10 s.
    assert _settings(ftp_account.id).ftp_recheck_at == dt.datetime(2026, 11, 28, 0, 15, 45)

    for name in ("20261201.csv", "20261202.csv"):
        os.rename(home / name, home / f"{name}.filepart")
    result = ftpcheck.check_account(ftp_account.id, now=T + dt.timedelta(seconds=30))
    assert (result.waiting, result.temporary) == ([], ["20261201.csv.filepart", "20261202.csv.filepart"])
    assert _settings(ftp_account.id).ftp_recheck_at is None  # nobody knows when the client renames them

    os.rename(home / "20261201.csv.filepart", home / "20261201.csv")
    os.utime(home / "20261201.csv", (T.timestamp() + 30, T.timestamp() + 30))
    ftpcheck.check_account(ftp_account.id, now=T + dt.timedelta(seconds=30))
    integration.update_settings(ftp_account.id, {"status": "stopped"}, actor="test")
    ticker = FtpCheckScheduler(app, clock=lambda: T + dt.timedelta(minutes=1))
    try:
        # Due, claimed, and refused by the same admission as a scheduled check: nothing is read.
        assert ticker.recheck_tick() == [ftp_account.id]
    finally:
        ticker.shutdown(wait=True)
    assert _imports() == [] and (home / "20261201.csv").exists()


def test_the_running_scheduler_polls_for_rechecks(app):
    running = RunningScheduler(FtpCheckScheduler(app))
    jobs = [(job.interval, job.unit, job.job_func.func.__name__) for job in running.scheduler.jobs]
    assert (RECHECK_POLL_SECONDS, "seconds", "safe_recheck_tick") in jobs
