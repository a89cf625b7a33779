"""Graph columns (グラフ設定): the metrics the board shows and the CSV headers the importer accepts."""
from __future__ import annotations

import unicodedata

from sqlalchemy import select

from ..errors import Invalid, NotFound
from ..extensions import db
from ..importer.cells import formula_message, starts_like_formula
from ..importer.layout import key_header_kind, normalize
from ..models import GraphColumn

# Headers that mean something else in a results CSV, so no graph column may carry them.
RESERVED_NAMES = ("備考", "No.", "社員ID")


def list_columns(account_id: int) -> list[GraphColumn]:
    """Return the account's graph columns in display order (position, then creation)."""
    return list(
        db.session.scalars(
            db.select(GraphColumn)
            .where(GraphColumn.account_id == account_id)
            .order_by(GraphColumn.position, GraphColumn.id)
        )
    )


def ids_by_name(account_id: int) -> dict[str, int]:
    """The account's graph column ids by name."""
    rows = db.session.execute(select(GraphColumn.name, GraphColumn.id).where(GraphColumn.account_id == account_id))
    return {name: column_id for name, column_id in rows}


def get_column(account_id: int, column_id: int) -> GraphColumn:
    """Return the account's graph column or raise NotFound (never another account's)."""
    column = db.session.get(GraphColumn, column_id)
    if column is None or column.account_id != account_id:
        raise NotFound("グラフ列が見つかりません。")
    return column


def add_column(account_id: int, name: str, unit: str = "", position: int | None = None) -> GraphColumn:
    """Add a graph column; without a position it goes last."""
    values = _clean(account_id, None, name, unit, position)
    if values["position"] is None:
        last = db.session.scalar(
            db.select(db.func.max(GraphColumn.position)).where(GraphColumn.account_id == account_id)
        )
        values["position"] = (last or 0) + 1
    column = GraphColumn(account_id=account_id, **values)
    db.session.add(column)
    db.session.commit()
    return column


def update_column(
    account_id: int, column_id: int, name: str, unit: str = "", position: int | None = None
) -> GraphColumn:
    """Rename a graph column or change its unit or 表示順 (position None keeps the current one)."""
    column = get_column(account_id, column_id)
    values = _clean(account_id, column.id, name, unit, position)
    if values["position"] is None:
        values["position"] = column.position
    for key, value in values.items():
        setattr(column, key, value)
    db.session.commit()
    return column


def reorder_columns(account_id: int, positions: dict) -> None:
    """Set the 表示順 of several columns at once: {column id: position}; all or nothing."""
    own = {column.id: column for column in list_columns(account_id)}
    changes: dict[int, int] = {}
    for raw_id, raw_position in positions.items():
        try:
            column_id = int(raw_id)
        except (TypeError, ValueError):
            column_id = None
        column = own.get(column_id)
        if column is None:
            raise NotFound("グラフ列が見つかりません。画面を読み込み直してください。")
        position = _parse_position(raw_position)
        if position is None or position is False:
            raise Invalid(f"「{column.name}」の表示順は0以上の整数で入力してください。", field="position")
        changes[column.id] = position
    for column_id, position in changes.items():
        own[column_id].position = position
    db.session.commit()


def delete_column(account_id: int, column_id: int) -> None:
    """Delete a graph column.

    Stored results keep their value under the old column id, but nothing shows it any
    more, and a new column of the same name gets a new id, so old values never come back.
    """
    column = get_column(account_id, column_id)
    db.session.delete(column)
    db.session.commit()


def _clean(account_id: int, column_id: int | None, name: str | None, unit: str | None, position) -> dict:
    """Validate a column's fields; return the values to store or raise Invalid with every field's error."""
    problems: dict[str, list[str]] = {}
    # Stored as the importer compares headers (layout.normalize), so the DB's unique constraint
    # and the importer's header match agree.
    clean_name = normalize(name or "")
    if not clean_name:
        problems["name"] = ["名前を入力してください。"]
    elif len(clean_name) > 100:
        problems["name"] = ["名前は100文字以内で入力してください。"]
    # key_header_kind also catches the spellings the importer reads as a key ("NO", "№", "社員ＩＤ").
    elif clean_name in RESERVED_NAMES or key_header_kind(clean_name) is not None:
        problems["name"] = [f"「{clean_name}」はCSVの特別な列名なので、グラフ列の名前には使えません。"]
    elif starts_like_formula(clean_name):
        problems["name"] = [f"{formula_message('グラフ列の名前')}。"]
    else:
        query = db.select(GraphColumn.id).where(GraphColumn.account_id == account_id, GraphColumn.name == clean_name)
        if column_id is not None:
            query = query.where(GraphColumn.id != column_id)
        if db.session.scalar(query.limit(1)) is not None:
            problems["name"] = [f"「{clean_name}」という列は既にあります。"]
    clean_unit = unicodedata.normalize("NFKC", unit or "").strip()
    if len(clean_unit) > 20:
        problems["unit"] = ["単位は20文字以内で入力してください。"]
    number = _parse_position(position)
    if number is False:
        problems["position"] = ["表示順は0以上の整数で入力してください。"]
    if problems:
        field, messages = next(iter(problems.items()))
        raise Invalid(messages[0], field=field, errors=problems)
    return {"name": clean_name, "unit": clean_unit, "position": number}


def _parse_position(value) -> int | None | bool:
    """Read 表示順: None when empty, False when not a non-negative integer."""
    if value is None:
        return None
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value if 0 <= value < 2**31 else False
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**31:
        return False
    return int(text)
