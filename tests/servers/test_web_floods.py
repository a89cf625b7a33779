"""Slow-header (slowloris) connections against the web port directly: the per-address cap and the
header deadline of servers/webguard.py, through a real waitress server and real sockets.

The global cap is shrunk to 50 here, so that 60 slow connections exceed it as ~100 do with the
default (RENKEI_WEB_MAX_CONNECTIONS=100).
"""
from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from servers.web import WebServer

SLOW = 60
REQUEST_START = b"GET /login HTTP/1.1\r\nHost: renkei.test\r\nX-Slow: "


@pytest.fixture
def web_start(app):
    started = []

    def start(**config):
        app.config.update({"WEB_MAX_CONNECTIONS": 50, **config})
        server = WebServer(app, "127.0.0.1", 0, threads=4).start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


class Trickle:
    """Slow-header clients: each connection sends a request line, then one header byte a second."""

    def __init__(self, port: int, sources: list[str]):
        self.sockets = []
        for source in sources:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
            sock.sendall(REQUEST_START)
            self.sockets.append(sock)
        self.closed = 0  # connections the server ended (a 503, a reset, or an orderly close)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        open_ones = list(self.sockets)
        while open_ones and not self._stop.wait(1.0):  # the attacker's pace, not a wait for an outcome
            still = []
            for sock in open_ones:
                try:
                    sock.sendall(b"x")
                    still.append(sock)
                except OSError:
                    self.closed += 1
            open_ones = still

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()


def get_page(port: int, source: str = "127.0.0.2") -> tuple[int, bool, float]:
    began = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", "/login")
        response = connection.getresponse()
        return response.status, "<h1>ログイン</h1>" in response.read().decode(), time.monotonic() - began
    finally:
        connection.close()


def refused(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    try:
        return sock.recv(200)
    except OSError:
        return b"reset"


def test_sixty_slow_connections_from_one_address_leave_the_page_to_others(web_start):
    server = web_start(WEB_HEADER_TIMEOUT=60)  # only the per-address cap (default 20) at work
    port = int(server.listeners[0].rsplit(":", 1)[1].strip("/"))
    slow = Trickle(port, ["127.0.0.1"] * SLOW)
    try:
        status, shown, seconds = get_page(port)
        assert (status, shown) == (200, True) and seconds < 2.0, f"{status} after {seconds:.2f} s"
        answers = [refused(sock) for sock in slow.sockets[20:]]
        assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers), answers[:3]
        assert server.guard.open["127.0.0.1"] == 20
    finally:
        slow.stop()


def test_slow_headers_from_many_addresses_are_cut_at_the_deadline(web_start):
    server = web_start(WEB_HEADER_TIMEOUT=0.5)
    port = int(server.listeners[0].rsplit(":", 1)[1].strip("/"))
    # 6 addresses × 10: each under its cap, together over the server's 50.
    slow = Trickle(port, [f"127.0.0.{10 + n // 10}" for n in range(SLOW)])
    try:
        status, shown, seconds = get_page(port)
        assert (status, shown) == (200, True) and seconds < 2.0, f"{status} after {seconds:.2f} s"
        for sock in slow.sockets[:10]:  # the first ones were accepted and then cut, without an answer
            assert refused(sock) in (b"", b"reset")
    finally:
        slow.stop()


def test_a_kept_alive_connection_gets_a_new_deadline_per_request(web_start):
    server = web_start(WEB_HEADER_TIMEOUT=0.5)
    port = int(server.listeners[0].rsplit(":", 1)[1].strip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(3):
            connection.request("GET", "/login")
            response = connection.getresponse()
            assert response.status == 200
            response.read()
    finally:
        connection.close()
