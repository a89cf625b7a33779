"""A batch of valid rows held column-wise, as the readers hand them out and app/db/bulk.py stores them.

A row's numbers go into one array of floats (row after row, in the order of `column_ids`, NaN
for an empty cell) instead of a dict per row: the readers append a plain row's floats at C
speed, and storing and summing a block reads the arrays, with no object per row or cell.
Iterating a Block still gives the (line, member id, values, note) tuples of layout.Row, for the
preview, `rows()` and the tests.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from math import isfinite, nan

NUMBERS = "d"
# (line, member id, values, note): the fields of a layout.Row, as iterating a Block gives them.
RowTuple = tuple[int, int, dict[int, float], "str | None"]


class Block:
    """Valid rows of one file, in file order: lines, member ids, numbers, notes."""

    __slots__ = ("column_ids", "lines", "member_ids", "numbers", "notes", "refused")

    def __init__(self, column_ids: Sequence[int]):
        self.column_ids = list(column_ids)
        self.lines: list[int] = []
        self.member_ids: list[int] = []
        self.numbers = array(NUMBERS)
        self.notes: list[str | None] = []
        # Rows a value of which is not a finite number (the readers never give one; bulk refuses them).
        self.refused: list[RowTuple] = []

    def append_plain(self, line: int, member_id: int, numbers: Sequence[float | int], note: str | None) -> None:
        """Add a row with a finite number in every column, in column order (the reader's plain rows)."""
        self.lines.append(line)
        self.member_ids.append(member_id)
        self.numbers.extend(numbers)
        self.notes.append(note)

    def append(self, line: int, member_id: int, values: dict[int, float], note: str | None) -> None:
        """Add a row given as {column id: number} (its empty cells absent)."""
        if not isfinite(sum(values.values())) and not all(map(isfinite, values.values())):
            self.refused.append((line, member_id, values, note))
            return
        self.lines.append(line)
        self.member_ids.append(member_id)
        self.numbers.extend([values.get(column_id, nan) for column_id in self.column_ids])
        self.notes.append(note)

    def values(self, index: int) -> dict[int, float]:
        """Row `index`'s non-empty cells as {column id: number}, in column order."""
        width = len(self.column_ids)
        row = self.numbers[index * width:(index + 1) * width]
        # NaN marks an empty cell (NaN != NaN); append keeps every other NaN out.
        return {column_id: value for column_id, value in zip(self.column_ids, row) if value == value}

    def __getitem__(self, index: int) -> RowTuple:
        """Row `index` (of the valid rows; negative from the end) as iterating gives it."""
        index = range(len(self.lines))[index]
        return self.lines[index], self.member_ids[index], self.values(index), self.notes[index]

    def __len__(self) -> int:
        return len(self.lines) + len(self.refused)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[RowTuple]:
        for index, (line, member_id, note) in enumerate(zip(self.lines, self.member_ids, self.notes)):
            yield line, member_id, self.values(index), note
        yield from self.refused
