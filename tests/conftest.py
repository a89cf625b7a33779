"""Shared fixtures: an app per test on its own SQLite file made by the migrations, client, runner, login."""
from __future__ import annotations

import shutil

import pytest

from app import create_app
from app.extensions import db


def _config(tmp_path, db_file) -> dict:
    return {
        "TESTING": True,
        "DATA_DIR": str(tmp_path),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_file}",
        "SECRET_KEY": "test-secret",
        "WTF_CSRF_ENABLED": False,
        "LOGIN_FAIL_DELAY": 0,
        "SMTP_RELAY": None,
        "PUBLIC_URL": "http://renkei.test",
    }


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory):
    """Run the migrations once on an empty database; each test gets a copy (schema only from migrations/)."""
    from flask_migrate import upgrade

    folder = tmp_path_factory.mktemp("schema")
    db_file = folder / "renkei.db"
    app = create_app(_config(folder, db_file))
    with app.app_context():
        upgrade()
        db.session.execute(db.text("PRAGMA wal_checkpoint(TRUNCATE)"))
        db.engine.dispose()
    return db_file


@pytest.fixture
def app(tmp_path, migrated_db):
    db_file = tmp_path / "renkei.db"
    shutil.copy(migrated_db, db_file)
    app = create_app(_config(tmp_path, db_file))
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


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
