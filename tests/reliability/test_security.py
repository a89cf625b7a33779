"""Security checks that walk the app instead of trusting a hand list.

- CSRF: every rule accepting POST (but the token-authenticated API) answers 400 to a missing
  or wrong token, and nothing in the database changes; every POST form on every page carries
  a token.
- Brute force: failed logins on the web, FTP or API are slowed, and BAN_THRESHOLD of them
  ban the address on all three channels.
- Exported CSV: formula-looking 備考 cells are neutralised, negative numbers stay numbers.
- Cookies are HttpOnly + SameSite=Lax; security headers on every page; `next` stays on site.

Cross-account 404s are tests/web/test_scoping.py's job; its object factories are reused here.
"""
from __future__ import annotations

import csv
import ftplib
import io
import re
from urllib.parse import quote, urljoin, urlsplit

import pytest

from app.extensions import db
from app.models import Member
from app.services import bans, columns, ingest, integration, members, results, runner as import_runner
from tests.fixtures.scoping import OBJECT_FACTORIES, build
from tests.fixtures.ingest import stored_lines

TOKEN_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*>')
POST_FORM = re.compile(r"<form\b[^>]*method=[\"']?post[^>]*>(.*?)</form>", re.IGNORECASE | re.DOTALL)

# What a forged form would send: plausible values for every form, so only the token stops it.
FORGED = {
    "no": "99", "employee_id": "X99", "name": "攻撃者", "department": "不正", "email": "evil@evil.example",
    "password": "password-123", "password2": "password-123", "role": "admin", "unit": "円", "position": "1",
    "mode": "mail", "status": "stopped", "member_key": "no", "encoding": "auto", "error_to": "evil@evil.example",
    "success_to": "evil@evil.example", "senders": "evil@evil.example", "current": "password-123",
    "new": "password-456", "confirm": "password-456",
}


def csrf_token_in(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"', html)
    assert match, "no csrf_token on the page"
    return match.group(1) or match.group(2)


def database_state() -> dict[str, list[str]]:
    """Every row of every table, so 'nothing changed' means exactly that."""
    db.session.rollback()
    return {table.name: sorted(repr(tuple(row)) for row in db.session.execute(table.select()))
            for table in db.metadata.sorted_tables}


def post_rules(app) -> list:
    return [rule for rule in app.url_map.iter_rules()
            if "POST" in (rule.methods or ()) and rule.endpoint != "static" and not rule.rule.startswith("/api/")]


def get_rules(app) -> list:
    return [rule for rule in app.url_map.iter_rules()
            if "GET" in (rule.methods or ()) and rule.endpoint != "static" and not rule.rule.startswith("/api/")]


@pytest.fixture
def fresh_g(app):
    """Give every request an empty `g`, as in production.

    The app fixture keeps one app context open for the whole test, and requests reuse it, so
    Flask-Login's cached user and Flask-WTF's cached token would leak from one client to another.
    """
    from flask import g

    def clear() -> None:
        for key in list(g):
            g.pop(key)

    app.before_request_funcs.setdefault(None, []).insert(0, clear)


@pytest.fixture
def own_objects(app, make_account, fresh_g):
    """Account alpha (integration on, so no tab hides a route) with one object of every kind."""
    account, email, _ = make_account("alpha")
    return account, email, {name: factory(account) for name, factory in OBJECT_FACTORIES.items()}


def csrf_login(client, email: str, password: str = "password-123"):
    page = client.get("/login")
    response = client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": csrf_token_in(page.get_data(as_text=True))})
    assert response.status_code == 302, response.status_code
    return response


# ---------------------------------------------------------------------------------------
# CSRF


def test_every_post_rejects_a_missing_or_wrong_csrf_token(app, client, own_objects):
    app.config["WTF_CSRF_ENABLED"] = True
    account, email, ids = own_objects
    # A real token, but of another session: what an attacker can get by opening the login page.
    foreign = csrf_token_in(app.test_client().get("/login").get_data(as_text=True))
    csrf_login(client, email)
    before = database_state()
    rules = post_rules(app)
    assert {"auth.login", "auth.logout", "settings.member_new", "settings.user_delete", "imports.upload",
            "settings.integration", "imports.reimport"} <= {rule.endpoint for rule in rules}
    checked = 0
    for rule in rules:
        url = build(app, rule, ids)
        for label, extra in (("missing", {}), ("garbage", {"csrf_token": "not-a-token"}),
                             ("foreign", {"csrf_token": foreign})):
            response = client.post(url, data={**FORGED, **extra}, headers={"Referer": "https://evil.example/"})
            assert response.status_code == 400, f"POST {url} with a {label} token answered {response.status_code}"
            assert "リクエストが正しくありません" in response.get_data(as_text=True)
            checked += 1
        assert database_state() == before, f"POST {url} changed the database without a valid token"
    assert checked >= 3 * 15
    assert client.get("/").status_code == 200, "the forged logout must not log the user out"

    # Control: the same kind of request with the session's own token goes through.
    token = csrf_token_in(client.get("/settings/members").get_data(as_text=True))
    url = f"/settings/members/{ids['member_id']}/deactivate"
    assert client.post(url, data={"csrf_token": token}).status_code == 302
    db.session.rollback()
    assert db.session.get(Member, ids["member_id"]).active is False


def test_every_post_form_on_every_page_carries_a_csrf_token(app, client, own_objects):
    app.config["WTF_CSRF_ENABLED"] = True
    _, email, ids = own_objects
    csrf_login(client, email)
    forms = 0
    for rule in get_rules(app):
        if rule.endpoint == "auth.login":
            continue
        response = client.get(build(app, rule, ids))
        if response.mimetype != "text/html":
            continue
        for body in POST_FORM.findall(response.get_data(as_text=True)):
            assert TOKEN_INPUT.search(body), f"a POST form on {rule.rule} has no csrf_token"
            forms += 1
    assert forms >= 10, forms


# ---------------------------------------------------------------------------------------
# Headers and cookies


REQUIRED_HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy", "Referrer-Policy")


def assert_security_headers(response, where: str) -> None:
    missing = [name for name in REQUIRED_HEADERS if not response.headers.get(name)]
    assert not missing, f"{where} lacks {missing}"
    assert response.headers["X-Content-Type-Options"] == "nosniff", where
    assert response.headers["X-Frame-Options"] in ("DENY", "SAMEORIGIN"), where
    policy = response.headers["Content-Security-Policy"]
    assert "default-src" in policy and "frame-ancestors" in policy, (where, policy)
    assert "unsafe-inline" not in policy.split("script-src", 1)[-1].split(";")[0], (where, policy)


def test_security_headers_on_every_page(app, client, own_objects, login):
    _, email, ids = own_objects
    anonymous = [client.get("/login"), client.get("/no-such-page"), client.get("/")]
    for response in anonymous:
        assert_security_headers(response, f"{response.request.path} ({response.status_code})")
    login(email)
    pages = 0
    for rule in get_rules(app):
        if rule.endpoint == "auth.login":
            continue
        url = build(app, rule, ids)
        response = client.get(url)
        assert response.status_code < 500, f"GET {url} answered {response.status_code}"
        # Every response, HTML or a download, must not be sniffed into something else.
        assert response.headers.get("X-Content-Type-Options") == "nosniff", url
        if response.mimetype == "text/html":
            assert_security_headers(response, url)
            pages += 1
    assert pages >= 15, pages
    assert_security_headers(client.get("/imports/999999"), "a 404 page")


def test_session_cookie_is_httponly_and_samesite_lax(client, make_account):
    _, email, _ = make_account("alpha")
    response = client.post("/login", data={"email": email, "password": "password-123"})
    assert response.status_code == 302
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(("session=", "remember_token="))]
    assert cookies, response.headers
    for cookie in cookies:
        attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
        assert "httponly" in attributes, cookie
        assert attributes.get("samesite", "").lower() == "samesite=lax", cookie


def browser_target(location: str, base: str = "http://localhost/login") -> str:
    """Where a browser would go: it drops tabs/newlines and reads '\\' as '/' in http(s) URLs."""
    cleaned = re.sub(r"[\t\n\r]", "", location.strip("\x00\x20" + "".join(map(chr, range(32))))).replace("\\", "/")
    return urljoin(base, cleaned)


OFF_SITE = ["//evil.example", "https://evil.example", "/\\evil.example", "\\\\evil.example", "/\\/evil.example",
            "http:evil.example", "///evil.example", "/\t/evil.example", "/\n/evil.example", " //evil.example",
            "https:/\\evil.example", "javascript:alert(1)", "//evil.example/%2e%2e", "/%09/evil.example"]


@pytest.mark.parametrize("target", OFF_SITE)
def test_login_next_cannot_leave_the_site(client, make_account, target):
    _, email, _ = make_account("alpha")
    response = client.post(f"/login?next={quote(target, safe='')}", data={"email": email, "password": "password-123"})
    assert response.status_code == 302
    location = response.headers["Location"]
    goes_to = urlsplit(browser_target(location))
    assert goes_to.scheme == "http" and goes_to.netloc == "localhost", (target, location)


def test_login_next_keeps_a_same_site_path(client, make_account):
    _, email, _ = make_account("alpha")
    response = client.post("/login?next=/settings/members", data={"email": email, "password": "password-123"})
    assert urlsplit(response.headers["Location"]).path == "/settings/members"


# ---------------------------------------------------------------------------------------
# Brute force: slowed, then banned on every channel


THRESHOLD = 3


def fail_web_logins(client, email: str, times: int) -> list[int]:
    return [client.post("/login", data={"email": email, "password": f"wrong-{i}"}).status_code for i in range(times)]


def ftp_is_refused(server) -> str:
    """Connect from this (banned) address; return the refusal."""
    client = ftplib.FTP()
    try:
        with pytest.raises(ftplib.error_temp) as refused:
            client.connect("127.0.0.1", server.port, timeout=10)
    finally:
        client.close()
    return str(refused.value)


def api_status(client, token: str) -> int:
    return client.get("/api/v1/imports", headers={"Authorization": f"Bearer {token}"}).status_code


def test_web_login_brute_force_is_banned_on_web_ftp_and_api(app, client, ftp_account, ftp_start):
    app.config["BAN_THRESHOLD"] = THRESHOLD
    server = ftp_start()
    email = "admin@acme.example"
    token = integration.issue_api_token(ftp_account.id, actor="test")
    assert api_status(client, token) == 200  # control: the token works before the ban

    assert fail_web_logins(client, email, THRESHOLD) == [401] * (THRESHOLD - 1) + [429]
    assert bans.is_banned("127.0.0.1")
    # Banned: even the right password is refused, on every channel, for this address.
    response = client.post("/login", data={"email": email, "password": "password-123"})
    assert response.status_code == 429 and "一時的に止めています" in response.get_data(as_text=True)
    assert ftp_is_refused(server).startswith("421")
    assert api_status(client, token) == 429
    assert api_status(client, "guessed-token") == 429


def test_ftp_brute_force_bans_the_web_login(app, client, ftp_account, ftp_start):
    app.config["BAN_THRESHOLD"] = THRESHOLD
    server = ftp_start()
    for attempt in range(THRESHOLD):
        ftp = ftplib.FTP()
        try:
            ftp.connect("127.0.0.1", server.port, timeout=10)
            with pytest.raises(ftplib.error_perm):
                ftp.login(ftp_account.username, f"wrong-{attempt}")
        finally:
            ftp.close()
    assert ftp_is_refused(server).startswith("421")
    response = client.post("/login", data={"email": "admin@acme.example", "password": "password-123"})
    assert response.status_code == 429


def test_api_token_guessing_is_banned_everywhere(app, client, ftp_account, ftp_start):
    app.config["BAN_THRESHOLD"] = THRESHOLD
    server = ftp_start()
    token = integration.issue_api_token(ftp_account.id, actor="test")
    assert [api_status(client, f"guess-{i}") for i in range(THRESHOLD)] == [401] * THRESHOLD
    assert api_status(client, token) == 429
    assert client.post("/login", data={"email": "admin@acme.example", "password": "password-123"}).status_code == 429
    assert ftp_is_refused(server).startswith("421")


def test_a_failed_login_delays_only_the_next_try_of_its_address(app, client, make_account, login_clock):
    _, email, _ = make_account("alpha")
    app.config["LOGIN_FAIL_DELAY"] = 2.5
    assert client.post("/login", data={"email": email, "password": "wrong"}).status_code == 401
    assert client.post("/login", data={"email": email, "password": "password-123"}).status_code == 429
    assert client.post("/login", data={"email": email, "password": "password-123"},
                       environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code == 302
    login_clock.advance(2.5)
    client.post("/logout")
    assert client.post("/login", data={"email": email, "password": "password-123"}).status_code == 302


# ---------------------------------------------------------------------------------------
# Exported CSV


def test_exported_formula_cells_are_neutralised_and_negative_numbers_stay_numbers(app, make_account, runner):
    account, email, _ = make_account("alpha")
    for no in (1, 2, 3, 4, 5, 6):
        members.create_member(account.id, no, f"E00{no}", f"社員{no}")
    for name in ("売上", "粗利"):
        columns.add_column(account.id, name, "円")
    notes = ["=1+2", "+81", "-cmd|' /C calc'!A0", "@SUM(A1)", '=HYPERLINK("http://evil.example","x")', "普通のメモ"]
    values = ["-100", "▲200", "-0.5", "-1,234", "△5", "300"]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["No.", "売上", "粗利", "備考"])
    writer.writerows([str(no), value, "-7", note] for no, value, note in zip(range(1, 7), values, notes))
    received = ingest.receive(account.id, "20180516.csv", buffer.getvalue().encode("cp932"), channel="web",
                              sender=email)
    assert import_runner.run_import(received.id).status == "succeeded"

    for data in (results.export_csv(account.id, "20180516", "cp932"),
                 runner.invoke(args=["results", "export", "alpha", "20180516"]).stdout_bytes):
        rows = list(csv.reader(io.StringIO(data.decode("cp932"), newline="")))
        assert rows[0] == ["No.", "売上", "粗利", "備考"]
        body = {row[0]: row[1:] for row in rows[1:]}
        assert body == {
            "1": ["-100", "-7", "'=1+2"],
            "2": ["-200", "-7", "'+81"],
            "3": ["-0.5", "-7", "'-cmd|' /C calc'!A0"],
            "4": ["-1234", "-7", "'@SUM(A1)"],
            "5": ["-5", "-7", "'=HYPERLINK(\"http://evil.example\",\"x\")"],
            "6": ["300", "-7", "普通のメモ"],
        }
    # What is stored is the text as sent; only the export adds the quote.
    stored = sorted(line.note for _import_id, line in stored_lines(received.id))
    assert stored == sorted(notes)
