"""The stored form of an import's rows: blocks of consecutive lines, packed column-wise.

The runner hands each of the reader's batches (layout.BATCH_ROWS rows) to Inserter.insert,
which packs it into one `result_blocks` row (models.ResultBlock); Unpacked gives a block's lines
back. A block is one row of a few binary columns, so the database does nothing per line: no
per-line INSERT, index entry or DELETE, and no JSON text per line (measured on the 200,000-row
reference file, bench/import_warm.py: those were 1.2-1.4 s of a 3.5 s import on SQLite). One
implementation serves both databases; a COPY would gain nothing on 400 rows.
"""
from __future__ import annotations

import sys
from array import array
from collections.abc import Iterator, Sequence
from math import isfinite, nan
from typing import Any, NamedTuple

from sqlalchemy import Connection, insert

from ..importer.layout import Row, RowTuple
from ..models import Import, ResultBlock

# Error records per insert (the runner's insert of a failed import's errors).
BATCH_SIZE = 4000

INTEGERS, NUMBERS = "q", "d"  # 8-byte integers and floats
# Stored little-endian whatever the machine, so a database file can move between machines.
_SWAP = sys.byteorder == "big"


class Unstorable(Exception):
    """A row holds a value that is not a finite number, so it cannot be stored."""

    def __init__(self, row: Row):
        self.row = row


class StoredLine(NamedTuple):
    """One stored line as the reader gave it: values {column id: number} hold the non-empty cells."""

    line: int
    member_id: int
    values: dict[int, float]
    note: str | None


def _to_bytes(values: array) -> bytes:
    if _SWAP:
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _from_bytes(typecode: str, data: bytes) -> array:
    values = array(typecode)
    values.frombytes(data)
    if _SWAP:
        values.byteswap()
    return values


def pack(batch: Sequence[RowTuple], column_ids: Sequence[int]) -> dict[str, Any]:
    """The block columns of one batch of (line, member id, values, note); raise Unstorable for a non-finite value."""
    every_value = map(dict.values, (row[2] for row in batch))
    # A finite sum means finite values; otherwise (inf, nan, or an overflow of the sum) look row by row.
    if not isfinite(sum(map(sum, every_value))):
        bad = [row for row in batch if not all(map(isfinite, row[2].values()))]
        if bad:
            raise Unstorable(Row(*bad[0]))
    width, column_ids = len(column_ids), list(column_ids)
    numbers = array(NUMBERS)
    for _line, _member_id, values, _note in batch:
        if len(values) == width:
            # A line with every column (most lines): the reader's dict is in header order.
            numbers.extend(values.values())
        else:
            numbers.extend([values.get(column_id, nan) for column_id in column_ids])
    notes = [row[3] for row in batch]
    return {
        "line_count": len(batch),
        "column_ids": column_ids,
        "lines": _to_bytes(array(INTEGERS, [row[0] for row in batch])),
        "member_ids": _to_bytes(array(INTEGERS, [row[1] for row in batch])),
        "numbers": _to_bytes(numbers),
        "notes": notes if any(note is not None for note in notes) else None,
    }


class Unpacked:
    """A block's arrays, read back: `values(index)` gives one line's non-empty cells."""

    def __init__(self, block: Any):
        """block: a ResultBlock, or a row with its columns."""
        self.lines = _from_bytes(INTEGERS, block.lines)
        self.member_ids = _from_bytes(INTEGERS, block.member_ids)
        self.numbers = _from_bytes(NUMBERS, block.numbers)
        self.column_ids = list(block.column_ids)
        self.notes = block.notes or [None] * len(self.lines)

    def values(self, index: int) -> dict[int, float]:
        width = len(self.column_ids)
        row = self.numbers[index * width:(index + 1) * width]
        # NaN marks an empty cell (NaN != NaN); stored values are finite.
        return {column_id: value for column_id, value in zip(self.column_ids, row) if value == value}

    def __iter__(self) -> Iterator[StoredLine]:
        for index, (line, member_id, note) in enumerate(zip(self.lines, self.member_ids, self.notes)):
            yield StoredLine(line, member_id, self.values(index), note)


class Inserter:
    """Insert the rows of one import, one block per reader batch, in the session's transaction."""

    def __init__(self, connection: Connection, imp: Import):
        self._connection = connection
        self._key = {"import_id": imp.id, "account_id": imp.account_id}
        self._blocks = 0

    def insert(self, batch: Sequence[RowTuple], column_ids: Sequence[int]) -> None:
        """Store one batch; raise Unstorable (before writing anything of it) for a value that cannot be stored."""
        if not batch:
            return
        block = pack(batch, column_ids)
        self._connection.execute(insert(ResultBlock.__table__), [{**self._key, "block": self._blocks, **block}])
        self._blocks += 1
