"""Server-side horizontal bar chart as inline SVG: no JavaScript, no CDN, nothing the CSP blocks.

Pure: no Flask, no database. The CSP forbids inline `style` attributes, so every look is an
SVG presentation attribute (fill, font-size, text-anchor) or a CSS class from style.css.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from ..formats import shown_number

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


def format_value(value: float, unit: str = "") -> str:
    """Return the value as every screen and mail shows it (app/formats.py), with its unit."""
    return shown_number(value, unit)


def bars(labels: Sequence[str], values: Sequence[float | None], unit: str = "", title: str = "") -> Markup:
    """Return SVG markup drawing one horizontal bar per label; None counts as 0, negatives go left of the axis."""
    if len(labels) != len(values):
        raise ValueError("labels and values must have the same length")
    numbers = [_finite(v) for v in values]
    if not numbers:
        return _empty(title)

    low = min(0.0, *numbers)
    high = max(0.0, *numbers)
    span = (high - low) or 1.0
    # Value text sits beyond the bar end, so reserve room on each side that has bars.
    left_room = VALUE_MARGIN if low < 0 else 0
    plot_left = LABEL_WIDTH + GAP + left_room
    plot_width = WIDTH - plot_left - VALUE_MARGIN
    scale = plot_width / span
    zero_x = plot_left + (0.0 - low) * scale
    height = TOP + ROW_HEIGHT * len(numbers) + BOTTOM

    parts = [_open(height, title)]
    for index, (label, number) in enumerate(zip(labels, numbers)):
        y = TOP + index * ROW_HEIGHT
        bar_y = y + (ROW_HEIGHT - BAR_HEIGHT) / 2
        text_y = y + ROW_HEIGHT / 2
        length = abs(number) * scale
        negative = number < 0
        bar_x = zero_x - length if negative else zero_x
        shown = format_value(number, unit)
        full_label = str(label)
        parts.append(f'<g class="bar-row{" negative" if negative else ""}">')
        parts.append(f"<title>{escape(full_label)}: {escape(shown)}</title>")
        parts.append(
            f'<text class="bar-label" x="{_n(LABEL_WIDTH)}" y="{_n(text_y)}" text-anchor="end" '
            f'dominant-baseline="middle" font-size="{FONT_SIZE}" fill="{TEXT_FILL}">'
            f"{escape(_shorten(full_label))}</text>"
        )
        parts.append(
            f'<rect class="bar" x="{_n(bar_x)}" y="{_n(bar_y)}" width="{_n(length)}" height="{BAR_HEIGHT}" '
            f'fill="{NEGATIVE_FILL if negative else POSITIVE_FILL}"/>'
        )
        if negative:
            value_x, anchor = bar_x - 4, "end"
        else:
            value_x, anchor = bar_x + length + 4, "start"
        parts.append(
            f'<text class="bar-value" x="{_n(value_x)}" y="{_n(text_y)}" text-anchor="{anchor}" '
            f'dominant-baseline="middle" font-size="{FONT_SIZE}" fill="{TEXT_FILL}">{escape(shown)}</text>'
        )
        parts.append("</g>")
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


def _finite(value: float | None) -> float:
    """Treat a missing or non-finite value as 0 so one bad number cannot break the drawing."""
    if value is None:
        return 0.0
    number = float(value)
    return number if math.isfinite(number) else 0.0


def _shorten(label: str) -> str:
    """Cut long names so they fit the label area; the full name stays in the bar's <title>."""
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def _n(value: float) -> str:
    """Format a coordinate compactly (two decimals at most)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
