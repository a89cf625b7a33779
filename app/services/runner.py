"""Running one stored import, all-or-nothing: prepare, replace the previous rows, store, finish.

`run_import()` replaces the results of the same file name in one transaction and writes the
report mail to the outbox in the same commit as the import's final status. The rows go in
through app/db/bulk.py; who runs an import is decided by services/queue.py.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select, update

from ..db import bulk, locks
from ..errors import MAX_ERRORS_PER_FILE, ErrorList, ImportRejected, NotFound, RowError, error_total
from ..extensions import db
from ..importer import workbook
from ..importer.encoding import decode
from ..importer.filename import Period, is_workbook, parse_filename
from ..importer.layout import CsvReader, Row
from ..importer.records import RecordReader
from ..models import Import, ImportErrorRecord, IntegrationSettings, utcnow
from ..models_results import ResultBlock
from . import accounts, claims, columns, files, members, reports, totals

log = logging.getLogger(__name__)

SYSTEM_ERROR_MESSAGE = "取込中にシステムエラーが発生しました。しばらくしてから再取込してください。"


def _settings(account_id: int) -> IntegrationSettings | None:
    return db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))


@dataclass
class Prepared:
    """A file checked up to its rows: the period (if the name is valid), the reader, early errors."""

    period: Period | None
    encoding: str | None
    reader: CsvReader | None  # a RecordReader for a workbook
    errors: list[RowError]
    columns: dict[str, int] = field(default_factory=dict)
    # The headers the reader skipped (見出しにない列: 無視する), kept when the reader is let go.
    ignored_headers: list[str] = field(default_factory=list)


def prepare(account_id: int, filename: str, data: bytes) -> Prepared:
    """Parse the name and decode the bytes; collect their errors instead of stopping at the first.

    A workbook (filename.is_workbook) is opened by app/importer/workbook.py instead of decoded;
    its encoding is recorded as None.
    """
    settings = _settings(account_id)
    pinned = settings.encoding if settings else "auto"
    member_key = settings.member_key if settings else "no"
    errors = ErrorList()
    period = None
    try:
        period = parse_filename(filename)
    except ImportRejected as error:
        errors.extend(error.errors)
    if is_workbook(filename):
        try:
            records = workbook.sheet_records(data, settings.sheet_name if settings else "")
        except ImportRejected as error:
            errors.extend(error.errors)
            return Prepared(period, None, None, errors)
        column_ids = columns.ids_by_name(account_id)
        reader = RecordReader(records, columns=column_ids, member_key=member_key,
                              members=members.ids_by_key(account_id, member_key), **header_rules(account_id, settings))
        return Prepared(period, None, reader, errors, column_ids)
    try:
        text, encoding = decode(data, pinned)
    except ImportRejected as error:
        errors.extend(error.errors)
        return Prepared(period, None, None, errors)
    column_ids = columns.ids_by_name(account_id)
    reader = CsvReader(text, columns=column_ids, member_key=member_key, members=members.ids_by_key(account_id, member_key),
                       **header_rules(account_id, settings))
    return Prepared(period, encoding, reader, errors, column_ids)


def header_rules(account_id: int, settings: IntegrationSettings | None) -> dict:
    """CsvReader's header options of the account: the 別名 of its columns and key, and 見出しにない列."""
    return {
        "aliases": columns.ids_by_alias(account_id),
        "key_aliases": list(settings.key_aliases or []) if settings else [],
        "ignore_unknown": bool(settings and settings.extra_columns == "ignore"),
    }


def _content(import_id: int) -> bytes | bytearray:
    """The original bytes of an import (b"" when none are kept)."""
    return files.read(import_id) or b""


def drain(batches: Iterator[list]) -> int:
    """Consume a reader's batches only to count the rows (and let the reader collect every error)."""
    return sum(len(batch) for batch in batches)


def replace_previous_import(account_id: int, filename: str, import_id: int) -> list[int]:
    """Delete the results of every earlier succeeded import of this file name and mark them replaced by
    `import_id`; return their ids, the latest first. Their sums go when the new ones are written
    (totals.record_import).

    Runs inside the caller's transaction, so the old rows vanish only if the new ones commit.
    """
    # Two workers importing the same file name must take turns, or both files' rows would stay.
    locks.lock_file_name(db.session, account_id, filename)
    earlier = (
        select(Import.id)
        .where(Import.account_id == account_id, Import.filename == filename,
               Import.status == Import.SUCCEEDED, Import.id != import_id)
    )
    # The DELETE comes first: on SQLite it takes the write lock, so the look-up below is current.
    db.session.execute(
        delete(ResultBlock).where(ResultBlock.import_id.in_(earlier)),
        execution_options={"synchronize_session": False},
    )
    replaced = list(db.session.scalars(earlier.order_by(Import.finished_at.desc(), Import.id.desc())))
    if replaced:
        # 置換済, recorded with the replacement itself (it commits or vanishes with the new rows).
        # An import replaced before keeps the import that replaced it first.
        db.session.execute(
            update(Import).where(Import.id.in_(replaced), Import.replaced_by_id.is_(None))
            .values(replaced_by_id=import_id),
            execution_options={"synchronize_session": False},
        )
    return replaced


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
    replaced: list[int] = []
    rows = 0
    try:
        # The stored bytes are read here and referenced only by _prepare, so they are freed
        # once decoded: peak memory is the decoded text of the file, not text + bytes.
        prepared = prepare(account_id, filename, _content(import_id))
        errors = prepared.errors
        if prepared.reader is not None:
            if errors:  # the name is wrong: still read the rows so the report lists every error
                drain(prepared.reader.batches())
                errors = errors + prepared.reader.errors
            else:
                replaced, rows, unstorable, sums = _store_rows(imp, prepared)
                errors = prepared.reader.errors + unstorable
                if not errors:
                    totals.record_import(imp.id, account_id, prepared.period.date, sums, replaced)
            prepared.ignored_headers = list(prepared.reader.ignored_headers)
            # The decoded text is not needed for the outcome and the report: free it now.
            prepared.reader = None
    except Exception:
        log.exception("import #%s account=%s file=%s crashed", import_id, accounts.label(account_id), filename)
        db.session.rollback()
        prepared, errors = None, [RowError(message=SYSTEM_ERROR_MESSAGE)]
    if errors:
        return finish_failed(import_id, errors, prepared, started_at, started)
    return _finish_succeeded(imp, prepared, rows, replaced[0] if replaced else None, started_at, started)


def _store_rows(imp: Import, prepared: Prepared) -> tuple[list[int], int, list[RowError], totals.ImportSums]:
    """Delete the previous import's results and insert this file's rows in batches (no commit).

    Each of the reader's batches is stored as one block (app/db/bulk.py). Memory stays flat: one
    batch exists at a time, never a list of all rows.
    The per-member sums are taken from the same batches (no second read of the stored rows).
    Returns (replaced import ids, rows read, errors of values that cannot be stored, the sums).
    """
    assert prepared.period is not None and prepared.reader is not None
    replaced = replace_previous_import(imp.account_id, imp.filename, imp.id)
    inserter = bulk.Inserter(db.session.connection(), imp)
    reader = prepared.reader
    count = 0
    storing = True
    unstorable: list[RowError] = []
    sums = totals.ImportSums(())
    for batch in reader.batches():
        if not count:
            sums = totals.ImportSums(reader.value_column_ids)  # known once the reader has read the header
        count += len(batch)
        if not storing:
            continue
        if reader.errors:
            storing = False  # the file is already lost; keep reading for the error list but stop writing
            continue
        try:
            inserter.insert(batch)
        except bulk.Unstorable as error:
            unstorable.extend(_unstorable(error.row, prepared.columns))
            storing = False
            continue
        sums.add(batch)
    return replaced, count, unstorable, sums


def _unstorable(row: Row, columns: dict[str, int]) -> list[RowError]:
    """Errors for the values of a row that are not finite numbers (the importer should never let one through)."""
    names = {column_id: name for name, column_id in columns.items()}
    return [RowError(message="数値が大きすぎます。扱える範囲の数値にしてください。", line=row.line,
                     column=names.get(column_id), value=None)
            for column_id, value in row.values.items() if not math.isfinite(value)]


def _finish_succeeded(imp: Import, prepared: Prepared, rows: int, replaced: int | None,
                      started_at: dt.datetime, started: float) -> Import:
    """Mark the import succeeded and queue the success report, in the transaction that holds the rows."""
    if not claims.still_ours(imp.id):
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
    imp.ignored_headers = prepared.ignored_headers or None
    reports.success_report(imp, period)
    db.session.commit()
    log.info("import #%s succeeded account=%s channel=%s file=%s rows=%d replaced=%s in %.2fs",
             imp.id, accounts.label(imp.account_id), imp.channel, imp.filename, rows,
             f"#{replaced}" if replaced else "-", time.monotonic() - started)
    return imp


def finish_failed(import_id: int, errors: list[RowError], prepared: Prepared | None,
                   started_at: dt.datetime | None, started: float | None) -> Import:
    """Roll back whatever was written, then store the failure, its errors and the error report."""
    db.session.rollback()
    if not claims.still_ours(import_id):
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
        imp.ignored_headers = prepared.ignored_headers or None
        if prepared.period is not None:
            imp.period_kind, imp.period_date = prepared.period.kind, prepared.period.date
    db.session.execute(
        delete(ImportErrorRecord).where(ImportErrorRecord.import_id == import_id),
        execution_options={"synchronize_session": False},
    )
    records = [
        {"import_id": import_id, "line": error.line, "column": error.column, "column_letter": error.letter,
         "value": error.value, "message": error.message}
        for error in errors
    ]
    for start in range(0, len(records), bulk.BATCH_SIZE):
        db.session.execute(insert(ImportErrorRecord.__table__), records[start:start + bulk.BATCH_SIZE])
    reports.failure_report(imp, errors)
    db.session.commit()
    elapsed = f" in {time.monotonic() - started:.2f}s" if started is not None else ""
    log.info("import #%s failed account=%s channel=%s file=%s errors=%d first=%s%s", imp.id,
             accounts.label(imp.account_id), imp.channel, imp.filename, total,
             errors[0].as_text() if errors else "-", elapsed)
    return imp


def _lost_claim(import_id: int) -> Import:
    db.session.rollback()
    log.warning("import #%s not finished here: its claim was taken back by another worker (lease ran out)",
                import_id)
    return db.session.get(Import, import_id)
