"""ログイン, ログアウト, パスワード変更, the login ban and CSRF, as a browser sees them."""
from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.models import Member

LOGIN_ERROR = "メールアドレスまたはパスワードが正しくありません。"


@pytest.fixture
def account(make_account):
    account, email, password = make_account("acme")
    return account


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no csrf_token in the form"
    return match.group(1)


def test_login_page_renders(client):
    response = client.get("/login")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<h1>ログイン</h1>" in html and "メールアドレス" in html and "パスワード" in html


def test_pages_need_login(client):
    response = client.get("/settings/members")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_good_login_goes_to_main(client, account):
    response = client.post("/login", data={"email": "ADMIN@acme.example ", "password": "password-123"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    html = client.get("/").get_data(as_text=True)
    assert "メイン" in html and "admin@acme.example" in html


def test_login_follows_next_only_on_this_site(client, account):
    response = client.post("/login?next=/settings/users", data={"email": "admin@acme.example", "password": "password-123"})
    assert response.headers["Location"] == "/settings/users"
    client.post("/logout")
    response = client.post("/login?next=//evil.example/x", data={"email": "admin@acme.example", "password": "password-123"})
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("email, password", [("admin@acme.example", "wrong-password"), ("nobody@acme.example", "password-123")])
def test_wrong_login_shows_the_japanese_error_with_401(client, account, email, password):
    response = client.post("/login", data={"email": email, "password": password})
    assert response.status_code == 401
    assert LOGIN_ERROR in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_logout_is_a_post(client, account, login):
    login("admin@acme.example")
    assert client.get("/logout").status_code == 405
    response = client.post("/logout", follow_redirects=True)
    assert "ログアウトしました。" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_password_change(client, account, login):
    login("admin@acme.example")
    html = client.post("/password", data={"current": "wrong-one", "new": "new-password-1",
                                          "confirm": "new-password-1"}).get_data(as_text=True)
    assert "現在のパスワードが正しくありません。" in html
    html = client.post("/password", data={"current": "password-123", "new": "short",
                                          "confirm": "short"}).get_data(as_text=True)
    assert "パスワードは8文字以上にしてください。" in html
    html = client.post("/password", data={"current": "password-123", "new": "new-password-1",
                                          "confirm": "other-password"}).get_data(as_text=True)
    assert "確認用のパスワードが一致しません。" in html
    response = client.post("/password", data={"current": "password-123", "new": "new-password-1",
                                              "confirm": "new-password-1"}, follow_redirects=True)
    assert "パスワードを変更しました。" in response.get_data(as_text=True)
    client.post("/logout")
    assert client.post("/login", data={"email": "admin@acme.example", "password": "password-123"}).status_code == 401
    assert client.post("/login", data={"email": "admin@acme.example", "password": "new-password-1"}).status_code == 302


def test_ban_after_threshold_failures_even_with_the_right_password(app, client, account, login_clock):
    app.config.update(BAN_THRESHOLD=3, BAN_SECONDS=900)
    bad = {"email": "admin@acme.example", "password": "wrong-password"}
    assert client.post("/login", data=bad).status_code == 401
    assert client.post("/login", data=bad).status_code == 401
    banned = client.post("/login", data=bad)
    assert (banned.status_code, banned.headers["Retry-After"]) == (429, "900")
    assert "一時的に止めています。約15分後にもう一度お試しください。" in banned.get_data(as_text=True)
    login_clock.advance(299.5)  # Retry-After is the time actually left, rounded up
    good = client.post("/login", data={"email": "admin@acme.example", "password": "password-123"})
    assert (good.status_code, good.headers["Retry-After"]) == (429, "601")
    assert "約11分後" in good.get_data(as_text=True)
    login_clock.advance(590)
    good = client.post("/login", data={"email": "admin@acme.example", "password": "password-123"})
    assert (good.status_code, good.headers["Retry-After"]) == (429, "11")
    assert "11秒後にもう一度お試しください。" in good.get_data(as_text=True)
    assert client.get("/").status_code == 302
    login_clock.advance(11)
    assert client.post("/login", data={"email": "admin@acme.example", "password": "password-123"}).status_code == 302


def test_a_good_login_forgets_earlier_failures(app, client, account):
    app.config["BAN_THRESHOLD"] = 3
    bad = {"email": "admin@acme.example", "password": "wrong-password"}
    client.post("/login", data=bad)
    client.post("/login", data=bad)
    assert client.post("/login", data={"email": "admin@acme.example", "password": "password-123"}).status_code == 302
    client.post("/logout")
    assert client.post("/login", data=bad).status_code == 401
    assert client.post("/login", data=bad).status_code == 401


def test_a_good_login_of_another_account_does_not_reset_the_guessing(app, client, account, make_account):
    # Issue 12: 9 wrong passwords for acme's admin, 1 good login with the attacker's own account, repeated.
    make_account("mallory")
    guess = {"email": "admin@acme.example", "password": "wrong-password"}
    answers = []
    for _ in range(4):
        answers += [client.post("/login", data=guess).status_code for _ in range(9)]
        client.post("/login", data={"email": "admin@mallory.example", "password": "password-123"})
        client.post("/logout")
    assert answers[:9] == [401] * 9
    assert set(answers[9:]) == {429}


def test_one_login_guessed_from_many_addresses_is_banned_for_everyone(app, client, account, make_account):
    make_account("other")
    app.config.update(LOGIN_BAN_THRESHOLD=5)
    guess = {"email": "admin@acme.example", "password": "wrong-password"}
    answers = [client.post("/login", data=guess, environ_base={"REMOTE_ADDR": f"203.0.113.{n}"}).status_code
               for n in range(5)]
    assert answers == [401] * 4 + [429]
    # The right password from an address that never failed is refused too, while the ban lasts.
    good = {"email": "admin@acme.example", "password": "password-123"}
    response = client.post("/login", data=good, environ_base={"REMOTE_ADDR": "192.0.2.50"})
    assert response.status_code == 429
    assert "一時的に止めています" in response.get_data(as_text=True)
    # The same name in another case is the same name.
    upper = {"email": "ADMIN@ACME.example", "password": "password-123"}
    assert client.post("/login", data=upper, environ_base={"REMOTE_ADDR": "192.0.2.51"}).status_code == 429
    # Other users' logins go on, also from the addresses that guessed.
    other = {"email": "admin@other.example", "password": "password-123"}
    assert client.post("/login", data=other, environ_base={"REMOTE_ADDR": "203.0.113.1"}).status_code == 302


def test_csrf_rejects_posts_without_the_token_and_accepts_them_with_it(app, client, account):
    app.config["WTF_CSRF_ENABLED"] = True
    good = {"email": "admin@acme.example", "password": "password-123"}

    assert client.post("/login", data=good).status_code == 400
    assert client.get("/").status_code == 302  # not logged in

    token = csrf_token(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={**good, "csrf_token": "forged"}).status_code == 400
    assert client.post("/login", data={**good, "csrf_token": token}).status_code == 302

    member = {"no": "1", "name": "山田 太郎"}
    assert client.post("/settings/members/new", data=member).status_code == 400
    assert db.session.scalar(db.select(db.func.count(Member.id))) == 0

    token = csrf_token(client.get("/settings/members/new").get_data(as_text=True))
    assert client.post("/settings/members/new", data={**member, "csrf_token": token}).status_code == 302
    assert db.session.scalar(db.select(Member.name)) == "山田 太郎"

    # The bodyless buttons (logout, deactivate…) carry the token too.
    assert client.post("/logout").status_code == 400
    token = csrf_token(client.get("/settings/members").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
