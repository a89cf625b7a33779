"""The reader's fast path (whole chunks of plain lines per regex call) gives exactly what the
cell-by-cell path gives: the same rows, line numbers, values, notes and errors, for any mix of
plain and unusual lines, wherever the chunks happen to end."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.importer import layout
from app.importer.layout import CsvReader
from tests.fixtures.importer import COLUMNS, MEMBERS_BY_EMPLOYEE_ID, MEMBERS_BY_NO, csv_text

PLAIN_VALUES = ["0", "7", "120000", "-1234", "999999999999999"]
# Cells the fast path must leave to the careful path: each is read, or refused, there.
ODD_VALUES = ["", " 5", "1,234", "００１", "△3", "-0", "007", "1.5", "x", "1e3", "1234567890123456", "  "]
NOTES = ["", "A社 新規", " 髙島屋 ", "①～ ｶﾅ", "a,b", 'say "hi"', "two\r\nlines", "\u3000"]
KEYS = {"no": ["1", "2", "7", "12", "012", " 7", "999", ""],
        "employee_id": ["E001", "E002", "007", "7", "e001", " E001", ""]}
MEMBERS = {"no": MEMBERS_BY_NO, "employee_id": MEMBERS_BY_EMPLOYEE_ID}
HEADERS = {"no": "No.", "employee_id": "社員ID"}


def careful_only(self, offset, last, plan):
    """Stand-in for _plain_batches that reads nothing, so every line takes the careful path."""
    return offset, last, 0
    yield  # a generator, like the real one


def read_all(reader: CsvReader) -> tuple[list, list]:
    rows = [row for batch in reader.batches() for row in batch]
    return rows, [(e.line, e.column, e.value, e.message) for e in reader.errors]


@st.composite
def files(draw):
    member_key = draw(st.sampled_from(["no", "employee_id"]))
    names = draw(st.permutations(list(COLUMNS)))[:draw(st.integers(1, 3))]
    with_note = draw(st.booleans())
    header = [HEADERS[member_key], *names]
    if with_note:
        header.insert(draw(st.integers(1, len(header))), "備考")
    keys = [key for key in KEYS[member_key] if key in MEMBERS[member_key]]
    def plain_cell(index: int, name: str):
        if index == 0:
            return st.sampled_from(keys)
        return st.sampled_from(NOTES[:4] if name == "備考" else PLAIN_VALUES)

    plain_row = st.tuples(*[plain_cell(index, name) for index, name in enumerate(header)]).map(list)
    odd_row = st.lists(st.sampled_from(KEYS[member_key] + ODD_VALUES + NOTES), min_size=0, max_size=len(header) + 2)
    rows = draw(st.lists(st.one_of(plain_row, plain_row, plain_row, odd_row), min_size=0, max_size=40))
    newline = draw(st.sampled_from(["\r\n", "\n"]))
    text = csv_text([header, *rows], newline)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")  # no line end after the last line
    return text, member_key, draw(st.booleans())


@settings(max_examples=400, deadline=None, database=None)
@given(files(), st.sampled_from([1, 16, 64, 1 << 18]))
def test_fast_path_reads_exactly_like_the_careful_path(file, chunk_chars) -> None:
    text, member_key, integers_as_text = file
    make = lambda: CsvReader(text, columns=COLUMNS, member_key=member_key, members=MEMBERS[member_key],  # noqa: E731
                             integers_as_text=integers_as_text)
    saved_chunk, saved_plain = layout._CHUNK_CHARS, CsvReader._plain_batches
    try:
        layout._CHUNK_CHARS = chunk_chars  # small chunks: the fast path stops and hands over mid-file
        fast = read_all(make())
        CsvReader._plain_batches = careful_only
        careful = read_all(make())
    finally:
        layout._CHUNK_CHARS, CsvReader._plain_batches = saved_chunk, saved_plain
    assert fast == careful


def test_a_plain_file_is_read_by_the_fast_path_alone() -> None:
    # Guards the speed of the usual file: if the fast path stopped matching plain lines, every
    # test above would still pass (the careful path gives the same rows), only slower.
    rows = [["E001", "120000", "-30000", "2", "A社 新規"], ["007", "0", "5", "999999999999999", ""]] * 500
    text = csv_text([["社員ID", "売上", "粗利", "件数", "備考"], *rows])
    reader = CsvReader(text, columns=COLUMNS, member_key="employee_id", members=MEMBERS_BY_EMPLOYEE_ID,
                       integers_as_text=True)
    saved = CsvReader._plain_batches
    fast_rows: list = []

    def counting(self, offset, last, plan):
        result = yield from saved(self, offset, last, plan)
        fast_rows.append(result[2])
        return result

    try:
        CsvReader._plain_batches = counting
        read = [row for batch in reader.batches() for row in batch]
    finally:
        CsvReader._plain_batches = saved
    assert fast_rows == [1000] and len(read) == 1000 and reader.errors == []
    assert read[0] == (2, 201, ("120000", "-30000", "2"), "A社 新規")
    assert read[1] == (3, 207, ("0", "5", "999999999999999"), None)
