"""The period a results file covers, from its name, and which endings are accepted (docs/spec.md section 2, "Names").

ACCEPTED_ENDINGS is the one list every channel asks (mail attachments, FTP candidates, API,
手動取込, `flask import-csv`): a channel never keeps its own list of endings.
"""
from __future__ import annotations

import calendar
import datetime
from dataclasses import dataclass

from app.errors import ImportRejected, Invalid, RowError

# The endings of a results file, lower case: CSV text, then the workbooks read by app/importer/workbook.py.
TEXT_ENDINGS = (".csv",)
WORKBOOK_ENDINGS = (".xlsx", ".xlsm", ".xls", ".ods")
ACCEPTED_ENDINGS = TEXT_ENDINGS + WORKBOOK_ENDINGS
# Archives of accepted files, unpacked at receive by app/importer/archive.py (20180516.csv.gz, a .zip).
ARCHIVE_ENDINGS = (".zip", ".gz")
RECEIVED_ENDINGS = ACCEPTED_ENDINGS + ARCHIVE_ENDINGS
ENDINGS_TEXT = "・".join(ACCEPTED_ENDINGS)  # ".csv・.xlsx・.xlsm・.xls・.ods"
FILENAME_MESSAGE = (
    "ファイル名は yyyymmdd.csv(日次、例 20180516.csv)または "
    "yyyymm00.csv(月次、例 20180500.csv)の形式にしてください。"
    f"拡張子は {ENDINGS_TEXT} のいずれかです(例 20180516.xlsx)。"
)
MAX_NAME = 255  # imports.filename is String(255)
PERIOD_MESSAGE = "期間は yyyymmdd(日次、例 20180516)または yyyymm(月次、例 201805)で指定してください。"


@dataclass(frozen=True)
class Period:
    """A day or a month of results; `name` is the file's base name."""

    kind: str  # "day" | "month"
    date: datetime.date  # for a month: its 1st
    name: str

    @property
    def key(self) -> str:
        """Return "20180516" for a day, "201805" for a month."""
        return period_key(self.kind, self.date)

    @property
    def last_day(self) -> datetime.date:
        """Return the last day the period covers (a day: itself); 9999-12 ends on 9999-12-31."""
        if self.kind == "day":
            return self.date
        return self.date.replace(day=calendar.monthrange(self.date.year, self.date.month)[1])

    @property
    def label(self) -> str:
        """Return "2018年5月16日" for a day, "2018年5月" for a month."""
        return period_label(self.kind, self.date)


def period_key(kind: str, date: datetime.date) -> str:
    """Return "20180516" for a day, "201805" for a month (any other kind)."""
    # Not strftime: glibc writes year 1 as "1", not "0001", and the key must be the name's digits.
    month = f"{date.year:04d}{date.month:02d}"
    return f"{month}{date.day:02d}" if kind == "day" else month


def period_label(kind: str | None, date: datetime.date | None) -> str:
    """Return "2018年5月16日" for a day, "2018年5月" for a month (any other kind), "" without a date."""
    if date is None:
        return ""
    month = f"{date.year}年{date.month}月"
    return f"{month}{date.day}日" if kind == "day" else month


def last_component(name: str | None) -> str:
    """The name without any folder part; mail clients and FTP paths use either separator."""
    return (name or "").replace("\\", "/").rsplit("/", 1)[-1]


def base_name(name: str | None) -> str:
    """The name a received file is recorded under: last_component() without control characters
    and outer spaces, at most MAX_NAME characters (every channel stores this)."""
    name = last_component(name)
    # A NUL or other control character is never part of a real file name (and PostgreSQL refuses NUL).
    return "".join(c for c in name if c.isprintable()).strip()[:MAX_NAME]


def ending(name: str | None) -> str | None:
    """Return the accepted ending a file name has (lower case, e.g. ".xlsx"), or None."""
    lower = last_component(name).lower()
    return next((end for end in ACCEPTED_ENDINGS if lower.endswith(end)), None)


def is_accepted(name: str | None) -> bool:
    """True when a file name ends with one of ACCEPTED_ENDINGS (any letter case): a file to import."""
    return ending(name) is not None


def is_archive(name: str | None) -> bool:
    """True for a name ending with one of ARCHIVE_ENDINGS: unpacked, its files imported one by one."""
    return bool(name) and base_name(name).lower().endswith(ARCHIVE_ENDINGS)


def is_received(name: str | None) -> bool:
    """True for a file a channel takes: an accepted file or an archive of them (RECEIVED_ENDINGS)."""
    return is_accepted(name) or is_archive(name)


def is_workbook(name: str | None) -> bool:
    """True for a name ending with one of WORKBOOK_ENDINGS (read by app/importer/workbook.py, not decoded)."""
    return ending(name) in WORKBOOK_ENDINGS


def kind_label(name: str | None) -> str:
    """How messages name a received file: "CSVファイル", "Excelファイル" or "ODSファイル" (CSV when unknown)."""
    end = ending(name)
    if end == ".ods":
        return "ODSファイル"
    return "Excelファイル" if end in WORKBOOK_ENDINGS else "CSVファイル"


def parse_filename(name: str) -> Period:
    """Return the period named by a received file name, or raise ImportRejected."""
    # Only the folder part is dropped here: the rules of a name are checked on what was sent.
    base = last_component(name)
    end = ending(base)
    period = _period_from_digits(base[:-len(end)], base) if end else None
    if period is None:
        raise ImportRejected([RowError(message=FILENAME_MESSAGE, value=base)])
    return period


def parse_period(text: str) -> Period:
    """Return the period for an API/CLI query such as "20180516" or "201805", or raise Invalid."""
    digits = text.strip()
    if len(digits) == 6:
        digits += "00"  # a month is written yyyymm in queries, yyyymm00 in file names
    period = _period_from_digits(digits, f"{digits}.csv")
    if period is None:
        raise Invalid(PERIOD_MESSAGE, field="period")
    return period


def _period_from_digits(stem: str, name: str) -> Period | None:
    """Read 8 ASCII digits as yyyymmdd (a day) or yyyymm00 (a month); None if invalid."""
    # isdigit() alone would accept full-width and other Unicode digits.
    if len(stem) != 8 or not (stem.isascii() and stem.isdigit()):
        return None
    year, month, day = int(stem[:4]), int(stem[4:6]), int(stem[6:])
    try:
        if day == 0:
            return Period("month", datetime.date(year, month, 1), name)
        return Period("day", datetime.date(year, month, day), name)
    except ValueError:
        return None
