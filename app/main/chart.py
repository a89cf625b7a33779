"""Server-side horizontal bar chart as inline SVG: no JavaScript, no CDN, nothing the CSP blocks.

Pure: no Flask, no database. The CSP forbids inline `style` attributes, so every look is an
SVG presentation attribute (fill, font-size, text-anchor) or a CSS class from style.css.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from ..formats import shown_cells

# Geometry in viewBox units; the SVG scales to its container's width (class "chart").
# Narrow on purpose: on a phone the whole drawing shrinks, and a wide one would make the text unreadable.
WIDTH = 600
ROW_HEIGHT = 30
BAR_HEIGHT = 20
TOP = 10
BOTTOM = 10
LABEL_WIDTH = 140
GAP = 8
VALUE_MARGIN = 100  # room for the value text beyond a bar's end
FONT_SIZE = 14
MAX_LABEL_CHARS = 9

POSITIVE_FILL = "#1f6feb"
NEGATIVE_FILL = "#b42318"
AXIS_STROKE = "#9aa5b1"
TEXT_FILL = "#1f2933"

EMPTY_MESSAGE = "表示できるデータがありません"


def bars(labels: Sequence[str], values: Sequence[float | None], unit: str = "", title: str = "",
         missing: str = "—") -> Markup:
    """Return SVG markup drawing one horizontal bar per label; negatives go left of the axis.

    None (a member without data) draws no bar and the text `missing`, never a 0: no data is not zero.
    """
    if len(labels) != len(values):
        raise ValueError("labels and values must have the same length")
    numbers = [None if v is None else _finite(v) for v in values]
    if not numbers:
        return _empty(title)

    present = [number for number in numbers if number is not None]
    low = min([0.0, *present])
    high = max([0.0, *present])
    span = (high - low) or 1.0
    # Value text sits beyond the bar end, so reserve room on each side that has bars.
    left_room = VALUE_MARGIN if low < 0 else 0
    plot_left = LABEL_WIDTH + GAP + left_room
    plot_width = WIDTH - plot_left - VALUE_MARGIN
    scale = plot_width / span
    zero_x = plot_left + (0.0 - low) * scale
    height = TOP + ROW_HEIGHT * len(numbers) + BOTTOM

    # One f-string per bar, the number texts made in one pass and each text escaped once: a
    # 5,000-member month draws 5,000 bars, and per-piece appends and calls were a third of the page.
    # A number's text holds nothing to escape, so only the unit is, once; ROW_HEIGHT and BAR_HEIGHT
    # are even, so every y is a whole number and needs no formatting call.
    label_x = _n(LABEL_WIDTH)
    texts = f'dominant-baseline="middle" font-size="{FONT_SIZE}" fill="{TEXT_FILL}"'
    unit_text = escape(unit)
    missing_text = escape(missing)
    missing_x = _n(zero_x + 4)
    text_offset = ROW_HEIGHT // 2
    bar_offset = (ROW_HEIGHT - BAR_HEIGHT) // 2
    parts = [_open(height, title)]
    for index, (label, number, shown) in enumerate(zip(labels, numbers, shown_cells(numbers))):
        y = TOP + index * ROW_HEIGHT
        text_y = y + text_offset
        full_label = str(label)
        name = escape(full_label)
        short = _shorten(full_label)
        shown_label = name if short == full_label else escape(short)
        if number is None:
            parts.append(
                f'<g class="bar-row no-data"><title>{name}: {missing_text}</title>'
                f'<text class="bar-label" x="{label_x}" y="{text_y}" text-anchor="end" {texts}>{shown_label}</text>'
                f'<text class="bar-value" x="{missing_x}" y="{text_y}" text-anchor="start" {texts}>'
                f'{missing_text}</text></g>'
            )
            continue
        length = abs(number) * scale
        negative = number < 0
        bar_x = zero_x - length if negative else zero_x
        shown = f"{shown}{unit_text}"
        if negative:
            row_class, fill, value_x, anchor = "bar-row negative", NEGATIVE_FILL, bar_x - 4, "end"
        else:
            row_class, fill, value_x, anchor = "bar-row", POSITIVE_FILL, bar_x + length + 4, "start"
        parts.append(
            f'<g class="{row_class}"><title>{name}: {shown}</title>'
            f'<text class="bar-label" x="{label_x}" y="{text_y}" text-anchor="end" {texts}>{shown_label}</text>'
            f'<rect class="bar" x="{_n(bar_x)}" y="{y + bar_offset}" width="{_n(length)}" '
            f'height="{BAR_HEIGHT}" fill="{fill}"/>'
            f'<text class="bar-value" x="{_n(value_x)}" y="{text_y}" text-anchor="{anchor}" {texts}>{shown}</text></g>'
        )
    parts.append(
        f'<line class="axis" x1="{_n(zero_x)}" y1="{TOP - 4}" x2="{_n(zero_x)}" '
        f'y2="{_n(height - BOTTOM + 4)}" stroke="{AXIS_STROKE}" stroke-width="1"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def _open(height: float, title: str) -> str:
    """Return the opening <svg> tag (viewBox only, so CSS sizes it) and its accessible title."""
    label = escape(title or "棒グラフ")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {_n(height)}" '
        f'role="img" aria-label="{label}" preserveAspectRatio="xMinYMin meet"><title>{label}</title>'
    )


def _empty(title: str) -> Markup:
    """Return a small chart that says there is nothing to draw."""
    height = 60
    return Markup(
        _open(height, title)
        + f'<text class="chart-empty" x="{WIDTH / 2:g}" y="{height / 2:g}" text-anchor="middle" '
        f'dominant-baseline="middle" font-size="{FONT_SIZE + 1}" fill="{TEXT_FILL}">{escape(EMPTY_MESSAGE)}</text>'
        "</svg>"
    )


def _finite(value: float) -> float:
    """Treat a non-finite value as 0 so one bad number cannot break the drawing."""
    number = float(value)
    return number if math.isfinite(number) else 0.0


def _shorten(label: str) -> str:
    """Cut long names so they fit the label area; the full name stays in the bar's <title>."""
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def _n(value: float) -> str:
    """Format a coordinate compactly (two decimals at most)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
