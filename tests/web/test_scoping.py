"""Every page is scoped to the user's account, found by walking app.url_map (new routes are covered too).

- anonymous requests to every login-required URL redirect to /login;
- a user of account B asking for any URL that carries the id of an object of account A
  gets 404 (GET and POST, where the rule allows them).

A new URL argument must be added to OBJECT_FACTORIES (tests/fixtures/scoping.py); the test fails
loudly until then.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from app.extensions import db
from app.models import Import, User
from app.services import members as member_service
from tests.fixtures.scoping import OBJECT_FACTORIES, build

# Endpoints that answer without a login on purpose.
# The icon is public like the static files it redirects to (a browser asks for it before anyone logs in).
# /healthz is for load balancers and uptime checks, and shows no account's data (app/health.py).
PUBLIC_ENDPOINTS = {"static", "auth.login", "main.favicon", "main.healthz"}


def scoped_rules(app):
    """Every rule a signed-in user can reach: all but static files, the login page and the API."""
    return [
        rule for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and rule.rule != "/login" and not rule.rule.startswith("/api/")
    ]


def methods_of(rule) -> list[str]:
    return [m for m in ("GET", "POST") if m in rule.methods]


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
