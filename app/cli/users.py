"""`flask users …`: list an account's logins, reset a password, change a role, remove a login (docs/spec.md section 8)."""
from __future__ import annotations

import json

import click
from flask import Flask
from flask.cli import AppGroup

from ..api.shapes import iso_utc
from ..models import User
from ..services import accounts as account_service
from ..services import users as user_service
from .accounts import failing

users_cli = AppGroup("users", help="ユーザー(ログイン)の一覧・パスワード再設定・権限の変更・削除 (list users, reset a password, change a role, remove a user)。")


@users_cli.command("list")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="JSONで出力 (print JSON)")
def list_(slug: str, as_json: bool) -> None:
    """アカウントのユーザーを管理者から順に表示します。最終ログインは記録していません (list the account's users, admins first: e-mail, role, created)。"""
    with failing():
        account = account_service.get_by_slug(slug)
    users = user_service.list_users(account.id)
    items = [{"email": user.email, "role": user.role, "role_label": user.role_label,
              "created_at": iso_utc(user.created_at)} for user in users]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    click.echo("email\trole\tcreated_at")
    for item in items:
        click.echo(f"{item['email']}\t{item['role']}({item['role_label']})\t{item['created_at']}")


@users_cli.command("reset-password")
@click.argument("email")
def reset_password(email: str) -> None:
    """新しいパスワードを生成して 1 回だけ表示し、そのユーザーのセッションをすべて終了します (give the user a new random password, printed once, and end every session of theirs)。"""
    with failing():
        user = user_service.find_by_email(email)
        password = user_service.reset_password(user)
    click.echo(f"{user.email}({user.account.slug})のパスワードを再設定し、ログイン中のセッションをすべて終了しました。"
               "パスワードの表示はこの1回だけです (password reset, every session ended; shown only this once)。")
    click.echo(f"email: {user.email}")
    click.echo(f"new password: {password}")


@users_cli.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice([str(role) for role in User.ROLE_LABELS]))
def set_role(email: str, role: str) -> None:
    """ユーザーを管理者または閲覧者にします。アカウントの最後の管理者は管理者のままです (make the user admin or viewer; the last admin of an account stays admin)。"""
    with failing():
        user = user_service.find_by_email(email)
        user = user_service.set_role(user.account_id, user.id, role)
    click.echo(f"{user.email}({user.account.slug})の権限を{user.role_label}にしました (role {user.role})。")


@users_cli.command("remove")
@click.argument("email")
def remove(email: str) -> None:
    """ユーザーを削除します。アカウントの最後の管理者は削除できません (delete the user; the last admin of an account cannot be removed)。"""
    with failing():
        user = user_service.find_by_email(email)
        address, slug = user.email, user.account.slug
        user_service.remove_user(user.account_id, user.id)
    click.echo(f"{address}({slug})を削除しました (removed)。")


def register(app: Flask) -> None:
    app.cli.add_command(users_cli)
