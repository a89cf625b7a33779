"""The 外部連携設定 tab through the test client: access, saving, no-JS style posts, re-issue buttons."""
from __future__ import annotations

import base64
import json
import re
import zlib

import pytest

from app.extensions import db
from app.models import User
from app.services import integration as service
from app.services import users
from tests.fixtures.html import field_block, integration_form, page_text

URL = "/settings/integration"
ACTION_URLS = [URL, URL + "/inbound-address", URL + "/ftp-password", URL + "/api-token"]


@pytest.fixture
def viewer(make_account, login):
    account, _, _ = make_account("acme")
    users.create_user(account.id, "viewer@acme.example", "password-123", User.VIEWER)
    login("viewer@acme.example")
    return account


def section(html: str, mode: str) -> str:
    match = re.search(rf'<section class="mode-section" id="{mode}-section"[^>]*>', html)
    return match.group(0)


def test_tab_is_404_and_hidden_without_integration(client, make_account, login):
    _, email, _ = make_account("acme", integration=False)
    login(email)
    assert client.get(URL).status_code == 404
    for url in ACTION_URLS:
        assert client.post(url, data={"confirm": "y"}).status_code == 404
    assert "外部連携設定" not in client.get("/settings/members").get_data(as_text=True)


def test_tab_link_shown_when_enabled(client, admin):
    page = client.get("/settings/members").get_data(as_text=True)
    assert f'href="{URL}"' in page and "外部連携設定" in page


@pytest.mark.parametrize("url", ACTION_URLS)
def test_login_required(client, url):
    assert client.get(URL).status_code == 302
    assert client.post(url).status_code == 302


def test_page_shows_every_field_in_order(client, admin):
    html = page_text(client.get(URL))
    labels = ["データ連動方式", "データ連動ステータス", "メンバー識別ID", "文字コード", "エラー報告メールアドレス",
              "正常更新報告メールアドレス", "送信先メールアドレス", "送信元メールアドレス", "FTPサーバー", "FTPサーバー ID",
              "FTPサーバー PW", "データ連動曜日", "データ連動時間", "データ連動間隔", "○分遅らせてチェック",
              "APIエンドポイント", "APIトークン", "変更履歴"]
    positions = [html.index(label) for label in labels]
    assert positions == sorted(positions)
    for option in ["メール添付連動", "FTP連動", "API連動", "連動稼働停止", "メンバー設定の社員ID", "Shift_JIS(cp932)",
                   "5分", "10分", "15分", "30分", "1時間", "2時間"]:
        assert option in html
    assert "データ連動でエラーが発生した場合に通知するメールアドレス" in html
    settings = service.get_settings(admin.id)
    assert service.inbound_address(settings) in html
    assert "未発行です" in field_block(html, "ftp_password")  # nothing issued yet, nothing to show
    assert "http://renkei.test/api/v1/imports" in html
    assert 'src="/static/integration.js"' in html and "<script>" not in html


def test_only_the_saved_mode_section_is_shown(client, admin):
    html = page_text(client.get(URL))
    assert "hidden" not in section(html, "mail")
    assert "hidden" in section(html, "ftp") and "hidden" in section(html, "api")


def test_save_then_reload_shows_the_values(client, admin):
    response = client.post(URL, data=integration_form(
        mode="ftp", status="stopped", member_key="employee_id", encoding="cp932",
        error_to="ops@example.com\nops2@example.com", success_to="boss@example.com",
        ftp_days=["sat", "sun"], ftp_start="08:30", ftp_end="12:00", ftp_interval="30", ftp_delay="5",
    ))
    assert response.status_code == 302
    html = page_text(client.get(URL))
    assert "外部連携設定を保存しました。" in html
    # Each saved choice is the selected option of its list (mode, status, key, encoding, interval).
    assert {"ftp", "stopped", "employee_id", "cp932", "30"} <= set(re.findall(r'<option selected value="([^"]*)">', html))
    assert "ops@example.com\nops2@example.com</textarea>" in html
    assert 'value="08:30"' in html and 'value="12:00"' in html and 'value="5"' in html
    assert 'value="sat" id="ftp_days-sat"\n          checked' in html
    assert "hidden" not in section(html, "ftp") and "hidden" in section(html, "mail")
    assert "次回チェック予定" in html and "08:35" in html
    assert "連動稼働停止中です" in html
    assert "データ連動方式: メール添付連動 → FTP連動" in html and "admin@acme.example" in html


def test_repeated_inputs_and_textarea_values_are_both_accepted(client, admin):
    # JS rows post one value per input; the no-JS textarea posts one value with newlines or commas.
    data = integration_form(error_to=["a@example.com", "b@example.com", ""], success_to="c@example.com, d@example.com")
    assert client.post(URL, data=data).status_code == 302
    settings = service.get_settings(admin.id)
    db.session.refresh(settings)
    assert settings.error_to == ["a@example.com", "b@example.com"]
    assert settings.success_to == ["c@example.com", "d@example.com"]


def test_invalid_submit_shows_messages_next_to_fields_and_keeps_inputs(client, admin):
    response = client.post(URL, data=integration_form(
        error_to="ops@example.com\nbroken-address", senders="", success_to="boss@example.com", encoding="utf-8",
    ))
    assert response.status_code == 422
    html = page_text(response)
    assert "「broken-address」はメールアドレスとして正しくありません。" in field_block(html, "error_to")
    assert "送信元メールアドレスを1件以上入力してください。" in field_block(html, "senders")
    assert "ops@example.com\nbroken-address</textarea>" in html
    assert "boss@example.com</textarea>" in html
    assert '<option selected value="utf-8">' in html
    settings = service.get_settings(admin.id)
    assert settings.error_to == [] and settings.encoding == "auto"


def test_no_js_mode_change_with_missing_fields_shows_the_new_mode_and_keeps_inputs(client, admin):
    # Saved as API first, then a no-JS user picks メール添付連動 and saves without 送信元.
    assert client.post(URL, data=integration_form(mode="api", senders="")).status_code == 302
    response = client.post(URL, data=integration_form(mode="mail", senders="", error_to="ops@example.com", ftp_delay="7"))
    html = page_text(response)
    assert response.status_code == 422
    assert "hidden" not in section(html, "mail") and "hidden" in section(html, "api")
    assert "送信元メールアドレスを1件以上入力してください。" in field_block(html, "senders")
    assert 'value="7"' in html
    # Then the user fills it in and saves: the mode changes.
    assert client.post(URL, data=integration_form(mode="mail", senders="erp@example.com")).status_code == 302
    assert service.get_settings(admin.id).mode == "mail"


def test_no_js_switch_to_ftp_keeps_mail_values(client, admin):
    assert client.post(URL, data=integration_form()).status_code == 302
    data = integration_form(mode="ftp")
    del data["senders"]  # a page that did not render the mail section posts no senders at all
    assert client.post(URL, data=data).status_code == 302
    settings = service.get_settings(admin.id)
    db.session.refresh(settings)
    assert settings.mode == "ftp"
    assert settings.senders == ["erp@example.com"]


def test_ftp_errors_are_shown_next_to_their_fields(client, admin):
    html = page_text(client.post(URL, data=integration_form(mode="ftp", ftp_days=[], ftp_start="18:00", ftp_end="09:00", ftp_delay="75")))
    assert "データ連動曜日を1つ以上選んでください。" in field_block(html, "ftp_days")
    assert "終了時刻は開始時刻以降にしてください。" in field_block(html, "ftp_end")
    assert "遅らせる時間は 0〜59 分で入力してください。" in field_block(html, "ftp_delay")


def test_viewer_sees_read_only_and_gets_403_on_every_post(client, viewer):
    html = page_text(client.get(URL))
    assert "閲覧者の権限では外部連携設定を変更できません" in html
    assert 'id="save-button"' not in html
    assert "再発行</button>" not in html
    assert re.search(r'<select[^>]*disabled[^>]*id="mode"|<select[^>]*id="mode"[^>]*disabled', html)
    assert re.search(r'<textarea id="error_to"[^>]*\n?\s*disabled', html)
    for url in ACTION_URLS:
        assert client.post(url, data={**integration_form(), "confirm": "y"}).status_code == 403
    assert service.get_settings(viewer.id).error_to == []


def test_ftp_password_is_shown_once_and_stored_hashed(client, admin):
    # Shown in the POST's own answer, which no cache keeps.
    response = client.post(URL + "/ftp-password", data={"confirm": "y"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = page_text(response)
    assert "FTPサーバー PWを発行しました。" in html
    password = re.search(r'id="ftp_password" class="secret" value="([^"]+)"', html).group(1)
    assert service.verify_ftp_password("acme", password) is not None
    again = page_text(client.get(URL))
    assert password not in again
    assert "●●●● (再発行すると表示されます)" in again
    assert password not in service.get_settings(admin.id).ftp_password_hash


def test_reissue_requires_confirmation_without_js(client, admin):
    before = service.inbound_address(service.get_settings(admin.id))
    response = client.post(URL + "/inbound-address", data={}, follow_redirects=True)
    assert "確認のチェックを入れてから" in page_text(response)
    assert service.inbound_address(service.get_settings(admin.id)) == before
    response = client.post(URL + "/inbound-address", data={"confirm": "y"}, follow_redirects=True)
    settings = service.get_settings(admin.id)
    db.session.refresh(settings)
    after = service.inbound_address(settings)
    assert after != before and after in page_text(response)


def test_api_token_shown_once_with_a_curl_example(client, admin):
    response = client.post(URL + "/api-token", data={"confirm": "y"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = page_text(response)
    token = re.search(r'id="api_token" class="secret" value="([^"]+)"', html).group(1)
    assert f'-H "Authorization: Bearer {token}"' in html
    assert service.account_for_token(token).id == admin.id
    assert token not in page_text(client.get(URL))


def session_cookies(response) -> list[str]:
    """The values of the Flask session cookies a response sets."""
    return [header.split(";", 1)[0].split("=", 1)[1] for header in response.headers.getlist("Set-Cookie")
            if header.startswith("session=")]


def cookie_text(app, value: str) -> str:
    """A session cookie as anyone holding it reads it: its payload, unsigned and inflated (no key needed)."""
    payload = value.lstrip(".").split(".", 1)[0]
    data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    text = (zlib.decompress(data) if value.startswith(".") else data).decode("utf-8")
    # The same through Flask's own serializer, so the payload read above is the whole session.
    signed = app.session_interface.get_signing_serializer(app).loads(value)
    assert json.loads(text) == json.loads(app.session_interface.serializer.dumps(dict(signed)))
    return text


@pytest.mark.parametrize("action, field", [("/ftp-password", "ftp_password"), ("/api-token", "api_token")])
def test_no_issued_secret_is_ever_in_a_cookie(app, client, make_account, action, field):
    make_account("acme")
    # The whole flow: log in, open the tab, issue, come back, log out; every response's cookies.
    responses = [client.post("/login", data={"email": "admin@acme.example", "password": "password-123"}),
                 client.get(URL)]
    issued = client.post(URL + action, data={"confirm": "y"})
    responses += [issued, client.get(URL), client.get("/"), client.post("/logout")]
    secret = re.search(rf'id="{field}" class="secret" value="([^"]+)"', page_text(issued)).group(1)
    cookies = [value for response in responses for value in session_cookies(response)]
    assert cookies, "the flow sets session cookies"
    for value in cookies:
        assert secret not in cookie_text(app, value)
    assert all(secret not in header for response in responses for header in response.headers.getlist("Set-Cookie"))


def test_history_lists_the_latest_twenty(client, admin):
    for i in range(22):
        changes = {"error_to": f"ops{i}@example.com", "senders": "erp@example.com"}
        service.update_settings(admin.id, changes, actor=f"user{i}@example.com")
    html = page_text(client.get(URL))
    history = html[html.index('id="change-history"'):]
    assert history.count('<td class="summary">') == 20
    assert "user21@example.com" in history and "user1@example.com" not in history


def test_csrf_is_checked_when_enabled(client, admin, app):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        response = client.post(URL, data=integration_form())
        assert response.status_code == 400
        assert client.post(URL + "/ftp-password", data={"confirm": "y"}).status_code in (302, 400)
        assert service.get_settings(admin.id).ftp_password_hash is None
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


@pytest.mark.parametrize("overrides, field, message", [
    ({"mode": "api", "ftp_interval": "7"}, "ftp_interval", "データ連動間隔"),
    ({"mode": "ftp", "senders": "ok@x.co.jp\nnot-an-email"}, "senders", "「not-an-email」はメールアドレスとして正しくありません。"),
])
def test_a_bad_value_in_a_hidden_section_of_another_mode_is_refused(client, admin, overrides, field, message):
    assert client.post(URL, data=integration_form()).status_code == 302
    response = client.post(URL, data=integration_form(**overrides))
    assert response.status_code == 422
    assert message in field_block(page_text(response), field)
    settings = service.get_settings(admin.id)
    db.session.refresh(settings)
    assert (settings.mode, settings.ftp_interval, settings.senders) == ("mail", 60, ["erp@example.com"])


def test_intranet_addresses_are_saved_from_the_page(client, admin):
    data = integration_form(senders="erp@sales.local\nx@host.lan", error_to="it@corp.internal", success_to="admin@acme.test")
    assert client.post(URL, data=data).status_code == 302
    settings = service.get_settings(admin.id)
    db.session.refresh(settings)
    assert (settings.senders, settings.error_to, settings.success_to) == (
        ["erp@sales.local", "x@host.lan"], ["it@corp.internal"], ["admin@acme.test"])


def test_the_inbound_address_is_shown_in_full_to_admins_only(client, make_account, login):
    made = make_account("acme")
    users.create_user(made.id, "viewer@acme.example", "password-123", User.VIEWER)
    local = made.address.split("@")[0]
    login(made.email)
    assert made.address in page_text(client.get(URL))
    client.post("/logout")
    login("viewer@acme.example")
    html = page_text(client.get(URL))
    assert local not in html and local[2:] not in html
    assert f'value="{local[:2]}***@{made.address.split("@")[1]}"' in html
    assert "一部だけを表示" in html


def test_sender_networks_and_sender_auth_are_saved_and_bad_networks_explained(client, admin):
    response = client.post(URL, data=integration_form(sender_networks="192.0.2.0/24\n10.0.0.300\nmail.example.com",
                                                      sender_auth="dkim"))
    assert response.status_code == 422
    block = field_block(page_text(response), "sender_networks")
    assert "「10.0.0.300」「mail.example.com」はIPアドレスまたはネットワーク" in block
    assert service.get_settings(admin.id).sender_networks == []

    response = client.post(URL, data=integration_form(sender_networks="192.0.2.9/24\n2001:DB8::1\n127.0.0.1",
                                                      sender_auth="either"))
    assert response.status_code == 302
    settings = service.get_settings(admin.id)
    assert settings.sender_networks == ["192.0.2.0/24", "2001:db8::1", "127.0.0.1"]
    assert settings.sender_auth == "either"
    html = page_text(client.get(URL))
    assert '<option selected value="either">DKIMまたはSPF必須</option>' in html
    assert "送信元サーバー: (なし) → 192.0.2.0/24, 2001:db8::1, 127.0.0.1" in html
