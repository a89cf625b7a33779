"""The FTP連動 section lists every way to connect that the server runs: FTP, FTPS, SFTP with its fingerprint."""
from __future__ import annotations

import re
from html import unescape

from app.services.sshhostkey import host_key, host_key_fingerprint

URL = "/settings/integration"


def ways(client) -> dict[str, str]:
    html = unescape(client.get(URL).get_data(as_text=True))
    return {m.group(1): re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", m.group(2))).strip()
            for m in re.finditer(r'<li id="connect-(\w+)">(.*?)</li>', html, re.DOTALL)}


def test_plain_ftp_only_until_sftp_has_started(app, client, admin):
    app.config.update(HOST="ftp.renkei.test", FTP_PORT=2121)
    shown = ways(client)
    assert list(shown) == ["ftp"]
    assert "ftp.renkei.test" in shown["ftp"] and "2121" in shown["ftp"]


def test_ftps_and_sftp_with_the_host_key_fingerprint(app, client, admin):
    app.config.update(HOST="ftp.renkei.test", FTP_PORT=2121, SFTP_PORT=2222, FTP_TLS_CERT="/some/cert.pem")
    host_key(app.config["DATA_DIR"])  # what the SFTP server's first start makes
    fingerprint = host_key_fingerprint(app.config["DATA_DIR"])
    shown = ways(client)
    assert list(shown) == ["ftp", "ftps", "sftp"]
    assert "ftp.renkei.test" in shown["sftp"] and "2222" in shown["sftp"]
    assert f"ホスト鍵 {fingerprint}" in shown["sftp"] and fingerprint.startswith("SHA256:")


def test_required_tls_shows_no_plain_ftp(app, client, admin):
    app.config.update(FTP_TLS_CERT="/some/cert.pem", FTP_REQUIRE_TLS=True)
    assert list(ways(client)) == ["ftps"]
