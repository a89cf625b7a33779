"""The same-file-name lock: two workers importing the same file name of one account take turns."""
from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.orm import Session


def lock_file_name(session: Session, account_id: int, filename: str) -> None:
    """Hold the account's lock on `filename` until the session's transaction ends.

    PostgreSQL: a transaction-level advisory lock (otherwise both files' rows would stay).
    SQLite: nothing, since the import's first write (the DELETE of the replaced rows) takes
    the database's write lock already.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"{account_id}:{filename}".encode()).digest()
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int.from_bytes(digest[:8], "big", signed=True)})
