"""The factory and the schema: migrations are the single source, and they match the models."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app import create_app
from app.extensions import db


def test_factory_applies_overrides(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'a.db'}"})
    assert app.testing
    assert app.config["SECRET_KEY"] == "x"


def test_secret_key_generated_once_into_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("RENKEI_SECRET_KEY", raising=False)
    cfg = {"DATA_DIR": str(tmp_path), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'a.db'}"}
    first = create_app(dict(cfg)).config["SECRET_KEY"]
    second = create_app(dict(cfg)).config["SECRET_KEY"]
    assert first == second and len(first) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_migrations_match_models(app):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
    assert diff == []


def test_security_headers_and_cookie_flags(client, make_account, login):
    _, email, _ = make_account()
    response = login(email)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_trusted_proxy_setting_uses_the_forwarded_address(tmp_path, new_database):
    from app.models import AuthFailure

    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x", "WTF_CSRF_ENABLED": False,
                      "LOGIN_FAIL_DELAY": 0, "TRUSTED_PROXIES": 1,
                      "SQLALCHEMY_DATABASE_URI": new_database(tmp_path)})
    client = app.test_client()
    client.post("/login", data={"email": "x@example.com", "password": "wrong-password"},
                headers={"X-Forwarded-For": "203.0.113.7"})
    with app.app_context():
        assert [row.address for row in db.session.scalars(db.select(AuthFailure))] == ["203.0.113.7"]
        db.engine.dispose()
