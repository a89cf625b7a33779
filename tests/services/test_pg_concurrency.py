"""Several processes on one database: two workers drain one import queue, two first starts migrate at once.

Written for PostgreSQL, where several machines may run `run.py --only …` against one
database (README "PostgreSQL / 複数台構成"); it runs on SQLite as well, where two processes on
one file are just as possible. Each process is spawned (nothing inherited from pytest) with
its own app and connection pool; a barrier makes them start the contested step at the same
moment, then the stored outcome is checked from the test.
"""
from __future__ import annotations

import multiprocessing
import traceback
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from app.extensions import db
from app.models import Import
from app.services import ingest, queue
from tests.fixtures import faketime_sleep
from tests.fixtures.ingest import csv_file, ingest_options, stored_lines

WORKERS = 2
FILES = 30
# Three file names are sent twice (a corrected file): their two imports replace each other.
RESENT = ("20180502.csv", "20180503.csv", "20180504.csv")
JOIN_TIMEOUT = 180


def _drain(database_url: str, data_dir: str, start, results) -> None:
    """Worker process: build an app on the shared database, wait for the other worker, import until the queue is empty."""
    try:
        from app import create_app

        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "DATA_DIR": data_dir,
                          "SECRET_KEY": "test-secret", "SMTP_RELAY": None, "PUBLIC_URL": "http://renkei.test"})
        done: list[int] = []
        with app.app_context():
            db.session.execute(select(1))  # connected before the race starts
            db.session.rollback()
            start.wait(timeout=60)
            while (imp := queue.process_next()) is not None:
                done.append(imp.id)
            db.engine.dispose()
        results.put(("ok", done))
    except BaseException:  # the test must see why a worker died, not a hang
        results.put(("error", traceback.format_exc()))


def _upgrade(database_url: str, data_dir: str, start, results) -> None:
    """Process: build an app on the (empty) database, wait for the other one, apply the migrations."""
    try:
        from app import create_app
        from app.extensions import upgrade_database

        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "DATA_DIR": data_dir,
                          "SECRET_KEY": "test-secret", "SMTP_RELAY": None})
        with app.app_context():
            db.session.execute(select(1))
            db.session.rollback()
            start.wait(timeout=60)
            upgrade_database(app)
            db.engine.dispose()
        results.put(("ok", None))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def _spawned(target, *args) -> None:
    """A spawned process's entry: a new interpreter runs no conftest, so it mends time.sleep itself.

    Under the CI's faketime pass every time.sleep raises EINVAL unless replaced (see
    tests/fixtures/faketime_sleep.py); the app sleeps when it retries a locked WAL switch.
    """
    faketime_sleep.install()
    target(*args)


def _sleep_once(start, results) -> None:
    """Process: sleep as the app's retries do, and say whether that worked."""
    import time

    try:
        start.wait(timeout=60)
        time.sleep(0.001)
        results.put(("ok", None))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def _run_together(target, *args) -> list:
    """Run `target(*args, barrier, queue)` in WORKERS spawned processes; return what each put in the queue."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    processes = [ctx.Process(target=_spawned, args=(target, *args, start, results)) for _ in range(WORKERS)]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=JOIN_TIMEOUT) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    errors = [detail for kind, detail in outcomes if kind == "error"]
    assert not errors, "\n".join(errors)
    return [detail for _kind, detail in outcomes]


def _queue_files(acc) -> dict[int, int]:
    """Queue FILES imports (RESENT names twice); return {import id: rows in its file}."""
    names = [f"201805{day:02d}.csv" for day in range(1, FILES - len(RESENT) + 1)] + list(RESENT)
    queued = {}
    for i, name in enumerate(names):
        rows = 5 + i * 7  # different sizes, so the workers finish at different times
        data = csv_file([[1 + n % 3, 1000 + i, n, 1, ""] for n in range(rows)])
        imp = ingest.receive(acc.id, name, data, channel="ftp", sender=None)
        queued[imp.id] = rows
    assert len(queued) == FILES
    return queued


def test_two_worker_processes_import_every_queued_file_exactly_once(app, make_account, database_url):
    acc = make_account("acme", **ingest_options())
    queued = _queue_files(acc)
    db.session.remove()

    per_worker = _run_together(_drain, database_url, app.config["DATA_DIR"])

    # Each queued import was run by exactly one worker, and both workers took part.
    ran = Counter(import_id for done in per_worker for import_id in done)
    assert sorted(ran) == sorted(queued)
    assert max(ran.values()) == 1, {i: n for i, n in ran.items() if n > 1}
    assert all(per_worker), per_worker

    # Stored: every import succeeded after one claim, with the rows of its file.
    imports = {imp.id: imp for imp in db.session.scalars(select(Import).where(Import.account_id == acc.id))}
    assert {(imp.status, imp.attempts) for imp in imports.values()} == {(Import.SUCCEEDED, 1)}
    assert {i: imp.row_count for i, imp in imports.items()} == queued

    # The results: one import's rows per file name, never two files' rows for one period.
    stored: dict[int, int] = {}
    for import_id, _line in stored_lines(account_id=acc.id):
        stored[import_id] = stored.get(import_id, 0) + 1
    by_name: dict[str, list[Import]] = {}
    for imp in imports.values():
        by_name.setdefault(imp.filename, []).append(imp)
    for name, group in by_name.items():
        holding = [imp.id for imp in group if imp.id in stored]
        assert len(holding) == 1, (name, holding)
        assert stored[holding[0]] == queued[holding[0]], name
        if len(group) == 2:
            # The one imported second replaced the other, and says so.
            first, second = sorted(group, key=lambda imp: (imp.finished_at, imp.id))
            assert holding == [second.id] and second.replaced_import_id == first.id, name
    assert sum(stored.values()) == sum(queued[i] for i in stored)


def test_two_first_starts_at_once_migrate_an_empty_database_once(tmp_path, empty_database_url):
    """Every machine's run.py upgrades at start; started together on an empty database, neither may fail."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(Path(__file__).resolve().parents[2] / "migrations")).get_current_head()
    database_url = empty_database_url or f"sqlite:///{tmp_path / 'renkei.db'}"
    _run_together(_upgrade, database_url, str(tmp_path))

    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
            assert conn.execute(text("SELECT count(*) FROM accounts")).scalar() == 0
    finally:
        engine.dispose()


def test_spawned_processes_can_sleep_on_any_clock():
    """The processes above sleep when SQLite's WAL switch is contended; in the faketime pass that failed with EINVAL."""
    assert _run_together(_sleep_once) == [None] * WORKERS
