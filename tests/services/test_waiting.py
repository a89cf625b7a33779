"""Waiting for a received import to end (services.queue): the only ways a channel learns an outcome.

No channel runs an import: API ?wait=1 and the FTP checks wait for the worker (`wait_for`),
and a flask command runs the queue through the worker's own step (`run_until_ended`).
"""
from __future__ import annotations

import threading

from sqlalchemy import select, update

from app.extensions import db
from app.models import Import, OutboxMail
from app.services import ingest, queue
from tests.fixtures.ingest import csv_file, ingest_options, stored


def status_of(import_id: int) -> str:
    db.session.rollback()
    return db.session.scalar(select(Import.status).where(Import.id == import_id))


def waiting_in_a_thread(app, import_id: int) -> tuple[threading.Thread, list[str]]:
    """A thread already inside queue.wait_for(import_id, 3600); the status it returns lands in the list."""
    answers: list[str] = []
    started = threading.Event()

    def waiter():
        with app.app_context():
            started.set()
            answers.append(queue.wait_for(import_id, 3600).status)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert started.wait(10)
    return thread, answers


def test_wait_for_without_a_worker_answers_with_the_import_still_queued(app, make_account):
    acc = make_account("acme", **ingest_options())
    received = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")

    imp = queue.wait_for(received.id, 0.0)

    assert (imp.id, imp.status) == (received.id, Import.QUEUED)
    assert stored(acc) == [] and status_of(received.id) == Import.QUEUED


def test_wait_for_is_woken_when_a_worker_of_this_process_ends_the_import(app, make_account, monkeypatch):
    # Polling would take an hour: only the announcement of the ended import can end this wait in time.
    monkeypatch.setattr(queue, "WAIT_POLL_SECONDS", 3600)
    acc = make_account("acme", **ingest_options())
    received = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
    thread, answers = waiting_in_a_thread(app, received.id)
    assert queue.process_next().id == received.id  # the worker's step, here in the test's thread
    thread.join(10)
    assert not thread.is_alive() and answers == [Import.SUCCEEDED]


def test_wait_for_notices_an_import_ended_by_another_process(app, make_account, monkeypatch):
    monkeypatch.setattr(queue, "WAIT_POLL_SECONDS", 0.01)
    acc = make_account("acme", **ingest_options())
    received = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
    thread, answers = waiting_in_a_thread(app, received.id)
    # What a worker of another process leaves: a committed status, and no announcement here.
    db.session.execute(update(Import).where(Import.id == received.id).values(status=Import.FAILED))
    db.session.commit()
    thread.join(10)
    assert not thread.is_alive() and answers == [Import.FAILED]


def test_wait_for_with_the_worker_running_answers_the_outcome(app, make_account, import_worker):
    acc = make_account("acme", **ingest_options())
    good = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
    bad = ingest.receive(acc.id, "20180517.csv", b"No.,x\r\n", channel="api")
    assert queue.wait_for(good.id, 30).status == Import.SUCCEEDED
    assert queue.wait_for(bad.id, 30).status == Import.FAILED


def test_run_until_ended_runs_the_queue_oldest_first_until_the_import_has_ended(app, make_account):
    """A process without a worker (the CLI) imports through the worker's step, in the queue's order."""
    acc = make_account("acme", **ingest_options())
    first = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 100, 1, 1, ""]]), channel="mail")
    second = ingest.receive(acc.id, "20180516.csv", csv_file([[2, 200, 2, 2, ""]]), channel="cli", sender="cli")
    later = ingest.receive(acc.id, "20180517.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")

    imp = queue.run_until_ended(second.id)

    assert (imp.status, imp.attempts, imp.replaced_import_id) == (Import.SUCCEEDED, 1, first.id)
    assert status_of(first.id) == Import.SUCCEEDED
    # The same name replaced in the order the files came: the second file's data is on the board.
    assert [(no, values) for no, values, _note, _id in stored(acc, "20180516")] == [
        (2, {"売上": 200, "粗利": 2, "件数": 2})]
    assert status_of(later.id) == Import.QUEUED  # not ours and not before ours: left for the worker


def test_run_until_ended_reports_a_failed_import(app, make_account):
    acc = make_account("acme", **ingest_options())
    received = ingest.receive(acc.id, "20180516.csv", b"No.,x\r\n", channel="cli", sender="cli")
    assert queue.run_until_ended(received.id).status == Import.FAILED
    assert db.session.scalars(select(OutboxMail.kind)).all() == ["error"]
