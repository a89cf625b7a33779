"""見本ファイル: a results file with the account's header of today and two example rows (docs/spec.md section 3).

The header is what the importer expects now: the member key named by メンバー識別ID (No. or
社員ID), the graph columns in display order, 備考. The example rows use the keys of the
account's first two active members (by No.) with every value 0, so the file imports as it is
once it is named yyyymmdd.csv. With fewer members the rows are the ones that exist; with none
(or none with a 社員ID when that is the key), one row with a placeholder key whose 備考 says to
replace it (that row would not import as it is).
"""
from __future__ import annotations

import csv
import io

from sqlalchemy import select

from ..errors import Invalid
from ..extensions import db
from ..importer.cells import starts_like_formula
from ..importer.header import KEY_HEADERS, NOTE_HEADER
from ..importer.xlsxwrite import write_xlsx
from ..models import IntegrationSettings, Member
from . import columns

EXAMPLE_ROWS = 2
EXAMPLE_VALUE = 0
EXAMPLE_NOTE = "備考の例(空欄でも可)"
PLACEHOLDER_KEYS: dict[str, str | int] = {"no": 1, "employee_id": "E001"}
PLACEHOLDER_NOTE = "仮の{label}です(有効なメンバーがいないため)。メンバー設定に登録した{label}に置き換えてください"
# format -> (file name, ASCII fallback name, Content-Type)
FORMATS = {
    "csv": ("見本_Shift_JIS.csv", "sample_shift_jis.csv", "text/csv; charset=Shift_JIS"),
    "csv-utf8": ("見本_UTF-8.csv", "sample_utf-8.csv", "text/csv; charset=UTF-8"),
    "xlsx": ("見本.xlsx", "sample.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}


def _settings(account_id: int) -> IntegrationSettings | None:
    return db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))


def member_key(account_id: int) -> str:
    settings = _settings(account_id)
    return (settings.member_key if settings else None) or "no"


def _example_keys(account_id: int, key: str) -> list[str | int]:
    column = Member.no if key == "no" else Member.employee_id
    found = db.session.scalars(
        select(column).where(Member.account_id == account_id, Member.active.is_(True), column.is_not(None))
        .order_by(Member.no).limit(EXAMPLE_ROWS)
    ).all()
    return list(found)


def header(account_id: int) -> list[str]:
    """Today's header of the account's results files, as the sample writes it."""
    return [KEY_HEADERS[member_key(account_id)], *(c.name for c in columns.list_columns(account_id)), NOTE_HEADER]


def rows(account_id: int) -> list[list[str | int | None]]:
    """The sample's records: the header, then the example rows (keys as stored, values 0)."""
    key = member_key(account_id)
    names = [column.name for column in columns.list_columns(account_id)]
    header: list[str | int | None] = [KEY_HEADERS[key], *names, NOTE_HEADER]
    keys = _example_keys(account_id, key)
    if not keys:
        note = PLACEHOLDER_NOTE.format(label=KEY_HEADERS[key])
        return [header, [PLACEHOLDER_KEYS[key], *([EXAMPLE_VALUE] * len(names)), note]]
    body = [[k, *([EXAMPLE_VALUE] * len(names)), EXAMPLE_NOTE if index == 0 else None]
            for index, k in enumerate(keys)]
    return [header, *body]


def _safe(value: str | int | None) -> str:
    """A cell as CSV text; one a spreadsheet would run as a formula gets a leading single quote."""
    text = "" if value is None else str(value)
    return "'" + text if starts_like_formula(text) else text


def csv_bytes(account_id: int, encoding: str) -> bytes:
    """The sample as CSV (CRLF) in cp932 or UTF-8 with a BOM ("utf-8-sig")."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    for index, record in enumerate(rows(account_id)):
        # The header cells are names the importer must read as they are: never quoted with '.
        writer.writerow(["" if v is None else str(v) for v in record] if index == 0 else map(_safe, record))
    text = buffer.getvalue()
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as error:
        raise Invalid(f"「{text[error.start:error.end]}」はShift_JISで書けない文字です。"
                      "UTF-8の見本ファイルを使ってください。") from error


def xlsx_bytes(account_id: int) -> bytes:
    """The sample as a one-sheet .xlsx (No. and values as numbers, 社員ID and 備考 as text).

    The sheet is named like the account's 「読み込むシート」 when one is set, so it is the one read.
    """
    settings = _settings(account_id)
    records = rows(account_id)
    body = [[record[0], *record[1:-1], _safe(record[-1]) or None] for record in records[1:]]
    return write_xlsx([records[0], *body], sheet_name=(settings.sheet_name if settings else "") or "Sheet1")


def build(account_id: int, fmt: str) -> bytes:
    if fmt == "csv":
        return csv_bytes(account_id, "cp932")
    if fmt == "csv-utf8":
        return csv_bytes(account_id, "utf-8-sig")
    if fmt == "xlsx":
        return xlsx_bytes(account_id)
    raise KeyError(fmt)
