"""Build CSV files for the importer tests, the way Excel and other senders write them."""
from __future__ import annotations

import csv
import io

COLUMNS = {"売上": 1, "粗利": 2, "件数": 3}
MEMBERS_BY_NO = {"1": 101, "2": 102, "7": 107, "12": 112}
MEMBERS_BY_EMPLOYEE_ID = {"E001": 201, "E002": 202, "007": 207}


def csv_text(rows: list[list[str]], newline: str = "\r\n") -> str:
    """Write rows as RFC 4180 CSV text (quoting only where needed, like Excel)."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    return buffer.getvalue()


def csv_bytes(rows: list[list[str]], encoding: str = "cp932", newline: str = "\r\n") -> bytes:
    """Write rows as CSV bytes in the given encoding (cp932 is what Excel writes for 'CSV')."""
    return csv_text(rows, newline).encode(encoding)
