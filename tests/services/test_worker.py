"""The worker thread end to end: receive -> wake -> import -> report mail through a real relay."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Import, OutboxMail
from app.services import ingest, queue, runner
from servers.worker import Worker
from tests.fixtures.waiting import wait_for
from tests.fixtures.ingest import csv_file, ingest_options

TIMEOUT = 15.0


def wait_for_status(import_id: int, statuses: set[str], timeout: float = TIMEOUT) -> str:
    """Wait until the import's status is one of `statuses`; return it."""
    def status() -> str | None:
        found = db.session.scalar(select(Import.status).where(Import.id == import_id))
        return found if found in statuses else None

    return wait_for(status, timeout, what=f"import #{import_id} to be {' or '.join(sorted(statuses))}")


@pytest.fixture
def worker_factory(app):
    workers: list[Worker] = []

    def make(**kwargs) -> Worker:
        worker = Worker(app, **kwargs)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop(timeout=10)


def test_worker_imports_received_files_and_sends_reports(app, make_account, smtp_relay, worker_factory):
    app.config["SMTP_RELAY"] = smtp_relay.url
    acc = make_account("acme", **ingest_options(success_to=["boss@acme.example"]))
    # A long poll interval: only wake() can make this test pass in time.
    worker = worker_factory(poll_seconds=3600)
    worker.start()

    good = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 100, 10, 1, ""]]), channel="api", sender="api")
    bad = ingest.receive(acc.id, "20180517.csv", csv_file([[1, "x", 10, 1, ""]]), channel="api", sender="api")
    worker.wake()

    assert wait_for_status(good.id, {"succeeded", "failed"}) == "succeeded"
    assert wait_for_status(bad.id, {"succeeded", "failed"}) == "failed"
    assert smtp_relay.wait_for(2, TIMEOUT)
    assert sorted(m.subject.split("】")[0] for m in smtp_relay.messages) == ["【取込エラー", "【取込完了"]
    # The relay has the mails; the worker records "sent" right after.
    wait_for(lambda: set(db.session.scalars(select(OutboxMail.status))) == {"sent"}, TIMEOUT,
             what="every report mail sent")


def test_receive_alone_wakes_a_running_worker(app, make_account, worker_factory):
    acc = make_account("acme", **ingest_options())
    worker = worker_factory(poll_seconds=3600)
    worker.start()
    imp = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
    assert wait_for_status(imp.id, {"succeeded", "failed"}) == "succeeded"


def test_without_relay_mails_stay_in_the_outbox(app, make_account, worker_factory):
    acc = make_account("acme", **ingest_options())
    worker = worker_factory(poll_seconds=3600)
    worker.start()
    imp = ingest.receive(acc.id, "20180516.csv", b"No.,x\r\n", channel="api")
    assert wait_for_status(imp.id, {"succeeded", "failed"}) == "failed"
    worker.stop()
    db.session.rollback()
    assert db.session.scalars(select(OutboxMail.status)).all() == ["pending"]


def test_worker_survives_a_failing_job(app, make_account, worker_factory, monkeypatch):
    acc = make_account("acme", **ingest_options())
    real = queue.process_next
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return real()

    monkeypatch.setattr(queue, "process_next", flaky)
    worker = worker_factory(poll_seconds=0.05)
    imp = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
    worker.start()
    assert wait_for_status(imp.id, {"succeeded", "failed"}) == "succeeded"
    assert len(calls) >= 2


def test_stop_finishes_the_import_in_progress(app, make_account, worker_factory, monkeypatch):
    acc = make_account("acme", **ingest_options())
    import threading

    started, release = threading.Event(), threading.Event()
    real = runner.run_import

    def slow(import_id):
        started.set()
        release.wait(TIMEOUT)
        return real(import_id)

    monkeypatch.setattr(runner, "run_import", slow)
    imp = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
    worker = worker_factory(poll_seconds=3600)
    worker.start()
    assert started.wait(TIMEOUT)
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    release.set()
    stopper.join(TIMEOUT)
    assert not stopper.is_alive() and not worker.running
    assert wait_for_status(imp.id, {"succeeded"}, timeout=0) == "succeeded"


def test_a_hanging_relay_does_not_hold_up_imports(app, make_account, worker_factory, monkeypatch):
    import threading

    import servers.worker as worker_module

    acc = make_account("acme", **ingest_options())
    sending, release = threading.Event(), threading.Event()

    def hanging_relay(url, mail_from):
        def send(mail):
            sending.set()
            release.wait(TIMEOUT)
        return send

    monkeypatch.setattr(worker_module, "relay_sender", hanging_relay)
    app.config["SMTP_RELAY"] = "smtp://relay.invalid:25"
    worker = worker_factory(poll_seconds=3600)
    worker.start()
    try:
        first = ingest.receive(acc.id, "20180516.csv", b"No.,x\r\n", channel="api")  # fails: error mail
        assert wait_for_status(first.id, {"failed"}) == "failed"
        assert sending.wait(TIMEOUT)  # the mailer is now stuck on the relay
        second = ingest.receive(acc.id, "20180517.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
        assert wait_for_status(second.id, {"succeeded"}) == "succeeded"
    finally:
        release.set()
    wait_for(lambda: db.session.scalars(select(OutboxMail.status)).all() == ["sent"], TIMEOUT,
             what="the report mail sent")
