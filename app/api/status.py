"""GET /api/v1/status: for monitoring, the token's account's open 未着 periods, last receipt and last success.

The same open periods as `flask integration overdue` and the banner on メイン (services/overdue.py);
read-only: it evaluates nothing (the scheduler does, every minute).
"""
from __future__ import annotations

from flask import Response, current_app
from sqlalchemy import select

from .. import config
from ..extensions import db
from ..importer.filename import period_key
from ..models import Import, IntegrationSettings
from ..services import overdue
from . import bp
from .answers import json_response
from .bearer import authenticate
from .shapes import import_json, iso_utc


def _latest(account_id: int, *conditions) -> Import | None:
    return db.session.scalar(select(Import).where(Import.account_id == account_id, *conditions)
                             .order_by(Import.received_at.desc(), Import.id.desc()).limit(1))


@bp.get("/status")
def get_status() -> Response:
    """The account's データ未着 state: open periods, the last file received and the last succeeded import."""
    account = authenticate()
    zone = config.timezone(current_app)
    settings = db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == account.id))
    last = _latest(account.id)
    success = _latest(account.id, Import.status == Import.SUCCEEDED)
    return json_response({
        "account": account.slug,
        "overdue_enabled": bool(settings and settings.overdue_enabled),
        "overdue": [{"period": period_key(entry.period_kind, entry.period_date), "period_kind": entry.period_kind,
                     "deadline": iso_utc(entry.deadline), "opened_at": iso_utc(entry.opened_at),
                     "message": overdue.banner_text(entry, zone)}
                    for entry in overdue.open_periods(account.id)],
        "last_receipt": import_json(last) if last else None,
        "last_success": import_json(success) if success else None,
    })
