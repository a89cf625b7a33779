"""メイン: a month's (or a day's) results per member as a table and a server-drawn bar chart."""
from __future__ import annotations

import calendar
import datetime as dt
from zoneinfo import ZoneInfo

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import config, queryargs
from ..services import overdue, results
from . import board, bp
from .chart import bars


@bp.route("/favicon.ico")
def favicon():
    """Send browsers that ask for /favicon.ico by habit (feed readers, bookmarks) to the SVG icon."""
    # Permanent: the icon's address does not change, so a browser may remember the redirect.
    return redirect(url_for("static", filename="favicon.svg"), code=301)


@bp.route("/")
@login_required
def index():
    account_id = current_user.account_id
    day = _requested_day()
    if day is not None:
        year, month = day.year, day.month
        table = results.day_table(account_id, day)
    else:
        year, month = _requested_month()
        table = results.month_table(account_id, year, month)
    first = dt.date(year, month, 1)
    last = first.replace(day=calendar.monthrange(year, month)[1])
    updated = (results.last_update(account_id, day, day, daily_only=True) if day is not None
               else results.last_update(account_id, first, last))
    column = _picked_column(table.columns)
    column_ids = [c.id for c in table.columns]
    key = board.sort_key(request.args.get("sort"), column_ids)
    order = board.order_of(request.args.get("order"), key)
    shown_members, shown_values = board.sorted_rows(table.members, table.values, column_ids, key, order)
    has_results = bool(table.column_totals)
    when = f"{year}年{month}月{day.day}日" if day is not None else f"{year}年{month}月"
    chart = None
    if column is not None and table.members and has_results:
        picked = column_ids.index(column.id)
        chart = bars([member.name for member in shown_members], [row[picked] for row in shown_values],
                     column.unit or "", title=f"{when}の{column.name}", missing=board.NO_VALUE)
    body = board.body_rows(shown_members, shown_values)
    footer = board.number_cells([table.column_totals.get(c.id) for c in table.columns])
    # Every link of the page keeps what the others chose: the month or day, the chart's column, the order.
    kept = {"column": column.id if column else None,
            "sort": key if key != "no" else None, "order": order if order != board.default_order(key) else None}
    place = {"day": day.isoformat()} if day is not None else {"month": _month_key(year, month)}

    def link(**changes) -> str:
        """This page's URL with `changes` (None drops an argument); naming a day or a month replaces the other."""
        base = {name: changes[name] for name in ("day", "month") if name in changes} or place
        args = {**base, **kept, **changes}
        return url_for("main.index", **{name: value for name, value in args.items() if value is not None})

    headers = [("no", "No.", False), ("name", "氏名", False), ("department", "部署", False)]
    headers += [(str(c.id), f"{c.name}({c.unit})" if c.unit else c.name, True) for c in table.columns]
    sort_links = [
        (name, label, numeric, order if name == key else None,
         link(sort=name, order=(board.DESC if order == board.ASC else board.ASC) if name == key
              else board.default_order(name)))
        for name, label, numeric in headers
    ]
    today = _today()
    days = results.days_with_files(account_id, first, last)
    prev_year, prev_month = queryargs.shift_month(year, month, -1)
    next_year, next_month = queryargs.shift_month(year, month, +1)
    return render_template(
        "main/index.html",
        table=table,
        body=body,
        footer=footer,
        year=year,
        month=month,
        day=day,
        when=when,
        column=column,
        chart=chart,
        has_results=has_results,
        updated=updated,
        sort_links=sort_links,
        kept=kept,
        link=link,
        days=days,
        day_view_day=_day_for_month_view(first, last, today, days) if day is None else day,
        this_month=_month_key(year, month),
        prev_month=_month_key(prev_year, prev_month),
        next_month=_month_key(next_year, next_month),
        prev_day=queryargs.shift_day(day, -1) if day is not None else None,
        next_day=queryargs.shift_day(day, +1) if day is not None else None,
        current_month=_month_key(today.year, today.month),
        overdue_banners=[overdue.banner_text(entry, config.timezone(current_app))
                         for entry in overdue.open_periods(account_id)],
    )


def _requested_day() -> dt.date | None:
    """The day of ?day=YYYY-MM-DD (the day view), or None for the month view (with a message if it was no day)."""
    raw = request.args.get("day", "")
    wanted = queryargs.day(raw)
    if wanted is None and raw.strip():
        flash(queryargs.DAY_MESSAGE, "error")
    return wanted


def _requested_month() -> tuple[int, int]:
    """Return (year, month) from ?month=YYYY-MM; the current month in the app's time zone otherwise."""
    raw = request.args.get("month", "")
    wanted = queryargs.month(raw)
    if wanted is not None:
        return wanted
    if raw.strip() and not request.args.get("day", "").strip():  # a bad ?day= said so already
        flash(queryargs.MONTH_MESSAGE, "error")
    today = _today()
    return today.year, today.month


def _today() -> dt.date:
    """Return today's date where the users are (TIMEZONE), not on the server's clock."""
    return dt.datetime.now(ZoneInfo(current_app.config["TIMEZONE"])).date()


def _month_key(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def _day_for_month_view(first: dt.date, last: dt.date, today: dt.date, days: list[dt.date]) -> dt.date:
    """The day the month view's 日別 opens: today in the current month, else the month's last day with a file, else the 1st."""
    if first <= today <= last:
        return today
    return days[-1] if days else first


def _picked_column(columns):
    """Return the graph column named by ?column=<id>, or the first one (None when there are none)."""
    wanted = request.args.get("column", type=int)
    for column in columns:
        if column.id == wanted:
            return column
    return columns[0] if columns else None
