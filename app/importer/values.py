"""The numbers a value cell may hold (docs/spec.md section 2, "Layout"): parse_value and its messages; pure."""
from __future__ import annotations

import re
import unicodedata

NOT_A_NUMBER = "数値ではありません(使える形: 1234、1,234、12.5、-100、△100、▲100、(100)、￥1,234、1,234円。全角も可)"
BAD_SEPARATOR = "桁区切りのカンマの位置が正しくありません(例 1,234,567)"
TOO_LARGE = "数値が大きすぎます"
TRAILING_MINUS = ("末尾の「-」はマイナスとして読みません(領収書などでは金額の終わりを示す記号のため)。"
                  "マイナスの値は -5,000、△5,000、(5,000) のように書いてください")
LONE_DASH = ("「-」だけでは数値になりません。ゼロは 0、値がなければ空欄にしてください"
             "(Excelの会計表示形式では 0 が「-」と表示されます)")
PERCENT = "パーセントの値です。数値の列には「%」を付けずに数値で入力してください(例 12% は 12 または 0.12)"
DATE = "日付のようです。数値の列には数値を入力してください(日付はファイル名 yyyymmdd で指定します)"
# Up to this many digits a number is always below the largest float (about 1.8e308);
# a longer one may overflow to inf, which is not JSON and would make the period unreadable.
SAFE_DIGITS = 308

# NFKC already turns full-width "－" (U+FF0D) and "﹣" into "-"; U+2212 has no decomposition.
_MINUS_SIGNS = frozenset("-\u2212△▲")
# A yen sign before the number: ¥ (NFKC of full-width ￥) and the backslash a cp932 yen sign
# decodes to (0x5C; also NFKC of full-width ＼).
_YEN_SIGNS = frozenset("\u00a5\\")
_YEN_SUFFIX = "円"
# Non-ASCII characters a value cell may hold besides the full-width forms block and the minus
# signs: ¥ and 円, and 年 月 日 only so that a date gets its own message.
_VALUE_EXTRA = frozenset("\u00a5円年月日")
_ASCII_DIGITS = frozenset("0123456789")
# What a number column's cell looks like when it holds a date (after NFKC).
_DATE = re.compile(r"\d{1,4}[/-]\d{1,2}[/-]\d{1,4}|\d{4}\.\d{1,2}\.\d{1,2}|\d{1,2}/\d{1,2}"
                   r"|(?:\d{1,4}\s*年\s*)?\d{1,2}\s*月(?:\s*\d{1,2}\s*日)?", re.ASCII)
_INFINITY = float("inf")


def parse_value(cell: str) -> float | None:
    """Return the number written in a cell, None when it is empty; raise ValueError otherwise."""
    if cell.isascii():
        text = cell.strip()
    else:
        # NFKC maps full-width digits, signs, comma, period and U+3000, but also "①" or "²"
        # to digits; only the full-width forms block (U+FF00-U+FFEF) is a plausible typing.
        if any(char > "\x7f" and not ("\uff00" <= char <= "\uffef" or char in _MINUS_SIGNS
                                      or char in _VALUE_EXTRA or char.isspace())
               for char in cell):
            raise ValueError(NOT_A_NUMBER)
        text = unicodedata.normalize("NFKC", cell).strip()
    if not text:
        return None
    if text[0] in _ASCII_DIGITS and text[-1] in _ASCII_DIGITS:
        number, negative = text, False  # no sign, yen or parentheses to take off
    else:
        number, negative = _unwrap(text)
    whole, point, fraction = number.partition(".")
    digits = whole.replace(",", "") if "," in whole else whole
    # Checking the characters ourselves keeps float() from accepting "1e5", "nan", "inf", "1_000".
    if not is_digits(digits) or (point and not is_digits(fraction)):
        raise ValueError(_not_a_number(text))
    if "," in whole:
        groups = whole.split(",")
        if not (1 <= len(groups[0]) <= 3 and all(len(group) == 3 for group in groups[1:])):
            raise ValueError(BAD_SEPARATOR)
    value = float(f"{digits}.{fraction}" if point else digits)
    if value == _INFINITY:
        raise ValueError(TOO_LARGE)
    return -value if negative and value else value  # "-0" is 0, not -0.0


def _unwrap(text: str) -> tuple[str, bool]:
    """Take the marks off a number: (the digits part, negative).

    The forms: one minus sign (- − △ ▲) before or after a yen sign (¥ or the backslash of a
    cp932 file) or Excel's accounting parentheses "(5,000)", which may hold the yen sign or 円;
    円 after the number instead of a yen sign before it. Spaces between are fine. Whatever is
    left that is not a number is refused by the caller.
    """
    negative = yen = False
    if text.endswith(_YEN_SUFFIX):
        text, yen = text[:-1].rstrip(), True
    if text[:1] in _MINUS_SIGNS:
        text, negative = text[1:].lstrip(), True
    if text[:1] in _YEN_SIGNS and not yen:
        text, yen = text[1:].lstrip(), True
    if len(text) >= 2 and text[0] == "(" and text[-1] == ")":
        if negative:
            return text, False  # "-(5,000)": two minus signs, refused
        text, negative = text[1:-1].strip(), True
        if text.endswith(_YEN_SUFFIX) and not yen:
            text, yen = text[:-1].rstrip(), True
        if text[:1] in _YEN_SIGNS and not yen:
            text = text[1:].lstrip()
        return text, negative
    if text[:1] in _MINUS_SIGNS and not negative:
        text, negative = text[1:].lstrip(), True  # "¥-5,000"
    return text, negative


def _not_a_number(text: str) -> str:
    """The message for a (normalised, trimmed) cell that is not a number: what it looks like."""
    if text.endswith("%"):
        return PERCENT
    if _DATE.fullmatch(text):
        return DATE
    if text.lstrip("".join(_YEN_SIGNS)).strip() in _MINUS_SIGNS:
        return LONE_DASH  # "-", "¥-": how Excel's accounting format shows a zero
    rest = text[:-1].rstrip()
    # One trailing sign only: "5--" is no number either way (and no deep recursion on "5-----").
    if text[-1] in _MINUS_SIGNS and rest and rest[-1] not in _MINUS_SIGNS:
        try:
            parse_value(rest)
        except ValueError:
            pass
        else:
            return TRAILING_MINUS
    return NOT_A_NUMBER


def is_plain(joined: str) -> bool:
    """True when float() reads each cell of these cells joined together exactly as parse_value does.

    Only ASCII digits and "-" (float() rejects a "-" anywhere but first, and an empty cell), and no
    cell starting with "-0", which float() reads as -0.0 where parse_value gives 0. Any other
    cell (a comma, a space, a full-width digit, △) goes through parse_value.
    """
    return joined.isascii() and (joined.isdigit() or ("-0" not in joined and joined.replace("-", "").isdigit()))


def is_digits(text: str) -> bool:
    """Return True for a non-empty run of ASCII digits."""
    return text.isascii() and text.isdigit()
