"""The documented production layout: Debian's nginx with docs/nginx.conf in front of Renkei's web server.

nginx runs unprivileged-safe from a temporary prefix (`-p`, `-c`, `daemon off`, its pid, logs
and temporary files there), on free loopback ports, with a certificate made for the test. The
site file is docs/nginx.conf itself with only its ports, certificate paths and upstream
replaced, so a change to the shipped file is what is tested.
"""
from __future__ import annotations

import os
import re
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuthFailure
from app.proxies import parse_networks
from servers.web import WebServer
from tests.fixtures.floods import Trickle, bound_http
from tests.fixtures.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
NGINX = "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def site_config(web_port: int, http_port: int, https_port: int, cert: str, key: str) -> str:
    """docs/nginx.conf with the test's ports and files; each replaced directive must be there."""
    text = (ROOT / "docs" / "nginx.conf").read_text(encoding="utf-8")
    replacements = [
        (r"^\s*listen \[::\]:.*\n", ""),  # the loopback of the test is IPv4
        (r"server 127\.0\.0\.1:8000;", f"server 127.0.0.1:{web_port};"),
        (r"listen 80;", f"listen 127.0.0.1:{http_port};"),
        (r"listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        (r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};"),
        (r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};"),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count >= 1, f"docs/nginx.conf has no {pattern!r}"
    return text


def main_config(prefix: Path, site: Path) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers keep the test's user, not nobody
    return f"""{user}daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site};
}}
"""


@pytest.fixture
def proxied(app, make_account, smtp_tls_files, tmp_path):
    """Renkei's web server trusting 127.0.0.1, and nginx in front of it; yields (https port, web server)."""
    make_account("acme")
    app.config["TRUSTED_PROXIES"] = parse_networks("127.0.0.1")
    web = WebServer(app, "127.0.0.1", 0, threads=4).start()
    web_port = int(web.listeners[0].rsplit(":", 1)[1].strip("/"))
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    cert, key = smtp_tls_files
    http_port, https_port = free_port(), free_port()
    site = prefix / "renkei.conf"
    site.write_text(site_config(web_port, http_port, https_port, cert, key))
    conf = prefix / "nginx.conf"
    conf.write_text(main_config(prefix, site))
    nginx = subprocess.Popen([NGINX, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: nginx.poll() is not None or _listening(https_port), timeout=20, what="nginx to listen")
        assert nginx.poll() is None, (prefix / "error.log").read_text()
        yield https_port, web
    finally:
        nginx.terminate()
        nginx.wait(10)
        web.stop()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def https(port: int, source: str = "127.0.0.2", cafile: str | None = None):
    return bound_http(port, source, context=ssl.create_default_context(cafile=cafile), timeout=10)


def test_login_page_over_https_and_the_client_address_is_the_forwarded_one(proxied, smtp_tls_files):
    port, _ = proxied
    cafile = smtp_tls_files[0]
    connection = https(port, cafile=cafile)
    connection.request("GET", "/login")
    response = connection.getresponse()
    assert response.status == 200 and "<h1>ログイン</h1>" in response.read().decode()
    # A failed login from 127.0.0.5 (with a forged X-Forwarded-For of its own) is counted for 127.0.0.5.
    connection = https(port, source="127.0.0.5", cafile=cafile)
    connection.request("POST", "/login", "email=admin%40acme.example&password=wrong-password",
                       {"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": "203.0.113.9"})
    assert connection.getresponse().status == 401
    db.session.rollback()
    counted = db.session.scalars(select(AuthFailure.key).where(AuthFailure.scope == "address")).all()
    assert counted == ["127.0.0.5"]


def test_a_body_over_the_upload_cap_gets_413_from_nginx(proxied, smtp_tls_files, app):
    port, _ = proxied
    # docs/nginx.conf's cap is Renkei's own (MAX_UPLOAD_BYTES plus the form's framing).
    conf = (ROOT / "docs" / "nginx.conf").read_text(encoding="utf-8")
    kib = int(re.search(r"^\s*client_max_body_size (\d+)k;", conf, re.MULTILINE).group(1))
    cap = app.config["MAX_CONTENT_LENGTH"]
    assert kib * 1024 == cap
    connection = https(port, cafile=smtp_tls_files[0])
    connection.putrequest("POST", "/imports/upload")
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.putheader("Content-Length", str(cap + 1))
    connection.endheaders()  # no body: nginx answers from the header alone
    response = connection.getresponse()
    assert response.status == 413 and "nginx" in response.read().decode()
    # A smaller body goes through to Renkei, which answers it itself.
    connection = https(port, cafile=smtp_tls_files[0])
    connection.request("POST", "/login", b"email=a%40b.example&password=wrong-password",
                       {"Content-Type": "application/x-www-form-urlencoded"})
    assert connection.getresponse().status == 401


def test_sixty_slow_header_connections_through_nginx_leave_the_page_to_others(proxied, smtp_tls_files):
    port, _ = proxied
    context = ssl.create_default_context(cafile=smtp_tls_files[0])
    slow = Trickle(port, ["127.0.0.1"] * 60, wrap=lambda sock: context.wrap_socket(sock, server_hostname="127.0.0.1"))
    try:
        began = time.monotonic()
        connection = https(port, cafile=smtp_tls_files[0])
        connection.request("GET", "/login")
        response = connection.getresponse()
        assert response.status == 200 and "<h1>ログイン</h1>" in response.read().decode()
        assert time.monotonic() - began < 2.0
    finally:
        slow.stop()
