"""Plain and unusual lines mixed in one file: each record is read as it would be on its own.

A row of plain number cells is converted at once and any other cell by cell; whichever way a
line is read, its row (line number, member, values, note) and its errors do not depend on the
lines around it, and a plain cell's value is the number written in it."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.importer.layout import CsvReader
from app.importer.values import parse_value
from tests.fixtures.importer import COLUMNS, MEMBERS_BY_EMPLOYEE_ID, MEMBERS_BY_NO, csv_text

PLAIN_VALUES = ["0", "7", "120000", "-1234", "999999999999999", "007"]
# Cells that need the careful rules: each is read, or refused, by parse_value.
ODD_VALUES = ["", " 5", "1,234", "００１", "△3", "-0", "1.5", "x", "1e3", "1234567890123456", "  ", "1,23"]
NOTES = ["", "A社 新規", " 髙島屋 ", "①～ ｶﾅ", "a,b", 'say "hi"', "two\r\nlines", "\u3000"]
KEYS = {"no": ["1", "2", "7", "12", "012", " 7", "999", ""],
        "employee_id": ["E001", "E002", "007", "7", "e001", " E001", ""]}
MEMBERS = {"no": MEMBERS_BY_NO, "employee_id": MEMBERS_BY_EMPLOYEE_ID}
HEADERS = {"no": "No.", "employee_id": "社員ID"}


def read(text: str, member_key: str) -> tuple[list, list]:
    reader = CsvReader(text, columns=COLUMNS, member_key=member_key, members=MEMBERS[member_key])
    rows = [row for batch in reader.batches() for row in batch]
    return rows, [(e.line, e.column, e.value, e.message) for e in reader.errors if e.line is not None]


@st.composite
def files(draw):
    member_key = draw(st.sampled_from(["no", "employee_id"]))
    names = draw(st.permutations(list(COLUMNS)))[:draw(st.integers(1, 3))]
    header = [HEADERS[member_key], *names]
    if draw(st.booleans()):
        header.insert(draw(st.integers(1, len(header))), "備考")
    keys = [key for key in KEYS[member_key] if key in MEMBERS[member_key]]

    def plain_cell(index: int, name: str):
        if index == 0:
            return st.sampled_from(keys)
        return st.sampled_from(NOTES[:4] if name == "備考" else PLAIN_VALUES)

    plain_row = st.tuples(*[plain_cell(index, name) for index, name in enumerate(header)]).map(list)
    odd_row = st.lists(st.sampled_from(KEYS[member_key] + ODD_VALUES + NOTES), min_size=1, max_size=len(header) + 2)
    rows = draw(st.lists(st.one_of(plain_row, plain_row, odd_row), min_size=1, max_size=30))
    newline = draw(st.sampled_from(["\r\n", "\n"]))
    return header, rows, newline, member_key


@settings(max_examples=300, deadline=None, database=None)
@given(files())
def test_each_record_is_read_as_it_would_be_alone(file) -> None:
    header, rows, newline, member_key = file
    whole_rows, whole_errors = read(csv_text([header, *rows], newline), member_key)
    alone_rows, alone_errors = [], []
    start = 2  # the physical line where the record starts in the whole file
    for row in rows:
        shift = start - 2
        rows_of_one, errors_of_one = read(csv_text([header, row], newline), member_key)
        alone_rows += [(line + shift, member_id, values, note) for line, member_id, values, note in rows_of_one]
        alone_errors += [(line + shift, column, value, message) for line, column, value, message in errors_of_one]
        start += csv_text([row], newline).count(newline)
    assert whole_rows == alone_rows
    assert whole_errors == alone_errors


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.tuples(st.sampled_from(["E001", "E002", "007"]), st.sampled_from(PLAIN_VALUES),
                          st.sampled_from(PLAIN_VALUES), st.sampled_from(NOTES[:4])), min_size=1, max_size=20))
def test_plain_cells_are_the_numbers_written_in_them(rows) -> None:
    text = csv_text([["社員ID", "売上", "粗利", "備考"], *map(list, rows)])
    read_rows, errors = read(text, "employee_id")
    assert errors == []
    assert read_rows == [(line, MEMBERS_BY_EMPLOYEE_ID[key], {1: float(int(sales)), 2: float(int(profit))},
                          note.strip() or None)
                         for line, (key, sales, profit, note) in enumerate(rows, start=2)]
    assert all(type(value) is float for row in read_rows for value in row[2].values())


def test_rows_always_hold_a_dict_of_floats() -> None:
    text = csv_text([["社員ID", "売上", "粗利", "件数", "備考"],
                     ["E001", "120000", "-30000", "2", "A社 新規"], ["007", "0", "", "999999999999999", ""],
                     ["E002", "1,234", "△5", "-0", ""]])
    rows, errors = read(text, "employee_id")
    assert errors == []
    assert rows == [(2, 201, {1: 120000.0, 2: -30000.0, 3: 2.0}, "A社 新規"),
                    (3, 207, {1: 0.0, 3: 999999999999999.0}, None),
                    (4, 202, {1: 1234.0, 2: -5.0, 3: 0.0}, None)]
    assert str(rows[2][2][3]) == "0.0"  # "-0" is 0, not -0.0


# Cells of ASCII digits and "-" only, which the quick check lets through to float() as the
# whole row: each must still be read (or refused) exactly as parse_value reads it alone.
DIGITS_AND_MINUS = ["-0", "-00", "-05", "-0.0", "-", "--5", "5-", "1-2", "-1-", "", "1_000", "-12", "0"]


def test_cells_of_digits_and_minus_are_read_as_parse_value_reads_them():
    for cell in DIGITS_AND_MINUS:
        rows, errors = read(csv_text([["No.", "売上", "粗利", "件数"], ["1", "5", cell, "-7"]]), "no")
        try:
            expected = parse_value(cell)
        except ValueError as error:
            assert (rows, errors) == ([], [(2, "粗利", cell, str(error))]), cell
            continue
        values = {1: 5.0, 3: -7.0} | ({} if expected is None else {2: expected})
        assert rows == [(2, 101, values, None)], cell
        assert {key: str(value) for key, value in rows[0][2].items()} == {key: str(value) for key, value in values.items()}, cell
