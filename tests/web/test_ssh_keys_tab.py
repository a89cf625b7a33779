"""SSH公開鍵 on the 外部連携設定 tab (FTP連動): paste, list and 削除 through the test client, CSRF on."""
from __future__ import annotations

import re
from html import unescape

import pytest

from app.models import User
from app.services import sshkeys, users
from tests.fixtures.publickeys import fingerprint, public_line
from tests.web.test_auth import csrf_token

URL = "/settings/integration"
ADD_URL = URL + "/ssh-keys"
REMOVE_URL = URL + "/ssh-keys/remove"


@pytest.fixture
def ftp_admin(app, make_account, login):
    """The account acme in FTP連動, its admin logged in; CSRF checked from then on, as on a server."""
    made = make_account("acme", mode="ftp", error_to=["ops@example.com"])
    login(made.email)
    app.config["WTF_CSRF_ENABLED"] = True
    yield made
    app.config["WTF_CSRF_ENABLED"] = False


def page(client) -> str:
    return unescape(client.get(URL).get_data(as_text=True))


def ssh_field(html: str) -> str:
    start = html.index('id="field-ssh_keys"')
    return html[start:html.index('id="field-ftp_days"', start)]


def post(client, url: str, data: dict) -> str:
    """Post with the page's CSRF token, as the browser does; return the field as the next page shows it."""
    response = client.post(url, data={**data, "csrf_token": csrf_token(page(client))})
    assert response.status_code == 302 and response.headers["Location"].endswith("#field-ssh_keys")
    return ssh_field(page(client))


def notice(field: str) -> list[str]:
    block = re.search(r'<div class="ssh-notice ssh-(\w+)"[^>]*>(.*?)</div>', field, re.DOTALL)
    return [block.group(1), *re.findall(r"<p[^>]*>(.*?)</p>", block.group(2))] if block else []


def rows(field: str) -> list[list[str]]:
    body = re.search(r"<tbody>(.*?)</tbody>", field, re.DOTALL)
    cells = [re.findall(r"<td>(.*?)</td>", row, re.DOTALL) for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.DOTALL)]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in row[:3]] for row in cells] if body else []


def test_the_ftp_section_has_the_field_the_paste_box_and_no_keys_yet(client, ftp_admin):
    field = ssh_field(page(client))
    assert "SSH公開鍵 (authorized_keys形式)" in field
    assert '<textarea id="ssh_keys" name="ssh_keys" form="ssh-key-add"' in field
    assert "登録済みのSSH公開鍵はありません。" in field


def test_pasted_keys_are_added_listed_and_removed_one_by_one(client, ftp_admin):
    pasted = f"# 山田のPC\r\n{public_line('ed25519', 'yamada@pc')}\r\n\r\n{public_line('ecdsa256', 'batch job')}\r\n"
    field = post(client, ADD_URL, {"ssh_keys": pasted})
    assert notice(field) == ["success", "SSH公開鍵を2個追加しました。",
                             f"ssh-ed25519 {fingerprint('ed25519')} yamada@pc",
                             f"ecdsa-sha2-nistp256 {fingerprint('ecdsa256')} batch job"]
    assert rows(field) == [["ssh-ed25519", fingerprint("ed25519"), "yamada@pc"],
                           ["ecdsa-sha2-nistp256", fingerprint("ecdsa256"), "batch job"]]
    assert f'name="fingerprint"\n            value="{fingerprint("ed25519")}"' in field
    # The notice is said once: the next page shows the list only.
    assert notice(ssh_field(page(client))) == []

    field = post(client, REMOVE_URL, {"fingerprint": fingerprint("ed25519")})
    assert notice(field) == ["success", f"SSH公開鍵を削除しました: ssh-ed25519 {fingerprint('ed25519')} yamada@pc"]
    assert rows(field) == [["ecdsa-sha2-nistp256", fingerprint("ecdsa256"), "batch job"]]
    assert sshkeys.public_keys(ftp_admin.id) == [public_line("ecdsa256", "batch job")]
    history = page(client)[page(client).index('id="change-history"'):]
    assert f"SSH公開鍵を削除しました: ssh-ed25519 {fingerprint('ed25519')} (yamada@pc)" in history


def test_wrong_lines_are_named_next_to_the_field_and_nothing_is_added(client, ftp_admin):
    pasted = f"{public_line('ed25519')}\nfrom=\"10.0.0.1\" {public_line('ecdsa256')}\n{public_line('rsa1024')}\n"
    field = post(client, ADD_URL, {"ssh_keys": pasted})
    assert notice(field) == ["error", "SSH公開鍵を追加できませんでした(どの鍵も追加していません)。",
                             ("2行目: 鍵の前にオプション(from=、command=、restrict など)が付いています。オプションは使えません。"
                              "「鍵の種類 鍵 コメント」の形で貼り付けてください。"),
                             "3行目: RSA鍵が1024ビットです。2048ビット以上の鍵にしてください(例: ssh-keygen -t ed25519)。"]
    assert "登録済みのSSH公開鍵はありません。" in field


def test_a_key_already_registered_and_an_unknown_fingerprint_are_said(client, ftp_admin):
    post(client, ADD_URL, {"ssh_keys": public_line("ed25519")})
    field = post(client, ADD_URL, {"ssh_keys": public_line("ed25519", "again")})
    assert notice(field)[2] == f"1行目: この鍵({fingerprint('ed25519')})は登録済みです。"
    field = post(client, REMOVE_URL, {"fingerprint": "SHA256:nosuchkey"})
    assert notice(field) == ["error", "指紋が「SHA256:nosuchkey」のSSH公開鍵は登録されていません。"]
    assert len(rows(field)) == 1


def test_another_accounts_key_cannot_be_removed_from_this_tab(client, ftp_admin, make_account):
    beta = make_account("beta")
    sshkeys.add(beta.id, public_line("ecdsa384", "beta's"), actor="test")
    field = post(client, REMOVE_URL, {"fingerprint": fingerprint("ecdsa384")})
    assert notice(field)[0] == "error"
    assert sshkeys.public_keys(beta.id) == [public_line("ecdsa384", "beta's")]
    assert "beta's" not in field


def test_posts_without_the_csrf_token_change_nothing(client, ftp_admin):
    sshkeys.add(ftp_admin.id, public_line("ed25519"), actor="test")
    assert client.post(ADD_URL, data={"ssh_keys": public_line("ecdsa256")}).status_code == 400
    assert client.post(REMOVE_URL, data={"fingerprint": fingerprint("ed25519")}).status_code == 400
    assert sshkeys.public_keys(ftp_admin.id) == [public_line("ed25519")]


def test_a_viewer_sees_the_keys_but_no_paste_box_or_buttons_and_cannot_post(client, make_account, login):
    made = make_account("acme", mode="ftp", error_to=["ops@example.com"])
    sshkeys.add(made.id, public_line("ed25519", "yamada@pc"), actor="test")
    users.create_user(made.id, "viewer@acme.example", "password-123", User.VIEWER)
    login("viewer@acme.example")
    field = ssh_field(page(client))
    assert rows(field) == [["ssh-ed25519", fingerprint("ed25519"), "yamada@pc"]]
    assert "<textarea" not in field and "削除" not in field
    assert client.post(ADD_URL, data={"ssh_keys": public_line("ecdsa256")}).status_code == 403
    assert client.post(REMOVE_URL, data={"fingerprint": fingerprint("ed25519")}).status_code == 403
    assert len(sshkeys.public_keys(made.id)) == 1


@pytest.mark.parametrize("url", [ADD_URL, REMOVE_URL])
def test_login_and_integration_are_required(client, make_account, login, url):
    assert client.post(url).status_code == 302
    _, email, _ = make_account("acme", integration=False)
    login(email)
    assert client.post(url).status_code == 404
