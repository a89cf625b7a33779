"""Failed logins arriving at once, through a real waitress server (servers.web.WebServer) and real HTTP clients.

The Flask test client runs requests one after another; only a real server shows what concurrent
guesses do to the shared counters: no 500, and the ban starts at exactly BAN_THRESHOLD.
"""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from servers.web import WebServer

GUESSES = 24
THRESHOLD = 10


@pytest.fixture
def web(app, make_account):
    make_account("acme")
    # All the clients share 127.0.0.1 here: no per-address connection cap (servers/webguard.py).
    app.config.update(BAN_THRESHOLD=THRESHOLD, LOGIN_BAN_THRESHOLD=1000, WEB_MAX_CONNECTIONS_PER_IP=0)
    server = WebServer(app, "127.0.0.1", 0, threads=8).start()
    try:
        yield server.listeners[0].rstrip("/")
    finally:
        server.stop()


def _at_once(count: int, send) -> Counter:
    """Run `send()` in `count` threads released together; count the answers' status codes."""
    start = threading.Barrier(count)

    def one(_):
        with requests.Session() as session:
            start.wait(timeout=30)
            return send(session).status_code

    with ThreadPoolExecutor(count) as pool:
        return Counter(pool.map(one, range(count)))


def test_concurrent_wrong_passwords_give_no_500_and_exactly_threshold_guesses(web):
    answers = _at_once(GUESSES, lambda s: s.post(
        f"{web}/login", data={"email": "admin@acme.example", "password": "wrong-password"}, timeout=60))
    # The failure that reaches the threshold is answered with the ban already (as one after another).
    assert answers == {401: THRESHOLD - 1, 429: GUESSES - THRESHOLD + 1}


def test_concurrent_wrong_tokens_give_no_500_and_exactly_threshold_guesses(web):
    answers = _at_once(GUESSES, lambda s: s.get(
        f"{web}/api/v1/members", headers={"Authorization": "Bearer guess"}, timeout=60))
    assert answers == {401: THRESHOLD, 429: GUESSES - THRESHOLD}


def _from(address: str, web: str):
    """An HTTP connection to the server `web` whose client socket is bound to `address` (loopback /8)."""
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(web)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=30, source_address=(address, 0))


def test_bad_logins_from_many_addresses_do_not_slow_a_page_for_others(app, web):
    import time

    from werkzeug.security import generate_password_hash

    from app.extensions import db
    from app.models import User

    app.config["LOGIN_FAIL_DELAY"] = 10.0  # held answers would keep all 8 threads for 10 s
    # A hash that is quick to check, so that only a held answer could keep a thread (not scrypt's CPU).
    user = db.session.scalar(db.select(User).where(User.email == "admin@acme.example"))
    user.password_hash = generate_password_hash("password-123", method="pbkdf2:sha256:1")
    db.session.commit()
    body = "email=admin%40acme.example&password=wrong-password"
    guessers = [f"127.0.0.{n}" for n in range(10, 22)]  # more than the 8 threads
    start = threading.Barrier(len(guessers) + 1)

    def guess(address: str) -> tuple[int, float]:
        connection = _from(address, web)
        start.wait(timeout=30)
        began = time.monotonic()
        connection.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
        status = connection.getresponse().status
        connection.close()
        return status, time.monotonic() - began

    with ThreadPoolExecutor(len(guessers)) as pool:
        answers = pool.map(guess, guessers)
        start.wait(timeout=30)
        began = time.monotonic()
        page = _from("127.0.0.2", web)
        page.request("GET", "/login")
        response = page.getresponse()
        seen = response.status, "<h1>ログイン</h1>" in response.read().decode()
        elapsed = time.monotonic() - began
        answers = list(answers)
    assert seen == (200, True)
    # A held answer would take the whole 10 s delay; half of it tells the two apart on a busy box too.
    held = app.config["LOGIN_FAIL_DELAY"] / 2
    assert elapsed < held, f"GET /login took {elapsed:.2f} s"
    assert {status for status, _ in answers} == {401}
    assert max(seconds for _, seconds in answers) < held  # each failure answered when checked, not 10 s later
    # The same address trying again before its delay is refused at once, with the time left.
    again = _from("127.0.0.10", web)
    again.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
    response = again.getresponse()
    assert response.status == 429 and 1 <= int(response.getheader("Retry-After")) <= 10
