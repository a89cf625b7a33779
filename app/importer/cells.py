"""Text a spreadsheet would run as a formula when it opens a CSV (formula injection); pure.

The one rule behind two defences: graph column names and 社員IDs, which `flask results export`
writes as they are (a header, a key cell), may not start like a formula, and a 備考 cell that
does is written with a leading single quote.
"""
from __future__ import annotations

# Spreadsheet programs read a text cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def starts_like_formula(text: str | None) -> bool:
    """Tell whether a spreadsheet would read `text` as a formula.

    The ASCII characters only: a full-width ＝ is text to a spreadsheet. Column names are stored
    NFKC-normalised, so a column typed ＝1+1 is checked as =1+1.
    """
    return bool(text) and text.startswith(FORMULA_STARTS)


def formula_message(label: str) -> str:
    """The refusal of a name or key that starts like a formula, without the final 。 (CSV rows show none)."""
    return (f"{label}は「=」「+」「-」「@」で始められません"
            "(表計算ソフトで開いたときに数式として実行されるため)")
