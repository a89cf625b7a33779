"""Original files: kept apart from the history, downloaded byte for byte, re-imported, deleted after KEEP_FILES_DAYS."""
from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

from app.extensions import db
from app.models import Import, ImportFile
from app.services import files, ingest, runner
from servers.scheduler import FilePurge, FtpCheckScheduler, RunningScheduler
from tests.fixtures.ingest import import_file

GOOD = "No.,売上,件数\r\n1,120000,2\r\n2,\"50,000\",1\r\n".encode("cp932")
GONE = "保存期間(400日)を過ぎたため元のファイルは削除されました"
TOKYO = ZoneInfo("Asia/Tokyo")


def _pieces(import_id: int) -> int:
    return db.session.scalar(db.select(db.func.count()).select_from(ImportFile).where(ImportFile.import_id == import_id))


def test_an_original_in_many_pieces_downloads_byte_for_byte_and_reimports(client, board, monkeypatch):
    monkeypatch.setattr(files, "CHUNK_SIZE", 7)  # GOOD is then several pieces
    imp = import_file(board.id, "20180516.csv", GOOD, channel="cli", sender=None)
    assert imp.status == Import.SUCCEEDED and imp.row_count == 2  # the import read the pieces back
    assert _pieces(imp.id) == -(-len(GOOD) // 7) > 1

    response = client.get(f"/imports/{imp.id}/download")
    assert response.status_code == 200
    assert response.data == GOOD and response.headers["Content-Length"] == str(len(GOOD))
    assert response.headers["Content-Type"] == "application/octet-stream"

    reimported = client.post(f"/imports/{imp.id}/reimport")
    new_id = int(reimported.headers["Location"].rsplit("/", 1)[-1])
    done = runner.run_import(new_id)
    assert done.status == Import.SUCCEEDED and done.replaced_import_id == imp.id and done.row_count == 2
    assert client.get(f"/imports/{new_id}/download").data == GOOD


def test_any_bytes_and_an_empty_file_come_back_unchanged(client, board):
    hostile = bytes(range(256)) * 3 + b"\x00\xff\r\n"
    kept = ingest.receive(board.id, "20180516.csv", hostile, channel="web", sender=None)
    empty = ingest.receive(board.id, "20180517.csv", b"", channel="web", sender=None)

    assert client.get(f"/imports/{kept.id}/download").data == hostile
    answer = client.get(f"/imports/{empty.id}/download")
    assert answer.status_code == 200 and answer.data == b""
    assert "元のファイルをダウンロード" in client.get(f"/imports/{empty.id}").get_data(as_text=True)


def _received(account_id: int, name: str, when: dt.datetime) -> int:
    imp = import_file(account_id, name, GOOD, channel="cli", sender=None)
    imp.received_at = when  # naive UTC, as stored
    db.session.commit()
    return imp.id


def test_the_daily_job_deletes_exactly_the_originals_older_than_the_setting(app, client, board):
    assert app.config["KEEP_FILES_DAYS"] == 400  # the default
    # The clock says 2030-06-01 09:00 in Tokyo (00:00 UTC): 400 days earlier is 2029-04-27 00:00 UTC.
    now = [dt.datetime(2030, 6, 1, 9, 0, tzinfo=TOKYO)]
    old = _received(board.id, "20290101.csv", dt.datetime(2029, 4, 26, 23, 59))
    edge = _received(board.id, "20290102.csv", dt.datetime(2029, 4, 27, 0, 1))
    recent = _received(board.id, "20300101.csv", dt.datetime(2030, 5, 1))
    job = FilePurge(app, clock=lambda: now[0])

    assert job.tick() == 1
    db.session.expire_all()
    assert (files.exists(old), files.exists(edge), files.exists(recent)) == (False, True, True)
    assert _pieces(old) == 0
    history = db.session.get(Import, old)
    assert history.status == Import.SUCCEEDED and history.row_count == 2  # the history row stays
    assert history.file_deleted_at is not None

    assert job.tick() is None  # once a day
    now[0] += dt.timedelta(minutes=3)
    assert job.tick() is None and files.exists(edge)
    now[0] += dt.timedelta(days=1)  # the next day, 2029-04-28 00:00 UTC is the limit
    assert job.tick() == 1 and not files.exists(edge) and files.exists(recent)


def test_the_page_download_and_reimport_say_the_original_is_gone(app, client, board):
    old = _received(board.id, "20290101.csv", dt.datetime(2029, 1, 1))
    FilePurge(app, clock=lambda: dt.datetime(2030, 6, 1, tzinfo=TOKYO)).tick()

    html = client.get(f"/imports/{old}").get_data(as_text=True)
    assert GONE + "。" in html
    assert "元のファイルをダウンロード" not in html and f'action="/imports/{old}/reimport"' not in html
    assert '<button type="button" class="button" disabled>再取込</button>' in html

    download = client.get(f"/imports/{old}/download")
    assert download.status_code == 404 and GONE in download.get_data(as_text=True)

    answer = client.post(f"/imports/{old}/reimport", follow_redirects=True)
    assert f"取込 #{old} は{GONE}。再取込できません。" in answer.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count()).select_from(Import)) == 1


def test_keep_files_days_0_keeps_every_original(app, board):
    app.config["KEEP_FILES_DAYS"] = 0
    old = _received(board.id, "20000101.csv", dt.datetime(2000, 1, 1))
    assert FilePurge(app, clock=lambda: dt.datetime(2030, 6, 1, tzinfo=TOKYO)).tick() == 0
    assert files.exists(old)


def test_a_failing_purge_is_logged_the_scheduler_survives_and_the_next_tick_tries_again(app, board, monkeypatch,
                                                                                          caplog):
    old = _received(board.id, "20290101.csv", dt.datetime(2029, 1, 1))
    job = FilePurge(app, clock=lambda: dt.datetime(2030, 6, 1, tzinfo=TOKYO))
    real = files.purge

    def broken(now, keep_days):
        raise RuntimeError("database unreachable")

    monkeypatch.setattr(files, "purge", broken)
    with caplog.at_level(logging.ERROR, logger="servers.scheduler"):
        job.safe_tick()
    assert "deleting old original files failed" in caplog.text
    monkeypatch.setattr(files, "purge", real)
    job.safe_tick()
    assert not files.exists(old)


def test_the_running_scheduler_has_the_daily_purge_job(app):
    running = RunningScheduler(FtpCheckScheduler(app, clock=lambda: dt.datetime(2030, 6, 1, tzinfo=TOKYO)))
    assert any(job.job_func.func == running.purge.safe_tick for job in running.scheduler.jobs)
    assert running.purge.clock is running.checks.clock  # the same injected clock
