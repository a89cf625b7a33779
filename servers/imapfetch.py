"""The mailbox fetcher (run.py part `imap`): every minute, each IMAP mailbox's new mail goes the way of an SMTP delivery.

For each account whose 受信方法 is メールボックスから取得(IMAP) (外部連携 on, メール添付連動, not
backing off), one fetch: log in (servers/imapclient.py), open the folder, and for each message
not yet recorded for its UIDVALIDITY: hand its bytes to `MailHandler.deliver_fetched` — the
same checks, spool and drain as a message received by the built-in SMTP server — then record
its UID (committed), then move it into the processed folder. Last, the fetched messages are
drained from the spool (`{DATA_DIR}/spool/imap`) into the database, in this thread.

Decisions (where docs/spec.md is silent):
- Imported once: the spool entry of a message is named by (account, mailbox, UIDVALIDITY, UID),
  so a message spooled again after a crash before its UID was recorded dedupes in the drain;
  one recorded but not moved (a crash before the move) is only moved at the next fetch.
- Every message the fetch handled is moved, refused and discarded ones too (their record is in
  取込履歴): otherwise they would be recorded again every minute. Nothing is ever deleted.
- A message over RENKEI_SMTP_MAX_BYTES is not downloaded: it is recorded as refused, as SMTP
  does, and moved.
- Poll every POLL_SECONDS (a minute); besides, up to imapidle.MAX_WATCHED mailboxes whose
  server offers IDLE are watched between the minutes and fetched as soon as mail is announced
  (servers/imapidle.py), through this same fetch.
- A failed fetch (connection, TLS, login, a folder) is stored for the tab and backs off
  (services/mailbox.py); the other accounts go on. One fetch per account at a time in this
  process (a second, e.g. 今すぐ取得 during the minute's, answers that one is running; an IDLE
  watcher's waits for it, then looks again).
"""
from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import email.utils
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from app import config
from app.services import mailbox, spool
from app.services.senderauth import Origin

from .imapclient import MailboxClient, MailboxError
from .imapidle import MAX_WATCHED, Watchers
from .mailparse import normalise_line_ends
from .smtpservices import build_fetch_handler

log = logging.getLogger(__name__)

POLL_SECONDS = 60.0
Clock = Callable[[], dt.datetime]
_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class FetchResult:
    """What one fetch did; `text` is what 今すぐ取得 and the CLI show."""

    ok: bool
    handed: int = 0  # messages handed to the mail path (imported, refused or discarded)
    moved: int = 0
    text: str = ""


def return_path(raw: bytes) -> str | None:
    """The envelope sender the mailbox's server wrote (the first Return-Path:), "" for `<>`, None when absent."""
    head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    value = head.get("Return-Path")
    if value is None:
        return None
    return email.utils.parseaddr(str(value))[1].strip()


def delivery_id(login: mailbox.Login, uidvalidity: int, uid: int) -> str:
    """The spool id of one message of one mailbox (the drain's dedupe keys are built from it)."""
    where = hashlib.sha256(f"{login.host}:{login.port}:{login.username}:{login.folder}".encode()).hexdigest()[:12]
    return f"imap-{login.account_id}-{where}-{uidvalidity}-{uid}"


class Fetcher:
    """Fetches mailboxes for one app; `after_record` is a test's hook between recording a UID and moving it."""

    def __init__(self, app, clock: Clock = _utcnow, after_record: Callable[[int], None] | None = None):
        self.app = app
        self.clock = clock
        self.after_record = after_record
        self.folder = spool.mail_folder(app.config["DATA_DIR"], "imap")
        self.handler, self.drain, self.recipient_of = build_fetch_handler(app, self.folder)
        self.max_bytes = config.get(app, "SMTP_MAX_BYTES")
        self.timeout = config.get(app, "IMAP_TIMEOUT")
        self.ca_file = config.get(app, "IMAP_CA_FILE")

    def due(self) -> list[int]:
        with self.app.app_context():
            return mailbox.due(self.clock())

    def fetch(self, account_id: int, give_up: threading.Event | None = None) -> FetchResult:
        """One fetch of the account's mailbox (blocking); its outcome is stored for the tab.

        A fetch of the account already running answers so at once; with `give_up`, this one
        waits for it (until give_up is set) and then fetches: mail announced meanwhile may
        have come after that one listed the folder.
        """
        with _locks_guard:
            lock = _locks.setdefault(account_id, threading.Lock())
        acquired = lock.acquire(blocking=False)
        while not acquired and give_up is not None and not give_up.is_set():
            acquired = lock.acquire(timeout=1.0)
        if not acquired:
            return FetchResult(False, text="このメールボックスは取得中です。しばらくしてから画面を読み込み直してください。")
        try:
            return self._fetch(account_id)
        finally:
            lock.release()

    def _fetch(self, account_id: int) -> FetchResult:
        with self.app.app_context():
            login = mailbox.login(account_id)  # an unreadable password is recorded there as the error
            error = mailbox.get(account_id).last_error if login is None else None
        recipient = self.recipient_of(account_id)
        if login is None or recipient is None:
            return FetchResult(False, text=error or "メールボックスを取得できる設定がありません。")
        try:
            handed, moved = self._session(login, recipient)
        except MailboxError as error:
            return self._failed(login, error.text)
        except Exception as error:  # a bug or a server answer we do not know: stored, backed off, never fatal
            log.exception("imap fetch failed account=%s", recipient.label)
            return self._failed(login, f"取得中にエラーが発生しました: {type(error).__name__}: {error}")
        finally:
            self._drain(recipient.label)
        with self.app.app_context():
            mailbox.record_success(account_id, self.clock())
        log.info("imap fetched account=%s host=%s folder=%s handed=%d moved=%d", recipient.label, login.host,
                 login.folder, handed, moved)
        return FetchResult(True, handed, moved, f"メールボックスを確認しました(取得 {handed}通、移動 {moved}通)。")

    def _failed(self, login: mailbox.Login, text: str) -> FetchResult:
        with self.app.app_context():
            retry_at = mailbox.record_failure(login.account_id, text, self.clock())
        log.warning("imap fetch failed account=#%s host=%s: %s (next try %s UTC)", login.account_id, login.host, text,
                    retry_at.strftime("%H:%M"))
        return FetchResult(False, text=text)

    def _drain(self, label: str) -> None:
        try:
            self.drain()
        except Exception:  # the entries stay in the spool; the next fetch (or the part's start) drains them
            log.exception("imap spool drain failed account=%s; entries kept", label)

    def _session(self, login: mailbox.Login, recipient) -> tuple[int, int]:
        handed = moved = 0
        with MailboxClient(login, timeout=self.timeout, ca_file=self.ca_file) as client:
            uidvalidity = client.select(login.folder)
            uids = client.uids()
            if not uids:
                return handed, moved
            with self.app.app_context():
                mailbox.forget_moved(login.account_id, uidvalidity, client.lowest_uid() or min(uids))
                known = mailbox.fetched_uids(login.account_id, uidvalidity)
            folder_ready = False
            for uid in uids:
                if uid not in known:
                    if not self._hand_over(client, login, recipient, uidvalidity, uid):
                        continue
                    handed += 1
                    with self.app.app_context():
                        mailbox.record_fetched(login.account_id, uidvalidity, uid)
                    if self.after_record is not None:
                        self.after_record(uid)
                if not folder_ready:
                    client.ensure_folder(login.processed_folder)
                    folder_ready = True
                client.move(uid, login.processed_folder)
                moved += 1
        return handed, moved

    def _hand_over(self, client: MailboxClient, login: mailbox.Login, recipient, uidvalidity: int, uid: int) -> bool:
        """Give one message to the mail path; False when it vanished meanwhile (another client moved it)."""
        size = client.size(uid)
        if size is not None and self.max_bytes and size > self.max_bytes:
            from .smtp import TOO_BIG_NOTE

            self.handler.refuse_unreceived([recipient], envelope_from=None, reason=TOO_BIG_NOTE.format(
                limit=self.max_bytes), peer="imap")
            return True
        raw = client.fetch(uid)
        if raw is None:
            return False
        raw = normalise_line_ends(raw)
        envelope = return_path(raw)
        reply = self.handler.deliver_fetched(recipient, raw, envelope=envelope,
                                             delivery=delivery_id(login, uidvalidity, uid),
                                             origin=Origin(mail_from=envelope or "", peer_address="", helo_name=""))
        log.info("imap handed account=%s uid=%s/%s bytes=%d reply=%s", recipient.label, uidvalidity, uid, len(raw),
                 reply.split(" ", 1)[0])
        return True


def fetch_once(app, account_id: int) -> FetchResult:
    """今すぐ取得: fetch one account's mailbox now, whatever its backoff says (blocking)."""
    return Fetcher(app).fetch(account_id)


class RunningFetcher:
    """The `imap` part: a thread fetching every due mailbox each POLL_SECONDS, and IDLE watchers; `.stop()` ends them."""

    def __init__(self, fetcher: Fetcher, poll_seconds: float = POLL_SECONDS, watch_limit: int = MAX_WATCHED):
        self.fetcher = fetcher
        self.poll_seconds = poll_seconds
        self.watchers = Watchers(fetcher, poll_seconds, watch_limit)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> list[FetchResult]:
        """Fetch every due mailbox once, one after another (an error of one never stops the others)."""
        return [result for _, result in self._fetch_due()]

    def _fetch_due(self) -> list[tuple[int, FetchResult]]:
        results = []
        for account_id in self.fetcher.due():
            if self._stop.is_set():
                break
            results.append((account_id, self.fetcher.fetch(account_id)))
        return results

    def start(self) -> RunningFetcher:
        self.fetcher._drain("-")  # what a crash left in the spool goes in first
        self._thread = threading.Thread(target=self._run, name="imap", daemon=True)
        self._thread.start()
        log.info("imap fetcher started (every %.0f s, IDLE on up to %d mailboxes)", self.poll_seconds, self.watchers.limit)
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                fetched = self._fetch_due()
                if not self._stop.is_set():  # watchers only while the part runs (tick() alone starts none)
                    self.watchers.update([account_id for account_id, result in fetched if result.ok])
            except Exception:  # e.g. the database is away for a moment: try again at the next minute
                log.exception("imap tick failed")
            self._stop.wait(self.poll_seconds)

    def alive(self) -> bool:
        """True while the fetch thread runs (for /healthz)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 15.0) -> None:
        """End the threads after the fetches in progress (a server slower than `timeout` is left to the daemon threads)."""
        if self._thread is None:
            return
        self._stop.set()
        deadline = time.monotonic() + timeout
        self.watchers.close(timeout)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            log.warning("imap fetcher did not end within %.0f s", timeout)
        self._thread = None
        log.info("imap fetcher stopped")


def start(app) -> RunningFetcher:
    """Start the mailbox fetcher for `app` and return it running."""
    return RunningFetcher(Fetcher(app)).start()
