"""Every page is scoped to the user's account, found by walking app.url_map (new routes are covered too).

- anonymous requests to every login-required URL redirect to /login;
- a user of account B asking for any URL that carries the id of an object of account A
  gets 404 (GET and POST, where the rule allows them).

A new URL argument must be added to OBJECT_FACTORIES below; the test fails loudly until then.
"""
from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import pytest

from app.extensions import db
from app.models import Import, OutboxMail, User
from app.services import columns as column_service
from app.services import files
from app.services import members as member_service
from app.services import users as user_service

# Endpoints that answer without a login on purpose.
PUBLIC_ENDPOINTS = {"static", "auth.login"}


def _member(account):
    return member_service.create_member(account.id, 1, "E001", "山田 太郎").id


def _column(account):
    return column_service.add_column(account.id, "売上", "円").id


def _user(account):
    return user_service.create_user(account.id, f"viewer@{account.slug}.example", "password-123", User.VIEWER).id


def _import(account):
    content = "社員ID,売上\r\nE001,100\r\n".encode()
    record = Import(account_id=account.id, channel="web", filename="20180516.csv", sender="admin@a.example",
                    status=Import.FAILED, size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                    error_count=0)
    db.session.add(record)
    db.session.flush()
    files.store(record.id, content)
    db.session.commit()
    return record.id


def _mail(account):
    mail = OutboxMail(account_id=account.id, kind="error", to_addrs=["ops@a.example"], subject="件名", body="本文")
    db.session.add(mail)
    db.session.commit()
    return mail.id


# URL argument name -> how to make one object of an account and return its id.
OBJECT_FACTORIES = {
    "member_id": _member,
    "column_id": _column,
    "user_id": _user,
    "import_id": _import,
    "mail_id": _mail,
}


def scoped_rules(app):
    """Every rule a signed-in user can reach: all but static files, the login page and the API."""
    return [
        rule for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and rule.rule != "/login" and not rule.rule.startswith("/api/")
    ]


def methods_of(rule) -> list[str]:
    return [m for m in ("GET", "POST") if m in rule.methods]


def build(app, rule, ids: dict[str, int]) -> str:
    unknown = sorted(set(rule.arguments) - set(ids))
    assert not unknown, (
        f"{rule.rule} ({rule.endpoint}) takes {unknown}: add them to OBJECT_FACTORIES in "
        f"tests/web/test_scoping.py so the scoping check covers this route"
    )
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **{name: ids[name] for name in rule.arguments})


@pytest.fixture
def world(app, make_account):
    """Accounts A and B (both with integration on, so no tab hides a route), and one object of each kind in A."""
    a, _, _ = make_account("alpha")
    b, b_email, _ = make_account("bravo")
    ids = {name: factory(a) for name, factory in OBJECT_FACTORIES.items()}
    return a, b, b_email, ids


def test_the_walk_finds_the_routes_it_should(app):
    # Guards the filter itself: if it let nothing through, every other test here would pass vacuously.
    endpoints = {rule.endpoint for rule in scoped_rules(app)}
    assert {"main.index", "settings.members", "settings.member_edit", "settings.column_edit",
            "settings.user_delete"} <= endpoints
    assert "static" not in endpoints and "auth.login" not in endpoints


def test_anonymous_requests_redirect_to_login(app, client, world):
    _, _, _, ids = world
    checked = 0
    for rule in scoped_rules(app):
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        url = build(app, rule, ids)
        for method in methods_of(rule):
            response = client.open(url, method=method)
            assert response.status_code == 302, f"{method} {url} answered {response.status_code} without login"
            assert urlsplit(response.headers["Location"]).path == "/login", f"{method} {url}"
            checked += 1
    assert checked >= 10


def test_other_accounts_objects_are_404(app, client, world, login):
    _, _, b_email, ids = world
    login(b_email)
    checked = 0
    for rule in scoped_rules(app):
        url = build(app, rule, ids)
        if not rule.arguments:
            # No object in the URL: only make sure the page works for B (POSTs here change B's own state).
            if "GET" in rule.methods:
                response = client.get(url)
                assert response.status_code < 500, f"GET {url} answered {response.status_code}"
            continue
        for method in methods_of(rule):
            response = client.open(url, method=method, data={})
            assert response.status_code == 404, (
                f"{method} {url} ({rule.endpoint}) answered {response.status_code} to a user of another account"
            )
            checked += 1
    assert checked >= len(OBJECT_FACTORIES)
    # B is still signed in, and A's objects are untouched.
    assert client.get("/").status_code == 200
    assert member_service.get_member(world[0].id, ids["member_id"]).active is True
    assert db.session.get(User, ids["user_id"]) is not None
    assert db.session.get(Import, ids["import_id"]) is not None


def test_the_owner_reaches_the_same_urls(app, client, world, login):
    # Shows the ids are real: the 404s above come from scoping, not from a wrong id.
    _, _, _, ids = world
    login("admin@alpha.example")
    for rule in scoped_rules(app):
        if not rule.arguments or "GET" not in rule.methods:
            continue
        url = build(app, rule, ids)
        response = client.get(url)
        assert response.status_code != 404 and response.status_code < 500, f"GET {url} answered {response.status_code}"
