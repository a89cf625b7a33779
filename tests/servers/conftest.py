"""Fixtures for the channel servers. SMTP ones are named smtp_*; other channels add their own.

smtp_relay    the report-mail relay: a real aiosmtpd sink (tests/smtp_sink.py)
smtp_account  an enabled account in メール添付連動 mode with members, columns and one sender
smtp_worker   the import worker of the test app, delivering report mails to smtp_relay
smtp_server   Renkei's SMTP server (servers.smtp.start) on a free port, with the worker running
smtp_wait     poll the database (fresh transaction each time) until a condition holds
smtp_mail     builders of raw messages and CSV files (the bytes are exactly what we write)
"""
from __future__ import annotations

import base64
import csv
import datetime as dt
import io
from dataclasses import dataclass
from types import SimpleNamespace
from urllib.parse import quote

import pytest

from tests.smtp_sink import SmtpSink
from tests.waiting import wait_for

SMTP_SENDER = "sales@partner.example"
SMTP_ERROR_TO = "errors@acme.example"
SMTP_SUCCESS_TO = "board@acme.example"
SMTP_MEMBERS = [(1, "E001", "髙橋 一郎"), (2, "E002", "佐藤 花子"), (3, "E003", "鈴木 次郎")]
SMTP_COLUMNS = [("売上", "円"), ("粗利", "円"), ("件数", "件")]


# ---------------------------------------------------------------------------------------
# Builders (plain functions; tests reach them through the smtp_mail fixture)


def smtp_csv(rows: list[list[str]] | None = None, encoding: str = "cp932") -> bytes:
    """A results CSV as Excel writes it (cp932, CRLF); the default rows are valid for smtp_account."""
    if rows is None:
        rows = [
            ["No.", "売上", "粗利", "件数", "備考"],
            ["1", "120,000", "30000", "2", "髙橋様 ①件目"],
            ["2", "50000", "12000", "1", "Ａ社 新規"],
        ]
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode(encoding)


def smtp_disposition_plain(name: str) -> bytes:
    """Content-Disposition with an ASCII file name."""
    return f'Content-Disposition: attachment; filename="{name}"'.encode("ascii")


def smtp_disposition_rfc2231(name: str, chunk: int = 4) -> bytes:
    """RFC 2231 UTF-8 file name split into continuations (filename*0*=, filename*1*=, …).

    Chunks are cut every `chunk` characters of the percent-encoded UTF-8 bytes, so a single
    character's bytes are split across continuations, as the RFC allows.
    """
    encoded = quote(name.encode("utf-8"), safe="")
    tokens = re_tokens(encoded)
    pieces = ["".join(tokens[i:i + chunk]) for i in range(0, len(tokens), chunk)]
    lines = [f" filename*{i}*={'UTF-8' + chr(39) * 2 if i == 0 else ''}{piece}" for i, piece in enumerate(pieces)]
    return ("Content-Disposition: attachment;\r\n" + ";\r\n".join(lines)).encode("ascii")


def re_tokens(encoded: str) -> list[str]:
    """Split a percent-encoded string into byte tokens ("%E5" or one ASCII character)."""
    tokens, i = [], 0
    while i < len(encoded):
        step = 3 if encoded[i] == "%" else 1
        tokens.append(encoded[i:i + step])
        i += step
    return tokens


def smtp_disposition_rfc2047(name: str, charset: str = "UTF-8") -> bytes:
    """RFC 2047 B-encoded file name inside a quoted parameter (what Outlook and many Japanese mailers send)."""
    codec = "iso-2022-jp" if charset.upper() == "ISO-2022-JP" else "utf-8"
    word = base64.b64encode(name.encode(codec)).decode("ascii")
    return (
        f'Content-Type: text/csv; name="=?{charset}?B?{word}?="\r\n'
        f'Content-Disposition: attachment; filename="=?{charset}?B?{word}?="'
    ).encode("ascii")


def smtp_raw_mail(
    *,
    sender: str,
    to: str,
    parts: list[tuple[bytes, bytes]],
    message_id: str | None = "<renkei-test-1@partner.example>",
    from_header: bytes | None = None,
    extra_headers: bytes = b"",
    epilogue: bytes = b"",
) -> bytes:
    """A multipart/mixed message as raw CRLF bytes: a text body, then each (headers, data) part in base64."""
    boundary = b"=_renkei_test_boundary"
    head = [
        b"From: " + (from_header if from_header is not None else sender.encode()),
        b"To: " + to.encode(),
        b"Subject: =?UTF-8?B?" + base64.b64encode("売上データ".encode()) + b"?=",
        b"Date: Wed, 16 May 2018 09:00:00 +0900",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="' + boundary + b'"',
    ]
    if message_id:
        head.append(b"Message-ID: " + message_id.encode())
    out = b"\r\n".join(head) + b"\r\n" + extra_headers + b"\r\n"
    out += b"--" + boundary + b"\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    out += base64.encodebytes("本文は無視されます。".encode()).replace(b"\n", b"\r\n") + b"\r\n"
    for headers, data in parts:
        if b"content-type:" not in headers.lower():
            headers = b"Content-Type: text/csv\r\n" + headers
        out += b"--" + boundary + b"\r\n" + headers + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        out += base64.encodebytes(data).replace(b"\n", b"\r\n") + b"\r\n"
    out += b"--" + boundary + b"--\r\n" + epilogue
    return out


def smtp_message(sender: str, to: str, files: list[tuple[str, bytes]], message_id: str | None = None):
    """An EmailMessage as an ordinary client builds it (email.message, add_attachment)."""
    from email.message import EmailMessage
    from email.utils import make_msgid

    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "売上データ送付"
    message["Message-ID"] = message_id or make_msgid(domain="partner.example")
    message.set_content("売上データを送ります。")
    for name, data in files:
        maintype, subtype = ("text", "csv") if name.lower().endswith(".csv") else ("application", "octet-stream")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message


@pytest.fixture
def smtp_mail():
    """The message and CSV builders of this module."""
    return SimpleNamespace(
        csv=smtp_csv,
        raw=smtp_raw_mail,
        message=smtp_message,
        plain=smtp_disposition_plain,
        rfc2231=smtp_disposition_rfc2231,
        rfc2047=smtp_disposition_rfc2047,
    )


# ---------------------------------------------------------------------------------------
# Running things


@dataclass
class SmtpAccount:
    id: int
    slug: str
    address: str
    sender: str = SMTP_SENDER


@pytest.fixture
def smtp_account(app, make_account) -> SmtpAccount:
    """An integration-enabled account in mail mode whose only registered sender is SMTP_SENDER."""
    from app.services import columns, integration, members

    account, _, _ = make_account("acme")
    for no, employee_id, name in SMTP_MEMBERS:
        members.create_member(account.id, no, employee_id, name, "営業部")
    for name, unit in SMTP_COLUMNS:
        columns.add_column(account.id, name, unit)
    settings = integration.update_settings(
        account.id,
        {"mode": "mail", "status": "active", "senders": [SMTP_SENDER], "error_to": [SMTP_ERROR_TO],
         "success_to": [SMTP_SUCCESS_TO]},
        actor="test",
    )
    return SmtpAccount(id=account.id, slug=account.slug, address=integration.inbound_address(settings))


@pytest.fixture
def smtp_relay():
    """The relay report mails go out through: it keeps every message (tests/smtp_sink.py)."""
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def smtp_worker(app, smtp_relay):
    """The import worker, polling fast, sending report mails to smtp_relay."""
    from servers.worker import Worker

    app.config["SMTP_RELAY"] = smtp_relay.url
    worker = Worker(app, poll_seconds=0.1)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def smtp_start(app):
    """Start Renkei's SMTP server with config overrides (port 0); every server is stopped at teardown."""
    from servers import smtp

    started = []

    def start(**config):
        app.config.update({"SMTP_PORT": 0, "HOST": "127.0.0.1", **config})
        server = smtp.start(app)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def smtp_server(smtp_start, smtp_worker):
    """Renkei's SMTP server with default limits and the worker running."""
    return smtp_start()


@pytest.fixture
def smtp_wait(app):
    """wait(predicate, timeout) -> the predicate's truthy value; each try sees the latest commits."""
    return wait_for


@pytest.fixture(scope="session")
def smtp_tls_files(tmp_path_factory):
    """A self-signed certificate and key for 127.0.0.1 / localhost (PEM files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)
