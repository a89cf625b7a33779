"""The bad-CSV corpus (tests/fixtures/corpus.py) through the one ingest path, case by case.

Every malformed file must end as a FAILED import with Japanese error records that point at
the line / column / value, an error report in the outbox, no rows stored, and the earlier
good import of the same name untouched. The few legitimately valid files must succeed with
the expected rows. An exception escaping ingest, or the "system error" fallback message
(which is what ingest records when the importer itself crashed), fails the case.
"""
from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import select

from app.errors import MAX_ERRORS_PER_FILE, ImportRejected, RowError
from app.extensions import db
from app.importer.filename import parse_filename
from app.models import Import, ImportErrorRecord, OutboxMail
from app.services import files, ingest, members, results, runner
from tests.fixtures.corpus import (
    COLUMNS, CSV_CASES, ERROR_TO, FORMULAS, GOOD_CSV, GOOD_NAME, INACTIVE_MEMBER, MEMBERS, CsvCase,
)
from tests.fixtures.ingest import line_count, stored_lines

# Hiragana, katakana or CJK ideographs: the message is written in Japanese.
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def corpus_account(make_account):
    """The account the corpus is written for (see tests/fixtures/corpus.py); INACTIVE_MEMBER is deactivated."""
    made = make_account("acme", members=[(*m, "営業部") for m in (*MEMBERS, INACTIVE_MEMBER)], columns=COLUMNS,
                        mode="api", status="active", error_to=[ERROR_TO])
    members.set_active(made.id, made.member[INACTIVE_MEMBER[0]], False)
    return made


@pytest.fixture
def acme(app, make_account):
    return corpus_account(make_account)


def web_import(account_id: int, filename: str, data: bytes, sender: str) -> Import:
    """What the browser upload does: receive, then run the import (the worker's part) at once."""
    received = ingest.receive(account_id, filename, data, channel="web", sender=sender)
    runner.run_import(received.id)
    db.session.expire_all()
    return db.session.get(Import, received.id)


def snapshot(import_id: int) -> list[tuple]:
    """The stored results of one import, in a comparable form."""
    period = db.session.get(Import, import_id).period_date
    return [(line.member_id, period, line.line, line.values, line.note) for _id, line in stored_lines(import_id)]


def prior_name(case: CsvCase) -> str:
    """The name of the earlier good import: the case's own name when that name is valid."""
    try:
        parse_filename(case.stored_name)
    except ImportRejected:
        return GOOD_NAME
    return case.stored_name


def physical_line_count(data: bytes) -> int:
    return max(1, len(re.findall(rb"\r\n|\r|\n", data)) + 1)


def test_the_corpus_is_large_enough():
    malformed = [case for case in CSV_CASES if not case.ok]
    assert len(malformed) >= 40, len(malformed)
    assert len({case.data for case in malformed}) >= 35  # not one file under many names


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CSV_CASES, ids=[case.id for case in CSV_CASES])
def test_bad_csv_case(acme, case: CsvCase, caplog):
    prior = web_import(acme.id, prior_name(case), GOOD_CSV, acme.email)
    assert prior.status == Import.SUCCEEDED
    before = snapshot(prior.id)
    assert len(before) == 2

    with caplog.at_level(logging.ERROR, logger="app.services.runner"):
        imp = web_import(acme.id, case.filename, case.data, acme.email)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "the importer crashed"
    assert imp.filename == case.stored_name
    assert files.read(imp.id) == case.data, "the original bytes are kept as received"
    errors = list(db.session.scalars(
        select(ImportErrorRecord).where(ImportErrorRecord.import_id == imp.id).order_by(ImportErrorRecord.id)))

    if case.ok:
        assert imp.status == Import.SUCCEEDED, [e.message for e in errors]
        assert imp.row_count == case.rows
        assert len(snapshot(imp.id)) == case.rows
        assert errors == []
        if prior.filename == imp.filename:
            assert imp.replaced_import_id == prior.id
            assert snapshot(prior.id) == []
        return

    assert imp.status == Import.FAILED
    # Every error is counted; only the first MAX_ERRORS_PER_FILE are stored, with clipped texts.
    assert imp.error_count >= case.min_errors
    assert len(errors) == min(imp.error_count, MAX_ERRORS_PER_FILE)
    for error in errors:
        assert error.message.strip() and JAPANESE.search(error.message), error.message
        assert error.message != runner.SYSTEM_ERROR_MESSAGE, "the importer crashed on this file"
        if "使える見出し" in error.message:  # docs/spec.md: the message lists the account's column names
            assert all(name in error.message for name, _ in COLUMNS), error.message
        if error.line is not None:
            # +1: "the quote was never closed" is reported on the line after the last one.
            assert 1 <= error.line <= physical_line_count(case.data) + 1, (error.line, error.message)
    wanted = {key: getattr(case, key) for key in ("line", "column", "value") if getattr(case, key) is not None}
    if "value" in wanted:
        wanted["value"] = RowError(message="", value=wanted["value"]).clipped().value
    if wanted:
        assert any(all(getattr(error, key) == value for key, value in wanted.items()) for error in errors), (
            wanted, [(e.line, e.column, e.value, e.message) for e in errors[:5]])
    if case.message:
        assert any(case.message in error.message for error in errors), [e.message for e in errors[:5]]

    # Nothing of the bad file is stored, the earlier file of that name is untouched.
    assert line_count(imp.id) == 0
    assert db.session.get(Import, prior.id).status == Import.SUCCEEDED
    assert snapshot(prior.id) == before

    # The error report waits in the outbox for エラー報告メールアドレス.
    report = db.session.scalar(select(OutboxMail).where(OutboxMail.import_id == imp.id))
    assert report is not None and report.kind == "error" and report.to_addrs == [ERROR_TO]
    assert "【取込エラー】" in report.subject
    assert errors[0].message in report.body


def test_formula_looking_notes_are_stored_as_text_and_neutralised_on_export(acme):
    case = next(case for case in CSV_CASES if case.id == "formula-looking-notes")
    imp = web_import(acme.id, case.filename, case.data, acme.email)
    assert imp.status == Import.SUCCEEDED
    notes = [row[4] for row in snapshot(imp.id)]
    assert notes == list(FORMULAS)  # stored exactly as sent

    exported = results.export_csv(acme.id, "20180521", "utf-8").decode("utf-8").splitlines()
    assert exported[0] == "No.,売上,粗利,件数,備考"
    assert sorted(exported[1:]) == sorted([
        "1,-100,,,'=1+2",
        "2,-100,,,'+81",
        "3,-100,,,'-cmd|' /C calc'!A0",
        "1,-100,,,'@SUM(A1)",
    ])


def test_a_too_large_number_is_not_stored_as_infinity(acme):
    # 400 digits overflow a float to inf, which is not JSON: the board could no longer read the period.
    data = ("No.,売上\r\n1," + "9" * 400 + "\r\n2,100\r\n").encode()
    imp = web_import(acme.id, GOOD_NAME, data, acme.email)
    assert imp.status == Import.FAILED
    assert [(e.line, e.column) for e in imp.errors] == [(2, "売上")]
    assert results.month_table(acme.id, 2018, 5).column_totals == {}
