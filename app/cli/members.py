"""`flask members import`, `flask columns add` and `flask columns alias` (docs/spec.md section 8)."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from ..errors import ImportRejected, RenkeiError, error_total
from ..services import accounts as account_service
from ..services import columns as column_service
from ..services import members as member_service
from .accounts import fail, failing

members_cli = AppGroup("members", help="メンバー設定の一括登録 (bulk member import)。")
columns_cli = AppGroup("columns", help="グラフ列(グラフ設定)の追加と別名 (add graph columns, set their aliases)。")


@members_cli.command("import")
@click.argument("slug")
@click.argument("path", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_members(slug: str, path: Path) -> None:
    """メンバーを CSV から No. で追加・更新します。見出し No.,社員ID,氏名,部署,メールアドレス、cp932 または UTF-8 (upsert members by No. from a CSV)。"""
    try:
        account = account_service.get_by_slug(slug)
        inserted, updated = member_service.import_members(account.id, path.read_bytes())
    except ImportRejected as rejected:
        click.echo(f"{path.name}: 取り込めませんでした({error_total(rejected.errors):,} 件のエラー)。何も保存していません (nothing saved)。", err=True)
        for error in rejected.errors:
            click.echo(f"  {error.as_text()}", err=True)
        more = error_total(rejected.errors) - len(rejected.errors)
        if more:
            click.echo(f"  ほかに {more:,} 件のエラーがあります(最初の {len(rejected.errors):,} 件を表示しました)。"
                       f" / {more:,} more errors not listed.", err=True)
        sys.exit(1)
    except RenkeiError as error:
        fail(error)
    click.echo(f"{account.slug}: メンバーを取り込みました (members imported)。inserted={inserted} updated={updated}")


@columns_cli.command("add")
@click.argument("slug")
@click.argument("name")
@click.option("--unit", default="", help="単位(円、件、ポイントなど)")
def add_column(slug: str, name: str, unit: str) -> None:
    """グラフ列を最後に追加します (add a graph column at the end)。"""
    with failing():
        account = account_service.get_by_slug(slug)
        column = column_service.add_column(account.id, name, unit)
    suffix = f"(単位: {column.unit})" if column.unit else ""
    click.echo(f"{account.slug}: グラフ列「{column.name}」を追加しました{suffix} (column added)。表示順 {column.position}")


@columns_cli.command("alias")
@click.argument("slug")
@click.argument("name")
@click.argument("aliases", metavar="ALIAS…", nargs=-1)
@click.option("--clear", is_flag=True, help="今の別名をすべて消してから、指定した別名(なければ何も)を登録します。")
def alias_column(slug: str, name: str, aliases: tuple[str, ...], clear: bool) -> None:
    """グラフ列 NAME に別名(ほかのシステムのCSVの見出し)を追加します (add aliases to graph column NAME)。

    例: flask columns alias acme 売上 売上金額 売上高 ／ 別名を消す: flask columns alias acme 売上 --clear
    別名は全角・半角と前後の空白を区別せずに照合します。ほかの列の名前・別名、備考・No.・社員IDは使えません。
    """
    if not aliases and not clear:
        click.echo("エラー: 別名を1つ以上指定してください(すべて消すときは --clear) (give at least one alias, or --clear)。", err=True)
        raise SystemExit(1)
    with failing():
        account = account_service.get_by_slug(slug)
        column = column_service.find_column(account.id, name)
        kept = [] if clear else list(column.aliases or [])
        column = column_service.set_aliases(account.id, column.id, [*kept, *aliases])
    shown = "、".join(column.aliases) if column.aliases else "(なし)"
    click.echo(f"{account.slug}: グラフ列「{column.name}」の別名 (aliases): {shown}")


def register(app: Flask) -> None:
    app.cli.add_command(members_cli)
    app.cli.add_command(columns_cli)
