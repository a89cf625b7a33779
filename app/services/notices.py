"""The daily 破棄のお知らせ: mail discarded for the account's 連動稼働状態 or データ連動方式 is told to its senders.

A discarded mail (services/admission.py: status 連動稼働停止, or a データ連動方式 other than
メール添付連動) is answered `250` and recorded in the 取込履歴 only; nobody would learn that its
data was not taken. This module writes one notice per account and local day (TIMEZONE) to the
エラー報告メールアドレス, through the outbox, listing every mail discarded that day (受信日時,
差出人, 件名, 添付ファイル) and why.

Decision: the notice of a day is queued after the day ends, at the first scheduler tick from
00:05 of the next local day (GRACE; servers/scheduler.py DiscardNotices), so it lists the whole day and there
is exactly one per day (discard_notices' unique account and day; a second worker's insert
fails and is dropped). A notice sent at the first discard would need a second mail for the
later ones of the day. Days of the last LOOKBACK_DAYS are caught up after a stop of the
worker; older ones are not mailed any more. An account without エラー報告メールアドレス gets
its day marked (no mail), so adding an address later does not mail old days.
"""
from __future__ import annotations

import datetime as dt
import itertools
import logging
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import config
from ..enums import Channel
from ..extensions import db
from ..models import Account, DiscardNotice, Import, IntegrationSettings, utcnow
from . import outbox

log = logging.getLogger(__name__)

KIND = "discard"  # OutboxMail.kind (the 送信メール screen says 破棄のお知らせ)
LOOKBACK_DAYS = 7
# Discarded mails listed in one notice at most; the rest are counted (a flood must not make a mail, or a list, without end).
MAX_LISTED = 100
# A discard recorded in the last moment of a day commits a little later: the day is closed this long after midnight.
GRACE = dt.timedelta(minutes=5)
# The note of a discard names its reason (admission's texts); the notice's advice follows it.
STOPPED_MARK = "連動稼働停止"
MODE_MARK = "データ連動方式"


def _utc(value: dt.datetime) -> dt.datetime:
    """A naive UTC datetime (how the database stores times) of an aware or naive-UTC `value`."""
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _day_start(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return _utc(dt.datetime.combine(day, dt.time(), zone))


def _local(value: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc).astimezone(zone)


def notice_day(now: dt.datetime, zone: ZoneInfo) -> dt.date:
    """The local day whose previous days are over at `now` (aware, or naive UTC), GRACE later than midnight."""
    aware = now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)
    return (aware - GRACE).astimezone(zone).date()


def send_due(now: dt.datetime | None = None) -> int:
    """Queue the notice of each ended local day (of the last LOOKBACK_DAYS) with discards; return how many mails."""
    zone = config.timezone(current_app)
    today = notice_day(now or dt.datetime.now(dt.timezone.utc), zone)
    first_day = today - dt.timedelta(days=LOOKBACK_DAYS)
    discards = db.session.scalars(
        select(Import).where(Import.status == Import.DISCARDED, Import.channel == Channel.MAIL,
                             Import.received_at >= _day_start(first_day, zone),
                             Import.received_at < _day_start(today, zone))
        .order_by(Import.account_id, Import.received_at, Import.id)
        .execution_options(yield_per=500)
    )
    done = set(db.session.execute(
        select(DiscardNotice.account_id, DiscardNotice.day).where(DiscardNotice.day >= first_day)).all())
    # Read to the end first (the rows stream in pieces), then write: a commit must not cut the read short.
    pending = []
    for (account_id, day), group in itertools.groupby(
            discards, key=lambda imp: (imp.account_id, _local(imp.received_at, zone).date())):
        if (account_id, day) in done:
            continue
        listed = list(itertools.islice(group, MAX_LISTED))
        marks = {mark for imp in listed for mark in (STOPPED_MARK, MODE_MARK) if mark in (imp.note or "")}
        total = len(listed)
        for imp in group:  # beyond the list: counted, and their reasons' advice kept
            total += 1
            marks |= {mark for mark in (STOPPED_MARK, MODE_MARK) if mark in (imp.note or "")}
        pending.append((account_id, day, listed, total, marks))
    queued = 0
    for account_id, day, listed, total, marks in pending:
        queued += _queue(account_id, day, listed, total, marks, zone)
    db.session.rollback()  # end the read transaction
    return queued


def _queue(account_id: int, day: dt.date, discards: list[Import], total: int, marks: set[str], zone: ZoneInfo) -> int:
    """Write one day's notice and its marker in one commit; 0 when another worker wrote it or there is no address."""
    account = db.session.get(Account, account_id)
    settings = db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))
    recipients = list(settings.error_to) if settings and settings.error_to else []
    mail = None
    if recipients:
        mail = outbox.enqueue(account_id, None, KIND, recipients, *_mail(account, day, discards, total, marks, zone))
        db.session.flush()
    db.session.add(DiscardNotice(account_id=account_id, day=day, mail_id=mail.id if mail else None,
                                 discards=total, created_at=utcnow()))
    try:
        db.session.commit()
    except IntegrityError:  # another worker queued this day's notice first
        db.session.rollback()
        return 0
    if mail is None:
        log.warning("%d mails of account=%s discarded on %s; no error report address to tell", total,
                    account.slug, day)
        return 0
    log.info("discard notice queued account=%s day=%s discards=%d mail=#%s", account.slug, day, total,
             mail.id)
    return 1


def _attachments(imp: Import) -> str:
    """Every attachment of a discarded mail: its files to import (the history's name) and the others."""
    names = [] if imp.filename.startswith("(") and imp.filename.endswith(")") else [imp.filename]
    names += [str(name) for name in imp.ignored_attachments or []]
    return "、".join(names) if names else "なし"


def _reason(note: str | None) -> str:
    """The reason as the notice shows it: the note without its 「、メールを破棄しました」."""
    return (note or "-").removesuffix("、メールを破棄しました")


def _mail(account: Account, day: dt.date, discards: list[Import], total: int, marks: set[str],
          zone: ZoneInfo) -> tuple[str, str]:
    zone_name = config.get(current_app, "TIMEZONE")
    lines = [
        f"{account.name} 様",
        "",
        (f"{day:%Y-%m-%d}({zone_name})に受信した次のメール {total:,}件は、取り込まずに破棄しました。"
         "添付ファイルのデータは保存していません。"),
        "",
        f"アカウント: {account.name} ({account.slug})",
        "",
        "■ 破棄したメール",
    ]
    for number, imp in enumerate(discards, 1):
        lines += [
            f"{number}. 受信日時: {_local(imp.received_at, zone):%Y-%m-%d %H:%M:%S}",
            f"   差出人: {imp.sender or '-'}",
            f"   件名: {imp.subject or '(件名なし)'}",
            f"   添付ファイル: {_attachments(imp)}",
            f"   理由: {_reason(imp.note)}",
        ]
    if total > len(discards):
        lines.append(f"ほかに {total - len(discards):,}件(一覧は最初の {len(discards):,}件です)。")
    lines += ["", "■ 取り込むには"]
    if STOPPED_MARK in marks:
        lines.append("・連動稼働停止: 外部連携設定のデータ連動ステータスが「連動稼働停止」の間に届いたメールは"
                     "取り込みません。「連動稼働中」に戻ってから、同じファイルを送り直してください。")
    if MODE_MARK in marks:
        lines.append("・データ連動方式: このアカウントはメール添付連動でデータを受け付けていません。"
                     "外部連携設定のデータ連動方式で決められた方法でデータを送るか、管理者に設定の確認を依頼してください。")
    lines += ["", "このお知らせは、破棄したメールがあった日ごとに1通、翌日に送っています。",
              "", "-- ", "Renkei 外部連携"]
    subject = f"【メール破棄のお知らせ】{account.name} {day:%Y-%m-%d}({total:,}件)"
    return subject, "\n".join(lines) + "\n"
