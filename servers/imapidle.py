"""IDLE watchers of the `imap` part: between the minute's fetches, a mailbox's new mail is fetched as soon as its server announces it.

A watcher is one thread holding one IMAP connection to one mailbox: it selects the folder and
IDLEs (servers/imapclient.py); when the server announces mail, it runs the same
`Fetcher.fetch` as the minute's poll (on a connection of its own, under the account's lock),
then IDLEs again.

Decisions (where docs/spec.md is silent):
- At most MAX_WATCHED (20) mailboxes are watched, the first due accounts in account order; the
  others are polled every minute only. Each watcher costs a thread and a connection held open
  for as long as the part runs; 20 bounds the process's threads and sockets whatever the number
  of accounts, and providers count connections per user (one more per watched mailbox).
- A watcher is started after a successful poll fetch of a due account, so 受信方法, 外部連携,
  the mode and the backoff rule it as they rule the poll; an account no longer fetched well at
  the next minute (other mode, backing off, gone) has its watcher stopped.
- One IDLE lasts at most the poll period (and never more than 25 minutes, RFC 2177's rule):
  then the watcher reads the account's login again; a changed setting ends it, and the next
  minute starts one with the new setting.
- A server whose post-login CAPABILITY lacks IDLE is remembered with that login and only
  polled; asked again when the setting changes or the part restarts.
- A watcher that fails (connection, BYE, timeout, a failed fetch) ends quietly: the minute's
  poll reports and backs off as always, and the next successful poll starts a new watcher
  (at most one new connection a minute per mailbox).
"""
from __future__ import annotations

import logging
import threading
import time

from app.services import mailbox

from .imapclient import IDLE_MAX_SECONDS, MailboxClient, MailboxError

log = logging.getLogger(__name__)

MAX_WATCHED = 20


class Watcher:
    """One mailbox watched with IDLE in a thread of its own; stop() wakes and ends it."""

    def __init__(self, fetcher, login: mailbox.Login, round_seconds: float, on_end):
        self.fetcher = fetcher
        self.login = login
        self.account_id = login.account_id
        self.round_seconds = round_seconds
        self.on_end = on_end
        self.no_idle = False  # set when the server's CAPABILITY lacks IDLE
        self.stopping = threading.Event()
        self.idling = threading.Event()  # logged in, folder selected: from now on the server announces mail
        self._client: MailboxClient | None = None
        self._guard = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"imap-idle-{self.account_id}", daemon=True)

    def stop(self) -> None:
        self.stopping.set()
        with self._guard:
            client = self._client
        if client is not None:
            client.interrupt()  # a blocked read returns at once

    def _run(self) -> None:
        try:
            self._watch()
        except MailboxError as error:
            if not self.stopping.is_set():
                log.info("imap idle ended account=#%s: %s", self.account_id, error.text)
        except Exception:  # a bug or an answer we do not know: the minute's poll goes on without this watcher
            log.exception("imap idle failed account=#%s", self.account_id)
        finally:
            self.on_end(self)

    def _watch(self) -> None:
        fetcher = self.fetcher
        with MailboxClient(self.login, timeout=fetcher.timeout, ca_file=fetcher.ca_file) as client:
            with self._guard:
                if self.stopping.is_set():
                    return
                self._client = client
            try:
                if not client.can_idle:
                    self.no_idle = True
                    log.info("imap server offers no IDLE account=#%s host=%s: polled every minute", self.account_id,
                             self.login.host)
                    return
                client.select(self.login.folder)
                news = bool(client.uids())  # mail that came after the poll listed the folder
                self.idling.set()
                log.info("imap idle watching account=#%s host=%s folder=%s", self.account_id, self.login.host,
                         self.login.folder)
                while not self.stopping.is_set():
                    if news:
                        result = fetcher.fetch(self.account_id, give_up=self.stopping)
                        if not result.ok or self.stopping.is_set():
                            return
                    elif self._login_changed():
                        return
                    news = client.idle(self.round_seconds)
            finally:
                with self._guard:
                    self._client = None

    def _login_changed(self) -> bool:
        with self.fetcher.app.app_context():
            return mailbox.login(self.account_id) != self.login


class Watchers:
    """The part's watchers: update() after each minute's poll, close() when the part stops."""

    def __init__(self, fetcher, poll_seconds: float, limit: int = MAX_WATCHED):
        self.fetcher = fetcher
        self.round_seconds = min(poll_seconds, IDLE_MAX_SECONDS)
        self.limit = limit
        self._watchers: dict[int, Watcher] = {}
        self._started: list[Watcher] = []  # every watcher not yet ended, stopped ones too (for close)
        self._no_idle: dict[int, mailbox.Login] = {}
        self._guard = threading.Lock()
        self._closed = False

    def update(self, fetched: list[int]) -> None:
        """Watch these accounts (the ones the minute's poll fetched without error) up to the cap; stop the others."""
        with self._guard:
            for account_id in [a for a in self._watchers if a not in fetched]:
                self._watchers.pop(account_id).stop()
            candidates = [a for a in fetched if a not in self._watchers][:max(0, self.limit - len(self._watchers))]
        if not candidates:
            return
        with self.fetcher.app.app_context():
            logins = [mailbox.login(a) for a in candidates]
        with self._guard:
            for login in logins:
                if self._closed or len(self._watchers) >= self.limit:
                    return
                if login is None or self._no_idle.get(login.account_id) == login or login.account_id in self._watchers:
                    continue
                watcher = Watcher(self.fetcher, login, self.round_seconds, self._ended)
                self._watchers[login.account_id] = watcher
                self._started.append(watcher)
                watcher.thread.start()

    def _ended(self, watcher: Watcher) -> None:
        with self._guard:
            if self._watchers.get(watcher.account_id) is watcher:
                del self._watchers[watcher.account_id]
            if watcher in self._started:
                self._started.remove(watcher)
            if watcher.no_idle:
                self._no_idle[watcher.account_id] = watcher.login

    def watching(self) -> list[int]:
        """The accounts watched now: their watcher is connected, its folder selected (for tests)."""
        with self._guard:
            return sorted(a for a, watcher in self._watchers.items() if watcher.idling.is_set())

    def polled_only(self) -> list[int]:
        """The accounts whose server offers no IDLE (with their current login)."""
        with self._guard:
            return sorted(self._no_idle)

    def close(self, timeout: float) -> None:
        """Stop every watcher and wait for their threads, `timeout` seconds in all (a fetch in progress finishes)."""
        with self._guard:
            self._closed = True
            watchers = list(self._started)
            self._watchers.clear()
        for watcher in watchers:
            watcher.stop()
        deadline = time.monotonic() + timeout
        for watcher in watchers:
            watcher.thread.join(max(0.0, deadline - time.monotonic()))
            if watcher.thread.is_alive():
                log.warning("imap idle watcher account=#%s did not end within %.0f s", watcher.account_id, timeout)
