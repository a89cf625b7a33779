"""データ未着の通知: which files an account expects by when, and the 未着 periods when they did not come.

The schedule part is pure (no Flask, no database): `Expectation` holds an account's 期待するファイル,
`expected_periods` lists the periods whose deadline falls in a time window, in the zone given.
- 当日分 (daily "same"): the file of each working day D by HH:MM on D.
- 前日分 (daily "previous"): the file of each working day D by HH:MM on the next working day
  (Friday's file by Monday, or Tuesday when Monday is a public holiday).
- 月次 (monthly day N): the file of month M by HH:MM on day N of month M+1 (the month's last day
  when it is shorter); working days do not move it.
A working day is one of the 対象曜日 and, with 祝日を除く, not a Japanese public holiday (the
`holidays` package's JP calendar).

`evaluate(account_id, now)` (the scheduler's job, every minute, and the CLI) opens a 未着 entry
(overdue_periods) for each period whose deadline is at or before `now` without a
succeeded import of that period, and queues ONE mail to the エラー報告メールアドレス; and closes each
open entry whose period has a succeeded import now, with ONE 「届きました」 mail. The unique
(account, period) row makes both happen once, also with two schedulers.

Decisions (where docs/spec.md is silent):
- Deadlines before the moment データ未着の通知 was turned on (overdue_since) never alert, so turning
  it on does not mail the past; deadlines older than LOOKBACK are not alerted either (a scheduler
  stopped for a week does not send a week of mails when it starts again).
- New 未着 entries are opened only while the integration is enabled and 連動稼働; entries already
  open are still closed when a file comes. Turned off, nothing is shown as open.
- A period once alerted and closed is not alerted again (a second file of it failing is an ordinary
  エラー報告).
"""
from __future__ import annotations

import calendar
import datetime as dt
import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from .. import config
from ..enums import LinkStatus
from ..extensions import db
from ..models import Account, Import, IntegrationSettings
from ..models_links import OverduePeriod
from . import checktimes, outbox

if TYPE_CHECKING:
    import holidays

log = logging.getLogger(__name__)

NONE, SAME, PREVIOUS = "none", "same", "previous"
DAILY_KINDS = {NONE: "なし", SAME: "当日分", PREVIOUS: "前日分"}
KIND_ALERT = "overdue"  # OutboxMail.kind (送信メール: データ未着)
KIND_ARRIVED = "arrived"  # OutboxMail.kind (送信メール: データ到着)
LOOKBACK = dt.timedelta(days=3)
# The next working day is looked for this far (a calendar of only holidays has none).
_MAX_GAP_DAYS = 31


# ---------------------------------------------------------------------------- the schedule (pure)


@dataclass(frozen=True)
class Expectation:
    """期待するファイル of one account: daily kind and time (minutes), monthly day and time, weekdays, holidays."""

    daily: str = NONE
    daily_time: int = 9 * 60 + 30
    monthly_day: int | None = None
    monthly_time: int = 9 * 60 + 30
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    skip_holidays: bool = True

    @classmethod
    def of(cls, settings: Any) -> Expectation:
        """The expectation of an IntegrationSettings row (or any object with its overdue_* attributes)."""
        return cls(daily=settings.overdue_daily or NONE, daily_time=checktimes.parse_hhmm(settings.overdue_daily_time),
                   monthly_day=settings.overdue_monthly_day,
                   monthly_time=checktimes.parse_hhmm(settings.overdue_monthly_time),
                   days=tuple(settings.overdue_days or ()), skip_holidays=bool(settings.overdue_skip_holidays))


@dataclass(frozen=True)
class Expected:
    """One expected period: kind "day" | "month", its date (a month's 1st) and its deadline (aware)."""

    kind: str
    date: dt.date
    deadline: dt.datetime


@functools.lru_cache(maxsize=64)
def _japanese_holidays(year: int) -> holidays.HolidayBase:
    import holidays  # loaded by the first overdue check, not by every process that imports this module

    return holidays.country_holidays("JP", years=year)


def is_holiday(day: dt.date) -> bool:
    """True on a Japanese public holiday (振替休日 and 国民の休日 included)."""
    return day in _japanese_holidays(day.year)


def is_working_day(day: dt.date, expectation: Expectation) -> bool:
    """One of the 対象曜日 and, when holidays are skipped, not a public holiday."""
    if checktimes.WEEKDAYS[day.weekday()] not in expectation.days:
        return False
    return not (expectation.skip_holidays and is_holiday(day))


def next_working_day(day: dt.date, expectation: Expectation) -> dt.date | None:
    """The first working day after `day` (None when none comes within a month)."""
    for offset in range(1, _MAX_GAP_DAYS + 1):
        candidate = day + dt.timedelta(days=offset)
        if is_working_day(candidate, expectation):
            return candidate
    return None


def _at(day: dt.date, minutes: int, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(minutes // 60, minutes % 60), tzinfo=zone)


def _months(first: dt.date, last: dt.date) -> list[dt.date]:
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return months


def monthly_deadline(month: dt.date, expectation: Expectation, zone: ZoneInfo) -> dt.datetime:
    """The deadline of month `month`'s file: day N of the next month (its last day when shorter)."""
    following = (month.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    day = min(expectation.monthly_day or 1, calendar.monthrange(following.year, following.month)[1])
    return _at(following.replace(day=day), expectation.monthly_time, zone)


def expected_periods(expectation: Expectation, start: dt.datetime, end: dt.datetime, zone: ZoneInfo) -> list[Expected]:
    """The expected periods whose deadline is in [start, end] (aware times), by deadline."""
    first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    found: list[Expected] = []
    if expectation.daily in (SAME, PREVIOUS):
        day = first - dt.timedelta(days=_MAX_GAP_DAYS if expectation.daily == PREVIOUS else 1)
        while day <= last:
            if is_working_day(day, expectation):
                due_day = day if expectation.daily == SAME else next_working_day(day, expectation)
                if due_day is not None:
                    found.append(Expected("day", day, _at(due_day, expectation.daily_time, zone)))
            day += dt.timedelta(days=1)
    if expectation.monthly_day:
        for month in _months(first - dt.timedelta(days=62), last):
            found.append(Expected("month", month, monthly_deadline(month, expectation, zone)))
    return sorted((e for e in found if start <= e.deadline <= end), key=lambda e: (e.deadline, e.kind, e.date))


def next_deadline(account_id: int, settings: Any, now: dt.datetime, zone: ZoneInfo) -> Expected | None:
    """The first period after `now` whose file has not come yet (None when データ未着の通知 is off)."""
    if not settings.overdue_enabled:
        return None
    horizon = now + dt.timedelta(days=_MAX_GAP_DAYS + 31)
    for expected in expected_periods(Expectation.of(settings), now, horizon, zone):
        if succeeded_import(account_id, expected.kind, expected.date) is None:
            return expected
    return None


def period_text(kind: str, date: dt.date) -> str:
    """A period as the banner and the mails write it: "2026/12/01" (a day), "2026/11" (a month)."""
    return f"{date:%Y/%m/%d}" if kind == "day" else f"{date:%Y/%m}"


def deadline_text(kind: str, date: dt.date, deadline: dt.datetime, zone: ZoneInfo) -> str:
    """The deadline, short: "09:30" on the period's own day, else "12/02 09:30"."""
    local = _aware(deadline).astimezone(zone)
    return f"{local:%H:%M}" if kind == "day" and local.date() == date else f"{local:%m/%d %H:%M}"


def banner_text(entry: OverduePeriod, zone: ZoneInfo) -> str:
    """「2026/12/01 分のデータが届いていません(期限 09:30)」."""
    return (f"{period_text(entry.period_kind, entry.period_date)} 分のデータが届いていません"
            f"(期限 {deadline_text(entry.period_kind, entry.period_date, entry.deadline, zone)})")


# ---------------------------------------------------------------------------- times


def _aware(value: dt.datetime) -> dt.datetime:
    """An aware datetime of an aware or naive-UTC (as stored) one."""
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _utc(value: dt.datetime) -> dt.datetime:
    """The naive UTC datetime the database stores."""
    return _aware(value).astimezone(dt.timezone.utc).replace(tzinfo=None)


# ---------------------------------------------------------------------------- the database


def succeeded_import(account_id: int, kind: str, date: dt.date) -> Import | None:
    """The latest succeeded import of the period (imports record theirs in period_kind and period_date)."""
    return db.session.scalar(
        select(Import).where(Import.account_id == account_id, Import.status == Import.SUCCEEDED,
                             Import.period_kind == kind, Import.period_date == date)
        .order_by(Import.received_at.desc(), Import.id.desc()).limit(1))


def watched_accounts() -> list[int]:
    """Ids of the accounts with データ未着の通知 on."""
    return list(db.session.scalars(select(IntegrationSettings.account_id)
                                   .where(IntegrationSettings.overdue_enabled.is_(True))
                                   .order_by(IntegrationSettings.account_id)))


def open_periods(account_id: int) -> list[OverduePeriod]:
    """The account's open 未着 periods, oldest deadline first ([] while データ未着の通知 is off)."""
    settings = db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))
    if settings is None or not settings.overdue_enabled:
        return []
    return list(db.session.scalars(
        select(OverduePeriod).where(OverduePeriod.account_id == account_id, OverduePeriod.state == OverduePeriod.OPEN)
        .order_by(OverduePeriod.deadline, OverduePeriod.id)))


def recent_periods(account_id: int, limit: int = 20) -> list[OverduePeriod]:
    """The account's latest 未着 entries, open or closed, newest deadline first (for 取込履歴)."""
    return list(db.session.scalars(
        select(OverduePeriod).where(OverduePeriod.account_id == account_id)
        .order_by(OverduePeriod.deadline.desc(), OverduePeriod.id.desc()).limit(limit)))


@dataclass
class Evaluation:
    """What one evaluation did: the entries it opened (alerted) and closed (届きました)."""

    opened: list[OverduePeriod]
    closed: list[OverduePeriod]


def evaluate(account_id: int, now: dt.datetime) -> Evaluation:
    """Open the 未着 periods due by `now` (aware or naive UTC) and close the ones whose file came; mails queued."""
    from . import overdue_mail  # the mails' texts read this module's helpers

    zone = config.timezone(current_app)
    now = _aware(now)
    account = db.session.get(Account, account_id)
    settings = db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))
    result = Evaluation([], [])
    if account is None or settings is None:
        return result
    recipients = list(settings.error_to or [])
    for entry in db.session.scalars(select(OverduePeriod).where(OverduePeriod.account_id == account_id,
                                                                OverduePeriod.state == OverduePeriod.OPEN)).all():
        imp = succeeded_import(account_id, entry.period_kind, entry.period_date)
        if imp is None:
            continue
        # Closed by a conditional update, so two schedulers evaluating at once send one notice.
        won = db.session.execute(
            update(OverduePeriod).where(OverduePeriod.id == entry.id, OverduePeriod.state == OverduePeriod.OPEN)
            .values(state=OverduePeriod.CLOSED, closed_at=_utc(now), import_id=imp.id),
            execution_options={"synchronize_session": False}).rowcount == 1
        if not won:
            db.session.rollback()
            continue
        entry.state, entry.closed_at, entry.import_id = OverduePeriod.CLOSED, _utc(now), imp.id
        if recipients:
            outbox.enqueue(account_id, imp.id, KIND_ARRIVED, recipients,
                           *overdue_mail.arrived(account, settings, entry, imp, zone))
        db.session.commit()
        result.closed.append(entry)
        log.info("overdue period closed account=%s period=%s import=#%s", account.slug,
                 period_text(entry.period_kind, entry.period_date), imp.id)
    if not (settings.overdue_enabled and account.integration_enabled and settings.status == LinkStatus.ACTIVE):
        db.session.rollback()
        return result
    start = now - LOOKBACK
    if settings.overdue_since is not None:
        start = max(start, _aware(settings.overdue_since))
    try:
        expected = expected_periods(Expectation.of(settings), start, now, zone)
    except ValueError:  # only a row edited by hand can hold a wrong time
        log.warning("overdue settings of account=%s are not valid; nothing evaluated", account.slug)
        return result
    known = set(db.session.execute(select(OverduePeriod.period_kind, OverduePeriod.period_date)
                                   .where(OverduePeriod.account_id == account_id)).all())
    for period in expected:
        if (period.kind, period.date) in known or succeeded_import(account_id, period.kind, period.date):
            continue
        entry = OverduePeriod(account_id=account_id, period_kind=period.kind, period_date=period.date,
                              deadline=_utc(period.deadline), opened_at=_utc(now), alerted_at=_utc(now),
                              state=OverduePeriod.OPEN)
        db.session.add(entry)
        if recipients:
            outbox.enqueue(account_id, None, KIND_ALERT, recipients,
                           *overdue_mail.alert(account, settings, entry, zone, now))
        try:
            db.session.commit()
        except IntegrityError:  # another scheduler opened it first: its mail is the one
            db.session.rollback()
            continue
        result.opened.append(entry)
        log.warning("data overdue account=%s period=%s deadline=%s", account.slug,
                    period_text(period.kind, period.date), period.deadline.isoformat())
    db.session.rollback()  # end the read transaction
    return result
