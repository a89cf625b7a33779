"""How a number is shown to people: the screens, the chart and the report mails say it alike.

Pure: imports nothing of the app. CSV exports are not "shown": they write every digit
(services/results.format_number), so a file read back gives the stored values.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

# How a time is shown to people (screens, report mails, the CLI's human output); JSON says ISO 8601 (api/shapes.iso_utc).
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def shown_time(value: dt.datetime | None, zone: ZoneInfo, fmt: str = TIME_FORMAT) -> str:
    """A stored time (naive = UTC) in the configured zone (RENKEI_TIMEZONE), "" for None."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(zone).strftime(fmt)


# Decimals shown at most; more are rounded. One rule for screen and mail (docs/spec.md section 6).
DECIMALS = 2


def shown_number(value: float | int, unit: str = "") -> str:
    """Thousands separators; integers without decimals, others with at most DECIMALS (trailing zeros dropped); the unit."""
    if float(value).is_integer():
        text = f"{int(value):,}"
    else:
        text = f"{float(value):,.{DECIMALS}f}".rstrip("0").rstrip(".")
        if text == "-0":  # -0.001 rounds to nothing: no sign on a zero
            text = "0"
    return f"{text}{unit}"


def shown_cells(values) -> list[str]:
    """shown_number of each value, "" for None: a table's cells in one call.

    A 5,000-member board has 35,000 cells; the integer case (almost all of them) is written
    inline, so a cell costs one f-string rather than a function call and a filter.
    """
    return ["" if value is None else f"{int(value):,}" if type(value) is float and value.is_integer()
            else shown_number(value) for value in values]
