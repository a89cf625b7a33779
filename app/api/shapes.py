"""The JSON shape of an import, one for the API and `flask imports list --json` (docs/spec.md).

Times are UTC, ISO 8601 with a Z and whole seconds (2018-05-16T00:00:05Z), as the OpenAPI
document (api/openapi.py) promises. Nothing here reads the database beyond the row given.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Any

from ..importer.filename import period_key as filename_period_key  # this module's period_key adds None
from ..models import Import


def iso_utc(value: dt.datetime | None) -> str | None:
    """A naive-UTC timestamp from the DB as ISO 8601 with a Z, e.g. 2018-05-16T00:00:05Z."""
    if value is None:
        return None
    return value.replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def number(value: float | int | None) -> float | int | None:
    """A stored value for JSON: integral values as integers (120000, not 120000.0)."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):  # a sum can overflow; JSON has no Infinity
        return None
    return int(value) if value.is_integer() else value


def period_key(kind: str | None, date: dt.date | None) -> str | None:
    """The period as the API writes it: "20180516" for a day, "201805" for a month."""
    if date is None:
        return None
    return filename_period_key(kind or "month", date)


def import_json(imp: Import) -> dict[str, Any]:
    """The API's representation of one import (without its errors: see errors_page)."""
    data: dict[str, Any] = {
        "id": imp.id,
        "filename": imp.filename,
        "channel": imp.channel,
        "sender": imp.sender,
        "status": imp.status,
        "status_label": imp.status_label,
        "received_at": iso_utc(imp.received_at),
        "finished_at": iso_utc(imp.finished_at),
        "period": period_key(imp.period_kind, imp.period_date),
        "period_kind": imp.period_kind,
        "row_count": imp.row_count or 0,
        "error_count": imp.error_count or 0,
        "replaced_import_id": imp.replaced_import_id,
        "replaced_by_id": imp.replaced_by_id,
        "size": imp.size or 0,
        "note": imp.note,
        "archive_id": imp.archive_id,
        # 見出しにない列: 無視する skipped these headers of the file (import_json of an older import: []).
        "ignored_headers": [str(name) for name in imp.ignored_headers or []],
    }
    return data
