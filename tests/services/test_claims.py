"""Claims of dead holders are taken back at once: lock files in the data folder, and leases (PostgreSQL).

A "holder" that is another process is played by a real child process that locks a lock file
the way Renkei does and is then killed with SIGKILL; a holder on another machine (no lock file
here) is a claimed_by naming a nonce that has no file in this data folder.
"""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import select, update

from app.extensions import db
from app.models import Import
from app.services import claims, ingest, queue, runner
from tests.fixtures.ingest import csv_file, ingest_options, stored_lines
from tests.fixtures.waiting import wait_for

# A child that locks the lock file as a live holder does, says so, and waits until it is killed.
_HOLDER = ("import fcntl, os, sys\n"
           "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
           "fcntl.flock(fd, fcntl.LOCK_EX)\n"
           "print('locked', flush=True)\n"
           "sys.stdin.read()\n")


def _claim_as(import_id: int, holder_id: str, lease_until: dt.datetime | None = None) -> None:
    """Make the import look claimed by `holder_id` (another process) just now."""
    db.session.execute(update(Import).where(Import.id == import_id).values(
        status=Import.RUNNING, claimed_at=dt.datetime.utcnow(), claimed_by=holder_id, lease_until=lease_until,
        attempts=1))
    db.session.commit()


def _status(import_id: int) -> str:
    db.session.rollback()
    return db.session.scalar(select(Import.status).where(Import.id == import_id))


class _ChildHolder:
    """A live holder in another process: its lock file is in this data folder and locked."""

    def __init__(self, data_dir: str):
        self.nonce = uuid.uuid4().hex
        self.id = f"{os.uname().nodename}:0:{self.nonce}"
        folder = Path(data_dir) / claims.FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{self.nonce}.lock"
        self.process = subprocess.Popen([sys.executable, "-c", _HOLDER, str(self.path)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "locked"

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill9()
        self.process.stdin.close()
        self.process.stdout.close()


def test_a_claim_of_a_killed_process_is_requeued_at_once_and_a_live_ones_never(app, make_account):
    acc = make_account("acme", **ingest_options())
    imp = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
    child = _ChildHolder(app.config["DATA_DIR"])
    try:
        # Claimed long ago by a holder that still lives (a long import): never taken away from it.
        _claim_as(imp.id, child.id)
        db.session.execute(update(Import).where(Import.id == imp.id)
                           .values(claimed_at=dt.datetime.utcnow() - dt.timedelta(hours=2)))
        db.session.commit()
        assert queue.requeue_stale(300) == 0
        assert _status(imp.id) == Import.RUNNING

        child.kill9()
        # At once: neither the claim's age nor any lease is waited for.
        db.session.execute(update(Import).where(Import.id == imp.id).values(claimed_at=dt.datetime.utcnow()))
        db.session.commit()
        assert queue.requeue_stale(300) == 1
    finally:
        child.close()
    assert _status(imp.id) == Import.QUEUED
    done = queue.process_next()
    assert (done.id, done.status, done.attempts, done.claimed_by) == (imp.id, Import.SUCCEEDED, 2, None)


def test_a_claim_whose_lease_ran_out_is_requeued_and_one_with_a_lease_is_left(app, make_account):
    acc = make_account("acme", **ingest_options())
    imp = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
    elsewhere = f"other-machine:4242:{uuid.uuid4().hex}"  # no lock file on this data folder
    now = dt.datetime.utcnow()

    _claim_as(imp.id, elsewhere, lease_until=now + dt.timedelta(seconds=60))
    assert queue.requeue_stale(300) == 0
    _claim_as(imp.id, elsewhere, lease_until=None)  # no lease and young: not known to be dead
    assert queue.requeue_stale(300) == 0

    _claim_as(imp.id, elsewhere, lease_until=now - dt.timedelta(seconds=1))
    assert queue.requeue_stale(300) == 1
    assert _status(imp.id) == Import.QUEUED


def test_a_claim_of_this_process_is_never_requeued_however_old(app, make_account):
    acc = make_account("acme", **ingest_options())
    imp = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
    assert queue.claim_next() == imp.id
    db.session.execute(update(Import).where(Import.id == imp.id).values(
        claimed_at=dt.datetime(2000, 1, 1), lease_until=None))
    db.session.commit()
    assert queue.requeue_stale(300) == 0
    assert runner.run_import(imp.id).status == Import.SUCCEEDED


def test_the_claim_names_this_process_and_its_lock_file_is_held(app, make_account):
    acc = make_account("acme", **ingest_options())
    imp = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
    assert queue.claim_next() == imp.id
    holder_id = db.session.scalar(select(Import.claimed_by).where(Import.id == imp.id))
    host, pid, nonce = holder_id.rsplit(":", 2)
    assert (host, int(pid)) == (os.uname().nodename, os.getpid())
    lock = Path(app.config["DATA_DIR"]) / claims.FOLDER / f"{nonce}.lock"
    assert lock.read_text().strip() == holder_id
    # Another process sees the file locked: this holder lives.
    probe = subprocess.run([sys.executable, "-c",
                            "import fcntl, os, sys\n"
                            "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
                            "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                            "except BlockingIOError:\n    print('held')\n", str(lock)],
                           capture_output=True, text=True, timeout=30)
    assert probe.stdout.strip() == "held"


def test_the_lease_is_renewed_while_the_holder_lives_on_postgresql(app, make_account):
    """PostgreSQL: the heartbeat moves lease_until on; SQLite claims carry no lease (the lock file tells)."""
    app.config["CLAIM_LEASE_SECONDS"] = 1  # heartbeat every 0.2 s
    acc = make_account("acme", **ingest_options())
    imp = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
    assert queue.claim_next() == imp.id
    lease = select(Import.lease_until).where(Import.id == imp.id)
    first = db.session.scalar(lease)
    if not claims.has_lease():
        assert first is None
        return
    assert first is not None
    wait_for(lambda: db.session.scalar(lease) > first + dt.timedelta(seconds=1), timeout=20,
             what="the heartbeat to renew the lease")
    runner.run_import(imp.id)
    db.session.rollback()
    assert db.session.scalar(lease) is None


def test_an_import_whose_claim_was_taken_back_meanwhile_is_not_finished_twice(app, make_account):
    acc = make_account("acme", **ingest_options())
    imp = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
    assert queue.claim_next() == imp.id
    # Its lease ran out while the database was out of reach; another worker took it.
    other = f"other-machine:4242:{uuid.uuid4().hex}"
    _claim_as(imp.id, other)
    done = runner.run_import(imp.id)
    assert (done.status, done.claimed_by) == (Import.RUNNING, other)
    assert stored_lines(imp.id) == []


def test_lock_files_of_dead_holders_are_swept_but_not_those_claims_name(app, make_account, monkeypatch):
    monkeypatch.setattr(claims, "SWEEP_AGE_SECONDS", 0)
    acc = make_account("acme", **ingest_options())
    folder = Path(app.config["DATA_DIR"]) / claims.FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    named, unnamed = uuid.uuid4().hex, uuid.uuid4().hex
    for nonce in (named, unnamed):
        (folder / f"{nonce}.lock").write_text("x\n")
    imp = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
    _claim_as(imp.id, f"h:1:{named}", lease_until=dt.datetime.utcnow() + dt.timedelta(hours=1))
    mine = claims.holder()
    mine._swept_at = 0.0
    # The named holder is dead too, so its claim is requeued in this round; its file goes next time.
    assert queue.requeue_stale(300) == 1
    assert not (folder / f"{unnamed}.lock").exists()
    assert (folder / f"{named}.lock").exists()
    assert (folder / f"{mine.nonce}.lock").exists()
