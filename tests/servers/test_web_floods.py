"""Slow-header (slowloris) connections against the web port directly: the per-address cap and the
header deadline of servers/webguard.py, through a real waitress server and real sockets.

The global cap is shrunk to 50 here, so that 60 slow connections exceed it as ~100 do with the
default (RENKEI_WEB_MAX_CONNECTIONS=100).
"""
from __future__ import annotations

import socket
import time

import pytest

from servers.web import WebServer
from tests.fixtures.floods import Trickle, bound_http

SLOW = 60


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


def get_page(port: int, source: str = "127.0.0.2") -> tuple[int, bool, float]:
    began = time.monotonic()
    connection = bound_http(port, source, timeout=10)
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
    connection = bound_http(port, "127.0.0.1", timeout=10)
    try:
        for _ in range(3):
            connection.request("GET", "/login")
            response = connection.getresponse()
            assert response.status == 200
            response.read()
    finally:
        connection.close()


def test_a_trusted_proxy_has_no_per_address_cap(web_start, app):
    from app.proxies import parse_networks

    app.config["TRUSTED_PROXIES"] = parse_networks("127.0.0.3")
    server = web_start(WEB_MAX_CONNECTIONS_PER_IP=2, WEB_HEADER_TIMEOUT=60)
    port = int(server.listeners[0].rsplit(":", 1)[1].strip("/"))
    held = [socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(a, 0))
            for a in ["127.0.0.3"] * 3 + ["127.0.0.4"] * 2]
    try:
        assert get_page(port, "127.0.0.3")[:2] == (200, True)  # the proxy's fourth connection
        status, _, _ = get_page(port, "127.0.0.4")  # anyone else's third
        assert status == 503
    finally:
        for sock in held:
            sock.close()
