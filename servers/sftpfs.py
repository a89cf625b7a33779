"""One SFTP session of an account: its FTP home as "/", uploads that land only when closed normally.

Decisions (where docs/spec.md is silent):
- The home is the account's FTP home (same folder, processed/, error/); what the check reads,
  ignores and files is the check's business (services/ftpfiles.py), as for FTP.
- Completeness, as FTP's (servers/uploads.py): an upload is written to a staging file outside
  every home and moved into place, before the close is answered, only when the client closed
  its handle (SSH_FXP_CLOSE) while its channel still runs. asyncssh also "closes" every handle
  left open when the session ends (a cut connection, a killed client, the server stopping)
  and calls exit(); those closes come after the connection is gone (`is_closing()`) or the
  client's end of file on the channel, and are discarded. asyncssh has no public way to see
  the latter, so the channel's receive state is read (`_recv_state`, pinned by
  tests/servers/test_asyncssh_contract.py). A client that sends
  its CLOSE and the channel's EOF without waiting for the answer (no known client does)
  loses that upload: the safe side.
- Every opening for writing is a new whole file, as FTP's STOR: no download (read), no append,
  no resume into an existing file. The size cap is FTP_MAX_BYTES.
- Paths: relative paths start at the home; a path climbing above the home (`..` at the top)
  is refused, not clamped, as FTP's 550; every path is resolved with its symlinks and refused
  unless it stays inside the home. Creating links (symlink, hardlink) is refused.
- setstat/fsetstat (chmod, times: `put -p`, WinSCP) answer OK and change nothing, as FTP's
  SITE CHMOD: modes are meaningless here and mirroring tools stop when they are refused.
"""
from __future__ import annotations

import logging
import os

import asyncssh
from asyncssh import SFTPAttrs, SFTPFailure, SFTPNoSuchFile, SFTPPermissionDenied

from . import uploads

log = logging.getLogger("servers.sftp")


class Upload:
    """An open upload handle: its staging file, where it goes, and whether it already failed."""

    __slots__ = ("failed", "fd", "staged", "target")

    def __init__(self, staged: bytes, target: bytes, fd: int):
        self.staged = staged
        self.target = target
        self.fd = fd
        self.failed = False


class HomeSFTPServer(asyncssh.SFTPServer):
    """The home as "/": nothing outside it reachable; uploads staged until closed normally."""

    def __init__(self, chan, *, home: str, staging_dir: str, max_bytes: int, who: str):
        super().__init__(chan)  # no asyncssh chroot: map_path below refuses instead of clamping
        self._root = os.fsencode(os.path.realpath(home))
        self._staging = staging_dir
        self._max_bytes = max_bytes
        self._who = who
        self._open: set[Upload] = set()

    # -- paths -------------------------------------------------------------------------

    def map_path(self, path: bytes) -> bytes:
        """The local path inside the home; its folders are resolved, its last name not (lstat, rename, remove)."""
        if b"\0" in path:
            raise SFTPNoSuchFile("No such file")
        parts: list[bytes] = []
        for part in path.split(b"/"):
            if part in (b"", b"."):
                continue
            if part == b"..":
                if not parts:
                    raise SFTPPermissionDenied("Path outside the home folder")
                parts.pop()
            else:
                parts.append(part)
        local = os.path.join(self._root, *parts)
        if not self._inside(os.path.realpath(os.path.dirname(local) if parts else local)):
            raise SFTPPermissionDenied("Path outside the home folder")
        return local

    def _followed(self, path: bytes) -> bytes:
        """The local path of a request that follows a last-name symlink (stat, open, list): refused outside the home."""
        local = self.map_path(path)
        if not self._inside(os.path.realpath(local)):
            raise SFTPPermissionDenied("Path outside the home folder")
        return local

    def reverse_map_path(self, path: bytes) -> bytes:
        if path == self._root:
            return b"/"
        if path.startswith(self._root + b"/"):
            return path[len(self._root):]
        raise SFTPNoSuchFile("No such file")

    def _inside(self, real: bytes) -> bool:
        return real == self._root or real.startswith(self._root + b"/")

    def _shown(self, local: bytes) -> str:
        return os.fsdecode(self.reverse_map_path(local))

    # -- uploads -----------------------------------------------------------------------

    def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> Upload:
        if pflags & asyncssh.FXF_READ or not pflags & asyncssh.FXF_WRITE:
            raise SFTPPermissionDenied("Downloads are not offered on this server")
        if pflags & asyncssh.FXF_APPEND:
            raise SFTPPermissionDenied("Appending is not offered on this server")
        target = self._followed(path)
        if os.path.isdir(target):
            raise SFTPFailure("Is a directory")
        if not os.path.isdir(os.path.dirname(target)):
            raise SFTPNoSuchFile("No such directory")
        if pflags & asyncssh.FXF_EXCL and os.path.lexists(target):
            raise asyncssh.SFTPFileAlreadyExists("File already exists")
        staged = os.fsencode(uploads.new_staged_path(self._staging))
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        upload = Upload(staged, target, fd)
        self._open.add(upload)
        return upload

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        upload = self._upload(file_obj)
        if upload.failed:
            raise SFTPFailure("Upload already failed; it will be discarded")
        if self._max_bytes and offset + len(data) > self._max_bytes:
            upload.failed = True
            raise SFTPFailure(f"File exceeds the size limit of {self._max_bytes} bytes; upload discarded")
        try:
            view = memoryview(data)
            while view:
                written = os.pwrite(upload.fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as err:
            upload.failed = True
            log.warning("sftp upload write failed user=%s file=%s: %s", self._who, self._shown(upload.target), err)
            raise SFTPFailure("The file could not be stored; upload discarded") from None
        return len(data)

    def close(self, file_obj: object) -> None:
        if not isinstance(file_obj, Upload):
            return
        self._open.discard(file_obj)
        complete = not file_obj.failed and self._channel_open()
        try:
            os.close(file_obj.fd)
        except OSError:
            complete = False
        shown = self._shown(file_obj.target)
        if uploads.settle(os.fsdecode(file_obj.staged), os.fsdecode(file_obj.target), complete, self._who):
            log.info("sftp upload complete user=%s file=%s", self._who, shown)
        else:
            log.info("sftp upload discarded (not complete) user=%s file=%s", self._who, shown)
            if not file_obj.failed and complete:
                raise SFTPFailure("The file could not be stored; upload discarded")

    def _channel_open(self) -> bool:
        """True while both sides of the channel are open: a close then is the client's own."""
        return not self.channel.is_closing() and getattr(self.channel, "_recv_state", None) == "open"

    def exit(self) -> None:
        for upload in list(self._open):
            self.close(upload)
        # An exit status, as sshd sends when its sftp-server ends: OpenSSH's scp fails without one.
        self.channel.exit(0)

    @staticmethod
    def _upload(file_obj: object) -> Upload:
        if not isinstance(file_obj, Upload):
            raise SFTPFailure("Not an upload handle")
        return file_obj

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        raise SFTPPermissionDenied("Downloads are not offered on this server")

    def fstat(self, file_obj: object) -> os.stat_result:
        return os.fstat(self._upload(file_obj).fd)

    def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        self._upload(file_obj)

    def fstatvfs(self, file_obj: object):
        return os.fstatvfs(self._upload(file_obj).fd)

    def fsync(self, file_obj: object) -> None:
        os.fsync(self._upload(file_obj).fd)

    # -- the rest of the home ----------------------------------------------------------

    def stat(self, path: bytes) -> os.stat_result:
        return os.stat(self._followed(path))

    def statvfs(self, path: bytes):
        return os.statvfs(self._followed(path))

    def realpath(self, path: bytes) -> bytes:
        return self.reverse_map_path(os.path.realpath(self._followed(path)))

    async def scandir(self, path: bytes):
        local = self._followed(path)
        here = SFTPAttrs.from_local(os.stat(local))
        # ".." of the top is shown as the top itself: what is above the home is nobody's business.
        parent = os.path.dirname(local) if local != self._root else local
        yield asyncssh.SFTPName(b".", attrs=here)
        yield asyncssh.SFTPName(b"..", attrs=SFTPAttrs.from_local(os.stat(parent)))
        with os.scandir(local) as entries:
            for entry in entries:
                yield asyncssh.SFTPName(os.fsencode(entry.name), attrs=SFTPAttrs.from_local(entry.stat(follow_symlinks=False)))

    def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        if not os.path.lexists(self.map_path(path)):
            raise SFTPNoSuchFile("No such file or directory")

    lsetstat = setstat

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise SFTPPermissionDenied("Links are not offered on this server")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise SFTPPermissionDenied("Links are not offered on this server")
