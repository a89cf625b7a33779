"""The built-in FTP server (FTP連動): a pyftpdlib handler class built per server, the server thread, start(app).

Each account logs in with its issued FTP ID/PW and sees only its home folder
`{DATA_DIR}/ftp/<ftp_username>/`. The server only receives files; the scheduled check
(`app.services.ftpcheck`) imports them later.

Where the parts live: `ftpauth.py` (logins: the authorizer), `ftpsession.py` (the home as "/",
the data channel that tells a finished upload from a cut-off one, the control channel's STOR
and SITE CHMOD). This module builds a handler class per server and runs the server.

Decisions (where docs/spec.md is silent):
- Permissions are "elmwdf": change folder, list, make folder, upload, delete, rename.
  No download (RETR), no append (APPE); MFMT (set mtime), STOU (server-named upload) and
  REST (resume) are not offered at all, so clients do not try them. curl -T and lftp
  `put` need none of them.
- Floods: at most FTP_MAX_CONS_PER_IP sessions per address and FTP_MAX_CONS in all (421
  beyond), and a session not logged in FTP_LOGIN_TIMEOUT seconds after connecting gets `421`
  and is closed, however busy it keeps itself: idle sessions from many addresses fill the
  global cap for that long only, so a client retrying after its 421 gets in.
- Replies are pyftpdlib's standard English FTP texts: FTP clients show them verbatim and
  not every client decodes UTF-8 replies.

Settings (app.config key, else the RENKEI_<key> environment variable): FTP_PORT,
HOST, FTP_MAX_BYTES (100 MiB), FTP_MAX_CONS_PER_IP (10), FTP_MAX_CONS (256), FTP_LOGIN_TIMEOUT (30 s),
FTP_PASSIVE_PORTS (e.g. "60000-60100"; default: any port the OS picks), FTP_PUBLIC_HOST (address given in PASV replies),
FTP_TLS_CERT / FTP_TLS_KEY (explicit FTPS, AUTH TLS), FTP_REQUIRE_TLS (require TLS on
control and data channels), LOGIN_FAIL_DELAY.
"""
from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from flask import Flask
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import ThreadedFTPServer

from app import config
from app.services import bans

from . import uploads
from .ftpauth import DatabaseAuthorizer
from .ftpsession import GuardedDTPHandler, HomeFS, RenkeiHandlerMixin

log = logging.getLogger(__name__)

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
        "login_timeout": config.get(app, "FTP_LOGIN_TIMEOUT"),
        "passive_ports": parse_port_range(config.get(app, "FTP_PASSIVE_PORTS")),
        # PASV replies carry an IPv4 address, so a host name is resolved once here.
        "masquerade_address": socket.gethostbyname(public_host) if public_host else None,
        "permit_foreign_addresses": False,
        "use_sendfile": False,
        # MLSD/MLST/MDTM in UTC as RFC 3659 says; LIST shows TIMEZONE (HomeFS.format_list).
        "use_gmt_times": True,
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

    def alive(self) -> bool:
        """Whether the server thread still serves and stop() was not asked (GET /healthz)."""
        return self._thread.is_alive() and not self._stopping.is_set()

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
    staging = uploads.prepare_staging(app.config["DATA_DIR"], STAGING_FOLDER)
    handler = build_handler(app, staging)
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
