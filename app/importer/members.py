"""The メンバー設定 bulk-load CSV: No.,社員ID,氏名,部署,メールアドレス."""
from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass

from app.errors import ErrorList, RowError, error_total
from app.importer.addresses import is_address
from app.importer.cells import formula_message, starts_like_formula
from app.importer.header import key_header_kind, normalize, trim_trailing
from app.importer.layout import csv_error, physical_lines, separator

HEADER = ("No.", "社員ID", "氏名", "部署", "メールアドレス")
HEADER_MESSAGE = "見出し行は「No.,社員ID,氏名,部署,メールアドレス」にしてください。"
# members.no is a 32-bit integer on SQLite and PostgreSQL; the form and the CSV load share this.
MAX_NO = 2**31 - 1
NO_MESSAGE = "No.は1以上の整数で入力してください"
# Errors of one member CSV listed at most (every one is counted and the rest said as 「ほかに N 件」):
# a person fixes a member list by hand, and 100 rows of reasons are already a page.
MAX_LISTED_ERRORS = 100


def records(text: str, errors: list[RowError]) -> Iterator[tuple[int, list[str]]]:
    """Yield (starting line, cells) for every non-blank record; a CSV syntax error goes into errors.

    Reading goes on after a syntax error, from the line after the one where it was found, so a
    file's every error is reported at once (the member CSV: docs/spec.md section 6). The error's
    value is the text of the line its record starts on. An unclosed quote still swallows the
    rest of the file.
    """
    delimiter = separator(text, errors)
    if delimiter is None:
        return
    lines = _RecordLines(physical_lines(text))
    reader = csv.reader(lines, strict=True, delimiter=delimiter)
    last = 0
    while True:
        lines.first = None
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            errors.append(csv_error(last + 1, error, (lines.first or "").rstrip("\r\n")))
            if reader.line_num == last:  # nothing consumed: never loop on one spot
                return
            # The csv reader starts afresh with the next line after an error.
            last = reader.line_num
            continue
        line = last + 1
        # reader.line_num is where a record ends; the next one starts on the line after.
        last = reader.line_num
        if any(cell.strip() for cell in record):
            yield line, record


class _RecordLines:
    """Lines for the csv reader; `first` keeps the first line given since it was set to None (a record's start)."""

    def __init__(self, lines: Iterator[str]):
        self._lines = lines
        self.first: str | None = None

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        if self.first is None:
            self.first = line
        return line


def parse_no(text: str) -> int | None:
    """A No. as typed or written in a CSV (full-width digits fine): 1 to MAX_NO, else None."""
    text = normalize(text)
    # The length test first: int() of thousands of digits is slow and then raises.
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > len(str(MAX_NO)):
        return None
    number = int(text)
    return number if 0 < number <= MAX_NO else None


@dataclass
class MemberRow:
    """One member line of the bulk-load CSV."""

    line: int
    no: int
    employee_id: str | None
    name: str
    department: str | None
    email: str | None


class MemberReader:
    """Read a decoded member CSV record by record: valid rows out, problems into `errors`.

    Like the results CSV reader, it holds no list of rows: a caller streams them. What it
    keeps per row is the No. and 社員ID seen so far (for the duplicate checks), not the row.
    Every line is checked, whatever the lines before it held (a CSV syntax error included), so
    format errors and duplicates come out together. `errors` keeps the first MAX_LISTED_ERRORS
    errors, in line order, and counts every one.
    """

    def __init__(self, text: str):
        self._text = text
        self.errors = ErrorList(cap=MAX_LISTED_ERRORS)
        self.lines_by_no: dict[int, int] = {}
        self.lines_by_employee_id: dict[str, int] = {}
        self.rows_read = 0

    def rows(self) -> Iterator[MemberRow]:
        """Yield each valid member row; once exhausted, `errors` holds the file's errors."""
        errors = self.errors
        header_line = 0
        for line, record in records(self._text, errors):
            if not header_line:
                header_line = line
                if not _header_ok(record):
                    errors.append(RowError(message=HEADER_MESSAGE, line=line, value=",".join(trim_trailing(record))))
                    return
                continue
            member = _member_row(line, record, errors, self.lines_by_no, self.lines_by_employee_id)
            if member is not None:
                self.rows_read += 1
                yield member
        if not header_line and not errors:
            errors.append(RowError(message="空のファイルです。" + HEADER_MESSAGE))
        elif header_line and not self.rows_read and not errors:
            errors.append(RowError(message="データ行がありません。見出し行の下にメンバーを1行ずつ入れてください。"))


def parse_members(text: str) -> tuple[list[MemberRow], list[RowError]]:
    """Parse a whole decoded member CSV at once (tests, small files): (valid rows, the errors as an ErrorList)."""
    reader = MemberReader(text)
    members = list(reader.rows())
    return members, reader.errors


def _header_ok(record: list[str]) -> bool:
    """Return True when the header is No.,社員ID,氏名,部署,メールアドレス (NFKC/space tolerant)."""
    cells = trim_trailing(record)
    if len(cells) != len(HEADER) or key_header_kind(cells[0]) != "no" or key_header_kind(cells[1]) != "employee_id":
        return False
    return [normalize(cell) for cell in cells[2:]] == list(HEADER[2:])


def _member_row(line: int, record: list[str], errors: list[RowError],
                lines_by_no: dict[int, int], lines_by_employee_id: dict[str, int]) -> MemberRow | None:
    """Check one record; return its MemberRow, or None after recording its errors."""
    count = error_total(errors)
    cells = record + [""] * (len(HEADER) - len(record))
    for index in range(len(HEADER), len(cells)):
        if cells[index].strip():
            errors.append(RowError(message="見出しのない列に値があります(見出しは5列目までです)",
                                   line=line, column=f"{index + 1}列目", value=cells[index]))
            break
    raw_no, raw_employee_id, raw_name, raw_department, raw_email = cells[:len(HEADER)]

    no = 0
    text = normalize(raw_no)
    if not text:
        errors.append(RowError(message="No.は必須です", line=line, column="No.", value=raw_no))
    elif (parsed := parse_no(text)) is None:
        errors.append(RowError(message=NO_MESSAGE, line=line, column="No.", value=raw_no))
    else:
        no = parsed
        if no in lines_by_no:
            errors.append(RowError(message=f"No.が{lines_by_no[no]}行目と重複しています",
                                   line=line, column="No.", value=raw_no))
        else:
            lines_by_no[no] = line

    # 社員ID is kept exactly as written (leading zeros matter); only surrounding spaces go.
    employee_id = raw_employee_id.strip() or None
    if employee_id is not None:
        if starts_like_formula(employee_id):
            errors.append(RowError(message=formula_message("社員ID"), line=line, column="社員ID",
                                   value=raw_employee_id))
        elif employee_id in lines_by_employee_id:
            errors.append(RowError(message=f"社員IDが{lines_by_employee_id[employee_id]}行目と重複しています",
                                   line=line, column="社員ID", value=raw_employee_id))
        else:
            lines_by_employee_id[employee_id] = line

    name = raw_name.strip()
    if not name:
        errors.append(RowError(message="氏名は必須です", line=line, column="氏名", value=raw_name))

    email = raw_email.strip() or None
    if email is not None and not is_address(email):
        errors.append(RowError(message="メールアドレスの形式が正しくありません(例 taro@example.com)",
                               line=line, column="メールアドレス", value=raw_email))

    for column, text, limit in (("社員ID", employee_id, 64), ("氏名", name, 200),
                                ("部署", raw_department.strip(), 200), ("メールアドレス", email, 254)):
        if text and len(text) > limit:  # the columns' sizes: a longer value cannot be stored
            errors.append(RowError(message=f"{column}は{limit}文字以内にしてください", line=line, column=column,
                                   value=text))
    if error_total(errors) > count:
        return None
    return MemberRow(line=line, no=no, employee_id=employee_id, name=name,
                     department=raw_department.strip() or None, email=email)
