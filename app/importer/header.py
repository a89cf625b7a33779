"""The header rules of a results file (docs/spec.md section 2, "Layout"): which column is which.

CsvReader (layout.py) and RecordReader (records.py) hand the header record to HeaderRules.read
and read the rows by the HeaderPlan it gives back.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter

from app.errors import RowError

NOTE_HEADER = "備考"
MEMBER_KEYS = ("no", "employee_id")
KEY_HEADERS = {"no": "No.", "employee_id": "社員ID"}
KEY_SETTINGS = {"no": "メンバー設定のNo.", "employee_id": "メンバー設定の社員ID"}
UNKNOWN_ADVICE = ("別の名前のグラフ列の値なら、グラフ設定でその列に別名を登録してください。"
                  "使わない列なら、外部連携設定の「見出しにない列」を「無視する」にできます。")


def normalize(text: str) -> str:
    """Return text as headers are compared: Unicode NFKC, then trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


def key_header_kind(text: str) -> str | None:
    """Return "no" or "employee_id" when a header names a member key, else None."""
    # casefold and dropped spaces/dots accept "No", "NO.", "No．", "Ｎｏ．", "№", "No ." alike.
    folded = normalize(text.lstrip("\ufeff")).casefold().replace(" ", "")
    if folded.rstrip(".") == "no":
        return "no"
    if folded == "社員id":
        return "employee_id"
    return None


def trim_trailing(cells: list[str]) -> list[str]:
    """Drop Excel's trailing empty cells."""
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


@dataclass
class HeaderPlan:
    """What a header record says: the headers, those skipped, and either errors or where each cell is."""

    header: list[str]
    ignored: list[str]  # headers that name nothing, skipped (見出しにない列: 無視する)
    errors: list[RowError]  # the header's errors, in column order; none when the plan below holds
    indexes: list[int] = field(default_factory=list)  # the value cells' indexes
    column_ids: list[int] = field(default_factory=list)  # their graph column ids
    names: list[str] = field(default_factory=list)  # their headers as written
    note_index: int | None = None
    key_index: int = 0


class HeaderRules:
    """An account's header rules: its graph columns and their aliases, its member key and key aliases."""

    def __init__(self, *, columns: dict[str, int], member_key: str, aliases: dict[str, int] | None = None,
                 key_aliases: Iterable[str] = (), ignore_unknown: bool = False):
        """As CsvReader's arguments of the same names."""
        if member_key not in MEMBER_KEYS:
            raise ValueError(f"member_key must be one of {MEMBER_KEYS}, not {member_key!r}")
        self._member_key = member_key
        self._columns = {normalize(name): column_id for name, column_id in columns.items()}
        # A name wins over another column's alias (the settings never let both exist; a race might).
        self._aliases = {key: column_id for alias, column_id in (aliases or {}).items()
                         if (key := normalize(alias)) and key not in self._columns}
        self._key_aliases = frozenset(key for alias in key_aliases if (key := normalize(alias)))
        self._ignore_unknown = ignore_unknown
        self._valid_names = _valid_names(columns, aliases or {}, member_key, key_aliases)

    def read(self, record: list[str], line: int) -> HeaderPlan:
        """Place every header of the header record at `line`; the plan says where the cells are, or why not.

        Every header is placed by its name, in any order: the member key (No. / 社員ID per the
        setting, or a key alias), a graph column (its name or an alias), 備考. A header naming
        nothing is an error, or skipped (HeaderPlan.ignored) when the account ignores them.
        """
        header = [cell.strip() for cell in trim_trailing(record)]
        header[0] = header[0].lstrip("\ufeff")  # a second BOM left by a careless converter
        ignored: list[str] = []
        errors: list[tuple[int, RowError]] = []  # (column index, error): reported in column order
        key_errors = 0
        key_index: int | None = None
        other_keys: list[int] = []  # headers naming the member key the account does not use
        indexes: list[int] = []
        column_ids: list[int] = []
        names: list[str] = []
        note_index: int | None = None
        seen: dict[str, int] = {}  # normalized header -> its index
        column_at: dict[int, int] = {}  # graph column id -> the index of its header
        valid = f"使える見出し: {self._valid_names}"
        for index, name in enumerate(header):
            where = f"{index + 1}列目"
            normalized = normalize(name)
            if not normalized:
                errors.append((index, RowError(message=f"{where}の見出しが空です。{valid}", line=line, column=where)))
                continue
            if normalized in seen:
                errors.append((index, RowError(
                    message=f"見出し「{name}」が{seen[normalized] + 1}列目と{where}で重複しています。{valid}",
                    line=line, column=name)))
                continue
            seen[normalized] = index
            kind = key_header_kind(name)
            # A graph column that happens to be named 備考 wins over the note.
            column_id = self._columns.get(normalized)
            if column_id is None:
                column_id = self._aliases.get(normalized)
            if kind == self._member_key or (kind is None and normalized in self._key_aliases):
                if key_index is not None:
                    key_errors += 1
                    errors.append((index, RowError(
                        message=(f"メンバー識別IDの列が{key_index + 1}列目「{header[key_index]}」と{where}「{name}」の"
                                 "2つあります。どちらか1つにしてください。"),
                        line=line, column=name)))
                    continue
                key_index = index
            elif column_id is not None:
                if column_id in column_at:
                    first = column_at[column_id]
                    errors.append((index, RowError(
                        message=(f"「{name}」と{first + 1}列目の「{header[first]}」は同じグラフ列"
                                 f"「{self._column_name(column_id)}」の見出しです(グラフ設定の別名)。"
                                 "どちらか1つにしてください。"),
                        line=line, column=name)))
                    continue
                column_at[column_id] = index
                indexes.append(index)
                column_ids.append(column_id)
                names.append(name)
            elif normalized == NOTE_HEADER:
                note_index = index
            elif kind is not None:
                other_keys.append(index)
            elif self._ignore_unknown:
                ignored.append(name)
            else:
                errors.append((index, RowError(
                    message=f"「{name}」はグラフ列にない見出しです。{UNKNOWN_ADVICE}{valid}", line=line, column=name)))
        for index in other_keys:
            name = header[index]
            if key_index is None:
                key_errors += 1
                errors.append((index, RowError(message=self._other_key_message(name), line=line, column=name)))
            elif self._ignore_unknown:
                ignored.append(name)
            else:
                errors.append((index, RowError(
                    message=(f"「{name}」の列は使いません(メンバーは{key_index + 1}列目「{header[key_index]}」で"
                             f"照合します。外部連携設定のメンバー識別ID: {KEY_SETTINGS[self._member_key]})。"
                             f"{UNKNOWN_ADVICE}"),
                    line=line, column=name)))
        if key_index is None and not other_keys:
            key_errors += 1
            errors.append((-1, RowError(message=self._missing_key_message(), line=line)))
        if not indexes and len(errors) == key_errors:
            skipped = f"(無視した見出し: {'、'.join(ignored)})" if ignored else ""
            errors.append((len(header), RowError(message=f"グラフ列の見出しが1つもありません{skipped}。{valid}",
                                                 line=line)))
        if errors:
            errors.sort(key=itemgetter(0))  # stable: the missing key first, then column by column
            return HeaderPlan(header, ignored, [error for _, error in errors])
        assert key_index is not None
        return HeaderPlan(header, ignored, [], indexes, column_ids, names, note_index, key_index)

    def _column_name(self, column_id: int) -> str:
        """The graph column's own name (for a message)."""
        return next((name for name, known in self._columns.items() if known == column_id), "")

    def _other_key_message(self, name: str) -> str:
        """The header names the member key the account does not use, and the right one is missing."""
        expected = self._member_key
        return (f"見出しが「{KEY_HEADERS[key_header_kind(name)]}」の列がありますが、外部連携設定のメンバー識別IDは"
                f"「{KEY_SETTINGS[expected]}」です。その列の見出しを「{KEY_HEADERS[expected]}」にするか、"
                f"メンバー識別IDの設定を変更してください。")

    def _missing_key_message(self) -> str:
        """No header names the member key: say which one is expected (and its aliases)."""
        expected = self._member_key
        aliases = "」「".join(sorted(self._key_aliases))
        also = f"(または別名「{aliases}」)" if aliases else ""
        return (f"メンバー識別IDの列がありません。見出しが「{KEY_HEADERS[expected]}」{also}の列を入れてください"
                f"(外部連携設定のメンバー識別ID: {KEY_SETTINGS[expected]}。どの列でもかまいません)。")


def _valid_names(columns: dict[str, int], aliases: dict[str, int], member_key: str,
                 key_aliases: Iterable[str]) -> str:
    """The headers a file may carry, for the messages: the key, each column (with its aliases), 備考."""
    alias_names: dict[int, list[str]] = {}
    for alias, column_id in aliases.items():
        alias_names.setdefault(column_id, []).append(alias)
    def shown(name: str, others: list[str]) -> str:
        return f"{name}(別名 {'・'.join(others)})" if others else name
    key = shown(KEY_HEADERS[member_key], list(key_aliases))
    return "、".join([key, *(shown(name, alias_names.get(column_id, [])) for name, column_id in columns.items()),
                      NOTE_HEADER])
