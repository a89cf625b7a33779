"""The stored form of an import's rows: one `result_blocks` row (models_results.ResultBlock) per reader Block.

The runner hands each of the reader's Blocks (layout.BATCH_ROWS rows, app/importer/block.py) to
Inserter.insert, which stores its arrays as they are; `unpack` gives a stored block back as a
Block. So the database does nothing per line: no per-line INSERT, index entry or DELETE, and no
JSON text per line (on the 200,000-row reference file, bench/import_warm.py, those were about
1.3 s of a 3.2 s import on SQLite). One implementation serves both databases; a COPY would gain
nothing on 400 rows of a few binary columns.
"""
from __future__ import annotations

import sys
from array import array
from typing import Any

from sqlalchemy import Connection, insert

from ..importer.block import NUMBERS, Block
from ..importer.layout import Row
from ..models import Import
from ..models_results import ResultBlock

# Error records per insert (the runner's insert of a failed import's errors).
BATCH_SIZE = 4000

INTEGERS = "q"  # 8-byte integers, for lines and member ids
# Stored little-endian whatever the machine, so a database file can move between machines.
_SWAP = sys.byteorder == "big"


class Unstorable(Exception):
    """A row holds a value that is not a finite number, so it cannot be stored."""

    def __init__(self, row: Row):
        self.row = row


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


def pack(block: Block) -> dict[str, Any]:
    """The result_blocks columns of one Block; raise Unstorable for a row with a value that is not a finite number."""
    if block.refused:
        raise Unstorable(Row(*block.refused[0]))
    notes = block.notes
    return {
        "line_count": len(block.lines),
        "column_ids": list(block.column_ids),
        "lines": _to_bytes(array(INTEGERS, block.lines)),
        "member_ids": _to_bytes(array(INTEGERS, block.member_ids)),
        "numbers": _to_bytes(block.numbers),
        "notes": list(notes) if any(note is not None for note in notes) else None,
    }


def unpack(stored: Any) -> Block:
    """A stored block (a ResultBlock, or a row with its columns) as the Block it was, its arrays read back."""
    block = Block(stored.column_ids)
    block.lines = _from_bytes(INTEGERS, stored.lines)
    block.member_ids = _from_bytes(INTEGERS, stored.member_ids)
    block.numbers = _from_bytes(NUMBERS, stored.numbers)
    block.notes = list(stored.notes) if stored.notes else [None] * len(block.lines)
    return block


class Inserter:
    """Insert the rows of one import, one result_blocks row per Block, in the session's transaction."""

    def __init__(self, connection: Connection, imp: Import):
        self._connection = connection
        self._key = {"import_id": imp.id, "account_id": imp.account_id}
        self._blocks = 0

    def insert(self, block: Block) -> None:
        """Store one Block; raise Unstorable (before writing anything of it) for a value that cannot be stored."""
        if not block:
            return
        row = pack(block)
        self._connection.execute(insert(ResultBlock.__table__), [{**self._key, "block": self._blocks, **row}])
        self._blocks += 1
