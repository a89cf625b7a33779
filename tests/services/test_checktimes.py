"""FTP check times: start + k × interval + delay while start + k × interval ≤ end, on the chosen weekdays."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from app.services.checktimes import is_check_time, next_check_times

TOKYO = ZoneInfo("Asia/Tokyo")
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
# 2018-05-16 is a Wednesday (the example file date of docs/spec.md).
WED = dt.date(2018, 5, 16)


def hhmm(times: list[dt.datetime]) -> list[str]:
    return [t.strftime("%H:%M") for t in times]


def schedule(days=WEEKDAYS, start="09:00", end="18:00", interval=60, delay=0):
    return SimpleNamespace(ftp_days=list(days), ftp_start=start, ftp_end=end, ftp_interval=interval, ftp_delay=delay)


def tokyo(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=TOKYO)


def wednesday_checks(start, end, interval, delay, tz=TOKYO) -> list[dt.datetime]:
    """The check times of WED's slots for a Wednesday-only schedule, as the settings page computes them."""
    before = dt.datetime.combine(WED, dt.time(0, 0), tzinfo=tz) - dt.timedelta(minutes=1)
    times = next_check_times(schedule(["wed"], start, end, interval, delay), before, count=400, tz=tz)
    # Only Wednesday is chosen: the next slot day after WED is a week later.
    return [t for t in times if t.date() <= WED + dt.timedelta(days=1)]


def test_spec_example_nine_to_six_hourly_five_minutes_late():
    times = wednesday_checks("09:00", "18:00", 60, 5)
    assert hhmm(times) == [f"{h:02d}:05" for h in range(9, 19)]
    assert times[0] == tokyo(2018, 5, 16, 9, 5)


@pytest.mark.parametrize(
    "start, end, interval, delay, expected",
    [
        ("09:00", "09:50", 30, 0, ["09:00", "09:30"]),  # 10:00 would be past the end
        ("09:00", "10:00", 30, 0, ["09:00", "09:30", "10:00"]),  # the end itself is a check
        ("09:00", "09:00", 60, 0, ["09:00"]),  # a one-minute window
        ("09:00", "09:20", 15, 10, ["09:10", "09:25"]),  # delay moves checks, not the window
        ("08:10", "09:00", 120, 59, ["09:09"]),
        ("00:00", "00:20", 5, 4, ["00:04", "00:09", "00:14", "00:19", "00:24"]),
        ("09:07", "09:40", 10, 0, ["09:07", "09:17", "09:27", "09:37"]),  # interval not dividing the window
    ],
)
def test_windows_delays_and_intervals(start, end, interval, delay, expected):
    assert hhmm(wednesday_checks(start, end, interval, delay)) == expected


def test_check_times_are_in_the_zone_given():
    times = wednesday_checks("09:00", "10:00", 60, 0, tz=dt.timezone.utc)
    assert times[0].isoformat() == "2018-05-16T09:00:00+00:00"


def test_delay_can_push_the_last_check_past_midnight():
    times = wednesday_checks("22:30", "23:30", 60, 45)
    assert times == [tokyo(2018, 5, 16, 23, 15), tokyo(2018, 5, 17, 0, 15)]


@pytest.mark.parametrize(
    "start, end, interval, delay",
    [
        ("18:00", "09:00", 60, 0),  # end before start
        ("09:01", "09:00", 5, 0),
        ("9時", "18:00", 60, 0),
        ("24:00", "18:00", 60, 0),
        ("09:00", "18:00", 7, 0),  # not one of the offered intervals
        ("09:00", "18:00", 60, 60),  # delay above 59
        ("09:00", "18:00", 30, 30),  # delay not below the interval
        ("09:00", "18:00", 60, -1),
    ],
)
def test_invalid_schedules_are_rejected(start, end, interval, delay):
    with pytest.raises(ValueError):
        wednesday_checks(start, end, interval, delay)


def test_end_before_start_message_is_japanese():
    with pytest.raises(ValueError, match="終了時刻は開始時刻以降"):
        wednesday_checks("18:00", "09:00", 60, 0)


@pytest.mark.parametrize(
    "local, expected",
    [
        (tokyo(2018, 5, 16, 9, 5), True),
        (tokyo(2018, 5, 16, 9, 5, 59), True),  # minute resolution
        (tokyo(2018, 5, 16, 18, 5), True),
        (tokyo(2018, 5, 16, 9, 0), False),  # the delay moved it
        (tokyo(2018, 5, 16, 9, 6), False),
        (tokyo(2018, 5, 16, 19, 5), False),  # 19:00 is past the end
        (tokyo(2018, 5, 16, 8, 5), False),
        (tokyo(2018, 5, 19, 10, 5), False),  # Saturday is not chosen
        (tokyo(2018, 5, 20, 10, 5), False),  # nor Sunday
    ],
)
def test_is_check_time(local, expected):
    assert is_check_time(schedule(delay=5), local, TOKYO) is expected


def test_is_check_time_converts_the_clock_into_the_zone():
    # 00:05 UTC is 09:05 in Tokyo.
    now = dt.datetime(2018, 5, 16, 0, 5, tzinfo=dt.timezone.utc)
    assert is_check_time(schedule(delay=5), now, TOKYO)
    assert not is_check_time(schedule(delay=5), now, ZoneInfo("UTC"))


def test_is_check_time_spill_over_past_midnight_keeps_the_slot_weekday():
    late = schedule(days=["fri"], start="22:30", end="23:30", interval=60, delay=45)
    assert is_check_time(late, tokyo(2018, 5, 18, 23, 15), TOKYO)  # Friday's 22:30 slot
    assert is_check_time(late, tokyo(2018, 5, 19, 0, 15), TOKYO)  # Friday's 23:30 slot, on Saturday
    assert not is_check_time(late, tokyo(2018, 5, 18, 0, 15), TOKYO)  # Thursday's slot: not chosen


def test_no_weekday_means_never():
    assert not is_check_time(schedule(days=[]), tokyo(2018, 5, 16, 9, 0), TOKYO)
    assert next_check_times(schedule(days=[]), tokyo(2018, 5, 16, 9, 0), tz=TOKYO) == []


def test_naive_clock_is_refused():
    with pytest.raises(ValueError):
        is_check_time(schedule(), dt.datetime(2018, 5, 16, 9, 0), TOKYO)


def test_next_check_times_later_today():
    got = next_check_times(schedule(delay=5), tokyo(2018, 5, 16, 16, 30), count=3, tz=TOKYO)
    assert [t.isoformat() for t in got] == [
        "2018-05-16T17:05:00+09:00",
        "2018-05-16T18:05:00+09:00",
        "2018-05-17T09:05:00+09:00",  # across midnight to Thursday's first check
    ]


def test_next_check_times_are_strictly_after():
    got = next_check_times(schedule(delay=5), tokyo(2018, 5, 16, 9, 5), count=1, tz=TOKYO)
    assert got == [tokyo(2018, 5, 16, 10, 5)]


def test_next_check_times_skip_the_weekend():
    friday_evening = tokyo(2018, 5, 18, 18, 30)
    got = next_check_times(schedule(interval=120), friday_evening, count=2, tz=TOKYO)
    assert got == [tokyo(2018, 5, 21, 9, 0), tokyo(2018, 5, 21, 11, 0)]  # Monday


def test_next_check_times_include_a_spill_over_from_yesterday():
    late = schedule(days=["fri"], start="22:30", end="23:30", interval=60, delay=45)
    got = next_check_times(late, tokyo(2018, 5, 19, 0, 0), count=2, tz=TOKYO)
    assert got == [tokyo(2018, 5, 19, 0, 15), tokyo(2018, 5, 25, 23, 15)]


def test_next_check_times_once_a_week_finds_next_week():
    got = next_check_times(schedule(days=["wed"], start="09:00", end="09:00"), tokyo(2018, 5, 16, 10, 0), tz=TOKYO)
    assert [t.date() for t in got] == [dt.date(2018, 5, 23) + dt.timedelta(weeks=k) for k in range(5)]


def test_next_check_times_match_is_check_time():
    settings = schedule(days=["mon", "wed", "sat"], start="08:20", end="19:10", interval=15, delay=7)
    start = tokyo(2018, 5, 14, 0, 0)
    expected = next_check_times(settings, start - dt.timedelta(minutes=1), count=200, tz=TOKYO)
    minutes = [start + dt.timedelta(minutes=m) for m in range(7 * 24 * 60)]
    hits = [m for m in minutes if is_check_time(settings, m, TOKYO)]
    assert hits == [t for t in expected if t < start + dt.timedelta(days=7)]
