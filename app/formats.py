"""How a number is shown to people: the screens, the chart and the report mails say it alike.

Pure: imports nothing of the app. CSV exports are not "shown": they write every digit
(services/results.format_number), so a file read back gives the stored values.
"""
from __future__ import annotations

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
