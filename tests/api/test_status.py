"""GET /api/v1/status: the token's account's open 未着 periods, last receipt and last succeeded import."""
from __future__ import annotations

import datetime as dt
import io

from sqlalchemy import update

from app.extensions import db
from app.models import Import, IntegrationSettings
from app.services import integration, overdue
from tests.fixtures.api import BAD_ROWS, csv_bytes


def upload(client, headers, name: str, rows=None):
    return client.post("/api/v1/imports?wait=1", headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(csv_bytes(rows)), name)})


def test_status_lists_the_open_periods_the_last_receipt_and_the_last_success(app, client, api_account, api_worker):
    h = api_account.headers
    empty = client.get("/api/v1/status", headers=h).get_json()
    assert empty == {"account": "acme", "overdue_enabled": False, "overdue": [], "last_receipt": None,
                     "last_success": None}

    integration.update_settings(api_account.id, {"overdue_enabled": "on", "overdue_daily": "same",
                                                 "overdue_daily_time": "09:30"}, actor="test")
    db.session.execute(update(IntegrationSettings).where(IntegrationSettings.account_id == api_account.id)
                       .values(overdue_since=dt.datetime(2026, 11, 30, 15, 0)))
    db.session.commit()
    good = upload(client, h, "20261130.csv").get_json()
    bad = upload(client, h, "20261201.csv", BAD_ROWS).get_json()
    assert (good["status"], bad["status"]) == ("succeeded", "failed")
    db.session.execute(update(Import).where(Import.id == bad["id"]).values(received_at=dt.datetime(2026, 12, 1)))
    db.session.execute(update(Import).where(Import.id == good["id"]).values(received_at=dt.datetime(2026, 11, 30)))
    db.session.commit()
    overdue.evaluate(api_account.id, dt.datetime(2026, 12, 1, 0, 30, tzinfo=dt.timezone.utc))

    status = client.get("/api/v1/status", headers=h).get_json()
    assert status["overdue_enabled"] is True
    assert status["overdue"] == [{"period": "20261201", "period_kind": "day", "deadline": "2026-12-01T00:30:00Z",
                                  "opened_at": "2026-12-01T00:30:00Z",
                                  "message": "2026/12/01 分のデータが届いていません(期限 09:30)"}]
    assert status["last_receipt"]["id"] == bad["id"] and status["last_receipt"]["status"] == "failed"
    assert status["last_success"]["id"] == good["id"] and status["last_success"]["filename"] == "20261130.csv"


def test_status_needs_the_token(client, api_account):
    assert client.get("/api/v1/status").status_code == 401
