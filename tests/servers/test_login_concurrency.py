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
    app.config.update(BAN_THRESHOLD=THRESHOLD, LOGIN_BAN_THRESHOLD=1000)
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
