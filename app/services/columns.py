"""Graph columns (グラフ設定): the metrics the board shows and the CSV headers the importer accepts."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from sqlalchemy import select

from ..errors import Invalid, NotFound
from ..extensions import db
from ..importer.cells import formula_message, starts_like_formula
from ..importer.header import key_header_kind, normalize
from ..models import GraphColumn, IntegrationSettings
from .typedlists import typed_parts

# Headers that mean something else in a results CSV, so no graph column may carry them.
RESERVED_NAMES = ("備考", "No.", "社員ID")
MAX_ALIASES = 20
MAX_NAME_LENGTH = 100
# Between aliases typed in one field: comma (NFKC turns ， into ,), 、 and line breaks.
_ALIAS_SEPARATORS = re.compile(r"[\r\n,、]+")


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


def ids_by_alias(account_id: int) -> dict[str, int]:
    """The account's graph column ids by alias (別名), for the importer."""
    rows = db.session.execute(select(GraphColumn.aliases, GraphColumn.id).where(GraphColumn.account_id == account_id))
    return {alias: column_id for aliases, column_id in rows for alias in aliases or []}


def key_aliases(account_id: int) -> list[str]:
    """メンバー識別IDの見出しの別名 of the account (stored on its 外部連携設定)."""
    stored = db.session.scalar(select(IntegrationSettings.key_aliases).where(IntegrationSettings.account_id == account_id))
    return list(stored or [])


def split_aliases(value: str | Iterable[str] | None) -> list[str]:
    """Aliases as typed (「売上金額, 売上高」, one per line, or a list): NFKC-normalised, trimmed, no empties."""
    out: list[str] = []
    for part in typed_parts(value, _ALIAS_SEPARATORS):
        alias = normalize(part)
        if alias and alias not in out:
            out.append(alias)
    return out


def _header_owners(account_id: int, *, except_column: int | None = None,
                   with_key_aliases: bool = True) -> dict[str, str]:
    """Every header the account already gives a meaning to -> what it means (for a message)."""
    owners: dict[str, str] = {}
    for column in list_columns(account_id):
        if column.id == except_column:
            continue
        owners[column.name] = f"グラフ列「{column.name}」の名前"
        for alias in column.aliases or []:
            owners.setdefault(alias, f"グラフ列「{column.name}」の別名")
    if with_key_aliases:
        for alias in key_aliases(account_id):
            owners.setdefault(alias, "メンバー識別IDの見出しの別名(外部連携設定)")
    return owners


def header_problem(text: str, label: str, owners: dict[str, str]) -> str | None:
    """Why `text` (normalised) cannot be a new header meaning of the account, or None.

    The one rule of aliases, of the column's own and of the member key's: not a header that
    already means something (備考, No., 社員ID in any spelling, another column's name or alias).
    """
    if len(text) > MAX_NAME_LENGTH:
        return f"{label}「{text[:20]}…」は{MAX_NAME_LENGTH}文字以内にしてください。"
    if text in RESERVED_NAMES or key_header_kind(text) is not None:
        return f"「{text}」はCSVの特別な列名(備考・No.・社員ID)なので、{label}には使えません。"
    if starts_like_formula(text):
        return f"{formula_message(label)}(「{text}」)。"
    if text in owners:
        return f"「{text}」は既に{owners[text]}です。同じ見出しを2つの意味には使えません。"
    return None


def _clean_aliases(account_id: int, column_id: int | None, name: str, aliases) -> tuple[list[str], list[str]]:
    """Validate a column's aliases: (the aliases to store, the error messages)."""
    wanted = [alias for alias in split_aliases(aliases) if alias != name]  # its own name says nothing new
    owners = _header_owners(account_id, except_column=column_id)
    problems = [problem for alias in wanted if (problem := header_problem(alias, "別名", owners))]
    if len(wanted) > MAX_ALIASES:
        problems.append(f"別名は1つの列に{MAX_ALIASES}個までにしてください。")
    return wanted, problems


def set_aliases(account_id: int, column_id: int, aliases: str | Iterable[str]) -> GraphColumn:
    """Replace a graph column's aliases (別名); an empty list removes them all."""
    column = get_column(account_id, column_id)
    wanted, problems = _clean_aliases(account_id, column.id, column.name, aliases)
    if problems:
        raise Invalid(problems[0], field="aliases", errors={"aliases": problems})
    column.aliases = wanted
    db.session.commit()
    return column


def clean_key_aliases(account_id: int, value: str | Iterable[str] | None) -> tuple[list[str], list[str]]:
    """Validate メンバー識別IDの見出しの別名: (the aliases to store, the error messages)."""
    wanted = split_aliases(value)
    owners = _header_owners(account_id, with_key_aliases=False)
    problems = [problem for alias in wanted if (problem := header_problem(alias, "別名", owners))]
    if len(wanted) > MAX_ALIASES:
        problems.append(f"別名は{MAX_ALIASES}個までにしてください。")
    return wanted, problems


def find_column(account_id: int, name: str) -> GraphColumn:
    """The account's graph column of this name (compared after NFKC, like the headers), or NotFound."""
    wanted = normalize(name or "")
    column = db.session.scalar(select(GraphColumn).where(GraphColumn.account_id == account_id,
                                                         GraphColumn.name == wanted))
    if column is None:
        raise NotFound(f"グラフ列「{wanted}」はありません。")
    return column


def get_column(account_id: int, column_id: int) -> GraphColumn:
    """Return the account's graph column or raise NotFound (never another account's)."""
    column = db.session.get(GraphColumn, column_id)
    if column is None or column.account_id != account_id:
        raise NotFound("グラフ列が見つかりません。")
    return column


def add_column(account_id: int, name: str, unit: str = "", position: int | None = None,
               aliases: str | Iterable[str] | None = None) -> GraphColumn:
    """Add a graph column; without a position it goes last."""
    values = _clean(account_id, None, name, unit, position, aliases)
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
    account_id: int, column_id: int, name: str, unit: str = "", position: int | None = None,
    aliases: str | Iterable[str] | None = None,
) -> GraphColumn:
    """Rename a graph column or change its unit, 表示順 or 別名 (position/aliases None keep the current ones)."""
    column = get_column(account_id, column_id)
    values = _clean(account_id, column.id, name, unit, position, aliases)
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


def _clean(account_id: int, column_id: int | None, name: str | None, unit: str | None, position,
           aliases=None) -> dict:
    """Validate a column's fields; return the values to store or raise Invalid with every field's error.

    aliases None leaves them out of the result (unchanged).
    """
    problems: dict[str, list[str]] = {}
    # Stored as the importer compares headers (header.normalize), so the DB's unique constraint
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
        elif (owner := _header_owners(account_id, except_column=column_id).get(clean_name)) is not None:
            problems["name"] = [f"「{clean_name}」は既に{owner}です。同じ見出しを2つの意味には使えません。"]
    clean_unit = unicodedata.normalize("NFKC", unit or "").strip()
    if len(clean_unit) > 20:
        problems["unit"] = ["単位は20文字以内で入力してください。"]
    number = _parse_position(position)
    if number is False:
        problems["position"] = ["表示順は0以上の整数で入力してください。"]
    values = {"name": clean_name, "unit": clean_unit, "position": number}
    if aliases is not None:
        values["aliases"], alias_problems = _clean_aliases(account_id, column_id, clean_name, aliases)
        if alias_problems:
            problems["aliases"] = alias_problems
    if problems:
        field, messages = next(iter(problems.items()))
        raise Invalid(messages[0], field=field, errors=problems)
    return values


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
