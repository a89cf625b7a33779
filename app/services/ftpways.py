"""The ways to reach an account's FTP home that this server runs (FTP, FTPS, SFTP), for the FTP連動 section."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from .. import config
from .sshhostkey import host_key_fingerprint


@dataclass(frozen=True)
class Way:
    """One way to connect: protocol, host, port, a line of help and, for SFTP, the host key fingerprint."""

    protocol: str
    host: str
    port: int
    note: str
    fingerprint: str | None = None


def connect_ways() -> list[Way]:
    """FTP (unless TLS is required), FTPS when a certificate is set, SFTP once its host key exists."""
    app = current_app
    host = config.get(app, "FTP_PUBLIC_HOST") or config.get(app, "HOST")
    ftp_port = app.config["FTP_PORT"]
    ways: list[Way] = []
    if not config.get(app, "FTP_REQUIRE_TLS"):
        ways.append(Way("FTP", host, ftp_port, "暗号化しないFTPです。社内ネットワークの中でだけ使ってください。"))
    if config.get(app, "FTP_TLS_CERT"):
        ways.append(Way("FTPS", host, ftp_port, "FTPの接続をTLSで暗号化します(明示的FTPS、AUTH TLS)。"))
    # The key is made by the SFTP server's first start: no key, no SFTP server has run here.
    fingerprint = host_key_fingerprint(app.config["DATA_DIR"])
    if fingerprint:
        ways.append(Way("SFTP", host, app.config["SFTP_PORT"],
                        "SSHで暗号化します(WinSCP、FileZilla、sftp、scp)。初めての接続で表示されるホスト鍵が"
                        "下のフィンガープリントと同じか確かめてください。", fingerprint))
    return ways
