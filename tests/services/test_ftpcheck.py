"""services.ftpcheck: which files a check reads, in which order, where they go, and when it refuses or waits."""
from __future__ import annotations

import datetime as dt
import os
import threading
from zoneinfo import ZoneInfo

import pytest

from app.errors import Invalid, NotFound
from app.extensions import db
from app.models import Import, IntegrationSettings
from app.services import accounts, files, ftpcheck, ingest, queue
from tests.fixtures.ftp import FTP_BAD_CSV, ftp_csv, ftp_files

TOKYO = ZoneInfo("Asia/Tokyo")
CHECK_TIME = dt.datetime(2026, 11, 28, 9, 15, tzinfo=TOKYO)


@pytest.fixture
def bare_home(app, ftp_account):
    """The account's FTP home, with no worker running: what a check receives stays queued."""
    app.config["FTP_QUIET_SECONDS"] = 0
    return ftpcheck.home_path(ftp_account.username, create=True)


@pytest.fixture
def home(bare_home, import_worker):
    """The account's FTP home with the import worker running, as on a server."""
    return bare_home


def put(home, name: str, data: bytes, age_seconds: float = 60, now: dt.datetime = CHECK_TIME) -> None:
    """Write a file as an upload that finished `age_seconds` before `now` (the checks' injected clock)."""
    path = home / name
    path.write_bytes(data)
    when = now.timestamp() - age_seconds
    os.utime(path, (when, when))


def imports() -> list[tuple[str, str, str]]:
    db.session.rollback()
    return [(i.filename, i.status, i.channel) for i in db.session.scalars(db.select(Import).order_by(Import.id))]


def test_check_imports_in_name_order_and_files_results_with_time_suffix(home, ftp_account):
    put(home, "20180517.csv", ftp_csv())
    put(home, "20180500.csv", ftp_csv())
    put(home, "20180516.csv", FTP_BAD_CSV)

    result = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME)

    assert [(f.name, f.succeeded, f.moved_to) for f in result.files] == [
        ("20180500.csv", True, "processed/20180500_20261128-091500.csv"),
        ("20180516.csv", False, "error/20180516_20261128-091500.csv"),
        ("20180517.csv", True, "processed/20180517_20261128-091500.csv"),
    ]
    assert imports() == [("20180500.csv", Import.SUCCEEDED, "ftp"), ("20180516.csv", Import.FAILED, "ftp"),
                         ("20180517.csv", Import.SUCCEEDED, "ftp")]
    assert ftp_files(home) == []
    assert (home / "error" / "20180516_20261128-091500.csv").read_bytes() == FTP_BAD_CSV
    assert result.message == "3件のファイルのうち 2件を取り込み、1件はエラーでした。"


def test_same_name_in_the_same_second_does_not_overwrite(home, ftp_account):
    put(home, "20180516.csv", ftp_csv())
    ftpcheck.check_account(ftp_account.id, now=CHECK_TIME)
    put(home, "20180516.csv", ftp_csv())
    ftpcheck.check_account(ftp_account.id, now=CHECK_TIME)
    assert ftp_files(home / "processed") == ["20180516_20261128-091500-2.csv", "20180516_20261128-091500.csv"]


def test_only_complete_csv_files_in_the_top_folder_are_read(home, ftp_account):
    for name in [".20180516.csv", "20180516.csv.part", "20180517.tmp", "20180518.csv.filepart", "memo.txt",
                 "20180519.csv.tmp"]:
        put(home, name, ftp_csv())
    (home / "20180520.csv").mkdir()
    (home / "sub").mkdir()
    put(home / "sub", "20180521.csv", ftp_csv())
    put(home, "20180522.CSV", ftp_csv())

    result = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME)

    assert [f.name for f in result.files] == ["20180522.CSV"]
    assert sorted(os.listdir(home)) == [".20180516.csv", "20180516.csv.part", "20180517.tmp",
                                        "20180518.csv.filepart", "20180519.csv.tmp", "20180520.csv",
                                        "memo.txt", "processed", "sub"]
    assert ftp_files(home / "sub") == ["20180521.csv"]


def test_a_file_changed_within_the_quiet_period_waits_for_a_later_check(app, home, ftp_account):
    app.config["FTP_QUIET_SECONDS"] = 10
    now = CHECK_TIME
    put(home, "20180516.csv", ftp_csv(), age_seconds=0, now=now)

    early = ftpcheck.check_account(ftp_account.id, now=now)
    assert (early.files, early.waiting) == ([], ["20180516.csv"])
    assert "1件はまだ読み込めないため残しました" in early.message
    assert ftp_files(home) == ["20180516.csv"] and imports() == []

    later = ftpcheck.check_account(ftp_account.id, now=now + dt.timedelta(seconds=11))
    assert [f.name for f in later.files] == ["20180516.csv"]


@pytest.mark.parametrize("change, message", [
    ({"status": "stopped"}, "連動稼働停止"),
    ({"mode": "mail"}, "FTP連動ではない"),
    ({"mode": "api"}, "FTP連動ではない"),
])
def test_check_refuses_and_leaves_files_when_not_active_ftp(home, ftp_account, change, message):
    settings = db.session.scalar(db.select(IntegrationSettings).where(IntegrationSettings.account_id == ftp_account.id))
    for name, value in change.items():
        setattr(settings, name, value)
    db.session.commit()
    put(home, "20180516.csv", ftp_csv())
    with pytest.raises(Invalid, match=message):
        ftpcheck.check_account(ftp_account.id)
    assert ftp_files(home) == ["20180516.csv"] and imports() == []


def test_check_refuses_disabled_integration_and_unknown_account(home, ftp_account):
    accounts.set_integration_enabled(ftp_account.slug, False)
    with pytest.raises(Invalid, match="有効になっていません"):
        ftpcheck.check_account(ftp_account.id)
    with pytest.raises(NotFound):
        ftpcheck.check_account(9999)


def test_a_check_while_another_runs_is_skipped(home, ftp_account, monkeypatch):
    put(home, "20180516.csv", ftp_csv())
    put(home, "20180517.csv", ftp_csv())
    inside, release = threading.Event(), threading.Event()
    real_receive = ingest.receive
    app = ftpcheck.current_app._get_current_object()

    def slow_receive(*args, **kwargs):
        inside.set()
        release.wait(10)
        return real_receive(*args, **kwargs)

    monkeypatch.setattr(ingest, "receive", slow_receive)
    results = []

    def first_check():
        with app.app_context():
            results.append(ftpcheck.check_account(ftp_account.id, now=CHECK_TIME))

    runner = threading.Thread(target=first_check)
    runner.start()
    try:
        assert inside.wait(10)
        second = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME)
        assert second.busy and second.files == []
        assert "実行中" in second.message
    finally:
        release.set()
        runner.join(10)
    assert [f.name for f in results[0].files] == ["20180516.csv", "20180517.csv"]
    assert [name for name, _, _ in imports()] == ["20180516.csv", "20180517.csv"]


def test_unexpected_error_leaves_the_file_for_the_next_check(home, ftp_account, monkeypatch):
    put(home, "20180516.csv", ftp_csv())

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(ingest, "receive", broken)
    result = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME)
    assert (result.files, result.waiting) == ([], ["20180516.csv"])
    assert ftp_files(home) == ["20180516.csv"]

    monkeypatch.undo()
    assert [f.succeeded for f in ftpcheck.check_account(ftp_account.id, now=CHECK_TIME).files] == [True]


def test_check_records_its_time(home, ftp_account):
    ftpcheck.check_account(ftp_account.id, now=CHECK_TIME)
    db.session.expire_all()
    settings = db.session.scalar(db.select(IntegrationSettings).where(IntegrationSettings.account_id == ftp_account.id))
    assert settings.last_ftp_check_at is not None


@pytest.mark.parametrize("name", ["", "..", "a/b", "../x", ".hidden", "a b"])
def test_home_path_rejects_names_that_are_not_a_plain_folder(app, name):
    with pytest.raises(Invalid):
        ftpcheck.home_path(name)


def test_a_file_dated_in_the_future_is_read_once_a_later_check_finds_it_unchanged(app, home, ftp_account):
    # A client that set the mtime, or a server clock that was stepped back: the mtime is a day ahead.
    app.config["FTP_QUIET_SECONDS"] = 10
    put(home, "20180516.csv", ftp_csv(), age_seconds=-86400)

    first = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME)
    assert (first.files, first.waiting) == ([], ["20180516.csv"])
    too_soon = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME + dt.timedelta(seconds=5))
    assert (too_soon.files, too_soon.waiting) == ([], ["20180516.csv"])
    assert imports() == []

    later = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME + dt.timedelta(seconds=11))
    assert [(f.name, f.succeeded, f.moved_to) for f in later.files] == [
        ("20180516.csv", True, "processed/20180516_20261128-091511.csv")]
    assert imports() == [("20180516.csv", Import.SUCCEEDED, "ftp")]
    assert ftp_files(home) == []
    assert not (ftpcheck.Path(app.config["DATA_DIR"]) / ftpcheck.SEEN_FOLDER / f"{ftp_account.username}.json").exists()


def test_a_future_dated_file_that_changes_waits_until_it_is_seen_unchanged(app, home, ftp_account):
    app.config["FTP_QUIET_SECONDS"] = 10
    put(home, "20180516.csv", FTP_BAD_CSV, age_seconds=-3600)
    assert ftpcheck.check_account(ftp_account.id, now=CHECK_TIME).waiting == ["20180516.csv"]

    # Re-uploaded (other bytes, mtime still ahead) before the next check: that check counts it as new.
    put(home, "20180516.csv", ftp_csv(), age_seconds=-3600)
    second = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME + dt.timedelta(minutes=5))
    assert (second.files, second.waiting) == ([], ["20180516.csv"])

    third = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME + dt.timedelta(minutes=10))
    assert [(f.name, f.succeeded) for f in third.files] == [("20180516.csv", True)]
    assert imports() == [("20180516.csv", Import.SUCCEEDED, "ftp")]


def test_a_file_replaced_inside_the_rename_window_is_given_back_its_name(app, home, ftp_account, monkeypatch):
    """The re-upload lands between the check's last comparison and its rename (simulated)."""
    put(home, "20180701.csv", ftp_csv())
    new_bytes = ftp_csv([["No.", "売上", "件数"], ["1", "777777", "7"]])
    real_replace = os.replace
    raced = []

    def replace_after_an_upload(src, dst, *args, **kwargs):
        if not raced and str(src).endswith("20180701.csv") and "processed" in str(dst):
            raced.append(dst)
            upload = home.parent / "staged.part"
            upload.write_bytes(new_bytes)
            real_replace(upload, src)  # what the FTP server does when an upload ends
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(ftpcheck.os, "replace", replace_after_an_upload)
    first = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME)
    monkeypatch.undo()

    assert raced
    assert [(f.name, f.succeeded) for f in first.files] == [("20180701.csv", True)]
    assert first.waiting == ["20180701.csv"]
    assert (home / "20180701.csv").read_bytes() == new_bytes
    # processed/ holds exactly the bytes that were imported.
    assert [(home / "processed" / n).read_bytes() for n in ftp_files(home / "processed")] == [ftp_csv()]

    os.utime(home / "20180701.csv", (CHECK_TIME.timestamp() - 60,) * 2)
    second = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME + dt.timedelta(hours=1))
    assert [(f.name, f.succeeded) for f in second.files] == [("20180701.csv", True)]
    assert len(imports()) == 2 and ftp_files(home) == []


def test_a_file_deleted_during_its_import_is_kept_in_processed_and_nothing_waits(home, ftp_account, monkeypatch):
    put(home, "20180516.csv", ftp_csv())
    real_receive = ingest.receive

    def receive_while_the_uploader_deletes_it(*args, **kwargs):
        (home / "20180516.csv").unlink()
        return real_receive(*args, **kwargs)

    monkeypatch.setattr(ingest, "receive", receive_while_the_uploader_deletes_it)
    result = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME)
    assert [(f.name, f.succeeded, f.moved_to) for f in result.files] == [
        ("20180516.csv", True, "processed/20180516_20261128-091500.csv")]
    assert result.waiting == []
    assert (home / "processed" / "20180516_20261128-091500.csv").read_bytes() == ftp_csv()


@pytest.mark.parametrize("change, due", [
    ({}, True),
    ({"status": "stopped"}, False),
    ({"mode": "mail"}, False),
    ({"mode": "api"}, False),
    ("disable", False),
])
def test_only_admitted_accounts_are_due_at_their_check_time(ftp_account, change, due):
    if change == "disable":
        accounts.set_integration_enabled(ftp_account.slug, False)
    else:
        settings = db.session.scalar(
            db.select(IntegrationSettings).where(IntegrationSettings.account_id == ftp_account.id))
        for name, value in change.items():
            setattr(settings, name, value)
        db.session.commit()
    check_minute = dt.datetime(2026, 11, 28, 10, 5, tzinfo=TOKYO)  # hourly from 09:00, 5 minutes late
    assert ftpcheck.accounts_due(check_minute) == ([ftp_account.id] if due else [])
    assert ftpcheck.accounts_due(check_minute + dt.timedelta(minutes=1)) == []


# ---------------------------------------------------------------------------------------
# The check only receives: the worker imports, and a check files what has ended


def test_without_a_worker_a_check_leaves_the_file_until_a_later_check_finds_its_import_ended(app, bare_home,
                                                                                         ftp_account):
    app.config["IMPORT_WAIT_SECONDS"] = 0
    put(bare_home, "20180516.csv", ftp_csv())

    first = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME)

    # Received and stored, not imported: no import ran inside the check.
    assert (first.files, first.running, first.waiting) == ([], ["20180516.csv"], [])
    assert "1件はまだ取込中です" in first.message and "processed/" in first.message
    assert imports() == [("20180516.csv", Import.QUEUED, "ftp")]
    assert ftp_files(bare_home) == ["20180516.csv"] and ftp_files(bare_home / "processed") == []

    still = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME + dt.timedelta(minutes=5))
    assert still.running == ["20180516.csv"] and len(imports()) == 1  # not received twice

    assert queue.process_next().status == Import.SUCCEEDED  # the worker's step
    later = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME + dt.timedelta(hours=1))
    assert [(f.name, f.succeeded, f.moved_to) for f in later.files] == [
        ("20180516.csv", True, "processed/20180516_20261128-101500.csv")]
    assert later.running == [] and later.message == "1件のファイルを取り込みました。"
    assert imports() == [("20180516.csv", Import.SUCCEEDED, "ftp")]
    assert ftp_files(bare_home) == []


def test_a_file_replaced_before_its_import_was_filed_leaves_a_copy_of_the_original(app, bare_home, ftp_account):
    app.config["IMPORT_WAIT_SECONDS"] = 0
    put(bare_home, "20180516.csv", FTP_BAD_CSV)
    assert ftpcheck.check_account(ftp_account.id, now=CHECK_TIME).running == ["20180516.csv"]
    put(bare_home, "20180516.csv", ftp_csv(), age_seconds=30)  # the sender fixed the file meanwhile
    assert queue.process_next().status == Import.FAILED

    second = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME + dt.timedelta(hours=1))

    assert [(f.name, f.succeeded, f.moved_to) for f in second.files] == [
        ("20180516.csv", False, "error/20180516_20261128-101500.csv")]
    assert (bare_home / "error" / "20180516_20261128-101500.csv").read_bytes() == FTP_BAD_CSV
    assert second.running == ["20180516.csv"]  # the new file: received, the worker has not run it
    assert imports() == [("20180516.csv", Import.FAILED, "ftp"), ("20180516.csv", Import.QUEUED, "ftp")]

    queue.process_next()
    third = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME + dt.timedelta(hours=2))
    assert [(f.name, f.succeeded) for f in third.files] == [("20180516.csv", True)]
    assert (bare_home / "processed" / "20180516_20261128-111500.csv").read_bytes() == ftp_csv()
    assert ftp_files(bare_home) == [] and third.running == []


def test_a_file_deleted_before_its_import_was_filed_leaves_a_copy_in_processed(app, bare_home, ftp_account):
    app.config["IMPORT_WAIT_SECONDS"] = 0
    put(bare_home, "20180516.csv", ftp_csv())
    [received] = [f for f in ftpcheck.check_account(ftp_account.id, now=CHECK_TIME).running]
    (bare_home / "20180516.csv").unlink()
    done = queue.process_next()

    later = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME + dt.timedelta(hours=1))

    assert [(f.name, f.import_id, f.moved_to) for f in later.files] == [
        (received, done.id, "processed/20180516_20261128-101500.csv")]
    assert (bare_home / "processed" / "20180516_20261128-101500.csv").read_bytes() == files.read(done.id)
    assert ftpcheck.check_account(ftp_account.id, now=CHECK_TIME + dt.timedelta(hours=2)).files == []


def test_a_future_dated_file_still_importing_is_not_received_again(app, bare_home, ftp_account):
    # Its mtime is ahead of the clock, so "stored after it was written" cannot tell it is the same file.
    app.config.update(FTP_QUIET_SECONDS=10, IMPORT_WAIT_SECONDS=0)
    put(bare_home, "20180516.csv", ftp_csv(), age_seconds=-86400)
    ftpcheck.check_account(ftp_account.id, now=CHECK_TIME)
    assert ftpcheck.check_account(ftp_account.id, now=CHECK_TIME + dt.timedelta(seconds=11)).running == [
        "20180516.csv"]

    again = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME + dt.timedelta(minutes=5))

    assert again.running == ["20180516.csv"] and imports() == [("20180516.csv", Import.QUEUED, "ftp")]
    queue.process_next()
    filed = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME + dt.timedelta(minutes=10))
    assert [(f.name, f.succeeded) for f in filed.files] == [("20180516.csv", True)]
    assert imports() == [("20180516.csv", Import.SUCCEEDED, "ftp")] and ftp_files(bare_home) == []


def test_the_report_of_an_ftp_file_says_where_it_was_moved_and_waits_for_the_move(home, ftp_account):
    from app.models import OutboxMail, utcnow

    put(home, "20180516.csv", FTP_BAD_CSV)
    result = ftpcheck.check_account(ftp_account.id, now=CHECK_TIME)
    assert [f.moved_to for f in result.files] == ["error/20180516_20261128-091500.csv"]
    db.session.rollback()
    [mail] = db.session.scalars(db.select(OutboxMail)).all()
    assert mail.kind == "error"
    assert "■ FTPのファイル\n「20180516.csv」は error/20180516_20261128-091500.csv に移しました。\n" in mail.body
    assert "移した日時" not in mail.body
    assert mail.next_attempt_at <= utcnow()  # held for the move, then sent at once


def test_a_report_of_an_ftp_file_not_yet_moved_names_the_folder_and_is_held(bare_home, ftp_account):
    from app.models import OutboxMail, utcnow
    from app.services import runner

    imp = ingest.receive(ftp_account.id, "20180516.csv", FTP_BAD_CSV, channel="ftp", sender="ftp:x")
    runner.run_import(imp.id)
    [mail] = db.session.scalars(db.select(OutboxMail)).all()
    assert ("「20180516.csv」は、取込が終わったあとのチェックで error/ フォルダに「20180516_移した日時」の名前で"
            "移します。") in mail.body
    assert mail.next_attempt_at > utcnow() + dt.timedelta(seconds=30)
