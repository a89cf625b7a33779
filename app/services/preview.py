"""検証のみ's preview: the first rows of a file as they would be stored, and its totals per column.

Bounded: only PREVIEW_ROWS rows are kept; the totals are running sums over every valid row
(the reader's batches stream, nothing else of the file is held).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from ..extensions import db
from ..models import Member
from . import columns as columns_service

PREVIEW_ROWS = 20


@dataclass
class PreviewColumn:
    name: str
    unit: str


@dataclass
class PreviewRow:
    line: int
    member: str
    values: list[float | None]  # one per Preview.columns, None where the line has no value
    note: str | None


@dataclass
class Preview:
    """What 検証のみ shows of a file's valid rows (the errors are DryRun's)."""

    columns: list[PreviewColumn] = field(default_factory=list)
    rows: list[PreviewRow] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)  # per column, over every valid row
    ignored_headers: list[str] = field(default_factory=list)


class Collector:
    """Fed the reader's batches of (line, member id, values, note); keeps PREVIEW_ROWS rows and the sums."""

    def __init__(self) -> None:
        self._first: list[tuple] = []
        self._sums: dict[int, float] = {}

    def add(self, batch: Iterable[tuple]) -> None:
        sums = self._sums
        for row in batch:
            if len(self._first) < PREVIEW_ROWS:
                self._first.append(row)
            for column_id, value in row[2].items():
                sums[column_id] = sums.get(column_id, 0.0) + value

    def finish(self, account_id: int, column_ids: Iterable[int], ignored_headers: Iterable[str]) -> Preview:
        """The preview, the file's columns in the account's display order (the board's)."""
        present = set(column_ids) | set(self._sums)
        shown = [column for column in columns_service.list_columns(account_id) if column.id in present]
        member_ids = {row[1] for row in self._first}
        names = dict(db.session.execute(
            select(Member.id, Member.name).where(Member.account_id == account_id, Member.id.in_(member_ids))
        ).all()) if member_ids else {}
        rows = [PreviewRow(line=line, member=names.get(member_id, ""),
                           values=[values.get(column.id) for column in shown], note=note)
                for line, member_id, values, note in self._first]
        return Preview(columns=[PreviewColumn(column.name, column.unit or "") for column in shown], rows=rows,
                       totals=[self._sums.get(column.id, 0.0) for column in shown],
                       ignored_headers=list(ignored_headers))
