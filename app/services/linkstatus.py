"""連携状況: per channel the last receipt, success and failure, what waits in the queue; the next expected file.

Every query is scoped to one account. Read only: nothing here writes.

Decisions (where docs/spec.md is silent):
- The channels are those of `Channel` through which files arrive on their own (the screen's
  手動取込 and the command line are people, not a link), so a channel added to the enum is shown.
- A receipt is any file the channel delivered, whatever became of it (an archive counts once,
  not its unpacked files); a failure is an import that ended in エラー or a delivery that was
  拒否 (a 破棄 mail from an unknown sender is no failure of the link).
- What waits: imports 待機中 (queued), not those 取込中.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from .. import config
from ..enums import Channel, LinkStatus, Mode
from ..extensions import db
from ..models import Account, Import, ImportErrorRecord
from . import checktimes, overdue, queue

# The channels people use themselves: not part of the link.
NOT_LINK_CHANNELS = frozenset({Channel.WEB, Channel.CLI})
LINK_CHANNELS: tuple[Channel, ...] = tuple(channel for channel in Channel if channel not in NOT_LINK_CHANNELS)
FAILURES = (Import.FAILED, Import.REFUSED)


@dataclass(frozen=True)
class ChannelStatus:
    """What one channel delivered to one account last, and what of it waits."""

    channel: str
    label: str
    last_receipt: Import | None
    last_success: Import | None
    last_failure: Import | None
    failure_reason: str | None
    waiting: queue.Waiting


@dataclass(frozen=True)
class Expected:
    """The next file the account expects: when, and what is expected then (Japanese, for the page)."""

    at: dt.datetime  # aware
    what: str
    channel: str


def channel_statuses(account_id: int) -> list[ChannelStatus]:
    """One ChannelStatus per link channel, in the enum's order."""
    waiting = queue.waiting_by_channel(account_id)
    statuses = []
    for channel in LINK_CHANNELS:
        mine = (Import.account_id == account_id, Import.channel == channel)
        receipt = _latest(select(Import).where(*mine, Import.archive_id.is_(None)), Import.received_at)
        success = _latest(select(Import).where(*mine, Import.status == Import.SUCCEEDED), Import.finished_at)
        failure = _latest(select(Import).where(*mine, Import.status.in_(FAILURES)), Import.finished_at)
        statuses.append(ChannelStatus(
            channel=channel, label=Import.CHANNEL_LABELS.get(channel, channel.upper()),
            last_receipt=receipt, last_success=success, last_failure=failure,
            failure_reason=failure_reason(failure) if failure is not None else None,
            waiting=waiting.get(channel, queue.Waiting(0, None)),
        ))
    return statuses


def _latest(query, column) -> Import | None:
    return db.session.scalar(query.order_by(column.desc(), Import.id.desc()).limit(1))


def failure_reason(imp: Import) -> str:
    """Why the import failed, in one line: its first error (and how many more), else its note."""
    if imp.status == Import.FAILED:
        first = db.session.scalar(select(ImportErrorRecord.message).where(ImportErrorRecord.import_id == imp.id)
                                  .order_by(ImportErrorRecord.id).limit(1))
        if first:
            more = max(0, (imp.error_count or 0) - 1)
            return f"{first}(ほか{more:,}件)" if more else first
        return imp.note or "取込に失敗しました。"
    return imp.note or "受信を拒否しました。"


def next_expected(account: Account, now: dt.datetime) -> Expected | None:
    """The next file the account expects after `now` (aware), None when nothing is scheduled.

    With データ未着の通知 on: the deadline of the next period whose file has not come; else the next
    FTP check of an active FTP link (files by mail and API come when the sender sends them).
    """
    settings = account.settings
    if not account.integration_enabled or settings is None or settings.status != LinkStatus.ACTIVE:
        return None
    zone = config.timezone(current_app)
    due = overdue.next_deadline(account.id, settings, now, zone)
    if due is not None:
        return Expected(at=due.deadline, what=f"{overdue.period_text(due.kind, due.date)} 分のファイルの期限",
                        channel=settings.mode)
    if settings.mode == Mode.FTP:
        times = checktimes.next_check_times(settings, now, 1, zone)
        if times:
            return Expected(at=times[0], what="FTPフォルダの定時チェック", channel=Channel.FTP)
    return None
