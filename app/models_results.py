"""The tables of results: the imported lines in blocks, the results typed by hand, and their sums
per import and per month. `migrations/` creates them (0006, 0021); app/models.py imports this
module, so db.metadata always has them.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db


class ResultBlock(db.Model):
    """Consecutive valid lines of one imported file (one reader batch), stored column-wise.

    A 200,000-line file is 400 rows, not 200,000 (migration 0021): the insert, the delete of a
    replaced import and the database's work per line go, and the numbers are stored as their
    8 bytes instead of JSON text. app/db/bulk.py packs and unpacks the arrays (little-endian):
    `lines` and `member_ids` 8-byte integers, `numbers` 8-byte floats row after row in the
    order of `column_ids`, NaN for an empty cell (a stored value is always finite). `notes`
    is the rows' 備考 in order, or null when no row has one. The import's period is its own.
    """

    __tablename__ = "result_blocks"
    __table_args__ = {"sqlite_with_rowid": False}

    # No foreign keys, as results had none since 0017: only the runner writes blocks, in the
    # transaction of their import, with its id and account; nothing deletes imports or accounts.
    import_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    block: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    account_id: Mapped[int]
    line_count: Mapped[int]
    column_ids: Mapped[list[int]] = mapped_column(JSON)
    lines: Mapped[bytes] = mapped_column(LargeBinary)
    member_ids: Mapped[bytes] = mapped_column(LargeBinary)
    numbers: Mapped[bytes] = mapped_column(LargeBinary)
    notes: Mapped[list[str | None] | None] = mapped_column(JSON)


class ManualResult(db.Model):
    """A result typed by hand: a member's values for one period, which imports never touch.

    Values are a JSON object {graph column id: number}.
    """

    __tablename__ = "manual_results"
    __table_args__ = (Index("ix_manual_results_account_period", "account_id", "period_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    period_kind: Mapped[str] = mapped_column(String(8))
    period_date: Mapped[dt.date]
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)


class _MemberColumnSum:
    """The last part of a totals key, member and graph column, and what is summed: values and lines.

    column_id 0 holds the member's line count (lines with or without values); see services/totals.py.
    No foreign key on column_id: a deleted column's sums stay, as its values stay in the rows.
    A mixin's columns come after the class's own, so the primary key ends (member_id, column_id).
    """

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    column_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    total: Mapped[float]
    line_count: Mapped[int]


class ImportTotal(_MemberColumnSum, db.Model):
    """Per succeeded import, member and graph column: the sum of the column's values and its lines."""

    __tablename__ = "import_totals"

    import_id: Mapped[int] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True)


class MonthTotal(_MemberColumnSum, db.Model):
    """Per account, calendar month (its first day), member and column: the month's sum over imports and hand-typed results."""

    __tablename__ = "month_totals"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    period_month: Mapped[dt.date] = mapped_column(primary_key=True)
