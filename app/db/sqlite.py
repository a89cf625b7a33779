"""The settings every SQLite connection of the app gets when it opens."""
from __future__ import annotations

import sqlite3
import time

# How often a connection retries switching to WAL when another one holds the lock it needs.
WAL_ATTEMPTS = 100
WAL_PAUSE_SECONDS = 0.05


def apply_settings(dbapi_connection, connection_record=None, pause=None) -> None:
    """Pool "connect" listener: busy wait first, then WAL, foreign keys and full sync.

    `pause` (seconds → None) waits between WAL attempts; time.sleep, looked up when it is
    needed, unless a test passes its own.
    """
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cur = dbapi_connection.cursor()
    try:
        # Set before anything that locks, so writers wait for each other instead of failing.
        cur.execute("PRAGMA busy_timeout=30000")
        _enter_wal(cur, pause)
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=FULL")
    finally:
        cur.close()


def _enter_wal(cur: sqlite3.Cursor, pause) -> None:
    """WAL lets the UI read while the worker writes.

    Switching a new file to WAL needs an exclusive lock. When two processes open a new database
    at the same moment (two machines' first start), SQLite answers "database is locked" at once
    rather than wait, since waiting could deadlock; the other process is about to finish the
    switch, so try again after a short pause, a bounded number of times.
    """
    for attempt in range(WAL_ATTEMPTS):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_ATTEMPTS - 1:
                raise
            (pause or time.sleep)(WAL_PAUSE_SECONDS)
