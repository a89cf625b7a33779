"""The kept sums (import_totals, month_totals) against the stored rows they sum.

A seeded generator makes a random history per seed: daily files and the monthly file of one
month, files of the next and the previous month, re-imports that replace earlier files, imports
that fail, hand-typed results and an inactive member. The board's month table and the month and
day answers of the API must equal the sums of the rows stored, also after the migration has
rebuilt the sums from the rows alone. Values are integers and halves, so every sum is exact.
"""
from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import func, select, update

from app.api.queries import results_json
from app.extensions import db, init_migrations
from app.importer.filename import parse_period
from app.models import Import, Member
from app.models_results import ImportTotal, ManualResult, MonthTotal
from app.services import results
from app.importer.block import Block
from app.services.totals import LINES, ImportSums
from tests.fixtures.ingest import csv_file, ingest_options, month_sums, run, stored_lines

MEMBERS = tuple((no, f"E{no:03d}", f"社員{no}") for no in range(1, 9))
FILES = ["20180501.csv", "20180502.csv", "20180515.csv", "20180531.csv", "20180500.csv",
         "20180601.csv", "20180430.csv"]


def _cell(rng: random.Random):
    roll = rng.random()
    if roll < 0.15:
        return ""
    if roll < 0.3:
        return f"{rng.randint(-50, 50)}.5"
    return rng.randint(-1000, 100_000)


def _history(acc, rng: random.Random) -> None:
    for _ in range(rng.randint(6, 14)):
        roll = rng.random()
        if roll < 0.15:
            period = parse_period(rng.choice(["20180503", "20180531", "201805", "20180601"]))
            values = {acc.column[name]: rng.randint(-10, 10) / 2 for name in rng.sample(list(acc.column), 2)}
            results.add_manual(acc.id, acc.member[rng.randint(1, 8)], period, values)
            continue
        rows = [[rng.randint(1, 8), _cell(rng), _cell(rng), _cell(rng), ""] for _ in range(rng.randint(1, 30))]
        if roll < 0.3:
            rows[rng.randrange(len(rows))][1] = "abc"  # the whole file fails: nothing of it is stored
        imp = run(acc, rng.choice(FILES), csv_file(rows))
        assert imp.status == ("failed" if roll < 0.3 else "succeeded")
    db.session.execute(update(Member).where(Member.id == acc.member[8]).values(active=False))
    db.session.commit()


def _row_sums(acc, first: dt.date, following: dt.date, kind: str | None = None):
    """{member id: {column id: sum}} and {member id: lines} straight from the stored rows."""
    sums: dict[int, dict[int, float]] = {}
    lines: dict[int, int] = {}
    imports = select(Import.id).where(Import.account_id == acc.id, Import.period_date >= first,
                                      Import.period_date < following)
    query = select(ManualResult.member_id, ManualResult.values).where(
        ManualResult.account_id == acc.id, ManualResult.period_date >= first, ManualResult.period_date < following)
    if kind:
        imports = imports.where(Import.period_kind == kind)
        query = query.where(ManualResult.period_kind == kind)
    ids = set(db.session.scalars(imports))
    # Imported lines and hand-typed results alike.
    stored = [(line.member_id, line.values) for import_id, line in stored_lines(account_id=acc.id) if import_id in ids]
    stored += db.session.execute(query).all()
    for member_id, values in stored:
        lines[member_id] = lines.get(member_id, 0) + 1
        target = sums.setdefault(member_id, {})
        for key, value in values.items():
            if value is not None:
                target[int(key)] = target.get(int(key), 0) + value
    return sums, lines


def _check_against_rows(acc) -> None:
    db.session.expire_all()
    sums, lines = _row_sums(acc, dt.date(2018, 5, 1), dt.date(2018, 6, 1))
    active = {no: member_id for no, member_id in acc.member.items() if no != 8}

    table = results.month_table(acc.id, 2018, 5)
    expected = {(m, c): v for m, cols in sums.items() if m in active.values() for c, v in cols.items()}
    assert month_sums(table) == expected
    for column_id in acc.column.values():
        assert table.column_totals.get(column_id, 0) == sum(v for (m, c), v in expected.items() if c == column_id)

    names = {column_id: name for name, column_id in acc.column.items()}
    for key, (first, following, kind) in {
        "201805": (dt.date(2018, 5, 1), dt.date(2018, 6, 1), None),
        "20180531": (dt.date(2018, 5, 31), dt.date(2018, 6, 1), "day"),
        "20180601": (dt.date(2018, 6, 1), dt.date(2018, 6, 2), "day"),
    }.items():
        sums, lines = _row_sums(acc, first, following, kind)
        answer = results_json(acc.id, parse_period(key))
        got = {m["id"]: (m["lines"], {k: v for k, v in m["values"].items() if v is not None})
               for m in answer["members"]}
        want = {member_id: (lines.get(member_id, 0),
                            {names[c]: v for c, v in sums.get(member_id, {}).items()})
                for member_id in set(active.values()) | set(sums)}
        assert got == want, key
        for name, column_id in acc.column.items():
            total = sum(cols.get(column_id, 0) for cols in sums.values())
            has_any = any(column_id in cols for cols in sums.values())
            assert answer["totals"][name] == (total if has_any else None), (key, name)


@pytest.mark.parametrize("seed", range(6))
def test_board_and_api_equal_the_sums_of_the_stored_rows(app, make_account, seed):
    acc = make_account("acme", **ingest_options(members=MEMBERS))
    _history(acc, random.Random(seed))
    _check_against_rows(acc)

    # The migration rebuilds both tables from the stored rows alone: the same answers.
    from flask_migrate import downgrade, upgrade

    init_migrations(app)
    db.session.remove()
    downgrade(revision="0005")
    upgrade()
    _check_against_rows(acc)


def test_failed_and_replaced_imports_leave_no_totals(app, make_account):
    acc = make_account("acme", **ingest_options(members=MEMBERS))
    first = run(acc, "20180516.csv", csv_file([[1, 100, 1, 1, ""], [2, 5, "", "", ""]]))
    assert first.status == "succeeded"
    assert db.session.scalar(select(func.count()).select_from(ImportTotal).where(ImportTotal.import_id == first.id))

    failed = run(acc, "20180516.csv", csv_file([[1, 7, 7, 7, ""], [3, "abc", 1, 1, ""]]))
    assert failed.status == "failed"
    second = run(acc, "20180516.csv", csv_file([[3, 40, "", "", ""]]))
    assert second.status == "succeeded" and second.replaced_import_id == first.id

    by_import = dict(db.session.execute(
        select(ImportTotal.import_id, func.count()).group_by(ImportTotal.import_id)).all())
    assert by_import == {second.id: 2}  # member 3: its lines and its 売上
    month = db.session.execute(
        select(MonthTotal.member_id, MonthTotal.column_id, MonthTotal.total, MonthTotal.line_count)
        .order_by(MonthTotal.member_id, MonthTotal.column_id)).all()
    assert month == [(acc.member[3], 0, 0, 1), (acc.member[3], acc.column["売上"], 40, 1)]
    assert month_sums(results.month_table(acc.id, 2018, 5)) == {(acc.member[3], acc.column["売上"]): 40}
    assert db.session.get(Import, failed.id).status == "failed"


def test_board_equals_a_row_by_row_sum_of_the_file(app, make_account):
    """Non-integer values, empty cells and columns in another order than the account's: the board,
    the month API and the day API show what adding the file's values line by line gives."""
    acc = make_account("acme", **ingest_options(members=MEMBERS))
    rng = random.Random(13)
    header = ["No.", "件数", "備考", "売上", "粗利"]
    lines = []
    for _ in range(300):
        cells = [rng.choice(["", f"{rng.randint(-999, 999)}.{rng.randint(0, 99):02d}", str(rng.randint(0, 9))])
                 for _ in range(3)]
        lines.append([rng.randint(1, 7), cells[0], "メモ", cells[1], cells[2]])
    imp = run(acc, "20180516.csv", csv_file(lines, header=header))
    assert imp.status == "succeeded"

    want: dict[tuple[int, int], float] = {}
    counts: dict[int, int] = {}
    for no, *cells in lines:  # file order, one line after another
        member_id = acc.member[no]
        counts[member_id] = counts.get(member_id, 0) + 1
        for name, cell in zip(["件数", "備考", "売上", "粗利"], cells):
            if name != "備考" and cell != "":
                key = (member_id, acc.column[name])
                want[key] = want.get(key, 0.0) + float(cell)
    assert month_sums(results.month_table(acc.id, 2018, 5)) == want
    names = {column_id: name for name, column_id in acc.column.items()}
    for key in ("201805", "20180516"):
        answer = results_json(acc.id, parse_period(key))
        got = {m["id"]: (m["lines"], {k: v for k, v in m["values"].items() if v is not None})
               for m in answer["members"] if m["lines"]}
        assert got == {member_id: (lines_, {names[c]: v for (m, c), v in want.items() if m == member_id})
                       for member_id, lines_ in counts.items()}, key


def _block(column_ids, rows, plain=False):
    block = Block(column_ids)
    for line, member_id, values, note in rows:
        if plain:
            block.append_plain(line, member_id, values, note)
        else:
            block.append(line, member_id, values, note)
    return block


def test_import_sums_add_line_by_line_in_file_order():
    sums = ImportSums([5, 3])
    sums.add(_block([5, 3], [(2, 10, {5: 0.1, 3: 1.0}, None), (3, 11, {}, "only a note")]))
    sums.add(_block([5, 3], [(4, 10, {3: 2.0}, None), (5, 10, {5: 0.2, 3: 1e16}, None),
                             (6, 10, {5: 0.3, 3: -1e16}, None)]))
    assert list(sums.rows()) == [
        (10, LINES, 0.0, 4), (10, 5, (0.1 + 0.2) + 0.3, 3), (10, 3, ((1.0 + 2.0) + 1e16) - 1e16, 4),
        (11, LINES, 0.0, 1),
    ]


def test_import_sums_of_full_blocks_gather_each_members_lines_across_blocks():
    sums = ImportSums([7])
    sums.add(_block([7], [(2, 12, (1e16,), None), (3, 10, (5.0,), None)], plain=True))
    sums.add(_block([7], [(4, 12, (1.0,), None), (5, 12, (-1e16,), None), (6, 11, (0.5,), None)], plain=True))
    sums.add(_block([7], [(7, 12, (1.0,), None)], plain=True))
    assert list(sums.rows()) == [
        (10, LINES, 0.0, 1), (10, 7, 5.0, 1),
        (11, LINES, 0.0, 1), (11, 7, 0.5, 1),
        (12, LINES, 0.0, 4), (12, 7, ((1e16 + 1.0) - 1e16) + 1.0, 4),  # file order, not sorted by value
    ]


def test_import_sums_folded_every_few_rows_still_add_in_file_order(monkeypatch):
    from app.services import totals

    rows = [(line, 10 + line % 3, {5: 10.0 ** (line % 17) * (-1) ** line, 3: line / 7}, None) if line % 5
            else (line, 10 + line % 3, {3: 0.1}, "empty 5") for line in range(2, 200)]
    expected = {}
    for _line, member_id, values, _note in rows:  # one by one, as a reader of the file would add them
        member = expected.setdefault(member_id, {LINES: [0.0, 0]})
        member[LINES][1] += 1
        for column_id, value in values.items():
            total = member.setdefault(column_id, [0.0, 0])
            total[0] += value
            total[1] += 1
    monkeypatch.setattr(totals, "FOLD_ROWS", 7)  # folds inside blocks' worth of rows and across them
    sums = ImportSums([5, 3])
    for start in range(0, len(rows), 5):
        sums.add(_block([5, 3], rows[start:start + 5]))
    assert list(sums.rows()) == [(member_id, column_id, *expected[member_id][column_id])
                                 for member_id in sorted(expected) for column_id in (LINES, 5, 3)]
