"""The scheduler: a `schedule.Scheduler` ticking every minute in a thread, running each FTP account's checks.

Each tick asks, for every account whose integration is enabled, mode FTP and status
active, whether the minute is one of its check times (`checktimes.is_check_time`, the
same rule the settings tab lists), and runs `ftpcheck.check_account` for those accounts
on a small thread pool, so a long check never delays the next tick or another account.
A check never overlaps the previous one of the same account (ftpcheck's lock: the later
one is skipped and logged). Every RECHECK_POLL_SECONDS it also claims the automatic re-checks
that are due (`ftpreport.claim_rechecks`: files a check left because they were still settling)
and runs them on the same pool through the same `run_check`.

Decisions (where docs/spec.md is silent):
- The clock is injectable (`clock()` returns an aware datetime; default: now in
  TIMEZONE). Each tick evaluates every minute since the previous tick (at most
  CATCH_UP_MINUTES back), so a tick that runs late, or a thread that was paused, does not
  lose a check time, and no minute is evaluated twice.
- Every job is wrapped: an error is logged and the scheduler keeps running.
- Originals older than KEEP_FILES_DAYS are deleted once per calendar day of the same clock
  (`FilePurge`: on the first tick after start and the first tick of each day; a failed run
  is tried again at the next tick), so a test drives it with a clock, not today's date.
- The 破棄のお知らせ of the days that ended are queued the same way (`DiscardNotices`: the first
  tick from 00:05 of each day, and after start; services/notices.py keeps them one per day).
- データ未着の通知 is evaluated for every account that has it on, every minute, with the same clock
  (`OverdueChecks`, services/overdue.py: each period alerts once and closes once, whoever evaluates).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import schedule
from flask import Flask

from app import config
from app.errors import RenkeiError
from app.extensions import db
from app.services import files, ftpcheck, ftpreport, notices, overdue

log = logging.getLogger(__name__)

CATCH_UP_MINUTES = 15
CHECK_THREADS = 4
# How often due re-checks are looked for: a re-check runs at most this late after its time.
RECHECK_POLL_SECONDS = 1

Clock = Callable[[], dt.datetime]
Dispatch = Callable[[int, dt.datetime], None]


def _minute(value: dt.datetime) -> dt.datetime:
    return value.replace(second=0, microsecond=0)


def due_accounts(app: Flask, minute: dt.datetime) -> list[int]:
    """Ids of the accounts whose FTP check time is `minute` (aware)."""
    with app.app_context():
        return ftpcheck.accounts_due(minute)


def _logged(tick: Callable[[], Any], failure: str) -> None:
    """Run a scheduled job's tick; an error is logged with `failure`, never raised (the thread keeps ticking)."""
    try:
        tick()
    except Exception:
        log.exception(failure)


class FtpCheckScheduler:
    """Decides every minute which accounts to check and hands them to `dispatch`."""

    def __init__(self, app: Flask, clock: Clock | None = None, dispatch: Dispatch | None = None):
        self.app = app
        tz = config.timezone(app)
        self.clock: Clock = clock or (lambda: dt.datetime.now(tz))
        self._pool: ThreadPoolExecutor | None = None
        self.dispatch: Dispatch = dispatch or self._submit
        self._last_minute: dt.datetime | None = None

    def tick(self, now: dt.datetime | None = None) -> list[tuple[int, dt.datetime]]:
        """Run the checks due in every minute since the last tick up to `now`; return (account id, minute) fired."""
        current = _minute(now or self.clock())
        if self._last_minute is None or current <= self._last_minute:
            minutes = [current] if self._last_minute is None else []
        else:
            first = max(self._last_minute + dt.timedelta(minutes=1), current - dt.timedelta(minutes=CATCH_UP_MINUTES))
            count = int((current - first).total_seconds() // 60) + 1
            minutes = [first + dt.timedelta(minutes=i) for i in range(count)]
        fired: list[tuple[int, dt.datetime]] = []
        for minute in minutes:
            for account_id in due_accounts(self.app, minute):
                fired.append((account_id, minute))
                self.dispatch(account_id, minute)
        if minutes:
            self._last_minute = current
        return fired

    def safe_tick(self) -> None:
        """The scheduled job: a tick whose errors are logged, never raised."""
        _logged(self.tick, "scheduler tick failed")

    def recheck_tick(self, now: dt.datetime | None = None) -> list[int]:
        """Start the re-checks due at `now` (each on the pool, as a check of trigger "recheck"); return their accounts."""
        with self.app.app_context():
            due = ftpreport.claim_rechecks(now or self.clock())
        for account_id in due:
            self._start(account_id, ftpreport.RECHECK)
        return due

    def safe_recheck_tick(self) -> None:
        """The scheduled job: a recheck_tick whose errors are logged, never raised."""
        _logged(self.recheck_tick, "ftp re-check tick failed")

    def _submit(self, account_id: int, minute: dt.datetime) -> None:
        self._start(account_id, ftpreport.SCHEDULED)

    def _start(self, account_id: int, trigger: str) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=CHECK_THREADS, thread_name_prefix="renkei-ftpcheck")
        self._pool.submit(self.run_check, account_id, trigger)

    def run_check(self, account_id: int, trigger: str = ftpreport.SCHEDULED) -> ftpcheck.CheckResult | None:
        """Run one account's check in its own app context; errors are logged, never raised."""
        try:
            with self.app.app_context():
                return ftpcheck.check_account(account_id, now=self.clock(), trigger=trigger)
        except RenkeiError as err:
            # The settings changed between the tick and the check (e.g. stopped): nothing to do.
            log.info("ftp check of account #%s not run: %s", account_id, err)
        except Exception:
            log.exception("ftp check of account #%s failed", account_id)
        return None

    def shutdown(self, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait)


class _DailyJob:
    """A job run on the first tick of each of its days; a failed run is logged and tried at the next tick."""

    failure = "a daily job failed"

    def __init__(self, app: Flask, clock: Clock):
        self.app = app
        self.clock = clock
        self._done_for: dt.date | None = None

    def day(self, now: dt.datetime) -> dt.date:
        return now.date()

    def run(self, now: dt.datetime) -> int:
        raise NotImplementedError

    def tick(self, now: dt.datetime | None = None) -> int | None:
        """Run once for `now`'s day; return what the run counted (None: already run that day)."""
        now = now or self.clock()
        day = self.day(now)
        if self._done_for == day:
            return None
        with self.app.app_context():
            counted = self.run(now)
        self._done_for = day
        return counted

    def safe_tick(self) -> None:
        """The scheduled job: errors are logged, never raised."""
        _logged(self.tick, self.failure)


class FilePurge(_DailyJob):
    """The daily job: delete the original files of imports older than KEEP_FILES_DAYS (services/files.purge)."""

    failure = "deleting old original files failed"

    def run(self, now: dt.datetime) -> int:
        return files.purge(now, self.app.config.get("KEEP_FILES_DAYS", 0))


class DiscardNotices(_DailyJob):
    """The daily job: queue the 破棄のお知らせ of the days that ended (services/notices.py, one per account and day)."""

    failure = "queueing the discard notices failed"

    def day(self, now: dt.datetime) -> dt.date:
        # From 00:05 local time: the notice day (services/notices.notice_day).
        return notices.notice_day(now, config.timezone(self.app))

    def run(self, now: dt.datetime) -> int:
        return notices.send_due(now)


class OverdueChecks:
    """The minute job of データ未着の通知: evaluate each account that has it on (one account's error never stops the others)."""

    def __init__(self, app: Flask, clock: Clock):
        self.app = app
        self.clock = clock

    def tick(self, now: dt.datetime | None = None) -> list[overdue.Evaluation]:
        """Evaluate every watched account at `now`; return what each evaluation did."""
        now = now or self.clock()
        done = []
        with self.app.app_context():
            for account_id in overdue.watched_accounts():
                try:
                    done.append(overdue.evaluate(account_id, now))
                except Exception:
                    db.session.rollback()
                    log.exception("overdue evaluation of account #%s failed", account_id)
        return done

    def safe_tick(self) -> None:
        """The scheduled job: errors are logged, never raised."""
        _logged(self.tick, "overdue evaluation failed")


class RunningScheduler:
    """The scheduler thread; `.stop()` ends it after the checks in progress."""

    def __init__(self, checks: FtpCheckScheduler, purge: FilePurge | None = None,
                 discard_notices: DiscardNotices | None = None, overdue_checks: OverdueChecks | None = None):
        self.checks = checks
        self.purge = purge or FilePurge(checks.app, checks.clock)
        self.discard_notices = discard_notices or DiscardNotices(checks.app, checks.clock)
        self.overdue_checks = overdue_checks or OverdueChecks(checks.app, checks.clock)
        self.scheduler = schedule.Scheduler()
        self.scheduler.every().minute.at(":00").do(checks.safe_tick)
        self.scheduler.every().minute.at(":00").do(self.purge.safe_tick)
        self.scheduler.every().minute.at(":00").do(self.discard_notices.safe_tick)
        self.scheduler.every().minute.at(":00").do(self.overdue_checks.safe_tick)
        self.scheduler.every(RECHECK_POLL_SECONDS).seconds.do(checks.safe_recheck_tick)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="renkei-scheduler", daemon=True)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.scheduler.run_pending()
            except Exception:
                log.exception("scheduler job failed")
            idle = self.scheduler.idle_seconds
            self._stopping.wait(min(max(idle if idle is not None else 1.0, 0.05), 1.0))

    def alive(self) -> bool:
        """Whether the ticking thread still runs and stop() was not asked (GET /healthz)."""
        return self._thread.is_alive() and not self._stopping.is_set()

    def start(self) -> RunningScheduler:
        self._thread.start()
        log.info("scheduler started (FTP checks and overdue data every minute; old originals deleted, discard notices "
                 "queued daily)")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop ticking and wait for the checks in progress to finish."""
        self._stopping.set()
        self._thread.join(timeout)
        self.scheduler.clear()
        self.checks.shutdown(wait=True)
        log.info("scheduler stopped")


def start(app: Flask, clock: Clock | None = None) -> RunningScheduler:
    """Start the minute scheduler for `app` (clock: a callable returning an aware datetime)."""
    return RunningScheduler(FtpCheckScheduler(app, clock)).start()
