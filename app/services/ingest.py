"""The ONE ingest path of every channel (mail, FTP, API, browser, CLI): store a received file and queue it.

Flow: a channel calls `receive()` (the file is committed before the channel acknowledges),
the worker calls `queue.process_next()` (claim + `runner.run_import()`), and `run_import()`
replaces the results of the same file name in one transaction and writes the report mail to
the outbox in the same commit as the import's final status. No channel runs an import itself:
those that answer with the outcome (API `?wait=1`, FTP checks, the CLI) wait for it through
`services.queue`. Refused, discarded and undeliverable files are recorded here too; `dry_run`
and `reimport` are thin entry points over the same pieces.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..enums import Channel
from ..errors import ErrorList, Invalid, NotFound, RowError
from ..extensions import db
from ..importer.filename import Period, base_name, is_archive
from ..models import Import, utcnow
from . import accounts, archives, claims, files, runner
from .preview import Collector, Preview

log = logging.getLogger(__name__)

# Callables run after every receive() commit (the in-process worker registers its wake()).
_listeners: list[Callable[[], None]] = []
_listeners_lock = threading.Lock()


@dataclass
class DryRun:
    """What run_import would do with a file, without storing anything."""

    period: Period | None
    rows: int
    errors: list[RowError] = field(default_factory=ErrorList)  # the first MAX_ERRORS_PER_FILE; .total counts all
    encoding: str | None = None
    # The first rows as they would be stored, the totals and the ignored headers (None: no rows were read).
    preview: Preview | None = None
    # An archive: each file's name and its own DryRun, in the archive's order.
    parts: list[tuple[str, DryRun]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def add_listener(callback: Callable[[], None]) -> None:
    """Call `callback` (e.g. Worker.wake) after every received file is committed."""
    with _listeners_lock:
        _listeners.append(callback)


def remove_listener(callback: Callable[[], None]) -> None:
    """Stop calling `callback` after receives."""
    with _listeners_lock:
        if callback in _listeners:
            _listeners.remove(callback)


def _notify() -> None:
    with _listeners_lock:
        callbacks = list(_listeners)
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a listener must never make a channel fail after the file is stored
            log.exception("ingest listener failed")


# ---------------------------------------------------------------------------------------
# Receiving


def receive(account_id: int, filename: str, data: bytes, *, channel: str, sender: str | None = None,
            dedupe_key: str | None = None, note: str | None = None, ignored: list[str] | None = None,
            trace: dict[str, str | None] | None = None) -> Import:
    """Store a received file durably as a queued import and return it (committed before returning).

    `ignored`: the names of the other attachments of the same mail that were not imported
    (stored as Import.ignored_attachments, listed by the report mail). `trace`: a mail's origin
    and DKIM/SPF results (TRACE_COLUMNS of Import).
    """
    if is_archive(filename):
        # A .zip/.gz: its files are queued as imports of their own in the same commit (services/archives.py).
        imp, created = archives.receive(account_id, filename, data, channel=channel, sender=sender,
                                        dedupe_key=dedupe_key, note=note, ignored=ignored, trace=trace, store=_store)
    else:
        imp, created = _store(account_id, filename, data, channel=channel, sender=sender, dedupe_key=dedupe_key,
                              note=note, status=Import.QUEUED, ignored=ignored, trace=trace)
    if created:
        _notify()
    return imp


def record_failure(account_id: int, *, channel: str, filename: str, sender: str | None, message: str,
                   dedupe_key: str | None = None, note: str | None = None, data: bytes | None = None,
                   ignored: list[str] | None = None, trace: dict[str, str | None] | None = None) -> Import:
    """Record a delivery that cannot be imported at all (e.g. too large) as a failed import with one error.

    The error report goes to the outbox in the same commit. A repeat with the same dedupe key
    returns the first record unchanged. `ignored` as for receive() (e.g. the .xlsx of a mail
    without a CSV: "(CSV添付なし)").
    """
    imp, created = _store(account_id, filename, data, channel=channel, sender=sender, dedupe_key=dedupe_key,
                          note=note, status=Import.RUNNING, ignored=ignored, trace=trace)
    if not created:
        return imp
    return runner.finish_failed(imp.id, [RowError(message=message)], None, None, None)


def _store(account_id: int, filename: str, data: bytes | None, *, channel: str, sender: str | None,
           dedupe_key: str | None, note: str | None, status: str,
           ignored: list[str] | None = None, trace: dict[str, str | None] | None = None) -> tuple[Import, bool]:
    """Insert and commit the Import row; return (import, True), or (the earlier one with this dedupe key, False)."""
    if dedupe_key:
        existing = _by_dedupe_key(account_id, dedupe_key)
        if existing is not None:
            log.info("duplicate delivery account=%s channel=%s file=%s import=#%s (already stored)",
                     accounts.label(account_id), channel, existing.filename, existing.id)
            return existing, False
    now = utcnow()
    claim = claims.claim_values() if status == Import.RUNNING else {}
    imp = Import(
        account_id=account_id, channel=channel, filename=base_name(filename), sender=sender,
        status=status, received_at=now, **claim, attempts=1 if status == Import.RUNNING else 0,
        size=len(data or b""), sha256=hashlib.sha256(data).hexdigest() if data is not None else None,
        dedupe_key=dedupe_key, note=note, ignored_attachments=list(ignored) if ignored else None, **_trace(trace),
    )
    db.session.add(imp)
    try:
        if data is not None:
            db.session.flush()
            files.store(imp.id, data)  # same transaction: the import exists with its bytes or not at all
        db.session.commit()
    except IntegrityError:
        # Two deliveries of the same message raced; the other one won and is the record.
        db.session.rollback()
        existing = _by_dedupe_key(account_id, dedupe_key) if dedupe_key else None
        if existing is None:
            raise
        return existing, False
    if claim:
        claims.claimed()
    log.info("received account=%s channel=%s file=%s import=#%s size=%d sender=%s",
             accounts.label(account_id), channel, imp.filename, imp.id, imp.size, sender or "-")
    return imp, True


def _by_dedupe_key(account_id: int, dedupe_key: str) -> Import | None:
    return db.session.scalar(
        select(Import).where(Import.account_id == account_id, Import.dedupe_key == dedupe_key)
    )


def record_refusal(account_id: int, *, channel: str, filename: str, sender: str | None, status: str,
                   note: str | None, trace: dict[str, str | None] | None = None, subject: str | None = None,
                   ignored: list[str] | None = None) -> Import:
    """Record a refused or discarded delivery in the history, without its content (`trace` as for receive).

    `subject` and `ignored` (a mail's Subject: and its attachments that are not files to import)
    are kept for the daily 破棄のお知らせ of discarded mail (services/notices.py).
    """
    if status not in (Import.REFUSED, Import.DISCARDED):
        raise ValueError(f"status must be refused or discarded, not {status!r}")
    now = utcnow()
    imp = Import(account_id=account_id, channel=channel, filename=base_name(filename), sender=sender,
                 status=status, received_at=now, finished_at=now, note=note, size=0,
                 subject=subject or None, ignored_attachments=list(ignored) if ignored else None, **_trace(trace))
    db.session.add(imp)
    db.session.commit()
    log.info("%s account=%s channel=%s file=%s sender=%s note=%s", status, accounts.label(account_id),
             channel, imp.filename, sender or "-", note or "-")
    return imp


TRACE_COLUMNS = ("mail_from", "peer_address", "helo_name", "dkim_result", "dkim_domain", "spf_result")


def _trace(trace: dict[str, str | None] | None) -> dict[str, str | None]:
    """The Import columns of a mail's origin and DKIM/SPF results (other keys are ignored)."""
    return {key: trace[key] for key in TRACE_COLUMNS if key in (trace or {})}


def dry_run(account_id: int, filename: str, data: bytes) -> DryRun:
    """Validate a file exactly like run_import but store nothing (an archive: each of its files)."""
    if is_archive(filename):
        return archives.dry_run(account_id, filename, data, check=dry_run)
    prepared = runner.prepare(account_id, base_name(filename), data)
    rows = 0
    errors = ErrorList(prepared.errors)
    shown = None
    reader = prepared.reader
    if reader is not None:
        collector = Collector()
        for batch in reader.batches():
            rows += len(batch)
            collector.add(batch)
        errors.extend(reader.errors)
        shown = collector.finish(account_id, reader.value_column_ids, reader.ignored_headers)
    return DryRun(period=prepared.period, rows=rows, errors=errors, encoding=prepared.encoding, preview=shown)


def reimport(account_id: int, import_id: int, actor_email: str) -> Import:
    """Queue a new import of an earlier import's original bytes under the same file name."""
    old = db.session.scalar(select(Import).where(Import.id == import_id, Import.account_id == account_id))
    if old is None:
        raise NotFound(f"取込 #{import_id} は存在しません。")
    data = files.read(import_id)
    if data is None:
        if old.file_deleted_at is not None:
            raise Invalid(f"取込 #{import_id} は{files.gone_text()}。再取込できません。")
        raise Invalid(f"取込 #{import_id} は元のファイルが保存されていないため、再取込できません。")
    return receive(account_id, old.filename, data, channel=Channel.WEB, sender=actor_email, note=f"再取込 #{import_id}")
