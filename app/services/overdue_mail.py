"""The texts of データ未着の通知: the one 未着 mail of a period, its 「届きました」 notice, the FTP home's waiting files.

services/overdue.py decides when; this module only words what it found.
"""
from __future__ import annotations

import datetime as dt
import os
import stat
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from .. import config
from ..enums import Mode
from ..errors import ImportRejected, Invalid
from ..extensions import db
from ..importer.filename import parse_filename
from ..models import Account, Import, IntegrationSettings
from ..models_links import OverduePeriod
from . import ftpfiles
from .integration_fields import MODES
from .overdue import DAILY_KINDS, period_text

SIGNATURE = ["", "-- ", "Renkei 外部連携"]


def _local(value: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return aware.astimezone(zone)


def _when(value: dt.datetime, zone: ZoneInfo) -> str:
    return f"{_local(value, zone):%Y/%m/%d %H:%M}"


def _kind_text(settings: IntegrationSettings, entry: OverduePeriod) -> str:
    if entry.period_kind == "day":
        return f"日次・{DAILY_KINDS.get(settings.overdue_daily, settings.overdue_daily)}"
    return f"月次・翌月{settings.overdue_monthly_day}日まで"


def last_received(account_id: int) -> Import | None:
    """The account's latest received file, whatever became of it."""
    return db.session.scalar(select(Import).where(Import.account_id == account_id)
                             .order_by(Import.received_at.desc(), Import.id.desc()).limit(1))


def failed_import(account_id: int, kind: str, date: dt.date) -> Import | None:
    """The latest failed import of the period."""
    return db.session.scalar(
        select(Import).where(Import.account_id == account_id, Import.status == Import.FAILED,
                             Import.period_kind == kind, Import.period_date == date)
        .order_by(Import.received_at.desc(), Import.id.desc()).limit(1))


def failure_reason(imp: Import) -> str:
    """The first error of a failed import (with its line), else its note."""
    if imp.errors:
        error = imp.errors[0]
        where = f"{error.line}行目" if error.line else ""
        if error.column or error.value:
            where += f" {error.column or ''}「{error.value or ''}」"
        where = f"{where.strip()}: " if where.strip() else ""
        more = f"(ほか{imp.error_count - 1:,}件)" if (imp.error_count or 0) > 1 else ""
        return f"{where}{error.message}{more}"
    return imp.note or "-"


def ftp_waiting(username: str | None, now: dt.datetime) -> list[str]:
    """What sits in the FTP home and was not imported: uploads in progress, files settling, names that are wrong."""
    if not username:
        return []
    try:
        home = ftpfiles.home_path(username)
    except Invalid:
        return []
    ready, settling, temporary = ftpfiles.scan_home(home, now.timestamp(), ftpfiles.quiet_seconds())
    lines = [f"{name}(アップロード中の名前です。名前が変わるまで読み込みません)" for name in temporary]
    lines += [f"{name}(書き込みの途中かもしれないため、まだ読み込んでいません)" for name, _ in settling]
    for path in ready:
        try:
            parse_filename(path.name)
            lines.append(f"{path.name}(次のチェックで読み込みます)")
        except ImportRejected:
            lines.append(f"{path.name}(ファイル名が規則に合いません。例: 20261201.csv、月次は 20261100.csv)")
    try:
        entries = sorted(os.scandir(home), key=lambda e: e.name)
    except FileNotFoundError:
        entries = []
    for entry in entries:
        if entry.name.startswith(".") or ftpfiles.is_candidate_name(entry.name) or ftpfiles.temporary_suffix(entry.name):
            continue
        try:
            if stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                lines.append(f"{entry.name}(取り込めない種類のファイルです。CSV・Excel・ODSファイルで送ってください)")
        except FileNotFoundError:
            continue
    return lines


def alert(account: Account, settings: IntegrationSettings, entry: OverduePeriod, zone: ZoneInfo,
          now: dt.datetime) -> tuple[str, str]:
    """The 未着 mail of one period: (subject, body)."""
    zone_name = config.get(current_app, "TIMEZONE")
    period = period_text(entry.period_kind, entry.period_date)
    deadline = _when(entry.deadline, zone)
    lines = [
        f"{account.name} 様",
        "",
        f"{period} 分のデータが、期限の {deadline}({zone_name})までに届いていません。",
        "",
        f"アカウント: {account.name} ({account.slug})",
        f"対象: {period} 分({_kind_text(settings, entry)})",
        f"期限: {deadline}({zone_name})",
        f"データ連動方式: {MODES.get(settings.mode, settings.mode)}",
    ]
    last = last_received(account.id)
    if last is None:
        lines.append("最後に受け取ったファイル: まだありません")
    else:
        lines.append(f"最後に受け取ったファイル: {last.filename}({_when(last.received_at, zone)} 受信、"
                     f"{last.channel_label}、{last.status_label})")
    failed = failed_import(account.id, entry.period_kind, entry.period_date)
    if failed is not None:
        lines += ["", "■ この期間のファイルは届きましたが、取込に失敗しました",
                  f"ファイル: {failed.filename}({_when(failed.received_at, zone)} 受信、{failed.channel_label})",
                  f"理由: {failure_reason(failed)}",
                  "内容を直して、同じファイル名で送り直してください。"]
    if settings.mode == Mode.FTP:
        waiting = ftp_waiting(settings.ftp_username, now)
        lines += ["", "■ FTPサーバーのフォルダにあって、まだ取り込んでいないファイル"]
        lines += [f"・{line}" for line in waiting] if waiting else ["(ありません)"]
    lines += ["", "■ 確認してください",
              "送信元のシステムの出力・送信が止まっていないか、ファイル名の日付が正しいかを確認してください。",
              "ファイルが届いて取り込まれると、「届きました」のお知らせを1通お送りします。",
              "この通知は、期間ごとに1通だけ送っています(外部連携設定の「データ未着の通知」)。", *SIGNATURE]
    subject = f"【データ未着】{account.name} {period} 分(期限 {deadline})"
    return subject, "\n".join(lines) + "\n"


def arrived(account: Account, settings: IntegrationSettings, entry: OverduePeriod, imp: Import,
            zone: ZoneInfo) -> tuple[str, str]:
    """The 「届きました」 notice that closes a 未着 period: (subject, body)."""
    zone_name = config.get(current_app, "TIMEZONE")
    period = period_text(entry.period_kind, entry.period_date)
    lines = [
        f"{account.name} 様",
        "",
        f"未着をお知らせした {period} 分のデータが届きました。取込に成功しています。",
        "",
        f"アカウント: {account.name} ({account.slug})",
        f"対象: {period} 分({_kind_text(settings, entry)})",
        f"期限: {_when(entry.deadline, zone)}({zone_name})",
        f"ファイル: {imp.filename}({_when(imp.received_at, zone)} 受信、{imp.channel_label})",
        *SIGNATURE,
    ]
    subject = f"【データ到着】{account.name} {period} 分のデータが届きました"
    return subject, "\n".join(lines) + "\n"
