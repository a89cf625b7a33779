"""The built-in FTP server (FTP連動): pyftpdlib authorizer backed by the database, a handler built per server, start(app).

Each account logs in with its issued FTP ID/PW and sees only its home folder
`{DATA_DIR}/ftp/<ftp_username>/`. The server only receives files; the scheduled check
(`app.services.ftpcheck`) imports them later.

Decisions (where docs/spec.md is silent):
- Permissions are "elmwdf": change folder, list, make folder, upload, delete, rename.
  No download (RETR), no append (APPE); MFMT (set mtime), STOU (server-named upload) and
  REST (resume) are not offered at all, so clients do not try them. curl -T and lftp
  `put` need none of them.
- SITE CHMOD on a file or folder inside the home answers 200 and changes nothing: `lftp
  mirror -R` (and other mirroring tools) send it after every upload and exit 1 when it is
  refused, although the upload itself worked. Modes are meaningless here (the check only
  reads the file). A path outside the home or one that does not exist still gets 550, a
  malformed mode 501.
- Completeness: an upload is written to a staging file outside every home
  (`{DATA_DIR}/ftp-uploading/`) and moved into place with one rename only when the
  transfer ended normally; otherwise the staging file is deleted. So a file in a home is
  always a finished upload (or a client's own rename), and a half-written file can never
  be seen, listed, renamed or imported. "Ended normally" means the client closed the data
  connection with a FIN (FTP stream mode has no other end-of-file mark) while its control
  connection is still up and has not sent ABOR. Not normal, and discarded: ABOR, a reset
  data connection, a dead client (control connection already closed), the size cap
  exceeded, the server stopping mid-transfer. pyftpdlib alone would report several of
  these as complete. The check still requires size and mtime to be stable for a quiet
  period, which covers files that reach a home any other way.
- Files are not fsynced before the rename: a power cut right after `226` may lose the
  last upload; the uploader's next run sends it again (the replace rule makes that safe).
- Failed logins go through `bans.guarded_login` like web and API logins: the answer waits
  LOGIN_FAIL_DELAY seconds (pyftpdlib's auth_failed_timeout, which does not block other
  sessions), the failure is counted in the ban list shared with the web login, and a
  banned address is refused at connect and at login. A correct password is then admitted
  by `services.admission` (channel ftp): integration disabled or mode not FTP is refused
  without counting as a failure; a 連動稼働停止 status is HOLD, so the login is allowed and
  files wait for the first check after re-activation.
- `CWD ..` at the top, or any path that climbs above the home, is refused with 550 (not
  silently clamped to the top), so a misconfigured client sees the problem at once.
- Replies are pyftpdlib's standard English FTP texts: FTP clients show them verbatim and
  not every client decodes UTF-8 replies.

Settings (app.config key, else the RENKEI_<key> environment variable): FTP_PORT,
HOST, FTP_MAX_BYTES (100 MiB), FTP_MAX_CONS_PER_IP (10), FTP_MAX_CONS (256),
FTP_PASSIVE_PORTS (e.g. "60000-60100"; default: any port the OS picks), FTP_PUBLIC_HOST (address given in PASV replies),
FTP_TLS_CERT / FTP_TLS_KEY (explicit FTPS, AUTH TLS), FTP_REQUIRE_TLS (require TLS on
control and data channels), LOGIN_FAIL_DELAY.
"""
from __future__ import annotations

import errno
import logging
import os
import posixpath
import secrets
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

from flask import Flask
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.exceptions import AuthenticationFailed
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import DTPHandler, FTPHandler
from pyftpdlib.ioloop import _ERRNOS_DISCONNECTED, _ERRNOS_RETRY, IOLoop
from pyftpdlib.exceptions import _RetryError
from pyftpdlib.log import logger as ftp_logger
from pyftpdlib.servers import ThreadedFTPServer

from app import config
from app.services import bans, ftpcheck, integration
from app.services.admission import Channel, Outcome, admit

log = logging.getLogger(__name__)

PERMISSIONS = "elmwdf"
# pyftpdlib's permission letter of SITE CHMOD: granted, but the handler changes nothing.
CHMOD_PERM = "M"
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_CONS_PER_IP = 10
DEFAULT_MAX_CONS = 256
STAGING_FOLDER = "ftp-uploading"
# Commands not offered at all (see the module docstring); the rest are limited by PERMISSIONS.
REMOVED_COMMANDS = ("MFMT", "STOU", "REST")


def parse_port_range(value: str | None) -> list[int] | None:
    """"60000-60100" (or "60000") as a list of ports; None when empty; ValueError when malformed."""
    if not value:
        return None
    if isinstance(value, (list, tuple, range)):
        return list(value)
    low, _, high = str(value).strip().partition("-")
    first, last = int(low), int(high or low)
    if not (1 <= first <= last <= 65535):
        raise ValueError(f"bad passive port range: {value!r}")
    return list(range(first, last + 1))


# ---------------------------------------------------------------------------------------
# Authorizer


def _no_sleep(seconds: float) -> None:
    """pyftpdlib delays a failed login's answer itself (auth_failed_timeout)."""


class DatabaseAuthorizer(DummyAuthorizer):
    """Checks logins against the accounts' hashed FTP passwords and the shared ban list."""

    def __init__(self, app: Flask, perm: str = PERMISSIONS):
        super().__init__()
        self.app = app
        self.perm = perm
        self._homes: dict[str, str] = {}
        self._lock = threading.Lock()

    def validate_authentication(self, username: str, password: str, handler: FTPHandler) -> None:
        """Raise AuthenticationFailed unless the login is good and the account may use FTP now."""
        address = handler.remote_ip
        try:
            with self.app.app_context():
                # No sleep here: pyftpdlib holds the failed answer (auth_failed_timeout) without blocking.
                result = bans.guarded_login(address, bans.login_key("ftp", username),
                                            lambda: integration.verify_ftp_password(username, password),
                                            sleep=_no_sleep)
                if result.verdict is bans.Verdict.BANNED:
                    handler.attempted_logins = handler.max_login_attempts
                    raise AuthenticationFailed("too many failed logins; try again later.")
                if not result.passed:
                    if result.ban_started:
                        handler.attempted_logins = handler.max_login_attempts
                    log.info("ftp login failed user=%s address=%s", username, address)
                    raise AuthenticationFailed("authentication failed.")
                settings = result.subject
                account = settings.account
                # A right password still needs the account to take FTP files (a stopped status: HOLD, files wait).
                admission = admit(account, Channel.FTP, settings=settings)
                if admission.outcome not in (Outcome.ACCEPT, Outcome.HOLD):
                    log.info("ftp login refused account=%s reason=%s mode=%s", account.slug, admission.reason,
                             settings.mode)
                    raise AuthenticationFailed("FTP linkage is not enabled for this account.")
                home = ftpcheck.home_path(settings.ftp_username, create=True)
                slug = account.slug
        except AuthenticationFailed:
            raise
        except Exception:
            log.exception("ftp login check failed user=%s", username)
            raise AuthenticationFailed("temporary server error; try again later.")
        with self._lock:
            self._homes[username] = os.path.realpath(home)
        log.info("ftp login account=%s user=%s address=%s", slug, username, address)

    def get_home_dir(self, username: str) -> str:
        with self._lock:
            home = self._homes.get(username)
        if home is None:
            raise AuthenticationFailed("authentication failed.")
        return home

    def has_user(self, username: str) -> bool:
        with self._lock:
            return username in self._homes

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        # pyftpdlib has already refused any path outside the home (HomeFS.validpath).
        return perm in self.perm or perm == CHMOD_PERM

    def get_perms(self, username: str) -> str:
        return self.perm

    def get_msg_login(self, username: str) -> str:
        return "Login successful."

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."


# ---------------------------------------------------------------------------------------
# File system view of one home


class HomeFS(AbstractedFS):
    """The home as "/": a path climbing above it is refused, and the process cwd is never changed."""

    def ftp2fs(self, ftppath: str) -> str:
        joined = ftppath if self._isabs(ftppath) else posixpath.join(self.cwd, ftppath)
        depth = 0
        for part in joined.split("/"):
            if part in ("", "."):
                continue
            depth += -1 if part == ".." else 1
            if depth < 0:
                # A path outside the home: pyftpdlib's validpath() then answers 550.
                return os.path.dirname(os.path.normpath(self.root))
        return super().ftp2fs(ftppath)

    def open(self, filename: str, mode: str):
        # Unbuffered binary files: pyftpdlib writes 64 KiB chunks anyway, and the staging
        # file then shows the bytes received so far (nothing waits in a Python buffer).
        if "b" in mode:
            return open(filename, mode, buffering=0)
        return open(filename, mode)

    def chdir(self, path: str) -> None:
        # os.chdir would change the cwd of the whole process (web, worker, other sessions).
        if not os.path.isdir(path):
            raise OSError(errno.ENOENT, "No such directory", path)
        if not os.access(path, os.X_OK):
            raise OSError(errno.EACCES, "Permission denied", path)
        self.cwd = self.fs2ftp(path)


# ---------------------------------------------------------------------------------------
# Data channel: decide whether an upload ended normally


def _control_gone(cmd: FTPHandler) -> bool:
    """True when the client's control connection is closed or already carries an ABOR."""
    if cmd is None or getattr(cmd, "_closed", True) or not cmd.connected:
        return True
    try:
        fd = cmd.socket.fileno()
        with socket.socket(fileno=os.dup(fd)) as sock:
            pending = sock.recv(256, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
    if not pending:
        return True
    # Only readable on a plain control connection; under TLS the bytes are encrypted.
    return b"ABOR" in pending.upper()


class GuardedDTPHandler(DTPHandler):
    """A data channel that tells a finished upload from a cut-off one and enforces the size cap."""

    max_bytes = DEFAULT_MAX_BYTES
    # 256 KiB reads instead of 64 KiB: a quarter of the loop turns per megabyte uploaded.
    ac_in_buffer_size = 256 * 1024

    def __init__(self, sock, cmd_channel):
        self._peer_reset = False
        self._settled = False
        super().__init__(sock, cmd_channel)

    def recv(self, buffer_size: int) -> bytes:
        # pyftpdlib's recv turns a reset into a normal end of file; remember that it was a reset.
        try:
            data = self.socket.recv(buffer_size)
        except OSError as err:
            if err.errno in _ERRNOS_DISCONNECTED:
                self._peer_reset = True
                self.handle_close()
                return b""
            if err.errno in _ERRNOS_RETRY:
                raise _RetryError from err
            raise
        if not data:
            self.handle_close()
            return b""
        return data

    def handle_read_event(self) -> None:
        super().handle_read_event()
        if self.receive and not self._closed and self.max_bytes and self.tot_bytes_received > self.max_bytes:
            self.transfer_finished = False
            self._resp = (f"552 File exceeds the size limit of {self.max_bytes} bytes; upload discarded.",
                          ftp_logger.warning)
            self.close()

    handle_read = handle_read_event

    def handle_close(self) -> None:
        if not self._closed and self.receive and (self._peer_reset or _control_gone(self.cmd_channel)):
            self.transfer_finished = False
            self._resp = ("426 Connection closed before the end of the file; upload discarded.", ftp_logger.info)
            self.close()
            return
        super().handle_close()

    def close(self) -> None:
        # Settle before pyftpdlib's close sends 226, so a client that saw 226 finds its file in place.
        if not self._settled and self.receive and self.file_obj is not None:
            self._settled = True
            complete = self.transfer_finished
            try:
                if not self.file_obj.closed:
                    self.file_obj.close()
            except OSError:
                complete = False
            stored = self.cmd_channel.settle_upload(self.file_obj.name, complete)
            if complete and not stored:
                self.transfer_finished = False
                self._resp = ("451 The file could not be stored; upload discarded.", ftp_logger.warning)
        super().close()


# ---------------------------------------------------------------------------------------
# Control channel


class RenkeiHandlerMixin:
    """Behaviour added to pyftpdlib's FTPHandler (or TLS_FTPHandler) for every Renkei server."""

    app: Flask
    staging_dir: str

    def ftp_STOR(self, file: str, mode: str = "w") -> str | None:
        """Receive into a staging file; the data channel moves it into place when the upload ends normally."""
        if "a" in mode:
            self.respond("550 Not enough privileges.")
            return None
        if os.path.isdir(file):
            self.respond("550 Is a directory.")
            return None
        if not os.path.isdir(os.path.dirname(file)):
            self.respond("550 No such directory.")
            return None
        self._drop_queued_upload()
        staged = os.path.join(self.staging_dir, f"{secrets.token_hex(12)}.part")
        self._uploads[staged] = file
        if super().ftp_STOR(staged, mode) is None:
            self._discard(staged)
            return None
        return file

    def ftp_SITE_CHMOD(self, path: str, mode: str) -> tuple[str, int] | None:
        """Answer 200 for a file or folder inside the home and change nothing (see the module docstring)."""
        if not (len(mode) in (3, 4) and all(c in "01234567" for c in mode)):
            self.respond("501 Invalid SITE CHMOD format.")
            return None
        # The path is inside the home already (pyftpdlib's validpath, symlinks resolved).
        if not os.path.lexists(path):
            self.respond("550 No such file or directory.")
            return None
        self.respond("200 SITE CHMOD successful (modes are not used on this server; nothing changed).")
        return path, int(mode, 8)

    @property
    def _uploads(self) -> dict[str, str]:
        uploads = self.__dict__.get("_renkei_uploads")
        if uploads is None:
            uploads = self.__dict__["_renkei_uploads"] = {}
        return uploads

    def settle_upload(self, staged: str, complete: bool) -> bool:
        """Move a finished upload into the home (True), or delete an unfinished one; called by the data channel."""
        target = self._uploads.get(staged)
        if target is None:
            return False
        if complete:
            try:
                os.replace(staged, target)
                return True
            except OSError as err:
                log.warning("ftp upload could not be moved into place user=%s file=%s: %s", self.username, target, err)
        self._discard(staged)
        return False

    def _discard(self, staged: str) -> None:
        try:
            os.unlink(staged)
        except FileNotFoundError:
            pass
        except OSError as err:
            log.warning("ftp staging file not removed %s: %s", staged, err)

    def _drop_queued_upload(self) -> None:
        # A STOR whose data connection never came: pyftpdlib would keep its file open until the session ends.
        queued = self._in_dtp_queue
        if queued is not None:
            self._in_dtp_queue = None
            try:
                queued[0].close()
            except OSError:
                pass
            self._discard(queued[0].name)

    def on_file_received(self, file: str) -> None:
        target = self._uploads.pop(file, file)
        log.info("ftp upload complete user=%s file=%s", self.username, self._shown(target))

    def on_incomplete_file_received(self, file: str) -> None:
        target = self._uploads.pop(file, file)
        log.info("ftp upload discarded (not complete) user=%s file=%s", self.username, self._shown(target))

    def _shown(self, path: str) -> str:
        fs = self.fs
        return fs.fs2ftp(path) if fs is not None else os.path.basename(path)

    def log_transfer(self, cmd, filename, receive, completed, elapsed, bytes):
        super().log_transfer(cmd, self._uploads.get(filename, filename), receive, completed, elapsed, bytes)

    def close(self) -> None:
        super().close()
        # Whatever the session left in staging (a STOR never connected, a transfer cut by the close).
        for staged in list(self._uploads):
            if os.path.exists(staged):
                self._discard(staged)


def build_handler(app: Flask, staging_dir: str) -> type[FTPHandler]:
    """A handler class for one server: its own authorizer, limits, passive ports and optional TLS."""
    cert = config.get(app, "FTP_TLS_CERT")
    key = config.get(app, "FTP_TLS_KEY")
    require_tls = config.get(app, "FTP_REQUIRE_TLS")
    if require_tls and not cert:
        raise ValueError("RENKEI_FTP_REQUIRE_TLS needs RENKEI_FTP_TLS_CERT (and RENKEI_FTP_TLS_KEY)")
    if cert:
        from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler  # needs pyOpenSSL

        base, dtp_bases = TLS_FTPHandler, (TLS_DTPHandler, GuardedDTPHandler)
    else:
        base, dtp_bases = FTPHandler, (GuardedDTPHandler,)
    dtp = type("RenkeiDTPHandler", dtp_bases, {
        "max_bytes": config.get(app, "FTP_MAX_BYTES"),
    })
    proto_cmds = {name: spec for name, spec in base.proto_cmds.items() if name not in REMOVED_COMMANDS}
    public_host = config.get(app, "FTP_PUBLIC_HOST")
    attrs: dict[str, Any] = {
        "app": app,
        "staging_dir": staging_dir,
        "authorizer": DatabaseAuthorizer(app),
        "abstracted_fs": HomeFS,
        "dtp_handler": dtp,
        "proto_cmds": proto_cmds,
        "banner": "Renkei FTP ready.",
        "auth_failed_timeout": config.get(app, "LOGIN_FAIL_DELAY"),
        "max_login_attempts": 3,
        "passive_ports": parse_port_range(config.get(app, "FTP_PASSIVE_PORTS")),
        # PASV replies carry an IPv4 address, so a host name is resolved once here.
        "masquerade_address": socket.gethostbyname(public_host) if public_host else None,
        "permit_foreign_addresses": False,
        "use_sendfile": False,
    }
    if cert:
        attrs.update(certfile=cert, keyfile=key or None, ssl_context=None,
                     tls_control_required=require_tls, tls_data_required=require_tls)
    return type("RenkeiFTPHandler", (RenkeiHandlerMixin, base), attrs)


# ---------------------------------------------------------------------------------------
# Server and thread


class _Server(ThreadedFTPServer):
    """ThreadedFTPServer that refuses banned addresses before any session starts."""

    # pyftpdlib keeps the exit flag and lock on the class; give each server its own so
    # stopping one server never ends the sessions of another (tests, benchmark).
    poll_timeout = 0.5

    def __init__(self, address, handler, *, app: Flask, **kwargs):
        self._exit = threading.Event()
        self._lock = threading.Lock()
        self.app = app
        super().__init__(address, handler, **kwargs)

    def handle_accepted(self, sock: socket.socket, addr) -> None:
        # Refused here, on the raw socket: a handler closed before its session thread starts upsets pyftpdlib.
        if self._banned(addr[0]):
            log.info("ftp connection refused (banned) address=%s", addr[0])
            try:
                sock.setblocking(True)
                sock.settimeout(1.0)
                sock.sendall(b"421 Too many failed logins from your address; try again later.\r\n")
            except OSError:
                pass
            finally:
                sock.close()
            return None
        return super().handle_accepted(sock, addr)

    def _banned(self, address: str) -> bool:
        try:
            with self.app.app_context():
                return bans.is_banned(address)
        except Exception:
            log.exception("ftp ban check failed address=%s", address)
            return False


class RunningFtp:
    """The FTP server serving in a background thread; `.port` is the bound port, `.stop()` ends it."""

    def __init__(self, server: _Server, host: str):
        self.server = server
        self.host = host
        self.port: int = server.address[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="renkei-ftp", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self.server.serve_forever(timeout=0.2, blocking=False, handle_exit=False)
                except Exception:
                    # One bad event must not end the server for every account.
                    log.exception("ftp server loop error")
        finally:
            self.server.close_all()

    def start(self) -> RunningFtp:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, end every session (unfinished uploads are discarded) and wait for the thread."""
        self._stopping.set()
        self._thread.join(timeout)
        log.info("ftp stopped")


def start(app: Flask) -> RunningFtp:
    """Start the FTP server for `app` on HOST:FTP_PORT (0 = a free port) and return it running."""
    # pyftpdlib logs every session event at INFO; we log one line per login and per upload instead.
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    data_dir = Path(app.config["DATA_DIR"])
    staging = data_dir / STAGING_FOLDER
    # Nothing can be in progress before the server runs: leftovers are from a crash.
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True, mode=0o700)
    (data_dir / "ftp").mkdir(parents=True, exist_ok=True)
    handler = build_handler(app, str(staging))
    host = app.config.get("HOST") or "127.0.0.1"
    port = config.get(app, "FTP_PORT")
    server = _Server((host, port), handler, app=app, ioloop=IOLoop())
    server.max_cons = config.get(app, "FTP_MAX_CONS")
    server.max_cons_per_ip = config.get(app, "FTP_MAX_CONS_PER_IP")
    running = RunningFtp(server, host).start()
    log.info("ftp listening on %s:%s (max %d bytes, %d connections per address, passive %s, tls %s)",
             host, running.port, handler.dtp_handler.max_bytes, server.max_cons_per_ip,
             config.get(app, "FTP_PASSIVE_PORTS") or "any",
             "required" if getattr(handler, "tls_control_required", False) else
             ("on" if hasattr(handler, "certfile") else "off"))
    return running
