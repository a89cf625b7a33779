"""`flask accounts …`: create and list accounts, switch 外部連携設定 on or off (docs/spec.md section 8)."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import click
from flask import Flask
from flask.cli import AppGroup

from ..errors import RenkeiError
from ..services import accounts as account_service
from ..services import members as member_service

accounts_cli = AppGroup("accounts", help="アカウント(テナント)の作成・一覧・外部連携設定の有効化 (create and list accounts, switch integration on or off)。")


def fail(error: RenkeiError) -> NoReturn:
    """Print the service's message on stderr and stop with exit code 1."""
    click.echo(error.message, err=True)
    sys.exit(1)


@contextmanager
def failing(report: Callable[[RenkeiError], NoReturn] = fail) -> Iterator[None]:
    """Run a command's service calls: a RenkeiError is reported (by default its message on stderr)
    and the command stops with exit code 1, the one way every command ends on a refusal."""
    try:
        yield
    except RenkeiError as error:
        report(error)


@accounts_cli.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="アカウント名(画面に表示)")
@click.option("--admin-email", required=True, help="最初の管理者のメールアドレス")
@click.option("--admin-password", default=None, help="省略すると生成して表示します")
def create(slug: str, name: str, admin_email: str, admin_password: str | None) -> None:
    """アカウントと最初の管理者を作成し、ログイン情報を表示します (create an account with its first admin and print the login)。"""
    with failing():
        account, password = account_service.create_account(slug, name, admin_email, admin_password)
    click.echo(f"アカウントを作成しました (account created): {account.slug}({account.name})")
    click.echo(f"slug: {account.slug}")
    click.echo(f"admin email: {admin_email.strip().lower()}")
    click.echo(f"admin password: {password}")


@accounts_cli.command("list")
def list_() -> None:
    """アカウント一覧: slug・名前・外部連携設定・メンバー数 (list accounts: slug, name, integration on/off, member count)。"""
    accounts = account_service.list_accounts()
    if not accounts:
        click.echo("アカウントはありません (no accounts)。")
        return
    click.echo("slug\tname\tintegration\tmembers")
    for account in accounts:
        state = "on" if account.integration_enabled else "off"
        click.echo(f"{account.slug}\t{account.name}\t{state}\t{member_service.count_members(account.id)}")


@accounts_cli.command("enable-integration")
@click.argument("slug")
def enable_integration(slug: str) -> None:
    """外部連携設定タブを表示し、3 経路の受付を始めます (show the integration tab and open the channels)。"""
    _set_integration(slug, True)


@accounts_cli.command("disable-integration")
@click.argument("slug")
def disable_integration(slug: str) -> None:
    """外部連携設定タブを隠し、3 経路の受付を止めます (hide the integration tab and close the channels)。"""
    _set_integration(slug, False)


def _set_integration(slug: str, enabled: bool) -> None:
    with failing():
        account = account_service.set_integration_enabled(slug, enabled)
    state = "有効" if enabled else "無効"
    click.echo(f"{account.slug}: 外部連携設定を{state}にしました (integration {'on' if enabled else 'off'})。")


def register(app: Flask) -> None:
    app.cli.add_command(accounts_cli)
