"""Domain errors: services raise them, views/API/CLI translate them (one message, written once).

Pure Python: importable from app/importer without Flask.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# A file's errors kept (stored, listed, mailed) at most; the rest are only counted (docs/spec.md
# section 2 "All or nothing": the total is stored and shown). Without a cap a 10 MiB file
# with every line wrong made 1.9 million error rows.
MAX_ERRORS_PER_FILE = 1000
# Longest value, column and message text kept for one error: a cell may hold 128 KiB.
MAX_VALUE_CHARS = 200
MAX_COLUMN_CHARS = 255
MAX_MESSAGE_CHARS = 1000


@dataclass(frozen=True)
class RowError:
    """One problem in a received file: its own line (header = 1), column name, value and a Japanese message.

    `letter` is the column as a spreadsheet shows it ("C"): set for workbooks (where `line` is the
    sheet's row number), never for CSV files, which are shown as before.
    """

    message: str
    line: int | None = None
    column: str | None = None
    value: str | None = None
    letter: str | None = None

    @property
    def where_column(self) -> str:
        """The column as shown: 「C列(売上)」 with a letter (just 「C列」 for an unnamed one), 列「売上」 without."""
        if self.letter:
            named = self.column and not self.column.endswith("列目")
            return f"{self.letter}列({self.column})" if named else f"{self.letter}列"
        return f"列「{self.column}」" if self.column else ""

    def as_text(self) -> str:
        parts = []
        if self.line is not None:
            parts.append(f"{self.line}行目")
        if self.column or self.letter:
            parts.append(self.where_column)
        if self.value is not None:
            parts.append(f"値「{self.value}」")
        where = " ".join(parts)
        return f"{where}: {self.message}" if where else self.message

    def as_dict(self) -> dict:
        return {"line": self.line, "column": self.column, "column_letter": self.letter, "value": self.value,
                "message": self.message}

    def clipped(self) -> RowError:
        """Return this error with its texts cut to what is stored and shown (a cell may be 128 KiB long)."""
        value, column, message = (_clip(self.value, MAX_VALUE_CHARS), _clip(self.column, MAX_COLUMN_CHARS),
                                  _clip(self.message, MAX_MESSAGE_CHARS))
        if (value, column, message) == (self.value, self.column, self.message):
            return self
        return RowError(message=message or "", line=self.line, column=column, value=value, letter=self.letter)


def _clip(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit - 1] + "…"


class ErrorList(list):
    """The errors of one file: the first `cap` are kept (texts clipped), every one is counted in `total`.

    A plain list to every reader; append, extend and + count what they drop. Extending with
    another ErrorList adds its total, not only the errors it kept.
    """

    def __init__(self, errors: Iterable[RowError] = (), cap: int = MAX_ERRORS_PER_FILE):
        super().__init__()
        self.cap = cap
        self.total = 0
        self.extend(errors)

    def append(self, error: RowError) -> None:
        self.total += 1
        if len(self) < self.cap:
            super().append(error.clipped())

    def extend(self, errors: Iterable[RowError]) -> None:
        dropped = errors.total - len(errors) if isinstance(errors, ErrorList) else 0
        for error in errors:
            self.append(error)
        self.total += dropped

    def __iadd__(self, errors: Iterable[RowError]) -> ErrorList:
        self.extend(errors)
        return self

    def __add__(self, errors: Iterable[RowError]) -> ErrorList:
        joined = ErrorList(self, self.cap)
        joined.extend(errors)
        return joined

    @property
    def more(self) -> int:
        """How many errors were counted but not kept."""
        return self.total - len(self)


def error_total(errors: list[RowError]) -> int:
    """How many errors a list stands for (an ErrorList counts the ones it dropped)."""
    return errors.total if isinstance(errors, ErrorList) else len(errors)


class RenkeiError(Exception):
    """Base of every error a user may see. str(error) is the Japanese message."""

    code = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(RenkeiError):
    code = "not_found"


class Invalid(RenkeiError):
    """Bad input to a service (a form field, a CLI flag). `field` names the field when known."""

    code = "invalid"

    def __init__(self, message: str, field: str | None = None, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.field = field
        self.errors = errors or ({field: [message]} if field else {})


class Forbidden(RenkeiError):
    code = "forbidden"


class ImportRejected(RenkeiError):
    """A file that cannot be imported; `errors` lists every problem found."""

    code = "import_rejected"

    def __init__(self, errors: list[RowError]):
        first = errors[0].as_text() if errors else "取り込めませんでした"
        total = error_total(errors)
        more = f"(他 {total - 1:,} 件)" if total > 1 else ""
        super().__init__(first + more)
        self.errors = errors
