"""GET /healthz through the real parts run.py starts (in this process, on free ports): a part's thread
dies, the answer turns 503 naming it dead; the part started again in its place, 200 again."""
from __future__ import annotations

import pytest
import requests

import run
from app import health
from tests.fixtures.waiting import wait_for

ALL_ALIVE = {name: "alive" for name in run.PARTS}


@pytest.fixture
def parts(app, dns_server):
    """Every part of run.PARTS started for the test app as run.py starts them; stopped at teardown."""
    app.config.update(HOST="127.0.0.1", WEB_PORT=0, SMTP_PORT=0, FTP_PORT=0, SFTP_PORT=0, SMTP_PARSE_PROCESSES=0,
                      DNS_SERVER=dns_server.address)
    started = run.start_parts(app, list(run.PARTS))
    try:
        yield started
    finally:
        run.stop_parts(started)


def web_url(started) -> str:
    return dict(started)["web"].listeners[0]


def healthz(started) -> requests.Response:
    return requests.get(web_url(started) + "healthz", timeout=10)


def _die(*args, **kwargs):
    # Not an Exception: the FTP loop survives those (one bad event must not end the server).
    raise SystemExit("the test ends the FTP thread")


def test_all_parts_alive_is_200_with_each_part_and_the_queue(parts):
    answer = healthz(parts)

    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.json() == {"status": "ok", "parts": ALL_ALIVE, "database": "ok",
                             "queue": {"waiting": 0, "oldest_age_seconds": None}}


# The ended thread's SystemExit is reported by pytest's thread hook: it is the point of the test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_part_turns_healthz_503_and_its_restart_200_again(app, parts):
    ftp = dict(parts)["ftp"]
    ftp.server.serve_forever = _die  # the thread calls it again within 0.2 s and ends

    dead = wait_for(lambda: (answer := healthz(parts)).status_code == 503 and answer.json(), what="503 from /healthz")
    assert dead["status"] == "unhealthy"
    assert dead["parts"] == {**ALL_ALIVE, "ftp": "dead"}
    assert requests.get(web_url(parts) + "login", timeout=10).status_code == 200  # the web part still serves

    restarted = run.restart_part(app, parts, "ftp")

    assert restarted is not ftp and restarted.port == ftp.port  # the same port as before
    answer = healthz(parts)
    assert answer.status_code == 200
    assert answer.json()["parts"] == ALL_ALIVE


def test_parts_not_started_are_not_running_and_not_a_fault(app):
    app.config.update(HOST="127.0.0.1", WEB_PORT=0)
    started = run.start_parts(app, ["web"])  # run.py --only web
    try:
        answer = healthz(started)
    finally:
        run.stop_parts(started)

    assert answer.status_code == 200
    assert answer.json()["parts"] == {**{name: "not running" for name in run.PARTS}, "web": "alive"}


def test_a_stopped_part_is_dead_so_a_stopping_server_answers_503(app, parts):
    for name, handle in [(name, handle) for name, handle in parts if name != "web"]:  # the web must still answer
        run._call_stop(handle, 15.0)

        answer = healthz(parts)

        assert answer.status_code == 503, name
        assert answer.json()["parts"][name] == "dead"
    assert health.parts(app).states() == {**{name: "dead" for name in run.PARTS}, "web": "alive"}
