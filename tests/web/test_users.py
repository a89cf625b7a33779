"""設定 > ユーザー through the browser: list, add, remove, role, password reset, the last-admin and self rules, scoping."""
from __future__ import annotations

import re
from html import unescape

import pytest
from werkzeug.security import check_password_hash

from app.extensions import db
from app.models import User
from app.services import users as user_service
from tests.fixtures.accounts import OwnContextClient, users_of
from tests.fixtures.addresses import INVALID as INVALID_ADDRESSES
from tests.fixtures.addresses import VALID as VALID_ADDRESSES


@pytest.fixture
def client(app):
    # Several browsers and commands act in turn here: each request in its own app context.
    app.test_client_class = OwnContextClient
    return app.test_client()


def test_list_shows_users_and_roles(client, admin):
    user_service.create_user(admin.id, "viewer@acme.example", "password-123", User.VIEWER)
    html = client.get("/settings/users").get_data(as_text=True)
    assert "admin@acme.example" in html and "viewer@acme.example" in html
    assert "管理者" in html and "閲覧者" in html and "ユーザーを追加" in html


def test_add_user_who_can_then_log_in(client, admin):
    response = client.post("/settings/users/new",
                           data={"email": "Hanako@Acme.example", "password": "secret-pass", "role": "viewer"},
                           follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "ユーザー hanako@acme.example(閲覧者)を追加しました。" in html
    assert ("hanako@acme.example", "viewer") in users_of(admin.id)
    client.post("/logout")
    assert client.post("/login", data={"email": "hanako@acme.example", "password": "secret-pass"}).status_code == 302


@pytest.mark.parametrize(
    "data, message",
    [
        ({"email": "admin@acme.example", "password": "secret-pass", "role": "admin"},
         "メールアドレス admin@acme.example は既にこのアカウントのユーザーです。"),
        ({"email": "new@acme.example", "password": "short", "role": "admin"}, "パスワードは8文字以上にしてください。"),
        ({"email": "not an address", "password": "secret-pass", "role": "admin"}, "メールアドレス「not an address」の形式が正しくありません。"),
        ({"email": "", "password": "secret-pass", "role": "admin"}, "メールアドレスを入力してください。"),
        ({"email": "new@acme.example", "password": "secret-pass", "role": "owner"}, "権限を選んでください。"),
    ],
)
def test_add_user_errors(client, admin, data, message):
    response = client.post("/settings/users/new", data=data)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert users_of(admin.id) == [("admin@acme.example", "admin")]


def test_another_accounts_login_is_refused_without_saying_it_is_used_elsewhere(client, admin, make_account):
    make_account("beta")
    response = client.post("/settings/users/new",
                           data={"email": "Admin@Beta.example", "password": "secret-pass", "role": "viewer"})
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 200
    assert "メールアドレス admin@beta.example は使用できません。別のメールアドレスを指定してください。" in html
    assert "既に" not in html and "beta 株式会社" not in html
    assert users_of(admin.id) == [("admin@acme.example", "admin")]


@pytest.mark.parametrize("typed, normal", VALID_ADDRESSES)
def test_add_user_accepts_every_valid_address(client, admin, typed, normal):
    response = client.post("/settings/users/new", data={"email": typed, "password": "secret-pass", "role": "viewer"})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert (normal.lower(), "viewer") in users_of(admin.id)


@pytest.mark.parametrize("typed", [t for t in INVALID_ADDRESSES if t.strip()])
def test_add_user_refuses_every_invalid_address(client, admin, typed):
    response = client.post("/settings/users/new", data={"email": typed, "password": "secret-pass", "role": "viewer"})
    assert response.status_code == 200
    assert f"メールアドレス「{typed.strip()}」の形式が正しくありません。" in unescape(response.get_data(as_text=True))
    assert users_of(admin.id) == [("admin@acme.example", "admin")]


def test_remove_user(client, admin):
    other = user_service.create_user(admin.id, "viewer@acme.example", "password-123", User.VIEWER)
    html = client.post(f"/settings/users/{other.id}/delete", follow_redirects=True).get_data(as_text=True)
    assert "ユーザー viewer@acme.example を削除しました。" in html
    assert users_of(admin.id) == [("admin@acme.example", "admin")]


def test_cannot_remove_oneself(client, admin):
    me = db.session.scalar(db.select(User).where(User.email == "admin@acme.example"))
    html = client.post(f"/settings/users/{me.id}/delete", follow_redirects=True).get_data(as_text=True)
    assert "自分自身は削除できません。" in html
    assert users_of(admin.id) == [("admin@acme.example", "admin")]


def test_cannot_remove_the_last_admin(client, make_account, login):
    account, _, _ = make_account("acme")
    user_service.create_user(account.id, "second@acme.example", "password-123", User.ADMIN)
    login("second@acme.example")
    first = db.session.scalar(db.select(User).where(User.email == "admin@acme.example"))
    client.post(f"/settings/users/{first.id}/delete")
    assert users_of(account.id) == [("second@acme.example", "admin")]
    # The service refuses the last admin even when reached another way (e.g. a stale page).
    with pytest.raises(Exception, match="最後の管理者"):
        user_service.remove_user(account.id, db.session.scalar(
            db.select(User.id).where(User.email == "second@acme.example")), acting_user_id=0)


def test_viewer_sees_users_but_cannot_add_or_remove(client, make_account, login):
    account, _, _ = make_account("acme")
    user_service.create_user(account.id, "viewer@acme.example", "password-123", User.VIEWER)
    admin_id = db.session.scalar(db.select(User.id).where(User.email == "admin@acme.example"))
    login("viewer@acme.example")
    html = client.get("/settings/users").get_data(as_text=True)
    assert "admin@acme.example" in html
    assert "ユーザーを追加" not in html and "削除" not in html
    assert client.get("/settings/users/new").status_code == 403
    assert client.post("/settings/users/new", data={"email": "x@acme.example", "password": "password-123",
                                                     "role": "admin"}).status_code == 403
    assert client.post(f"/settings/users/{admin_id}/delete").status_code == 403
    assert len(users_of(account.id)) == 2


# --- role change and password reset --------------------------------------------------------

def user_id(email: str) -> int:
    return db.session.scalar(db.select(User.id).where(User.email == email))


def test_admin_changes_another_users_role(client, admin):
    other = user_service.create_user(admin.id, "viewer@acme.example", "password-123", User.VIEWER)
    html = client.post(f"/settings/users/{other.id}/role", data={"role": "admin"},
                       follow_redirects=True).get_data(as_text=True)
    assert "ユーザー viewer@acme.example の権限を管理者にしました。" in html
    assert users_of(admin.id) == [("admin@acme.example", "admin"), ("viewer@acme.example", "admin")]
    html = client.post(f"/settings/users/{other.id}/role", data={"role": "owner"},
                       follow_redirects=True).get_data(as_text=True)
    assert "権限を選んでください。" in html
    assert users_of(admin.id) == [("admin@acme.example", "admin"), ("viewer@acme.example", "admin")]


def test_a_role_change_ends_the_users_sessions(app, client, make_account):
    acc = make_account("acme")
    user_service.create_user(acc.id, "viewer@acme.example", "password-123", User.VIEWER)
    viewer = app.test_client()
    assert viewer.post("/login", data={"email": "viewer@acme.example", "password": "password-123"}).status_code == 302
    assert client.post("/login", data={"email": acc.email, "password": acc.password}).status_code == 302
    client.post(f"/settings/users/{user_id('viewer@acme.example')}/role", data={"role": "admin"})
    assert viewer.get("/").status_code == 302  # signed out: the new role needs a new login


def test_the_last_admin_cannot_be_demoted_on_the_page(client, admin):
    user_service.create_user(admin.id, "viewer@acme.example", "password-123", User.VIEWER)
    me = user_id("admin@acme.example")
    response = client.post(f"/settings/users/{me}/role", data={"role": "viewer"}, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "最後の管理者は閲覧者に変更できません。先に別のユーザーを管理者にしてください。" in html
    assert users_of(admin.id) == [("admin@acme.example", "admin"), ("viewer@acme.example", "viewer")]
    assert client.get("/settings/users").status_code == 200  # still signed in, still admin
    # The service refuses the same whatever calls it.
    with pytest.raises(Exception, match="最後の管理者は閲覧者に変更できません"):
        user_service.set_role(admin.id, me, User.VIEWER)


def test_an_admin_may_step_down_when_another_admin_remains_and_stays_signed_in(client, admin):
    user_service.create_user(admin.id, "second@acme.example", "password-123", User.ADMIN)
    html = client.post(f"/settings/users/{user_id('admin@acme.example')}/role", data={"role": "viewer"},
                       follow_redirects=True).get_data(as_text=True)
    assert "ユーザー admin@acme.example の権限を閲覧者にしました。" in html
    assert users_of(admin.id) == [("admin@acme.example", "viewer"), ("second@acme.example", "admin")]
    assert client.get("/settings/users").status_code == 200
    assert client.get("/settings/users/new").status_code == 403  # a viewer now


def test_admin_resets_another_users_password_shown_once(app, client, admin):
    other = user_service.create_user(admin.id, "viewer@acme.example", "password-123", User.VIEWER)
    viewer = app.test_client()
    assert viewer.post("/login", data={"email": "viewer@acme.example", "password": "password-123"}).status_code == 302

    response = client.post(f"/settings/users/{other.id}/reset-password")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    password = re.search(r"viewer@acme\.example の新しいパスワード: <code>([^<]+)</code>", html).group(1)
    assert "この画面に1回だけ表示します" in html
    # Not kept anywhere in clear: not in the row, not in the session cookie, not on the next page.
    db.session.expire_all()
    row = db.session.get(User, other.id)
    assert password not in row.password_hash and check_password_hash(row.password_hash, password)
    assert password not in (client.get_cookie("session").value or "")
    assert password not in client.get("/settings/users").get_data(as_text=True)
    # The user's sessions ended; the old password fails, the new one logs in.
    assert viewer.get("/").status_code == 302
    old = {"email": "viewer@acme.example", "password": "password-123"}
    assert viewer.post("/login", data=old).status_code == 401
    new = {"email": "viewer@acme.example", "password": password}
    assert viewer.post("/login", data=new).status_code == 302
    assert viewer.get("/").status_code == 200


def test_viewer_cannot_reset_passwords_or_change_roles(client, make_account, login):
    account, _, _ = make_account("acme")
    user_service.create_user(account.id, "viewer@acme.example", "password-123", User.VIEWER)
    admin_id = user_id("admin@acme.example")
    login("viewer@acme.example")
    html = client.get("/settings/users").get_data(as_text=True)
    assert "パスワード再設定" not in html and "権限を変更" not in html
    assert client.post(f"/settings/users/{admin_id}/reset-password").status_code == 403
    assert client.post(f"/settings/users/{admin_id}/role", data={"role": "viewer"}).status_code == 403
    assert users_of(account.id) == [("admin@acme.example", "admin"), ("viewer@acme.example", "viewer")]


def test_an_admin_cannot_touch_users_of_another_account(client, make_account, login):
    a = make_account("alpha")
    b = make_account("bravo")
    b_viewer = user_service.create_user(b.id, "viewer@bravo.example", "password-123", User.VIEWER)
    before = db.session.get(User, b_viewer.id).password_hash
    login(a.email)
    for target in (b_viewer.id, user_id(b.email)):
        assert client.post(f"/settings/users/{target}/reset-password").status_code == 404
        assert client.post(f"/settings/users/{target}/role", data={"role": "admin"}).status_code == 404
        assert client.post(f"/settings/users/{target}/delete").status_code == 404
    assert "bravo" not in client.get("/settings/users").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, b_viewer.id).password_hash == before
    assert users_of(b.id) == [("admin@bravo.example", "admin"), ("viewer@bravo.example", "viewer")]
    # The service is scoped the same way.
    with pytest.raises(Exception, match="ユーザーが見つかりません"):
        user_service.set_role(a.id, b_viewer.id, User.ADMIN)


def test_role_and_reset_forms_need_the_csrf_token(app, client, admin):
    other = user_service.create_user(admin.id, "viewer@acme.example", "password-123", User.VIEWER)
    before = db.session.get(User, other.id).password_hash
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        assert client.post(f"/settings/users/{other.id}/role", data={"role": "admin"}).status_code == 400
        assert client.post(f"/settings/users/{other.id}/reset-password").status_code == 400
        db.session.expire_all()
        assert db.session.get(User, other.id).password_hash == before
        assert users_of(admin.id) == [("admin@acme.example", "admin"), ("viewer@acme.example", "viewer")]
        page = client.get("/settings/users").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        assert client.post(f"/settings/users/{other.id}/role", data={"role": "admin", "csrf_token": token}
                           ).status_code == 302
        assert client.post(f"/settings/users/{other.id}/reset-password", data={"csrf_token": token}
                           ).status_code == 200
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert users_of(admin.id) == [("admin@acme.example", "admin"), ("viewer@acme.example", "admin")]
