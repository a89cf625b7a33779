"""Fixtures and helpers of the HTTP API tests (imported by each test module; no conftest here).

api_account   an integration-enabled account in API連動 mode, active, with members, columns and a token
api_server    the app served by waitress (servers.web.WebServer) on a free port; yields the base URL
api_worker    the import worker, so 202-queued uploads get imported
csv_bytes     a results CSV as Excel writes it (cp932, CRLF)
"""
from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import pytest

from tests.waiting import wait_for  # noqa: F401  (the API tests import it from here)

API_MEMBERS = [(1, "E001", "髙橋 一郎"), (2, "E002", "佐藤 花子"), (3, "E003", "鈴木 次郎")]
API_COLUMNS = [("売上", "円"), ("粗利", "円"), ("件数", "件")]
ERROR_TO = "errors@acme.example"

GOOD_ROWS = [
    ["No.", "売上", "粗利", "件数", "備考"],
    ["1", "120,000", "30000", "2", "髙橋様 ①件目"],
    ["2", "50000", "12000", "1", "Ａ社 新規"],
]
BAD_ROWS = [
    ["No.", "売上", "粗利", "件数"],
    ["1", "12x", "30000", "2"],
    ["99", "100", "1", "1"],
    ["2", "50000", "abc", "1"],
]


def csv_bytes(rows: list[list[str]] | None = None, encoding: str = "cp932") -> bytes:
    """A results CSV as Excel writes it (cp932, CRLF); the default rows are valid for api_account."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows if rows is not None else GOOD_ROWS)
    return buffer.getvalue().encode(encoding)


def auth(token: str) -> dict[str, str]:
    """The Authorization header of `token`."""
    return {"Authorization": f"Bearer {token}"}


def make_api_account(make_account, slug: str = "acme", *, mode: str = "api", status: str = "active",
                     integration: bool = True) -> SimpleNamespace:
    """Create an account with members, columns, API settings and an issued token."""
    from app.services import columns, integration as integration_service, members

    account, email, _ = make_account(slug, integration=integration)
    for no, employee_id, name in API_MEMBERS:
        members.create_member(account.id, no, employee_id, name, "営業部")
    for name, unit in API_COLUMNS:
        columns.add_column(account.id, name, unit)
    integration_service.update_settings(
        account.id, {"mode": mode, "status": status, "error_to": [ERROR_TO], "senders": ["x@partner.example"]},
        actor="test",
    )
    token = integration_service.issue_api_token(account.id, actor="test")
    return SimpleNamespace(id=account.id, slug=slug, token=token, headers=auth(token), email=email)


@pytest.fixture
def api_account(app, make_account) -> SimpleNamespace:
    """An enabled account in API連動 mode, active; the rate limit is high enough not to interfere."""
    app.config["API_RATE_PER_MINUTE"] = 10_000
    return make_api_account(make_account)


@pytest.fixture
def api_server(app):
    """Serve the app with waitress from a thread on a free port; yields "http://127.0.0.1:PORT"."""
    from servers.web import WebServer

    server = WebServer(app, "127.0.0.1", 0, threads=4).start()
    try:
        yield server.listeners[0].rstrip("/")
    finally:
        server.stop(timeout=10)


@pytest.fixture
def api_worker(app):
    """The import worker of the test app (no relay: report mails stay in the outbox)."""
    from servers.worker import Worker

    worker = Worker(app, poll_seconds=0.1)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


