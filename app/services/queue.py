"""The import queue: claim the oldest queued import, take back claims whose holder died, run the next one.

Claims and leases themselves (who holds a claim, whether its holder is alive) are services/claims.py;
running a claimed import is services/runner.py.
"""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import and_, select, update

from ..errors import RowError
from ..extensions import db
from ..models import Import, utcnow
from . import claims, runner

log = logging.getLogger(__name__)

# A claim whose holder cannot be seen alive or dead (no lock file on this data folder, no lease:
# made by an older version) is taken back when it is this old. See services/claims.py.
STALE_SECONDS = 300
# An import whose worker died this many times is failed instead of being retried forever.
MAX_ATTEMPTS = 3


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
    return runner.run_import(import_id)
