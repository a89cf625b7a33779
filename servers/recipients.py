"""Who is behind an issued address (送信先メールアドレス): the SMTP handler's Recipient and its cache.

A look-up needs an app context and a database round trip; the cache answers a repeated RCPT on
the event loop itself. Changes to accounts and integration settings committed in this process
empty it at once (ORM listeners); changes made by another process show within its time to live.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.services.admission import Standing


@dataclass(frozen=True)
class Recipient:
    """What the handler needs to know about the account behind an issued address."""

    account_id: int
    label: str  # for log lines (the account's slug)
    mode: str  # mail | ftp | api
    status: str  # active | stopped
    senders: frozenset[str]  # 送信元メールアドレス, lower case
    enabled: bool = True  # 外部連携設定
    networks: tuple[str, ...] = ()  # 送信元サーバー (empty = any)

    @property
    def standing(self) -> Standing:
        """What admission decides on (a snapshot taken at RCPT: DATA needs no database)."""
        return Standing(enabled=self.enabled, mode=self.mode, status=self.status, senders=self.senders,
                        networks=self.networks)


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


