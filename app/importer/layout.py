"""The CSV reader of a results file (docs/spec.md section 2, "Layout"), read record by record.

The header rules are app/importer/header.py's; the value rules app/importer/values.py's.
"""
from __future__ import annotations

import csv
import io
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter

from app.errors import ErrorList, RowError
from app.importer.block import NUMBERS, Block
from app.importer.header import HeaderRules, normalize
from app.importer.values import SAFE_DIGITS, is_digits, is_plain, parse_value

# The start of the error of a row whose member is not in メンバー設定 (the report mail's advice keys on it).
UNKNOWN_MEMBER = "メンバー設定に存在しない"
NO_DATA_MESSAGE = "データ行がありません。1行目の見出しの下に、メンバーごとの行を入れてください。"
SEMICOLON_SEPARATOR = ("区切り文字がセミコロン(;)です。カンマ(,)かタブで区切ってください"
                       "(Excelでは「CSV(コンマ区切り)」または「テキスト(タブ区切り)」で保存)")
# Records are checked, and valid rows handed out in Blocks (one stored block each, app/db/bulk.py),
# this many at a time. Chosen when each row was a dict: with 4,000 they outlived two young
# collections, landed in the oldest generation and set off full collections of the whole heap
# (measured on the 200,000-row file: 0.42-0.49 s CPU in the cyclic GC per import at 4,000, 0.21 s
# at 1,000, 0.06 s at 500 and at 250). Blocks hold no object per row; larger ones are not measured.
BATCH_ROWS = 500
# Characters of the text physical_lines hands to StringIO at a time (a copy of at most 256 KiB;
# 64 Ki, 256 Ki and 1 Mi characters read the 200,000-row file equally fast).
LINE_CHUNK = 1 << 16


@dataclass(slots=True)
class Row:
    """One valid data record of a results CSV."""

    line: int  # the file's own line number where this record starts (header = line 1)
    member_id: int
    values: dict[int, float]  # graph column id -> value; columns with empty cells are absent
    note: str | None  # 備考 or None


def physical_lines(text: str, start: int = 0) -> Iterator[str]:
    """Yield the text's lines from `start` with their endings, one physical line each (\n, \r\n or a lone \r).

    StringIO splits on exactly those three (str.splitlines would also split on U+2028, \x0c and
    the like) and iterates at C speed, but copies what it is given as 4 bytes a character: it is
    given the text a chunk of LINE_CHUNK characters at a time, each cut after a "\n", so the copy
    stays small (measured on the 200,000-row file: csv over this 0.30 s CPU against 0.38 s for a
    str.find loop in Python). A chunk never ends between the \r and the \n of a \r\n.
    """
    length = len(text)
    while start < length:
        end = text.find("\n", start + LINE_CHUNK)
        end = length if end < 0 else end + 1
        yield from io.StringIO(text[start:end], newline="")
        start = end


def separator(text: str, errors: list[RowError]) -> str | None:
    """The field separator, told from the header line (the first one with more than separators and spaces).

    Tabs and no commas: a tab-separated text (Excel's 「テキスト(タブ区切り)」 and 「Unicode テキスト」).
    Semicolons and neither commas nor tabs: refused into `errors` (None), with the line. Anything
    else is CSV. Quotes, line numbers and every other rule are the same for both separators.
    """
    start, line, length = 0, 1, len(text)
    find = text.find
    while start < length:
        # A line ends at \n, \r\n or a lone \r, as physical_lines counts them.
        end = find("\n", start)
        end = length if end < 0 else end
        carriage = find("\r", start, end)
        if carriage >= 0 and carriage + 1 < end:
            end = carriage
        header = text[start:end]
        if header.replace(",", "").replace(";", "").replace("\ufeff", "").strip():
            if "," in header:
                return ","
            if "\t" in header:
                return "\t"
            if ";" in header:
                errors.append(RowError(message=SEMICOLON_SEPARATOR, line=line))
                return None
            return ","
        start, line = end + 1, line + 1
    return ","


def csv_error(line: int, error: csv.Error, value: str | None = None) -> RowError:
    """Translate the csv module's complaint about the record starting at `line`."""
    if "end of data" in str(error):
        message = "引用符(\")で始まった値が閉じられないままファイルが終わっています。引用符の対応を確認してください。"
    elif "field limit" in str(error):
        message = "値が長すぎます。引用符(\")の対応を確認してください。"
    else:
        message = "CSVの形式が正しくありません。値の中の引用符(\")は \"\" と2つ重ねて書いてください。"
    return RowError(message=message, line=line, value=value)


class CsvReader:
    """Read a decoded results CSV record by record: valid rows out, every problem into `errors`."""

    def __init__(self, text: str, *, columns: dict[str, int], member_key: str, members: dict[str, int],
                 aliases: dict[str, int] | None = None, key_aliases: Iterable[str] = (),
                 ignore_unknown: bool = False):
        """columns: graph column name -> column id; member_key: "no" | "employee_id";
        members: member key text (No. as str(int) e.g. "12", or 社員ID exact text) -> member id (active members only);
        aliases: other header names of the graph columns (別名) -> column id; key_aliases: other headers
        of the member-key column; ignore_unknown: skip a column whose header names nothing (見出しにない列:
        無視する) instead of refusing the file; the skipped headers end up in self.ignored_headers."""
        self._rules = HeaderRules(columns=columns, member_key=member_key, aliases=aliases,
                                  key_aliases=key_aliases, ignore_unknown=ignore_unknown)
        self._text = text
        self._member_key = member_key
        self._members = members
        self._key_index = 0
        self.errors: ErrorList = ErrorList()
        self.header: list[str] = []
        self.value_column_ids: list[int] = []
        self.ignored_headers: list[str] = []

    def rows(self) -> Iterator[Row]:
        """Yield valid rows only; once exhausted, self.errors holds the file's errors (capped, all counted)."""
        for batch in self.batches():
            for line, member_id, values, note in batch:
                yield Row(line, member_id, values, note)

    def batches(self) -> Iterator[Block]:
        """Yield the valid rows in Blocks of BATCH_ROWS rows (iterating one gives Row's fields as tuples).

        Once exhausted, self.errors holds the file's first MAX_ERRORS_PER_FILE errors and counts
        every one (ErrorList.total). The csv module reads every record; a row of plain number
        cells is converted at once, any other goes through parse_value cell by cell.
        """
        errors = ErrorList()
        self.errors = errors
        self.header = []
        self.value_column_ids = []
        self.ignored_headers = []
        delimiter = separator(self._text, errors)
        if delimiter is None:
            return
        reader = csv.reader(physical_lines(self._text), strict=True, delimiter=delimiter)
        last = 0  # the physical line where the previous record ended
        self._count = 0  # data records, valid or not
        syntax_error = False
        records: list[list[str]] = []  # read but not yet checked, with the lines where each ends
        ends: list[int] = []
        try:
            for record in reader:
                line = last + 1
                last = reader.line_num
                if any(cell.strip() for cell in record):
                    break
            else:
                errors.append(RowError(message="空のファイルです。" + NO_DATA_MESSAGE))
                return
            plan = self._read_header(record, line)
            if plan is None:
                return  # header errors stop the file: rows cannot be understood without it
            self.value_column_ids = list(plan[1])
            self._batch_rules = _BatchRules(*plan, width=len(self.header), member_of=self._members.get)
            for record in reader:
                records.append(record)
                ends.append(reader.line_num)
                if len(records) >= BATCH_ROWS:
                    batch = self._batch(records, ends, last)
                    last, records, ends = ends[-1], [], []
                    if batch:
                        yield batch
        except csv.Error as error:
            syntax_error = True
            # The records before it are still checked (their errors are listed; the file is refused).
            batch = self._batch(records, ends, last)
            if batch:
                yield batch
            errors.append(csv_error((ends[-1] if ends else last) + 1, error))
            records = []
        if records:
            batch = self._batch(records, ends, last)
            if batch:
                yield batch
        if self._count == 0 and not syntax_error:
            errors.append(RowError(message=NO_DATA_MESSAGE))

    def _batch(self, records: list[list[str]], ends: list[int], last: int) -> Block:
        """The valid rows of consecutive records (ending at lines `ends`, the one before them at `last`)."""
        if not records:
            return Block(())
        rules = self._batch_rules
        block = Block(rules.column_ids)
        if ends[-1] - last == len(records):  # one line each: the lines are known without a loop
            plain = _plain_batch(records, rules)
            if plain is not None:
                block.lines = list(range(last + 1, ends[-1] + 1))
                block.member_ids, block.numbers, block.notes = plain
                self._count += len(records)
                return block
        starts = [last + 1, *(end + 1 for end in ends[:-1])]
        for record, line in zip(records, starts):
            self._row(record, line, rules, block)
        return block

    def _row(self, record: list[str], line: int, rules: _BatchRules, block: Block) -> None:
        """Check one record; add it to `block` if valid, record its errors if not."""
        if not any(record):
            return  # blank line, or Excel's ",,,"
        self._count += 1
        if len(record) != rules.width and not self._fit(record, rules.width, line):
            self._check_cells(record, line, rules.value_indexes, rules.names)  # report its other errors too
            return
        member_id = rules.member_of(record[rules.key_index])
        if member_id is None:
            if not any(cell.strip() for cell in record):
                self._count -= 1
                return  # only spaces: as blank as an empty line
            member_id = self._member(record[rules.key_index], line)
        cells = rules.get_values(record)
        plain = values = None
        joined = "".join(cells)
        if len(joined) <= SAFE_DIGITS and is_plain(joined):  # at most 308 digits: always finite
            try:
                plain = tuple(map(int, cells))  # as _plain_batch reads them: the same floats, exactly
            except ValueError:
                pass  # an empty cell or a misplaced "-": parse_value says what is wrong
        if plain is None:
            values = self._values(cells, line, rules.column_ids, rules.names)
            if values is None:
                return
        if member_id is None:
            return
        note_index = rules.note_index
        note = (record[note_index].strip() or None) if note_index is not None else None
        if plain is not None:
            block.append_plain(line, member_id, plain, note)
        else:
            block.append(line, member_id, values, note)

    def _read_header(self, record: list[str], line: int) -> tuple[list[int], list[int], list[str], int | None, int] | None:
        """Check the header (header.HeaderRules); return (value cell indexes, column ids, header names,
        note index, key index), or None with the header's errors recorded."""
        plan = self._rules.read(record, line)
        self.header, self.ignored_headers = plan.header, plan.ignored
        if plan.errors:
            self.errors.extend(plan.errors)
            return None
        self._key_index = plan.key_index
        return plan.indexes, plan.column_ids, plan.names, plan.note_index, plan.key_index

    def _fit(self, record: list[str], width: int, line: int) -> bool:
        """Pad a short record, or accept a long one whose extra cells are empty; False if not."""
        if len(record) < width:
            record.extend([""] * (width - len(record)))
            return True
        for index in range(width, len(record)):
            if record[index].strip():
                self.errors.append(RowError(
                    message=f"見出しのない列に値があります(見出しは{width}列目までです)",
                    line=line, column=f"{index + 1}列目", value=record[index]))
                return False
        return True  # Excel's trailing ",,,": the extra cells are simply never read

    def _check_cells(self, record: list[str], line: int, value_indexes: list[int], names: list[str]) -> None:
        """Report the member and value errors of a row that is already rejected."""
        self._member(record[self._key_index], line)
        self._values([record[index] for index in value_indexes], line, [0] * len(names), names)

    def _member(self, cell: str, line: int) -> int | None:
        """Return the member id for a key cell, or record why there is none."""
        column = self.header[self._key_index]
        if self._member_key == "no":
            text = normalize(cell)
            if not text:
                message = "No.が空です"
            elif not is_digits(text) or not text.strip("0"):
                message = "No.は1以上の整数で入力してください"
            else:
                # "007" is No. 7; no int() here: a cell of 4,301+ digits would make it raise.
                member_id = self._members.get(text.lstrip("0"))
                if member_id is not None:
                    return member_id
                message = f"{UNKNOWN_MEMBER}No.です(無効なメンバーを含む)"
        else:
            # 社員ID is compared exactly: leading zeros and letter case matter.
            text = cell.strip()
            if not text:
                message = "社員IDが空です"
            else:
                member_id = self._members.get(text)
                if member_id is not None:
                    return member_id
                message = f"{UNKNOWN_MEMBER}社員IDです(無効なメンバーを含む)"
        self.errors.append(RowError(message=message, line=line, column=column, value=cell))
        return None

    def _values(self, cells: tuple[str, ...] | list[str], line: int, column_ids: list[int],
                names: list[str]) -> dict[int, float] | None:
        """Parse value cells one by one; None (with errors recorded) if any is not a number."""
        values: dict[int, float] = {}
        ok = True
        for cell, column_id, name in zip(cells, column_ids, names):
            if cell and not self._text_value(cell, line, column_id, name, values):
                ok = False
        return values if ok else None

    def _text_value(self, cell: str, line: int, column_id: int, name: str, values: dict[int, float]) -> bool:
        """Put the number of a text cell into values (nothing for a blank one); False, the error recorded, if none."""
        try:
            value = parse_value(cell)
        except ValueError as error:
            self.errors.append(RowError(message=str(error), line=line, column=name, value=cell))
            return False
        if value is not None:
            values[column_id] = value
        return True


def _getter(indexes: list[int]) -> Callable[[list[str]], tuple[str, ...]]:
    """Return a C-speed function picking the value cells of a record as a tuple."""
    if len(indexes) == 1:
        index = indexes[0]
        return lambda record: (record[index],)
    return itemgetter(*indexes)


_NO_NOTE = {"": None}


@dataclass
class _BatchRules:
    """Where a file's cells are (from its header), as the checks of its records need them."""

    value_indexes: list[int]
    column_ids: list[int]
    names: list[str]
    note_index: int | None
    key_index: int
    width: int
    member_of: Callable[[str], int | None]
    get_values: Callable[[list[str]], tuple[str, ...]] = field(init=False)

    def __post_init__(self) -> None:
        self.get_values = _getter(self.value_indexes)


def _plain_batch(records: list[list[str]], rules: _BatchRules) -> tuple[list[int], array, list[str | None]] | None:
    """(member ids, numbers, notes) of records that are all plainly valid, checked at C speed; else None.

    Plainly valid: the header's width, a member found as written, and value cells that float()
    reads exactly as parse_value does (values.is_plain over all of them at once, each of at most
    SAFE_DIGITS characters, so always finite), read as int() reads them. Any other batch goes record by record, which says
    what is wrong where. On the 200,000-row reference file this is about half the reader's time.
    """
    if any(map(rules.width.__ne__, map(len, records))):
        return None
    member_ids = list(map(rules.member_of, map(itemgetter(rules.key_index), records)))
    if None in member_ids:
        return None
    cells = list(chain.from_iterable(map(rules.get_values, records)))
    if max(map(len, cells)) > SAFE_DIGITS or not is_plain("".join(cells)):
        return None
    try:
        # int() of a digit run is exact and a third faster than float(), and an int's float is
        # correctly rounded, as float() of the text is: the same numbers.
        numbers = array(NUMBERS, map(int, cells))
    except ValueError:
        return None  # an empty cell or a misplaced "-"
    if rules.note_index is None:
        return member_ids, numbers, [None] * len(records)
    notes = list(map(str.strip, map(itemgetter(rules.note_index), records)))
    return member_ids, numbers, list(map(_NO_NOTE.get, notes, notes))  # "" -> None, any other note itself


def parse_all(text: str, *, columns: dict[str, int], member_key: str,
              members: dict[str, int], **header_rules) -> tuple[list[Row], list[RowError]]:
    """Read a whole file at once (tests, dry runs): (valid rows, the errors as an ErrorList).

    header_rules: CsvReader's aliases, key_aliases and ignore_unknown."""
    reader = CsvReader(text, columns=columns, member_key=member_key, members=members, **header_rules)
    rows = list(reader.rows())
    return rows, reader.errors
