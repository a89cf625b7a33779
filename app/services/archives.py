"""A received .zip/.gz: unpacked at receive, each import file queued as an import of its own, in one commit.

Called by ingest.receive() for an archive name, before the channel acknowledges: the archive's
own import (status "unpacked", its original bytes kept) and one queued import per file
(`archive_id` → the archive's import, its bytes stored like a file sent alone) are committed
together, so a crash leaves either nothing (no acknowledgement: the sender sends again) or every
file queued; the worker then imports each one all-or-nothing, oldest id first, which is the
archive's order. An archive that cannot be unpacked (limits, password, broken) becomes one failed
import with the reason and an error report; an archive inside the archive becomes a failed import
of its own. Files that are not import files are listed on every import of the archive
(ignored_attachments) and in its report mails.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from flask import current_app
from sqlalchemy import select

from .. import config
from ..enums import Channel
from ..errors import RowError
from ..extensions import db
from ..importer import archive as unpacking
from ..importer.filename import ENDINGS_TEXT, base_name
from ..models import Import, ImportErrorRecord, utcnow
from . import accounts, files, queue, reports, runner, zippassword

log = logging.getLogger(__name__)

NOTHING_MESSAGE = (f"アーカイブに取り込めるファイル({ENDINGS_TEXT})がありませんでした。"
                   "ファイル名が yyyymmdd.csv などの形式のファイルを入れて送り直してください。")
# The largest file each channel takes alone is the most an archive of it may unpack to.
CAPS = {Channel.MAIL: "SMTP_MAX_BYTES", Channel.FTP: "FTP_MAX_BYTES"}


def cap(channel: str) -> int:
    """The total uncompressed size an archive of this channel may hold (the channel's own upload cap)."""
    return int(config.get(current_app, CAPS.get(channel, "MAX_UPLOAD_BYTES")))


def receive(account_id: int, filename: str, data: bytes, *, channel: str, sender: str | None,
            dedupe_key: str | None, note: str | None, ignored: list[str] | None,
            trace: dict[str, str | None] | None, store: Callable[..., tuple[Import, bool]]) -> tuple[Import, bool]:
    """Store an archive and its files (committed); return (the archive's import, whether it is new).

    `store` is ingest._store (for the archive that is refused: a failed import with its bytes).
    """
    if dedupe_key:
        existing = db.session.scalar(select(Import).where(Import.account_id == account_id,
                                                          Import.dedupe_key == dedupe_key))
        if existing is not None:
            return existing, False
    name = base_name(filename)
    try:
        unpacked = unpacking.unpack(name, data, max_total=cap(channel), password=zippassword.candidates(account_id))
    except unpacking.ArchiveRefused as refusal:
        return _refused(account_id, filename, data, refusal.message, channel=channel, sender=sender,
                        dedupe_key=dedupe_key, note=note, ignored=ignored, trace=trace, store=store)
    listed = list(ignored or []) + [f"{name} 内の {entry}" for entry in unpacked.ignored]
    if not unpacked.entries:
        message = NOTHING_MESSAGE
        if unpacked.ignored:
            message += "(取り込まなかったファイル: " + "、".join(unpacked.ignored) + ")"
        return _refused(account_id, filename, data, message, channel=channel, sender=sender, dedupe_key=dedupe_key,
                        note=note, ignored=listed, trace=trace, store=store)
    from .ingest import _trace  # one list of the trace columns

    now = utcnow()
    common = dict(account_id=account_id, channel=channel, sender=sender, received_at=now, **_trace(trace))
    box = Import(**common, filename=name, status=Import.UNPACKED, finished_at=now, size=len(data),
                 sha256=hashlib.sha256(data).hexdigest(), dedupe_key=dedupe_key, note=note,
                 ignored_attachments=listed or None)
    db.session.add(box)
    db.session.flush()
    files.store(box.id, data)
    failed: list[tuple[Import, RowError]] = []
    for entry in unpacked.entries:
        imp = Import(**common, filename=entry.name, archive_id=box.id, note=f"{name}(取込 #{box.id})から展開",
                     ignored_attachments=listed or None, size=len(entry.data or b""),
                     sha256=hashlib.sha256(entry.data).hexdigest() if entry.data is not None else None,
                     status=Import.QUEUED if entry.error is None else Import.FAILED)
        db.session.add(imp)
        db.session.flush()
        if entry.error is None:
            files.store(imp.id, entry.data)
        else:
            failed.append((imp, RowError(message=entry.error, value=entry.name)))
    for imp, error in failed:
        # Refused inside the archive: failed at once, its error and report in the same commit.
        imp.started_at = imp.finished_at = now
        imp.error_count = 1
        db.session.add(ImportErrorRecord(import_id=imp.id, message=error.message, value=error.value))
        reports.failure_report(imp, [error])
    db.session.commit()
    log.info("archive account=%s channel=%s file=%s import=#%s unpacked files=%d refused=%d ignored=%d",
             accounts.label(account_id), channel, name, box.id, len(unpacked.entries), len(failed),
             len(unpacked.ignored))
    return box, True


def _refused(account_id: int, filename: str, data: bytes, message: str, *, store: Callable[..., tuple[Import, bool]],
             **kwargs) -> tuple[Import, bool]:
    imp, created = store(account_id, filename, data, status=Import.RUNNING, **kwargs)
    if created:
        imp = runner.finish_failed(imp.id, [RowError(message=message, value=base_name(filename))], None, None, None)
        log.info("archive account=%s file=%s import=#%s refused: %s", accounts.label(account_id), imp.filename,
                 imp.id, message)
    return imp, created


def dry_run(account_id: int, filename: str, data: bytes, *, check: Callable):
    """検証のみ of an archive: unpack it and check each file as ingest.dry_run does; errors name their file."""
    from dataclasses import replace

    from ..errors import ErrorList

    try:
        unpacked = unpacking.unpack(base_name(filename), data, max_total=cap(Channel.WEB),
                                    password=zippassword.candidates(account_id))
    except unpacking.ArchiveRefused as refusal:
        unpacked = None
        errors = ErrorList([RowError(message=refusal.message, value=base_name(filename))])
    results, parts = [], []
    if unpacked is not None:
        errors = ErrorList()
        if not unpacked.entries:
            errors.append(RowError(message=NOTHING_MESSAGE, value=base_name(filename)))
        for entry in unpacked.entries:
            if entry.error is not None:
                errors.append(RowError(message=f"「{entry.name}」: {entry.error}", value=entry.name))
                continue
            result = check(account_id, entry.name, entry.data)
            results.append(result)
            parts.append((entry.name, result))
            errors.extend(replace(error, message=f"「{entry.name}」: {error.message}") for error in result.errors)
    from .ingest import DryRun  # ingest imports this module

    first = results[0] if results else None
    return DryRun(period=first.period if first else None, rows=sum(r.rows for r in results), errors=errors,
                  encoding=first.encoding if first else None, parts=parts)


def entries(archive_id: int) -> list[Import]:
    """The imports unpacked from an archive's import, in the archive's order."""
    return list(db.session.scalars(select(Import).where(Import.archive_id == archive_id).order_by(Import.id)))


def settled(imp: Import, wait: Callable[[int, float], Import], seconds: float) -> tuple[Import, str]:
    """Wait for an import, and for an archive for each of its files; return (import, the status that counts).

    For an unpacked archive the status that counts is running while a file is still queued or
    running, succeeded when every file succeeded, failed otherwise.
    """
    if imp.status != Import.UNPACKED:
        return imp, imp.status
    deadline = time.monotonic() + max(0.0, seconds)
    statuses = []
    for entry in entries(imp.id):
        statuses.append(wait(entry.id, max(0.0, deadline - time.monotonic())).status)
    if any(status in queue.PENDING for status in statuses):
        return imp, Import.RUNNING
    return imp, Import.SUCCEEDED if all(s == Import.SUCCEEDED for s in statuses) else Import.FAILED
