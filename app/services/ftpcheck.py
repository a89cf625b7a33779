"""FTP連動 checks: import every complete CSV in an account's FTP home, then file it under processed/ or error/.

Called by the scheduler at the account's check times, by the 今すぐチェック button and by
`flask integration check-now SLUG`.

Decisions (where SPEC is silent):
- Candidates: regular files (not symlinks) directly in the home whose name ends with
  `.csv` (any case), does not start with "." and whose size and mtime have not changed
  for FTP_QUIET_SECONDS (default 10 s). Names ending in .tmp, .part or .filepart are
  never read. Anything else stays where it is.
- Files are imported one by one in name order through `ingest.import_now` (channel
  "ftp", sender "ftp:<ID>"), then moved to `processed/` (success) or `error/` (failure)
  as `<name>_<yyyymmdd-HHMMSS>.csv` (check time, server time zone); a clash gets "-2", "-3"….
- An unexpected error (e.g. the database is down) leaves the file where it is, so the
  next check tries again.
- A check refuses to run (Invalid, with the reason in Japanese) when the integration is
  disabled, the mode is not FTP or the status is 連動稼働停止: files then stay untouched.
- At most one check per account at a time, across threads and processes (a lock file
  under `{DATA_DIR}/ftp-locks/`): a check that finds the lock held returns at once with
  `busy=True` and leaves everything to the running one.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import stat
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

from flask import current_app

from ..errors import Invalid, NotFound, RenkeiError
from ..extensions import db
from ..models import Account, Import, IntegrationSettings, utcnow
from . import checktimes, ingest

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

log = logging.getLogger(__name__)

PROCESSED = "processed"
ERROR = "error"
IGNORED_SUFFIXES = (".tmp", ".part", ".filepart")
DEFAULT_QUIET_SECONDS = 10.0
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
    value = current_app.config.get("FTP_QUIET_SECONDS")
    if value is None or value == "":
        value = os.environ.get("RENKEI_FTP_QUIET_SECONDS", DEFAULT_QUIET_SECONDS)
    return float(value)


def scan_home(home: Path, now_ts: float, quiet: float) -> tuple[list[Path], list[str]]:
    """Split the home's candidate files into (ready in name order, names still settling)."""
    ready: list[Path] = []
    waiting: list[str] = []
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
        if now_ts - info.st_mtime < quiet:
            waiting.append(entry.name)
            continue
        ready.append(Path(entry.path))
    return ready, waiting


def _read_if_stable(path: Path) -> bytes | None:
    """The file's bytes, or None if it changed while being read (someone is still writing it)."""
    before = os.lstat(path)
    with open(path, "rb") as f:
        data = f.read()
    after = os.lstat(path)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or len(data) != after.st_size:
        return None
    return data


def _stored_after_upload(account_id: int, path: Path, data: bytes) -> Import | None:
    """The latest import of this name if it holds exactly these bytes and was stored after the file was written.

    Only a check that died between storing the file and moving it leaves one (kill -9, power
    cut): the stored import is finished by the worker, so importing the file again would
    count it twice. A later upload of the same bytes has a newer mtime and is imported again.
    """
    written = dt.datetime.fromtimestamp(os.lstat(path).st_mtime, dt.timezone.utc).replace(tzinfo=None)
    latest = db.session.scalar(
        db.select(Import).where(Import.account_id == account_id, Import.filename == path.name)
        .order_by(Import.id.desc()).limit(1)
    )
    if (latest is not None and latest.channel == "ftp" and latest.received_at >= written
            and latest.sha256 == hashlib.sha256(data).hexdigest()):
        return latest
    return None


def _move(path: Path, folder: Path, when: dt.datetime) -> Path:
    """Move a handled file into `folder` with the check time appended to its stem; return the new path."""
    folder.mkdir(exist_ok=True)
    stamp = when.strftime("%Y%m%d-%H%M%S")
    stem, suffix = os.path.splitext(path.name)
    target = folder / f"{stem}_{stamp}{suffix}"
    n = 2
    while target.exists():
        target = folder / f"{stem}_{stamp}-{n}{suffix}"
        n += 1
    os.replace(path, target)
    return target


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
    tz = ZoneInfo(current_app.config.get("TIMEZONE") or "Asia/Tokyo")
    rows = db.session.scalars(
        db.select(IntegrationSettings)
        .join(Account, Account.id == IntegrationSettings.account_id)
        .where(Account.integration_enabled.is_(True), IntegrationSettings.mode == "ftp",
               IntegrationSettings.status == "active")
        .order_by(IntegrationSettings.account_id)
    )
    due: list[int] = []
    for settings in rows:
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
    if not account.integration_enabled or settings is None:
        raise Invalid("このアカウントでは外部連携設定が有効になっていません。")
    if settings.mode != "ftp":
        raise Invalid("データ連動方式がFTP連動ではないため、チェックしません。")
    if settings.status != "active":
        raise Invalid("データ連動ステータスが連動稼働停止のため、ファイルはそのまま残しています。")
    if not settings.ftp_username:
        raise Invalid("FTPサーバー IDが発行されていません。")
    return account, settings


def check_account(account_id: int, now: dt.datetime | None = None) -> CheckResult:
    """Import every complete CSV in the account's FTP home in name order and file each under processed/ or error/."""
    account, settings = _settings_for_check(account_id)
    tz = ZoneInfo(current_app.config.get("TIMEZONE") or "Asia/Tokyo")
    now = (now or dt.datetime.now(tz)).astimezone(tz)
    username = settings.ftp_username
    result = CheckResult(account_id=account_id)
    with _account_lock(account_id) as acquired:
        if not acquired:
            log.info("ftp check skipped account=%s: another check is running", account.slug)
            result.busy = True
            return result
        home = home_path(username, create=True)
        ready, result.waiting = scan_home(home, now.timestamp(), quiet_seconds())
        for path in ready:
            try:
                data = _read_if_stable(path)
            except FileNotFoundError:
                continue  # deleted or renamed by the uploader meanwhile
            if data is None:
                result.waiting.append(path.name)
                continue
            earlier = _stored_after_upload(account_id, path, data)
            if earlier is not None:
                if earlier.status in (Import.QUEUED, Import.RUNNING):
                    # Left by a check that died mid-import: the worker finishes it, a later check files it.
                    result.waiting.append(path.name)
                    continue
                import_id, ok = earlier.id, earlier.status == Import.SUCCEEDED
            else:
                try:
                    imp = ingest.import_now(account_id, path.name, data, channel="ftp", sender=f"ftp:{username}")
                    import_id, ok = imp.id, imp.status == Import.SUCCEEDED
                except RenkeiError as err:
                    log.warning("ftp import rejected account=%s file=%s: %s", account.slug, path.name, err)
                    import_id, ok = None, False
                except Exception:
                    db.session.rollback()
                    log.exception("ftp import error account=%s file=%s (left for the next check)", account.slug,
                                  path.name)
                    result.waiting.append(path.name)
                    continue
            moved = _move(path, home / (PROCESSED if ok else ERROR), now)
            result.files.append(CheckedFile(path.name, import_id, ok, f"{moved.parent.name}/{moved.name}"))
            log.info("ftp check account=%s channel=ftp file=%s import=#%s %s -> %s", account.slug, path.name,
                     import_id, "succeeded" if ok else "failed", result.files[-1].moved_to)
        settings = db.session.get(IntegrationSettings, settings.id)
        settings.last_ftp_check_at = utcnow()
        db.session.commit()
    if result.files or result.waiting:
        log.info("ftp check done account=%s imported=%d failed=%d waiting=%d", account.slug,
                 result.succeeded, result.failed, len(result.waiting))
    return result
