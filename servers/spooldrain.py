"""After `250`: the spool drain thread, the full MIME parse (in child processes) and the imports of a mail.

The drain moves each spool entry (`app.services.spool`) into the database in order: MailImporter
parses it and hands each CSV to `services.ingest.receive` (through the injected callables), then
the entry is deleted.

Decisions (where docs/spec.md is silent):
- A mail with no `.csv` attachment is accepted (`250`) and becomes a failed import
  "(CSV添付なし)" with one error, so the error report goes to エラー報告メールアドレス.
- A mail the full parse cannot read (nested too deep) was already answered `250`: it becomes a
  failed import "(メール)" with one error and an error report (the sender learns it that way).
- DKIM and SPF are verified here, after `250` (DNS look-ups must not delay the answer), before
  the imports: each import records them with the envelope sender, peer and HELO. An account
  whose 送信元の認証 is not met gets, instead of its imports, one failed import with that reason
  and an error report (to its エラー報告メールアドレス, never to the sender).
"""
from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from app.importer.filename import ENDINGS_TEXT
from app.services import spool
from app.services.admission import Standing, authenticated
from app.services.senderauth import Authentication, Origin

from .mailhandler import CHANNEL, NO_CSV_NAME, UNNAMED, _names
from .mailparse import MailRejected, MailUnreadable, ParsedMail, parse_head, parse_mail
from .priority import lower_this_process, lower_this_thread

log = logging.getLogger("servers.smtp")  # the log lines keep the logger name they had before the split

UNREADABLE_ADVICE = (
    "このメールの添付ファイルは1つも取り込んでいません。"
    "転送や入れ子にせず、CSV・Excelなどのファイルを直接添付した新しいメールで送り直してください。"
)
TRUNCATED_MESSAGE = (
    "添付ファイルがメールの途中で切れている可能性があるため、取り込みませんでした"
    "(マルチパートの終わりの区切りがありません)。同じファイルをもう一度送ってください。"
)
NO_CSV_MESSAGE = (
    "メールに取り込めるファイル(CSV・Excel・ODS)が添付されていませんでした。"
    f"ファイル名が {ENDINGS_TEXT} のいずれかで終わるファイル(例: 20180516.csv、20180516.xlsx)を添付して送り直してください。"
)


class MailImporter:
    """The spool drain's half of a mail, after `250`: the full parse, then one import per CSV and account.

    Injected callables (called in the drain thread):
    - ingest(account_id, filename, data, *, sender, dedupe_key, note, ignored) -> None (a queued import)
    - record_failure(account_id, *, filename, sender, message, dedupe_key, note, ignored) -> None
      (a failed import with one error and its error report: the sender already had its `250`)
    - parse(raw) -> ParsedMail, raising MailUnreadable (default: mailparse.parse_mail in the calling thread)
    - authenticate(raw, origin) -> Authentication (DKIM and SPF; None: not checked)
    - standing(account_id) -> Standing (the account's 送信元の認証 is read from it; None: not applied)
    Both ingest and record_failure also get `trace`: the Import columns of the mail's origin and its
    DKIM/SPF results.

    `ignored` is the list of the names of every attachment that was not imported (e.g. an .xlsx):
    it is stored on each import of the mail (Import.ignored_attachments) for the report mail.

    Every record carries a dedupe key built from the spool entry's delivery id, so a drain
    repeated after a crash stores nothing twice, while a second delivery of the same message
    (same Message-ID) is a second import.
    """

    def __init__(self, *, ingest: Callable[..., Any], record_failure: Callable[..., Any],
                 parse: Callable[[bytes], ParsedMail] = parse_mail,
                 authenticate: Callable[[bytes, Origin], Authentication] | None = None,
                 standing: Callable[[int], Standing] | None = None):
        self.ingest = ingest
        self.record_failure = record_failure
        self.parse = parse
        self.authenticate = authenticate
        self.standing = standing

    def import_mail(self, account_ids: int | list[int], raw: bytes, *, sender: str, label: str = "-",
                    delivery: str | None = None, origin: Origin | None = None) -> int:
        """Store the imports of one accepted message for each account; return how many records were written.

        `delivery` is the spool entry's id; without it (an entry of an earlier version) the keys
        come from the Message-ID, as they did when that entry was written.
        """
        if isinstance(account_ids, int):
            account_ids = [account_ids]
        auth = None
        if self.authenticate is not None and origin is not None and origin.peer_address:
            auth = self.authenticate(raw, origin)
            log.info("smtp sender auth account=%s channel=%s mail_from=%s peer=%s dkim=%s (%s) spf=%s", label, CHANNEL,
                     origin.mail_from, origin.peer_address, auth.dkim, auth.dkim_domain or "-", auth.spf)
        trace = {**(origin.columns() if origin else {}), **(auth.columns() if auth else {})} or None
        try:
            mail = self.parse(raw)
        except (MailUnreadable, RecursionError) as error:
            reason = getattr(error, "reason", None) or "メールの構造を読み取れません"
            return self._unreadable(account_ids, raw, sender, f"{reason}。{UNREADABLE_ADVICE}", label, delivery,
                                    trace)
        except MailRejected as error:
            # Cannot happen for a From: that passed the check before 250; kept so a change in the
            # parser never turns an accepted mail into a silent loss.
            return self._unreadable(account_ids, raw, sender,
                                    f"差出人を確認できません: {error.reason}。{UNREADABLE_ADVICE}", label, delivery,
                                    trace)
        except Exception:
            # Parsing is pure: an unexpected error would recur on every retry and hold up every
            # mail behind this one in the spool, so it is reported instead of retried.
            log.exception("smtp parse failed account=%s channel=%s sender=%s", label, CHANNEL, sender)
            return self._unreadable(account_ids, raw, sender, f"メールの形式を解釈できませんでした。{UNREADABLE_ADVICE}",
                                    label, delivery, trace)

        prefix = f"mail:{delivery}" if delivery else f"mail:{mail.identity}"
        note = _ignored_note(mail)
        ignored = list(mail.ignored) or None
        written = 0
        for account_id in account_ids:
            if auth is not None and self.standing is not None:
                verdict = authenticated(self.standing(account_id), auth, mail.sender)
                if not verdict.accepted:
                    self.record_failure(account_id, filename=_names(mail), sender=sender, message=verdict.text,
                                        dedupe_key=f"{prefix}:unauthenticated", note=note, ignored=ignored,
                                        trace=trace)
                    log.info("smtp refused account=%s channel=%s sender=%s reason=unauthenticated dkim=%s spf=%s",
                             label, CHANNEL, sender, auth.dkim, auth.spf)
                    written += 1
                    continue
            if not mail.csvs:
                self.record_failure(account_id, filename=NO_CSV_NAME, sender=sender, message=NO_CSV_MESSAGE,
                                    dedupe_key=f"{prefix}:nocsv", note=note, ignored=ignored, trace=trace)
                log.info("smtp no csv account=%s channel=%s sender=%s ignored=%s", label, CHANNEL, sender,
                         ",".join(mail.ignored) or "-")
                written += 1
                continue
            for index, attachment in enumerate(mail.csvs):
                key = f"{prefix}:{index}:{attachment.sha256}"
                if attachment.truncated:
                    self.record_failure(account_id, filename=attachment.filename, sender=sender,
                                        message=TRUNCATED_MESSAGE, dedupe_key=key, note=note, ignored=ignored,
                                        trace=trace)
                else:
                    self.ingest(account_id, attachment.filename, attachment.data, sender=sender, dedupe_key=key,
                                note=note, ignored=ignored, trace=trace)
                written += 1
        return written

    def _unreadable(self, account_ids: list[int], raw: bytes, sender: str, message: str, label: str,
                    delivery: str | None, trace: dict | None = None) -> int:
        key = f"mail:{delivery or parse_head(raw).identity}:unreadable"
        for account_id in account_ids:
            self.record_failure(account_id, filename=UNNAMED, sender=sender, message=message, dedupe_key=key,
                                note=None, ignored=None, trace=trace)
            log.info("smtp unreadable account=%s channel=%s sender=%s", label, CHANNEL, sender)
        return len(account_ids)


def _ignored_note(mail: ParsedMail) -> str | None:
    if not mail.ignored:
        return None
    return "取り込めない形式の添付ファイルは無視しました: " + ", ".join(mail.ignored)


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

    def write_mail(self, account_ids: list[int], raw: bytes, *, sender: str, origin: Origin | None = None,
                   delivery: str | None = None) -> None:
        """Spool one whole message for its accounts durably (the handler's `spool_mail`), then wake the drain."""
        spool.write_mail(self.folder, account_ids=list(account_ids), sender=sender, raw=raw,
                         origin=dataclasses.asdict(origin) if origin is not None else None, delivery=delivery)
        self._wake.set()

    def wake(self) -> None:
        """Drain now instead of at the next poll."""
        self._wake.set()

    def alive(self) -> bool:
        """Whether the drain thread still runs and stop() was not asked."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

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

