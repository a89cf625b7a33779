"""The built-in SFTP server (FTP連動): asyncssh on its own loop and thread, start(app).

Each account logs in with its FTP ID/PW (or an SSH key of the account) and sees its FTP
home, exactly as over FTP (servers/sftpfs.py); the scheduled check imports the files later.

Decisions (where docs/spec.md is silent):
- One SFTP channel for admission and bans: it is the FTP channel (`Channel.FTP`, login name
  `ftp:<ID>`), so FTP連動 must be the mode, a stopped status lets the client in with its files
  waiting, and failures over SFTP and FTP count against the same login name and address.
  A wrong password is answered after LOGIN_FAIL_DELAY seconds (that session only waits);
  a banned address is disconnected before any login is tried.
- Keys (`app.services.sshkeys.public_keys`) are offered only for an account admitted now;
  a key the account does not have is not a failed login (clients try every key they hold
  before the password), so keys are not counted in the bans.
- Only the SFTP subsystem: no shell, no exec, no legacy SCP (`scp -O`: asyncssh closes an
  SCP upload's file before it knows whether the upload ended normally), no port, agent or
  X11 forwarding, no pty. OpenSSH's scp (9.0 and later) speaks SFTP by default and works.
- The host key (app/services/sshhostkey.py) is made on the first start and kept; its SHA256
  fingerprint is logged and printed at each start and shown on the 外部連携設定 tab.
- Limits are FTP's: FTP_MAX_BYTES per upload, FTP_MAX_CONS_PER_IP / FTP_MAX_CONS sessions,
  FTP_LOGIN_TIMEOUT seconds to log in.

Settings (app.config key, else the RENKEI_<key> environment variable): SFTP_PORT (2222),
HOST, FTP_MAX_BYTES, FTP_MAX_CONS_PER_IP, FTP_MAX_CONS, FTP_LOGIN_TIMEOUT, LOGIN_FAIL_DELAY.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import asyncssh
from flask import Flask

from app import config
from app.services import bans, ftpcheck, integration, sshkeys
from app.services.sshhostkey import host_key, host_key_fingerprint, host_key_path  # noqa: F401 - the view's and tests' names

from . import uploads
from .ftpauth import admitted, password_login
from .loopthread import LoopThread
from .sftpfs import HomeSFTPServer
from .web import url_host

log = logging.getLogger(__name__)

STAGING_FOLDER = "sftp-uploading"
BANNED_TEXT = "Too many failed logins from your address; try again later."


# ---------------------------------------------------------------------------------------
# Logins (run in worker threads with an app context: they touch the database)


@dataclass(frozen=True)
class PasswordResult:
    home: str | None  # the FTP home when the login passed
    banned: bool  # the address or login is banned now (refused unchecked, or this failure started it)


def _password(address: str, username: str, password: str) -> PasswordResult:
    result = bans.guarded_login(address, bans.login_key("ftp", username), lambda: password_login(username, password))
    if result.passed:
        return PasswordResult(str(ftpcheck.home_path(result.subject.ftp_username, create=True)), False)
    log.info("sftp login failed user=%s address=%s verdict=%s", username, address, result.verdict)
    return PasswordResult(None, result.verdict is bans.Verdict.BANNED or result.ban_started)


def _keys(username: str) -> tuple[str, str] | None:
    """(home, authorized_keys text) of an admitted account with keys, else None."""
    settings = admitted(integration.settings_for_ftp_username(username))
    if settings is None:
        return None
    lines = sshkeys.public_keys(settings.account_id)
    if not lines:
        return None
    return str(ftpcheck.home_path(settings.ftp_username, create=True)), "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# One connection


class _Connection(asyncssh.SSHServer):
    """Authentication of one SSH connection; the session itself is HomeSFTPServer."""

    def __init__(self, server: RunningSftp):
        self._server = server
        self._conn: asyncssh.SSHServerConnection | None = None
        self._address = ""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._address = (conn.get_extra_info("peername") or ("",))[0]
        self._server.opened(conn, self._address)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._server.closed(self._conn, self._address)

    async def begin_auth(self, username: str) -> bool:
        if await self._server.call(bans.is_banned, self._address):
            log.info("sftp connection refused (banned) address=%s", self._address)
            raise asyncssh.DisconnectError(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, BANNED_TEXT)
        found = await self._server.call(_keys, username)
        if found is not None:
            home, text = found
            self._conn.set_extra_info(renkei_home=home)
            self._conn.set_authorized_keys(asyncssh.import_authorized_keys(text))
        return True

    def password_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        result = await self._server.call(_password, self._address, username, password)
        if result.home is not None:
            self._conn.set_extra_info(renkei_home=result.home)
            log.info("sftp login user=%s address=%s", username, self._address)
            return True
        if result.banned:
            raise asyncssh.DisconnectError(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, BANNED_TEXT)
        # Only this session waits: the loop serves everyone else meanwhile.
        await asyncio.sleep(self._server.fail_delay)
        return False

    def auth_completed(self) -> None:
        log.info("sftp session user=%s address=%s", self._conn.get_extra_info("username"), self._address)


# ---------------------------------------------------------------------------------------
# Server and thread


class RunningSftp:
    """The SFTP server serving on its own asyncio loop in a thread; `.stop()` ends it."""

    def __init__(self, app: Flask, host: str, port: int, key: asyncssh.SSHKey, staging_dir: str):
        self.app = app
        self.host = host
        self.port = port
        self.fingerprint = key.get_fingerprint("sha256")
        self._key = key
        self._staging = staging_dir
        self.fail_delay = float(config.get(app, "LOGIN_FAIL_DELAY"))
        self._max_bytes = config.get(app, "FTP_MAX_BYTES")
        self._max_cons = config.get(app, "FTP_MAX_CONS")
        self._max_cons_per_ip = config.get(app, "FTP_MAX_CONS_PER_IP")
        self._login_timeout = config.get(app, "FTP_LOGIN_TIMEOUT")
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._per_address: Counter[str] = Counter()
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="renkei-sftp-login")
        self._loop = asyncio.new_event_loop()
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._stopping = False
        self._serving = LoopThread(self._loop, "renkei-sftp", self._open,
                                   lambda: self._loop.run_until_complete(self._loop.shutdown_asyncgens()))

    @property
    def listeners(self) -> list[str]:
        return [f"sftp://{url_host(self.host)}:{self.port}"]

    def alive(self) -> bool:
        """True while the thread runs its loop and the listener accepts."""
        return self._serving.serving() and not self._stopping and self._acceptor is not None

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run a database step in a worker thread with an app context."""
        def in_context():
            with self.app.app_context():
                return function(*args)
        return await self._loop.run_in_executor(self._executor, in_context)

    def opened(self, conn: asyncssh.SSHServerConnection, address: str) -> None:
        self._connections.add(conn)
        self._per_address[address] += 1
        if len(self._connections) > self._max_cons or self._per_address[address] > self._max_cons_per_ip:
            log.info("sftp connection refused (too many) address=%s", address)
            conn.disconnect(asyncssh.DISC_TOO_MANY_CONNECTIONS, "Too many connections; try again later.")

    def closed(self, conn: asyncssh.SSHServerConnection, address: str) -> None:
        self._connections.discard(conn)
        self._per_address[address] -= 1
        if self._per_address[address] <= 0:
            del self._per_address[address]

    def _session(self, chan: asyncssh.SSHServerChannel) -> HomeSFTPServer:
        conn = chan.get_connection()
        return HomeSFTPServer(chan, home=conn.get_extra_info("renkei_home"), staging_dir=self._staging,
                              max_bytes=self._max_bytes, who=conn.get_extra_info("username"))

    async def _open(self) -> None:
        self._acceptor = await asyncssh.create_server(
            lambda: _Connection(self), self.host, self.port,
            server_host_keys=[self._key], sftp_factory=self._session, allow_scp=False,
            agent_forwarding=False, x11_forwarding=False, allow_pty=False,
            login_timeout=self._login_timeout, reuse_address=True,
            server_version="Renkei",
        )
        self.port = self._acceptor.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        self._acceptor.close()
        for conn in list(self._connections):
            conn.close()
        # Each session's end discards its unfinished uploads before the loop stops.
        await asyncio.gather(self._acceptor.wait_closed(),
                             *(conn.wait_closed() for conn in list(self._connections)),
                             return_exceptions=True)
        self._loop.stop()

    def start(self) -> RunningSftp:
        self._serving.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, end every session (unfinished uploads are discarded) and wait for the thread."""
        if self._stopping:
            return
        self._stopping = True
        if self._serving.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            self._serving.thread.join(timeout)
        self._executor.shutdown(wait=False)
        log.info("sftp stopped")


def start(app: Flask) -> RunningSftp:
    """Start the SFTP server for `app` on HOST:SFTP_PORT (0 = a free port) and return it running."""
    # asyncssh logs every packet exchange at INFO; we log one line per login and per upload instead.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    data_dir = app.config["DATA_DIR"]
    staging = uploads.prepare_staging(data_dir, STAGING_FOLDER)
    key = host_key(data_dir)
    host = app.config.get("HOST") or "127.0.0.1"
    running = RunningSftp(app, host, config.get(app, "SFTP_PORT"), key, staging).start()
    log.info("sftp listening on %s:%s (host key %s, max %d bytes, %d connections per address)",
             host, running.port, running.fingerprint, running._max_bytes, running._max_cons_per_ip)
    return running
