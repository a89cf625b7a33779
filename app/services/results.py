"""Stored results: the month's table for the board, CSV export in the import layout, hand-typed results."""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import select

from ..db import bulk
from ..errors import Invalid, NotFound
from ..extensions import db
from ..importer.cells import starts_like_formula
from ..importer.filename import Period, parse_period
from ..importer.header import KEY_HEADERS, NOTE_HEADER
from ..models import GraphColumn, Import, IntegrationSettings, Member
from ..models_results import ManualResult, ResultBlock
from . import monthgrid
from . import totals as month_totals

EXPORT_ENCODINGS = ("cp932", "utf-8", "utf-8-sig")


class BoardMember(NamedTuple):
    """What the board shows of a member."""

    id: int
    no: int
    name: str
    department: str | None


@dataclass
class MonthTable:
    """A month (or, with `day`, one day) of results: active members by No., columns in order, and the grid of their sums.

    `values[i][j]` is members[i]'s sum in columns[j], None where nothing is stored.
    """

    year: int
    month: int
    members: list[BoardMember]
    columns: list[GraphColumn]
    values: list[tuple[float | None, ...]] = field(default_factory=list)
    column_totals: dict[int, float] = field(default_factory=dict)
    day: dt.date | None = None


def _month_start(year: int, month: int) -> dt.date:
    # Only the 1st: the day after 9999-12 is no date, yet the month can hold results.
    try:
        return dt.date(year, month, 1)
    except ValueError:
        raise Invalid("年月が正しくありません。", field="month") from None


def columns_of(account_id: int) -> list[GraphColumn]:
    """Return the account's graph columns in display order."""
    return list(db.session.scalars(
        select(GraphColumn).where(GraphColumn.account_id == account_id).order_by(GraphColumn.position, GraphColumn.id)
    ))


BOARD_FIELDS = (Member.id, Member.no, Member.name, Member.department)


def month_table(account_id: int, year: int, month: int) -> MonthTable:
    """Sum the month's daily results and its monthly file's results per active member and column.

    Results of inactive members and of deleted columns are left out, so the column totals
    are the sums of what the table shows.
    """
    first = _month_start(year, month)
    columns = columns_of(account_id)
    rows = monthgrid.month_grid(account_id, first, [column.id for column in columns], BOARD_FIELDS)
    return _table(year, month, columns, rows)


def day_table(account_id: int, day: dt.date) -> MonthTable:
    """One day's results per active member and column: its daily files and hand-typed results, never the monthly file's."""
    columns = columns_of(account_id)
    rows = monthgrid.day_grid(account_id, day, [column.id for column in columns], BOARD_FIELDS)
    return _table(day.year, day.month, columns, rows, day)


def _table(year: int, month: int, columns: list[GraphColumn], rows: list[tuple], day: dt.date | None = None) -> MonthTable:
    members = [BoardMember(*row[:4]) for row in rows]
    values = [tuple(row[5:]) for row in rows]  # row[4] is the line count, which the board does not show
    column_totals: dict[int, float] = {}
    for column, cells in zip(columns, zip(*values)):
        present = [cell for cell in cells if cell is not None]
        if present:
            column_totals[column.id] = sum(present)
    return MonthTable(year, month, members, columns, values, column_totals, day)


def last_update(account_id: int, first: dt.date, last: dt.date, daily_only: bool = False) -> Import | None:
    """The import that last changed the data of first..last: the succeeded one that finished last.

    A replaced import finished before the one that replaced it, so this is never a replaced one.
    Results typed by hand carry no time and are not counted.
    """
    query = select(Import).where(Import.account_id == account_id, Import.status == Import.SUCCEEDED,
                                 Import.period_date >= first, Import.period_date <= last)
    if daily_only:
        query = query.where(Import.period_kind == "day")
    return db.session.scalars(query.order_by(Import.finished_at.desc(), Import.id.desc()).limit(1)).first()


def days_with_files(account_id: int, first: dt.date, last: dt.date) -> list[dt.date]:
    """The days of first..last that have a succeeded daily file, in order (the board's day links)."""
    return list(db.session.scalars(
        select(Import.period_date).distinct()
        .where(Import.account_id == account_id, Import.status == Import.SUCCEEDED, Import.period_kind == "day",
               Import.period_date >= first, Import.period_date <= last)
        .order_by(Import.period_date)
    ))


def format_number(value: float) -> str:
    """Write a number as the importer reads it: no thousands separators, integers without ".0"."""
    if float(value).is_integer():
        return str(int(value))
    return format(Decimal(repr(float(value))), "f")  # never an exponent, which the importer rejects


def _safe_text(text: str | None) -> str:
    """Neutralise a text cell a spreadsheet would run as a formula, with a leading single quote."""
    if starts_like_formula(text):
        return "'" + text
    return text or ""


def export_csv(account_id: int, period_key: str, encoding: str = "cp932", as_board: bool = False) -> bytes:
    """Write one period's results in the import layout.

    Without `as_board`: the stored rows of that exact period (the day's file, or the monthly file
    alone) and its hand-typed results, line by line. With it (a month only): the month as the
    board shows it, one line per active member with results, each column the board's sum of
    the daily files, the monthly file and the hand-typed results (docs/spec.md section 8).
    """
    if encoding not in EXPORT_ENCODINGS:
        raise Invalid(f"文字コードは {' / '.join(EXPORT_ENCODINGS)} のいずれかにしてください。", field="encoding")
    period = parse_period(period_key)
    if as_board and period.kind != "month":
        raise Invalid(f"--month には年月を指定してください(例 {period.date:%Y%m})。", field="period")
    settings = db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))
    member_key = settings.member_key if settings else "no"
    columns = columns_of(account_id)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([KEY_HEADERS[member_key], *(column.name for column in columns), NOTE_HEADER])
    if as_board:
        _write_board_month(writer, account_id, period, member_key, columns)
    else:
        _write_period_rows(writer, account_id, period, member_key, columns)
    text = buffer.getvalue()
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as error:
        raise Invalid(
            f"Shift_JIS(cp932)で表せない文字「{error.object[error.start:error.end]}」があります。"
            "文字コードに utf-8 を指定してください。", field="encoding"
        ) from None


def describe_export(period_key: str, as_board: bool = False) -> str:
    """Say which results export_csv writes for these arguments (Japanese, then English)."""
    period = parse_period(period_key)
    if as_board:
        return (f"{period.label}をボードの表示どおりに書き出しました(日次ファイル・月次ファイル・手入力の合計、"
                "有効なメンバーごとに1行、備考なし)。月次ファイルとして取り込むと日次の分が二重に数えられます。"
                f" / Exported {period.key} as the board shows it: daily files + monthly file + hand-typed, "
                "one line per active member.")
    if period.kind == "month":
        return (f"{period.label}の月次ファイル({period.name})の行と手入力の実績だけを書き出しました。"
                "日次ファイルの実績は含みません(ボードの表示どおりの月は --month で書き出せます)。"
                f" / Exported the monthly file's rows of {period.key} only, not the daily files; "
                "--month exports the month as the board shows it.")
    return (f"{period.label}の日次ファイル({period.name})の行と手入力の実績を書き出しました。"
            f" / Exported the rows of the daily file {period.name} and the hand-typed results.")


def _member_cell(member_key: str, no: int, employee_id: str | None) -> str:
    return str(no) if member_key == "no" else (employee_id or "")


def _write_period_rows(writer, account_id: int, period: Period, member_key: str, columns: list[GraphColumn]) -> None:
    """The exact period's imported lines and hand-typed results, by member No.

    Within a member: imported lines in file order (import by import), then the hand-typed ones.
    The sort holds a small key per line; the cells are read from the blocks' arrays when written.
    """
    ids = [column.id for column in columns]
    members = {member_id: (no, _member_cell(member_key, no, employee_id)) for member_id, no, employee_id in
               db.session.execute(select(Member.id, Member.no, Member.employee_id)
                                  .where(Member.account_id == account_id))}
    imports = select(Import.id).where(Import.account_id == account_id, Import.period_kind == period.kind,
                                      Import.period_date == period.date)
    # (member No., 0 for an imported line, import id, line, block, index in it)
    # or (member No., 1 for a hand-typed result, its id, 0, its values, its note)
    lines: list[tuple] = []
    for block in db.session.scalars(select(ResultBlock).where(ResultBlock.import_id.in_(imports))):
        unpacked = bulk.unpack(block)
        for index, (line, member_id) in enumerate(zip(unpacked.lines, unpacked.member_ids)):
            lines.append((members[member_id][0], 0, block.import_id, line, unpacked, index))
        db.session.expunge(block)  # its bytes are in `unpacked` now
    for result in db.session.scalars(select(ManualResult).where(
            ManualResult.account_id == account_id, ManualResult.period_kind == period.kind,
            ManualResult.period_date == period.date)):
        values = {int(key): value for key, value in (result.values or {}).items() if value is not None}
        lines.append((members[result.member_id][0], 1, result.id, 0, values, result.note))
    lines.sort(key=lambda entry: entry[:4])
    by_no = {no: cell for no, cell in members.values()}
    for no, source, _first, _second, values, note in lines:
        if source == 0:  # values is the block, note the line's index in it
            values, note = values.values(note), values.notes[note]
        cells = [format_number(values[k]) if k in values else "" for k in ids]
        writer.writerow([by_no[no], *cells, _safe_text(note)])


def _write_board_month(writer, account_id: int, period: Period, member_key: str, columns: list[GraphColumn]) -> None:
    """The month's sums exactly as month_table gives them to the board, for the members with results."""
    rows = monthgrid.month_grid(account_id, period.date, [column.id for column in columns],
                                (Member.no, Member.employee_id))
    for no, employee_id, lines, *sums in rows:
        if lines is None and all(value is None for value in sums):
            continue  # a member the board shows with empty cells: nothing to write
        cells = [format_number(value) if value is not None else "" for value in sums]
        writer.writerow([_member_cell(member_key, no, employee_id), *cells, ""])


def add_manual(account_id: int, member_id: int, period: Period, values: dict[int, float],
               note: str | None = None) -> ManualResult:
    """Store a hand-typed result (imports never replace it)."""
    member = db.session.get(Member, member_id)
    if member is None or member.account_id != account_id:
        raise NotFound("メンバーが見つかりません。")
    known = {column.id for column in columns_of(account_id)}
    unknown = [column_id for column_id in values if column_id not in known]
    if unknown:
        raise Invalid("グラフ列が見つかりません。", field="values")
    stored = {str(column_id): float(value) for column_id, value in values.items() if value is not None}
    if not stored:
        raise Invalid("値を1つ以上入力してください。", field="values")
    result = ManualResult(account_id=account_id, member_id=member_id, period_kind=period.kind,
                          period_date=period.date, values=stored, note=(note or "").strip() or None)
    db.session.add(result)
    month_totals.record_manual(account_id, member_id, period.date, stored)
    db.session.commit()
    return result
