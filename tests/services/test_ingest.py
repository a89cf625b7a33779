"""The one ingest path against a real SQLite database: store, queue, import (replace rule), dry run.

Helpers (ingest_options, csv_file, stored, run, count) are in tests/fixtures/ingest.py.
"""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app import create_app
from app.errors import Invalid, NotFound
from app.extensions import db
from app.importer.filename import parse_period
from app.models import Import, ImportErrorRecord, OutboxMail
from app.models_results import ManualResult, ResultBlock
from app.db import bulk
from app.api.shapes import import_json
from app.services import files, ingest, queue, results, runner
from tests.fixtures.accounts import create_test_account
from app.importer.block import Block
from app.importer.layout import BATCH_ROWS
from tests.fixtures.ingest import count, csv_file, ingest_options, line_count, run, stored, stored_lines
from tests.fixtures.waiting import at_once

# ----------------------------------------------------------------------------- receive


def test_receive_stores_original_bytes_base_name_and_queues(app, make_account):
    acc = make_account("acme", **ingest_options())
    data = csv_file([[1, 100, 50, 1, "A社"]])

    imp = ingest.receive(acc.id, "C:\\Users\\taro\\送信\\20180516.csv", data, channel="mail",
                         sender="taro@example.com", note="Message-ID <x@y>")

    db.session.remove()  # committed: visible from a fresh session
    again = db.session.get(Import, imp.id)
    assert again.status == Import.QUEUED
    assert again.filename == "20180516.csv"
    assert files.read(again.id) == data and again.size == len(data)
    assert again.sha256 == __import__("hashlib").sha256(data).hexdigest()
    assert (again.channel, again.sender, again.note) == ("mail", "taro@example.com", "Message-ID <x@y>")
    assert line_count() == 0


def test_receive_with_same_dedupe_key_returns_the_first_import(app, make_account):
    acc = make_account("acme", **ingest_options())
    first = ingest.receive(acc.id, "20180516.csv", b"x", channel="mail", dedupe_key="msg-1:abc")
    second = ingest.receive(acc.id, "20180516.csv", b"x", channel="mail", dedupe_key="msg-1:abc")
    other = ingest.receive(acc.id, "20180516.csv", b"x", channel="mail", dedupe_key="msg-2:abc")
    assert second.id == first.id
    assert other.id != first.id
    assert count(Import) == 2


def test_dedupe_race_on_unique_constraint_returns_the_winner(app, make_account, monkeypatch):
    acc = make_account("acme", **ingest_options())
    winner = ingest.receive(acc.id, "20180516.csv", b"x", channel="mail", dedupe_key="msg-1")
    # Simulate the other writer committing between our look-up and our insert.
    real = ingest._by_dedupe_key
    calls = []

    def racy(account_id, key):
        calls.append(key)
        return None if len(calls) == 1 else real(account_id, key)

    monkeypatch.setattr(ingest, "_by_dedupe_key", racy)
    again = ingest.receive(acc.id, "20180516.csv", b"x", channel="mail", dedupe_key="msg-1")
    assert again.id == winner.id
    assert count(Import) == 1


def test_record_refusal_keeps_history_without_content(app, make_account):
    acc = make_account("acme", **ingest_options())
    imp = ingest.record_refusal(acc.id, channel="mail", filename="dir/20180516.csv", sender="evil@example.com",
                                status=Import.REFUSED, note="未登録の送信元")
    db.session.remove()
    again = db.session.get(Import, imp.id)
    assert (again.status, again.filename, files.read(again.id), again.note) == (
        "refused", "20180516.csv", None, "未登録の送信元")
    assert count(OutboxMail) == 0  # no report for a refusal
    with pytest.raises(ValueError):
        ingest.record_refusal(acc.id, channel="mail", filename="a.csv", sender=None, status="queued", note=None)


def test_record_failure_stores_a_failed_import_with_its_error_report(app, make_account):
    acc = make_account("acme", **ingest_options())
    imp = ingest.record_failure(acc.id, channel="mail", filename="20180516.csv", sender="taro@example.com",
                                message="添付ファイルが大きすぎます(上限 25 MiB)。", dedupe_key="m1:20180516.csv")
    again = ingest.record_failure(acc.id, channel="mail", filename="20180516.csv", sender="taro@example.com",
                                  message="添付ファイルが大きすぎます(上限 25 MiB)。", dedupe_key="m1:20180516.csv")
    assert again.id == imp.id
    db.session.expire_all()
    assert (imp.status, imp.error_count, files.read(imp.id), imp.errors[0].message) == (
        "failed", 1, None, "添付ファイルが大きすぎます(上限 25 MiB)。")
    assert queue.claim_next() is None
    [mail] = db.session.scalars(select(OutboxMail)).all()
    assert mail.kind == "error" and "添付ファイルが大きすぎます" in mail.body


# ----------------------------------------------------------------------------- importing


def test_import_stores_each_line_with_values_by_column(app, make_account):
    acc = make_account("acme", **ingest_options())
    data = csv_file([[1, "120,000", 30000, 2, ""], [2, "△500", "", 1, "A社 新規"], [1, 10.5, 0, "", ""]])

    imp = run(acc, "20180516.csv", data)

    assert imp.status == Import.SUCCEEDED, [e.message for e in imp.errors]
    assert (imp.row_count, imp.error_count, imp.period_kind, imp.period_date) == (3, 0, "day", dt.date(2018, 5, 16))
    assert imp.encoding in ("utf-8", "cp932")
    assert imp.finished_at is not None and imp.replaced_import_id is None
    assert stored(acc) == [
        (1, {"売上": 120000, "粗利": 30000, "件数": 2}, None, imp.id),
        (2, {"売上": -500, "件数": 1}, "A社 新規", imp.id),
        (1, {"売上": 10.5, "粗利": 0}, None, imp.id),
    ]
    lines = [line.line for _import_id, line in stored_lines()]
    assert lines == [2, 3, 4]


def test_header_order_and_partly_empty_rows_keep_values_in_the_right_columns(app, make_account):
    acc = make_account("acme", **ingest_options())
    data = csv_file([[7, 3, 1, ""], [3, "", 2, 5], [3, 4, 2, 6]], header=["件数", "粗利", "No.", "売上"])
    # The key is found by its header in any column (here column 3).
    first = run(acc, "20180516.csv", data)
    assert first.status == Import.SUCCEEDED, [e.message for e in first.errors]
    assert [(no, values) for no, values, _, _ in stored(acc)] == [
        (1, {"件数": 7, "粗利": 3}), (2, {"件数": 3, "売上": 5}), (2, {"件数": 3, "粗利": 4, "売上": 6})]
    data = csv_file([[3, 7, 3, 1], [1, "", 2, 5], [2, 4, "", ""]], header=["No.", "件数", "粗利", "売上"])
    imp = run(acc, "20180516.csv", data)
    assert imp.status == Import.SUCCEEDED
    assert stored(acc) == [
        (3, {"件数": 7, "粗利": 3, "売上": 1}, None, imp.id),
        (1, {"粗利": 2, "売上": 5}, None, imp.id),
        (2, {"件数": 4}, None, imp.id),
    ]


def test_reimport_of_same_name_replaces_previous_rows(app, make_account):
    acc = make_account("acme", **ingest_options())
    first = run(acc, "20180516.csv", csv_file([[1, 100, 10, 1, ""], [2, 200, 20, 2, ""], [3, 300, 30, 3, ""]]))
    other_day = run(acc, "20180517.csv", csv_file([[1, 5, 5, 5, ""]]))

    second = run(acc, "20180516.csv", csv_file([[2, 250, 25, 2, "修正"]]))

    assert second.status == Import.SUCCEEDED
    assert second.replaced_import_id == first.id
    assert stored(acc, "20180516") == [(2, {"売上": 250, "粗利": 25, "件数": 2}, "修正", second.id)]
    assert stored(acc, "20180517") == [(1, {"売上": 5, "粗利": 5, "件数": 5}, None, other_day.id)]
    assert db.session.get(Import, first.id).status == Import.SUCCEEDED  # history keeps what happened

    third = run(acc, "20180516.csv", csv_file([[3, 1, 1, 1, ""]]))
    assert third.replaced_import_id == second.id
    assert [row[0] for row in stored(acc, "20180516")] == [3]


def test_failed_reimport_keeps_old_data_and_lists_every_error(app, make_account):
    acc = make_account("acme", **ingest_options())
    good = run(acc, "20180516.csv", csv_file([[1, 100, 10, 1, ""], [2, 200, 20, 2, ""]]))
    before = stored(acc)

    bad = run(acc, "20180516.csv", csv_file([[1, 999, 9, 9, ""], [2, "abc", 5, 1, ""], [99, 1, 1, 1, ""],
                                              [3, 1, "1.2.3", 1, ""]]))

    assert bad.status == Import.FAILED
    assert stored(acc) == before
    assert db.session.get(Import, good.id).status == Import.SUCCEEDED
    errors = db.session.scalars(
        select(ImportErrorRecord).where(ImportErrorRecord.import_id == bad.id).order_by(ImportErrorRecord.id)).all()
    assert [(e.line, e.column, e.value) for e in errors] == [(3, "売上", "abc"), (4, "No.", "99"), (5, "粗利", "1.2.3")]
    assert all(e.message for e in errors)
    assert bad.error_count == 3 and bad.row_count == 0 and bad.replaced_import_id is None


def test_monthly_file_is_a_month_period(app, make_account):
    acc = make_account("acme", **ingest_options())
    imp = run(acc, "20180500.csv", csv_file([[1, 1000, 100, 10, ""]]))
    assert (imp.status, imp.period_kind, imp.period_date) == ("succeeded", "month", dt.date(2018, 5, 1))
    assert stored(acc, "201805") == [(1, {"売上": 1000, "粗利": 100, "件数": 10}, None, imp.id)]
    assert stored(acc, "20180501") == []


def test_hand_typed_results_are_never_touched_by_imports(app, make_account):
    acc = make_account("acme", **ingest_options())
    period = parse_period("20180516")
    manual = results.add_manual(acc.id, acc.member[3], period, {acc.column["売上"]: 777}, note="手入力")
    run(acc, "20180516.csv", csv_file([[1, 100, 10, 1, ""]]))
    run(acc, "20180516.csv", csv_file([[2, 200, 20, 2, ""]]))
    run(acc, "20180516.csv", csv_file([[2, "x", 20, 2, ""]]))  # a failure rolls back too
    rows = stored(acc, "20180516")
    assert (3, {"売上": 777}, "手入力", None) in rows
    assert [row[0] for row in rows if row[3] is not None] == [2]
    assert db.session.get(ManualResult, manual.id) is not None


def test_bad_file_name_fails_but_still_reports_the_row_errors(app, make_account):
    acc = make_account("acme", **ingest_options())
    imp = run(acc, "2018-05-16.csv", csv_file([[1, "x", 1, 1, ""]]))
    assert imp.status == Import.FAILED
    messages = [(e.line, e.value, e.message) for e in imp.errors]
    assert "yyyymmdd" in messages[0][2] and messages[0][1] == "2018-05-16.csv"
    assert messages[1][:2] == (2, "x")
    assert line_count() == 0


def test_member_key_employee_id_and_cp932_text(app, make_account):
    acc = make_account("acme", **ingest_options(member_key="employee_id"))
    data = csv_file([["007", 1, 2, 3, "㈱髙﨑① ～"], ["E001", 4, 5, 6, ""]], header=["社員ID", "売上", "粗利", "件数", "備考"])
    imp = run(acc, "20180516.csv", data)
    assert imp.status == Import.SUCCEEDED and imp.encoding == "cp932"
    assert stored(acc)[0] == (3, {"売上": 1, "粗利": 2, "件数": 3}, "㈱髙﨑① ～", imp.id)
    # The header of the other key is refused with a message naming the expected one.
    wrong = run(acc, "20180517.csv", csv_file([[1, 1, 1, 1, ""]]))
    assert wrong.status == Import.FAILED and "社員ID" in wrong.errors[0].message


def test_pinned_encoding_is_used(app, make_account):
    acc = make_account("acme", **ingest_options(encoding="utf-8"))
    imp = run(acc, "20180516.csv", csv_file([[1, 1, 1, 1, "日本語"]], encoding="cp932"))
    assert imp.status == Import.FAILED and "UTF-8" in imp.errors[0].message
    imp = run(acc, "20180516.csv", csv_file([[1, 1, 1, 1, "日本語"]], encoding="utf-8"))
    assert imp.status == Import.SUCCEEDED


def test_large_file_goes_in_batches_and_an_error_on_the_last_line_stores_nothing(app, make_account):
    acc = make_account("acme", **ingest_options())
    rows = [[n % 3 + 1, n, n * 2, "" if n % 7 == 0 else 1, ""] for n in range(bulk.BATCH_SIZE * 2 + 123)]
    imp = run(acc, "20180516.csv", csv_file(rows))
    assert imp.status == Import.SUCCEEDED and imp.row_count == len(rows)
    assert line_count() == len(rows)
    n = (bulk.BATCH_SIZE // 7 + 1) * 7  # in the second batch, with 件数 empty
    sample = stored_lines()[n][1].values
    assert sample == {acc.column["売上"]: n, acc.column["粗利"]: n * 2}  # n % 7 == 0: 件数 empty

    bad = run(acc, "20180516.csv", csv_file(rows + [[1, "oops", 1, 1, ""]]))
    assert bad.status == Import.FAILED
    assert [(e.line, e.value) for e in bad.errors] == [(len(rows) + 2, "oops")]
    assert line_count() == len(rows)
    assert line_count(imp.id) == len(rows)


def test_an_import_is_stored_as_one_block_per_reader_batch(app, make_account):
    acc = make_account("acme", **ingest_options())
    rows = [[n % 3 + 1, n, "" if n % 5 else n * 2, 1, f"メモ{n}" if n % 2 else ""] for n in range(BATCH_ROWS * 2 + 50)]
    imp = run(acc, "20180516.csv", csv_file(rows))
    assert imp.status == Import.SUCCEEDED
    blocks = db.session.execute(select(ResultBlock.block, ResultBlock.line_count)
                                .where(ResultBlock.import_id == imp.id).order_by(ResultBlock.block)).all()
    assert [tuple(block) for block in blocks] == [(0, BATCH_ROWS), (1, BATCH_ROWS), (2, 50)]
    got = stored(acc, "20180516")
    assert len(got) == len(rows)
    assert got[7][:3] == (2, {"売上": 7.0, "件数": 1.0}, "メモ7")
    assert got[10][:3] == (2, {"売上": 10.0, "粗利": 20.0, "件数": 1.0}, None)
    assert got[BATCH_ROWS * 2 + 49][:3] == (3, {"売上": 1049.0, "件数": 1.0}, "メモ1049")


def test_unexpected_error_fails_the_import_and_rolls_back(app, make_account, monkeypatch):
    acc = make_account("acme", **ingest_options())
    good = run(acc, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]))

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(bulk.Inserter, "insert", boom)
    imp = run(acc, "20180516.csv", csv_file([[2, 2, 2, 2, ""]]))
    assert imp.status == Import.FAILED and imp.errors[0].message == runner.SYSTEM_ERROR_MESSAGE
    assert [row[3] for row in stored(acc)] == [good.id]


def test_run_import_never_runs_a_finished_import_twice(app, make_account):
    acc = make_account("acme", **ingest_options())
    imp = run(acc, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]))
    again = runner.run_import(imp.id)
    assert again.id == imp.id and line_count() == 1
    with pytest.raises(NotFound):
        runner.run_import(999999)


# ----------------------------------------------------------------------------- the queue


def test_queue_survives_an_app_restart(tmp_path, new_database):
    config = {"TESTING": True, "DATA_DIR": str(tmp_path), "SQLALCHEMY_DATABASE_URI": new_database(tmp_path),
              "SECRET_KEY": "x", "SMTP_RELAY": None, "PUBLIC_URL": "http://renkei.test"}
    first = create_app(config)
    with first.app_context():
        account = create_test_account("acme", members=[(1, None, "山田")], columns=[("売上", "")])
        queued = ingest.receive(account.id, "20180516.csv", "No.,売上\r\n1,500\r\n".encode(), channel="ftp")
        queued_id, account_id = queued.id, account.id
        db.session.remove()
        db.engine.dispose()  # the process "dies" here

    second = create_app(config)
    with second.app_context():
        imp = queue.process_next()
        assert imp is not None and imp.id == queued_id
        assert imp.status == Import.SUCCEEDED
        assert len(stored_lines(account_id=account_id)) == 1
        assert queue.process_next() is None
        db.session.remove()
        db.engine.dispose()


def test_claim_next_takes_oldest_first_and_never_twice(app, make_account):
    acc = make_account("acme", **ingest_options())
    ids = [ingest.receive(acc.id, f"2018051{n}.csv", b"x", channel="api").id for n in range(3)]
    assert [queue.claim_next(), queue.claim_next(), queue.claim_next(), queue.claim_next()] == ids + [None]
    assert set(db.session.scalars(select(Import.status))) == {Import.RUNNING}


def test_two_claimers_at_once_split_the_queue(app, make_account):
    acc = make_account("acme", **ingest_options())
    ids = {ingest.receive(acc.id, "20180516.csv", b"x", channel="api").id for _ in range(30)}
    taken: dict[str, list[int]] = {"a": [], "b": []}

    def claimer(name: str) -> None:
        while (import_id := queue.claim_next()) is not None:
            taken[name].append(import_id)

    at_once(app, claimer, list(taken))
    everything = taken["a"] + taken["b"]
    assert sorted(everything) == sorted(ids)  # each exactly once


def test_stale_claims_are_requeued_and_repeated_crashes_fail_the_import(app, make_account):
    acc = make_account("acme", **ingest_options())
    imp = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]), channel="api")
    assert queue.claim_next() == imp.id
    assert queue.requeue_stale(300) == 0  # a fresh claim is left alone

    # A claim whose holder no process can see (made by an older version) falls back to its age.
    db.session.execute(update(Import).where(Import.id == imp.id)
                       .values(claimed_at=dt.datetime.utcnow() - dt.timedelta(minutes=10), claimed_by=None,
                               lease_until=None))
    db.session.commit()
    assert queue.requeue_stale(300) == 1
    assert db.session.get(Import, imp.id).status == Import.QUEUED
    assert queue.process_next().status == Import.SUCCEEDED

    poison = ingest.receive(acc.id, "20180517.csv", b"x", channel="api")
    db.session.execute(update(Import).where(Import.id == poison.id).values(
        status=Import.RUNNING, attempts=queue.MAX_ATTEMPTS, claimed_at=dt.datetime(2000, 1, 1)))
    db.session.commit()
    assert queue.requeue_stale(300) == 1
    db.session.expire_all()
    failed = db.session.get(Import, poison.id)
    assert failed.status == Import.FAILED and "中断" in failed.errors[0].message


def test_dry_run_validates_like_an_import_and_stores_nothing(app, make_account):
    acc = make_account("acme", **ingest_options())
    before = (count(Import), line_count(), count(ImportErrorRecord), count(OutboxMail))

    ok = ingest.dry_run(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, ""], [2, 2, 2, 2, ""]]))
    bad = ingest.dry_run(acc.id, "201805.csv", csv_file([[1, "x", 1, 1, ""], [42, 1, 1, 1, ""]]))

    assert (ok.ok, ok.rows, ok.period.key, ok.errors) == (True, 2, "20180516", [])
    assert bad.period is None and not bad.ok
    assert [(e.line, e.value) for e in bad.errors] == [(None, "201805.csv"), (2, "x"), (3, "42")]
    assert (count(Import), line_count(), count(ImportErrorRecord), count(OutboxMail)) == before


def test_reimport_queues_the_same_bytes_again(app, make_account):
    acc = make_account("acme", **ingest_options())
    other = make_account("other", **ingest_options())
    data = csv_file([[1, 1, 1, 1, ""]])
    first = run(acc, "20180516.csv", data)

    again = ingest.reimport(acc.id, first.id, "admin@acme.example")

    assert (again.status, again.filename, again.channel, again.sender, again.note) == (
        "queued", "20180516.csv", "web", "admin@acme.example", f"再取込 #{first.id}")
    assert files.read(again.id) == data
    assert queue.process_next().replaced_import_id == first.id
    with pytest.raises(NotFound):
        ingest.reimport(other.id, first.id, "admin@other.example")
    refused = ingest.record_refusal(acc.id, channel="mail", filename="20180516.csv", sender="x@y",
                                    status=Import.DISCARDED, note="停止中")
    with pytest.raises(Invalid):
        ingest.reimport(acc.id, refused.id, "admin@acme.example")


def test_receive_wakes_listeners(app, make_account):
    acc = make_account("acme", **ingest_options())
    woken = threading.Event()
    ingest.add_listener(woken.set)
    try:
        ingest.receive(acc.id, "20180516.csv", b"x", channel="api")
    finally:
        ingest.remove_listener(woken.set)
    assert woken.is_set()


def test_import_json_is_json_ready(app, make_account):
    acc = make_account("acme", **ingest_options())
    imp = run(acc, "20180500.csv", csv_file([[1, 1, 1, 1, ""]]))
    data = import_json(imp)
    assert data["period"] == "201805" and data["status"] == "succeeded" and data["status_label"] == "成功"
    assert data["received_at"].endswith("Z") and "." not in data["received_at"]


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])  # NaN would be read back as an empty cell
def test_a_value_that_is_not_a_finite_number_is_never_stored(app, make_account, monkeypatch, bad):
    from app.importer import layout

    acc = make_account("acme", **ingest_options())
    good = run(acc, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]))
    real_batches = layout.CsvReader.batches

    def overflowing(self):
        for batch in real_batches(self):
            # Line 3 gets a value that is no finite number, whatever the importer let through.
            block = Block(batch.column_ids)
            for line, member_id, values, note in batch:
                block.append(line, member_id, dict.fromkeys(values, bad) if line == 3 else values, note)
            yield block

    # Whatever the importer lets through, inf or nan must not be stored.
    monkeypatch.setattr(layout.CsvReader, "batches", overflowing)
    imp = run(acc, "20180516.csv", csv_file([[1, 2, 2, 2, ""], [2, 3, "", "", ""]]))
    assert imp.status == Import.FAILED
    assert [(e.line, e.column) for e in imp.errors] == [(3, "売上")]
    assert [row[3] for row in stored(acc)] == [good.id]


def test_base_name_strips_directories_and_control_characters():
    from app.services.ingest import base_name

    assert base_name("C:\\evil\\2018\x000516.csv") == "20180516.csv"
    assert base_name("../../etc/20180516.csv\r\n") == "20180516.csv"


def test_finite_values_whose_sum_overflows_are_stored(app, make_account):
    # The block writer checks finiteness through the batch's sum first: an infinite sum of finite
    # values must still be stored, exactly.
    acc = make_account("acme", **ingest_options())
    imp = run(acc, "20180517.csv", csv_file([[1, "9" * 308, "9" * 308, "", ""]]))  # each ~1e308, the sum inf
    assert imp.status == Import.SUCCEEDED, [e.message for e in imp.errors]
    values = stored(acc, "20180517")[0][1]
    assert values == {"売上": float("9" * 308), "粗利": float("9" * 308)}


def test_foreign_keys_are_checked_after_an_import(app, make_account):
    # A row referring to a member that does not exist is refused, before and after imports.
    acc = make_account("acme", **ingest_options())
    for data in (csv_file([[1, 1, 1, 1, ""]]), csv_file([[99, 1, 1, 1, ""]])):  # one that succeeds, one that fails
        run(acc, "20180516.csv", data)
        db.session.add(ManualResult(account_id=acc.id, member_id=999_999, period_kind="day",
                                    period_date=dt.date(2018, 5, 16), values={}))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()


def test_replacing_an_import_reads_only_the_old_imports_rows(app, make_account):
    # The DELETE of a replaced import must go through the import's own rows (its index), not
    # through every result of the account: that would make each import slower than the last.
    if db.engine.dialect.name != "sqlite":
        pytest.skip("query plan of SQLite")
    acc = make_account("acme", **ingest_options())
    deletes: list[tuple] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("DELETE FROM result_blocks"):
            deletes.append((statement, parameters))

    sa_event.listen(db.engine, "before_cursor_execute", capture)
    try:
        run(acc, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]))
        second = run(acc, "20180516.csv", csv_file([[2, 2, 2, 2, ""]]))
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", capture)
    assert second.replaced_import_id is not None and deletes
    statement, parameters = deletes[-1]
    with db.engine.connect() as conn:
        plan = " ".join(str(row) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
    assert "SEARCH result_blocks USING PRIMARY KEY (import_id=?)" in plan, plan
