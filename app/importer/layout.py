"""Header rules of a results file and the CSV reader (docs/spec.md section 2, "Layout"), read record by record."""
from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter

from app.errors import ErrorList, RowError
from app.importer.values import SAFE_DIGITS, is_digits, is_plain, parse_value

NOTE_HEADER = "備考"
MEMBER_KEYS = ("no", "employee_id")
KEY_HEADERS = {"no": "No.", "employee_id": "社員ID"}
KEY_SETTINGS = {"no": "メンバー設定のNo.", "employee_id": "メンバー設定の社員ID"}

# The start of the error of a row whose member is not in メンバー設定 (the report mail's advice keys on it).
UNKNOWN_MEMBER = "メンバー設定に存在しない"
NO_DATA_MESSAGE = "データ行がありません。1行目の見出しの下に、メンバーごとの行を入れてください。"
SEMICOLON_SEPARATOR = ("区切り文字がセミコロン(;)です。カンマ(,)かタブで区切ってください"
                       "(Excelでは「CSV(コンマ区切り)」または「テキスト(タブ区切り)」で保存)")
UNKNOWN_ADVICE = ("別の名前のグラフ列の値なら、グラフ設定でその列に別名を登録してください。"
                  "使わない列なら、外部連携設定の「見出しにない列」を「無視する」にできます。")
# Valid rows are handed out in lists of about this many (the importer's insert batches).
# Small enough that a batch's dicts and tuples die young: with 4,000 they outlived two young
# collections, landed in the oldest generation and set off full collections of the whole heap
# (measured on the 200,000-row file: 0.42-0.49 s CPU in the cyclic GC per import at 4,000,
# 0.21 s at 1,000, 0.06 s at 500 and at 250), with no process-wide GC setting touched.
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


# (line, member id, values, note): the fields of a Row, as CsvReader.batches hands them out.
RowTuple = tuple[int, int, dict[int, float], "str | None"]


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


def trim_trailing(cells: list[str]) -> list[str]:
    """Drop Excel's trailing empty cells."""
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


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
        if member_key not in MEMBER_KEYS:
            raise ValueError(f"member_key must be one of {MEMBER_KEYS}, not {member_key!r}")
        self._text = text
        self._member_key = member_key
        self._members = members
        self._columns = {normalize(name): column_id for name, column_id in columns.items()}
        # A name wins over another column's alias (the settings never let both exist; a race might).
        self._aliases = {key: column_id for alias, column_id in (aliases or {}).items()
                         if (key := normalize(alias)) and key not in self._columns}
        self._key_aliases = frozenset(key for alias in key_aliases if (key := normalize(alias)))
        self._ignore_unknown = ignore_unknown
        self._valid_names = _valid_names(columns, aliases or {}, member_key, key_aliases)
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

    def batches(self) -> Iterator[list[RowTuple]]:
        """Yield the valid rows in lists of (line, member id, values, note), as Row has them.

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
        batch: list[RowTuple] = []
        count = 0  # data records, valid or not
        syntax_error = False
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
            value_indexes, column_ids, names, note_index, key_index = plan
            self.value_column_ids = list(column_ids)
            width = len(self.header)
            member_of = self._members.get
            get_values = _getter(value_indexes)
            for record in reader:
                line = last + 1
                last = reader.line_num
                if len(batch) >= BATCH_ROWS:
                    yield batch
                    batch = []
                if not any(record):
                    continue  # blank line, or Excel's ",,,"
                count += 1
                if len(record) != width and not self._fit(record, width, line):
                    self._check_cells(record, line, value_indexes, names)  # report its other errors too
                    continue
                member_id = member_of(record[key_index])
                if member_id is None:
                    if not any(cell.strip() for cell in record):
                        count -= 1
                        continue  # only spaces: as blank as an empty line
                    member_id = self._member(record[key_index], line)
                cells = get_values(record)
                values = None
                joined = "".join(cells)
                if len(joined) <= SAFE_DIGITS and is_plain(joined):
                    try:
                        values = dict(zip(column_ids, map(float, cells)))
                    except ValueError:
                        pass  # an empty cell or a misplaced "-": parse_value says what is wrong
                if values is None:
                    values = self._values(cells, line, column_ids, names)
                if member_id is None or values is None:
                    continue
                note = (record[note_index].strip() or None) if note_index is not None else None
                batch.append((line, member_id, values, note))
        except csv.Error as error:
            errors.append(csv_error(last + 1, error))
            syntax_error = True
        if batch:
            yield batch  # with a syntax error, the rows before it too (the error still rejects the file)
        if count == 0 and not syntax_error:
            errors.append(RowError(message=NO_DATA_MESSAGE))

    def _read_header(self, record: list[str], line: int) -> tuple[list[int], list[int], list[str], int | None, int] | None:
        """Check the header; return (value cell indexes, column ids, header names, note index, key index) or None.

        Every header is placed by its name, in any order: the member key (No. / 社員ID per the
        setting, or a key alias), a graph column (its name or an alias), 備考. A header naming
        nothing is an error, or skipped (self.ignored_headers) when the account ignores them.
        """
        header = [cell.strip() for cell in trim_trailing(record)]
        header[0] = header[0].lstrip("\ufeff")  # a second BOM left by a careless converter
        self.header = header
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
                self.ignored_headers.append(name)
            else:
                errors.append((index, RowError(
                    message=f"「{name}」はグラフ列にない見出しです。{UNKNOWN_ADVICE}{valid}", line=line, column=name)))
        for index in other_keys:
            name = header[index]
            if key_index is None:
                key_errors += 1
                errors.append((index, RowError(message=self._other_key_message(name), line=line, column=name)))
            elif self._ignore_unknown:
                self.ignored_headers.append(name)
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
            ignored = f"(無視した見出し: {'、'.join(self.ignored_headers)})" if self.ignored_headers else ""
            errors.append((len(header), RowError(message=f"グラフ列の見出しが1つもありません{ignored}。{valid}",
                                                 line=line)))
        if errors:
            errors.sort(key=itemgetter(0))  # stable: the missing key first, then column by column
            self.errors.extend(error for _, error in errors)
            return None
        assert key_index is not None
        self._key_index = key_index
        return indexes, column_ids, names, note_index, key_index

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


def _getter(indexes: list[int]) -> Callable[[list[str]], tuple[str, ...]]:
    """Return a C-speed function picking the value cells of a record as a tuple."""
    if len(indexes) == 1:
        index = indexes[0]
        return lambda record: (record[index],)
    return itemgetter(*indexes)


def parse_all(text: str, *, columns: dict[str, int], member_key: str,
              members: dict[str, int], **header_rules) -> tuple[list[Row], list[RowError]]:
    """Read a whole file at once (tests, dry runs): (valid rows, the errors as an ErrorList).

    header_rules: CsvReader's aliases, key_aliases and ignore_unknown."""
    reader = CsvReader(text, columns=columns, member_key=member_key, members=members, **header_rules)
    rows = list(reader.rows())
    return rows, reader.errors
