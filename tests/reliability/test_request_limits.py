"""The request-size cap of a real `python run.py` (waitress): 413 before the body is read, no temporary spool.

The upload cap is set to 1 MiB (RENKEI_MAX_UPLOAD_BYTES) so the bodies stay small; the
server's temporary folder is its own (TMPDIR), so what it spools there can be measured,
including deleted temporary files it still holds open (/proc/<pid>/fd).
"""
from __future__ import annotations

import http.client
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.processes import RenkeiProcess

MIB = 1024 * 1024
CAP = 1 * MIB


def spooled_bytes(pid: int, folder: Path) -> int:
    """Bytes of the files in `folder` plus those the process holds open there (deleted ones too)."""
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(folder)):
                total += os.stat(f"/proc/{pid}/fd/{fd}").st_size
        except OSError:
            continue  # closed meanwhile
    return total


@pytest.fixture
def server(tmp_path):
    spool = tmp_path / "tmp"
    spool.mkdir()
    process = RenkeiProcess(tmp_path / "data", tmp_path / "run.log", "--only", "web",
                            env={"RENKEI_MAX_UPLOAD_BYTES": str(CAP), "TMPDIR": str(spool)})
    process.spool = spool
    try:
        process.start()
        yield process
    finally:
        process.close()


def curl() -> str:
    path = shutil.which("curl")
    if path is None:
        pytest.fail("curl is not installed (Debian package curl)")
    return path


def test_a_declared_large_body_is_refused_with_413_before_any_of_it_is_sent(server):
    """Content-Length of 50 MiB, no body byte sent: the answer comes at once (JSON under /api/)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port("web"), timeout=10)
    connection.putrequest("POST", "/api/v1/imports?filename=20180516.csv")
    connection.putheader("Content-Type", "text/csv")
    connection.putheader("Content-Length", str(50 * MIB))
    connection.endheaders()
    response = connection.getresponse()  # times out if the server waits for the body
    body = response.read().decode()
    assert response.status == 413
    assert response.getheader("Content-Type") == "application/json"
    assert '"code":"payload_too_large"' in body.replace(" ", "") and "ファイルが大きすぎます(上限 1,048,576 バイト)" in body
    connection.close()


def test_curl_uploads_over_the_cap_get_413_in_japanese_and_nothing_is_spooled(server, tmp_path):
    big = tmp_path / "20180516.csv"
    with open(big, "wb") as f:
        f.truncate(40 * MIB)
    base = server.web_url.rstrip("/")
    api = subprocess.run([curl(), "-sS", "-o", "-", "-w", "\n%{http_code}", "-H", "Content-Type: text/csv",
                          "--data-binary", f"@{big}", f"{base}/api/v1/imports?filename=20180516.csv"],
                         capture_output=True, text=True, timeout=60)
    body, status = api.stdout.rsplit("\n", 1)
    assert status == "413" and "payload_too_large" in body and "ファイルが大きすぎます" in body, api.stderr
    web = subprocess.run([curl(), "-sS", "-o", "-", "-w", "\n%{http_code}", "-F", f"file=@{big}", f"{base}/upload"],
                         capture_output=True, text=True, timeout=60)
    page, status = web.stdout.rsplit("\n", 1)
    assert status == "413" and "ファイルが大きすぎます(上限 1 MB)" in page and "<html" in page, web.stderr
    assert spooled_bytes(server.pid, server.spool) == 0


def test_a_chunked_upload_without_content_length_is_cut_at_the_cap(server, tmp_path):
    big = tmp_path / "big.csv"
    big.write_bytes("No.,売上\r\n".encode("cp932") + b"1,100\r\n" * (8 * MIB // 7))
    base = server.web_url.rstrip("/")
    with open(big, "rb") as stdin:
        result = subprocess.run([curl(), "-sS", "-o", "-", "-w", "\n%{http_code}", "-X", "POST",
                                 "-H", "Transfer-Encoding: chunked", "-H", "Content-Type: text/csv", "-T", "-",
                                 f"{base}/api/v1/imports?filename=20180516.csv"],
                                stdin=stdin, capture_output=True, text=True, timeout=60)
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "413" and "payload_too_large" in body, result.stdout + result.stderr
    # Waitress counts the body as it arrives: at most the cap plus the last piece it read is spooled.
    assert spooled_bytes(server.pid, server.spool) <= CAP + 256 * 1024
