"""受信方法 on the 外部連携設定 tab: the IMAP fields, the password never shown again, the verify warning, 今すぐ取得."""
from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import text as sql

from app.extensions import db
from app.models import SettingsChange
from app.models_links import Mailbox
from app.services import mailbox, sealed
from tests.fixtures.html import field_block, integration_form, page_text

URL = "/settings/integration"


def page(client) -> str:
    return page_text(client.get(URL))


def imap_data(**overrides) -> dict:
    data = integration_form(imap_fields="1", method="imap", host="imap.example.jp", port="", tls="implicit",
                            verify="y", username="renkei@acme.example", password="app-pass-1234", folder="",
                            processed_folder="")
    data.update(overrides)
    if data.get("verify") is None:
        data.pop("verify")  # an unticked checkbox is not posted
    return data


def stored(account_id: int) -> Mailbox:
    db.session.expire_all()
    return db.session.query(Mailbox).filter_by(account_id=account_id).one()


def test_a_new_account_receives_by_smtp_and_the_tab_offers_both_methods(client, admin):
    html = page(client)
    block = field_block(html, "receive_method")
    assert "専用アドレス(内蔵SMTP)" in block and "メールボックスから取得(IMAP)" in block
    assert "checked" in re.search(r'<input[^>]*value="smtp"[^>]*>', block).group(0)
    assert "checked" not in re.search(r'<input[^>]*value="imap"[^>]*>', block).group(0)
    assert "今すぐ取得" not in html  # only once the mailbox is the method
    assert mailbox.get(admin.id).method == "smtp"


def test_saving_imap_stores_the_password_encrypted_and_never_shows_it(client, admin):
    response = client.post(URL, data=imap_data())
    assert response.status_code == 302
    row = stored(admin.id)
    assert (row.method, row.host, row.port, row.tls, row.verify, row.username, row.folder, row.processed_folder) == (
        "imap", "imap.example.jp", 993, "implicit", True, "renkei@acme.example", "INBOX", "Renkei/処理済")
    raw = db.session.execute(sql("SELECT password FROM mailboxes")).scalar_one()
    assert "app-pass-1234" not in raw
    assert sealed.unseal(raw, mailbox.PURPOSE) == "app-pass-1234"
    html = page(client)
    assert "app-pass-1234" not in html
    assert "設定済みです" in field_block(html, "imap_password")
    assert "今すぐ取得" in html
    assert "imap-verify-warning" not in html
    summaries = [c.summary for c in db.session.query(SettingsChange).filter_by(account_id=admin.id)]
    assert any("受信方法" in s and "パスワード" in s for s in summaries)

    # A blank password keeps the stored one; turning the check off shows the warning.
    assert client.post(URL, data=imap_data(password="", verify=None)).status_code == 302
    row = stored(admin.id)
    assert sealed.unseal(row.password, mailbox.PURPOSE) == "app-pass-1234" and row.verify is False
    assert "サーバー証明書を確認していません" in field_block(page(client), "imap_verify")


def test_imap_needs_host_user_and_password_and_a_separate_processed_folder(client, admin):
    response = client.post(URL, data=imap_data(host="", password="", folder="受信", processed_folder="受信"))
    assert response.status_code == 422
    html = page_text(response)
    assert "IMAPサーバーを入力してください" in field_block(html, "imap_host")
    assert "パスワードを入力してください" in field_block(html, "imap_password")
    assert "別のフォルダ" in field_block(html, "imap_processed_folder")
    assert db.session.query(Mailbox).count() == 0
    response = client.post(URL, data=imap_data(port="70000"))
    assert "1〜65535" in field_block(page_text(response), "imap_port")


def test_starttls_takes_port_143_when_left_blank(client, admin):
    assert client.post(URL, data=imap_data(tls="starttls")).status_code == 302
    assert (stored(admin.id).tls, stored(admin.id).port) == ("starttls", 143)


def test_the_last_fetch_and_the_last_error_are_shown(client, admin):
    client.post(URL, data=imap_data())
    at = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    mailbox.record_success(admin.id, at)
    mailbox.record_failure(admin.id, "ログインできません(ユーザー名かパスワードが違います): AUTHENTICATIONFAILED",
                           at + dt.timedelta(minutes=1))
    html = page(client)
    block = html[html.index('id="imap-fetch-result"'):]
    assert "2030-01-02" in block.split('id="imap-last-error"')[0]
    assert "ログインできません(ユーザー名かパスワードが違います)" in block
    assert "次の取得" in block
    mailbox.record_success(admin.id, at + dt.timedelta(minutes=3))
    assert 'id="imap-last-error"' not in page(client)  # an error older than the last success is over


def test_fetch_now_needs_imap_and_the_csrf_token(client, admin, app):
    response = client.post(URL + "/fetch-now", follow_redirects=True)
    assert "受信方法が「メールボックスから取得(IMAP)」ではありません" in page_text(response)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        assert client.post(URL + "/fetch-now").status_code == 400  # refused before anything runs
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_a_viewer_sees_the_method_but_no_fields_to_change(client, make_account, login):
    from app.models import User
    from app.services import users

    account, _, _ = make_account("acme")
    users.create_user(account.id, "viewer@acme.example", "password-123", User.VIEWER)
    login("viewer@acme.example")
    html = page(client)
    assert "disabled" in field_block(html, "receive_method")
    assert "今すぐ取得" not in html
    assert client.post(URL + "/fetch-now").status_code == 403
