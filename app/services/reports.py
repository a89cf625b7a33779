"""Report mails after an attempted import (SPEC section 4): Japanese plain text, written to the outbox.

The caller commits: the report goes into the same transaction as the import's final status,
so a crash can neither lose a report nor send one for an import that did not end.

An error mail lists at most MAX_ERRORS_IN_MAIL errors, then says how many more there are;
the import's page (linked in the mail) always lists every error.
"""
from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select

from ..errors import RowError
from ..extensions import db
from ..importer.filename import Period
from ..models import Account, GraphColumn, Import, IntegrationSettings, OutboxMail, Result
from . import outbox

log = logging.getLogger(__name__)

MAX_ERRORS_IN_MAIL = 1000


def _local(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    zone = current_app.config.get("TIMEZONE", "Asia/Tokyo")
    return value.replace(tzinfo=dt.timezone.utc).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def _link(imp: Import) -> str:
    base = current_app.config.get("PUBLIC_URL", "").rstrip("/")
    return f"{base}/imports/{imp.id}"


def _context(imp: Import) -> tuple[Account, IntegrationSettings | None]:
    account = db.session.get(Account, imp.account_id)
    settings = db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == imp.account_id))
    return account, settings


def _header_lines(account: Account, imp: Import) -> list[str]:
    zone = current_app.config.get("TIMEZONE", "Asia/Tokyo")
    return [
        f"アカウント: {account.name} ({account.slug})",
        f"受付経路: {imp.channel_label}",
        f"ファイル名: {imp.filename}",
        f"送信者: {imp.sender or '-'}",
        f"受付日時: {_local(imp.received_at)} ({zone})",
        f"取込番号: #{imp.id}",
    ]


def failure_report(imp: Import, errors: list[RowError]) -> OutboxMail | None:
    """Queue the error report to every エラー報告メールアドレス (no commit)."""
    account, settings = _context(imp)
    recipients = list(settings.error_to) if settings and settings.error_to else []
    if not recipients:
        log.warning("import #%s failed but account=%s has no error report address", imp.id, account.slug)
        return None
    lines = [
        f"{account.name} 様",
        "",
        "CSVファイルの取込でエラーが見つかったため、このファイルは取り込みませんでした。",
        "ファイルの内容は1行も保存されていません。同じファイル名で以前に取り込んだデータはそのまま残っています。",
        "エラーを直して、同じファイル名で送り直してください。",
        "",
        *_header_lines(account, imp),
        f"エラー件数: {len(errors):,}件",
        "",
        "■ エラー一覧(行番号は見出し行を1行目として数えています)",
    ]
    lines.extend(error.as_text() for error in errors[:MAX_ERRORS_IN_MAIL])
    if len(errors) > MAX_ERRORS_IN_MAIL:
        lines.append(
            f"…ほか {len(errors) - MAX_ERRORS_IN_MAIL:,}件のエラーがあります。"
            "すべてのエラーは下記の取込履歴の画面で確認できます。"
        )
    lines += ["", "■ 取込履歴(すべてのエラーと元のファイル)", _link(imp), "", "-- ", "Renkei 外部連携"]
    subject = f"【取込エラー】{account.name} {imp.filename}({len(errors):,}件のエラー)"
    return outbox.enqueue(account.id, imp.id, "error", recipients, subject, "\n".join(lines) + "\n")


def import_totals(import_id: int, column_ids: list[int]) -> dict[int, float]:
    """Sum each graph column over one import's results (SQL JSON extraction, no rows in memory)."""
    if not column_ids:
        return {}
    sums = [func.sum(Result.values[str(column_id)].as_float()) for column_id in column_ids]
    row = db.session.execute(select(*sums).where(Result.import_id == import_id)).one()
    return {column_id: total for column_id, total in zip(column_ids, row) if total is not None}


def success_report(imp: Import, period: Period | None = None) -> OutboxMail | None:
    """Queue the success report to every 正常更新報告メールアドレス, if there is any (no commit)."""
    account, settings = _context(imp)
    recipients = list(settings.success_to) if settings and settings.success_to else []
    if not recipients:
        return None
    db.session.flush()
    columns = db.session.scalars(
        select(GraphColumn).where(GraphColumn.account_id == imp.account_id)
        .order_by(GraphColumn.position, GraphColumn.id)
    ).all()
    totals = import_totals(imp.id, [column.id for column in columns])
    if period is not None:
        period_label = period.label
    elif imp.period_date is not None:
        period_label = (f"{imp.period_date.year}年{imp.period_date.month}月"
                        + (f"{imp.period_date.day}日" if imp.period_kind == "day" else ""))
    else:
        period_label = "-"
    kind = "日次" if imp.period_kind == "day" else "月次"
    lines = [
        f"{account.name} 様",
        "",
        "CSVファイルを取り込みました。",
        "",
        *_header_lines(account, imp),
        f"期間: {period_label}({kind})",
        f"取込行数: {imp.row_count:,}行",
        "",
        "■ 項目別の合計",
    ]
    for column in columns:
        total = totals.get(column.id)
        shown = _number(total) + (column.unit or "") if total is not None else "(値なし)"
        lines.append(f"{column.name}: {shown}")
    lines.append("")
    if imp.replaced_import_id:
        lines.append(f"同じファイル名の以前の取込 #{imp.replaced_import_id} のデータを削除し、今回のデータに置き換えました。")
    else:
        lines.append("同じファイル名の以前の取込はありません(新しく追加しました)。")
    lines += ["", "■ 取込履歴", _link(imp), "", "-- ", "Renkei 外部連携"]
    subject = f"【取込完了】{account.name} {imp.filename}({imp.row_count:,}行)"
    return outbox.enqueue(account.id, imp.id, "success", recipients, subject, "\n".join(lines) + "\n")
