"""Browser fixtures: the real app served by waitress on a free port, and Debian's chromium through Playwright.

CSRF is ON here (as in production). The database is a migrated one from tests/fixtures/database.py's
`new_database` (SQLite or PostgreSQL, as the suite runs), shared by the tests of a module;
each test resets the integration settings it relies on through the service.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import create_app
from app.extensions import db
from tests.fixtures.accounts import PASSWORD, create_test_account

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@dataclass
class LiveServer:
    app: object
    url: str
    account_id: int
    admin_email: str
    viewer_email: str


@pytest.fixture(scope="module")
def renkei_server(tmp_path_factory, new_database):
    """Serve the app with waitress on 127.0.0.1:<free port>, with an integration-enabled account, an admin and a viewer."""
    import waitress

    from app.models import User
    from app.services import users

    folder = tmp_path_factory.mktemp("browser")
    database_url = new_database(folder)
    app = create_app({
        "TESTING": True,
        "DATA_DIR": str(folder),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "browser-test-secret",
        "WTF_CSRF_ENABLED": True,
        "LOGIN_FAIL_DELAY": 0,  # no wait between tries; the tests of the delay set it, with login_clock
        "SMTP_RELAY": None,
        "PUBLIC_URL": "http://renkei.test",
        "FTP_PUBLIC_HOST": "ftp.renkei.test",
    })
    with app.app_context():
        account_id = create_test_account("acme", name="アクメ株式会社", password=PASSWORD).id
        users.create_user(account_id, "viewer@acme.example", PASSWORD, User.VIEWER)
        db.session.remove()

    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, name="waitress-browser-tests", daemon=True)
    thread.start()
    try:
        yield LiveServer(app, f"http://127.0.0.1:{server.effective_port}", account_id,
                         "admin@acme.example", "viewer@acme.example")
    finally:
        server.close()
        thread.join(timeout=10)
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="package")
def chromium():
    """One headless Debian chromium for the browser tests.

    Package scope, not session: sync_playwright keeps an event loop running in the main
    thread while it is open, and later tests that call asyncio.run() would fail.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_page(chromium, renkei_server):
    """Open a fresh context (own cookies) logged in as `who`; closes everything at teardown."""
    contexts = []

    def open_page(email: str, javascript: bool = True, viewport: dict | None = None):
        context = chromium.new_context(
            java_script_enabled=javascript,
            viewport=viewport or {"width": 1280, "height": 900},
            locale="ja-JP",
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(renkei_server.url + "/login")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(renkei_server.url + "/")
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """The folder the browser tests save screenshots in: RENKEI_SCREENSHOT_DIR, else one under pytest's tmp dir."""
    wanted = os.environ.get("RENKEI_SCREENSHOT_DIR")
    folder = Path(wanted) if wanted else tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    # Shown with -s, and in the captured output of a failing test: where to look.
    print(f"スクリーンショットの保存先 (screenshots): {folder}")
    return folder
