"""メイン: the month's results per member as a table and a server-drawn bar chart."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from markupsafe import Markup

from .. import queryargs
from ..formats import shown_cells
from ..services import results
from . import bp
from .chart import bars


@bp.route("/favicon.ico")
def favicon():
    """Send browsers that ask for /favicon.ico by habit (feed readers, bookmarks) to the SVG icon."""
    # Permanent: the icon's address does not change, so a browser may remember the redirect.
    return redirect(url_for("static", filename="favicon.svg"), code=301)


@bp.route("/")
@login_required
def index():
    year, month = _requested_month()
    table = results.month_table(current_user.account_id, year, month)
    column = _picked_column(table.columns)
    has_results = bool(table.column_totals)
    chart = None
    if column is not None and table.members and has_results:
        picked = table.columns.index(column)
        chart = bars(
            [member.name for member in table.members],
            [row[picked] for row in table.values],
            column.unit or "",
            title=f"{year}年{month}月の{column.name}",
        )
    rows = [(member, number_cells(values)) for member, values in zip(table.members, table.values)]
    footer = number_cells([table.column_totals.get(c.id, 0) for c in table.columns])
    prev_year, prev_month = queryargs.shift_month(year, month, -1)
    next_year, next_month = queryargs.shift_month(year, month, +1)
    return render_template(
        "main/index.html",
        table=table,
        rows=rows,
        footer=footer,
        year=year,
        month=month,
        column=column,
        chart=chart,
        has_results=has_results,
        this_month=f"{year:04d}-{month:02d}",
        prev_month=f"{prev_year:04d}-{prev_month:02d}",
        next_month=f"{next_year:04d}-{next_month:02d}",
        current_month=_current_month_key(),
    )


def number_cells(values) -> Markup:
    """Return one table row's number cells (<td class="num">…</td> each, "" for None) as markup.

    Made here, not by a loop in the template: a 5,000-member month has 35,000 cells, and a
    filter call, an escape and three yields per cell were most of the page's time. The text
    of a number (digits, ",", ".", "-", "inf", "nan") holds nothing to escape.
    """
    return Markup("".join([f'<td class="num">{text}</td>' for text in shown_cells(values)]))


def _requested_month() -> tuple[int, int]:
    """Return (year, month) from ?month=YYYY-MM; the current month in the app's time zone otherwise."""
    raw = request.args.get("month", "")
    wanted = queryargs.month(raw)
    if wanted is not None:
        return wanted
    if raw.strip():
        flash(queryargs.MONTH_MESSAGE, "error")
    today = _today()
    return today.year, today.month


def _today() -> dt.date:
    """Return today's date where the users are (TIMEZONE), not on the server's clock."""
    return dt.datetime.now(ZoneInfo(current_app.config["TIMEZONE"])).date()


def _current_month_key() -> str:
    today = _today()
    return f"{today.year:04d}-{today.month:02d}"


def _picked_column(columns):
    """Return the graph column named by ?column=<id>, or the first one (None when there are none)."""
    wanted = request.args.get("column", type=int)
    for column in columns:
        if column.id == wanted:
            return column
    return columns[0] if columns else None
