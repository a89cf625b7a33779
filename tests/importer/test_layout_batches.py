"""The reader's two paths: a batch of plainly valid one-line records checked at once, any other record by record."""
from __future__ import annotations

import random

import pytest

from app.importer import layout
from app.importer.layout import BATCH_ROWS, CsvReader
from tests.fixtures.importer import COLUMNS, MEMBERS_BY_NO, csv_text

HEADER = ["No.", "売上", "粗利", "件数", "備考"]


def _read(text: str) -> tuple[list[tuple], list[tuple]]:
    reader = CsvReader(text, columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    rows = [row for batch in reader.batches() for row in batch]
    return rows, [(e.line, e.column, e.value, e.message) for e in reader.errors]


def test_plain_records_are_checked_a_batch_at_a_time(monkeypatch):
    rows = [[str(1 + n % 2), str(n), str(-n), "0", "メモ" if n % 3 == 0 else ""] for n in range(BATCH_ROWS * 2 + 7)]
    text = csv_text([HEADER, *rows])

    def no_row_by_row(*args):
        raise AssertionError("a plainly valid batch went record by record")

    monkeypatch.setattr(CsvReader, "_row", no_row_by_row)
    got, errors = _read(text)
    assert errors == []
    assert got[5] == (7, 102, {1: 5.0, 2: -5.0, 3: 0.0}, None)
    assert got[6] == (8, 101, {1: 6.0, 2: -6.0, 3: 0.0}, "メモ")
    assert len(got) == len(rows) and got[-1][0] == len(rows) + 1


# Cells that each send their batch record by record, where the message or the value is decided.
AWKWARD = [
    ["007", "1", "2", "3", ""],  # a No. not as written in メンバー設定
    ["1", "-0", "5", "5", ""],  # -0 is 0
    ["1", "", "5", "5", ""],  # an empty cell
    ["1", "1,000", "△5", "(7)", ""],  # accounting forms
    ["1", "1-2", "5", "5", ""],  # no number
    ["99", "1", "1", "1", ""],  # no such member
    ["1", "9" * 309, "1", "1", ""],  # too long for the plain check
    ["1", "5", "5", "5", "二行の\r\n備考"],  # a record of two lines
    [],  # a blank line
    ["1", "5", "5"],  # a short record
    ["1", "5", "5", "5", "", ""],  # Excel's trailing comma
    ["1", "5", "5", "5", "", "x"],  # a value in a column without a header
    [" ", " ", "", "", ""],  # only spaces
    ["1", "12.5", "0.25", "1e5", ""],
]


@pytest.mark.parametrize("seed", range(8))
def test_both_paths_give_the_same_rows_and_errors(monkeypatch, seed):
    rng = random.Random(seed)
    plain = [[str(rng.choice([1, 2, 7, 12])), str(rng.randint(-10**6, 10**6)), str(rng.randint(0, 99)), "1", ""]
             for _ in range(BATCH_ROWS * 3)]
    rows = list(plain)
    for awkward in rng.sample(AWKWARD, rng.randint(1, 4)):
        rows.insert(rng.randrange(len(rows)), awkward)
    text = csv_text([HEADER, *rows])
    both = _read(text)
    monkeypatch.setattr(layout, "_plain_batch", lambda records, rules: None)
    row_by_row = _read(text)
    assert both == row_by_row
    assert len(both[0]) >= len(plain)


def test_a_syntax_error_keeps_the_records_before_it_and_names_its_line():
    rows = [["1", str(n), "1", "1", ""] for n in range(BATCH_ROWS + 3)]
    text = csv_text([HEADER, *rows]) + '2,5,5,5,"unclosed\r\n'
    got, errors = _read(text)
    assert len(got) == BATCH_ROWS + 3
    assert [(line, message[:6]) for line, _column, _value, message in errors] == [(BATCH_ROWS + 5, "引用符(\")")]


def test_a_batch_reads_each_digit_run_as_float_would():
    # Past 2**53 a digit run has no exact float: both ways must round it to the same one.
    cells = ["9007199254740993", "-123456789012345678901234567890", "9" * 308, "18014398509481985", "-5"]
    rows = [["1", cell, cell, "1", ""] for cell in cells] * (BATCH_ROWS // len(cells))
    got, errors = _read(csv_text([HEADER, *rows]))
    assert errors == [] and len(got) == len(rows)
    assert [row[2][1] for row in got[:len(cells)]] == [float(cell) for cell in cells]
