"""The bulk insert of an import's result rows: one way per database, fed with row tuples.

SQLite: executemany of one INSERT. PostgreSQL: COPY through psycopg (rows written with
write_row). Values are written as JSON text (_ValuesJson), as the JSON column stores them.
"""
from __future__ import annotations

from math import isfinite

from sqlalchemy import Connection

from ..importer.filename import Period
from ..importer.layout import Row, RowTuple
from ..models import Import, Result

# Error records per insert (result rows come in the reader's batches, layout.BATCH_ROWS).
BATCH_SIZE = 4000

# In this order in every insert tuple.
RESULT_COLUMNS = ("account_id", "import_id", "period_kind", "period_date", "member_id", "line", "values", "note")


class Unstorable(Exception):
    """A row holds a value that is not a finite number, so it has no JSON."""

    def __init__(self, row: Row):
        self.row = row


class Inserter:
    """Insert the rows of one import, given as the reader's (line, member id, values, note) tuples."""

    def __init__(self, connection: Connection, imp: Import, period: Period):
        dialect = connection.dialect
        # The column type's public bind processor writes the date as this database stores it
        # (ISO text on SQLite); the rows below go to the driver as they are.
        to_db = Result.__table__.c.period_date.type.dialect_impl(dialect).bind_processor(dialect)
        self._constants = (imp.account_id, imp.id, period.kind, to_db(period.date) if to_db else period.date)
        self._json = _ValuesJson()
        self._driver = connection.connection.driver_connection  # the session's own connection and transaction
        names = ", ".join(dialect.identifier_preparer.quote(name) for name in RESULT_COLUMNS)  # "values" is a keyword
        self._copy = dialect.name == "postgresql"
        if self._copy:
            self._sql = f"COPY results ({names}) FROM STDIN"
        else:
            self._sql = f"INSERT INTO results ({names}) VALUES ({', '.join('?' * len(RESULT_COLUMNS))})"

    def _tuples(self, batch: list[RowTuple]) -> list[tuple]:
        constants, json = self._constants, self._json
        try:
            return [(*constants, member_id, line, json(values), note) for line, member_id, values, note in batch]
        except Unstorable:
            raise Unstorable(next(Row(*row) for row in batch if not all(map(isfinite, row[2].values())))) from None

    def insert(self, batch: list[RowTuple]) -> None:
        """Insert one batch of the reader's rows; raise Unstorable for a value that has no JSON."""
        rows = self._tuples(batch)
        cursor = self._driver.cursor()
        try:
            if self._copy:
                with cursor.copy(self._sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(self._sql, rows)
        finally:
            cursor.close()


class _ValuesJson:
    """Write {column id: float} as a JSON object; a template per set of keys, since files repeat theirs.

    repr() of a finite float is a valid JSON number (and what json.dumps writes); json.dumps
    itself costs twice as much per row here (measured: 6 µs against 3 µs for seven values).
    """

    def __init__(self) -> None:
        self._templates: dict[tuple[int, ...], str] = {}

    def __call__(self, values: dict[int, float]) -> str:
        numbers = tuple(values.values())
        # A finite sum means finite values; an infinite one (inf, nan, or an overflow) is checked value by value.
        if not isfinite(sum(numbers)) and not all(map(isfinite, numbers)):
            raise Unstorable(None)
        keys = tuple(values)
        template = self._templates.get(keys)
        if template is None:
            template = self._templates[keys] = "{" + ",".join(f'"{int(key)}":%r' for key in keys) + "}"
        return template % numbers
