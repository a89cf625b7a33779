"""The original bytes of imports: stored in pieces in `import_files`, read back, streamed, and deleted when old.

One implementation for SQLite and PostgreSQL: a file is rows of at most CHUNK_SIZE bytes
(import_id, seq), so storing, reading and streaming a download each hold one piece at a
time besides the caller's own copy, and no statement ever binds or returns a whole file.
An import whose bytes are kept has a piece 0 (empty for an empty file); an import without
one has none (a refusal, a delivery too large to keep, or an original deleted after
KEEP_FILES_DAYS, which `Import.file_deleted_at` records).
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator

from flask import current_app
from sqlalchemy import delete, func, insert, select, update

from ..extensions import db
from ..models import Import, ImportFile, utcnow

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
# Originals deleted per transaction by the retention job: short write transactions.
PURGE_BATCH = 200


def gone_text(keep_days: int | None = None) -> str:
    """What the import page, the download and 再取込 say about an original deleted after the retention period."""
    if keep_days is None:
        keep_days = current_app.config["KEEP_FILES_DAYS"]
    return f"保存期間({keep_days}日)を過ぎたため元のファイルは削除されました"


class FileGone(Exception):
    """The bytes were deleted while they were being read (the retention job ran meanwhile)."""


def store(import_id: int, data: bytes) -> None:
    """Write a file's bytes for an import inside the caller's transaction (no commit)."""
    view = memoryview(data)
    table = ImportFile.__table__
    for seq, start in enumerate(range(0, max(len(data), 1), CHUNK_SIZE)):
        # One statement per piece: a bound parameter is one piece, never the whole file.
        db.session.execute(insert(table), {"import_id": import_id, "seq": seq,
                                           "data": bytes(view[start:start + CHUNK_SIZE])})


def exists(import_id: int) -> bool:
    """Whether the import's original bytes are kept."""
    return db.session.scalar(
        select(func.count()).select_from(ImportFile).where(ImportFile.import_id == import_id, ImportFile.seq == 0)
    ) == 1


def _pieces(import_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(ImportFile).where(ImportFile.import_id == import_id)) or 0


def _piece(import_id: int, seq: int) -> bytes:
    piece = db.session.scalar(select(ImportFile.data).where(ImportFile.import_id == import_id, ImportFile.seq == seq))
    if piece is None:
        raise FileGone(import_id)
    return piece


def stream(import_id: int) -> Iterator[bytes] | None:
    """The import's bytes as an iterator of pieces, or None when they are not kept (for a download).

    Each piece is read in an app context of its own (a session, a connection and a short read
    transaction per piece), so the iterator outlives the request that made it and a slow
    client holds neither a connection nor a snapshot. An original deleted meanwhile raises
    FileGone instead of ending the stream short.
    """
    count = _pieces(import_id)
    if count == 0:
        return None
    app = current_app._get_current_object()

    def pieces() -> Iterator[bytes]:
        for seq in range(count):
            with app.app_context():
                piece = _piece(import_id, seq)
            yield piece

    return pieces()


def read(import_id: int) -> bytearray | None:
    """The import's whole original bytes, or None when they are not kept (one copy plus one piece in memory)."""
    count = _pieces(import_id)
    if count == 0:
        return None
    size = db.session.scalar(select(func.sum(func.length(ImportFile.data))).where(ImportFile.import_id == import_id))
    buffer = bytearray(size or 0)
    offset = 0
    for seq in range(count):
        piece = _piece(import_id, seq)
        buffer[offset:offset + len(piece)] = piece
        offset += len(piece)
        del piece
    if offset != len(buffer):
        raise FileGone(import_id)
    return buffer


def purge(now: dt.datetime, keep_days: int) -> int:
    """Delete the originals of imports received more than `keep_days` days before `now`; return how many.

    `now` is aware or naive UTC. keep_days 0 keeps every original. The imports (history,
    errors, results) stay; each one whose bytes went gets `file_deleted_at`.
    """
    if keep_days <= 0:
        return 0
    if now.tzinfo is not None:
        now = now.astimezone(dt.timezone.utc).replace(tzinfo=None)
    cutoff = now - dt.timedelta(days=keep_days)
    total = 0
    while True:
        ids = db.session.scalars(
            select(ImportFile.import_id).join(Import, Import.id == ImportFile.import_id)
            .where(ImportFile.seq == 0, Import.received_at < cutoff,
                   Import.status.not_in((Import.QUEUED, Import.RUNNING)))
            .order_by(ImportFile.import_id).limit(PURGE_BATCH)
        ).all()
        if not ids:
            db.session.rollback()
            return total
        db.session.execute(delete(ImportFile).where(ImportFile.import_id.in_(ids)),
                           execution_options={"synchronize_session": False})
        db.session.execute(update(Import).where(Import.id.in_(ids)).values(file_deleted_at=utcnow()),
                           execution_options={"synchronize_session": False})
        db.session.commit()
        total += len(ids)
        log.info("deleted the originals of %d import(s) received before %s (kept %d days): #%s..#%s",
                 len(ids), cutoff.isoformat(timespec="seconds"), keep_days, ids[0], ids[-1])
