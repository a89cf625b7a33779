"""One FTP session of an account: its home as "/", uploads that land only when complete, SITE CHMOD.

Decisions (where docs/spec.md is silent):
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
- `CWD ..` at the top, or any path that climbs above the home, is refused with 550 (not
  silently clamped to the top), so a misconfigured client sees the problem at once.
- Times: LIST shows them in TIMEZONE (like the check's renamed files), whatever the
  process's TZ; LIST times carry no zone and clients show them as they are. MLSD, MLST and
  MDTM stay in UTC (pyftpdlib's use_gmt_times, kept on): RFC 3659 defines them as UTC and
  clients (FileZilla, WinSCP, lftp) convert them to their own zone, so a zone time there
  would be shown shifted.
"""
from __future__ import annotations

import errno
import logging
import os
import posixpath
import socket
from datetime import datetime

from flask import Flask
from pyftpdlib.exceptions import _RetryError
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import DTPHandler, FTPHandler
from pyftpdlib.ioloop import _ERRNOS_DISCONNECTED, _ERRNOS_RETRY
from pyftpdlib.log import logger as ftp_logger

from app import config

from . import uploads

log = logging.getLogger("servers.ftp")  # the log lines keep the logger name they had before the split

DEFAULT_MAX_BYTES = 100 * 1024 * 1024


# ---------------------------------------------------------------------------------------
# File system view of one home


class _ZoneStat:
    """A stat result whose st_mtime is shifted so that UTC formatting shows the wall time of a zone."""

    def __init__(self, st: os.stat_result, zone):
        self._st = st
        offset = datetime.fromtimestamp(st.st_mtime, zone).utcoffset()
        self.st_mtime = st.st_mtime + (offset.total_seconds() if offset else 0)

    def __getattr__(self, name: str):
        return getattr(self._st, name)


class HomeFS(AbstractedFS):
    """The home as "/": a path climbing above it is refused, and the process cwd is never changed."""

    _list_zone = None  # set only while format_list produces a line (see lstat)

    def format_list(self, basedir: str, listing, ignore_err: bool = True):
        # pyftpdlib formats LIST times with time.gmtime (use_gmt_times); each line's lstat gives
        # an mtime shifted by TIMEZONE's offset, so the line shows TIMEZONE's wall time.
        # The zone is set around each step only: the generator is consumed between other commands.
        lines = super().format_list(basedir, listing, ignore_err)
        zone = config.timezone(self.cmd_channel.app)
        while True:
            self._list_zone = zone
            try:
                line = next(lines)
            except StopIteration:
                return
            finally:
                self._list_zone = None
            yield line

    def lstat(self, path: str):
        st = super().lstat(path)
        return st if self._list_zone is None else _ZoneStat(st, self._list_zone)

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
    login_timeout: float = 0.0  # seconds from connect to a good login, then 421 (0 = only the idle timeout)
    _login_deadline = None

    def handle(self) -> None:
        """Greet, and give the client `login_timeout` seconds to log in, however busy it keeps itself."""
        super().handle()
        if self.login_timeout > 0 and not self._closed and not self._closing:
            self._login_deadline = self.ioloop.call_later(self.login_timeout, self._login_timed_out,
                                                          _errback=self.handle_error)

    def _login_timed_out(self) -> None:
        self._login_deadline = None
        if not self.authenticated and not self._closed and not self._closing:
            log.info("ftp session closed reason=no-login-in-time address=%s", self.remote_ip)
            self.respond("421 Login timed out.")
            self.close_when_done()

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
        staged = uploads.new_staged_path(self.staging_dir)
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
        return uploads.settle(staged, target, complete, self.username)

    def _discard(self, staged: str) -> None:
        uploads.discard(staged)

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
        if self._login_deadline is not None:
            if not self._login_deadline.cancelled:
                self._login_deadline.cancel()
            self._login_deadline = None
        super().close()
        # Whatever the session left in staging (a STOR never connected, a transfer cut by the close).
        for staged in list(self._uploads):
            if os.path.exists(staged):
                self._discard(staged)

