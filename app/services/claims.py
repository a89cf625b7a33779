"""Who holds a claimed import, and whether that process still lives, so a dead holder's claim is taken back at once.

Every process that claims imports (run.py's worker, the web part's `?wait=1`, an FTP check, the CLI)
is one *holder*, named `host:pid:nonce` (the nonce is random and new at every start), stored in
`imports.claimed_by`. Another process tells a dead holder from a live one by two signs of life:

- A lock file `{DATA_DIR}/holders/{nonce}.lock`, locked with flock() by the holder for its whole
  life. The kernel drops the lock when the process ends, kill -9 included, so a lock file that
  nobody holds means its holder is gone, and any process on the same data folder sees that at
  once. That is every process on SQLite (one database file, one data folder, one machine), and on
  PostgreSQL a process restarted on its own data folder.
- On PostgreSQL a lease: `imports.lease_until`, set at the claim and renewed by a heartbeat thread
  every lease/5 seconds while the holder has running imports. Any worker takes back a claim whose
  lease ran out (a worker on another machine died, or its machine was lost). Times are the
  database server's clock, so the machines' clocks need not agree. There is no lease on SQLite:
  the import's transaction holds the database's write lock, and a heartbeat would wait behind it.

A claim with neither sign (made by an older version, or on SQLite from another data folder) is
taken back when it is CLAIM_STALE_SECONDS old, as before.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import socket
import threading
import time
import uuid
from pathlib import Path

from flask import current_app
from sqlalchemy import Engine, event, func, or_, update
from sqlalchemy.sql.elements import ColumnElement

from ..extensions import db
from ..models import Import, utcnow

try:
    import fcntl
except ImportError:  # no flock() (Windows): only the lease and CLAIM_STALE_SECONDS remain
    fcntl = None

log = logging.getLogger(__name__)

FOLDER = "holders"
# Seconds a PostgreSQL claim lives without a heartbeat (the heartbeat comes every lease/5 seconds).
LEASE_SECONDS = 10
# A dead holder's lock file is removed once no running claim names it and it is this old
# (never a file just created, which its holder may not have locked yet).
SWEEP_AGE_SECONDS = 60
_NONCE = re.compile(r"[0-9a-f]{32}")

_holders: dict[str, Holder] = {}
_holders_lock = threading.Lock()


class Holder:
    """This process as the holder of claims on one data folder: its id, its lock file, its heartbeat."""

    def __init__(self, data_dir: str):
        self.pid = os.getpid()
        self.nonce = uuid.uuid4().hex
        self.id = f"{socket.gethostname()}:{self.pid}:{self.nonce}"
        self.folder = Path(data_dir) / FOLDER
        self._fd: int | None = None
        self._beat_lock = threading.Lock()
        self._beat_wanted = False
        self._beat_thread: threading.Thread | None = None
        self._beat_stop = threading.Event()
        self._swept_at = 0.0
        if fcntl is not None:
            self._lock_file()

    def _lock_file(self) -> None:
        """Create and lock {folder}/{nonce}.lock for the life of the process (the fd is never closed)."""
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.folder / f"{self.nonce}.lock", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"{self.id}\n".encode())
        except OSError as error:
            log.warning("claim lock file not made in %s (%s): a claim of this process left by a crash "
                        "is taken back after CLAIM_STALE_SECONDS", self.folder, error)
            return
        os.set_inheritable(fd, False)
        self._fd = fd

    # ---------------------------------------------------------------------------------------
    # The heartbeat (PostgreSQL)

    def keep_alive(self, engine: Engine, lease_seconds: float) -> None:
        """Make sure the heartbeat runs while this holder has running claims (call after each claim's commit)."""
        with self._beat_lock:
            self._beat_wanted = True
            if self._beat_thread is None:
                self._beat_stop = stop = threading.Event()
                # An engine disposed of (the app shutting down, a test's database dropped) ends the heartbeat.
                event.listen(engine, "engine_disposed", lambda _engine: stop.set(), once=True)
                self._beat_thread = threading.Thread(target=self._beat, args=(engine, lease_seconds, stop),
                                                     name="renkei-claim-heartbeat", daemon=True)
                self._beat_thread.start()

    def _beat(self, engine: Engine, lease_seconds: float, stop: threading.Event) -> None:
        """Renew the lease of every running claim of this holder; end when there is none left."""
        interval = max(lease_seconds / 5, 0.2)
        failing_since: float | None = None
        while True:
            if stop.wait(interval):  # the claim itself set the first lease
                with self._beat_lock:
                    self._end_beat()
                return
            try:
                with engine.begin() as connection:
                    renewed = connection.execute(
                        update(Import).where(Import.status == Import.RUNNING, Import.claimed_by == self.id)
                        .values(lease_until=lease_until(lease_seconds, engine.dialect.name))
                    ).rowcount
                failing_since = None
            except Exception as error:  # the database is away: a lease lost meanwhile is refused at the finish
                failing_since = failing_since or time.monotonic()
                log.warning("claim heartbeat failed holder=%s: %s", self.id, error)
                # Long past every lease: the claims are forfeit; the next claim starts a heartbeat again.
                renewed = 0 if time.monotonic() - failing_since > 3 * lease_seconds else 1
            if renewed:
                continue
            with self._beat_lock:
                if self._beat_wanted:  # a claim was made since the last beat: it may not have been visible
                    self._beat_wanted = False
                    continue
                self._end_beat()
                return

    def _end_beat(self) -> None:
        if self._beat_thread is threading.current_thread():
            self._beat_thread = None

    # ---------------------------------------------------------------------------------------
    # Other holders

    def _path(self, holder_id: str | None) -> Path | None:
        nonce = (holder_id or "").rsplit(":", 1)[-1]
        return self.folder / f"{nonce}.lock" if _NONCE.fullmatch(nonce) else None

    def is_dead(self, holder_id: str | None) -> bool | None:
        """True when `holder_id`'s process has ended, False when it lives, None when this process cannot tell."""
        if holder_id == self.id:
            return False
        path = self._path(holder_id)
        if fcntl is None or path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None  # not a holder on this data folder (another machine, or an older version)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)  # also drops the lock just taken
        return True

    def sweep(self, running_holders: set[str]) -> None:
        """Remove (at most once a minute) lock files of dead holders that no running claim names."""
        if fcntl is None or time.monotonic() - self._swept_at < SWEEP_AGE_SECONDS:
            return
        self._swept_at = time.monotonic()
        named = {path for path in map(self._path, running_holders) if path is not None}
        try:
            paths = list(self.folder.glob("*.lock"))
        except OSError:
            return
        for path in paths:
            try:
                if path in named or time.time() - path.stat().st_mtime < SWEEP_AGE_SECONDS:
                    continue
                if self.is_dead(f":{path.stem}"):
                    path.unlink()
            except OSError:
                continue


def holder() -> Holder:
    """The holder of this process for the current app's data folder (made, with its lock file, on first use)."""
    data_dir = str(current_app.config["DATA_DIR"])
    with _holders_lock:
        found = _holders.get(data_dir)
        if found is None or found.pid != os.getpid():  # a forked child is a holder of its own
            found = _holders[data_dir] = Holder(data_dir)
        return found


def lease_seconds() -> float:
    return float(current_app.config.get("CLAIM_LEASE_SECONDS", LEASE_SECONDS))


def has_lease(dialect: str | None = None) -> bool:
    """Whether claims carry a lease renewed by a heartbeat (every database but SQLite)."""
    return (dialect or db.session.get_bind().dialect.name) != "sqlite"


def database_now(dialect: str | None = None) -> ColumnElement | dt.datetime:
    """Now, as a naive UTC time: the database server's clock on PostgreSQL, this machine's on SQLite."""
    dialect = dialect or db.session.get_bind().dialect.name
    if dialect == "postgresql":
        return func.timezone("UTC", func.now())
    return utcnow()


def lease_until(seconds: float, dialect: str | None = None) -> ColumnElement | None:
    """The value of imports.lease_until for a claim made or renewed now (None where claims have no lease)."""
    dialect = dialect or db.session.get_bind().dialect.name
    if not has_lease(dialect):
        return None
    if dialect == "postgresql":
        return func.timezone("UTC", func.now()) + dt.timedelta(seconds=seconds)
    return utcnow() + dt.timedelta(seconds=seconds)


def claim_values() -> dict:
    """The columns that record a claim by this process (with imports.status = running)."""
    return {"claimed_at": utcnow(), "claimed_by": holder().id, "lease_until": lease_until(lease_seconds())}


def claimed() -> None:
    """Call after committing a claim: keeps its lease renewed while this process lives (PostgreSQL)."""
    if has_lease():
        holder().keep_alive(db.engine, lease_seconds())


def still_ours(import_id: int) -> bool:
    """Before an import's final commit: check (and on PostgreSQL lock) that no one took the claim back meanwhile.

    True for an unclaimed queued import (run directly) and for a claim of this process. False
    when the claim was taken back (its lease ran out while the database was out of reach) and
    perhaps taken by another worker: that worker's import is then the one that counts.
    """
    mine = or_(Import.status == Import.QUEUED,
               (Import.status == Import.RUNNING) & or_(Import.claimed_by == holder().id,
                                                       Import.claimed_by.is_(None)))
    result = db.session.execute(
        update(Import).where(Import.id == import_id, mine).values(claimed_by=Import.claimed_by),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount == 1
