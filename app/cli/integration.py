"""`flask integration show|set|mailbox|ftp-password|api-token|zip-password|check-now|fetch-now|overdue|ssh-key` (docs/spec.md section 8), all through services."""
from __future__ import annotations

import datetime as dt
import json
import sys
from typing import NoReturn

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .. import config
from ..api.shapes import iso_utc
from ..errors import Invalid, RenkeiError
from ..importer.filename import period_key
from ..services import accounts, ftpcheck, ftpreport, mailbox, overdue, queue, sshkeys, zippassword
from ..services import integration as service
from .accounts import failing

integration_cli = AppGroup("integration", help="外部連携設定を表示・変更します (show and change the integration settings)。")


def _fail(error: RenkeiError, labels: dict[str, str] | None = None) -> NoReturn:
    """Print the error (one line per field, named by `labels`) on stderr and exit 1."""
    if isinstance(error, Invalid) and error.errors:
        labels = labels or {**service.FIELD_LABELS, sshkeys.FIELD: sshkeys.LABEL}
        for field, messages in error.errors.items():
            label = labels.get(field, field)
            for message in messages:
                click.echo(f"エラー: {label} ({field}): {message}", err=True)
    else:
        click.echo(f"エラー: {error.message}", err=True)
    raise SystemExit(1)


def _account(slug: str):
    with failing(_fail):
        return accounts.get_by_slug(slug)


@integration_cli.command("show")
@click.argument("slug")
def show(slug: str) -> None:
    """外部連携設定を JSON で表示します (print the integration settings as JSON)。"""
    account = _account(slug)
    settings = service.get_settings(account.id)
    click.echo(json.dumps(service.as_dict(account, settings), ensure_ascii=False, indent=2))


def _csv(value: str | None) -> list[str] | None:
    # "--senders ''" clears a list; an absent option leaves it unchanged (None).
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


@integration_cli.command("set")
@click.argument("slug")
@click.option("--mode", type=click.Choice([str(mode) for mode in service.MODES]), help="データ連動方式")
@click.option("--status", type=click.Choice([str(status) for status in service.STATUSES]), help="データ連動ステータス")
@click.option("--member-key", type=click.Choice(list(service.MEMBER_KEYS)), help="メンバー識別ID")
@click.option("--key-aliases", help="メンバー識別IDの見出しの別名(カンマ区切り、''で消す)")
@click.option("--extra-columns", type=click.Choice(list(service.EXTRA_COLUMNS)),
              help="見出しにない列: error(エラーにする), ignore(無視する)")
@click.option("--encoding", type=click.Choice(list(service.ENCODINGS)), help="文字コード")
@click.option("--senders", help="送信元メールアドレス(カンマ区切り)")
@click.option("--sender-networks", help="送信元サーバー: IPアドレスかネットワーク(CIDR)、カンマ区切り(''で制限なし)")
@click.option("--sender-auth", type=click.Choice([str(key) for key in service.SENDER_AUTHS]),
              help="送信元の認証: none(確認しない), dkim, spf, either(DKIMまたはSPF)")
@click.option("--error-to", help="エラー報告メールアドレス(カンマ区切り)")
@click.option("--success-to", help="正常更新報告メールアドレス(カンマ区切り)")
@click.option("--ftp-days", help="データ連動曜日 mon,tue,…,sun")
@click.option("--ftp-start", help="データ連動時間の開始 HH:MM")
@click.option("--ftp-end", help="データ連動時間の終了 HH:MM")
@click.option("--ftp-interval", help="データ連動間隔(分): 5, 10, 15, 30, 60, 120")
@click.option("--ftp-delay", help="○分遅らせてチェック(0〜59、間隔より小さく)")
@click.option("--sheet-name", help="読み込むシート: Excel・ODSファイルのシート名(''で最初のシート)")
@click.option("--overdue", type=click.Choice(list(service.SWITCHES)), help="データ未着の通知: on, off")
@click.option("--overdue-daily", type=click.Choice(list(service.DAILY_EXPECTATIONS)),
              help="期待するファイル(日次): none(なし), same(当日分), previous(前日分)")
@click.option("--overdue-daily-time", help="日次ファイルの期限 HH:MM")
@click.option("--overdue-monthly-day", help="月次ファイルの期限: 翌月の日 1〜31(''で月次なし)")
@click.option("--overdue-monthly-time", help="月次ファイルの期限の時刻 HH:MM")
@click.option("--overdue-days", help="対象曜日 mon,tue,…,sun")
@click.option("--overdue-holidays", type=click.Choice(list(service.HOLIDAY_CHOICES)),
              help="祝日: on(祝日を除く), off(祝日も対象にする)")
def set_(slug: str, **options) -> None:
    """外部連携設定を変更します(画面と同じ検証) (change the integration settings, validated as on the screen)。"""
    account = _account(slug)
    changes = {
        "mode": options["mode"],
        "status": options["status"],
        "member_key": options["member_key"],
        "key_aliases": options["key_aliases"],
        "extra_columns": options["extra_columns"],
        "encoding": options["encoding"],
        "senders": _csv(options["senders"]),
        "sender_networks": _csv(options["sender_networks"]),
        "sender_auth": options["sender_auth"],
        "error_to": _csv(options["error_to"]),
        "success_to": _csv(options["success_to"]),
        "ftp_days": _csv(options["ftp_days"]),
        "ftp_start": options["ftp_start"],
        "ftp_end": options["ftp_end"],
        "ftp_interval": options["ftp_interval"],
        "ftp_delay": options["ftp_delay"],
        "sheet_name": options["sheet_name"],
        "overdue_enabled": options["overdue"],
        "overdue_daily": options["overdue_daily"],
        "overdue_daily_time": options["overdue_daily_time"],
        "overdue_monthly_day": options["overdue_monthly_day"],
        "overdue_monthly_time": options["overdue_monthly_time"],
        "overdue_days": _csv(options["overdue_days"]),
        "overdue_skip_holidays": options["overdue_holidays"],
    }
    changes = {key: value for key, value in changes.items() if value is not None}
    if not changes:
        click.echo("エラー: 変更する項目を1つ以上指定してください(--help で一覧) (give at least one option to change)。", err=True)
        raise SystemExit(1)
    with failing(_fail):
        service.update_settings(account.id, changes, actor="cli")
    click.echo(f"{account.slug} の外部連携設定を保存しました (settings saved)。")


@integration_cli.command("mailbox")
@click.argument("slug")
@click.option("--method", type=click.Choice(list(mailbox.METHODS)),
              help="受信方法: smtp(専用アドレス) か imap(メールボックスから取得)")
@click.option("--host", help="IMAPサーバー")
@click.option("--port", help="ポート(''で暗号化の既定 993 / 143)")
@click.option("--tls", type=click.Choice(list(mailbox.TLS_MODES)), help="暗号化: implicit(SSL/TLS) か starttls")
@click.option("--verify/--no-verify", default=None, help="サーバー証明書を確認する(既定)/しない")
@click.option("--username", help="ユーザー名")
@click.option("--password-stdin", is_flag=True, help="パスワードを標準入力の1行目から読みます(空行なら変更なし)")
@click.option("--folder", help="取得するフォルダ(''で INBOX)")
@click.option("--processed-folder", help="処理済みメールの移動先(''で Renkei/処理済)")
def mailbox_(slug: str, password_stdin: bool, **options) -> None:
    """受信方法を変更します。オプションなしは JSON で表示(パスワードは表示しません) (change how mail arrives, SMTP or an IMAP mailbox; no option prints it)。"""
    account = _account(slug)
    changes = {name: value for name, value in options.items() if value is not None}
    if password_stdin:
        # Read from stdin, never from the command line, where other users' `ps` would see it.
        changes["password"] = sys.stdin.readline().rstrip("\r\n")
    if not changes:
        click.echo(json.dumps(_mailbox_dict(mailbox.get(account.id)), ensure_ascii=False, indent=2))
        return
    with failing(lambda error: _fail(error, mailbox.LABELS)):
        changed = mailbox.save(account.id, mailbox.parse(changes, mailbox.get(account.id)), actor="cli")
    summary = "、".join(changed) if changed else "変更なし"
    click.echo(f"{account.slug} の受信方法を保存しました: {summary} (mailbox settings saved)。")


def _mailbox_dict(row) -> dict:
    """The 受信方法 as `integration mailbox` prints it: the settings, whether a password is stored, the last fetch."""
    return {"method": row.method, "host": row.host, "port": row.port, "tls": row.tls, "verify": row.verify,
            "username": row.username, "password_set": mailbox.password_set(row), "folder": row.folder,
            "processed_folder": row.processed_folder, "last_success_at": iso_utc(row.last_success_at),
            "last_error": row.last_error, "last_error_at": iso_utc(row.last_error_at),
            "retry_at": iso_utc(row.retry_at)}


@integration_cli.command("ftp-password")
@click.argument("slug")
def ftp_password(slug: str) -> None:
    """FTPサーバー PWを発行し、表示します(表示はこの一度だけ) (issue and print a new FTP password, shown once)。"""
    account = _account(slug)
    click.echo(service.issue_ftp_password(account.id, actor="cli"))


@integration_cli.command("api-token")
@click.argument("slug")
def api_token(slug: str) -> None:
    """APIトークンを発行し、表示します(表示はこの一度だけ) (issue and print a new API token, shown once)。"""
    account = _account(slug)
    click.echo(service.issue_api_token(account.id, actor="cli"))


@integration_cli.command("zip-password")
@click.argument("slug")
@click.option("--clear", is_flag=True, help="設定済みのZIPパスワードを削除します")
@click.option("--stdin", "from_stdin", is_flag=True, help="パスワードを標準入力の1行目から読みます")
def zip_password(slug: str, clear: bool, from_stdin: bool) -> None:
    """パスワード付きZIPのパスワードを設定します(暗号化して保存し、二度と表示しません) (set the ZIP password; stored encrypted, never shown)。"""
    account = _account(slug)
    if clear:
        zippassword.clear(account.id, actor="cli")
        click.echo("ZIPパスワードを削除しました (ZIP password removed)。")
        return
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("ZIPパスワード", hide_input=True, confirmation_prompt=True)
    with failing(_fail):
        zippassword.set_password(account.id, password, actor="cli")
    click.echo("ZIPパスワードを設定しました (ZIP password stored)。")


@integration_cli.command("check-now")
@click.argument("slug")
def check_now(slug: str) -> None:
    """FTP連動のチェックをすぐに実行します(画面の「今すぐチェック」と同じ) (run the FTP check now, like the button)。"""
    account = _account(slug)
    with failing(_fail):
        # No worker runs in a flask command: the check's imports are run here, through the
        # worker's own step, oldest first (queue.run_until_ended), so every file is filed now.
        result = ftpcheck.check_account(account.id, wait=queue.run_until_ended)
    click.echo(result.message)
    for line in ftpreport.lines(result):
        click.echo(f"  {line}")
    if result.failed:
        raise SystemExit(1)


@integration_cli.command("fetch-now")
@click.argument("slug")
def fetch_now(slug: str) -> None:
    """メールボックス(IMAP)からすぐに取得します(画面の「今すぐ取得」と同じ) (fetch the IMAP mailbox now, like the button)。"""
    account = _account(slug)
    with failing(_fail):
        result = mailbox.fetch_now(account.id)
    click.echo(result.text)
    if not result.ok:
        raise SystemExit(1)


@integration_cli.command("overdue")
@click.argument("slug")
@click.option("--at", "at", help="この時刻で判定します(ISO 8601、例 2026-12-01T09:30、時差なしは設定のタイムゾーン)")
def overdue_(slug: str, at: str | None) -> None:
    """データ未着の期間を表示します。あれば終了コード1 (print the overdue periods; exit 1 when there are any)。"""
    account = _account(slug)
    zone = config.timezone(current_app)
    if at is None:
        now = dt.datetime.now(zone)
    else:
        try:
            now = dt.datetime.fromisoformat(at.strip())
        except ValueError:
            click.echo(f"エラー: --at「{at}」は ISO 8601 の日時ではありません(例 2026-12-01T09:30) "
                       "(--at is not an ISO 8601 time)。", err=True)
            raise SystemExit(2)
        now = now if now.tzinfo else now.replace(tzinfo=zone)
    # Evaluated as the scheduler does each minute: what is due is alerted (once), what came is closed.
    overdue.evaluate(account.id, now)
    entries = overdue.open_periods(account.id)
    if not entries:
        click.echo("未着のデータはありません (no overdue data)。")
        return
    for entry in entries:
        deadline = entry.deadline.replace(tzinfo=dt.timezone.utc).astimezone(zone)
        click.echo(f"{overdue.banner_text(entry, zone)} "
                   f"(overdue: {period_key(entry.period_kind, entry.period_date)}, deadline {deadline.isoformat()})")
    raise SystemExit(1)


@integration_cli.group("ssh-key")
@click.argument("slug")
@click.pass_context
def ssh_key(context: click.Context, slug: str) -> None:
    """SFTPのログインに使うSSH公開鍵を追加・一覧・削除します (add, list and remove the SSH public keys for SFTP)。"""
    context.obj = slug


@ssh_key.command("add")
@click.option("--file", "path", type=click.File("r", encoding="utf-8"),
              help="authorized_keys形式のファイル(省略すると標準入力から読みます)")
@click.pass_obj
def ssh_key_add(slug: str, path) -> None:
    """authorized_keys形式の公開鍵を追加します(1行に1つ、# の行と空行は読み飛ばします) (add keys in authorized_keys form)。"""
    account = _account(slug)
    text = (path or sys.stdin).read()
    with failing(_fail):
        added = sshkeys.add(account.id, text, actor="cli")
    for key in added:
        click.echo(_key_line(key))
    click.echo(f"{account.slug} にSSH公開鍵を{len(added)}個追加しました ({len(added)} key(s) added)。")


@ssh_key.command("list")
@click.pass_obj
def ssh_key_list(slug: str) -> None:
    """登録済みのSSH公開鍵を表示します(種類・指紋・コメント) (list the keys: type, fingerprint, comment)。"""
    account = _account(slug)
    keys = sshkeys.list_keys(account.id)
    if not keys:
        click.echo("SSH公開鍵はありません (no SSH keys)。")
        return
    click.echo("type\tfingerprint\tcomment")
    for key in keys:
        click.echo(_key_line(key))


@ssh_key.command("remove")
@click.argument("fingerprint")
@click.pass_obj
def ssh_key_remove(slug: str, fingerprint: str) -> None:
    """指紋(SHA256:…)で指定したSSH公開鍵を削除します (remove the key with this SHA256 fingerprint)。"""
    account = _account(slug)
    with failing(_fail):
        key = sshkeys.remove(account.id, fingerprint, actor="cli")
    click.echo(f"SSH公開鍵を削除しました (key removed): {_key_line(key)}")


def _key_line(key) -> str:
    return f"{key.key_type}\t{key.fingerprint}\t{key.comment}"


def register(app: Flask) -> None:
    app.cli.add_command(integration_cli)
