"""When a signed-in session ends: logout, a new password or role, removal, idle time, its age (docs/spec.md 7).

A "copied cookie" is the session cookie of one browser set into another client, as a thief
holding it would replay it. The sessions' clock is injected (app.extensions["session_clock"]).
"""
from __future__ import annotations

import time

import pytest
from flask_login.utils import encode_cookie

from app.extensions import db
from app.models import Member, User
from app.services import users as user_service
from tests.fixtures.accounts import OwnContextClient
from tests.fixtures.migrations import column_names, insert_row
from tests.web.test_auth import csrf_token

EMAIL = "admin@acme.example"
BOARD = "/"


class Clock:
    """Epoch seconds that move only when told."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, *, minutes: float = 0, hours: float = 0, days: float = 0) -> None:
        self.now += minutes * 60 + hours * 3600 + days * 86400


@pytest.fixture
def client(app):
    app.test_client_class = OwnContextClient
    return app.test_client()


@pytest.fixture
def clock(app) -> Clock:
    clock = Clock()
    app.extensions["session_clock"] = clock
    return clock


@pytest.fixture
def account(make_account):
    return make_account("acme").account


def copy_of(app, browser):
    """Another client holding `browser`'s session cookie (and nothing else)."""
    thief = app.test_client()
    thief.set_cookie("session", browser.get_cookie("session").value)
    return thief


def signed_in(browser) -> bool:
    response = browser.get(BOARD)
    assert response.status_code in (200, 302)
    return response.status_code == 200


def user_row() -> User:
    db.session.expire_all()
    return db.session.scalar(db.select(User).where(User.email == EMAIL))


def test_a_copied_cookie_is_refused_after_logout(app, client, clock, account, login):
    login(EMAIL)
    thief = copy_of(app, client)
    assert signed_in(thief)
    client.post("/logout")
    assert not signed_in(thief)
    assert not signed_in(client)


def test_logout_ends_the_users_other_sessions_too(app, client, clock, account, login):
    # The decision: a logout signs the user out everywhere (docs/decisions.md).
    login(EMAIL)
    other_browser = app.test_client()
    assert other_browser.post("/login", data={"email": EMAIL, "password": "password-123"}).status_code == 302
    client.post("/logout")
    assert not signed_in(other_browser)


def test_a_copied_cookie_is_refused_after_a_password_change_while_the_changer_stays(app, client, clock, account,
                                                                                   login):
    login(EMAIL)
    thief = copy_of(app, client)
    response = client.post("/password", data={"current": "password-123", "new": "new-password-1",
                                              "confirm": "new-password-1"}, follow_redirects=True)
    assert "パスワードを変更しました。" in response.get_data(as_text=True)
    assert not signed_in(thief)
    assert signed_in(client)


def test_a_role_change_ends_the_users_sessions(app, client, clock, account, login):
    login(EMAIL)
    user_service.create_user(account.id, "second@acme.example", "password-123", User.ADMIN)
    user = user_row()
    user.role = User.VIEWER
    db.session.commit()
    assert not signed_in(client)


def test_a_removed_users_session_ends(app, client, clock, account, login):
    user_service.create_user(account.id, "viewer@acme.example", "password-123", User.VIEWER)
    login("viewer@acme.example")
    assert signed_in(client)
    viewer = db.session.scalar(db.select(User).where(User.email == "viewer@acme.example"))
    user_service.remove_user(account.id, viewer.id, acting_user_id=0)
    assert not signed_in(client)


def test_an_idle_session_ends_after_the_idle_time(app, client, clock, account, login):
    assert app.config["SESSION_IDLE_MINUTES"] == 8 * 60
    login(EMAIL)
    clock.advance(hours=7, minutes=59)
    assert signed_in(client)  # a request moves the idle time on
    clock.advance(hours=7, minutes=59)
    assert signed_in(client)
    clock.advance(hours=8, minutes=1)
    assert not signed_in(client)


def test_the_idle_time_is_configurable(app, client, clock, account, login):
    app.config["SESSION_IDLE_MINUTES"] = 30
    login(EMAIL)
    clock.advance(minutes=29)
    assert signed_in(client)
    clock.advance(minutes=31)
    assert not signed_in(client)


def test_a_session_ends_at_its_absolute_lifetime_however_active(app, client, clock, account, login):
    assert app.config["SESSION_MAX_DAYS"] == 7
    login(EMAIL)
    for _ in range(7 * 24 // 6 - 1):  # a request every 6 hours for almost 7 days
        clock.advance(hours=6)
        assert signed_in(client)
    clock.advance(hours=6, minutes=1)
    assert not signed_in(client)
    # A new login starts a new lifetime.
    login(EMAIL)
    assert signed_in(client)


def test_the_cookie_and_the_csrf_tokens_last_no_longer_than_the_session(app):
    assert app.permanent_session_lifetime.total_seconds() == 7 * 86400
    assert app.config["WTF_CSRF_TIME_LIMIT"] == 7 * 86400


def test_the_csrf_token_of_an_ended_session_is_refused(app, client, clock, account):
    app.config["WTF_CSRF_ENABLED"] = True
    login_page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"email": EMAIL, "password": "password-123", "csrf_token": csrf_token(login_page)})
    token = csrf_token(client.get("/settings/members/new").get_data(as_text=True))
    thief = copy_of(app, client)
    client.post("/logout", data={"csrf_token": token})

    member = {"no": "1", "name": "山田 太郎", "csrf_token": token}
    assert thief.post("/settings/members/new", data=member).status_code == 400
    assert db.session.scalar(db.select(db.func.count(Member.id))) == 0


def test_the_csrf_token_of_an_idled_out_session_is_refused(app, client, clock, account):
    app.config["WTF_CSRF_ENABLED"] = True
    login_page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"email": EMAIL, "password": "password-123", "csrf_token": csrf_token(login_page)})
    token = csrf_token(client.get("/settings/members/new").get_data(as_text=True))
    clock.advance(hours=8, minutes=1)
    response = client.post("/settings/members/new", data={"no": "1", "name": "山田 太郎", "csrf_token": token})
    assert response.status_code == 400
    assert db.session.scalar(db.select(db.func.count(Member.id))) == 0


def test_the_login_forms_token_does_not_outlive_the_login(app, client, clock, account):
    # A new session at login: what the session held before (its CSRF token too) is gone.
    app.config["WTF_CSRF_ENABLED"] = True
    before = csrf_token(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"email": EMAIL, "password": "password-123", "csrf_token": before})
    response = client.post("/settings/members/new", data={"no": "1", "name": "山田 太郎", "csrf_token": before})
    assert response.status_code == 400


def test_a_remember_cookie_signs_nobody_in(app, client, clock, account):
    # Renkei never issues one; one forged with the right key and the current version still is no session.
    user = user_row()
    client.set_cookie("remember_token", encode_cookie(user.get_id()))
    assert not signed_in(client)


def test_a_session_of_an_old_cookie_format_is_refused(app, client, clock, account, login):
    login(EMAIL)
    with client.session_transaction() as session:
        session["_user_id"] = str(user_row().id)  # the id alone, as before session versions
    assert not signed_in(client)


def test_signed_in_pages_are_not_stored_by_caches(app, client, clock, account, login):
    login(EMAIL)
    for url in ["/", "/settings/members", "/settings/users", "/imports", "/upload", "/password"]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == "no-store", url


def test_the_lifetimes_follow_the_settings(tmp_path, new_database):
    from app import create_app

    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "SQLALCHEMY_DATABASE_URI": new_database(tmp_path), "SESSION_MAX_DAYS": "2"})
    assert app.permanent_session_lifetime.total_seconds() == 2 * 86400
    assert app.config["WTF_CSRF_TIME_LIMIT"] == 2 * 86400


def test_the_session_version_migration_goes_up_and_down(migrated_to):
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import text

    migrated_to("0008")
    insert_row("accounts", integration_enabled=False)
    insert_row("users", id=1, account_id=1, email="a@a.example", password_hash="x", role="admin",
               created_at="2020-01-01")
    db.session.commit()
    upgrade()
    assert db.session.scalar(text("SELECT session_version FROM users WHERE id = 1")) == 0
    db.session.commit()
    downgrade(revision="0008")
    assert "session_version" not in column_names("users")
    assert db.session.scalar(text("SELECT email FROM users WHERE id = 1")) == "a@a.example"
