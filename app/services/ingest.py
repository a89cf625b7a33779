"""The ONE ingest path of every channel (mail, FTP, API, browser, CLI): store, queue, import, report.

Flow: a channel calls `receive()` (the file is committed before the channel acknowledges),
the worker calls `process_next()` (claim + `run_import()`), and `run_import()` replaces the
results of the same file name in one transaction and writes the report mail to the outbox
in the same commit as the import's final status.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import gc
import hashlib
import logging
import math
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.exc import IntegrityError

from ..errors import MAX_ERRORS_PER_FILE, ErrorList, ImportRejected, Invalid, NotFound, RowError, error_total
from ..extensions import db
from ..importer.encoding import decode
from ..importer.filename import Period, parse_filename
from ..importer.layout import CsvReader, Row
from ..models import Account, GraphColumn, Import, ImportErrorRecord, IntegrationSettings, Member, Result, utcnow
from . import claims, files, reports, totals

log = logging.getLogger(__name__)

# Rows per batch (and per multi-row INSERT on SQLite): large enough to amortise each statement,
# small enough to keep memory flat.
BATCH_SIZE = 4000
# A claim whose holder cannot be seen alive or dead (no lock file on this data folder, no lease:
# made by an older version) is taken back when it is this old. See services/claims.py.
STALE_SECONDS = 300
# An import whose worker died this many times is failed instead of being retried forever.
MAX_ATTEMPTS = 3
SYSTEM_ERROR_MESSAGE = "取込中にシステムエラーが発生しました。しばらくしてから再取込してください。"

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

    @property
    def ok(self) -> bool:
        return not self.errors


def _load_malloc_trim() -> Callable[[int], int] | None:
    """Return glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None


_malloc_trim = _load_malloc_trim()


def _release_memory() -> None:
    """Hand memory freed by a file's bytes back to the OS once they are decoded.

    glibc keeps a freed multi-megabyte block in the heap once it has raised its mmap threshold,
    so without this the bytes that have come and gone still count in the process's resident
    size while the rows are built (measured: 100.7 → 91.1 MiB peak for the 9.3 MB reference
    file of bench/import_bench.py). Storing needs no trim since the bytes go in 1 MiB pieces.
    """
    if _malloc_trim is not None:
        _malloc_trim(0)


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


def base_name(filename: str) -> str:
    """Return the file's base name: any directory part (either separator) and control characters stripped."""
    name = os.path.basename((filename or "").replace("\\", "/"))
    # A NUL or other control character is never part of a real file name (and PostgreSQL refuses NUL).
    return "".join(c for c in name if c.isprintable()).strip()[:255]


def _account_label(account_id: int) -> str:
    slug = db.session.scalar(select(Account.slug).where(Account.id == account_id))
    return slug or f"#{account_id}"


# ---------------------------------------------------------------------------------------
# Receiving


def receive(account_id: int, filename: str, data: bytes, *, channel: str, sender: str | None = None,
            dedupe_key: str | None = None, note: str | None = None, ignored: list[str] | None = None) -> Import:
    """Store a received file durably as a queued import and return it (committed before returning).

    `ignored`: the names of the other attachments of the same mail that were not imported
    (stored as Import.ignored_attachments, listed by the report mail).
    """
    imp, created = _store(account_id, filename, data, channel=channel, sender=sender, dedupe_key=dedupe_key,
                          note=note, status=Import.QUEUED, ignored=ignored)
    if created:
        _notify()
    return imp


def record_failure(account_id: int, *, channel: str, filename: str, sender: str | None, message: str,
                   dedupe_key: str | None = None, note: str | None = None, data: bytes | None = None,
                   ignored: list[str] | None = None) -> Import:
    """Record a delivery that cannot be imported at all (e.g. too large) as a failed import with one error.

    The error report goes to the outbox in the same commit. A repeat with the same dedupe key
    returns the first record unchanged. `ignored` as for receive() (e.g. the .xlsx of a mail
    without a CSV: "(CSV添付なし)").
    """
    imp, created = _store(account_id, filename, data, channel=channel, sender=sender, dedupe_key=dedupe_key,
                          note=note, status=Import.RUNNING, ignored=ignored)
    if not created:
        return imp
    return _finish_failed(imp.id, [RowError(message=message)], None, None, None)


def _store(account_id: int, filename: str, data: bytes | None, *, channel: str, sender: str | None,
           dedupe_key: str | None, note: str | None, status: str,
           ignored: list[str] | None = None) -> tuple[Import, bool]:
    """Insert and commit the Import row; return (import, True), or (the earlier one with this dedupe key, False)."""
    if dedupe_key:
        existing = _by_dedupe_key(account_id, dedupe_key)
        if existing is not None:
            log.info("duplicate delivery account=%s channel=%s file=%s import=#%s (already stored)",
                     _account_label(account_id), channel, existing.filename, existing.id)
            return existing, False
    now = utcnow()
    claim = claims.claim_values() if status == Import.RUNNING else {}
    imp = Import(
        account_id=account_id, channel=channel, filename=base_name(filename), sender=sender,
        status=status, received_at=now, **claim, attempts=1 if status == Import.RUNNING else 0,
        size=len(data or b""), sha256=hashlib.sha256(data).hexdigest() if data is not None else None,
        dedupe_key=dedupe_key, note=note, ignored_attachments=list(ignored) if ignored else None,
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
             _account_label(account_id), channel, imp.filename, imp.id, imp.size, sender or "-")
    return imp, True


def _by_dedupe_key(account_id: int, dedupe_key: str) -> Import | None:
    return db.session.scalar(
        select(Import).where(Import.account_id == account_id, Import.dedupe_key == dedupe_key)
    )


def record_refusal(account_id: int, *, channel: str, filename: str, sender: str | None, status: str,
                   note: str | None) -> Import:
    """Record a refused or discarded delivery in the history, without its content."""
    if status not in (Import.REFUSED, Import.DISCARDED):
        raise ValueError(f"status must be refused or discarded, not {status!r}")
    now = utcnow()
    imp = Import(account_id=account_id, channel=channel, filename=base_name(filename), sender=sender,
                 status=status, received_at=now, finished_at=now, note=note, size=0)
    db.session.add(imp)
    db.session.commit()
    log.info("%s account=%s channel=%s file=%s sender=%s note=%s", status, _account_label(account_id),
             channel, imp.filename, sender or "-", note or "-")
    return imp


# ---------------------------------------------------------------------------------------
# Lookups used by the import


def _member_lookup(account_id: int, member_key: str) -> dict[str, int]:
    """Active members by key text: str(No.) or the exact 社員ID."""
    key = Member.no if member_key == "no" else Member.employee_id
    rows = db.session.execute(
        select(key, Member.id).where(Member.account_id == account_id, Member.active.is_(True), key.is_not(None))
    )
    return {str(value): member_id for value, member_id in rows}


def _column_lookup(account_id: int) -> dict[str, int]:
    """Graph columns by name."""
    rows = db.session.execute(select(GraphColumn.name, GraphColumn.id).where(GraphColumn.account_id == account_id))
    return {name: column_id for name, column_id in rows}


def _settings(account_id: int) -> IntegrationSettings | None:
    return db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))


@dataclass
class _Prepared:
    """A file checked up to its rows: the period (if the name is valid), the reader, early errors."""

    period: Period | None
    encoding: str | None
    reader: CsvReader | None
    errors: list[RowError]
    columns: dict[str, int] = field(default_factory=dict)


def _prepare(account_id: int, filename: str, data: bytes) -> _Prepared:
    """Parse the name and decode the bytes; collect their errors instead of stopping at the first."""
    settings = _settings(account_id)
    pinned = settings.encoding if settings else "auto"
    member_key = settings.member_key if settings else "no"
    errors = ErrorList()
    period = None
    try:
        period = parse_filename(filename)
    except ImportRejected as error:
        errors.extend(error.errors)
    try:
        text, encoding = decode(data, pinned)
    except ImportRejected as error:
        errors.extend(error.errors)
        return _Prepared(period, None, None, errors)
    columns = _column_lookup(account_id)
    # Rows of plain integers come as their cells' text: _store_rows writes that text as JSON
    # directly, and dry runs and drains only count rows.
    reader = CsvReader(text, columns=columns, member_key=member_key, members=_member_lookup(account_id, member_key),
                       integers_as_text=True)
    return _Prepared(period, encoding, reader, errors, columns)


def _content(import_id: int) -> bytes | bytearray:
    """The original bytes of an import (b"" when none are kept)."""
    return files.read(import_id) or b""


def _drain(batches: Iterator[list]) -> int:
    """Consume a reader's batches only to count the rows (and let the reader collect every error)."""
    count = 0
    collecting = gc.isenabled()
    gc.disable()  # no cycles are made per row; see _store_rows
    try:
        for batch in batches:
            count += len(batch)
    finally:
        if collecting:
            gc.enable()
    return count


# ---------------------------------------------------------------------------------------
# Importing


def replace_previous_import(account_id: int, filename: str, import_id: int) -> int | None:
    """Delete the results of every earlier succeeded import of this file name; return the latest one's id.

    Runs inside the caller's transaction, so the old rows vanish only if the new ones commit.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        # Two workers importing the same file name must take turns, or both files' rows would stay.
        digest = hashlib.sha256(f"{account_id}:{filename}".encode()).digest()
        db.session.execute(sql_text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": int.from_bytes(digest[:8], "big", signed=True)})
    earlier = (
        select(Import.id)
        .where(Import.account_id == account_id, Import.filename == filename,
               Import.status == Import.SUCCEEDED, Import.id != import_id)
    )
    # The DELETE comes first: on SQLite it takes the write lock, so the look-up below is current.
    # `earlier` holds this account's imports only. A condition on results.account_id as well
    # would make SQLite walk every result of the account through the (account, period) index
    # instead of the import's own rows.
    db.session.execute(
        delete(Result).where(Result.import_id.in_(earlier)),
        execution_options={"synchronize_session": False},
    )
    replaced = list(db.session.scalars(earlier.order_by(Import.finished_at.desc(), Import.id.desc())))
    totals.forget_imports(account_id, replaced)
    return replaced[0] if replaced else None


def run_import(import_id: int) -> Import:
    """Import one stored file all-or-nothing, record its outcome and queue its report mail."""
    imp = db.session.get(Import, import_id)
    if imp is None:
        raise NotFound(f"取込 #{import_id} は存在しません。")
    if imp.status not in (Import.QUEUED, Import.RUNNING):
        return imp  # already finished (e.g. a second worker got here late): never run twice
    started = time.monotonic()
    account_id, filename = imp.account_id, imp.filename
    started_at = utcnow()
    replaced, rows = None, 0
    try:
        # The stored bytes are read here and referenced only by _prepare, so they are freed
        # once decoded: peak memory is the decoded text of the file, not text + bytes.
        prepared = _prepare(account_id, filename, _content(import_id))
        _release_memory()  # the bytes, now that only the decoded text is needed
        errors = prepared.errors
        if prepared.reader is not None:
            if errors:  # the name is wrong: still read the rows so the report lists every error
                _drain(prepared.reader.batches())
                errors = errors + prepared.reader.errors
            else:
                replaced, rows, unstorable = _store_rows(imp, prepared)
                errors = prepared.reader.errors + unstorable
                if not errors:
                    totals.record_import(imp.id, account_id, prepared.period.date, prepared.columns.values())
            # The decoded text is not needed for the outcome and the report: free it now.
            prepared.reader = None
    except Exception:
        log.exception("import #%s account=%s file=%s crashed", import_id, _account_label(account_id), filename)
        db.session.rollback()
        prepared, errors = None, [RowError(message=SYSTEM_ERROR_MESSAGE)]
    if errors:
        return _finish_failed(import_id, errors, prepared, started_at, started)
    return _finish_succeeded(imp, prepared, rows, replaced, started_at, started)


_RESULT_COLUMNS = ("account_id", "import_id", "member_id", "period_kind", "period_date", "line", "values", "note")
# What changes from row to row; the rest is the same for the whole file.
_ROW_COLUMNS = ("member_id", "line", "values", "note")


class _Inserter:
    """INSERT INTO results for one import, compiled once for this database, fed with row tuples.

    Rows are (member_id, line, values JSON text, note). On SQLite a batch goes in as one
    multi-row VALUES statement with the file's constants (account, import, period) written
    into it, so only four parameters per row are bound; elsewhere through executemany.
    """

    def __init__(self, connection: Connection, imp: Import, period: Period):
        self.connection = connection
        table = Result.__table__
        date_processor = table.c.period_date.type._cached_bind_processor(connection.dialect)
        constants = {"account_id": imp.account_id, "import_id": imp.id, "period_kind": period.kind,
                     "period_date": date_processor(period.date) if date_processor else period.date}
        self.constants = constants
        compiled = insert(table).compile(dialect=connection.dialect, column_keys=list(_RESULT_COLUMNS))
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        self.multi_rows = 0
        self._multi_sql: dict[int, str] = {}
        head, marker, group = self.sql.partition(" VALUES ")
        names = self._names = list(compiled.positiontup) if self.positional else []
        if connection.dialect.name == "sqlite" and marker and len(names) == len(_RESULT_COLUMNS):
            # SQLite before 3.32 allows 999 parameters per statement; newer ones 32766.
            limit = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
            self.multi_rows = min(BATCH_SIZE, limit // len(_ROW_COLUMNS))
            self._head = head + marker
            self._group = "(" + ",".join(_sqlite_literal(constants[name]) if name in constants else "?"
                                         for name in names) + ")"
            self._row_order = [_ROW_COLUMNS.index(name) for name in names if name not in constants]

    def multi_sql(self, rows: int) -> str:
        sql = self._multi_sql.get(rows)
        if sql is None:
            sql = self._multi_sql[rows] = self._head + ",".join([self._group] * rows)
        return sql

    def insert(self, rows: list[tuple]) -> None:
        """Insert rows given as (member_id, line, values JSON text, note)."""
        if not self.multi_rows:
            full = [{**self.constants, **dict(zip(_ROW_COLUMNS, row))} for row in rows]
            if self.positional:
                full = [tuple(row[name] for name in self._names) for row in full]
            self.connection.exec_driver_sql(self.sql, full)
            return
        if self._row_order != [0, 1, 2, 3]:
            rows = [tuple(row[i] for i in self._row_order) for row in rows]
        # One statement per batch: SQLite then does all its work in one call without the GIL,
        # which is what lets the background writer overlap with parsing. Only the DBAPI cursor
        # is used here, so this may run in the writer thread.
        step, cursor = self.multi_rows, self.connection.connection.driver_connection.cursor()
        try:
            for start in range(0, len(rows), step):
                chunk = rows[start:start + step]
                cursor.execute(self.multi_sql(len(chunk)), list(chain.from_iterable(chunk)))
        finally:
            cursor.close()


def _sqlite_literal(value: object) -> str:
    """Write one of the import's own constants (ids, period kind, ISO date) as an SQL literal."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"unexpected constant {value!r}")
    if isinstance(value, int):
        return str(int(value))
    if not all(ch.isalnum() or ch == "-" for ch in value):  # "day", "month", "2018-05-16"
        raise ValueError(f"unexpected constant {value!r}")
    return f"'{value}'"


class _BackgroundWriter:
    """Run an insert function on batches in one helper thread, in order.

    SQLite does its B-tree work with the GIL released, so the rows of one batch go into the
    database while the next batch is parsed. The caller's thread does not touch the connection
    until close() has returned, so the connection is never used by two threads at once.
    """

    def __init__(self, insert: Callable[[list[tuple]], None]):
        self._insert = insert
        self._queue: queue.Queue[list[tuple] | None] = queue.Queue(maxsize=1)  # one batch waits while one is written: memory stays flat
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="renkei-import-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._insert(batch)
                except BaseException as error:  # handed to the caller's thread by close()/submit()
                    self._error = error

    def submit(self, batch: list[tuple]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def close(self) -> None:
        """Wait until every submitted batch is written; raise the writer's error, if any."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


def _json_template(keys: tuple[int, ...]) -> str:
    """A %-template writing a values dict with these column ids as a JSON object."""
    return "{" + ",".join(f'"{key}":%r' for key in keys) + "}"


def _integer_template(keys: list[int]) -> str:
    """A %-template writing integer cells' text (in these columns' order) as the JSON of their floats."""
    # repr(float("123")) is "123.0" for every integer the reader gives as text (below 1e16).
    return "{" + ",".join(f'"{key}":%s.0' for key in keys) + "}"


def _store_rows(imp: Import, prepared: _Prepared) -> tuple[int | None, int, list[RowError]]:
    """Delete the previous import's results and insert this file's rows in batches (no commit).

    The hot loop builds one small tuple per row and hands batches straight to the driver
    (see _Inserter): per-row ORM objects or SQLAlchemy's per-row parameter processing would
    cost more than parsing the file. Values are written as JSON text (repr of a finite float
    is valid JSON), exactly as the JSON column type would store them. Memory stays flat:
    at most a few batches exist at once, never a list of all rows.
    Returns (replaced import id, rows read, errors of values that cannot be stored).
    """
    period = prepared.period
    assert period is not None and prepared.reader is not None
    _skip_foreign_key_checks()
    replaced = replace_previous_import(imp.account_id, imp.filename, imp.id)
    inserter = _Inserter(db.session.connection(), imp, period)
    reader = prepared.reader
    writer = _BackgroundWriter(inserter.insert) if inserter.multi_rows else None
    flush = writer.submit if writer else inserter.insert
    count = 0
    storing = True
    unstorable: list[RowError] = []
    values_json = None
    # The loop makes a few objects per row and no reference cycles: with the collector on,
    # its generation scans (over every object of the app, too) only cost time. The pause is
    # process-wide but lasts one file; cycles made meanwhile by other threads wait until then.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for batch in reader.batches():
            count += len(batch)
            if not storing:
                continue
            if reader.errors:
                storing = False  # the file is already lost; keep reading for the error list but stop writing
                continue
            if values_json is None:
                values_json = _ValuesJson(reader)
            try:
                flush(values_json.rows(batch))
            except _Unstorable as error:
                unstorable.extend(_unstorable(error.row, prepared.columns))
                storing = False
    finally:
        if collecting:
            gc.enable()
        if writer is not None:
            writer.close()  # before anyone else (commit, rollback) uses the connection
    return replaced, count, unstorable


def _skip_foreign_key_checks() -> None:
    """On SQLite, stop checking foreign keys on this session's connection until it returns to the pool.

    Each row of an import refers to its account and its import (rows that exist) and to a member
    id just read from the account's members (never deleted): checking three parents per row
    costs about a third of the insert. SQLite ignores the PRAGMA inside a transaction, so it is
    set before the import's first write; the pool turns the checks back on when the connection
    is checked in (app/factory.py), so no other unit of work ever runs without them.
    """
    connection = db.session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")


class _Unstorable(Exception):
    """A row holds a value that is not a finite number, so it has no JSON."""

    def __init__(self, row: Row):
        self.row = row


class _ValuesJson:
    """Turn the reader's rows into insert tuples (member id, line, values as JSON text, note)."""

    def __init__(self, reader: CsvReader):
        # Plain integer cells (the usual case) come as their text, which is their JSON: no float round trip.
        self.integers = _integer_template(reader.value_column_ids)
        self.templates: dict[tuple[int, ...], str] = {}

    def rows(self, batch: list[tuple]) -> list[tuple]:
        integers, json = self.integers, self.json
        return [(member_id, line, integers % values if values.__class__ is tuple else json(line, member_id, values, note),
                 note) for line, member_id, values, note in batch]

    def json(self, line: int, member_id: int, values: dict[int, float], note: str | None) -> str:
        """Write a dict of floats (negatives with "△", decimals, empty cells) as JSON."""
        keys = tuple(values)
        template = self.templates.get(keys)
        if template is None:
            template = self.templates[keys] = _json_template(keys)
        text = template % tuple(values.values())
        if "n" in text:  # "inf" or "nan": no valid JSON number (a repr of a finite float or an integer has no "n")
            raise _Unstorable(Row(line, member_id, values, note))
        return text


def _unstorable(row: Row, columns: dict[str, int]) -> list[RowError]:
    """Errors for the values of a row that are not finite numbers (the importer should never let one through)."""
    names = {column_id: name for name, column_id in columns.items()}
    return [RowError(message="数値が大きすぎます。扱える範囲の数値にしてください。", line=row.line,
                     column=names.get(column_id), value=None)
            for column_id, value in row.values.items() if not math.isfinite(value)]


def _finish_succeeded(imp: Import, prepared: _Prepared, rows: int, replaced: int | None,
                      started_at: dt.datetime, started: float) -> Import:
    """Mark the import succeeded and queue the success report, in the transaction that holds the rows."""
    if not _still_ours(imp.id):
        return _lost_claim(imp.id)
    period = prepared.period
    imp.status = Import.SUCCEEDED
    imp.started_at = started_at
    imp.finished_at = utcnow()
    imp.claimed_at = imp.claimed_by = imp.lease_until = None
    imp.encoding = prepared.encoding
    imp.period_kind, imp.period_date = period.kind, period.date
    imp.row_count = rows
    imp.error_count = 0
    imp.replaced_import_id = replaced
    reports.success_report(imp, period)
    db.session.commit()
    log.info("import #%s succeeded account=%s channel=%s file=%s rows=%d replaced=%s in %.2fs",
             imp.id, _account_label(imp.account_id), imp.channel, imp.filename, rows,
             f"#{replaced}" if replaced else "-", time.monotonic() - started)
    return imp


def _finish_failed(import_id: int, errors: list[RowError], prepared: _Prepared | None,
                   started_at: dt.datetime | None, started: float | None) -> Import:
    """Roll back whatever was written, then store the failure, its errors and the error report."""
    db.session.rollback()
    if not _still_ours(import_id):
        return _lost_claim(import_id)
    imp = db.session.get(Import, import_id)
    imp.status = Import.FAILED
    imp.started_at = started_at or imp.started_at
    imp.finished_at = utcnow()
    imp.claimed_at = imp.claimed_by = imp.lease_until = None
    imp.row_count = 0
    # Every error is counted; only the first MAX_ERRORS_PER_FILE are stored (and mailed), with
    # their texts clipped, so an error-heavy file costs a bounded number of rows and bytes.
    total = error_total(errors)
    kept = ErrorList((error.clipped() for error in errors[:MAX_ERRORS_PER_FILE]))
    kept.total = total
    errors = kept
    imp.error_count = total
    if prepared is not None:
        imp.encoding = prepared.encoding
        if prepared.period is not None:
            imp.period_kind, imp.period_date = prepared.period.kind, prepared.period.date
    db.session.execute(
        delete(ImportErrorRecord).where(ImportErrorRecord.import_id == import_id),
        execution_options={"synchronize_session": False},
    )
    records = [
        {"import_id": import_id, "line": error.line, "column": error.column, "value": error.value,
         "message": error.message}
        for error in errors
    ]
    for start in range(0, len(records), BATCH_SIZE):
        db.session.execute(insert(ImportErrorRecord.__table__), records[start:start + BATCH_SIZE])
    reports.failure_report(imp, errors)
    db.session.commit()
    elapsed = f" in {time.monotonic() - started:.2f}s" if started is not None else ""
    log.info("import #%s failed account=%s channel=%s file=%s errors=%d first=%s%s", imp.id,
             _account_label(imp.account_id), imp.channel, imp.filename, total,
             errors[0].as_text() if errors else "-", elapsed)
    return imp


# ---------------------------------------------------------------------------------------
# The queue


def _still_ours(import_id: int) -> bool:
    """Before an import's final commit: check (and on PostgreSQL lock) that no one took the claim back meanwhile.

    True for an unclaimed queued import (run directly) and for a claim of this process. False
    when the claim was taken back (its lease ran out while the database was out of reach) and
    perhaps taken by another worker: that worker's import is then the one that counts.
    """
    mine = or_(Import.status == Import.QUEUED,
               (Import.status == Import.RUNNING) & or_(Import.claimed_by == claims.holder().id,
                                                       Import.claimed_by.is_(None)))
    result = db.session.execute(
        update(Import).where(Import.id == import_id, mine).values(claimed_by=Import.claimed_by),
        execution_options={"synchronize_session": False},
    )
    return result.rowcount == 1


def _lost_claim(import_id: int) -> Import:
    db.session.rollback()
    log.warning("import #%s not finished here: its claim was taken back by another worker (lease ran out)",
                import_id)
    return db.session.get(Import, import_id)


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
                _finish_failed(import_id, [RowError(message=(
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
    return run_import(import_id)


def import_now(account_id: int, filename: str, data: bytes, *, channel: str, sender: str | None = None) -> Import:
    """Store and import a file synchronously (CLI, API ?wait=1); the outcome is in the returned Import.

    Once stored, the bytes are dropped here and read back by run_import: a caller that passes
    them without keeping a reference (as the CLI does) then never holds two copies at once.
    """
    # Stored already claimed, so a worker in this process cannot take it in between.
    imp, _created = _store(account_id, filename, data, channel=channel, sender=sender, dedupe_key=None, note=None,
                           status=Import.RUNNING)
    del data
    return run_import(imp.id)


def dry_run(account_id: int, filename: str, data: bytes) -> DryRun:
    """Validate a file exactly like run_import but store nothing."""
    prepared = _prepare(account_id, base_name(filename), data)
    rows = 0
    errors = ErrorList(prepared.errors)
    if prepared.reader is not None:
        rows = _drain(prepared.reader.batches())
        errors.extend(prepared.reader.errors)
    return DryRun(period=prepared.period, rows=rows, errors=errors, encoding=prepared.encoding)


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
    return receive(account_id, old.filename, data, channel="web", sender=actor_email, note=f"再取込 #{import_id}")


# ---------------------------------------------------------------------------------------
# Reading the history (for the CLI and whoever needs a plain view)


def list_imports(account_id: int, limit: int | None = None) -> list[Import]:
    """Return the account's imports, newest first."""
    query = select(Import).where(Import.account_id == account_id).order_by(Import.id.desc())
    if limit:
        query = query.limit(limit)
    return list(db.session.scalars(query))


def import_as_dict(imp: Import, *, with_errors: bool = False) -> dict:
    """Return an import as plain JSON-ready data (times in ISO 8601 UTC)."""

    def iso(value: dt.datetime | None) -> str | None:
        return value.replace(tzinfo=dt.timezone.utc).isoformat() if value else None

    period = None
    if imp.period_date is not None:
        period = imp.period_date.strftime("%Y%m%d" if imp.period_kind == "day" else "%Y%m")
    data = {
        "id": imp.id, "channel": imp.channel, "filename": imp.filename, "sender": imp.sender,
        "status": imp.status, "received_at": iso(imp.received_at), "finished_at": iso(imp.finished_at),
        "period": period, "period_kind": imp.period_kind, "row_count": imp.row_count,
        "error_count": imp.error_count, "replaced_import_id": imp.replaced_import_id,
        "encoding": imp.encoding, "size": imp.size, "sha256": imp.sha256, "note": imp.note,
    }
    if with_errors:
        data["errors"] = [
            {"line": e.line, "column": e.column, "value": e.value, "message": e.message} for e in imp.errors
        ]
    return data

