"""Domain errors: services raise them, views/API/CLI translate them (one message, written once).

Pure Python: importable from app/importer without Flask.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RowError:
    """One problem in a received file: its own line (header = 1), column name, value and a Japanese message."""

    message: str
    line: int | None = None
    column: str | None = None
    value: str | None = None

    def as_text(self) -> str:
        parts = []
        if self.line is not None:
            parts.append(f"{self.line}行目")
        if self.column:
            parts.append(f"列「{self.column}」")
        if self.value is not None:
            parts.append(f"値「{self.value}」")
        where = " ".join(parts)
        return f"{where}: {self.message}" if where else self.message

    def as_dict(self) -> dict:
        return {"line": self.line, "column": self.column, "value": self.value, "message": self.message}


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
        more = f"(他 {len(errors) - 1} 件)" if len(errors) > 1 else ""
        super().__init__(first + more)
        self.errors = errors
