"""FTP floods: idle sessions from many addresses hold the global cap only until the login deadline."""
from __future__ import annotations

import ftplib
import socket
import time

from tests.fixtures.waiting import wait_for

DEADLINE = 5.0


def session(port: int, source: str) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return sock, sock.recv(200)


def until_closed(sock: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := sock.recv(200):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def _connect_when_free(port: int):
    """A try at connecting from 127.0.0.2: the connected client, or None while the server is full."""
    def attempt():
        client = ftplib.FTP()
        try:
            client.connect("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0))
        except ftplib.error_temp:
            client.close()
            return None
        return client
    return attempt


def test_idle_sessions_from_26_addresses_give_way_at_the_login_deadline(ftp_start, ftp_account):
    server = ftp_start(FTP_LOGIN_TIMEOUT=DEADLINE)  # the default caps: 256 in all, 10 per address
    working = ftplib.FTP()
    working.connect("127.0.0.1", server.port, timeout=10, source_address=("127.0.0.3", 0))
    working.login(ftp_account.username, ftp_account.password)
    began = time.monotonic()
    flood = [session(server.port, f"127.0.0.{10 + n // 10}") for n in range(260)]
    try:
        late, banner = session(server.port, "127.0.0.2")  # the global cap is full: a legitimate client too
        late.close()
        assert time.monotonic() - began < DEADLINE, "the flood took longer to open than the deadline"
        greeted = [sock for sock, banner in flood if banner.startswith(b"220")]
        assert len(greeted) == 256  # with the logged-in one, 257: pyftpdlib lets in one over FTP_MAX_CONS
        assert all(banner.startswith(b"421 Too many connections") for sock, banner in flood if sock not in greeted)
        assert banner.startswith(b"421")
        # At the deadline every idle session is told and closed, however long the client would wait.
        assert {until_closed(sock) for sock in greeted} == {b"421 Login timed out.\r\n"}
        # The server frees a closed session's slot in its own loop turn, just after the client saw
        # the close: until then a new client may still hear 421 Too many connections.
        client = wait_for(_connect_when_free(server.port), 10, "a free slot once the idle sessions were closed")
        assert client.login(ftp_account.username, ftp_account.password).startswith("230")
        client.quit()
        assert working.voidcmd("NOOP").startswith("200")  # a logged-in session is not timed out
    finally:
        for sock, _ in flood:
            sock.close()
        working.close()
