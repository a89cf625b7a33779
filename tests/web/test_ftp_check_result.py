"""今すぐチェック answers next to the button: the result inside the FTP section, styled by outcome, saying why files wait."""
from __future__ import annotations

import datetime as dt
import os
import time
from zoneinfo import ZoneInfo

from app.extensions import db
from app.models import IntegrationSettings, User
from app.services import ftpcheck, ftpreport, integration, users
from tests.fixtures.accounts import PASSWORD
from tests.fixtures.ftp import FTP_BAD_CSV, ftp_csv
from tests.fixtures.html import element

CHECK_TIME = dt.datetime(2026, 11, 28, 9, 15, 30, tzinfo=ZoneInfo("Asia/Tokyo"))


def _put(home, name: str, data: bytes, written: float) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / name).write_bytes(data)
    os.utime(home / name, (written, written))


def _settings(account_id: int) -> IntegrationSettings:
    db.session.rollback()
    return db.session.scalar(db.select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))


def _result(page: str):
    result = element(page, "ftp-check-result")
    assert result is not None, "no result on the page"
    assert "ftp-section" in result.ancestors and "next-checks" in result.ancestors  # next to the button
    return result


def test_check_now_lands_on_its_result_and_says_which_files_wait_and_why(app, client, login, ftp_account):
    app.config["FTP_QUIET_SECONDS"] = 10
    home = ftpcheck.home_path(ftp_account.username, create=True)
    just_now = time.time()  # the button checks with the real clock: these uploads have just ended
    _put(home, "20261201.csv", ftp_csv(), just_now)
    _put(home, "20261202.csv.part", b"No.,", just_now - 3600)
    login("admin@acme.example")

    response = client.post("/settings/integration/check-now")

    assert response.status_code == 302 and response.location.endswith("/settings/integration#ftp-check-result")
    page = client.get(response.location).get_data(as_text=True)
    _result(page)
    last = element(page, "last-check")
    assert "ftp-check-result" in last.ancestors
    assert last.classes == {"last-check", "check-waiting"}
    assert "(手動(今すぐチェック))" in last.text
    assert "20261201.csv: アップロードから10秒以内のため、10秒後にもう一度チェックします" in last.items
    assert ("20261202.csv.part: 名前が .part で終わるため、アップロードが終わって名前が変わるのを待っています"
            "(このままでは読み込みません)") in last.items
    # The page's top keeps no banner about it: the answer is where the button is.
    assert 'class="flash' not in page
    # The server checks again by itself once the quiet period has passed.
    recheck = _settings(ftp_account.id).ftp_recheck_at
    assert recheck is not None
    assert abs(recheck.replace(tzinfo=dt.UTC).timestamp() - (just_now + 10)) < 5


def test_result_style_follows_the_outcome(app, client, login, ftp_account, import_worker):
    app.config["FTP_QUIET_SECONDS"] = 0
    home = ftpcheck.home_path(ftp_account.username, create=True)
    login("admin@acme.example")
    old = CHECK_TIME.timestamp() - 60

    def check(*files: tuple[str, bytes]) -> tuple[set[str], str]:
        for name, data in files:
            _put(home, name, data, old)
        ftpcheck.check_account(ftp_account.id, now=CHECK_TIME, trigger=ftpreport.SCHEDULED)
        last = element(client.get("/settings/integration").get_data(as_text=True), "last-check")
        return last.classes - {"last-check"}, last.text

    assert check() == ({"check-nothing"}, "最終チェック: 2026-11-28 09:15:30 (定時チェック) 取り込むファイルはありませんでした。")
    classes, text = check(("20180516.csv", ftp_csv()))
    assert classes == {"check-success"}
    assert "20180516.csv → processed/20180516_20261128-091530.csv(成功)" in text
    classes, text = check(("20180517.csv", ftp_csv()), ("20180518.csv", FTP_BAD_CSV))
    assert classes == {"check-partial"} and "2件のファイルのうち 1件を取り込み、1件はエラーでした。" in text
    assert "20180518.csv → error/20180518_20261128-091530.csv(エラー)" in text
    assert check(("20180519.csv", FTP_BAD_CSV))[0] == {"check-error"}


def test_last_check_time_is_shown_in_the_configured_zone(app, client, login, ftp_account):
    app.config["FTP_QUIET_SECONDS"] = 0
    # A check whose clock is in UTC (stored as UTC): the tab shows it in TIMEZONE (Asia/Tokyo here).
    ftpcheck.check_account(ftp_account.id, now=dt.datetime(2026, 11, 28, 0, 15, 30, tzinfo=dt.UTC),
                           trigger=ftpreport.RECHECK)
    login("admin@acme.example")

    last = element(client.get("/settings/integration").get_data(as_text=True), "last-check")

    assert app.config["TIMEZONE"] == "Asia/Tokyo"
    assert last.text.startswith("最終チェック: 2026-11-28 09:15:30 (自動の再チェック)")


def test_a_refused_check_says_why_next_to_the_button(app, client, login, ftp_account):
    integration.update_settings(ftp_account.id, {"status": "stopped"}, actor="test")
    login("admin@acme.example")

    page = client.post("/settings/integration/check-now", follow_redirects=True).get_data(as_text=True)

    notice = _result(page)
    assert "連動稼働停止" in notice.text
    assert 'class="check-notice check-error" role="alert"' in page
    assert _settings(ftp_account.id).last_ftp_check_at is None  # no check ran
    # Said once: the next visit shows nothing.
    assert element(client.get("/settings/integration").get_data(as_text=True), "ftp-check-result") is None


def test_ftp_section_explains_the_home_folder(app, client, login, ftp_account):
    app.config["FTP_QUIET_SECONDS"] = 10
    login("admin@acme.example")

    help_text = element(client.get("/settings/integration").get_data(as_text=True), "ftp-home-help")

    assert "ftp-section" in help_text.ancestors
    assert help_text.items == [
        "ログインした最初のフォルダ(一番上のフォルダ)にファイルをアップロードしてください。サブフォルダの中のファイルは読み込みません。",
        ("読み込んだファイルは、取込に成功すると processed/、失敗すると error/ に、名前の後ろにチェックした日時を付けて移します"
         "(例: 20180516_20261202-091500.csv、時刻は Asia/Tokyo)。"),
        "アップロードから10秒たっていないファイルは、書き込みの途中かもしれないため読み込まず、10秒後に自動でもう一度チェックします。",
        "名前が .tmp、.part、.filepart で終わるファイルはアップロード中とみなし、名前が変わる(アップロードが終わる)まで読み込みません。",
    ]


def test_a_viewer_sees_the_last_check_without_the_button(app, client, login, ftp_account):
    app.config["FTP_QUIET_SECONDS"] = 0
    ftpcheck.check_account(ftp_account.id, now=CHECK_TIME, trigger=ftpreport.SCHEDULED)
    users.create_user(ftp_account.id, "viewer@acme.example", PASSWORD, User.VIEWER)
    login("viewer@acme.example")

    page = client.get("/settings/integration").get_data(as_text=True)

    assert element(page, "check-now-button") is None
    assert element(page, "last-check").text.startswith("最終チェック: 2026-11-28 09:15:30 (定時チェック)")
