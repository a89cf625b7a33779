"""Read-only queries of the HTTP API and the JSON shapes it answers with (no writes here)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from ..extensions import db
from ..importer.filename import Period
from ..models import GraphColumn, Import, ImportErrorRecord, Member
from ..services import columns as columns_service
from ..services import members as members_service
from ..services import monthgrid

# import_json is re-exported: the routes call queries.import_json (the shape itself lives in shapes.py).
from .shapes import import_json, number  # noqa: F401


def errors_page(import_id: int, *, limit: int, offset: int) -> dict[str, Any]:
    """One page of an import's stored errors (in file order) and how many are stored in all.

    At most MAX_ERRORS_PER_FILE errors are stored per import; `error_count` of the import
    counts every error found, so it may be larger than `errors_stored`.
    """
    where = ImportErrorRecord.import_id == import_id
    stored = db.session.scalar(select(func.count()).select_from(ImportErrorRecord).where(where)) or 0
    rows = db.session.execute(
        select(ImportErrorRecord.line, ImportErrorRecord.column, ImportErrorRecord.column_letter,
               ImportErrorRecord.value, ImportErrorRecord.message)
        .where(where).order_by(ImportErrorRecord.id).limit(limit).offset(offset)
    )
    return {
        # column_letter: "C" for a workbook's error (the column as the spreadsheet shows it), else null.
        "errors": [{"line": line, "column": column, "column_letter": letter, "value": value, "message": message}
                   for line, column, letter, value, message in rows],
        "errors_stored": stored,
        "errors_limit": limit,
        "errors_offset": offset,
    }


def list_imports(account_id: int, *, limit: int, offset: int, status: str | None = None) -> tuple[list[Import], int]:
    """One page of the account's imports, newest first, and how many there are in all."""
    where = [Import.account_id == account_id]
    if status:
        where.append(Import.status == status)
    total = db.session.scalar(select(func.count()).select_from(Import).where(*where)) or 0
    rows = db.session.scalars(
        select(Import).where(*where).order_by(Import.received_at.desc(), Import.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), total


def get_import(account_id: int, import_id: int) -> Import | None:
    """The account's import (errors not loaded); None for another account's or a missing id."""
    return db.session.scalar(select(Import).where(Import.id == import_id, Import.account_id == account_id))


# The API's representation of one member (メンバー): its keys and the Member columns they come from.
MEMBER_FIELDS = (("id", Member.id), ("no", Member.no), ("employee_id", Member.employee_id), ("name", Member.name),
                 ("department", Member.department), ("email", Member.email), ("active", Member.active))
_MEMBER_KEYS = tuple(key for key, _ in MEMBER_FIELDS)


def member_json(member: Member) -> dict[str, Any]:
    """The API's representation of one member (メンバー)."""
    return member_row_json(tuple(getattr(member, key) for key in _MEMBER_KEYS))


def member_row_json(row: Sequence[Any]) -> dict[str, Any]:
    """The same from a row of MEMBER_FIELDS' columns, in their order."""
    data = dict(zip(_MEMBER_KEYS, row))
    data["active"] = bool(data["active"])
    return data


def column_json(column: GraphColumn) -> dict[str, Any]:
    """The API's representation of one graph column (グラフ列)."""
    return {"id": column.id, "name": column.name, "unit": column.unit or "", "position": column.position}


def list_members(account_id: int) -> list[dict[str, Any]]:
    """Every member of the account (active or not), by No."""
    return [member_json(m) for m in members_service.list_members(account_id)]


def list_columns(account_id: int) -> list[dict[str, Any]]:
    """The account's graph columns in display order."""
    return [column_json(c) for c in columns_service.list_columns(account_id)]


def results_json(account_id: int, period: Period) -> dict[str, Any]:
    """Stored values per member and graph column for a day, or for a month as the board sums it.

    A day: that day's results. A month: every daily result of the month plus the monthly
    file's results (and results typed by hand), added up. Members listed are the active ones
    and any inactive member that has results in the period; values of deleted columns are left out.
    """
    first = period.date
    columns = columns_service.list_columns(account_id)
    ids = [c.id for c in columns]
    # One row per member, pivoted by the database (services/monthgrid.py): a month of
    # 5,000 members is 5,000 tuples here, not 40,000 rows and 5,000 ORM objects.
    grid = monthgrid.day_grid if period.kind == "day" else monthgrid.month_grid
    rows = grid(account_id, first, ids, [column for _, column in MEMBER_FIELDS], with_inactive_results=True)
    names = [c.name for c in columns]
    fields = len(MEMBER_FIELDS)
    totals: list[float | None] = [None] * len(columns)
    out_members = []
    for row in rows:
        values = row[fields + 1:]
        for index, value in enumerate(values):
            if value is not None:
                totals[index] = value if totals[index] is None else totals[index] + value
        member = member_row_json(row[:fields])
        member["lines"] = row[fields] or 0
        member["values"] = dict(zip(names, map(number, values)))
        out_members.append(member)
    return {
        "period": period.key,
        "period_kind": period.kind,
        "from": first.isoformat(),
        "to": period.last_day.isoformat(),
        "columns": [column_json(c) for c in columns],
        "members": out_members,
        "totals": dict(zip(names, map(number, totals))),
    }
