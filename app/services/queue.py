"""The import queue: claim the oldest queued import, take back claims whose holder died, run the next one.

Claims and leases themselves (who holds a claim, whether its holder is alive) are services/claims.py;
running a claimed import is services/runner.py. `process_next()` is the only caller of
`runner.run_import()` outside tests: the worker calls it, and so does a process without a worker
(`run_until_ended`, the CLI). Channels that answer when an import has ended (API `?wait=1`,
今すぐチェック) wait for it with `wait_for`. What waits, and since when, is `waiting` (GET /healthz,
連携状況).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import and_, func, select, update

from ..errors import NotFound, RowError
from ..extensions import db
from ..models import Import, utcnow
from . import claims, runner

log = logging.getLogger(__name__)

# A claim whose holder cannot be seen alive or dead (no lock file on this data folder, no lease:
# made by an older version) is taken back when it is this old. See services/claims.py.
STALE_SECONDS = 300
# An import whose worker died this many times is failed instead of being retried forever.
MAX_ATTEMPTS = 3
# How often a waiter looks at the database for an import ended by another process (a worker of
# `run.py --only worker`); an import ended in this process wakes it at once.
WAIT_POLL_SECONDS = 0.25
PENDING = (Import.QUEUED, Import.RUNNING)

# Bumped and announced whenever an import ends in this process, so waiters need not poll for it.
_ended = threading.Condition()
_ended_count = 0


def _announce_ended() -> None:
    global _ended_count
    with _ended:
        _ended_count += 1
        _ended.notify_all()


@dataclass(frozen=True)
class Waiting:
    """What waits in the queue: how many queued imports, and when the oldest was received (naive UTC)."""

    count: int
    oldest: dt.datetime | None

    def age_seconds(self, now: dt.datetime) -> int | None:
        """Whole seconds the oldest has waited at `now` (aware), None when nothing waits."""
        if self.oldest is None:
            return None
        utc_now = now.astimezone(dt.UTC).replace(tzinfo=None)
        return max(0, int((utc_now - self.oldest).total_seconds()))


def waiting(account_id: int | None = None) -> Waiting:
    """The queued imports (all accounts', or one account's) in one query on the status index."""
    query = select(func.count(Import.id), func.min(Import.received_at)).where(Import.status == Import.QUEUED)
    if account_id is not None:
        query = query.where(Import.account_id == account_id)
    count, oldest = db.session.execute(query).one()
    return Waiting(count, oldest)


def waiting_by_channel(account_id: int) -> dict[str, Waiting]:
    """One account's queued imports per channel (channels with none are left out)."""
    rows = db.session.execute(
        select(Import.channel, func.count(Import.id), func.min(Import.received_at))
        .where(Import.status == Import.QUEUED, Import.account_id == account_id)
        .group_by(Import.channel)
    ).all()
    return {channel: Waiting(count, oldest) for channel, count, oldest in rows}


def claim_next() -> int | None:
    """Atomically take the oldest queued import for this process; return its id or None."""
    while True:
        import_id = db.session.scalar(
            select(Import.id).where(Import.status == Import.QUEUED).order_by(Import.id).limit(1)
        )
        if import_id is None:
            db.session.rollback()
            return None
        result = db.session.execute(
            update(Import)
            .where(Import.id == import_id, Import.status == Import.QUEUED)
            .values(status=Import.RUNNING, attempts=Import.attempts + 1, **claims.claim_values()),
            execution_options={"synchronize_session": False},
        )
        db.session.commit()
        if result.rowcount == 1:
            claims.claimed()
            return import_id
        # Another worker took it between our SELECT and UPDATE: try the next one.


def requeue_stale(older_than_seconds: int = STALE_SECONDS) -> int:
    """Put imports whose holder died back in the queue (or fail them after MAX_ATTEMPTS); return how many.

    A claim is taken back when its holder's lock file on this data folder is unlocked (the
    process ended), when its lease ran out (PostgreSQL), or, for a claim whose holder this
    process cannot see either way, when it is `older_than_seconds` old. See services/claims.py.
    """
    holder = claims.holder()
    now = claims.database_now()
    limit = utcnow() - dt.timedelta(seconds=older_than_seconds)
    running = db.session.execute(
        select(Import.id, Import.attempts, Import.claimed_by, Import.lease_until.is_not(None),
               Import.lease_until < now, Import.claimed_at < limit)
        .where(Import.status == Import.RUNNING, Import.claimed_at.is_not(None))
    ).all()
    db.session.rollback()  # no read transaction held while lock files are looked at
    count = 0
    for import_id, attempts, claimed_by, leased, lease_over, old in running:
        dead = holder.is_dead(claimed_by)
        if dead:
            guard, why = Import.claimed_by == claimed_by, "its process has ended"
        elif dead is None and leased and lease_over:
            guard, why = Import.lease_until < claims.database_now(), "its lease ran out"
        elif dead is None and not leased and old:
            guard, why = Import.claimed_at < limit, f"its claim is over {older_than_seconds}s old"
        else:
            continue  # alive, or not known to be dead yet
        guard = and_(Import.id == import_id, Import.status == Import.RUNNING, guard)
        if attempts >= MAX_ATTEMPTS:
            # The file itself keeps killing the worker: stop retrying and tell the senders.
            taken = db.session.execute(update(Import).where(guard).values(**claims.claim_values()),
                                       execution_options={"synchronize_session": False})
            db.session.commit()
            if taken.rowcount == 1:
                runner.finish_failed(import_id, [RowError(message=(
                    f"取込処理が{attempts}回中断されたため、取込を中止しました。"
                    "ファイルの内容を確認して再取込してください。"))], None, None, None)
                _announce_ended()
                count += 1
            continue
        result = db.session.execute(
            update(Import).where(guard).values(status=Import.QUEUED, claimed_at=None, claimed_by=None,
                                               lease_until=None),
            execution_options={"synchronize_session": False},
        )
        db.session.commit()
        if result.rowcount == 1:
            log.warning("import #%s requeued: %s (holder %s)", import_id, why, claimed_by or "-")
            count += 1
    holder.sweep({claimed_by for _, _, claimed_by, *_ in running if claimed_by})
    return count


def process_next() -> Import | None:
    """Claim the oldest queued import and run it (report included); None when the queue is empty."""
    import_id = claim_next()
    if import_id is None:
        return None
    try:
        return runner.run_import(import_id)
    finally:
        _announce_ended()


def _status(import_id: int) -> str | None:
    db.session.rollback()  # a new transaction, so commits of other threads and processes are seen
    return db.session.scalar(select(Import.status).where(Import.id == import_id))


def _fresh(import_id: int) -> Import:
    imp = db.session.get(Import, import_id, populate_existing=True)
    if imp is None:
        raise NotFound(f"取込 #{import_id} は存在しません。")
    return imp


def wait_for(import_id: int, timeout: float) -> Import:
    """Wait at most `timeout` seconds for the import to leave queued/running; return it as it is then.

    A worker of this process wakes the wait as soon as it ends an import; one of another process
    is noticed at the next look at the database (every WAIT_POLL_SECONDS). The caller's session
    must hold nothing uncommitted: each look starts a new transaction.
    """
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        with _ended:
            seen = _ended_count
        status = _status(import_id)
        left = deadline - time.monotonic()
        if status not in PENDING or left <= 0:
            return _fresh(import_id)
        with _ended:
            _ended.wait_for(lambda seen=seen: _ended_count != seen, min(WAIT_POLL_SECONDS, left))


def run_until_ended(import_id: int, _seconds: float | None = None) -> Import:
    """Run the queue here, through the worker's own step, until the import has ended; return it.

    For a process without a worker (the CLI). Imports are claimed oldest first as the worker
    claims them, so files of the same name still replace each other in the order they came;
    an import claimed by a worker of another process is waited for instead. No time limit (the
    second argument, so it can stand in for `wait_for`, is ignored): this process does the work.
    """
    stale_seconds = int(current_app.config.get("CLAIM_STALE_SECONDS", STALE_SECONDS))
    requeue_stale(stale_seconds)
    while _status(import_id) in PENDING:
        if process_next() is None:  # nothing left to claim: ours is running in another process
            wait_for(import_id, WAIT_POLL_SECONDS * 4)
            requeue_stale(stale_seconds)  # as the worker does between polls, should that process die
    return _fresh(import_id)
