"""Recovery after kill -9: no accepted file waits for a timeout.

A real `python run.py` is killed with SIGKILL while its worker imports a large file; the
claims it held are *not* aged by the test (no `expire_claims`). Started again on the same data
folder, it must import every accepted file (the one it was importing, and one still in the
SMTP spool or queued behind it) within RESTART_TARGET seconds: its dead claim is taken back at
once because the dead process's lock file in the data folder is no longer locked.

With several worker processes (`run.py --only worker`), killing the one that holds a claim
hands the import to another within seconds: on PostgreSQL each worker has a data folder of
its own (as on separate machines, so no lock file is shared) and the claim's lease runs out;
on SQLite the workers share the data folder (one machine) and the lock file tells at once.
The measured seconds are printed (`-s`) and written to test-output/recovery-figures.json.
"""
from __future__ import annotations

import json
import re
import smtplib
import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY

import requests

from tests.fixtures.database import ON_POSTGRESQL
from tests.fixtures.processes import (
    ROOT, SENDER, AccountSpec, RenkeiProcess, good_rows, log_problems, query, results_csv, scalar,
    setup_accounts,
)
from tests.fixtures.smtp_sink import SmtpSink
from tests.fixtures.waiting import wait_for

WAIT = 60  # seconds an awaited state may take (each wait ends as soon as it holds)
RESTART_TARGET = 30  # every accepted file imported within this many seconds of the restart
# Large enough to be killed mid-import (PostgreSQL imports more slowly, so fewer rows do).
BIG_ROWS = 100_000 if ON_POSTGRESQL else 200_000
# A quarter of what the big file's lines take stored (40 bytes each: line, member and three numbers).
WRITING_BYTES = BIG_ROWS * 10
LEASE_SECONDS = 3  # the multi-worker test's lease (RENKEI_CLAIM_LEASE_SECONDS)
TAKEOVER_TARGET = 15  # seconds from the kill until another worker holds the claim
FIGURES_FILE = ROOT / "test-output" / "recovery-figures.json"


def _mail(to: str, filename: str, data: bytes) -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = to
    message["Subject"] = "実績"
    message.set_content("本文は無視されます。")
    message.add_attachment(data, maintype="text", subtype="csv", filename=filename)
    return message


class _MailInFlight:
    """A mail sent up to its DATA's last line: `finish()` sends the final "." and checks the 250.

    So a mail of megabytes is accepted within moments of the test's choosing (while an import
    runs), not after however long its transfer takes.
    """

    def __init__(self, server: RenkeiProcess, to: str, filename: str, data: bytes):
        self._client = smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=WAIT)
        self._client.ehlo()
        assert self._client.mail(SENDER)[0] == 250
        assert self._client.rcpt(to)[0] == 250
        assert self._client.docmd("DATA")[0] == 354
        text = _mail(to, filename, data).as_bytes(policy=SMTP_POLICY)
        stuffed = re.sub(rb"(?m)^\.", b"..", text)  # RFC 5321 dot-stuffing
        self._client.send(stuffed if stuffed.endswith(b"\r\n") else stuffed + b"\r\n")

    def finish(self) -> None:
        self._client.send(b".\r\n")
        code, reply = self._client.getreply()
        assert code == 250, (code, reply)
        self._client.quit()


def _post(server: RenkeiProcess, token: str, filename: str, data: bytes) -> int:
    response = requests.post(server.web_url + "api/v1/imports", headers={"Authorization": f"Bearer {token}"},
                             files={"file": (filename, data)}, timeout=WAIT)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _imports(server: RenkeiProcess) -> list[tuple]:
    return query(server.db_url, "SELECT filename, status, row_count, attempts FROM imports ORDER BY id")


def _writing(server: RenkeiProcess, import_id: int):
    """A condition: the import is running and its rows are being written (uncommitted rows on disk)."""
    if server.db_url.startswith("sqlite"):
        wal = server.data_dir / "renkei.db-wal"
        query(server.db_url, "PRAGMA wal_checkpoint(TRUNCATE)")
        written = lambda: wal.stat().st_size if wal.exists() else 0  # noqa: E731
    else:
        start = scalar(server.db_url, "SELECT pg_total_relation_size('result_blocks')")
        written = lambda: scalar(server.db_url, "SELECT pg_total_relation_size('result_blocks')") - start  # noqa: E731
    status = "SELECT status FROM imports WHERE id = :id"
    return lambda: scalar(server.db_url, status, {"id": import_id}) == "running" and written() > WRITING_BYTES


def _record(name: str, figures: dict) -> None:
    saved = json.loads(FIGURES_FILE.read_text("utf-8")) if FIGURES_FILE.exists() else {}
    saved[name] = figures
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    FIGURES_FILE.write_text(json.dumps(saved, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"\nrecovery figures {name}:", json.dumps(figures, ensure_ascii=False))


def test_after_kill9_mid_import_every_accepted_file_is_imported_soon_after_the_restart(
        tmp_path, empty_database_url, renkei_processes):
    sink = SmtpSink().start()
    try:
        data_dir = tmp_path / "data"
        server = RenkeiProcess(data_dir, tmp_path / "renkei.log", env={"RENKEI_SMTP_RELAY": sink.url},
                               database_url=empty_database_url)
        renkei_processes.append(server)
        server.start()
        accounts = setup_accounts(data_dir, [AccountSpec("recover-mail", "mail"), AccountSpec("recover-api", "api")],
                                  empty_database_url)
        mail, api = accounts["recover-mail"], accounts["recover-api"]

        # Killed while importing a large file from the API, with a large mail accepted (250) meanwhile:
        # on SQLite the mail is still in the spool (its drain waits for the import's write lock).
        big_mail = results_csv(good_rows(BIG_ROWS, seed=2))
        in_flight = _MailInFlight(server, mail.inbound_address, "20240702.csv", big_mail)
        api_id = _post(server, api.api_token, "20240701.csv", results_csv(good_rows(BIG_ROWS, seed=1)))
        wait_for(_writing(server, api_id), WAIT, lambda: f"the API import did not start\n{server.log_tail(30)}")
        in_flight.finish()
        server.kill9()
        at_kill = _imports(server)
        spooled = len(list((data_dir / "spool" / "mail").glob("*.entry")))
        assert ("20240701.csv", "running") in [row[:2] for row in at_kill], at_kill

        # Restart 1: the dead claim of the API file is taken back at once; killed again while the mail's file imports.
        restarted = time.monotonic()
        server.start()
        api_done = "SELECT status FROM imports WHERE id = :id"
        wait_for(lambda: scalar(server.db_url, api_done, {"id": api_id}) == "succeeded", WAIT,
                   lambda: f"{_imports(server)}\n{server.log_tail(30)}")
        first_restart = time.monotonic() - restarted
        assert first_restart < RESTART_TARGET, (first_restart, _imports(server))
        mail_id = wait_for(lambda: scalar(server.db_url, "SELECT id FROM imports WHERE filename = '20240702.csv'"),
                             WAIT, "the mail was not drained")
        wait_for(_writing(server, mail_id), WAIT, lambda: f"the mail import did not start\n{server.log_tail(30)}")
        server.kill9()

        # Restart 2: the mail's file, whose import was killed, is imported at once.
        restarted = time.monotonic()
        server.start()
        finished = lambda: (rows := _imports(server)) and all(r[1] == "succeeded" for r in rows) and rows  # noqa: E731
        rows = wait_for(finished, WAIT, lambda: f"{_imports(server)}\n{server.log_tail(30)}")
        seconds = time.monotonic() - restarted
        assert seconds < RESTART_TARGET, (seconds, rows)
        assert [r[:3] for r in rows] == [("20240701.csv", "succeeded", BIG_ROWS),
                                         ("20240702.csv", "succeeded", BIG_ROWS)]
        for filename, rows_expected in (("20240701.csv", BIG_ROWS), ("20240702.csv", BIG_ROWS)):
            stored = scalar(server.db_url, "SELECT sum(b.line_count) FROM result_blocks b JOIN imports i ON i.id = b.import_id "
                                           "WHERE i.filename = :f", {"f": filename})
            assert stored == rows_expected
        log = server.log_text()
        assert "its process has ended" in log and "over 300s old" not in log
        assert server.stop() == 0
        problems = log_problems(server.log_text())
        assert not problems, "\n".join(problems[:40])
        _record("single-process-restart", {
            "database": "postgresql" if ON_POSTGRESQL else "sqlite", "rows": [BIG_ROWS, BIG_ROWS],
            "mail_spooled_at_first_kill": spooled,
            "seconds_restart_1_to_api_file_imported": round(first_restart, 2),
            "seconds_restart_2_to_mail_file_imported": round(seconds, 2), "target_seconds": RESTART_TARGET})
    finally:
        sink.stop()


def test_a_killed_workers_claim_is_taken_over_by_another_worker_within_seconds(
        tmp_path, empty_database_url, renkei_processes):
    env = {"RENKEI_CLAIM_LEASE_SECONDS": str(LEASE_SECONDS)}
    first = RenkeiProcess(tmp_path / "data-1", tmp_path / "renkei-1.log", env=env, database_url=empty_database_url)
    renkei_processes.append(first)
    first.start()
    api = setup_accounts(first.data_dir, [AccountSpec("workers-api", "api")], empty_database_url)["workers-api"]
    # PostgreSQL: another machine (a data folder of its own). SQLite: one machine, one data folder.
    second_dir = tmp_path / "data-2" if ON_POSTGRESQL else first.data_dir
    second = RenkeiProcess(second_dir, tmp_path / "renkei-2.log", "--only", "worker", env=env,
                           database_url=first.db_url if ON_POSTGRESQL else "")
    renkei_processes.append(second)
    second.start()

    import_id = _post(first, api.api_token, "20240801.csv", results_csv(good_rows(BIG_ROWS, seed=3)))
    wait_for(_writing(first, import_id), WAIT, lambda: f"the import did not start\n{first.log_tail(30)}")
    by_id = {"id": import_id}
    holder = scalar(first.db_url, "SELECT claimed_by FROM imports WHERE id = :id", by_id)
    pid = int(holder.rsplit(":", 2)[1])
    killed, survivor = (first, second) if pid == first.pid else (second, first)
    assert pid == killed.pid, (holder, first.pid, second.pid)
    killed.kill9()
    at_kill = time.monotonic()

    def taken_over():
        status, claimed_by = query(first.db_url, "SELECT status, claimed_by FROM imports WHERE id = :id", by_id)[0]
        return status == "succeeded" or (claimed_by or "").split(":")[1:2] == [str(survivor.pid)]

    wait_for(taken_over, WAIT, lambda: f"{_imports(first)}\n{survivor.log_tail(30)}")
    takeover = time.monotonic() - at_kill
    wait_for(lambda: scalar(first.db_url, "SELECT status FROM imports WHERE id = :id", by_id) == "succeeded",
               WAIT, lambda: f"{_imports(first)}\n{survivor.log_tail(30)}")
    imported = time.monotonic() - at_kill
    assert takeover < TAKEOVER_TARGET, takeover
    row_count, attempts = query(first.db_url, "SELECT row_count, attempts FROM imports WHERE id = :id", by_id)[0]
    assert (row_count, attempts) == (BIG_ROWS, 2)
    assert scalar(first.db_url, "SELECT sum(line_count) FROM result_blocks WHERE import_id = :id", by_id) == BIG_ROWS
    why = "its lease ran out" if ON_POSTGRESQL else "its process has ended"
    assert why in survivor.log_text()
    _record("multi-worker-takeover", {
        "database": "postgresql" if ON_POSTGRESQL else "sqlite", "lease_seconds": LEASE_SECONDS,
        "killed": "run.py" if killed is first else "run.py --only worker",
        "seconds_kill_to_claim_taken_over": round(takeover, 2),
        "seconds_kill_to_imported": round(imported, 2), "target_seconds": TAKEOVER_TARGET})
