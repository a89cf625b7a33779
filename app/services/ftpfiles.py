"""The files of an FTP home: which are ready to read, reading one exactly once, filing it away.

services/ftpcheck.py decides what a check does with them; this module only knows the folder.

- Candidates: regular files (not symlinks) directly in the home whose name ends with an accepted ending (`.csv`, `.xlsx`, `.xlsm`, `.xls`, `.ods`: filename.ACCEPTED_ENDINGS)
  (any case), does not start with "." and whose size and mtime have not changed for
  FTP_QUIET_SECONDS (default 10 s). Names ending in .tmp, .part or .filepart are never read
  (clients upload under such a name and rename when done); the scan reports them, so the
  check's result can say it is waiting for the rename.
- An mtime ahead of the check's clock says nothing about how long the file has been quiet, so it
  counts as "changed since the last look": what a check saw of such a file is kept in
  `{DATA_DIR}/ftp-seen/<ID>.json`, and a later check that finds it unchanged at least
  FTP_QUIET_SECONDS after that first look reads it.
- A file is read through one descriptor, and moved only if the name still holds that file
  (device, inode, size, mtime) right before the rename, checked again after it; otherwise a
  copy of the bytes read is written instead (`file_away`).
"""
from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import re
import stat
from contextlib import suppress
from pathlib import Path

from flask import current_app

from .. import config
from ..errors import Invalid
from ..importer.filename import is_received

log = logging.getLogger(__name__)

PROCESSED = "processed"
ERROR = "error"
SEEN_FOLDER = "ftp-seen"
IGNORED_SUFFIXES = (".tmp", ".part", ".filepart")
# Why a candidate waits (services/ftpreport.py words them): uploaded less than the quiet period ago,
# dated ahead of the check's clock, changed while read, re-uploaded during the check, an error.
QUIET = "quiet"
FUTURE = "future"
CHANGING = "changing"
REPLACED = "replaced"
FAILED = "failed"
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def ftp_root() -> Path:
    """The folder that holds every account's FTP home."""
    return Path(current_app.config["DATA_DIR"]) / "ftp"


def home_path(username: str, create: bool = False) -> Path:
    """The FTP home of a login name (created with processed/ and error/ when asked)."""
    if not username or not _USERNAME.match(username) or ".." in username:
        raise Invalid(f"FTPサーバー ID「{username}」はフォルダ名に使えません。")
    home = ftp_root() / username
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home


def is_candidate_name(name: str) -> bool:
    """True for names a check may read: an accepted file or an archive of them (filename.is_received), not hidden,
    not a temporary upload name."""
    lower = name.lower()
    return is_received(name) and not name.startswith(".") and not lower.endswith(IGNORED_SUFFIXES)


def quiet_seconds() -> float:
    """How long a file's size and mtime must stay unchanged before it is read."""
    return config.get(current_app, "FTP_QUIET_SECONDS")


# (st_dev, st_ino, st_size, st_mtime_ns): what tells one file from its replacement.
FileId = tuple[int, int, int, int]
# name -> [size, mtime_ns, inode, first seen at (check clock, epoch seconds)] of files whose mtime is ahead.
Seen = dict[str, list]


def file_id(info: os.stat_result) -> FileId:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def temporary_suffix(name: str) -> str | None:
    """The ending (.tmp, .part, .filepart) of a name an upload is still using, else None."""
    lower = name.lower()
    return next((suffix for suffix in IGNORED_SUFFIXES if lower.endswith(suffix)), None)


def scan_home(home: Path, now_ts: float, quiet: float,
              seen: Seen | None = None) -> tuple[list[Path], list[tuple[str, str]], list[str]]:
    """Split the home's files into (ready in name order, (name, why) still settling, temporary upload names).

    `seen` holds what earlier checks saw of files whose mtime is ahead of `now_ts`; it is
    updated in place to what this scan saw (the caller keeps it until the next check).
    """
    ready: list[Path] = []
    waiting: list[tuple[str, str]] = []
    temporary: list[str] = []
    previous = dict(seen or {})
    if seen is not None:
        seen.clear()
    try:
        entries = sorted(os.scandir(home), key=lambda e: e.name)
    except FileNotFoundError:
        return [], [], []
    for entry in entries:
        if not is_candidate_name(entry.name):
            if not entry.name.startswith(".") and temporary_suffix(entry.name) and entry.is_file(follow_symlinks=False):
                temporary.append(entry.name)
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if info.st_mtime > now_ts:
            # From the future: quiet only once a look at least `quiet` seconds ago saw the same file.
            looked = [info.st_size, info.st_mtime_ns, info.st_ino]
            before = previous.get(entry.name)
            unchanged = before is not None and before[:3] == looked and before[3] <= now_ts
            first_look = before[3] if unchanged else now_ts
            if seen is not None:
                seen[entry.name] = [*looked, first_look]  # kept while ready too, should the import be retried
            if unchanged and now_ts - first_look >= quiet:
                ready.append(Path(entry.path))
            else:
                waiting.append((entry.name, FUTURE))
            continue
        if now_ts - info.st_mtime < quiet:
            waiting.append((entry.name, QUIET))
            continue
        ready.append(Path(entry.path))
    return ready, waiting, temporary


def _state_file(folder: str, username: str) -> Path:
    return Path(current_app.config["DATA_DIR"]) / folder / f"{username}.json"


def load_state(folder: str, username: str) -> dict:
    """What an earlier check kept for this home under `{DATA_DIR}/<folder>/` ({} when nothing or unreadable)."""
    try:
        value = json.loads(_state_file(folder, username).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def save_state(folder: str, username: str, value: dict) -> None:
    """Keep `value` for the next check (the file is removed when there is nothing to remember)."""
    path = _state_file(folder, username)
    try:
        if not value:
            with suppress(FileNotFoundError):
                path.unlink()
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(value), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as err:
        # What it keeps only saves work or waiting (see its callers); the check goes on.
        log.warning("ftp check state not saved %s: %s", path, err)


def load_seen(username: str) -> Seen:
    """What the previous check saw of files from the future."""
    return {name: entry for name, entry in load_state(SEEN_FOLDER, username).items()
            if isinstance(entry, list) and len(entry) == 4 and all(isinstance(v, (int, float)) for v in entry)}


def save_seen(username: str, seen: Seen) -> None:
    """Keep `seen` for the next check (only files dated in the future depend on it: they wait longer)."""
    save_state(SEEN_FOLDER, username, seen)


def open_regular(path: Path):
    """The file opened for reading without following a symlink or blocking on a FIFO swapped in since the scan."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def read_if_stable(f) -> tuple[bytes, FileId] | None:
    """The open file's bytes and identity, or None if it changed while being read (someone is still writing it)."""
    before = os.fstat(f.fileno())
    chunks = []
    while chunk := f.read(1024 * 1024):
        chunks.append(chunk)
    data = b"".join(chunks)
    after = os.fstat(f.fileno())
    if file_id(before) != file_id(after) or len(data) != after.st_size:
        return None
    return data, file_id(after)


def current_id(path: Path) -> FileId | None:
    """The identity of the file the name holds now (None when there is none)."""
    try:
        return file_id(os.lstat(path))
    except FileNotFoundError:
        return None


def free_target(folder: Path, name: str, when: dt.datetime) -> Path:
    """`folder/<stem>_<check time><suffix>`, with "-2", "-3"… when that name is taken."""
    stamp = when.strftime("%Y%m%d-%H%M%S")
    stem, suffix = os.path.splitext(name)
    target = folder / f"{stem}_{stamp}{suffix}"
    n = 2
    while target.exists():
        target = folder / f"{stem}_{stamp}-{n}{suffix}"
        n += 1
    return target


def file_away(path: Path, read: FileId, data: bytes, folder: Path, when: dt.datetime) -> tuple[Path, bool]:
    """Move the file that was read into `folder`: (its new path, True).

    When the name holds another file by now (re-uploaded during the check), that one stays
    for the next check and a copy of the bytes read is written into `folder`: (the copy, False).
    """
    folder.mkdir(exist_ok=True)
    target = free_target(folder, path.name, when)
    if current_id(path) == read:
        # POSIX cannot rename by descriptor, so the name is compared right before the rename.
        # An upload landing inside that window (microseconds: uploads reach the home by one
        # rename when they are complete) is caught after it: the rename then moved the
        # newcomer, which is given its name back. The inode read cannot be reused by a new
        # file meanwhile (the comparison would be fooled): it is still open.
        os.replace(path, target)
        if current_id(target) == read:
            return target, True
        with suppress(FileExistsError):  # an even newer upload holds the name: it supersedes this one
            os.link(target, path)
            os.unlink(target)
    return write_copy(folder, path.name, data, when), False


def write_copy(folder: Path, name: str, data: bytes, when: dt.datetime) -> Path:
    """Write `data` into `folder` under the name file_away would give (for a file no longer in the home)."""
    folder.mkdir(exist_ok=True)
    target = free_target(folder, name, when)
    with open(target, "xb") as copy:
        copy.write(data)
    return target
