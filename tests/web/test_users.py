"""設定 > ユーザー through the browser: list, add, remove, the last-admin and self rules, viewer limits."""
from __future__ import annotations

from html import unescape

import pytest

from app.extensions import db
from app.models import User
from app.services import users as user_service
from tests.fixtures.addresses import INVALID as INVALID_ADDRESSES
from tests.fixtures.addresses import VALID as VALID_ADDRESSES


@pytest.fixture
def admin(make_account, login):
    account, email, _ = make_account("acme")
    login(email)
    return account


def stored(account_id: int) -> list[tuple[str, str]]:
    db.session.expire_all()
    rows = db.session.scalars(db.select(User).where(User.account_id == account_id).order_by(User.email))
    return [(u.email, u.role) for u in rows]


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
    assert ("hanako@acme.example", "viewer") in stored(admin.id)
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
    assert stored(admin.id) == [("admin@acme.example", "admin")]


def test_another_accounts_login_is_refused_without_saying_it_is_used_elsewhere(client, admin, make_account):
    make_account("beta")
    response = client.post("/settings/users/new",
                           data={"email": "Admin@Beta.example", "password": "secret-pass", "role": "viewer"})
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 200
    assert "メールアドレス admin@beta.example は使用できません。別のメールアドレスを指定してください。" in html
    assert "既に" not in html and "beta 株式会社" not in html
    assert stored(admin.id) == [("admin@acme.example", "admin")]


@pytest.mark.parametrize("typed, normal", VALID_ADDRESSES)
def test_add_user_accepts_every_valid_address(client, admin, typed, normal):
    response = client.post("/settings/users/new", data={"email": typed, "password": "secret-pass", "role": "viewer"})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert (normal.lower(), "viewer") in stored(admin.id)


@pytest.mark.parametrize("typed", [t for t in INVALID_ADDRESSES if t.strip()])
def test_add_user_refuses_every_invalid_address(client, admin, typed):
    response = client.post("/settings/users/new", data={"email": typed, "password": "secret-pass", "role": "viewer"})
    assert response.status_code == 200
    assert f"メールアドレス「{typed.strip()}」の形式が正しくありません。" in unescape(response.get_data(as_text=True))
    assert stored(admin.id) == [("admin@acme.example", "admin")]


def test_remove_user(client, admin):
    other = user_service.create_user(admin.id, "viewer@acme.example", "password-123", User.VIEWER)
    html = client.post(f"/settings/users/{other.id}/delete", follow_redirects=True).get_data(as_text=True)
    assert "ユーザー viewer@acme.example を削除しました。" in html
    assert stored(admin.id) == [("admin@acme.example", "admin")]


def test_cannot_remove_oneself(client, admin):
    me = db.session.scalar(db.select(User).where(User.email == "admin@acme.example"))
    html = client.post(f"/settings/users/{me.id}/delete", follow_redirects=True).get_data(as_text=True)
    assert "自分自身は削除できません。" in html
    assert stored(admin.id) == [("admin@acme.example", "admin")]


def test_cannot_remove_the_last_admin(client, make_account, login):
    account, _, _ = make_account("acme")
    user_service.create_user(account.id, "second@acme.example", "password-123", User.ADMIN)
    login("second@acme.example")
    first = db.session.scalar(db.select(User).where(User.email == "admin@acme.example"))
    client.post(f"/settings/users/{first.id}/delete")
    assert stored(account.id) == [("second@acme.example", "admin")]
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
    assert len(stored(account.id)) == 2
