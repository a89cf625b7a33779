"""The built-in SMTP server (メール添付連動): aiosmtpd handler, limits, STARTTLS, and start(app).

A mail to an account's issued address (送信先メールアドレス) from one of its registered
senders (送信元メールアドレス) is written whole to the durable spool (`app.services.spool`,
`{DATA_DIR}/spool/mail/`, file and folder fsynced) before this server answers `250`; only its
header block is parsed before that (the From: check). A drain thread owned by RunningSmtp then
parses each entry in order (MIME, in the parse processes) and hands each CSV to
`services.ingest.receive`. Why not commit to the DB before `250`: on SQLite a running import
holds the only write lock for its whole transaction, so every `250` waited behind imports. Why
not parse the attachments before `250`: a full parse of a 1 MB mail is ~30 ms of CPU, several
times the cost of the spool write. The import itself runs on the worker; this server only stores.

The spool is per machine: the `smtp` part drains its own spool (at start, leftovers of a crash
first), so in a multi-machine setup each SMTP host needs its own data folder (the database may
be shared). A mail acknowledged just before a crash is imported when that host's SMTP part
starts again; the dedupe keys (the entry's random delivery id + part index + part hash) make a
drain repeated after a lost delete harmless. They are not the Message-ID: the same message
delivered again (mutt's bounce, a saved .eml sent again) is a new delivery and a new import.

Decisions (where docs/spec.md is silent):
- Several accounts per message: every RCPT of an issued address is accepted (mutt, s-nail,
  msmtp and curl abort the whole send on a 4xx to a second RCPT), an unknown one gets
  `550 5.1.1` on its own. Several RCPTs for the same account count once. The message is
  spooled once (one entry naming every accepting account, fsynced before `250`) and the
  drain imports it once per account.
- Each account applies its own rules (`services.admission.admit`, channel mail): mode not
  メール添付連動 → discarded and recorded (the sender list is not checked: it belongs to the
  mail mode); mode mail → the From: check (refused, recorded), then a stopped status discards
  and records. This module only maps the admission to a reply. The From: header is known
  only after DATA, which has one reply for all: `250` when at least one account took the
  message (spooled or discarded), `550 5.7.1` only when every account refused it. A refusal
  next to an acceptance is in that account's 取込履歴 only (the sender, having `250`, does not
  see it).
- Lines: bare LF and lines of any length are accepted up to the message cap (as Postfix
  does); bare LFs become CRLF before the message is spooled (mailparse.normalise_line_ends).
  A message over the cap gets `552 5.3.4` and each account of its RCPTs records the refusal.
- A mail with no `.csv` attachment is accepted (`250`) and becomes a failed import
  "(CSV添付なし)" with one error, so the error report goes to エラー報告メールアドレス.
- A mail the full parse cannot read (nested too deep) was already answered `250`: it becomes a
  failed import "(メール)" with one error and an error report (the sender learns it that way).
- Every DB call and spool write runs in the loop's executor; an unexpected error answers
  `451 4.3.0` and the client retries. Nothing was spooled then (a failed write removes its
  entry), so the retry is the one delivery; a refusal recorded for another account of the same
  message before the failed write may be recorded again.
- Refusals and discards are recorded in the DB directly before the answer (rare paths, no file
  to import; they alone pay a full parse, to name the files in the history). A mail with no CSV
  and a truncated attachment are recorded by the drain.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, syntax

from app import config
from app.enums import ImportStatus
from app.services import spool
from app.services.admission import Channel, Outcome, Reason, Standing, admit

from .mailparse import MailRejected, MailUnreadable, ParsedMail, normalise_line_ends, parse_head, parse_mail
from .priority import lower_this_process, lower_this_thread

log = logging.getLogger(__name__)

CHANNEL = Channel.MAIL
NO_CSV_NAME = "(CSV添付なし)"
UNNAMED = "(メール)"  # the history's file name when the mail's files are not known
UNREADABLE_ADVICE = (
    "このメールの添付ファイルは1つも取り込んでいません。"
    "転送や入れ子にせず、CSVファイルを直接添付した新しいメールで送り直してください。"
)
TRUNCATED_MESSAGE = (
    "添付ファイルがメールの途中で切れている可能性があるため、取り込みませんでした"
    "(マルチパートの終わりの区切りがありません)。同じファイルをもう一度送ってください。"
)
NO_CSV_MESSAGE = (
    "メールにCSVファイルが添付されていませんでした。"
    "ファイル名が「.csv」で終わるファイル(例: 20180516.csv)を添付して送り直してください。"
)

NO_SUCH_USER = "550 5.1.1 Recipient address rejected: no such user"
TOO_BIG_REPLY = "552 5.3.4 Message too big for system"
TOO_BIG_NOTE = (
    "メールの大きさが上限({limit:,}バイト)を超えているため受信を拒否しました。"
    "添付ファイルを1通に1つずつにして送り直すか、管理者に上限(RENKEI_SMTP_MAX_BYTES)の変更を相談してください"
)

# Defaults of the limits; each one is overridable by app.config or a RENKEI_* variable.
DEFAULT_MAX_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 50
DEFAULT_MAX_COMMANDS = 100  # per command name and session (aiosmtpd command_call_limit)
DEFAULT_TIMEOUT = 300.0  # RFC 5321 4.5.3.2.7: a server should wait at least 5 minutes
EXECUTOR_THREADS = 8


# ---------------------------------------------------------------------------------------
# The handler: protocol decisions only; everything that touches the database is injected.


@dataclass(frozen=True)
class Recipient:
    """What the handler needs to know about the account behind an issued address."""

    account_id: int
    label: str  # for log lines (the account's slug)
    mode: str  # mail | ftp | api
    status: str  # active | stopped
    senders: frozenset[str]  # 送信元メールアドレス, lower case
    enabled: bool = True  # 外部連携設定

    @property
    def standing(self) -> Standing:
        """What admission decides on (a snapshot taken at RCPT: DATA needs no database)."""
        return Standing(enabled=self.enabled, mode=self.mode, status=self.status, senders=self.senders)


# A recipient answer (a Recipient, or None for an unknown address) is reused for this long.
DEFAULT_RECIPIENT_CACHE_SECONDS = 5.0
RECIPIENT_CACHE_ENTRIES = 1024  # beyond this many addresses the cache starts over (bounded memory)


class RecipientCache:
    """Recent recipient look-ups, so an RCPT costs no database round trip (nor executor hop) on a hit.

    Correctness bound: an answer is at most `ttl` seconds old. A change committed in this
    process to an account or its integration settings (a re-issued address, 外部連携 turned
    off, mode, status, senders) empties the cache at once (`invalidate_all`, from the ORM
    listener below); a change committed by another process (the web UI on another host, on a
    shared PostgreSQL) takes effect within `ttl` seconds. `ttl` 0 turns the cache off.
    """

    _generation = 0  # bumped by invalidate_all(); shared by every cache of the process
    _generation_lock = threading.Lock()

    def __init__(self, resolve: Callable[[str], Recipient | None], ttl: float = DEFAULT_RECIPIENT_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic, max_entries: int = RECIPIENT_CACHE_ENTRIES):
        self.resolve = resolve
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, int, Recipient | None]] = {}

    @classmethod
    def invalidate_all(cls) -> None:
        """Forget every cached answer of every cache in this process (settings or accounts changed)."""
        with cls._generation_lock:
            cls._generation += 1

    def cached(self, address: str) -> tuple[bool, Recipient | None]:
        """(True, answer) when a fresh answer is known (no I/O: safe on the event loop), else (False, None)."""
        hit = self._entries.get(address.strip().lower())
        if hit is None:
            return False, None
        expires, generation, recipient = hit
        if generation != RecipientCache._generation or self.clock() >= expires:
            return False, None
        return True, recipient

    def __call__(self, address: str) -> Recipient | None:
        """The answer for `address`, from the cache when fresh, else from `resolve` (blocking)."""
        known, recipient = self.cached(address)
        if known:
            return recipient
        generation = RecipientCache._generation  # before the look-up: a change during it is not masked
        recipient = self.resolve(address)
        if self.ttl > 0:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[address.strip().lower()] = (self.clock() + self.ttl, generation, recipient)
        return recipient


def _recipients_changed(session, flush_context) -> None:
    """ORM listener (after_flush): note that this transaction changes what a recipient look-up answers."""
    from app.models import Account, IntegrationSettings

    for instance in itertools.chain(session.new, session.dirty, session.deleted):
        if isinstance(instance, (Account, IntegrationSettings)):
            session.info["renkei_recipients_changed"] = True
            return


def _invalidate_after_commit(session) -> None:
    if session.info.pop("renkei_recipients_changed", False):
        RecipientCache.invalidate_all()


def _forget_after_rollback(session) -> None:
    session.info.pop("renkei_recipients_changed", None)


def _listen_for_recipient_changes() -> None:
    """Register the ORM listeners once per process (every Session: the web UI's, the CLI's, the tests')."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    if not event.contains(Session, "after_flush", _recipients_changed):
        event.listen(Session, "after_flush", _recipients_changed)
        event.listen(Session, "after_commit", _invalidate_after_commit)
        event.listen(Session, "after_soft_rollback", lambda session, previous: _forget_after_rollback(session))


class MailHandler:
    """aiosmtpd handler: RCPT check, then the checks the headers allow, then the durable spool write.

    Only the header block is parsed before `250` (a full MIME parse of a 1 MB mail is ~30 ms of
    CPU, which capped throughput); the attachments are read by MailImporter in the spool drain.

    Injected callables (they run in a worker thread, never on the event loop):
    - resolve_recipient(address) -> Recipient | None (None: unknown address; a disabled account has enabled=False);
      a RecipientCache's fresh answers are read on the loop (its `cached`)
    - spool_mail(account_ids, raw, *, sender) -> None, once the whole message is stored durably for them all
    - record_refusal(account_id, *, filename, sender, status, note) -> None
    - parse(raw) -> ParsedMail (only to name the files of a refused or discarded mail; rare)
    """

    def __init__(
        self,
        *,
        resolve_recipient: Callable[[str], Recipient | None],
        spool_mail: Callable[..., Any],
        record_refusal: Callable[..., Any],
        parse: Callable[[bytes], ParsedMail] = parse_mail,
    ):
        self.parse = parse
        self.resolve_recipient = resolve_recipient
        # A RecipientCache answers a fresh hit on the loop itself (no thread hop, no I/O).
        self.cached_recipient: Callable[[str], tuple[bool, Recipient | None]] = getattr(
            resolve_recipient, "cached", lambda address: (False, None))
        self.spool_mail = spool_mail
        self.record_refusal = record_refusal

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options: list[str]) -> str:
        """Accept every issued address of an enabled account (several accounts per message); never relay."""
        try:
            known, recipient = self.cached_recipient(address)
            if not known:
                recipient = await asyncio.get_running_loop().run_in_executor(None, self.resolve_recipient, address)
        except Exception:
            log.exception("smtp recipient lookup failed channel=%s rcpt=%s", CHANNEL, address)
            return "451 4.3.0 Temporary lookup failure, try again later"
        if recipient is None or admit(recipient.standing, Channel.MAIL).outcome is Outcome.DISABLED:
            # A disabled account's address answers as an unknown one: it must not tell that the account exists.
            log.info("smtp refused channel=%s rcpt=%s reason=%s peer=%s", CHANNEL, address,
                     "unknown-recipient" if recipient is None else "integration-disabled", _peer(session))
            return NO_SUCH_USER
        recipients: dict[int, Recipient] = getattr(envelope, "renkei_recipients", None) or {}
        recipients.setdefault(recipient.account_id, recipient)  # several addresses of one account count once
        envelope.renkei_recipients = recipients
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        """Check and spool the message (off the loop); answer only after it is durable."""
        recipients = list(envelope.renkei_recipients.values())
        raw = bytes(envelope.original_content or b"")
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, self.deliver, recipients, raw, _peer(session)
            )
        except Exception:
            log.exception("smtp delivery failed account=%s channel=%s", ",".join(r.label for r in recipients),
                          CHANNEL)
            return "451 4.3.0 Temporary server error, try again later"

    async def handle_exception(self, error: Exception) -> str:
        """Never show internals to the client; a 4xx makes it retry later."""
        log.exception("smtp session error channel=%s", CHANNEL, exc_info=error)
        return "451 4.3.0 Temporary server error, try again later"

    def deliver(self, recipients: Recipient | list[Recipient], raw: bytes, peer: str = "-") -> str:
        """Apply each account's rules to one received message and return the one SMTP reply (blocking).

        Each account decides on its own (mode, From: in its sender list, status). The reply is
        `250` when at least one account took the message (spooled for import, or discarded as
        its mode or status says), and `550 5.7.1` only when every account refused it; a refusal
        next to an acceptance is recorded in that account's 取込履歴 only. Refusals and discards
        are recorded before the spool write, so a failed write (`451`) may leave them recorded
        twice after the retry, never lost.
        """
        if isinstance(recipients, Recipient):
            recipients = [recipients]
        raw = normalise_line_ends(raw)
        head = parse_head(raw)
        names = _LazyNames(self, raw)
        accepted: list[Recipient] = []
        refusal: str | None = None
        discarded = False
        for recipient in recipients:
            admission = admit(recipient.standing, Channel.MAIL, sender=head.sender)
            if admission.outcome is Outcome.ACCEPT:
                accepted.append(recipient)
            elif admission.outcome is Outcome.DISCARD:
                self._discard(recipient, names, head.sender, admission.text, peer)
                discarded = True
            elif admission.reason is Reason.UNREADABLE_SENDER:
                self.record_refusal(recipient.account_id, filename=UNNAMED, sender=None, status=ImportStatus.REFUSED,
                                    note=f"{admission.text}: {head.rejection}")
                log.info("smtp refused account=%s channel=%s reason=bad-from peer=%s", recipient.label, CHANNEL,
                         peer)
                refusal = refusal or "550 5.7.1 Sender not authorized: unreadable From header"
            elif admission.reason is Reason.SENDER:
                self.record_refusal(recipient.account_id, filename=names(), sender=head.sender, status=ImportStatus.REFUSED,
                                    note=admission.text)
                log.info("smtp refused account=%s channel=%s file=%s sender=%s reason=sender-not-registered peer=%s",
                         recipient.label, CHANNEL, names(), head.sender, peer)
                refusal = refusal or "550 5.7.1 Sender not authorized for this address"
            else:  # disabled since its RCPT was accepted: the account takes nothing and records nothing
                log.info("smtp refused account=%s channel=%s reason=%s peer=%s", recipient.label, CHANNEL,
                         admission.reason, peer)
                refusal = refusal or NO_SUCH_USER
        if not accepted:
            return "250 2.0.0 OK" if discarded or refusal is None else refusal

        assert head.sender is not None
        self.spool_mail([r.account_id for r in accepted], raw, sender=head.sender)
        for recipient in accepted:
            log.info("smtp accepted account=%s channel=%s sender=%s bytes=%d peer=%s", recipient.label, CHANNEL,
                     head.sender, len(raw), peer)
        return "250 2.0.0 OK: queued"

    def refuse_unreceived(self, recipients: list[Recipient], *, envelope_from: str | None, reason: str,
                          peer: str = "-") -> None:
        """Record a message the protocol refused before it was read (e.g. over the size cap), per account."""
        for recipient in recipients:
            note = f"{reason}(エンベロープの送信者: {envelope_from or '-'})"
            self.record_refusal(recipient.account_id, filename=UNNAMED, sender=None, status=ImportStatus.REFUSED, note=note)
            log.info("smtp refused account=%s channel=%s reason=%s peer=%s", recipient.label, CHANNEL, reason, peer)

    def _discard(self, recipient: Recipient, names: _LazyNames, sender: str | None, reason: str, peer: str) -> None:
        names = names()
        self.record_refusal(recipient.account_id, filename=names, sender=sender, status=ImportStatus.DISCARDED, note=reason)
        log.info("smtp discarded account=%s channel=%s file=%s sender=%s reason=%s peer=%s", recipient.label,
                 CHANNEL, names, sender or "-", reason, peer)

    def _names_of(self, raw: bytes) -> str:
        """The file names a refused or discarded mail carried, for the history (a full parse: rare paths only)."""
        try:
            return _names(self.parse(raw))
        except (MailRejected, MailUnreadable, RecursionError):
            return UNNAMED


class _LazyNames:
    """The file names of a refused or discarded mail, parsed at most once and only when asked for."""

    def __init__(self, handler: MailHandler, raw: bytes):
        self._handler, self._raw, self._names = handler, raw, None

    def __call__(self) -> str:
        if self._names is None:
            self._names = self._handler._names_of(self._raw)
        return self._names


class MailImporter:
    """The spool drain's half of a mail, after `250`: the full parse, then one import per CSV and account.

    Injected callables (called in the drain thread):
    - ingest(account_id, filename, data, *, sender, dedupe_key, note, ignored) -> None (a queued import)
    - record_failure(account_id, *, filename, sender, message, dedupe_key, note, ignored) -> None
      (a failed import with one error and its error report: the sender already had its `250`)
    - parse(raw) -> ParsedMail, raising MailUnreadable (default: mailparse.parse_mail in the calling thread)

    `ignored` is the list of the names of every attachment that was not imported (e.g. an .xlsx):
    it is stored on each import of the mail (Import.ignored_attachments) for the report mail.

    Every record carries a dedupe key built from the spool entry's delivery id, so a drain
    repeated after a crash stores nothing twice, while a second delivery of the same message
    (same Message-ID) is a second import.
    """

    def __init__(self, *, ingest: Callable[..., Any], record_failure: Callable[..., Any],
                 parse: Callable[[bytes], ParsedMail] = parse_mail):
        self.ingest = ingest
        self.record_failure = record_failure
        self.parse = parse

    def import_mail(self, account_ids: int | list[int], raw: bytes, *, sender: str, label: str = "-",
                    delivery: str | None = None) -> int:
        """Store the imports of one accepted message for each account; return how many records were written.

        `delivery` is the spool entry's id; without it (an entry of an earlier version) the keys
        come from the Message-ID, as they did when that entry was written.
        """
        if isinstance(account_ids, int):
            account_ids = [account_ids]
        try:
            mail = self.parse(raw)
        except (MailUnreadable, RecursionError) as error:
            reason = getattr(error, "reason", None) or "メールの構造を読み取れません"
            return self._unreadable(account_ids, raw, sender, f"{reason}。{UNREADABLE_ADVICE}", label, delivery)
        except MailRejected as error:
            # Cannot happen for a From: that passed the check before 250; kept so a change in the
            # parser never turns an accepted mail into a silent loss.
            return self._unreadable(account_ids, raw, sender,
                                    f"差出人を確認できません: {error.reason}。{UNREADABLE_ADVICE}", label, delivery)
        except Exception:
            # Parsing is pure: an unexpected error would recur on every retry and hold up every
            # mail behind this one in the spool, so it is reported instead of retried.
            log.exception("smtp parse failed account=%s channel=%s sender=%s", label, CHANNEL, sender)
            return self._unreadable(account_ids, raw, sender, f"メールの形式を解釈できませんでした。{UNREADABLE_ADVICE}",
                                    label, delivery)

        prefix = f"mail:{delivery}" if delivery else f"mail:{mail.identity}"
        note = _ignored_note(mail)
        ignored = list(mail.ignored) or None
        written = 0
        for account_id in account_ids:
            if not mail.csvs:
                self.record_failure(account_id, filename=NO_CSV_NAME, sender=sender, message=NO_CSV_MESSAGE,
                                    dedupe_key=f"{prefix}:nocsv", note=note, ignored=ignored)
                log.info("smtp no csv account=%s channel=%s sender=%s ignored=%s", label, CHANNEL, sender,
                         ",".join(mail.ignored) or "-")
                written += 1
                continue
            for index, attachment in enumerate(mail.csvs):
                key = f"{prefix}:{index}:{attachment.sha256}"
                if attachment.truncated:
                    self.record_failure(account_id, filename=attachment.filename, sender=sender,
                                        message=TRUNCATED_MESSAGE, dedupe_key=key, note=note, ignored=ignored)
                else:
                    self.ingest(account_id, attachment.filename, attachment.data, sender=sender, dedupe_key=key,
                                note=note, ignored=ignored)
                written += 1
        return written

    def _unreadable(self, account_ids: list[int], raw: bytes, sender: str, message: str, label: str,
                    delivery: str | None) -> int:
        key = f"mail:{delivery or parse_head(raw).identity}:unreadable"
        for account_id in account_ids:
            self.record_failure(account_id, filename=UNNAMED, sender=sender, message=message, dedupe_key=key,
                                note=None, ignored=None)
            log.info("smtp unreadable account=%s channel=%s sender=%s", label, CHANNEL, sender)
        return len(account_ids)


def _names(mail: ParsedMail) -> str:
    """What the history shows as the file name of a refused or discarded mail (never its content)."""
    if not mail.csvs:
        return NO_CSV_NAME
    names = ", ".join(a.filename for a in mail.csvs)
    return names if len(names) <= 255 else names[:252] + "..."


def _ignored_note(mail: ParsedMail) -> str | None:
    if not mail.ignored:
        return None
    return "CSV以外の添付ファイルは無視しました: " + ", ".join(mail.ignored)


def _peer(session) -> str:
    peer = getattr(session, "peer", None)
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "-")


class ParsePool:
    """Parse messages in child processes: MIME parsing is pure CPU work that, in a thread,
    would hold the interpreter lock the event loop, the worker and the web UI need."""

    def __init__(self, processes: int):
        self.processes = processes
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: forking a process that runs threads can copy a held lock.
        return ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=lower_this_process)

    def __call__(self, raw: bytes) -> ParsedMail:
        pool = self._pool
        try:
            return pool.submit(parse_mail, raw).result()
        except BrokenProcessPool:
            # A child died (e.g. killed for memory): start a fresh pool for the next mails
            # and parse this one here, so the client still gets its answer.
            log.warning("smtp parse process died; restarting the pool")
            with self._lock:
                if self._pool is pool:
                    self._pool = self._new_pool()
            pool.shutdown(wait=False, cancel_futures=True)
            return parse_mail(raw)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------
# The server: our own loop thread, so port 0 works and the connection cap sits in the factory.


class _Busy(asyncio.Protocol):
    """Answers a connection beyond the cap with 421 and hangs up."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(b"421 4.7.0 Too many connections, try again later\r\n")  # type: ignore[attr-defined]
        transport.close()


class _Session(SMTP):
    """aiosmtpd's SMTP protocol with Renkei's line rule, its over-size record and the connection cap.

    Lines: RFC 5321 allows 1,000 bytes, but curl `-T` without `--crlf`, smtplib with LF-only
    bytes and unwrapped base64 send far longer "lines" (a bare-LF message is one line until its
    final CRLF). As Postfix does, any line length is accepted up to the message cap: the line
    limit is the cap plus the CRLF and a stuffed dot, so a line can be over it only when the
    message is, and that answer is the size answer (`552`), never `500 Line too long`. The
    reader's buffer per session is thereby bounded by the cap, as the message already was.

    A message refused by the protocol after DATA (over the cap) never reaches the handler; it
    is recorded here (per account of its RCPTs) so the sender's attempt is in 取込履歴.
    """

    def __init__(self, handler, *, on_close: Callable[[], None], on_refused: Callable[..., Any] | None = None,
                 **kwargs):
        limit = kwargs.get("data_size_limit")
        if limit:
            self.line_length_limit = int(limit) + 3  # read by SMTP.__init__ (the reader's buffer limit)
        super().__init__(handler, **kwargs)
        self._on_close: Callable[[], None] | None = on_close
        self._on_refused = on_refused
        self._in_data = False

    async def push(self, status: str) -> None:
        if self._in_data and (status.startswith("500 Line too long") or status.startswith("552")):
            # Only a message over the cap has a line over the limit (see above): one answer for both.
            status = TOO_BIG_REPLY
            await self._record_too_big()
        await super().push(status)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        self._in_data = True
        try:
            await super().smtp_DATA(arg)
        finally:
            self._in_data = False

    async def _record_too_big(self) -> None:
        """Record the refused message per account, before its answer (the client may hang up right after)."""
        envelope = self.envelope
        recipients = list(getattr(envelope, "renkei_recipients", {}).values())
        if not recipients or self._on_refused is None:
            return
        reason = TOO_BIG_NOTE.format(limit=self.data_size_limit or 0)
        try:
            await self.loop.run_in_executor(None, lambda: self._on_refused(
                recipients, envelope_from=envelope.mail_from, reason=reason, peer=_peer(self.session)))
        except Exception:  # the sender gets its answer all the same; a lost history line must not end the session
            log.exception("smtp refusal not recorded channel=%s", CHANNEL)

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            if self._on_close is not None:
                on_close, self._on_close = self._on_close, None
                on_close()


class SpoolDrainer:
    """The thread that moves spool entries into the database in order, then deletes them.

    A mail entry is parsed here (MailImporter), after its `250`, and becomes one record per CSV.

    Woken after each `250`, and polls every POLL_SECONDS anyway; a failed store (e.g. the DB busy
    or down) keeps the entry and is retried after a growing pause, so nothing is ever lost.
    """

    POLL_SECONDS = 1.0
    BACKOFF_FIRST = 0.2
    BACKOFF_MAX = 10.0

    def __init__(self, folder: Path, store: Callable[[spool.Entry], Any]):
        self.folder = folder
        self.store = store
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def write_mail(self, account_ids: list[int], raw: bytes, *, sender: str) -> None:
        """Spool one whole message for its accounts durably (the handler's `spool_mail`), then wake the drain."""
        spool.write_mail(self.folder, account_ids=list(account_ids), sender=sender, raw=raw)
        self._wake.set()

    def wake(self) -> None:
        """Drain now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Remove crash leftovers that were never acknowledged, then drain in a background thread."""
        spool.clean_temporaries(self.folder)
        self._stop.clear()
        self._wake.set()  # entries left by a crash are drained first
        self._thread = threading.Thread(target=self._run, name="smtp-spool", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """End the thread after the entry in progress; what is left is drained at the next start."""
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("smtp spool drain did not end within %.0f s", timeout)
        self._thread = None

    def _run(self) -> None:
        lower_this_thread()  # accepted mail is safe in the spool: answering the next sender comes first
        backoff = 0.0
        while not self._stop.is_set():
            if not backoff:
                self._wake.wait(self.POLL_SECONDS)
            self._wake.clear()  # before draining: a write during the drain wakes the next round
            if self._stop.is_set():
                break
            try:
                spool.drain(self.folder, self.store, self._stop.is_set)
            except Exception:
                backoff = min(self.BACKOFF_MAX, backoff * 2 if backoff else self.BACKOFF_FIRST)
                log.exception("smtp spool drain failed channel=%s; entry kept, retry in %.1f s", CHANNEL, backoff)
                self._stop.wait(backoff)  # not the wake event: new mail must not turn the pause into a busy loop
                continue
            backoff = 0.0


@dataclass(frozen=True)
class Limits:
    """The configurable limits of the SMTP server."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_commands: int = DEFAULT_MAX_COMMANDS
    timeout: float = DEFAULT_TIMEOUT


class RunningSmtp:
    """An SMTP server on its own event loop thread; `.port` is the bound port, `.stop()` ends it."""

    def __init__(
        self,
        handler: MailHandler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: Limits = Limits(),
        tls_context: ssl.SSLContext | None = None,
        require_tls: bool = False,
        hostname: str | None = None,
        parse_pool: ParsePool | None = None,
        drainer: SpoolDrainer | None = None,
    ):
        self.handler = handler
        self.parse_pool = parse_pool
        self.drainer = drainer
        self.host = host
        self.port = port
        self.limits = limits
        self.tls_context = tls_context
        self.require_tls = bool(tls_context and require_tls)
        self.hostname = hostname or "localhost"
        self.active_connections = 0
        self._loop = asyncio.new_event_loop()
        self._executor = ThreadPoolExecutor(max_workers=EXECUTOR_THREADS, thread_name_prefix="smtp-store")
        self._loop.set_default_executor(self._executor)
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def listeners(self) -> list[str]:
        """URLs shown by run.py at start-up."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return [f"smtp://{host}:{self.port}"]

    def start(self, timeout: float = 10.0) -> RunningSmtp:
        """Start the spool drain, then bind and serve in a background thread; raise if the port cannot be bound."""
        if self.drainer is not None:
            self.drainer.start()  # before accepting mail: it cleans crash leftovers first
        self._thread = threading.Thread(target=self._run, name="smtp", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("SMTP server did not start in time")
        if self._error is not None:
            self._thread.join()
            if self.drainer is not None:
                self.drainer.stop()
            if self.parse_pool is not None:
                self.parse_pool.shutdown()
            raise self._error
        log.info("smtp listening on %s:%s (max %d bytes, %d connections, tls %s)", self.host, self.port,
                 self.limits.max_bytes, self.limits.max_connections,
                 "required" if self.require_tls else ("on" if self.tls_context else "off"))
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                self._loop.create_server(self._new_connection, host=self.host, port=self.port)
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as error:  # reported to start() in the caller's thread
            self._error = error
            self._ready.set()
            self._loop.close()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.run_until_complete(self._server.wait_closed())
            # A delivery already inside the executor finishes its spool write; its client saw no
            # 250 and will retry: a second import of the same file, which replaces the first.
            self._executor.shutdown(wait=True)
            self._loop.close()

    def _new_connection(self) -> asyncio.Protocol:
        if self.active_connections >= self.limits.max_connections:
            log.warning("smtp connection refused channel=%s reason=too-many-connections (%d)", CHANNEL,
                        self.active_connections)
            return _Busy()
        self.active_connections += 1
        return _Session(
            self.handler,
            on_close=self._connection_closed,
            on_refused=getattr(self.handler, "refuse_unreceived", None),
            loop=self._loop,
            hostname=self.hostname,
            ident="Renkei ESMTP",
            data_size_limit=self.limits.max_bytes,
            enable_SMTPUTF8=True,
            timeout=self.limits.timeout,
            command_call_limit=self.limits.max_commands,
            tls_context=self.tls_context,
            require_starttls=self.require_tls,
        )

    def _connection_closed(self) -> None:
        self.active_connections -= 1

    def stop(self, timeout: float = 15.0) -> None:
        """Stop listening, close the sessions, let a store in progress finish, end the threads."""
        if self._thread is None:
            return
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("smtp thread did not end within %.0f s", timeout)
        self._thread = None
        if self.drainer is not None:
            self.drainer.stop(timeout)
        if self.parse_pool is not None:  # after the drain: it parses with the pool
            self.parse_pool.shutdown()
        log.info("smtp stopped")


# ---------------------------------------------------------------------------------------
# Wiring to the app: the only place that knows the services.


class _AppServices:
    """Binds the ingest and integration services, each call in its own app context (fresh session)."""

    def __init__(self, app, parse: Callable[[bytes], ParsedMail] = parse_mail):
        self.app = app
        self.importer = MailImporter(ingest=self.receive, record_failure=self.record_failure, parse=parse)

    def resolve_recipient(self, address: str) -> Recipient | None:
        from app.services import integration

        with self.app.app_context():
            account = integration.account_for_inbound_address(address)
            if account is None:
                return None
            standing = Standing.of(account, integration.get_settings(account.id))
            return Recipient(account_id=account.id, label=account.slug, mode=standing.mode, status=standing.status,
                             senders=standing.senders, enabled=standing.enabled)

    def store_spooled(self, entry: spool.Entry) -> None:
        """Move one spool entry into the database (the drain's store): a mail is parsed into its imports."""
        from app.extensions import db
        from app.models import Account

        with self.app.app_context():
            account_ids = [a for a in (entry.account_ids or (entry.account_id,)) if db.session.get(Account, a)]
        if not account_ids:
            raise spool.Unstorable(f"account(s) {entry.account_ids or entry.account_id} no longer exist")
        self.importer.import_mail(account_ids, entry.data, sender=entry.sender or "",
                                  label=",".join(f"#{a}" for a in account_ids), delivery=entry.delivery)

    def receive(self, account_id: int, filename: str, data: bytes, *, sender: str | None,
                dedupe_key: str | None, note: str | None, ignored: list[str] | None = None) -> None:
        """Store one file as a queued import (a repeat of its dedupe key stores nothing)."""
        from app.services import ingest

        with self.app.app_context():
            imp = ingest.receive(account_id, filename, data, channel=CHANNEL, sender=sender,
                                 dedupe_key=dedupe_key, note=note, ignored=ignored)
            log.info("smtp spool drained account=#%s channel=%s file=%s import=#%s", imp.account_id, CHANNEL,
                     imp.filename, imp.id)

    def record_refusal(self, account_id: int, *, filename: str, sender: str | None, status: str,
                       note: str | None) -> None:
        from app.services import ingest

        with self.app.app_context():
            ingest.record_refusal(account_id, channel=CHANNEL, filename=filename, sender=sender, status=status,
                                  note=note)

    def record_failure(self, account_id: int, *, filename: str, sender: str | None, message: str,
                       dedupe_key: str | None, note: str | None, ignored: list[str] | None = None) -> None:
        from app.services import ingest

        with self.app.app_context():
            ingest.record_failure(account_id, channel=CHANNEL, filename=filename, sender=sender, message=message,
                                  dedupe_key=dedupe_key, note=note, ignored=ignored)


def tls_context_from(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """A server TLS context for STARTTLS from a PEM certificate (chain) and key; None when not configured."""
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key or None)
    return context


def build_drainer(app, parse: Callable[[bytes], ParsedMail] = parse_mail) -> SpoolDrainer:
    """The spool of `{DATA_DIR}/spool/mail` and its drain (parse, then the app's ingest service)."""
    return SpoolDrainer(spool.mail_folder(app.config["DATA_DIR"]), _AppServices(app, parse).store_spooled)


def build_handler(app, parse: Callable[[bytes], ParsedMail] = parse_mail,
                  drainer: SpoolDrainer | None = None) -> MailHandler:
    """The handler bound to the app's services; accepted mails go to `drainer`'s spool."""
    services = _AppServices(app, parse)
    drainer = drainer or build_drainer(app, parse)
    _listen_for_recipient_changes()
    ttl = config.get(app, "SMTP_RECIPIENT_CACHE_SECONDS")
    return MailHandler(
        resolve_recipient=RecipientCache(services.resolve_recipient, ttl=ttl),
        spool_mail=drainer.write_mail,
        record_refusal=services.record_refusal,
        parse=parse,
    )


def start(app) -> RunningSmtp:
    """Start the SMTP server for `app` on HOST:SMTP_PORT (0 = a free port) and return it running."""
    # aiosmtpd logs every command at INFO; we log one line per message instead.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    limits = Limits(
        max_bytes=config.get(app, "SMTP_MAX_BYTES"),
        max_connections=config.get(app, "SMTP_MAX_CONNECTIONS"),
        max_commands=config.get(app, "SMTP_MAX_COMMANDS"),
        timeout=config.get(app, "SMTP_TIMEOUT"),
    )
    tls = tls_context_from(config.get(app, "SMTP_TLS_CERT"), config.get(app, "SMTP_TLS_KEY"))
    require_tls = config.get(app, "SMTP_REQUIRE_TLS")
    if require_tls and tls is None:
        raise RuntimeError("RENKEI_SMTP_REQUIRE_TLS is set but RENKEI_SMTP_TLS_CERT is not")
    processes = config.get(app, "SMTP_PARSE_PROCESSES")
    pool = ParsePool(processes) if processes > 0 else None
    drainer = build_drainer(app, pool or parse_mail)
    server = RunningSmtp(
        build_handler(app, pool or parse_mail, drainer),
        parse_pool=pool,
        drainer=drainer,
        host=app.config.get("HOST", "127.0.0.1"),
        port=int(app.config.get("SMTP_PORT", 2525)),
        limits=limits,
        tls_context=tls,
        require_tls=require_tls,
        hostname=app.config.get("MAIL_DOMAIN") or "localhost",
    )
    return server.start()
