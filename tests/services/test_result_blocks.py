"""Stored result values: app/db/bulk.py packs each batch of rows into one block of arrays."""
from __future__ import annotations

from app.importer.values import parse_value
from app.models import Import
from tests.fixtures.ingest import csv_file, ingest_options, run, stored_lines

# Cells of 売上, 粗利, 件数: mixed empty cells (rows of different key sets next to each other in one
# batch), negatives, decimals, big and tiny numbers, full-width digits, yen and accounting forms.
CELLS = [
    ["1", "2", "3"], ["", "-5", ""], ["12.5", "", "0"], ["1,234,567", "△100", "(200)"],
    ["9" * 20, "0.000001", "-0"], ["", "", ""], ["１２３", "￥1,000", "5円"], ["123456789012345678", "", "0.001"],
]


def test_each_row_of_a_block_keeps_its_own_values_and_empty_cells(app, make_account):
    acc = make_account("acme", **ingest_options())
    rows = [[n % 3 + 1, *CELLS[n % len(CELLS)], ""] for n in range(1200)]  # three batches
    imp = run(acc, "20180516.csv", csv_file(rows))
    assert imp.status == Import.SUCCEEDED and imp.row_count == len(rows)
    names = {column_id: name for name, column_id in acc.column.items()}
    stored = [(line.line, line.values) for _import_id, line in stored_lines(imp.id)]
    assert len(stored) == len(rows)
    for (line, values), row in zip(stored, rows):
        expected = {name: parse_value(cell) for name, cell in zip(("売上", "粗利", "件数"), row[1:4]) if cell}
        assert {names[int(key)]: value for key, value in values.items()} == expected, line
        assert list(values) == [acc.column[name] for name in expected], line  # header order

