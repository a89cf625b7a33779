"""The bulk insert of an import's result rows: compiled once per database, fed with row tuples.

SQLite: one multi-row VALUES statement per batch with the file's constants written in as
literals, run in a helper thread (BackgroundWriter) while the next batch is parsed.
Other databases (PostgreSQL): executemany of the same compiled INSERT.
Values are written as JSON text (ValuesJson), exactly as the JSON column type would store them.
"""
from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from itertools import chain

from sqlalchemy import Connection, insert

from ..importer.filename import Period
from ..importer.layout import CsvReader, Row
from ..models import Import, Result

# Rows per batch (and per multi-row INSERT on SQLite): large enough to amortise each statement,
# small enough to keep memory flat.
BATCH_SIZE = 4000

RESULT_COLUMNS = ("account_id", "import_id", "member_id", "period_kind", "period_date", "line", "values", "note")
# What changes from row to row; the rest is the same for the whole file.
ROW_COLUMNS = ("member_id", "line", "values", "note")


class Inserter:
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
        compiled = insert(table).compile(dialect=connection.dialect, column_keys=list(RESULT_COLUMNS))
        self.sql = str(compiled)
        self.positional = bool(compiled.positional)
        self.multi_rows = 0
        self._multi_sql: dict[int, str] = {}
        head, marker, group = self.sql.partition(" VALUES ")
        names = self._names = list(compiled.positiontup) if self.positional else []
        if connection.dialect.name == "sqlite" and marker and len(names) == len(RESULT_COLUMNS):
            # SQLite before 3.32 allows 999 parameters per statement; newer ones 32766.
            limit = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
            self.multi_rows = min(BATCH_SIZE, limit // len(ROW_COLUMNS))
            self._head = head + marker
            self._group = "(" + ",".join(_sqlite_literal(constants[name]) if name in constants else "?"
                                         for name in names) + ")"
            self._row_order = [ROW_COLUMNS.index(name) for name in names if name not in constants]

    def multi_sql(self, rows: int) -> str:
        sql = self._multi_sql.get(rows)
        if sql is None:
            sql = self._multi_sql[rows] = self._head + ",".join([self._group] * rows)
        return sql

    def insert(self, rows: list[tuple]) -> None:
        """Insert rows given as (member_id, line, values JSON text, note)."""
        if not self.multi_rows:
            full = [{**self.constants, **dict(zip(ROW_COLUMNS, row))} for row in rows]
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


class BackgroundWriter:
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


def skip_foreign_key_checks(connection: Connection) -> None:
    """On SQLite, stop checking foreign keys on this connection until it returns to the pool.

    Each row of an import refers to its account and its import (rows that exist) and to a member
    id just read from the account's members (never deleted): checking three parents per row
    costs about a third of the insert. SQLite ignores the PRAGMA inside a transaction, so it is
    set before the import's first write; the pool turns the checks back on when the connection
    is checked in (app/factory.py), so no other unit of work ever runs without them.
    """
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")


class Unstorable(Exception):
    """A row holds a value that is not a finite number, so it has no JSON."""

    def __init__(self, row: Row):
        self.row = row


class ValuesJson:
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
            raise Unstorable(Row(line, member_id, values, note))
        return text
