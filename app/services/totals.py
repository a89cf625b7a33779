"""Sums of stored results kept next to them, so the board and the month API never read every row.

Two small tables, both written in the transaction that writes or deletes the rows they sum:

- `import_totals`: per succeeded import, member and graph column, the sum of the column's
  values and how many lines held one; column id 0 holds the member's line count (any values).
  Written from the import's own rows right after they are inserted; deleted with the import's
  rows when a later file of the same name replaces them.
- `month_totals`: the same per account, calendar month, member and column, over every import
  of the month (daily files and the monthly file) plus the results typed by hand. An import
  adds its totals, the import it replaces subtracts its own, a hand-typed result adds its
  values; rows whose line count drops to 0 are deleted, so a row exists exactly when a value does.

Sums are of floats in a different order than a row-by-row sum, so they are equal for integer
values (below 2**53) and equal within float rounding otherwise.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable

from sqlalchemy import Date, bindparam, delete, select, text

from ..extensions import db
from ..models import Import, ImportTotal, MonthTotal

LINES = 0  # the column id of a member's line count (column ids start at 1)


def month_of(date: dt.date) -> dt.date:
    return date.replace(day=1)


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _cell(dialect: str, column_id: int) -> str:
    """SQL for one graph column's value in a result's JSON (NULL when the line has none)."""
    key = int(column_id)  # an integer id, written into the SQL as digits only
    if dialect == "postgresql":
        return f"(r.\"values\" ->> '{key}')::float8"
    return f"json_extract(r.\"values\", '$.\"{key}\"')"


def record_import(import_id: int, account_id: int, period_date: dt.date, column_ids: Iterable[int]) -> None:
    """Sum the just-inserted rows of an import into import_totals and add them to its month (no commit).

    One pass over the import's rows in the database, one group per member: the JSON of a row is
    read once per graph column by the database's own JSON functions, and no Python runs per row.
    """
    ids = sorted(set(column_ids))
    dialect = _dialect()
    cells = "".join(f", SUM({_cell(dialect, c)}), COUNT({_cell(dialect, c)})" for c in ids)
    rows = db.session.execute(
        text(f"SELECT r.member_id, COUNT(*){cells} FROM results r WHERE r.import_id = :import_id "
             "GROUP BY r.member_id"),
        {"import_id": import_id},
    )
    out = []
    for member_id, lines, *sums in rows:
        out.append({"import_id": import_id, "member_id": member_id, "column_id": LINES, "total": 0.0,
                    "line_count": lines})
        for index, column_id in enumerate(ids):
            count = sums[2 * index + 1]
            if count:
                out.append({"import_id": import_id, "member_id": member_id, "column_id": column_id,
                            "total": float(sums[2 * index]), "line_count": count})
    if out:
        db.session.execute(ImportTotal.__table__.insert(), out)
    _add_to_month(account_id, month_of(period_date), [import_id], sign=1)


def forget_imports(account_id: int, import_ids: Iterable[int]) -> None:
    """Subtract replaced imports' totals from their months and delete them (before their rows go; no commit)."""
    ids = list(import_ids)
    if not ids:
        return
    months: dict[dt.date, list[int]] = {}
    for import_id, period_date in db.session.execute(
        select(Import.id, Import.period_date).where(Import.id.in_(ids), Import.period_date.is_not(None))
    ):
        months.setdefault(month_of(period_date), []).append(import_id)
    for month, month_ids in sorted(months.items()):
        _add_to_month(account_id, month, month_ids, sign=-1)
    db.session.execute(delete(ImportTotal).where(ImportTotal.import_id.in_(ids)),
                       execution_options={"synchronize_session": False})


def _upsert_month(select_sql: str) -> str:
    """INSERT … SELECT into month_totals that adds to existing rows (SQLite ≥ 3.24 and PostgreSQL)."""
    return (
        "INSERT INTO month_totals (account_id, period_month, member_id, column_id, total, line_count) "
        f"{select_sql} "
        "ON CONFLICT (account_id, period_month, member_id, column_id) DO UPDATE SET "
        "total = month_totals.total + excluded.total, line_count = month_totals.line_count + excluded.line_count"
    )


def _add_to_month(account_id: int, month: dt.date, import_ids: list[int], sign: int) -> None:
    # Rows go in key order, so two imports of one month on PostgreSQL lock them in the same order.
    statement = text(_upsert_month(
        f"SELECT :account_id, :month, member_id, column_id, SUM(total) * {sign}, SUM(line_count) * {sign} "
        "FROM import_totals WHERE import_id IN :ids GROUP BY member_id, column_id ORDER BY member_id, column_id"
    )).bindparams(bindparam("month", type_=Date), bindparam("ids", expanding=True))
    db.session.execute(statement, {"account_id": account_id, "month": month, "ids": import_ids})
    if sign < 0:
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


def day_rows(account_id: int, day: dt.date) -> list[tuple[int, int, float, int]]:
    """(member id, column id, total, line count) of one day's daily imports (hand-typed results are not in
    them); column id LINES holds the member's lines. A month is read by services/monthgrid.py."""
    from sqlalchemy import func

    return list(db.session.execute(
        select(ImportTotal.member_id, ImportTotal.column_id, func.sum(ImportTotal.total),
               func.sum(ImportTotal.line_count))
        .join(Import, Import.id == ImportTotal.import_id)
        .where(Import.account_id == account_id, Import.status == Import.SUCCEEDED,
               Import.period_kind == "day", Import.period_date == day)
        .group_by(ImportTotal.member_id, ImportTotal.column_id)
    ))
