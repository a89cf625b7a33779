"""The board's table: its order (?sort=&order=) and its body as HTML. Pure: no Flask, no database.

Sort keys are "no", "name", "department" or a graph column's id. Python's sort is stable (also
reversed), so rows that tie keep the database's No. order; members without a value in the
sorted column (or without a 部署) come last in both directions.
"""
from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from ..formats import shown_cells

NO_VALUE = "—"  # a member without data in a cell and in the chart: never shown as 0
TEXT_KEYS = ("no", "name", "department")
ASC, DESC = "asc", "desc"


def sort_key(raw: str | None, column_ids: Sequence[int]) -> str:
    """The requested key if the board has it, else "no" (the order the rows come in)."""
    text = (raw or "").strip()
    if text in TEXT_KEYS:
        return text
    # Length first: int() of a very long digit string is slow, and no column id is that long.
    if text.isascii() and text.isdigit() and len(text) <= 18 and int(text) in column_ids:
        return str(int(text))
    return "no"


def default_order(key: str) -> str:
    """A first click on a header: numbers of a graph column from the largest (a ranking), texts and No. from the start."""
    return ASC if key in TEXT_KEYS else DESC


def order_of(raw: str | None, key: str) -> str:
    text = (raw or "").strip()
    return text if text in (ASC, DESC) else default_order(key)


def sorted_rows(members: Sequence, values: Sequence[tuple], column_ids: Sequence[int], key: str,
                order: str) -> tuple[list, list]:
    """members and their value rows in the asked order; members are BoardMember (id, no, name, department)."""
    if key == "no" and order == ASC:
        return list(members), list(values)  # already so
    pairs = list(zip(members, values))
    if key in TEXT_KEYS:
        field = TEXT_KEYS.index(key) + 1

        def pick(pair):
            return pair[0][field]
    else:
        index = list(column_ids).index(int(key))

        def pick(pair):
            return pair[1][index]
    filled = [pair for pair in pairs if pick(pair) not in (None, "")]
    empty = [pair for pair in pairs if pick(pair) in (None, "")]
    filled.sort(key=pick, reverse=order == DESC)
    ordered = filled + empty
    return [pair[0] for pair in ordered], [pair[1] for pair in ordered]


def body_rows(members: Sequence, values: Sequence[tuple]) -> Markup:
    """Return the table's body rows (<tr> of No., 氏名, 部署 and the number cells) as markup.

    Made here, not by a loop in the template: a 5,000-member month is 5,000 rows of 10 cells,
    and the template's yields, look-ups and escapes per cell were most of the page's time.
    Names and departments are escaped (a department once, as many members share it); No. is
    a number and the cells are number texts, which hold nothing to escape.
    """
    departments: dict[str | None, str] = {}
    rows = []
    for member, row in zip(members, values):
        department = departments.get(member.department)
        if department is None:
            department = departments[member.department] = escape(member.department or "")
        rows.append(f'<tr><td class="num">{member.no}</td><td>{escape(member.name)}</td><td>{department}</td>'
                    f'{number_cells(row)}</tr>')
    return Markup("\n".join(rows))


def number_cells(values) -> Markup:
    """Return one row's number cells (<td class="num">…</td> each, "—" for None) as markup.

    The text of a number (digits, ",", ".", "-", "inf", "nan") holds nothing to escape, and
    only None gives "".
    """
    return Markup("".join([f'<td class="num">{text or NO_VALUE}</td>' for text in shown_cells(values)]))
