"""Fixtures for the FTP server and checks; test modules import them by name (all are prefixed ftp_).

ftp_account   an enabled account in FTP連動 mode with members, columns and an issued FTP password
ftp_start     start Renkei's FTP server (servers.ftp.start) on a free port with config overrides
ftp_server    Renkei's FTP server with test defaults (no quiet period, no login delay)
ftp_connect   an ftplib client logged in as ftp_account (closed at teardown)
ftp_tls_files a self-signed certificate and key made with the openssl CLI
"""
from __future__ import annotations

import csv
import ftplib
import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

FTP_MEMBERS = [(1, "E001", "髙橋 一郎"), (2, "E002", "佐藤 花子")]
FTP_COLUMNS = [("売上", "円"), ("件数", "件")]


def ftp_csv(rows: list[list[str]] | None = None, encoding: str = "cp932") -> bytes:
    """A results CSV as Excel writes it (cp932, CRLF); the default rows are valid for ftp_account."""
    if rows is None:
        rows = [["No.", "売上", "件数", "備考"], ["1", "120,000", "2", "髙橋様"], ["2", "50000", "1", "Ａ社 新規"]]
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode(encoding)


# A file the importer rejects: 氏名 is not a graph column of the account.
FTP_BAD_CSV = ftp_csv([["No.", "氏名"], ["1", "髙橋"]])


@dataclass
class FtpAccount:
    id: int
    slug: str
    username: str
    password: str
    home: Path


@pytest.fixture
def ftp_account(app, make_account) -> FtpAccount:
    """An integration-enabled account in FTP mode (every day, 09:00-18:00, hourly, 5 minutes late)."""
    from app.services import columns, ftpcheck, integration, members

    account, _, _ = make_account("acme")
    for no, employee_id, name in FTP_MEMBERS:
        members.create_member(account.id, no, employee_id, name, "営業部")
    for name, unit in FTP_COLUMNS:
        columns.add_column(account.id, name, unit)
    settings = integration.update_settings(
        account.id,
        {"mode": "ftp", "status": "active", "error_to": ["errors@acme.example"],
         "ftp_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "ftp_start": "09:00",
         "ftp_end": "18:00", "ftp_interval": 60, "ftp_delay": 5},
        actor="test",
    )
    password = integration.issue_ftp_password(account.id, actor="test")
    return FtpAccount(account.id, account.slug, settings.ftp_username, password,
                      ftpcheck.home_path(settings.ftp_username))


@pytest.fixture
def ftp_start(app):
    """start(**config) -> RunningFtp on 127.0.0.1 and a free port; every server is stopped at teardown."""
    from servers import ftp

    started = []

    def start(**config):
        app.config.update({"FTP_PORT": 0, "HOST": "127.0.0.1", "FTP_QUIET_SECONDS": 0,
                           "LOGIN_FAIL_DELAY": 0, **config})
        server = ftp.start(app)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def ftp_server(ftp_start):
    """Renkei's FTP server with the default limits."""
    return ftp_start()


@pytest.fixture
def ftp_connect(ftp_account):
    """connect(server, user=None, password=None) -> a logged-in ftplib.FTP (binary mode)."""
    clients: list[ftplib.FTP] = []

    def connect(server, user: str | None = None, password: str | None = None, client_class=ftplib.FTP):
        client = client_class()
        client.connect("127.0.0.1", server.port, timeout=10)
        clients.append(client)
        client.login(user or ftp_account.username, password if password is not None else ftp_account.password)
        return client

    try:
        yield connect
    finally:
        for client in clients:
            try:
                client.close()
            except OSError:
                pass


@pytest.fixture(scope="session")
def ftp_tls_files(tmp_path_factory):
    """A self-signed certificate and key for 127.0.0.1 (PEM files), made with the openssl CLI."""
    folder = tmp_path_factory.mktemp("ftp-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


def ftp_upload(client: ftplib.FTP, name: str, data: bytes) -> str:
    """STOR `data` as `name`; return the server's final reply."""
    return client.storbinary(f"STOR {name}", io.BytesIO(data))


def ftp_files(folder: Path) -> list[str]:
    """Names of the regular files directly in `folder` (sorted; [] when it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.is_symlink())
