"""Sums of stored results kept next to them, so the board and the month API never read every row.

Two small tables, both written in the transaction that writes or deletes the rows they sum:

- `import_totals`: per succeeded import, member and graph column, the sum of the column's
  values and how many lines held one; column id 0 holds the member's line count (any values).
  Summed from the import's rows as the runner inserts them (`ImportSums`), written in the same
  transaction; deleted with the import's rows when a later file of the same name replaces them.
- `month_totals`: the same per account, calendar month, member and column, over every import
  of the month (daily files and the monthly file) plus the results typed by hand. An import
  adds its totals, the import it replaces subtracts its own, a hand-typed result adds its
  values; rows whose line count drops to 0 are deleted, so a row exists exactly when a value does.

An import's sums add each member's values in file order. Month sums add import sums, so they
equal a row-by-row sum exactly for integer values (below 2**53) and within float rounding
(the last bits) otherwise.
"""
from __future__ import annotations

import datetime as dt
from array import array
from collections.abc import Iterable, Sequence
from operator import itemgetter

from sqlalchemy import Date, bindparam, delete, select, text

from ..extensions import db
from ..importer.block import NUMBERS, Block
from ..models import Import
from ..models_results import ImportTotal, MonthTotal

LINES = 0  # the column id of a member's line count (column ids start at 1)


def month_of(date: dt.date) -> dt.date:
    return date.replace(day=1)


# Rows whose member ids and numbers ImportSums keeps before it folds them into its sums.
FOLD_ROWS = 1 << 16


class ImportSums:
    """The sums and line counts of an import per member and graph column, taken from its Blocks as they stream.

    The runner hands over each Block it stores; nothing re-reads the stored rows. The Blocks'
    member ids and numbers are kept up to FOLD_ROWS rows, then folded into running sums member
    by member: each member's row indexes (in file order) and one itemgetter gathering its cells
    of a column leave no Python step per cell (on the 200,000-row reference file about 0.2 s,
    where adding each row's values as a dict took 0.55 s). sum() goes on from the running
    total, so each sum still adds a member's values one by one in file order.
    """

    def __init__(self, column_ids: Sequence[int]):
        """column_ids: the file's graph columns in header order, the order of every Block's numbers."""
        self._column_ids = tuple(column_ids)
        self._member_ids = array("q")
        self._numbers = array(NUMBERS)
        # member id -> [lines, running sum per column, lines with a value per column]
        self._members: dict[int, list] = {}

    def add(self, block: Block) -> None:
        """Take one Block of the reader's valid rows."""
        self._member_ids.extend(block.member_ids)
        self._numbers.extend(block.numbers)
        if len(self._member_ids) >= FOLD_ROWS:
            self._fold()

    def _fold(self) -> None:
        member_ids, width, members = self._member_ids, len(self._column_ids), self._members
        # Each member's row indexes in file order: one dict append per row is cheaper than
        # sorting the rows by member and cutting the sorted run into groups.
        rows_of: dict[int, list[int]] = {}
        for index, member_id in enumerate(member_ids):
            indexes = rows_of.get(member_id)
            if indexes is None:
                rows_of[member_id] = [index]
            else:
                indexes.append(index)
        groups = []
        for member_id, indexes in rows_of.items():
            member = members.get(member_id)
            if member is None:
                member = members[member_id] = [0, [0.0] * width, [0] * width]
            member[0] += len(indexes)
            pick = itemgetter(*indexes) if len(indexes) > 1 else (lambda column, index=indexes[0]: (column[index],))
            groups.append((member[1], member[2], pick))
        del rows_of
        for index in range(width):
            column = self._numbers[index::width]
            for sums, counts, pick in groups:
                values = pick(column)
                total = sum(values, sums[index])
                if total != total:  # NaN: some of the cells are empty
                    values = [value for value in values if value == value]
                    total = sum(values, sums[index])
                sums[index] = total
                counts[index] += len(values)
        self._member_ids = array("q")
        self._numbers = array(NUMBERS)

    def rows(self, *key) -> list[tuple]:
        """(*key, member id, column id, total, line count) by member id, LINES first for each member;
        columns without a value are absent. `key` is what each row starts with (the import's id)."""
        self._fold()
        rows = []
        column_ids = self._column_ids
        for member_id in sorted(self._members):
            lines, sums, counts = self._members[member_id]
            rows.append((*key, member_id, LINES, 0.0, lines))
            rows += [(*key, member_id, column_id, total, count)
                     for column_id, total, count in zip(column_ids, sums, counts) if count]
        return rows


def record_import(import_id: int, account_id: int, period_date: dt.date, sums: ImportSums,
                  replaced: Iterable[int] = ()) -> None:
    """Write an import's sums into import_totals, and in its month take the replaced imports' sums out and
    its own in (no commit).

    A file name's imports are all of one month, so one upsert adds the difference (new sums minus
    the replaced ones) where a subtraction and an addition took two; a replaced import of another
    month would be taken out there. The replaced imports' import_totals are deleted.
    """
    rows = sums.rows(import_id)
    if rows:
        # Tens of thousands of rows (members × columns): plain tuples to the driver's executemany,
        # since SQLAlchemy's per-row parameter dicts would cost more than the sums themselves.
        connection = db.session.connection()
        mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
        connection.exec_driver_sql(
            "INSERT INTO import_totals (import_id, member_id, column_id, total, line_count) "
            f"VALUES ({', '.join([mark] * 5)})", rows)
    month = month_of(period_date)
    months: dict[dt.date, list[int]] = {}
    replaced = list(replaced)
    if replaced:
        for replaced_id, replaced_date in db.session.execute(
            select(Import.id, Import.period_date).where(Import.id.in_(replaced), Import.period_date.is_not(None))
        ):
            months.setdefault(month_of(replaced_date), []).append(replaced_id)
    same = months.pop(month, [])
    for other, ids in sorted(months.items()):
        _add_to_month(account_id, other, ids, subtracted=ids)
    _add_to_month(account_id, month, [import_id, *same], subtracted=same)
    if replaced:
        db.session.execute(delete(ImportTotal).where(ImportTotal.import_id.in_(replaced)),
                           execution_options={"synchronize_session": False})


def _upsert_month(select_sql: str) -> str:
    """INSERT … SELECT into month_totals that adds to existing rows (SQLite ≥ 3.24 and PostgreSQL)."""
    return (
        "INSERT INTO month_totals (account_id, period_month, member_id, column_id, total, line_count) "
        f"{select_sql} "
        "ON CONFLICT (account_id, period_month, member_id, column_id) DO UPDATE SET "
        "total = month_totals.total + excluded.total, line_count = month_totals.line_count + excluded.line_count"
    )


def _add_to_month(account_id: int, month: dt.date, import_ids: list[int], subtracted: list[int]) -> None:
    """Add the import_totals of `import_ids` to the month, those of `subtracted` (among them) negated; then
    drop the rows left without lines."""
    sign = "CASE WHEN import_id IN :subtracted THEN -1 ELSE 1 END * " if subtracted else ""
    # Rows go in key order, so two imports of one month on PostgreSQL lock them in the same order.
    statement = text(_upsert_month(
        f"SELECT :account_id, :month, member_id, column_id, SUM({sign}total), SUM({sign}line_count) "
        "FROM import_totals WHERE import_id IN :ids GROUP BY member_id, column_id ORDER BY member_id, column_id"
    )).bindparams(bindparam("month", type_=Date), bindparam("ids", expanding=True))
    parameters = {"account_id": account_id, "month": month, "ids": import_ids}
    if subtracted:
        statement = statement.bindparams(bindparam("subtracted", expanding=True))
        parameters["subtracted"] = subtracted
    db.session.execute(statement, parameters)
    if subtracted:
        _drop_empty(account_id, month)


def _drop_empty(account_id: int, month: dt.date) -> None:
    db.session.execute(
        delete(MonthTotal).where(MonthTotal.account_id == account_id, MonthTotal.period_month == month,
                                 MonthTotal.line_count <= 0),
        execution_options={"synchronize_session": False},
    )


def record_manual(account_id: int, member_id: int, period_date: dt.date, values: dict[str, float]) -> None:
    """Add one hand-typed result's values to its month (no commit)."""
    rows = [(LINES, 0.0)] + sorted((int(key), float(value)) for key, value in values.items() if value is not None)
    statement = text(_upsert_month(
        "SELECT :account_id, :month, :member_id, :column_id, :total, 1 WHERE 1 = 1"
    )).bindparams(bindparam("month", type_=Date))
    month = month_of(period_date)
    for column_id, total in rows:
        db.session.execute(statement, {"account_id": account_id, "month": month, "member_id": member_id,
                                       "column_id": column_id, "total": total})

