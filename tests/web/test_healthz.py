"""GET /healthz in an app without run.py (the registry is empty) and what it says of the import queue."""
from __future__ import annotations

import datetime as dt

from app import health
from app.extensions import db
from app.models import Import
from app.services import ingest
from tests.fixtures.api import csv_bytes

NOON_UTC = dt.datetime(2026, 11, 20, 3, 0)  # naive UTC, as stored: 12:00 in Tokyo


def queue_file(account_id: int, name: str, received_at: dt.datetime, channel: str = "api") -> Import:
    imp = ingest.receive(account_id, name, csv_bytes(), channel=channel)
    imp.received_at = received_at
    db.session.commit()
    return imp


def test_without_run_py_no_parts_and_ok(client):
    answer = client.get("/healthz")

    assert answer.status_code == 200
    assert answer.get_json() == {"status": "ok", "parts": {}, "database": "ok",
                                 "queue": {"waiting": 0, "oldest_age_seconds": None}}


def test_the_queue_counts_every_accounts_waiting_imports_and_ages_the_oldest(app, client, make_account):
    acme, beta = make_account("acme"), make_account("beta")
    queue_file(acme.id, "20261119.csv", NOON_UTC - dt.timedelta(minutes=5))
    queue_file(beta.id, "20261120.csv", NOON_UTC - dt.timedelta(seconds=30))
    done = queue_file(acme.id, "20261118.csv", NOON_UTC - dt.timedelta(hours=3))
    done.status = Import.SUCCEEDED  # ended: no longer waiting
    db.session.commit()
    app.extensions[health.CLOCK_KEY] = lambda: dt.datetime(2026, 11, 20, 12, 0, 10,
                                                             tzinfo=dt.timezone(dt.timedelta(hours=9)))

    answer = client.get("/healthz")

    assert answer.get_json()["queue"] == {"waiting": 2, "oldest_age_seconds": 310}
    body = answer.get_data(as_text=True)
    assert "acme" not in body and "20261119" not in body  # no account data


def test_needs_no_login_and_no_session(app):
    fresh = app.test_client()  # no cookie at all, as a load balancer asks

    answer = fresh.get("/healthz")

    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in answer.headers


def test_a_dead_registered_part_is_503(app, client):
    class Stopped:
        def alive(self) -> bool:
            return False

    class Serving:
        def alive(self) -> bool:
            return True

    registry = health.parts(app)
    registry.configure(["worker", "smtp", "sftp"])
    registry.register("worker", Serving())
    registry.register("smtp", Stopped())

    answer = client.get("/healthz")

    assert answer.status_code == 503
    assert answer.get_json()["status"] == "unhealthy"
    assert answer.get_json()["parts"] == {"worker": "alive", "smtp": "dead", "sftp": "not running"}


def test_a_database_that_does_not_answer_is_503(app, client, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from app.services import queue

    def down(account_id=None):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(queue, "waiting", down)

    answer = client.get("/healthz")

    assert answer.status_code == 503
    assert answer.get_json() == {"status": "unhealthy", "parts": {}, "database": "unreachable",
                                 "queue": {"waiting": None, "oldest_age_seconds": None}}
