"""FTP連動 checks: import every complete CSV in an account's FTP home, then file it under processed/ or error/.

Called by the scheduler at the account's check times, by the 今すぐチェック button and by
`flask integration check-now SLUG`.

Decisions (where docs/spec.md is silent):
- Candidates: regular files (not symlinks) directly in the home whose name ends with
  `.csv` (any case), does not start with "." and whose size and mtime have not changed
  for FTP_QUIET_SECONDS (default 10 s). Names ending in .tmp, .part or .filepart are
  never read. Anything else stays where it is.
- An mtime ahead of the check's clock (a client that set it, clock skew, the server's
  clock stepped back) says nothing about how long the file has been quiet, so it counts
  as "changed since the last look", never as "not ready": the check remembers (size,
  mtime, inode) of such a file in `{DATA_DIR}/ftp-seen/<ID>.json`, and a later check that
  finds it unchanged at least FTP_QUIET_SECONDS after that first look reads it.
- Files are imported one by one in name order through `ingest.import_now` (channel
  "ftp", sender "ftp:<ID>"), then moved to `processed/` (success) or `error/` (failure)
  as `<name>_<yyyymmdd-HHMMSS>.csv` (check time, server time zone); a clash gets "-2", "-3"….
- A check moves exactly the file it read: the file is read through one descriptor, and
  it is moved only if the name still holds that file (device, inode, size, mtime) right
  before the rename, checked again after it. A file re-uploaded under the same name
  during the check stays in the home for the next check; the import of the bytes read
  stands (they were a complete file) and a copy of them goes to processed/ or error/.
- An unexpected error (e.g. the database is down) leaves the file where it is, so the
  next check tries again.
- A check refuses to run (Invalid, with the admission's Japanese text: `services.admission`,
  channel ftp) unless the account is admitted: integration disabled, mode not FTP, or
  status 連動稼働停止 (HOLD): files then stay untouched. The scheduler's due list uses the
  same admission.
- At most one check per account at a time, across threads and processes (a lock file
  under `{DATA_DIR}/ftp-locks/`): a check that finds the lock held returns at once with
  `busy=True` and leaves everything to the running one.
"""
from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import logging
import os
import re
import stat
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from flask import current_app

from .. import config
from ..enums import ImportStatus
from ..errors import Invalid, NotFound, RenkeiError
from ..extensions import db
from ..models import Account, Import, IntegrationSettings, utcnow
from . import checktimes, ingest
from .admission import Channel, admit

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

log = logging.getLogger(__name__)

PROCESSED = "processed"
ERROR = "error"
SEEN_FOLDER = "ftp-seen"
IGNORED_SUFFIXES = (".tmp", ".part", ".filepart")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class CheckedFile:
    """One file a check handled: its name, the import it became and where it was moved."""

    name: str
    import_id: int | None
    succeeded: bool
    moved_to: str


@dataclass
class CheckResult:
    """What one check did: the files imported (in order) and those left for a later check."""

    account_id: int
    files: list[CheckedFile] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    busy: bool = False

    @property
    def succeeded(self) -> int:
        return sum(1 for f in self.files if f.succeeded)

    @property
    def failed(self) -> int:
        return sum(1 for f in self.files if not f.succeeded)

    @property
    def message(self) -> str:
        """A one-line Japanese summary for the button's flash and the CLI."""
        if self.busy:
            return "前回のチェックがまだ実行中です。終わってから自動で続きます。"
        if not self.files:
            text = "取り込むファイルはありませんでした。"
        else:
            text = f"{len(self.files)}件のファイルを取り込みました(成功 {self.succeeded}件、エラー {self.failed}件)。"
        if self.waiting:
            text += f" アップロード中などで {len(self.waiting)}件は次回のチェックに回しました。"
        return text


# ---------------------------------------------------------------------------------------
# Homes


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
    """True for names a check may read: `*.csv`, not hidden, not a temporary upload name."""
    lower = name.lower()
    return lower.endswith(".csv") and not name.startswith(".") and not lower.endswith(IGNORED_SUFFIXES)


def quiet_seconds() -> float:
    """How long a file's size and mtime must stay unchanged before it is read."""
    return config.get(current_app, "FTP_QUIET_SECONDS")


# (st_dev, st_ino, st_size, st_mtime_ns): what tells one file from its replacement.
FileId = tuple[int, int, int, int]
# name -> [size, mtime_ns, inode, first seen at (check clock, epoch seconds)] of files whose mtime is ahead.
Seen = dict[str, list]


def file_id(info: os.stat_result) -> FileId:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def scan_home(home: Path, now_ts: float, quiet: float, seen: Seen | None = None) -> tuple[list[Path], list[str]]:
    """Split the home's candidate files into (ready in name order, names still settling).

    `seen` holds what earlier checks saw of files whose mtime is ahead of `now_ts`; it is
    updated in place to what this scan saw (the caller keeps it until the next check).
    """
    ready: list[Path] = []
    waiting: list[str] = []
    previous = dict(seen or {})
    if seen is not None:
        seen.clear()
    try:
        entries = sorted(os.scandir(home), key=lambda e: e.name)
    except FileNotFoundError:
        return [], []
    for entry in entries:
        if not is_candidate_name(entry.name):
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
                waiting.append(entry.name)
            continue
        if now_ts - info.st_mtime < quiet:
            waiting.append(entry.name)
            continue
        ready.append(Path(entry.path))
    return ready, waiting


def _seen_file(username: str) -> Path:
    return Path(current_app.config["DATA_DIR"]) / SEEN_FOLDER / f"{username}.json"


def _load_seen(username: str) -> Seen:
    """What the previous check saw of files from the future ({} when nothing, or the file is unreadable)."""
    try:
        value = json.loads(_seen_file(username).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(value, dict):
        return {}
    return {name: entry for name, entry in value.items()
            if isinstance(entry, list) and len(entry) == 4 and all(isinstance(v, (int, float)) for v in entry)}


def _save_seen(username: str, seen: Seen) -> None:
    """Keep `seen` for the next check (the file is removed when there is nothing to remember)."""
    path = _seen_file(username)
    try:
        if not seen:
            with suppress(FileNotFoundError):
                path.unlink()
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(seen), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as err:
        # Only files dated in the future depend on it (they wait longer); the check goes on.
        log.warning("ftp check state not saved %s: %s", path, err)


def _open_regular(path: Path):
    """The file opened for reading without following a symlink or blocking on a FIFO swapped in since the scan."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def _read_if_stable(f) -> tuple[bytes, FileId] | None:
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


def _current_id(path: Path) -> FileId | None:
    try:
        return file_id(os.lstat(path))
    except FileNotFoundError:
        return None


def _stored_after_upload(account_id: int, path: Path, data: bytes, mtime_ns: int) -> Import | None:
    """The latest import of this name if it holds exactly these bytes and was stored after the file was written.

    Only a check that died between storing the file and moving it leaves one (kill -9, power
    cut): the stored import is finished by the worker, so importing the file again would
    count it twice. A later upload of the same bytes has a newer mtime and is imported again.
    """
    written = dt.datetime.fromtimestamp(mtime_ns / 1e9, dt.timezone.utc).replace(tzinfo=None)
    latest = db.session.scalar(
        db.select(Import).where(Import.account_id == account_id, Import.filename == path.name)
        .order_by(Import.id.desc()).limit(1)
    )
    if (latest is not None and latest.channel == Channel.FTP and latest.received_at >= written
            and latest.sha256 == hashlib.sha256(data).hexdigest()):
        return latest
    return None


def _free_target(folder: Path, name: str, when: dt.datetime) -> Path:
    """`folder/<stem>_<check time><suffix>`, with "-2", "-3"… when that name is taken."""
    stamp = when.strftime("%Y%m%d-%H%M%S")
    stem, suffix = os.path.splitext(name)
    target = folder / f"{stem}_{stamp}{suffix}"
    n = 2
    while target.exists():
        target = folder / f"{stem}_{stamp}-{n}{suffix}"
        n += 1
    return target


def _file_away(path: Path, read: FileId, data: bytes, folder: Path, when: dt.datetime) -> tuple[Path, bool]:
    """Move the file that was read into `folder`: (its new path, True).

    When the name holds another file by now (re-uploaded during the check), that one stays
    for the next check and a copy of the bytes read is written into `folder`: (the copy, False).
    """
    folder.mkdir(exist_ok=True)
    target = _free_target(folder, path.name, when)
    if _current_id(path) == read:
        # POSIX cannot rename by descriptor, so the name is compared right before the rename.
        # An upload landing inside that window (microseconds: uploads reach the home by one
        # rename when they are complete) is caught after it: the rename then moved the
        # newcomer, which is given its name back. The inode read cannot be reused by a new
        # file meanwhile (the comparison would be fooled): it is still open.
        os.replace(path, target)
        if _current_id(target) == read:
            return target, True
        with suppress(FileExistsError):  # an even newer upload holds the name: it supersedes this one
            os.link(target, path)
            os.unlink(target)
        target = _free_target(folder, path.name, when)
    with open(target, "xb") as copy:
        copy.write(data)
    return target, False


@contextmanager
def _account_lock(account_id: int) -> Iterator[bool]:
    """Hold the account's check lock if it is free; yields False (without waiting) when it is held."""
    folder = Path(current_app.config["DATA_DIR"]) / "ftp-locks"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{account_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            try:
                # flock locks belong to the open file, so two threads of one process exclude each other too.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        yield True
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------
# The check


def accounts_due(minute: dt.datetime) -> list[int]:
    """Ids of the accounts (integration enabled, mode FTP, status active) whose check time is `minute` (aware)."""
    tz = config.timezone(current_app)
    rows = db.session.execute(
        db.select(Account, IntegrationSettings)
        .join(Account, Account.id == IntegrationSettings.account_id)
        .order_by(IntegrationSettings.account_id)
    )
    due: list[int] = []
    for account, settings in rows:
        if not admit(account, Channel.FTP, settings=settings).accepted:
            continue
        try:
            if checktimes.is_check_time(settings, minute, tz):
                due.append(settings.account_id)
        except ValueError as err:
            # A schedule edited by hand into something invalid: skip that account, not everyone.
            log.warning("ftp schedule of account #%s is invalid: %s", settings.account_id, err)
    return due


def _settings_for_check(account_id: int) -> tuple[Account, IntegrationSettings]:
    account = db.session.get(Account, account_id)
    if account is None:
        raise NotFound("アカウントが見つかりません。")
    settings = db.session.scalar(db.select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))
    admission = admit(account, Channel.FTP, settings=settings)
    if not admission.accepted:
        # Disabled, another mode, or stopped (HOLD): the files stay in the home untouched.
        raise Invalid(admission.text)
    if not settings.ftp_username:
        raise Invalid("FTPサーバー IDが発行されていません。")
    return account, settings


def _import_one(account: Account, username: str, path: Path, data: bytes, mtime_ns: int,
                result: CheckResult) -> tuple[int | None, bool] | None:
    """Import one file's bytes: (import id, succeeded), or None when it is left for a later check."""
    earlier = _stored_after_upload(account.id, path, data, mtime_ns)
    if earlier is not None:
        if earlier.status in (Import.QUEUED, Import.RUNNING):
            # Left by a check that died mid-import: the worker finishes it, a later check files it.
            result.waiting.append(path.name)
            return None
        return earlier.id, earlier.status == Import.SUCCEEDED
    try:
        imp = ingest.import_now(account.id, path.name, data, channel=Channel.FTP, sender=f"ftp:{username}")
        return imp.id, imp.status == Import.SUCCEEDED
    except RenkeiError as err:
        log.warning("ftp import rejected account=%s file=%s: %s", account.slug, path.name, err)
        return None, False
    except Exception:
        db.session.rollback()
        log.exception("ftp import error account=%s file=%s (left for the next check)", account.slug, path.name)
        result.waiting.append(path.name)
        return None


def check_account(account_id: int, now: dt.datetime | None = None) -> CheckResult:
    """Import every complete CSV in the account's FTP home in name order and file each under processed/ or error/."""
    account, settings = _settings_for_check(account_id)
    tz = config.timezone(current_app)
    now = (now or dt.datetime.now(tz)).astimezone(tz)
    username = settings.ftp_username
    result = CheckResult(account_id=account_id)
    with _account_lock(account_id) as acquired:
        if not acquired:
            log.info("ftp check skipped account=%s: another check is running", account.slug)
            result.busy = True
            return result
        home = home_path(username, create=True)
        seen = _load_seen(username)
        ready, result.waiting = scan_home(home, now.timestamp(), quiet_seconds(), seen)
        _save_seen(username, seen)
        for path in ready:
            try:
                opened = _open_regular(path)
            except (FileNotFoundError, IsADirectoryError):
                continue  # deleted or renamed by the uploader meanwhile
            except OSError as err:
                if err.errno != errno.ELOOP:
                    raise
                continue  # replaced by a symlink meanwhile
            # Open until the file is filed away, so its inode number cannot be reused meanwhile.
            with opened:
                read_now = _read_if_stable(opened)
                if read_now is None:
                    result.waiting.append(path.name)
                    continue
                data, read = read_now
                handled = _import_one(account, username, path, data, read[3], result)
                if handled is None:
                    continue
                import_id, ok = handled
                moved, same = _file_away(path, read, data, home / (PROCESSED if ok else ERROR), now)
            result.files.append(CheckedFile(path.name, import_id, ok, f"{moved.parent.name}/{moved.name}"))
            log.info("ftp check account=%s channel=ftp file=%s import=#%s %s -> %s", account.slug, path.name,
                     import_id, ImportStatus.SUCCEEDED if ok else ImportStatus.FAILED, result.files[-1].moved_to)
            if not same:
                log.info("ftp check account=%s file=%s was replaced or removed during the check: a new file is "
                         "left for the next check, a copy of the imported bytes is %s", account.slug, path.name,
                         result.files[-1].moved_to)
                if os.path.lexists(path):
                    result.waiting.append(path.name)
        filed = {f.name for f in result.files} - set(result.waiting)
        if filed & seen.keys():
            _save_seen(username, {name: entry for name, entry in seen.items() if name not in filed})
        settings = db.session.get(IntegrationSettings, settings.id)
        settings.last_ftp_check_at = utcnow()
        db.session.commit()
    if result.files or result.waiting:
        log.info("ftp check done account=%s imported=%d failed=%d waiting=%d", account.slug,
                 result.succeeded, result.failed, len(result.waiting))
    return result
