"""The import worker: a thread that runs queued imports and delivers the outbox.

Started by run.py, never by create_app:
    worker = Worker(app); worker.start(); ...; worker.stop()
Several processes may each run one against the same database: imports and mails are claimed
atomically, so no file is imported twice and no mail is sent twice.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask

from app.services import ingest, outbox, queue

from .mailer import relay_sender
from .priority import lower_this_thread

log = logging.getLogger(__name__)


class Worker:
    """Run queued imports, and deliver report mails, in daemon threads until stop().

    Mail goes out from a thread of its own, so a slow or unreachable relay never delays an import.
    """

    def __init__(self, app: Flask, *, poll_seconds: float | None = None):
        self.app = app
        self.poll_seconds = float(poll_seconds if poll_seconds is not None
                                  else app.config.get("WORKER_POLL_SECONDS", 1.0))
        self._wake = threading.Event()
        self._mail_wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._send: Callable | None = None
        relay = app.config.get("SMTP_RELAY")
        if relay:
            self._send = relay_sender(relay, app.config["MAIL_FROM"])

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def alive(self) -> bool:
        """Whether every thread of the worker still runs and stop() was not asked (GET /healthz)."""
        threads = self._threads
        return bool(threads) and not self._stopping.is_set() and all(thread.is_alive() for thread in threads)

    def start(self) -> None:
        """Start the threads; files received in this process wake the import thread at once."""
        if self.running:
            return
        self._stopping.clear()
        self._threads = [threading.Thread(target=self._loop, args=(self._wake, self.run_imports),
                                          name="renkei-worker", daemon=True)]
        if self._send is not None:
            self._threads.append(threading.Thread(target=self._loop, args=(self._mail_wake, self.deliver_mail),
                                                  name="renkei-mailer", daemon=True))
        ingest.add_listener(self.wake)
        for thread in self._threads:
            thread.start()
        log.info("worker started (poll %.1fs, relay %s)", self.poll_seconds, "on" if self._send else "off")

    def wake(self) -> None:
        """Make the worker look at the queue now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 30) -> None:
        """Stop after the import in progress and wait for the threads (at most `timeout` seconds in all)."""
        ingest.remove_listener(self.wake)
        self._stopping.set()
        self._wake.set()
        self._mail_wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s still busy after %.0fs; leaving it (its claimed import is requeued once "
                            "this process has ended)", thread.name, timeout)
        if self._threads and not self.running:
            log.info("worker stopped")
        self._threads = []

    def _loop(self, event: threading.Event, work: Callable[[], None]) -> None:
        lower_this_thread()  # imports and mail wait for the threads that answer clients (servers/priority.py)
        while not self._stopping.is_set():
            event.clear()
            work()
            event.wait(self.poll_seconds)

    def run_imports(self) -> None:
        """Take back the claims of ended processes, then import every queued file (until none is left or stop())."""
        stale = int(self.app.config.get("CLAIM_STALE_SECONDS", queue.STALE_SECONDS))
        self._job("requeue stale imports", queue.requeue_stale, stale)
        while not self._stopping.is_set():
            imported = self._job("import", queue.process_next)
            if imported is None:
                break
            self._mail_wake.set()  # its report is in the outbox now

    def deliver_mail(self) -> None:
        """Send every due outbox mail through the relay (nothing without a relay: mails stay pending)."""
        if self._send is not None:
            self._job("deliver mail", outbox.deliver_due, self._send)

    def run_once(self) -> None:
        """One synchronous round of both jobs (for tests and one-shot use)."""
        self.run_imports()
        self.deliver_mail()

    def _job(self, name: str, function: Callable, *args):
        """Run one unit of work in its own app context (fresh session); log and survive any error."""
        try:
            with self.app.app_context():
                return function(*args)
        except Exception:
            log.exception("worker job %r failed", name)
            return None
