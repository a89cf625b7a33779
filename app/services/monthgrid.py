"""A month's or a day's sums as one row per member: the single read of the totals for the board and the results API.

month_totals holds one row per (member, column); a 5,000-member month with 7 columns is 40,000
of them. Turning them into a table in Python (a Row, a dict look-up and an ORM Member per
cell) cost more than the rest of the page, so the database pivots them: one row per member,
its fields, its line count and one value per column, already in No. order. A day is pivoted
the same way from import_totals of the day's daily imports (never from the result rows).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, or_, select

from ..extensions import db
from ..models import Import, Member
from ..models_results import ImportTotal, ManualResult, MonthTotal
from .totals import LINES


def month_grid(account_id: int, month: dt.date, column_ids: Sequence[int], fields: Sequence[Any],
               with_inactive_results: bool = False) -> list[tuple]:
    """Rows of (*fields, line count or None, the sum of each column id or None), by No.

    Active members always, with None where nothing is stored; with `with_inactive_results`
    also the inactive members that have lines or values of these columns in the month.
    `month` is the month's first day; `fields` are Member columns.
    """
    ids = [int(column_id) for column_id in column_ids]
    # (account, month, member, column) is month_totals' key: each CASE meets at most one row
    # per member, so the SUM is that row's value, or NULL when the member has none.
    grid = (
        select(MonthTotal.member_id.label("member_id"), *_pivot(MonthTotal, ids))
        .where(MonthTotal.account_id == account_id, MonthTotal.period_month == month,
               MonthTotal.column_id.in_([LINES, *ids]))
        .group_by(MonthTotal.member_id)
        .subquery()
    )
    return [tuple(row) for row in db.session.execute(_members_with(grid, account_id, ids, fields, with_inactive_results))]


def day_grid(account_id: int, day: dt.date, column_ids: Sequence[int], fields: Sequence[Any],
             with_inactive_results: bool = False) -> list[tuple]:
    """month_grid's rows for one day: its daily files (yyyymmdd) and the results typed by hand for it.

    A monthly file (yyyymm00) belongs to no day: it is in the month only. Several daily imports
    of one day (20180516.csv and 20180516.xlsx are different names) add up, as on the month.
    """
    ids = [int(column_id) for column_id in column_ids]
    grid = (
        select(ImportTotal.member_id.label("member_id"), *_pivot(ImportTotal, ids))
        .join(Import, Import.id == ImportTotal.import_id)
        .where(Import.account_id == account_id, Import.status == Import.SUCCEEDED,
               Import.period_kind == "day", Import.period_date == day,
               ImportTotal.column_id.in_([LINES, *ids]))
        .group_by(ImportTotal.member_id)
        .subquery()
    )
    manual = _typed_by_hand(account_id, day, ids)
    query = _members_with(grid, account_id, ids, [Member.id, *fields], with_inactive_results, also=list(manual))
    rows = []
    for row in db.session.execute(query):
        extra = manual.get(row[0])
        if extra is None:
            rows.append(tuple(row[1:]))
        else:
            stored = row[len(fields) + 1:]
            rows.append((*row[1:len(fields) + 1], *(a if b is None else b if a is None else a + b
                                                    for a, b in zip(stored, extra))))
    return rows


def _pivot(table, ids: list[int]) -> list:
    """The line count and one SUM per column id of a totals table (month_totals or import_totals)."""
    return [
        func.sum(case((table.column_id == LINES, table.line_count))).label("lines"),
        *(func.sum(case((table.column_id == column_id, table.total))).label(f"c{index}")
          for index, column_id in enumerate(ids)),
    ]


def _members_with(grid, account_id: int, ids: list[int], fields: Sequence[Any], with_inactive_results: bool,
                  also: Sequence[int] = ()):
    """The account's members (active, or with sums when asked; `also` names more) joined to a pivoted grid, by No."""
    shown = Member.active.is_(True)
    if with_inactive_results:
        shown = or_(shown, grid.c.member_id.is_not(None), *([Member.id.in_(also)] if also else []))
    return (
        select(*fields, grid.c.lines, *(grid.c[f"c{index}"] for index in range(len(ids))))
        .outerjoin(grid, grid.c.member_id == Member.id)
        .where(Member.account_id == account_id, shown)
        .order_by(Member.no)
    )


def _typed_by_hand(account_id: int, day: dt.date, ids: list[int]) -> dict[int, list]:
    """member id -> [lines, the sum of each column id or None] of the day's hand-typed results (a few rows)."""
    sums: dict[int, list] = {}
    for member_id, values in db.session.execute(
        select(ManualResult.member_id, ManualResult.values)
        .where(ManualResult.account_id == account_id, ManualResult.period_kind == "day",
               ManualResult.period_date == day)
    ):
        target = sums.setdefault(member_id, [0] + [None] * len(ids))
        target[0] += 1
        for index, column_id in enumerate(ids, start=1):
            value = (values or {}).get(str(column_id))
            if value is not None:
                target[index] = value if target[index] is None else target[index] + value
    return sums
