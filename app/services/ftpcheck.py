"""FTP連動 checks: hand every complete CSV of an account's FTP home to the queue, file it when its import ends.

Called by the scheduler at the account's check times and for its automatic re-check, by the
今すぐチェック button and by `flask integration check-now SLUG`; each check is kept as the
account's last check (services/ftpreport.py says what it tells and when a re-check runs).
Which files are ready, how one is read and how it is moved are services/ftpfiles.py.

Decisions (where docs/spec.md is silent):
- Files are handled one by one in name order: each is read once, received through
  `ingest.receive` (channel "ftp", sender "ftp:<ID>"; stored and committed while the file
  is still in the home), then the check waits for the worker to end its import and moves
  the file to `processed/` (success) or `error/` (failure) as `<name>_<yyyymmdd-HHMMSS>.csv`
  (check time, server time zone); a clash gets "-2", "-3"…. The check runs no import itself.
- The waits of one check together last at most IMPORT_WAIT_SECONDS. A file whose import is
  still queued or running then stays in the home, remembered in
  `{DATA_DIR}/ftp-pending/<ID>.json` (import id, name, device, inode, size, mtime): a later
  check that finds the same file there does not receive it again but files it once its import
  has ended. Had it been replaced or removed meanwhile, a copy of the stored original goes
  to `processed/` or `error/` instead, and a new file under the name is a new import.
- A check moves exactly the file it read (see ftpfiles.file_away). A file re-uploaded under
  the same name during the check stays in the home for the next check; the import of the
  bytes read stands (they were a complete file) and a copy of them goes to processed/ or error/.
- An unexpected error (e.g. the database is down) leaves the file where it is, so the next
  check tries again.
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
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app

from .. import config
from ..enums import ImportStatus
from ..errors import Invalid, NotFound
from ..extensions import db
from ..models import Account, Import, IntegrationSettings
from . import archives, checktimes, files, ftpreport, ingest, queue, reports
from .admission import Channel, admit
from .ftpfiles import (  # noqa: F401
    CHANGING,
    ERROR,
    FAILED,
    PROCESSED,
    REPLACED,
    SEEN_FOLDER,
    FileId,
    current_id,
    file_away,
    home_path,
    load_seen,
    load_state,
    open_regular,
    quiet_seconds,
    read_if_stable,
    save_seen,
    save_state,
    scan_home,
    write_copy,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

log = logging.getLogger(__name__)

PENDING_FOLDER = "ftp-pending"
# wait(import id, seconds) -> the import when it has ended or the time is up (queue.wait_for;
# the CLI passes one that runs the queue itself).
Wait = Callable[[int, float], Import]
# str(import id) -> [name, st_dev, st_ino, st_size, st_mtime_ns] of files received but not filed yet.
Pending = dict[str, list]


@dataclass
class CheckedFile:
    """One file a check handled: its name, the import it became and where it was moved."""

    name: str
    import_id: int | None
    succeeded: bool
    moved_to: str


@dataclass
class CheckResult:
    """What one check did: the files filed (in order), those still importing, those left for a later check."""

    account_id: int
    files: list[CheckedFile] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    busy: bool = False
    # name -> why it waits (ftpfiles.QUIET, FUTURE, CHANGING, REPLACED, FAILED), for each name in `waiting`.
    reasons: dict[str, str] = field(default_factory=dict)
    # Names still carrying a temporary upload ending (.tmp, .part, .filepart): never read as they are.
    temporary: list[str] = field(default_factory=list)

    def wait(self, name: str, reason: str) -> None:
        """Leave `name` in the home for a later check, saying why."""
        if name not in self.reasons:
            self.waiting.append(name)
        self.reasons[name] = reason

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
        if self.files:
            text = files_summary(len(self.files), self.succeeded)
        elif self.running:
            text = ""
        else:
            text = "取り込むファイルはありませんでした。"
        if self.running:
            text += (f" {len(self.running)}件はまだ取込中です。取込が終わったファイルは次回のチェックで"
                     " processed/ または error/ に移します。")
        if self.waiting or self.temporary:
            # Why and until when is said per file (ftpreport.lines), under this line.
            text += f" {len(self.waiting) + len(self.temporary)}件はまだ読み込めないため残しました(理由はファイルごとに表示)。"
        return text.strip()


def files_summary(count: int, succeeded: int) -> str:
    """How many files were imported and how many failed, in one sentence (never "imported" for a failed one)."""
    if succeeded == count:
        return f"{count}件のファイルを取り込みました。"
    if succeeded == 0:
        return f"{count}件のファイルはすべてエラーでした(取り込んでいません)。"
    return f"{count}件のファイルのうち {succeeded}件を取り込み、{count - succeeded}件はエラーでした。"


# ---------------------------------------------------------------------------------------
# The check


def _stored_after_upload(account_id: int, path: Path, data: bytes, mtime_ns: int) -> Import | None:
    """The latest import of this name if it holds exactly these bytes and was stored after the file was written.

    Only a check that died between storing the file and remembering it leaves one (kill -9,
    power cut): the stored import is finished by the worker, so importing the file again would
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


def _load_pending(username: str) -> Pending:
    """The files earlier checks received whose import had not ended when they finished."""
    return {key: entry for key, entry in load_state(PENDING_FOLDER, username).items()
            if key.isdigit() and isinstance(entry, list) and len(entry) == 5 and isinstance(entry[0], str)
            and all(isinstance(v, int) for v in entry[1:])}


def _receive_one(account: Account, username: str, path: Path, data: bytes, read: FileId,
                 pending: Pending) -> int:
    """The id of the import of these bytes: the one received for this very file before, or a new one."""
    for key, entry in list(pending.items()):
        if entry[0] == path.name and tuple(entry[1:]) == read:
            if db.session.get(Import, int(key)) is not None:
                return int(key)
            del pending[key]  # its import is gone (removed by hand): receive the file anew
    earlier = _stored_after_upload(account.id, path, data, read[3])
    if earlier is not None:
        return earlier.id
    return ingest.receive(account.id, path.name, data, channel=Channel.FTP, sender=f"ftp:{username}").id


def _file_gone(home: Path, pending: Pending, handled: set[str], wait: Wait, deadline: float, now: dt.datetime,
               result: CheckResult) -> None:
    """File the imports whose file was replaced or removed after a check received it: a copy of the original."""
    for key, entry in list(pending.items()):
        name = entry[0]
        if key in handled or current_id(home / name) == tuple(entry[1:]):
            continue  # looked at in this check, or its file is still there for the next one
        try:
            imp, status = archives.settled(wait(int(key), max(0.0, deadline - time.monotonic())), wait,
                                           deadline - time.monotonic())
        except NotFound:
            del pending[key]
            continue
        if status in queue.PENDING:
            result.running.append(name)
            continue
        ok = status == Import.SUCCEEDED
        data = files.read(imp.id)
        del pending[key]
        if data is None:
            log.warning("ftp check: import #%s of %s ended but its original is gone; nothing to file", key, name)
            continue
        copy = write_copy(home / (PROCESSED if ok else ERROR), name, data, now)
        result.files.append(CheckedFile(name, imp.id, ok, f"{copy.parent.name}/{copy.name}"))
        reports.filed(imp.id, name, result.files[-1].moved_to)
        log.info("ftp check file=%s import=#%s was replaced or removed before it was filed: a copy of its "
                 "original is %s", name, imp.id, result.files[-1].moved_to)


def check_account(account_id: int, now: dt.datetime | None = None, *, wait: Wait | None = None,
                  trigger: str = ftpreport.MANUAL) -> CheckResult:
    """Receive every complete CSV in the account's FTP home in name order; file each under processed/ or error/.

    `trigger` (ftpreport.SCHEDULED, MANUAL, RECHECK) is kept with the result as the account's last check.
    """
    account, settings = _settings_for_check(account_id)
    tz = config.timezone(current_app)
    now = (now or dt.datetime.now(tz)).astimezone(tz)
    wait = wait or queue.wait_for
    deadline = time.monotonic() + config.get(current_app, "IMPORT_WAIT_SECONDS")
    username = settings.ftp_username
    result = CheckResult(account_id=account_id)
    with _account_lock(account_id) as acquired:
        if not acquired:
            log.info("ftp check skipped account=%s: another check is running", account.slug)
            result.busy = True
            return result
        home = home_path(username, create=True)
        seen = load_seen(username)
        ready, settling, result.temporary = scan_home(home, now.timestamp(), quiet_seconds(), seen)
        for name, reason in settling:
            result.wait(name, reason)
        save_seen(username, seen)
        pending = _load_pending(username)
        handled: set[str] = set()
        for path in ready:
            try:
                opened = open_regular(path)
            except (FileNotFoundError, IsADirectoryError):
                continue  # deleted or renamed by the uploader meanwhile
            except OSError as err:
                if err.errno != errno.ELOOP:
                    raise
                continue  # replaced by a symlink meanwhile
            # Open until the file is filed away, so its inode number cannot be reused meanwhile.
            with opened:
                read_now = read_if_stable(opened)
                if read_now is None:
                    result.wait(path.name, CHANGING)
                    continue
                data, read = read_now
                try:
                    key = str(_receive_one(account, username, path, data, read, pending))
                    handled.add(key)
                    pending[key] = [path.name, *read]
                    save_state(PENDING_FOLDER, username, pending)  # a later check files it, should this one end first
                    # An archive counts once each of its files has ended (services/archives.py).
                    imp, status = archives.settled(wait(int(key), max(0.0, deadline - time.monotonic())), wait,
                                                   deadline - time.monotonic())
                except Exception:
                    db.session.rollback()
                    log.exception("ftp check error account=%s file=%s (left for the next check)", account.slug,
                                  path.name)
                    result.wait(path.name, FAILED)
                    continue
                if status in queue.PENDING:
                    result.running.append(path.name)  # stays in the home; a later check files it
                    continue
                ok = status == Import.SUCCEEDED
                moved, same = file_away(path, read, data, home / (PROCESSED if ok else ERROR), now)
                del pending[key]
            result.files.append(CheckedFile(path.name, imp.id, ok, f"{moved.parent.name}/{moved.name}"))
            reports.filed(imp.id, path.name, result.files[-1].moved_to)  # its report says where, and goes now
            log.info("ftp check account=%s channel=ftp file=%s import=#%s %s -> %s", account.slug, path.name,
                     imp.id, ImportStatus.SUCCEEDED if ok else ImportStatus.FAILED, result.files[-1].moved_to)
            if not same:
                log.info("ftp check account=%s file=%s was replaced or removed during the check: a new file is "
                         "left for the next check, a copy of the imported bytes is %s", account.slug, path.name,
                         result.files[-1].moved_to)
                if os.path.lexists(path):
                    result.wait(path.name, REPLACED)
        _file_gone(home, pending, handled, wait, deadline, now, result)
        save_state(PENDING_FOLDER, username, pending)
        filed = {f.name for f in result.files} - set(result.waiting) - set(result.running)
        if filed & seen.keys():
            save_seen(username, {name: entry for name, entry in seen.items() if name not in filed})
        settings = db.session.get(IntegrationSettings, settings.id)
        ftpreport.record(settings, result, trigger, now)
        db.session.commit()
    if result.files or result.waiting or result.running:
        log.info("ftp check done account=%s imported=%d failed=%d running=%d waiting=%d", account.slug,
                 result.succeeded, result.failed, len(result.running), len(result.waiting))
    return result
