"""`flask import-csv`, `flask imports list`, `flask results export` (docs/spec.md section 8)."""
from __future__ import annotations

import json
import os
import sys
from typing import NoReturn

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from .. import config
from ..api.shapes import import_json
from ..enums import Channel
from ..errors import RenkeiError, RowError, error_total
from ..extensions import db
from ..formats import shown_time
from ..models import Import
from ..services import accounts, archives, ingest, queue, results


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)


def _newest_imports(account_id: int, limit: int | None = None) -> list[Import]:
    """Return the account's imports, newest first."""
    query = select(Import).where(Import.account_id == account_id).order_by(Import.id.desc())
    if limit:
        query = query.limit(limit)
    return list(db.session.scalars(query))


def _error_line(filename: str, error: RowError) -> str:
    """One error as `ファイル名:行:列:値: message` (empty parts stay empty, like compilers do).

    A workbook's column is shown as the spreadsheet does, with its letter: `C列(売上)`.
    """
    line = "" if error.line is None else str(error.line)
    column = error.where_column if error.letter else (error.column or "")
    return f"{filename}:{line}:{column}:{error.value or ''}: {error.message}"


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _account(slug: str):
    try:
        return accounts.get_by_slug(slug)
    except RenkeiError as error:
        _fail(str(error))


def register(app: Flask) -> None:
    @app.cli.command("import-csv")
    @click.argument("slug")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--dry-run", is_flag=True, help="検証のみ(何も保存しない) (check only, store nothing)")
    def import_csv(slug: str, file: str, dry_run: bool) -> None:
        """実績ファイル (CSV, .xlsx/.xlsm/.xls/.ods) を各経路と同じ処理で取り込みます。拒否されたら終了コード 1 (import a results file through the same path as the channels; exit 1 when rejected)。"""
        account = _account(slug)
        filename = os.path.basename(file)
        try:
            if dry_run:
                check = ingest.dry_run(account.id, filename, _read(file))
                if check.errors:
                    for error in check.errors:
                        click.echo(_error_line(filename, error), err=True)
                    _fail(f"検証NG: {filename} エラー {error_total(check.errors)}件(何も保存していません)")
                click.echo(f"検証OK (valid): {filename} 期間 {check.period.label} {check.rows}行 文字コード {check.encoding}"
                           "(何も保存していません)")
                return
            # The bytes are passed without a name here, so once stored only run_import's own
            # copy exists (peak memory of a big file: one copy of it, not two).
            received = ingest.receive(account.id, filename, _read(file), channel=Channel.CLI, sender="cli")
            # No worker runs in a flask command: this process runs the queue through the worker's
            # own step until its import has ended (or waits for a server's worker that has it).
            if received.status == Import.UNPACKED:
                _report_archive(received)
                return
            imp = queue.run_until_ended(received.id)
        except RenkeiError as error:
            _fail(str(error))
        _report(imp, filename)

    def _report_archive(archive: Import) -> None:
        """Run and report each file of an archive (exit 1 when any of them failed)."""
        click.echo(f"取込 #{archive.id} 展開 (unpacked): {archive.filename}")
        for name in archive.ignored_attachments or []:
            click.echo(f"{name}: 取り込める形式(.csv)ではないため取り込んでいません (not a file Renkei imports)", err=True)
        failed = 0
        for entry in archives.entries(archive.id):
            try:
                _report(queue.run_until_ended(entry.id), entry.filename)
            except SystemExit:
                failed += 1
        if failed:
            _fail(f"取込 #{archive.id} {archive.filename}: {failed}件のファイルがエラーです")

    def _report(imp: Import, filename: str) -> None:
        if imp.status != Import.SUCCEEDED:
            for record in imp.errors:
                click.echo(_error_line(filename, RowError(message=record.message, line=record.line,
                                                          column=record.column, value=record.value,
                                                          letter=record.column_letter)), err=True)
            shown = f"、表示は最初の{len(imp.errors)}件" if imp.error_count > len(imp.errors) else ""
            _fail(f"取込 #{imp.id} エラー: {filename} エラー {imp.error_count}件{shown}(以前のデータはそのままです)"
                  f" (refused; the earlier data stays)")
        replaced = f"、取込 #{imp.replaced_import_id} を置換" if imp.replaced_import_id else ""
        period = import_json(imp)["period"]
        click.echo(f"取込 #{imp.id} 成功: {filename} 期間 {period} {imp.row_count}行{replaced} (imported)")

    imports_group = AppGroup("imports", help="取込履歴 (import history)")

    @imports_group.command("list")
    @click.argument("slug")
    @click.option("--json", "as_json", is_flag=True, help="JSONで出力 (API と同じ形) (print JSON, as the API)")
    @click.option("--limit", type=int, default=None, help="新しい順に最大この件数 (at most this many, newest first)")
    def list_imports(slug: str, as_json: bool, limit: int | None) -> None:
        """取込履歴を新しい順に表示します。時刻は RENKEI_TIMEZONE、--json は API と同じ ISO 8601 (list the imports, newest first; times in RENKEI_TIMEZONE, --json as the API)。"""
        account = _account(slug)
        items = _newest_imports(account.id, limit)
        if as_json:
            click.echo(json.dumps([import_json(imp) for imp in items], ensure_ascii=False, indent=2))
            return
        if not items:
            click.echo("取込履歴はありません (no imports)。")
            return
        zone = config.timezone(current_app)  # people read local time; --json is ISO 8601 as the API
        # The same words as the 取込履歴 screen; times in the configured zone (--json: UTC, as the API).
        click.echo("番号\t受信日時\t経路\t状態\tファイル名\t行数\tエラー数\t送信者")
        for imp in items:
            click.echo(
                f"#{imp.id}\t{shown_time(imp.received_at, zone)}\t{imp.channel}\t{imp.status}\t{imp.filename}\t"
                f"{imp.row_count}行\tエラー{imp.error_count}件\t{imp.sender or '-'}"
            )

    results_group = AppGroup("results", help="実績 (results)")

    @results_group.command("export")
    @click.argument("slug")
    @click.argument("period")
    @click.option("--month", "as_board", is_flag=True,
                  help="月をボードの表示どおりに(日次ファイル+月次ファイル+手入力の合計)。PERIOD は年月 (201805)")
    @click.option("--encoding", type=click.Choice(list(results.EXPORT_ENCODINGS)), default="cp932",
                  show_default=True)
    @click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
                  help="出力ファイル(省略時は標準出力) (output file, default stdout)")
    def export(slug: str, period: str, as_board: bool, encoding: str, output: str | None) -> None:
        """実績を取込と同じ形式の CSV で出力します。PERIOD: 20180516 または 201805 (write results as CSV in the import layout).

        --month なし: その期間のファイルの行 (年月なら月次ファイルだけ) と手入力の実績。--month: ボードの表示どおりの月。
        どちらを書き出したかを標準エラーに表示します (without --month: the rows stored for exactly that
        period and its hand-typed results; with --month: the month as the board shows it; stderr says which).
        """
        account = _account(slug)
        try:
            data = results.export_csv(account.id, period, encoding, as_board=as_board)
        except RenkeiError as error:
            _fail(str(error))
        # "-" (or no --output) is stdout, which click.open_file leaves open.
        with click.open_file(output or "-", "wb") as handle:
            handle.write(data)
        if output and output != "-":
            click.echo(f"{output} に書き出しました (written)。", err=True)
        click.echo(results.describe_export(period, as_board), err=True)

    app.cli.add_command(imports_group)
    app.cli.add_command(results_group)
