"""Read-only queries of the HTTP API and the JSON shapes it answers with (no writes here)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, or_, select

from ..extensions import db
from ..importer.filename import Period, month_bounds
from ..models import GraphColumn, Import, ImportErrorRecord, ManualResult, Member
from ..services import columns as columns_service
from ..services import members as members_service
from ..services import totals as totals_service
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
        select(ImportErrorRecord.line, ImportErrorRecord.column, ImportErrorRecord.value, ImportErrorRecord.message)
        .where(where).order_by(ImportErrorRecord.id).limit(limit).offset(offset)
    )
    return {
        "errors": [{"line": line, "column": column, "value": value, "message": message}
                   for line, column, value, message in rows],
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


def member_json(member: Member) -> dict[str, Any]:
    """The API's representation of one member (メンバー)."""
    return {
        "id": member.id,
        "no": member.no,
        "employee_id": member.employee_id,
        "name": member.name,
        "department": member.department,
        "email": member.email,
        "active": bool(member.active),
    }


def column_json(column: GraphColumn) -> dict[str, Any]:
    """The API's representation of one graph column (グラフ列)."""
    return {"id": column.id, "name": column.name, "unit": column.unit or "", "position": column.position}


def list_members(account_id: int) -> list[dict[str, Any]]:
    """Every member of the account (active or not), by No."""
    return [member_json(m) for m in members_service.list_members(account_id)]


def list_columns(account_id: int) -> list[dict[str, Any]]:
    """The account's graph columns in display order."""
    return [column_json(c) for c in columns_service.list_columns(account_id)]


def _period_bounds(period: Period) -> tuple[dt.date, dt.date]:
    """First day and the day after the last day the period covers."""
    if period.kind == "day":
        return period.date, period.date + dt.timedelta(days=1)
    return month_bounds(period.date.year, period.date.month)


def results_json(account_id: int, period: Period) -> dict[str, Any]:
    """Stored values per member and graph column for a day, or for a month as the board sums it.

    A day: that day's results. A month: every daily result of the month plus the monthly
    file's results (and results typed by hand), added up. Members listed are the active ones
    and any inactive member that has results in the period; values of deleted columns are left out.
    """
    first, following = _period_bounds(period)
    columns = columns_service.list_columns(account_id)
    known = {c.id for c in columns}
    sums: dict[int, dict[int, float]] = {}
    lines: dict[int, int] = {}

    def add(member_id: int, column_id: int, total: float, line_count: int) -> None:
        if column_id == totals_service.LINES:
            lines[member_id] = lines.get(member_id, 0) + line_count
            sums.setdefault(member_id, {})
        elif column_id in known:
            target = sums.setdefault(member_id, {})
            target[column_id] = target.get(column_id, 0.0) + total

    if period.kind == "day":
        for row in totals_service.day_rows(account_id, period.date):
            add(*row)
        # Hand-typed results of the day are not in any import's totals: the day's few are summed here.
        manual = db.session.execute(
            select(ManualResult.member_id, ManualResult.values)
            .where(ManualResult.account_id == account_id, ManualResult.period_kind == "day",
                   ManualResult.period_date == period.date)
        )
        for member_id, values in manual:
            add(member_id, totals_service.LINES, 0.0, 1)
            for key, value in (values or {}).items():
                if value is not None:
                    add(member_id, int(key), value, 1)
    else:
        for row in totals_service.month_rows(account_id, first):
            add(*row)
    members = db.session.scalars(
        select(Member)
        .where(Member.account_id == account_id, or_(Member.active.is_(True), Member.id.in_(list(sums) or [-1])))
        .order_by(Member.no)
    )
    totals: dict[int, float] = {}
    out_members = []
    for member in members:
        member_sums = sums.get(member.id, {})
        for column_id, value in member_sums.items():
            totals[column_id] = totals.get(column_id, 0.0) + value
        out_members.append({
            **member_json(member),
            "lines": lines.get(member.id, 0),
            "values": {c.name: number(member_sums.get(c.id)) for c in columns},
        })
    return {
        "period": period.key,
        "period_kind": period.kind,
        "from": first.isoformat(),
        "to": (following - dt.timedelta(days=1)).isoformat(),
        "columns": [column_json(c) for c in columns],
        "members": out_members,
        "totals": {c.name: number(totals.get(c.id)) for c in columns},
    }
