"""The 外部連携設定 tab in a real Chromium: mode switching, address rows, errors, re-issue, viewer, no JavaScript."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.services import integration as service
from app.services import sshkeys
from tests.fixtures.publickeys import fingerprint, public_line

pytestmark = pytest.mark.browser

BASELINE = {
    "mode": "mail", "status": "active", "member_key": "no", "encoding": "auto",
    "error_to": ["ops@example.com"], "success_to": [], "senders": ["erp@example.com"],
    "ftp_days": ["mon", "tue", "wed", "thu", "fri"], "ftp_start": "09:00", "ftp_end": "18:00",
    "ftp_interval": 60, "ftp_delay": 0,
}


@pytest.fixture(autouse=True)
def baseline(renkei_server):
    """Every test starts from the same saved settings (mail mode, one address in each required list)."""
    set_settings(renkei_server, BASELINE)


def set_settings(server, changes: dict) -> None:
    with server.app.app_context():
        service.update_settings(server.account_id, changes, actor="test-setup")
        db.session.remove()


def saved(server) -> dict:
    with server.app.app_context():
        settings = service.get_settings(server.account_id)
        data = {field: getattr(settings, field) for field in service.FIELD_LABELS}
        data["ftp_password_hash"] = settings.ftp_password_hash
        db.session.remove()
    return data


def open_tab(new_page, server, who: str | None = None, **kwargs):
    page = new_page(who or server.admin_email, **kwargs)
    page.goto(server.url + "/settings/integration")
    expect(page.locator("h1")).to_have_text("設定")
    return page


def address_values(page, field: str) -> list[str]:
    return page.locator(f"#field-{field} .address-row input").evaluate_all("els => els.map(e => e.value)")


def save(page):
    with page.expect_navigation():
        page.click("#save-button")


def test_mode_switch_shows_only_the_selected_modes_fields(new_page, renkei_server):
    page = open_tab(new_page, renkei_server)
    mail, ftp, api = page.locator("#inbound_address"), page.locator("#ftp_delay"), page.locator("#api_endpoint")
    expect(mail).to_be_visible()
    expect(ftp).to_be_hidden()
    expect(api).to_be_hidden()

    page.select_option("#mode", "ftp")
    expect(ftp).to_be_visible()
    expect(page.locator("#ftp_server")).to_have_value("ftp.renkei.test:2121")
    expect(page.locator("#ftp_username")).to_have_value("acme")
    expect(mail).to_be_hidden()
    expect(api).to_be_hidden()

    page.select_option("#mode", "api")
    expect(api).to_have_value("http://renkei.test/api/v1/imports")
    expect(api).to_be_visible()
    expect(page.locator("#curl_example")).to_be_visible()
    expect(mail).to_be_hidden()
    expect(ftp).to_be_hidden()

    page.select_option("#mode", "mail")
    expect(mail).to_be_visible()
    expect(page.locator("#field-senders")).to_be_visible()
    # The common fields never move.
    expect(page.locator("#field-error_to")).to_be_visible()


def test_missing_required_field_shows_its_message_and_keeps_other_inputs(new_page, renkei_server):
    page = open_tab(new_page, renkei_server)
    page.select_option("#encoding", "utf-8")
    page.select_option("#member_key", "employee_id")
    page.fill("#success_to", "boss@example.com")
    page.click("#field-error_to button.add")
    page.locator("#field-error_to .address-row input").nth(1).fill("second@example.com")
    page.click("#field-senders button.remove")  # the only row is emptied, not removed
    expect(page.locator("#field-senders .address-row")).to_have_count(1)

    save(page)
    expect(page.locator("#field-senders .error")).to_have_text("送信元メールアドレスを1件以上入力してください。")
    expect(page.locator(".flash-error")).to_contain_text("入力内容に誤りがあります")
    expect(page.locator("#encoding")).to_have_value("utf-8")
    expect(page.locator("#member_key")).to_have_value("employee_id")
    assert address_values(page, "error_to") == ["ops@example.com", "second@example.com"]
    assert address_values(page, "success_to") == ["boss@example.com"]
    assert saved(renkei_server)["encoding"] == "auto"  # nothing was stored

    page.fill("#senders", "erp@example.com")
    save(page)
    expect(page.locator(".flash-success")).to_have_text("外部連携設定を保存しました。")
    stored = saved(renkei_server)
    assert stored["encoding"] == "utf-8"
    assert stored["error_to"] == ["ops@example.com", "second@example.com"]


def test_invalid_address_message_sits_next_to_its_field(new_page, renkei_server):
    page = open_tab(new_page, renkei_server)
    page.fill("#error_to", "not an address")
    save(page)
    expect(page.locator("#field-error_to .error")).to_contain_text("メールアドレスとして正しくありません")
    expect(page.locator("#field-senders .error")).to_have_count(0)


def test_adding_and_removing_address_rows(new_page, renkei_server):
    page = open_tab(new_page, renkei_server)
    rows = page.locator("#field-error_to .address-row")
    expect(rows).to_have_count(1)
    page.click("#field-error_to button.add")
    page.click("#field-error_to button.add")
    expect(rows).to_have_count(3)
    expect(rows.nth(2).locator("input")).to_be_focused()
    rows.nth(1).locator("input").fill("middle@example.com")
    rows.nth(2).locator("input").fill("last@example.com")
    rows.nth(1).locator("button.remove").click()
    expect(rows).to_have_count(2)
    assert address_values(page, "error_to") == ["ops@example.com", "last@example.com"]
    # The label still points at the first row after renumbering.
    expect(page.locator("label[for=error_to]")).to_have_count(1)
    expect(page.locator("#error_to")).to_have_value("ops@example.com")

    page.click("#field-success_to button.add")
    page.locator("#field-success_to .address-row input").nth(1).fill("Boss@Example.COM")
    page.locator("#field-success_to .address-row input").nth(0).fill("boss@example.com")
    save(page)
    page.reload()
    assert address_values(page, "error_to") == ["ops@example.com", "last@example.com"]
    assert address_values(page, "success_to") == ["boss@example.com"]  # the duplicate was removed


def test_saving_and_reloading_shows_the_saved_values(new_page, renkei_server):
    page = open_tab(new_page, renkei_server)
    page.select_option("#mode", "ftp")
    page.select_option("#status", "stopped")
    page.uncheck("#ftp_days-fri")
    page.check("#ftp_days-sat")
    page.fill("#ftp_start", "08:30")
    page.fill("#ftp_end", "20:00")
    page.select_option("#ftp_interval", "30")
    page.fill("#ftp_delay", "5")
    save(page)
    expect(page.locator(".flash-success")).to_have_text("外部連携設定を保存しました。")

    page.reload()
    expect(page.locator("#mode")).to_have_value("ftp")
    expect(page.locator("#status")).to_have_value("stopped")
    expect(page.locator("#ftp_days-fri")).not_to_be_checked()
    expect(page.locator("#ftp_days-sat")).to_be_checked()
    expect(page.locator("#ftp_start")).to_have_value("08:30")
    expect(page.locator("#ftp_end")).to_have_value("20:00")
    expect(page.locator("#ftp_interval")).to_have_value("30")
    expect(page.locator("#ftp_delay")).to_have_value("5")
    expect(page.locator("#ftp_delay")).to_be_visible()
    expect(page.locator("#next-checks li")).to_have_count(5)
    expect(page.locator("#next-checks li").first).to_have_text(re.compile(r"\d\d/\d\d\([月火水木土]\) \d\d:(05|35)"))
    expect(page.locator("#change-history")).to_contain_text("データ連動方式: メール添付連動 → FTP連動")
    expect(page.locator("#change-history")).to_contain_text("admin@acme.example")
    stored = saved(renkei_server)
    assert stored["ftp_days"] == ["mon", "tue", "wed", "thu", "sat"]
    assert (stored["ftp_interval"], stored["ftp_delay"]) == (30, 5)
    assert stored["senders"] == ["erp@example.com"]  # kept while FTP is selected


def ssh_keys_of(server) -> list[str]:
    with server.app.app_context():
        lines = sshkeys.public_keys(server.account_id)
        db.session.remove()
    return lines


def test_ssh_keys_are_added_by_their_own_button_not_by_save_and_removed_after_confirm(new_page, renkei_server,
                                                                                     screenshots):
    set_settings(renkei_server, {"mode": "ftp"})
    page = open_tab(new_page, renkei_server)
    # The paste box sits in the settings form but belongs to its own: 保存 does not send it.
    page.fill("#ssh_keys", public_line("ecdsa256", "not sent"))
    save(page)
    assert ssh_keys_of(renkei_server) == []

    page.fill("#ssh_keys", f"# 山田のPC\n{public_line('ed25519', 'yamada@pc')}\n")
    with page.expect_navigation():
        page.click("#ssh-key-add-button")
    expect(page.locator("#ssh-key-notice")).to_contain_text("SSH公開鍵を1個追加しました。")
    expect(page.locator("#ssh-key-list tbody tr")).to_have_count(1)
    expect(page.locator("#ssh-key-list tbody tr")).to_contain_text(fingerprint("ed25519"))
    page.screenshot(path=str(screenshots / "integration-ssh-keys.png"))
    assert ssh_keys_of(renkei_server) == [public_line("ed25519", "yamada@pc")]

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#ssh-key-list button[data-confirm]")
    assert ssh_keys_of(renkei_server) == [public_line("ed25519", "yamada@pc")]
    messages = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    with page.expect_navigation():
        page.click("#ssh-key-list button[data-confirm]")
    assert "このSSH公開鍵(yamada@pc)を削除します" in messages[0]
    expect(page.locator("#ssh-key-notice")).to_contain_text("SSH公開鍵を削除しました")
    expect(page.locator("#ssh-key-list")).to_have_text("登録済みのSSH公開鍵はありません。")
    assert ssh_keys_of(renkei_server) == []


def test_reissued_ftp_password_is_shown_once(new_page, renkei_server, screenshots):
    set_settings(renkei_server, {"mode": "ftp"})
    page = open_tab(new_page, renkei_server)
    expect(page.locator("#field-ftp_password .confirm-check")).to_be_hidden()  # JS asks with confirm() instead

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#field-ftp_password button[data-confirm]")
    expect(page.locator("#ftp_password")).not_to_have_class(re.compile("secret"))
    before = saved(renkei_server)["ftp_password_hash"]

    messages = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    with page.expect_navigation():
        page.click("#field-ftp_password button[data-confirm]")
    assert "FTPサーバー PWを再発行します" in messages[0]
    password = page.locator("#ftp_password").input_value()
    page.screenshot(path=str(screenshots / "integration-ftp-password-issued.png"))
    assert len(password) >= 16
    stored_hash = saved(renkei_server)["ftp_password_hash"]
    assert stored_hash != before and password not in stored_hash
    with renkei_server.app.app_context():
        assert service.verify_ftp_password("acme", password) is not None
        db.session.remove()

    # The password came in the POST's own answer; the tab opened again shows it no more.
    page.goto(renkei_server.url + "/settings/integration")
    expect(page.locator("#ftp_password")).to_have_text("●●●● (再発行すると表示されます)")
    assert password not in page.content()


def test_copy_button_copies_the_issued_address(new_page, renkei_server):
    page = open_tab(new_page, renkei_server)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=renkei_server.url)
    button = page.locator("#field-inbound_address button.copy")
    button.click()
    expect(button).to_have_text("コピーしました")
    address = page.locator("#inbound_address").input_value()
    assert page.evaluate("navigator.clipboard.readText()") == address
    assert re.fullmatch(r"sp-[0-9a-f]{20}@renkei\.localhost", address)


def test_viewer_cannot_change_anything(new_page, renkei_server):
    page = open_tab(new_page, renkei_server, who=renkei_server.viewer_email)
    expect(page.locator(".readonly-note")).to_contain_text("閲覧者")
    expect(page.locator("#save-button")).to_have_count(0)
    expect(page.locator("button[data-confirm]")).to_have_count(0)
    expect(page.locator("button.add, button.remove")).to_have_count(0)
    for selector in ["#mode", "#status", "#member_key", "#encoding", "#error_to", "#senders"]:
        expect(page.locator(selector)).to_be_disabled()

    token = page.locator("input[name=csrf_token]").first.input_value()
    base = renkei_server.url + "/settings/integration"
    form = {"csrf_token": token, "mode": "api", "error_to": "evil@example.com", "confirm": "y"}
    for url in [base, base + "/inbound-address", base + "/ftp-password", base + "/api-token"]:
        assert page.request.post(url, form=form, max_redirects=0).status == 403
    assert saved(renkei_server)["mode"] == "mail"
    assert saved(renkei_server)["error_to"] == ["ops@example.com"]


def test_without_javascript_the_form_saves_including_a_mode_change(new_page, renkei_server):
    page = open_tab(new_page, renkei_server, javascript=False)
    expect(page.locator("textarea#error_to")).to_be_visible()  # the fallback, no rows
    expect(page.locator(".address-row")).to_have_count(0)
    expect(page.locator("#ftp_delay")).to_be_hidden()
    expect(page.locator("#field-inbound_address button.copy")).to_be_hidden()

    # Switch to FTP: the FTP fields appear after saving, with their stored defaults.
    page.select_option("#mode", "ftp")
    page.fill("#error_to", "ops@example.com\nnight@example.com, ops@example.com")
    save(page)
    expect(page.locator(".flash-success")).to_have_text("外部連携設定を保存しました。")
    expect(page.locator("#ftp_delay")).to_be_visible()
    expect(page.locator("#inbound_address")).to_be_hidden()
    expect(page.locator("#error_to")).to_have_value("ops@example.com\nnight@example.com")

    page.fill("#ftp_delay", "10")
    page.select_option("#ftp_interval", "15")
    page.check("#ftp_days-sun")
    save(page)
    stored = saved(renkei_server)
    assert stored["mode"] == "ftp"
    assert (stored["ftp_interval"], stored["ftp_delay"]) == (15, 10)
    assert stored["ftp_days"][-1] == "sun"
    assert stored["senders"] == ["erp@example.com"]

    # Back to mail without 送信元: the message shows next to the field, and the typed values stay.
    set_settings(renkei_server, {"mode": "api", "senders": []})
    page.reload()
    page.select_option("#mode", "mail")
    page.fill("#success_to", "boss@example.com")
    save(page)
    expect(page.locator("#senders")).to_be_visible()
    expect(page.locator("#field-senders .error")).to_have_text("送信元メールアドレスを1件以上入力してください。")
    expect(page.locator("#success_to")).to_have_value("boss@example.com")
    page.fill("#senders", "erp@example.com")
    save(page)
    assert saved(renkei_server)["mode"] == "mail"
    assert saved(renkei_server)["success_to"] == ["boss@example.com"]

    # Re-issue without JavaScript: the checkbox is the confirmation.
    old_address = page.locator("#inbound_address").input_value()
    page.check("#field-inbound_address .confirm-check input")
    with page.expect_navigation():
        page.click("#field-inbound_address button[data-confirm]")
    expect(page.locator(".flash-success")).to_contain_text("送信先メールアドレスを再発行しました")
    assert page.locator("#inbound_address").input_value() != old_address


@pytest.mark.parametrize("mode", ["mail", "ftp", "api"])
def test_screenshots_of_each_mode(new_page, renkei_server, screenshots, mode):
    set_settings(renkei_server, {"mode": mode, "success_to": ["boss@example.com", "manager@example.com"]})
    page = open_tab(new_page, renkei_server)
    expect(page.locator(f"#{mode}-section")).to_be_visible()
    page.screenshot(path=str(screenshots / f"integration-{mode}.png"), full_page=True)
    # Nothing may stick out sideways on a desktop screen.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_screenshot_on_a_phone(new_page, renkei_server, screenshots):
    set_settings(renkei_server, {"mode": "ftp"})
    page = open_tab(new_page, renkei_server, viewport={"width": 390, "height": 844})
    expect(page.locator("#ftp-section")).to_be_visible()
    page.screenshot(path=str(screenshots / "integration-ftp-phone.png"), full_page=True)
    page.screenshot(path=str(screenshots / "integration-ftp-phone-top.png"))
    page.locator("#ftp-section").screenshot(path=str(screenshots / "integration-ftp-phone-section.png"))
    page.locator("#change-history").screenshot(path=str(screenshots / "integration-ftp-phone-history.png"))
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
