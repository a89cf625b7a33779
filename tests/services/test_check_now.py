"""今すぐチェック (button) and `flask integration check-now`: both run the account's FTP check at once."""
from __future__ import annotations

import os
import time

from app.extensions import db
from app.models import Import
from app.services import ftpcheck, integration, queue
from tests.fixtures.ftp import FTP_BAD_CSV, ftp_csv


def _put(home, name: str, data: bytes) -> None:
    home.mkdir(parents=True, exist_ok=True)
    path = home / name
    path.write_bytes(data)
    old = time.time() - 60  # an upload that finished a minute ago
    os.utime(path, (old, old))


def _statuses() -> list[tuple[str, str]]:
    db.session.rollback()
    return [(i.filename, i.status) for i in db.session.scalars(db.select(Import).order_by(Import.id))]


def test_cli_check_now_imports_and_moves(app, runner, ftp_account):
    app.config["FTP_QUIET_SECONDS"] = 0
    home = ftpcheck.home_path(ftp_account.username, create=True)
    _put(home, "20180516.csv", ftp_csv())

    result = runner.invoke(args=["integration", "check-now", ftp_account.slug])

    assert result.exit_code == 0, result.output
    assert "1件のファイルを取り込みました。" in result.output
    assert _statuses() == [("20180516.csv", Import.SUCCEEDED)]
    assert not (home / "20180516.csv").exists()
    assert len(list((home / "processed").iterdir())) == 1


def test_cli_check_now_exit_1_when_a_file_fails_or_mode_is_not_ftp(app, runner, ftp_account):
    app.config["FTP_QUIET_SECONDS"] = 0
    home = ftpcheck.home_path(ftp_account.username, create=True)
    _put(home, "20180516.csv", FTP_BAD_CSV)
    result = runner.invoke(args=["integration", "check-now", ftp_account.slug])
    assert result.exit_code == 1
    assert "1件のファイルはすべてエラーでした" in result.output

    integration.update_settings(ftp_account.id, {"mode": "api"}, actor="test")
    result = runner.invoke(args=["integration", "check-now", ftp_account.slug])
    assert result.exit_code == 1
    assert "FTP" in result.output
    assert runner.invoke(args=["integration", "check-now", "nobody"]).exit_code == 1


def test_check_now_button(app, client, login, ftp_account, import_worker):
    app.config["FTP_QUIET_SECONDS"] = 0
    home = ftpcheck.home_path(ftp_account.username, create=True)
    _put(home, "20180516.csv", ftp_csv())
    login("admin@acme.example")

    page = client.get("/settings/integration").get_data(as_text=True)
    assert "今すぐチェック" in page

    response = client.post("/settings/integration/check-now", follow_redirects=True)
    assert "1件のファイルを取り込みました" in response.get_data(as_text=True)
    assert _statuses() == [("20180516.csv", Import.SUCCEEDED)]
    # The worker imported it; the button's check filed it once the import had ended.
    assert not (home / "20180516.csv").exists()
    [filed] = (home / "processed").iterdir()
    assert filed.name.startswith("20180516_") and filed.read_bytes() == ftp_csv()


def test_check_now_button_says_when_the_worker_has_not_ended_the_import_yet(app, client, login, ftp_account):
    """No worker runs here: the button's check only receives the file, and says the import is still running."""
    app.config.update(FTP_QUIET_SECONDS=0, IMPORT_WAIT_SECONDS=0)
    home = ftpcheck.home_path(ftp_account.username, create=True)
    _put(home, "20180516.csv", ftp_csv())
    login("admin@acme.example")

    page = client.post("/settings/integration/check-now", follow_redirects=True).get_data(as_text=True)

    assert 'class="last-check check-waiting"' in page  # next to the button, styled as "waiting", not success
    assert "1件はまだ取込中です。取込が終わったファイルは次回のチェックで processed/ または error/ に移します。" in page
    assert _statuses() == [("20180516.csv", Import.QUEUED)]
    assert (home / "20180516.csv").exists()

    queue.process_next()  # the worker's step
    page = client.post("/settings/integration/check-now", follow_redirects=True).get_data(as_text=True)
    assert "1件のファイルを取り込みました。" in page
    assert _statuses() == [("20180516.csv", Import.SUCCEEDED)]
    assert not (home / "20180516.csv").exists() and len(list((home / "processed").iterdir())) == 1


def test_cli_check_now_says_why_each_file_waits_and_is_kept_as_a_manual_check(app, runner, ftp_account):
    app.config["FTP_QUIET_SECONDS"] = 10
    home = ftpcheck.home_path(ftp_account.username, create=True)
    (home / "20180516.csv").write_bytes(ftp_csv())  # just uploaded: inside the quiet period
    (home / "20180517.csv.tmp").write_bytes(ftp_csv())
    # The check's clock is the process's (shifted under faketime); the file times follow it, not the disk's.
    now = time.time()
    for path in home.iterdir():
        os.utime(path, (now, now))

    result = runner.invoke(args=["integration", "check-now", ftp_account.slug])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == [
        "  20180516.csv: アップロードから10秒以内のため、10秒後にもう一度チェックします",
        "  20180517.csv.tmp: 名前が .tmp で終わるため、アップロードが終わって名前が変わるのを待っています(このままでは読み込みません)",
    ]
    settings = integration.get_settings(ftp_account.id)
    assert settings.last_ftp_check_trigger == "manual" and settings.ftp_recheck_at is not None
    assert settings.last_ftp_check_result["outcome"] == "waiting"
