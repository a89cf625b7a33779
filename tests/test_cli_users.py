"""`flask users …` through the CLI runner: list, reset-password, set-role, remove, the last-admin rule."""
from __future__ import annotations

import json
import re

import pytest
from werkzeug.security import check_password_hash

from app.extensions import db
from app.models import User
from app.services import users as user_service
from tests.fixtures.accounts import OwnContextClient, users_of


@pytest.fixture
def client(app):
    # Several browsers and commands act in turn here: each request in its own app context.
    app.test_client_class = OwnContextClient
    return app.test_client()


def new_password(result) -> str:
    match = re.search(r"^new password: (\S+)$", result.stdout, re.MULTILINE)
    assert match, result.output
    return match.group(1)


def test_reset_password_prints_a_new_one_which_logs_in_and_the_old_one_fails(app, cli, client, make_account,
                                                                            login):
    acc = make_account("acme")
    login(acc.email)  # a browser signed in before the reset
    assert client.get("/").status_code == 200

    result = cli("users", "reset-password", "Admin@Acme.example")

    assert result.exit_code == 0, result.output
    assert "パスワードを再設定し、ログイン中のセッションをすべて終了しました" in result.stdout
    password = new_password(result)
    assert len(password) >= 16
    # The browser's session ended with the reset.
    assert client.get("/").status_code == 302
    # Stored only as a hash.
    user = db.session.scalar(db.select(User).where(User.email == acc.email))
    assert password not in user.password_hash and check_password_hash(user.password_hash, password)

    old = client.post("/login", data={"email": acc.email, "password": acc.password})
    assert old.status_code == 401 and "メールアドレスまたはパスワードが正しくありません。" in old.get_data(as_text=True)
    new = {"email": acc.email, "password": password}
    assert client.post("/login", data=new).status_code == 302
    assert client.get("/").status_code == 200


def test_reset_password_twice_gives_two_passwords(cli, make_account):
    make_account("acme")
    first = new_password(cli("users", "reset-password", "admin@acme.example"))
    second = new_password(cli("users", "reset-password", "admin@acme.example"))
    assert first != second
    user = db.session.scalar(db.select(User).where(User.email == "admin@acme.example"))
    db.session.refresh(user)
    assert check_password_hash(user.password_hash, second) and not check_password_hash(user.password_hash, first)


def test_reset_password_of_an_unknown_address_exits_1(cli, make_account):
    make_account("acme")
    result = cli("users", "reset-password", "nobody@acme.example")
    assert result.exit_code == 1
    assert "nobody@acme.example のユーザーはいません" in result.stderr
    assert "new password" not in result.stdout


def test_users_list_human_and_json(cli, make_account):
    acc = make_account("acme")
    user_service.create_user(acc.id, "viewer@acme.example", "password-123", User.VIEWER)
    make_account("beta")  # another account's users are not listed

    text = cli("users", "list", "acme")
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0] == "email\trole\tcreated_at"
    assert [line.split("\t")[:2] for line in lines[1:]] == [["admin@acme.example", "admin(管理者)"],
                                                           ["viewer@acme.example", "viewer(閲覧者)"]]

    items = json.loads(cli("users", "list", "acme", "--json").stdout)
    assert [(i["email"], i["role"], i["role_label"]) for i in items] == [
        ("admin@acme.example", "admin", "管理者"), ("viewer@acme.example", "viewer", "閲覧者")]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", i["created_at"]) for i in items)

    missing = cli("users", "list", "nobody")
    assert missing.exit_code == 1 and "nobody" in missing.stderr


def test_the_last_admin_is_neither_demoted_nor_removed_by_the_cli(cli, make_account):
    acc = make_account("acme")
    user_service.create_user(acc.id, "viewer@acme.example", "password-123", User.VIEWER)

    demoted = cli("users", "set-role", "admin@acme.example", "viewer")
    assert demoted.exit_code == 1
    assert "最後の管理者は閲覧者に変更できません。先に別のユーザーを管理者にしてください。" in demoted.stderr
    removed = cli("users", "remove", "admin@acme.example")
    assert removed.exit_code == 1 and "最後の管理者は削除できません。" in removed.stderr
    assert users_of(acc.id) == [("admin@acme.example", "admin"), ("viewer@acme.example", "viewer")]

    # With a second admin, the first may go.
    promoted = cli("users", "set-role", "viewer@acme.example", "admin")
    assert promoted.exit_code == 0 and "権限を管理者にしました" in promoted.stdout
    assert cli("users", "set-role", "admin@acme.example", "viewer").exit_code == 0
    assert users_of(acc.id) == [("admin@acme.example", "viewer"), ("viewer@acme.example", "admin")]
    assert cli("users", "remove", "viewer@acme.example").exit_code == 1  # the last admin again
    assert cli("users", "remove", "admin@acme.example").exit_code == 0
    assert users_of(acc.id) == [("viewer@acme.example", "admin")]


def test_the_last_admin_rule_counts_only_the_users_own_account(cli, make_account):
    acc = make_account("acme")
    make_account("beta")  # beta's admin does not keep acme's last admin from going
    result = cli("users", "set-role", "admin@acme.example", "viewer")
    assert result.exit_code == 1 and "最後の管理者" in result.stderr
    assert users_of(acc.id) == [("admin@acme.example", "admin")]
