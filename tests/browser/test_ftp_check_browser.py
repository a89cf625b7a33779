"""今すぐチェック in a real Chromium: after the click, its result is on screen, at desktop and phone widths, with or without JavaScript."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.services import ftpcheck
from app.services import integration as service

pytestmark = pytest.mark.browser

FTP_MODE = {
    "mode": "ftp", "status": "active", "member_key": "no", "encoding": "auto",
    "error_to": ["ops@example.com"], "success_to": [], "senders": [],
    "ftp_days": ["mon", "tue", "wed", "thu", "fri"], "ftp_start": "09:00", "ftp_end": "18:00",
    "ftp_interval": 60, "ftp_delay": 0,
}


@pytest.fixture
def just_uploaded(renkei_server):
    """FTP連動 saved, and a file in the home that finished uploading just now (so the check waits for it)."""
    with renkei_server.app.app_context():
        service.update_settings(renkei_server.account_id, FTP_MODE, actor="test-setup")
        username = service.get_settings(renkei_server.account_id).ftp_username
        home = ftpcheck.home_path(username, create=True)
        (home / "20261201.csv").write_bytes(b"No.\r\n")  # mtime: now, the clock the button's check uses
        db.session.remove()
    yield
    (home / "20261201.csv").unlink(missing_ok=True)


@pytest.mark.parametrize(("width", "javascript"), [(1280, True), (390, True), (390, False)])
def test_check_now_result_is_in_the_viewport(new_page, renkei_server, just_uploaded, screenshots, width, javascript):
    page = new_page(renkei_server.admin_email, javascript=javascript, viewport={"width": width, "height": 800})
    page.goto(renkei_server.url + "/settings/integration")

    with page.expect_navigation():
        page.click("#check-now-button")

    result = page.locator("#ftp-check-result")
    expect(result).to_be_in_viewport()
    expect(page.locator("#check-now-button")).to_be_in_viewport()  # and the button it answers
    expect(page.locator("#last-check")).to_have_class("last-check check-waiting")
    expect(result).to_contain_text("20261201.csv: アップロードから10秒以内のため、10秒後にもう一度チェックします")
    assert page.url.endswith("#ftp-check-result")
    page.screenshot(path=str(screenshots / f"ftp-check-result-{width}{'' if javascript else '-nojs'}.png"))
