"""FTP check times (docs/spec.md section 3):
`start + k × interval + delay` for every k ≥ 0 with `start + k × interval ≤ end`.

Pure functions: no Flask, no database. They take plain values or any object with the
IntegrationSettings attributes (ftp_days, ftp_start, ftp_end, ftp_interval, ftp_delay),
and the time zone as an argument, so the scheduler can call `is_check_time` every minute
with an injected clock.

A check belongs to the day of its slot (`start + k × interval`): with a delay, a slot late
in the evening may fall after midnight; it is still a check of the slot's weekday.
Wall-clock times in the zone are used (Asia/Tokyo has no DST; elsewhere a check in a
skipped hour happens at the same wall-clock minute as `datetime` resolves it).
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from ..config import DEFAULT_TIMEZONE

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
INTERVALS: tuple[int, ...] = (5, 10, 15, 30, 60, 120)
DEFAULT_TZ = ZoneInfo(DEFAULT_TIMEZONE)

_HHMM = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::00)?\s*$")
_DAY_MINUTES = 24 * 60


def parse_hhmm(value: str | dt.time) -> int:
    """Return minutes after midnight for "HH:MM" (or a time); ValueError when it is not a time of day."""
    if isinstance(value, dt.time):
        return value.hour * 60 + value.minute
    match = _HHMM.match(value or "")
    if not match:
        raise ValueError(f"時刻「{value}」は HH:MM 形式(例 09:00)で入力してください。")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise ValueError(f"時刻「{value}」は 00:00〜23:59 の範囲で入力してください。")
    return hour * 60 + minute


def format_hhmm(minutes: int) -> str:
    """Minutes after midnight as "HH:MM"."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# The schedule rule, one message per broken part; the settings form, the CLI and the check
# scheduler all use these (services/integration.py checks field by field).
END_BEFORE_START = "終了時刻は開始時刻以降にしてください。"
INTERVAL_MESSAGE = "データ連動間隔は 5分・10分・15分・30分・1時間・2時間 から選んでください。"
MAX_DELAY = 59
DELAY_RANGE_MESSAGE = f"遅らせる時間は 0〜{MAX_DELAY} 分で入力してください。"
DELAY_INTERVAL_MESSAGE = "遅らせる時間はデータ連動間隔より短くしてください。"


def window_error(start_min: int, end_min: int) -> str | None:
    """The message when the window ends before it starts, else None."""
    return END_BEFORE_START if end_min < start_min else None


def interval_error(interval: int) -> str | None:
    return None if interval in INTERVALS else INTERVAL_MESSAGE


def delay_error(delay: int, interval: int | None = None) -> str | None:
    """The message when the delay is outside 0..MAX_DELAY or (interval given) not below the interval."""
    if not 0 <= delay <= MAX_DELAY:
        return DELAY_RANGE_MESSAGE
    if interval is not None and delay >= interval:
        return DELAY_INTERVAL_MESSAGE
    return None


def validate_schedule(start: str | dt.time, end: str | dt.time, interval: int, delay: int) -> tuple[int, int]:
    """Check a window and return (start, end) in minutes; ValueError with a Japanese message otherwise."""
    start_min, end_min = parse_hhmm(start), parse_hhmm(end)
    problem = window_error(start_min, end_min) or interval_error(interval) or delay_error(delay, interval)
    if problem:
        raise ValueError(problem)
    return start_min, end_min


def _slot_offsets(start_min: int, end_min: int, interval: int, delay: int) -> range:
    """Minutes after the slot day's midnight at which checks happen (may exceed 24h by the delay)."""
    return range(start_min + delay, end_min + delay + 1, interval)


def _wall_clock(midnight: dt.datetime, offset_minutes: int) -> dt.datetime:
    # Adding a timedelta to an aware datetime is wall-clock arithmetic in Python, which is what a schedule means.
    return midnight + dt.timedelta(minutes=offset_minutes)


def _schedule_of(settings: Any) -> tuple[frozenset[str], int, int, int, int]:
    days = frozenset(settings.ftp_days or ())
    interval, delay = int(settings.ftp_interval), int(settings.ftp_delay)
    start_min, end_min = validate_schedule(settings.ftp_start, settings.ftp_end, interval, delay)
    return days, start_min, end_min, interval, delay


def is_check_time(settings: Any, now: dt.datetime, tz: dt.tzinfo = DEFAULT_TZ) -> bool:
    """True when the minute of `now` (aware) is a check time of the settings' FTP schedule in `tz`."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    days, start_min, end_min, interval, delay = _schedule_of(settings)
    if not days:
        return False
    local = now.astimezone(tz)
    minute_of_day = local.hour * 60 + local.minute
    # Today's slots, and yesterday's slots pushed past midnight by the delay.
    for back, minute in ((0, minute_of_day), (1, minute_of_day + _DAY_MINUTES)):
        slot_day = local.date() - dt.timedelta(days=back)
        if WEEKDAYS[slot_day.weekday()] not in days:
            continue
        since_first = minute - start_min - delay
        if since_first >= 0 and since_first % interval == 0 and start_min + since_first <= end_min:
            return True
    return False


def next_check_times(settings: Any, after: dt.datetime, count: int = 5, tz: dt.tzinfo = DEFAULT_TZ) -> list[dt.datetime]:
    """The next `count` check times strictly after `after` (aware), as aware datetimes in `tz`."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    days, start_min, end_min, interval, delay = _schedule_of(settings)
    if not days or count <= 0:
        return []
    local_after = after.astimezone(tz)
    found: list[dt.datetime] = []
    # Start a day early for slots pushed past midnight; one check a week needs `count` weeks.
    day = local_after.date() - dt.timedelta(days=1)
    for _ in range(7 * count + 2):
        if WEEKDAYS[day.weekday()] in days:
            midnight = dt.datetime.combine(day, dt.time(0, 0), tzinfo=tz)
            for offset in _slot_offsets(start_min, end_min, interval, delay):
                at = _wall_clock(midnight, offset)
                if at > after:
                    found.append(at)
                    if len(found) == count:
                        return found
        day += dt.timedelta(days=1)
    return found
