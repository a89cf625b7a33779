"""Stored results: the month table (daily + monthly file), CSV export in the import layout, manual entry."""
from __future__ import annotations

import pytest
from sqlalchemy import update

from app.errors import Invalid, NotFound
from app.extensions import db
from app.importer.filename import parse_period
from app.models import Member
from app.services import results
from tests.fixtures.ingest import csv_file, ingest_options, month_sums, run, stored


def test_month_table_adds_daily_results_and_the_monthly_file(app, make_account):
    acc = make_account("acme", **ingest_options())
    run(acc, "20180501.csv", csv_file([[1, 100, 10, 1, ""], [2, 50, 5, "", ""]]))
    run(acc, "20180531.csv", csv_file([[1, 200, 20, 2, ""], [1, 1, 0, 0, "2行目も足す"]]))
    run(acc, "20180500.csv", csv_file([[1, 1000, "", "", ""], [3, 7, 7, 7, ""]]))
    run(acc, "20180601.csv", csv_file([[1, 99999, 1, 1, ""]]))  # next month: not counted
    run(acc, "20180430.csv", csv_file([[1, 88888, 1, 1, ""]]))  # previous month: not counted
    results.add_manual(acc.id, acc.member[2], parse_period("20180515"), {acc.column["売上"]: 0.5})

    table = results.month_table(acc.id, 2018, 5)

    sales, profit, deals = acc.column["売上"], acc.column["粗利"], acc.column["件数"]
    assert [m.no for m in table.members] == [1, 2, 3]
    assert [c.name for c in table.columns] == ["売上", "粗利", "件数"]
    assert month_sums(table).get((acc.member[1], sales)) == 100 + 200 + 1 + 1000
    assert month_sums(table).get((acc.member[1], profit)) == 30
    assert month_sums(table).get((acc.member[1], deals)) == 3
    assert month_sums(table).get((acc.member[2], sales)) == 50.5
    assert month_sums(table).get((acc.member[2], deals)) is None
    assert month_sums(table).get((acc.member[3], deals)) == 7
    assert table.column_totals == {sales: 1301 + 50.5 + 7, profit: 30 + 5 + 7, deals: 3 + 7}


def test_month_table_leaves_out_inactive_members(app, make_account):
    acc = make_account("acme", **ingest_options())
    run(acc, "20180501.csv", csv_file([[1, 100, 1, 1, ""], [2, 50, 1, 1, ""]]))
    db.session.execute(update(Member).where(Member.id == acc.member[2]).values(active=False))
    db.session.commit()
    table = results.month_table(acc.id, 2018, 5)
    assert [m.no for m in table.members] == [1, 3]
    assert table.column_totals[acc.column["売上"]] == 100
    with pytest.raises(Invalid):
        results.month_table(acc.id, 2018, 13)


def test_export_writes_the_import_layout(app, make_account):
    acc = make_account("acme", **ingest_options())
    run(acc, "20180516.csv", csv_file([
        [2, "1,234,567", "-20", "", "=HYPERLINK(\"http://x\")"],
        [1, "12.5", "△3", 1, "@cmd"],
        [1, "0.1", "", "", "普通のメモ"],
    ]))
    run(acc, "20180500.csv", csv_file([[3, 9, 9, 9, "月次"]]))

    day = results.export_csv(acc.id, "20180516", "utf-8").decode("utf-8")
    month = results.export_csv(acc.id, "201805", "cp932").decode("cp932")

    assert day.split("\r\n") == [
        "No.,売上,粗利,件数,備考",
        "1,12.5,-3,1,'@cmd",
        "1,0.1,,,普通のメモ",
        "2,1234567,-20,,\"'=HYPERLINK(\"\"http://x\"\")\"",
        "",
    ]
    assert month == "No.,売上,粗利,件数,備考\r\n3,9,9,9,月次\r\n"


def test_export_uses_the_employee_id_when_that_is_the_key(app, make_account):
    acc = make_account("acme", **ingest_options(member_key="employee_id"))
    run(acc, "20180516.csv", csv_file([["007", 1, 2, 3, ""]], header=["社員ID", "売上", "粗利", "件数", "備考"]))
    assert results.export_csv(acc.id, "20180516") == "社員ID,売上,粗利,件数,備考\r\n007,1,2,3,\r\n".encode("cp932")


def test_export_round_trips_through_the_importer(app, make_account):
    acc = make_account("acme", **ingest_options())
    first = run(acc, "20180516.csv", csv_file([[2, "1,000", "-0.25", "", "a,\"b\"\nc"], [1, 3, 4, 5, "㈱①"]]))
    before = [row[:3] for row in stored(acc)]
    for encoding in ("cp932", "utf-8"):
        again = run(acc, "20180516.csv", results.export_csv(acc.id, "20180516", encoding))
        assert again.status == "succeeded", [e.message for e in again.errors]
        assert sorted(row[:3] for row in stored(acc)) == sorted(before)
    assert first.id not in {row[3] for row in stored(acc)}


def test_export_refuses_what_cp932_cannot_hold(app, make_account):
    acc = make_account("acme", **ingest_options())
    results.add_manual(acc.id, acc.member[1], parse_period("20180516"), {acc.column["売上"]: 1}, note="絵文字😀")
    with pytest.raises(Invalid, match="utf-8"):
        results.export_csv(acc.id, "20180516", "cp932")
    assert "絵文字😀" in results.export_csv(acc.id, "20180516", "utf-8").decode()
    with pytest.raises(Invalid):
        results.export_csv(acc.id, "2018-05", "utf-8")
    with pytest.raises(Invalid):
        results.export_csv(acc.id, "20180516", "latin-1")


def test_add_manual_checks_member_and_columns_of_the_account(app, make_account):
    acc = make_account("acme", **ingest_options())
    other = make_account("other", **ingest_options())
    period = parse_period("201805")
    result = results.add_manual(acc.id, acc.member[1], period, {acc.column["件数"]: 2}, note=" 手入力 ")
    assert (result.period_kind, result.values, result.note) == (
        "month", {str(acc.column["件数"]): 2.0}, "手入力")
    with pytest.raises(NotFound):
        results.add_manual(acc.id, other.member[1], period, {acc.column["件数"]: 2})
    with pytest.raises(Invalid):
        results.add_manual(acc.id, acc.member[1], period, {other.column["件数"]: 2})
    with pytest.raises(Invalid):
        results.add_manual(acc.id, acc.member[1], period, {})


@pytest.mark.parametrize("value, text", [(120000.0, "120000"), (-3.0, "-3"), (12.5, "12.5"), (0.1, "0.1"),
                                         (1e16, "10000000000000000"), (1.5e-7, "0.00000015")])
def test_numbers_are_written_the_way_the_importer_reads_them(value, text):
    assert results.format_number(value) == text
