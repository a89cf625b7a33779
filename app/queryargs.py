"""Query-string values of the screens (page numbers, months, days), read so that none makes a page fail.

A query string is typed, bookmarked and edited by hand: a value out of range is clamped to the
nearest one the page can show, a value that is not one at all is ignored (the page's default),
and neither is ever an error page. The API keeps its own stricter rule (a 400 naming the
parameter, app/api/routes.py).
"""
from __future__ import annotations

import datetime as dt
import re

from flask import request

from .errors import Invalid
from .extensions import db
from .importer.filename import parse_period

# The largest page number asked of the database: its OFFSET is (page - 1) × page size, which must
# stay a 64-bit integer; a bigger number is clamped to the last page anyway.
MAX_PAGE = 10**9
# Days a filter can name: one day inside Python's date range, so a day's start in any time zone
# and "the day after" (an upper bound is exclusive) are dates too.
FIRST_DAY = dt.date.min + dt.timedelta(days=1)
LAST_DAY = dt.date.max - dt.timedelta(days=1)
# A month as the board's links write it: 2018-05 (ASCII digits only; 2018-5 is read too).
_MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{1,2})")
# Months a file name can name (yyyymm00.csv): 0001-01 to 9999-12.
FIRST_MONTH = (1, 1)
LAST_MONTH = (9999, 12)
MONTH_MESSAGE = "年月は 2018-05 のように指定してください。今月を表示しています。"
# A day as the board's links write it: 2018-05-16 (an <input type="date"> sends this form too).
_DAY_RE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
DAY_MESSAGE = "日付は 2018-05-16 のように指定してください。月別を表示しています。"


def page_number(raw: str | None) -> int:
    """A page number: 1 when absent or not a positive whole number, at most MAX_PAGE."""
    text = (raw or "").strip()
    if not (text.isascii() and text.isdigit()):
        return 1
    # Length first: int() of a very long digit string is slow.
    if len(text.lstrip("0")) > len(str(MAX_PAGE)):
        return MAX_PAGE
    return min(max(int(text), 1), MAX_PAGE)


def paginate(query, per_page: int, name: str = "page"):
    """One page of `query` by ?<name>=; a page past the end shows the last page (never an error)."""
    wanted = page_number(request.args.get(name))
    page = db.paginate(query, page=wanted, per_page=per_page, error_out=False)
    if page.pages and wanted > page.pages:
        page = db.paginate(query, page=page.pages, per_page=per_page, error_out=False)
    return page


def month(raw: str | None) -> tuple[int, int] | None:
    """(year, month) of "2018-05", or None when absent or not a month a file name can name."""
    match = _MONTH_RE.fullmatch((raw or "").strip())
    if not match:
        return None
    year, number = int(match.group(1)), int(match.group(2))
    # The period rule of file names (yyyymm): year 0001-9999, month 1-12.
    try:
        period = parse_period(f"{year:04d}{number:02d}")
    except Invalid:
        return None
    return period.date.year, period.date.month


def day(raw: str | None) -> dt.date | None:
    """The day of "2018-05-16", or None when absent or not a day a file name can name (yyyymmdd)."""
    match = _DAY_RE.fullmatch((raw or "").strip())
    if not match:
        return None
    try:
        period = parse_period(f"{int(match.group(1)):04d}{int(match.group(2)):02d}{int(match.group(3)):02d}")
    except Invalid:
        return None
    return period.date if period.kind == "day" else None


def shift_day(day: dt.date, delta: int) -> dt.date:
    """The day `delta` days away, within the days a file name can name (0001-01-01 to 9999-12-31)."""
    try:
        return day + dt.timedelta(days=delta)
    except OverflowError:
        return day


def shift_month(year: int, number: int, delta: int) -> tuple[int, int]:
    """The month `delta` months away, clamped to FIRST_MONTH..LAST_MONTH."""
    index = year * 12 + (number - 1) + delta
    shifted = (index // 12, index % 12 + 1)
    return min(max(shifted, FIRST_MONTH), LAST_MONTH)


def search_text(raw: str | None) -> str:
    """A text filter without the characters no stored name holds (NUL, which PostgreSQL refuses)."""
    return (raw or "").replace("\x00", "").strip()


def clamp_day(day: dt.date) -> dt.date:
    """A filter's day within FIRST_DAY..LAST_DAY (0001-01-01 means the same as 0001-01-02 here)."""
    return min(max(day, FIRST_DAY), LAST_DAY)
