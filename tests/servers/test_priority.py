"""Background work runs below the threads that answer clients (servers/priority.py): the import
and mail threads of the worker, the SMTP spool drain and the MIME-parsing processes."""
from __future__ import annotations

import os
import sys
import threading

import pytest

from app.services import queue
from servers import spooldrain
from servers.priority import BACKGROUND_NICE
from servers.worker import Worker

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads have their own nice value on Linux")


def expected_nice() -> int:
    return min(19, os.getpriority(os.PRIO_PROCESS, 0) + BACKGROUND_NICE)


def this_thread_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_worker_imports_at_background_priority(app, monkeypatch):
    seen: list[int] = []
    ran = threading.Event()

    def process_next():
        seen.append(this_thread_nice())
        ran.set()
        return None

    monkeypatch.setattr(queue, "process_next", process_next)
    worker = Worker(app, poll_seconds=60)
    worker.start()
    try:
        assert ran.wait(30)
    finally:
        worker.stop()
    assert seen[0] == expected_nice()
    assert this_thread_nice() == os.getpriority(os.PRIO_PROCESS, 0)  # the caller's thread is left alone


def test_the_smtp_spool_drain_runs_at_background_priority(tmp_path):
    seen: list[int] = []
    stored = threading.Event()

    def store(entry):
        seen.append(this_thread_nice())
        stored.set()

    drainer = spooldrain.SpoolDrainer(tmp_path, store)
    drainer.start()
    try:
        drainer.write_mail([1], b"From: a@example.com\r\n\r\nbody\r\n", sender="a@example.com")
        assert stored.wait(30)
    finally:
        drainer.stop()
    assert seen[0] == expected_nice()


def test_mime_parsing_processes_run_at_background_priority():
    pool = spooldrain.ParsePool(1)
    try:
        child_nice = pool._pool.submit(os.getpriority, os.PRIO_PROCESS, 0).result(timeout=60)
    finally:
        pool.shutdown()
    assert child_nice == expected_nice()
