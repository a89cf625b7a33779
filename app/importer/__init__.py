"""Pure-Python CSV importer: bytes + settings -> parsed rows or errors (no Flask, no database)."""
from app.importer.encoding import decode
from app.importer.filename import Period, parse_filename, parse_period
from app.importer.layout import CsvReader, Row, parse_all
from app.importer.members import MemberRow, parse_members

__all__ = [
    "CsvReader",
    "MemberRow",
    "Period",
    "Row",
    "decode",
    "parse_all",
    "parse_filename",
    "parse_members",
    "parse_period",
]
