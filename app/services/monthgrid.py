"""A month's sums as one row per member: the single read of month_totals for the board and the month API.

month_totals holds one row per (member, column); a 5,000-member month with 7 columns is 40,000
of them. Turning them into a table in Python (a Row, a dict look-up and an ORM Member per
cell) cost more than the rest of the page, so the database pivots them: one row per member,
its fields, its line count and one value per column, already in No. order.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, or_, select

from ..extensions import db
from ..models import Member, MonthTotal
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
        select(
            MonthTotal.member_id.label("member_id"),
            func.sum(case((MonthTotal.column_id == LINES, MonthTotal.line_count))).label("lines"),
            *(func.sum(case((MonthTotal.column_id == column_id, MonthTotal.total))).label(f"c{index}")
              for index, column_id in enumerate(ids)),
        )
        .where(MonthTotal.account_id == account_id, MonthTotal.period_month == month,
               MonthTotal.column_id.in_([LINES, *ids]))
        .group_by(MonthTotal.member_id)
        .subquery()
    )
    shown = Member.active.is_(True)
    if with_inactive_results:
        shown = or_(shown, grid.c.member_id.is_not(None))
    query = (
        select(*fields, grid.c.lines, *(grid.c[f"c{index}"] for index in range(len(ids))))
        .outerjoin(grid, grid.c.member_id == Member.id)
        .where(Member.account_id == account_id, shown)
        .order_by(Member.no)
    )
    return [tuple(row) for row in db.session.execute(query)]
