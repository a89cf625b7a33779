"""Records already split into typed cells (a workbook's rows), read with the CSV rules; errors name column letters."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from app.errors import ErrorList, RowError
from app.importer.block import Block
from app.importer.header import KEY_HEADERS
from app.importer.layout import BATCH_ROWS, NO_DATA_MESSAGE, CsvReader
from app.importer.values import TOO_LARGE

# A workbook (app/importer/workbook.py) is not text: its reader yields records of typed cells and
# RecordReader applies the same header, member-key and value checks as CsvReader (the header and
# key logic is CsvReader's own; only the loop over rows differs, because a cell may be a number).


@dataclass(frozen=True, slots=True)
class BadCell:
    """A cell that holds neither a number nor text: a date, a boolean or an error cell.

    `kind` says what it is (「日付のセルです」), `text` what the cell shows (its value in errors).
    """

    kind: str
    text: str


# What a cell of a record may be: text, a number as stored (no text round trip), or a BadCell.
Cell = "str | float | BadCell"


def number_text(value: float) -> str:
    """A number cell as text: 12.0 is "12" (a No. or 社員ID typed as a number), 12.5 is "12.5"."""
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def cell_text(cell: object) -> str:
    """Any cell of a record as text (headers, the member key, 備考, errors)."""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, float):
        return number_text(cell)
    if isinstance(cell, BadCell):
        return cell.text
    return str(cell)


def column_letter(index: int) -> str:
    """The spreadsheet name of a 0-based column: 0 is "A", 25 "Z", 26 "AA"."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


class _LetteredErrors(ErrorList):
    """An ErrorList that adds the spreadsheet column letter to each error of a known column."""

    def __init__(self, letters: dict[str, str]):
        super().__init__()
        self.letters = letters

    def append(self, error: RowError) -> None:
        if error.letter is None and error.column is not None and error.column in self.letters:
            error = RowError(message=error.message, line=error.line, column=error.column, value=error.value,
                             letter=self.letters[error.column])
        super().append(error)


class RecordReader(CsvReader):
    """Read records already split into cells, (line, cells): str, float or BadCell; errors name column letters.

    `records` yields every non-blank record in order, cells from column A (index 0) on; the
    first is the header. Lines are the sheet's row numbers.
    """

    def __init__(self, records: Iterator[tuple[int, list]], *, columns: dict[str, int], member_key: str,
                 members: dict[str, int], **header_rules):
        """As CsvReader's, with `records` instead of the text; header_rules: aliases, key_aliases, ignore_unknown."""
        super().__init__("", columns=columns, member_key=member_key, members=members, **header_rules)
        self._records = records

    def batches(self) -> Iterator[Block]:
        """Yield the valid rows in Blocks, as CsvReader.batches does."""
        letters: dict[str, str] = {}
        errors = _LetteredErrors(letters)
        self.errors = errors
        self.header = []
        self.value_column_ids = []
        self.ignored_headers = []
        records = iter(self._records)
        first = next(records, None)
        if first is None:
            errors.append(RowError(message="空のファイルです。" + NO_DATA_MESSAGE))
            return
        line, record = first
        header = [cell_text(cell) for cell in record]
        for index, name in enumerate(header):
            letters[f"{index + 1}列目"] = column_letter(index)
            letters.setdefault(name.strip(), column_letter(index))
        letters.setdefault("", "A")  # an empty column-1 header is named by its place only
        plan = self._read_header(header, line)
        if plan is None:
            return
        value_indexes, column_ids, names, note_index, key_index = plan
        self.value_column_ids = list(column_ids)
        width = len(self.header)
        batch = Block(column_ids)
        count = 0
        for line, record in records:
            if len(batch.lines) >= BATCH_ROWS:
                yield batch
                batch = Block(column_ids)
            count += 1
            if len(record) > width and not self._fit([cell_text(cell) for cell in record], width, line):
                continue
            if len(record) < width:
                record = list(record) + [""] * (width - len(record))
            member_id = self._record_member(record[key_index], line)
            values = self._record_values(record, line, value_indexes, column_ids, names)
            if member_id is None or values is None:
                continue
            note = (cell_text(record[note_index]).strip() or None) if note_index is not None else None
            batch.append(line, member_id, values, note)
        if batch:
            yield batch
        if count == 0:
            errors.append(RowError(message=NO_DATA_MESSAGE))

    def _record_member(self, cell: object, line: int) -> int | None:
        if isinstance(cell, BadCell):
            self.errors.append(RowError(message=f"{cell.kind}。{KEY_HEADERS[self._member_key]}を入力してください",
                                        line=line, column=self.header[self._key_index], value=cell.text))
            return None
        text = number_text(cell) if isinstance(cell, float) else cell
        member_id = self._members.get(text)
        return member_id if member_id is not None else self._member(text, line)

    def _record_values(self, record: list, line: int, value_indexes: list[int], column_ids: list[int],
                       names: list[str]) -> dict[int, float] | None:
        values: dict[int, float] = {}
        ok = True
        for index, column_id, name in zip(value_indexes, column_ids, names):
            cell = record[index]
            if type(cell) is float:
                if cell - cell != 0.0:  # inf or nan
                    self.errors.append(RowError(message=TOO_LARGE, line=line, column=name, value=repr(cell)))
                    ok = False
                else:
                    values[column_id] = cell or 0.0  # -0.0 is 0
                continue
            if isinstance(cell, BadCell):
                self.errors.append(RowError(message=f"{cell.kind}。数値を入力してください", line=line, column=name,
                                            value=cell.text))
                ok = False
                continue
            if cell and not self._text_value(cell, line, column_id, name, values):
                ok = False
        return values if ok else None
