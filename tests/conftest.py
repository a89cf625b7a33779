"""Shared fixtures: an app per test on its own database made by the migrations, client, runner, login.

The suite runs on SQLite by default: each test gets a copy of one SQLite file migrated once per
session. With RENKEI_TEST_DATABASE_URL set to a PostgreSQL server, e.g.
`postgresql+psycopg://renkei:pw@127.0.0.1:5432/renkei` (a role allowed to CREATE DATABASE),
the migrations run once into a template database and each test gets its own database cloned
from it (`CREATE DATABASE … TEMPLATE …`), dropped at teardown. `.ci/run` runs the suite both ways.

Tests that start Renkei in a subprocess must point it at the test's database: put the
`database_url` fixture (the URL the test's app uses) into the child's DATABASE_URL, or, for a
`run.py` that starts on an empty database, the `empty_database_url` fixture ("" on SQLite, which
means "the SQLite file in the data folder").
"""
from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path
from typing import Callable

import pytest

from tests import faketime_sleep

faketime_sleep.install()  # before anything sleeps: see tests/faketime_sleep.py

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402

# The PostgreSQL server the suite runs against instead of SQLite files; unset means SQLite.
TEST_DATABASE_URL = os.environ.get("RENKEI_TEST_DATABASE_URL", "").strip()
ON_POSTGRESQL = TEST_DATABASE_URL.startswith("postgresql")

# Databases of this session are named with the pid, so two sessions can share one server.
_PREFIX = f"renkei_t{os.getpid()}"
_TEMPLATE = f"{_PREFIX}_template"
_numbers = itertools.count(1)


def _config(tmp_path, db_file) -> dict:
    return {
        "TESTING": True,
        "DATA_DIR": str(tmp_path),
        "SQLALCHEMY_DATABASE_URI": db_file if isinstance(db_file, str) else f"sqlite:///{db_file}",
        "SECRET_KEY": "test-secret",
        "WTF_CSRF_ENABLED": False,
        "LOGIN_FAIL_DELAY": 0,
        "SMTP_RELAY": None,
        "PUBLIC_URL": "http://renkei.test",
    }


# ---------------------------------------------------------------------------------------
# PostgreSQL databases of the session


def _pg_url(name: str) -> str:
    """TEST_DATABASE_URL pointing at the database `name`."""
    from sqlalchemy.engine import make_url

    return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)


def _pg_admin(*statements: str, **params) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE) on the server's own database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT", poolclass=_null_pool())
    try:
        with engine.connect() as conn:
            for sql in statements:
                conn.execute(text(sql), params)
    finally:
        engine.dispose()


def _null_pool():
    from sqlalchemy.pool import NullPool

    return NullPool


def _pg_drop(name: str) -> None:
    """Drop a test database, ending what still connects to it (a killed child's sessions, a pool)."""
    # Not DROP … WITH (FORCE): it refuses to end an autovacuum worker that a non-superuser may
    # not signal. A plain DROP asks autovacuum to leave and waits for ended sessions to go.
    _pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
              "WHERE datname = :name AND pid <> pg_backend_pid() AND usename = current_user",
              f'DROP DATABASE IF EXISTS "{name}"', name=name)


def _pg_create(template: str | None) -> tuple[str, str]:
    """Create a new database of this session (a clone of `template`, or empty); return (name, url)."""
    name = f"{_PREFIX}_{next(_numbers)}"
    _pg_admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name, _pg_url(name)


@pytest.fixture(scope="session")
def _pg_template(tmp_path_factory):
    """The migrated template database of this session (PostgreSQL runs only)."""
    from app.extensions import upgrade_database

    if not ON_POSTGRESQL:
        yield None
        return
    _pg_drop(_TEMPLATE)
    _pg_admin(f'CREATE DATABASE "{_TEMPLATE}"')
    app = create_app(_config(tmp_path_factory.mktemp("pg-schema"), _pg_url(_TEMPLATE)))
    with app.app_context():
        upgrade_database(app)
        db.session.remove()
        # A template cannot be cloned while anyone is connected to it.
        db.engine.dispose()
    yield _TEMPLATE
    _pg_drop(_TEMPLATE)


@pytest.fixture(scope="session")
def new_database(tmp_path_factory, migrated_db, _pg_template) -> Callable[..., str]:
    """A factory: new_database(folder, empty=False) -> URL of a new database for one app.

    Migrated (a copy of migrated_db on SQLite, a clone of the template on PostgreSQL) unless
    `empty`. On SQLite the file is `folder/renkei.db`. PostgreSQL databases made through it are
    dropped at the end of the session; the `app` fixture drops its own at teardown.
    """
    created: list[str] = []

    def make(folder: Path, empty: bool = False) -> str:
        if ON_POSTGRESQL:
            name, url = _pg_create(None if empty else _pg_template)
            created.append(name)
            return url
        db_file = Path(folder) / "renkei.db"
        if empty:
            return f"sqlite:///{db_file}"
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(migrated_db, db_file)
        return f"sqlite:///{db_file}"

    yield make
    for name in created:
        _pg_drop(name)


# ---------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory):
    """Run the migrations once on an empty SQLite database; each test gets a copy (schema only from migrations/).

    Always a SQLite file, also when the suite runs on PostgreSQL (see `new_database`).
    """
    from app.extensions import upgrade_database

    folder = tmp_path_factory.mktemp("schema")
    db_file = folder / "renkei.db"
    app = create_app(_config(folder, db_file))
    with app.app_context():
        upgrade_database(app)
        db.session.execute(db.text("PRAGMA wal_checkpoint(TRUNCATE)"))
        db.engine.dispose()
    return db_file


@pytest.fixture
def app(tmp_path, migrated_db, _pg_template):
    if ON_POSTGRESQL:
        name, url = _pg_create(_pg_template)
    else:
        name, url = None, tmp_path / "renkei.db"
        shutil.copy(migrated_db, url)
    app = create_app(_config(tmp_path, url))
    try:
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()
    finally:
        if name:
            _pg_drop(name)


@pytest.fixture
def database_url(app) -> str:
    """The URL of the current test's database; subprocesses working on it get it as DATABASE_URL."""
    return app.config["SQLALCHEMY_DATABASE_URI"]


@pytest.fixture
def empty_database_url() -> str:
    """DATABASE_URL for a `run.py` subprocess that migrates a database of its own.

    "" on SQLite (run.py then uses the SQLite file in its data folder); on PostgreSQL a new,
    empty database, dropped at teardown.
    """
    if not ON_POSTGRESQL:
        yield ""
        return
    name, url = _pg_create(None)
    try:
        yield url
    finally:
        _pg_drop(name)


@pytest.fixture
def make_account(app):
    """Create an account with an admin; returns (account, admin email, password)."""
    from app.services import accounts

    def make(slug: str = "acme", integration: bool = True, name: str | None = None):
        account, password = accounts.create_account(
            slug, name or f"{slug} 株式会社", f"admin@{slug}.example", "password-123"
        )
        account.integration_enabled = integration
        db.session.commit()
        return account, f"admin@{slug}.example", password

    return make


@pytest.fixture
def login(client):
    def do(email: str, password: str = "password-123"):
        response = client.post("/login", data={"email": email, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    return do


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def import_worker(app):
    """The real in-process import worker (servers/worker.py) of the test app, polling fast.

    Channels only receive files; with this running, what they receive is imported as on a
    server (report mails stay in the outbox unless a test sets SMTP_RELAY first).
    """
    from servers.worker import Worker

    worker = Worker(app, poll_seconds=0.1)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
