"""Faults: `kill -9` of run.py at precise moments, restart on the same data folder, nothing lost or doubled.

Each scenario kills the process (SIGKILL: no clean-up code runs) at one moment of a file's or
a mail's way through Renkei: (a) during SMTP DATA, (b) right after 250, (c) during an FTP upload,
(d) in the middle of an import transaction, (e) while the outbox is sending, (f) in the middle of
an FTP check's import. It then starts Renkei again on the same data folder and checks:
- every acknowledged file (SMTP 250, FTP 226, API 202) is imported exactly once, with all its rows;
- a file never acknowledged is never imported twice, and a partial upload never at all;
- the period of a file replaced by an interrupted import holds all old or all new rows, never a mix;
- every report mail is delivered exactly once, except a mail that was on its way to the relay at
  the moment of the kill: SMTP has no two-phase commit, so the relay may have queued it while
  its answer was lost, and the mail is sent again (at-least-once). Such a mail can only be one
  whose outbox row was claimed (status pending, claimed_at set) at the kill; the retry keeps the
  same Message-ID, so a receiving server or reader can drop the copy.

After a kill, an import claimed by the dead process is taken back at once (its lock file is no
longer locked; tests/reliability/test_recovery.py times that), a mail only when its claim is old
(outbox.CLAIM_TIMEOUT_SECONDS = 600 s); `expire_claims` ages the claims while the process is down
instead of waiting that long.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import ftplib
import io
import json
import re
import smtplib
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Callable

import pytest
import requests

from tests.fixtures.processes import (
    ROOT, SENDER, Account, AccountSpec, RenkeiProcess, expire_claims, flask_cli, good_rows, log_problems, login,
    query, results_csv, scalar, setup_accounts,
)
from tests.fixtures.smtp_sink import ReceivedMail, SmtpSink, FreePortController
from tests.fixtures.waiting import wait_for

WAIT = 60  # seconds any awaited state may take (the waits end as soon as it holds)
BIG_ROWS = 200_000
MESSAGE_ID = re.compile(r"<renkei-outbox-(\d+)-")
FIGURES_FILE = ROOT / "test-output" / "fault-figures.json"
FIGURES: dict[str, dict] = {}


# ---------------------------------------------------------------------------------------
# A relay that can hold its answer to DATA


class _HoldingHandler:
    def __init__(self, sink: HoldingSink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        # The relay has the whole message and queues it at once; only its answer may be held back.
        self.sink._add(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        while not self.sink.release.is_set():
            await asyncio.sleep(0.02)
        return "250 OK"


class HoldingSink(SmtpSink):
    """The report relay; after hold(), it receives each message but does not answer until release is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.release.set()
        self._controller = FreePortController(_HoldingHandler(self), hostname="127.0.0.1", port=0)

    def hold(self) -> None:
        self.release.clear()

    def deliveries(self) -> Counter:
        """How often each outbox mail (by the id in its Message-ID) reached the relay."""
        with self._changed:
            messages = list(self.messages)
        return Counter(int(MESSAGE_ID.search(m.message["Message-ID"] or "").group(1)) for m in messages)


# ---------------------------------------------------------------------------------------
# One Renkei process with three accounts, killed and restarted by the scenarios


@dataclass
class Cluster:
    """run.py on a data folder, its relay and its accounts; counts the faults it injects."""

    server: RenkeiProcess
    sink: HoldingSink
    data_dir: Path
    mail: Account
    ftp: Account
    api: Account
    kills: int = 0
    restarts: int = 0
    # Outbox ids claimed (being sent) at a kill: the only mails that may reach the relay twice.
    in_flight: set[int] = field(default_factory=set)

    @property
    def db(self) -> str:
        """The URL of the server's database (SQLite file in the data folder, or the test's PostgreSQL one)."""
        return self.server.db_url

    def kill(self) -> None:
        """kill -9, then note which outbox mails were on their way to the relay at that moment."""
        self.server.kill9()
        self.kills += 1
        self.in_flight |= {row[0] for row in query(
            self.db, "SELECT id FROM outbox WHERE status = 'pending' AND claimed_at IS NOT NULL")}

    def restart(self) -> None:
        """Let the dead process's claims age past their timeouts, then start again on the same folder."""
        expire_claims(self.db)
        self.server.start()
        self.restarts += 1

    def imports_of(self, account: Account, filename: str) -> list[tuple]:
        return query(self.db, "SELECT id, status, row_count, channel FROM imports "
                              "WHERE account_id = :account AND filename = :filename ORDER BY id",
                     {"account": account.id, "filename": filename})

    def wait_finished(self, account: Account, filename: str, count: int = 1) -> list[tuple]:
        """Wait until `count` imports of the file exist and none is queued or running; return them."""
        def done():
            rows = self.imports_of(account, filename)
            return rows if len(rows) >= count and all(r[1] not in ("queued", "running") for r in rows) else None
        return wait_for(done, WAIT, lambda: f"{filename}: {self.imports_of(account, filename)}\n"
                                              f"{self.server.log_tail(30)}")

    def stored_rows(self, import_id: int) -> int:
        return scalar(self.db, "SELECT coalesce(sum(line_count), 0) FROM result_blocks WHERE import_id = :id",
                      {"id": import_id})

    def check_reports(self) -> dict:
        """Check every finished import has one report, delivered once (a mail in flight at a kill: at most twice)."""
        wait_for(lambda: scalar(self.db, "SELECT count(*) FROM outbox WHERE status != 'sent'") == 0, WAIT,
                   lambda: f"outbox: {query(self.db, 'SELECT id, status, attempts, last_error FROM outbox')}")
        finished = [row[0] for row in query(self.db,
                                            "SELECT id FROM imports WHERE status IN ('succeeded', 'failed')")]
        per_import = dict(query(self.db, "SELECT import_id, count(*) FROM outbox GROUP BY import_id"))
        assert {i: per_import.get(i, 0) for i in finished} == {i: 1 for i in finished}, per_import
        outbox_ids = [row[0] for row in query(self.db, "SELECT id FROM outbox")]
        wait_for(lambda: set(self.sink.deliveries()) >= set(outbox_ids), WAIT, "relay did not get every mail")
        deliveries = self.sink.deliveries()
        for mail_id in outbox_ids:
            allowed = 2 if mail_id in self.in_flight else 1
            assert 1 <= deliveries[mail_id] <= allowed, (mail_id, deliveries, self.in_flight)
        return {"reports": len(outbox_ids), "delivered_twice": sorted(i for i in outbox_ids if deliveries[i] == 2)}

    def finish(self, scenario: str, **figures) -> None:
        """Stop cleanly, check the log, record the scenario's figures."""
        reports = self.check_reports()
        assert self.server.stop() == 0, self.server.log_tail()
        problems = log_problems(self.server.log_text())
        assert not problems, "\n".join(problems[:40])
        FIGURES[scenario] = {"faults_injected": self.kills, "restarts_survived": self.restarts, **figures,
                             **reports, "lost": 0}


@pytest.fixture
def cluster(tmp_path, empty_database_url, renkei_processes):
    sink = HoldingSink().start()
    try:
        data_dir = tmp_path / "data"
        server = RenkeiProcess(data_dir, tmp_path / "renkei.log",
                               env={"RENKEI_SMTP_RELAY": sink.url, "RENKEI_LOGIN_FAIL_DELAY": "0",
                                    "RENKEI_WORKER_POLL_SECONDS": "0.2"},
                               database_url=empty_database_url)
        renkei_processes.append(server)
        server.start()
        accounts = setup_accounts(data_dir, [AccountSpec("fault-mail", "mail"), AccountSpec("fault-ftp", "ftp"),
                                             AccountSpec("fault-api", "api")], empty_database_url)
        yield Cluster(server, sink, data_dir, accounts["fault-mail"], accounts["fault-ftp"], accounts["fault-api"])
    finally:
        sink.release.set()
        sink.stop()


@pytest.fixture(scope="module", autouse=True)
def fault_figures():
    """Print and save the figures of every scenario that ran."""
    yield
    if not FIGURES:
        return
    total = {"faults_injected": sum(f["faults_injected"] for f in FIGURES.values()),
             "faults_survived": sum(f["restarts_survived"] for f in FIGURES.values()),
             "lost": 0, "scenarios": FIGURES}
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    FIGURES_FILE.write_text(json.dumps(total, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print("\nfault figures:", json.dumps(total, ensure_ascii=False, indent=2))


# ---------------------------------------------------------------------------------------
# Helpers


def _mail(to: str, filename: str, data: bytes, message_id: str) -> bytes:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = to
    message["Subject"] = "実績"
    message["Message-ID"] = message_id
    message.set_content("本文は無視されます。")
    message.add_attachment(data, maintype="text", subtype="csv", filename=filename)
    raw = message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


class RawSmtp:
    """An SMTP client on a plain socket, so the test decides where to stop."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.file = self.sock.makefile("rb")
        self.expect(220)

    def expect(self, code: int) -> str:
        while True:
            line = self.file.readline().decode()
            assert line[:3] == str(code), line
            if line[3:4] != "-":
                return line

    def command(self, text: str, code: int) -> str:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.expect(code)

    def start_data(self, to: str) -> None:
        self.command("EHLO client.partner.example", 250)
        self.command(f"MAIL FROM:<{SENDER}>", 250)
        self.command(f"RCPT TO:<{to}>", 250)
        self.command("DATA", 354)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _send_smtp(port: int, raw: bytes, to: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as client:
        client.ehlo()
        client.mail(SENDER)
        client.rcpt(to)
        return client.data(raw)


def _check_now(cluster: Cluster) -> str:
    result = flask_cli(cluster.data_dir, "integration", "check-now", cluster.ftp.slug,
                       database_url=cluster.server.database_url, timeout=WAIT)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _period_count(cluster: Cluster, day: dt.date) -> int:
    return scalar(cluster.db, "SELECT coalesce(sum(b.line_count), 0) FROM result_blocks b "
                              "JOIN imports i ON i.id = b.import_id WHERE b.account_id = :account "
                              "AND i.period_kind = 'day' AND i.period_date = :day",
                  {"account": cluster.api.id, "day": day})


def _write_gauge(cluster: Cluster) -> Callable[[], int]:
    """A gauge of the bytes an open (uncommitted, so unseen by SELECT) transaction has written since now.

    SQLite: the WAL file, emptied here first. PostgreSQL has no such file per database: the
    result_blocks table's size on disk (with its TOAST), which grows as blocks are inserted, committed or not.
    """
    if cluster.db.startswith("sqlite"):
        query(cluster.db, "PRAGMA wal_checkpoint(TRUNCATE)")
        wal = cluster.data_dir / "renkei.db-wal"
        return lambda: wal.stat().st_size
    start = scalar(cluster.db, "SELECT pg_total_relation_size('result_blocks')")
    return lambda: scalar(cluster.db, "SELECT pg_total_relation_size('result_blocks')") - start


# ---------------------------------------------------------------------------------------
# (a) during SMTP DATA


@pytest.mark.parametrize("moment", ["half-data", "stored-reply-lost"])
def test_kill_during_smtp_data_then_the_retry_is_imported_once(cluster, moment):
    """Killed before the client read a 250: the client's retry is imported, the period holds its rows once.

    half-data: killed with half the message sent (nothing can be stored): the retry is the one
    import. stored-reply-lost: killed once the whole message is stored, the client never
    reading the answer (as when the connection breaks before the 250 arrives): the retry is a
    second delivery and a second import (deduplication is by spooled delivery, not Message-ID),
    which replaces the first by the same-name rule, so the period holds the file's rows once.
    """
    filename, rows = "20240201.csv", good_rows(5)
    raw = _mail(cluster.mail.inbound_address, filename, results_csv(rows), "<fault-a@partner.example>")
    client = RawSmtp(cluster.server.port("smtp"))
    client.start_data(cluster.mail.inbound_address)
    if moment == "half-data":
        client.sock.sendall(raw[: len(raw) // 2])
    else:
        client.sock.sendall(raw + b".\r\n")
        wait_for(lambda: cluster.imports_of(cluster.mail, filename), WAIT, "the message was not stored")
    cluster.kill()
    if moment == "half-data":
        try:
            reply = client.file.readline()
        except OSError as error:  # the kernel reset the dead process's connection
            reply = repr(error).encode()
        assert not reply.startswith(b"250"), reply
    client.close()
    stored_before_restart = cluster.imports_of(cluster.mail, filename)
    if moment == "half-data":
        assert stored_before_restart == []  # half a message is never stored

    cluster.restart()
    code, _ = _send_smtp(cluster.server.port("smtp"), raw, cluster.mail.inbound_address)
    assert code == 250
    expected = 1 + len(stored_before_restart)
    imports = cluster.wait_finished(cluster.mail, filename, count=expected)
    assert len(imports) == expected, imports
    import_id, status, row_count, channel = imports[-1]
    assert (status, row_count, channel) == ("succeeded", len(rows), "mail")
    assert cluster.stored_rows(import_id) == len(rows)
    assert sum(cluster.stored_rows(i[0]) for i in imports) == len(rows)  # replaced, never doubled
    cluster.finish(f"a-smtp-{moment}", acknowledged=1, imported=len(imports), rows_stored_once=1,
                   stored_before_ack=len(stored_before_restart))


# ---------------------------------------------------------------------------------------
# (b) right after 250


def test_kill_right_after_250_then_the_file_is_imported_once(cluster):
    filename, rows = "20240202.csv", good_rows(7)
    raw = _mail(cluster.mail.inbound_address, filename, results_csv(rows), "<fault-b@partner.example>")
    code, answer = _send_smtp(cluster.server.port("smtp"), raw, cluster.mail.inbound_address)
    cluster.kill()  # the moment the client has its 250
    assert code == 250, answer

    cluster.restart()
    imports = cluster.wait_finished(cluster.mail, filename)
    spool_folder = cluster.data_dir / "spool" / "mail"
    wait_for(lambda: not list(spool_folder.glob("*.entry")), WAIT, "the spool was not drained")
    assert cluster.imports_of(cluster.mail, filename) == imports  # the drain is done: the count is final
    assert len(imports) == 1, imports
    import_id, status, row_count, channel = imports[0]
    assert (status, row_count, channel) == ("succeeded", len(rows), "mail")
    assert cluster.stored_rows(import_id) == len(rows)
    cluster.finish("b-smtp-after-250", acknowledged=1, imported_once=1)


# ---------------------------------------------------------------------------------------
# (c) during an FTP upload


def test_kill_during_ftp_upload_leaves_no_partial_file_and_the_retry_is_imported_once(cluster):
    filename, rows = "20240301.csv", good_rows(2000)
    data = results_csv(rows)
    # Cut at a line end: were the first half ever imported, it would be a valid file of 1000 rows.
    half = data[: data.index(b"\r\n", len(data) // 2) + 2]
    staging = cluster.data_dir / "ftp-uploading"
    home = cluster.data_dir / "ftp" / cluster.ftp.ftp_username

    ftp = ftplib.FTP(timeout=WAIT)
    ftp.connect("127.0.0.1", cluster.server.port("ftp"))
    ftp.login(cluster.ftp.ftp_username, cluster.ftp.ftp_password)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd(f"STOR {filename}")
    conn.sendall(half)
    # Kill once the server has written the half to its staging file: mid-transfer, bytes on disk.
    wait_for(lambda: any(p.stat().st_size == len(half) for p in staging.glob("*.part")), WAIT,
               "the server did not write the first half")
    cluster.kill()
    conn.close()
    ftp.close()

    cluster.restart()
    assert not (home / filename).exists()
    assert "取り込むファイルはありませんでした" in _check_now(cluster)
    assert cluster.imports_of(cluster.ftp, filename) == []
    assert list(staging.glob("*.part")) == []  # the crash's leftover is cleared at start

    ftp = ftplib.FTP(timeout=WAIT)
    ftp.connect("127.0.0.1", cluster.server.port("ftp"))
    ftp.login(cluster.ftp.ftp_username, cluster.ftp.ftp_password)
    answer = ftp.storbinary(f"STOR {filename}", io.BytesIO(data))
    ftp.quit()
    assert answer.startswith("226"), answer
    _check_now(cluster)
    imports = cluster.imports_of(cluster.ftp, filename)
    assert len(imports) == 1, imports
    import_id, status, row_count, channel = imports[0]
    assert (status, row_count, channel) == ("succeeded", len(rows), "ftp")
    assert cluster.stored_rows(import_id) == len(rows)
    assert not (home / filename).exists() and list((home / "processed").glob("20240301*.csv"))
    cluster.finish("c-ftp-mid-upload", acknowledged=1, imported_once=1, partial_imports=0)


# ---------------------------------------------------------------------------------------
# (d) in the middle of an import transaction


def test_kill_mid_import_keeps_old_or_new_rows_and_the_import_completes_once(cluster):
    filename, day = "20240401.csv", dt.date(2024, 4, 1)
    headers = {"Authorization": f"Bearer {cluster.api.api_token}"}
    url = cluster.server.web_url + "api/v1/imports"
    old_rows = good_rows(3)
    response = requests.post(url, headers=headers, files={"file": (filename, results_csv(old_rows))}, timeout=WAIT)
    assert response.status_code == 202, response.text
    (old_id, status, _, _), = cluster.wait_finished(cluster.api, filename)
    assert status == "succeeded" and _period_count(cluster, day) == len(old_rows)

    written = _write_gauge(cluster)  # its growth shows the big import's rows being written

    # Someone reading the period all along may see the old rows or the new ones, nothing else.
    seen: Counter = Counter()
    watching = threading.Event()
    watching.set()

    def watch() -> None:
        while watching.is_set():
            seen[_period_count(cluster, day)] += 1
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        big = results_csv(good_rows(BIG_ROWS, seed=7))
        response = requests.post(url, headers=headers, files={"file": (filename, big)}, timeout=WAIT)
        assert response.status_code == 202, response.text
        new_id = response.json()["id"]
        status_sql, by_id = "SELECT status FROM imports WHERE id = :id", {"id": new_id}
        wait_for(lambda: scalar(cluster.db, status_sql, by_id) == "running" and written() > 4_000_000, WAIT,
                   "the big import did not start writing")
        cluster.kill()
        killed_status = scalar(cluster.db, status_sql, by_id)
        assert killed_status == "running", "the import ended before the kill: make the file bigger"
        assert _period_count(cluster, day) == len(old_rows)  # the rolled-back transaction left the old rows

        cluster.restart()
        imports = cluster.wait_finished(cluster.api, filename, count=2)
    finally:
        watching.clear()
        watcher.join(WAIT)
    assert [(i, s) for i, s, _, _ in imports] == [(old_id, "succeeded"), (new_id, "succeeded")]
    assert cluster.stored_rows(new_id) == BIG_ROWS and cluster.stored_rows(old_id) == 0
    assert _period_count(cluster, day) == BIG_ROWS
    replaced, attempts, row_count = query(cluster.db, "SELECT replaced_import_id, attempts, row_count "
                                                      "FROM imports WHERE id = :id", {"id": new_id})[0]
    assert (replaced, attempts, row_count) == (old_id, 2, BIG_ROWS)
    assert set(seen) <= {len(old_rows), BIG_ROWS}, seen  # never a mix
    assert "requeued" in cluster.server.log_text()
    cluster.finish("d-mid-import", acknowledged=2, imported_once=2, rows_in_killed_import=BIG_ROWS,
                   period_counts_seen=dict(sorted(seen.items())))


# ---------------------------------------------------------------------------------------
# (e) while the outbox is sending


def test_kill_while_the_outbox_is_sending_then_every_report_is_delivered(cluster):
    headers = {"Authorization": f"Bearer {cluster.api.api_token}"}
    url = cluster.server.web_url + "api/v1/imports"
    cluster.sink.hold()
    names = ["20240501.csv", "20240502.csv", "20240503.csv"]
    for name in names:
        response = requests.post(url, headers=headers, files={"file": (name, results_csv(good_rows(2)))},
                                 timeout=WAIT)
        assert response.status_code == 202, response.text
    for name in names:
        cluster.wait_finished(cluster.api, name)
    # The first report has reached the relay, which has not answered yet; the others wait behind it.
    wait_for(lambda: len(cluster.sink.messages) >= 1, WAIT, "no report reached the relay")
    outbox = query(cluster.db, "SELECT id, status, claimed_at IS NOT NULL, attempts FROM outbox ORDER BY id")
    assert len(outbox) == len(names)
    held = next(iter(cluster.sink.deliveries()))
    assert (held, "pending", 1, 0) in outbox, outbox
    cluster.kill()
    assert cluster.in_flight == {held}
    cluster.sink.release.set()

    cluster.restart()
    reports = cluster.check_reports()
    # The in-flight mail went out again after the restart: the at-least-once boundary.
    assert reports["delivered_twice"] == [held]
    sent = query(cluster.db, "SELECT id, status, attempts FROM outbox ORDER BY id")
    assert all(status == "sent" for _, status, _ in sent), sent
    for name in names:
        imports = cluster.imports_of(cluster.api, name)
        assert len(imports) == 1 and imports[0][1] == "succeeded", imports
    cluster.finish("e-outbox-sending", acknowledged=len(names), imported_once=len(names),
                   mails_in_flight_at_kill=1)


# ---------------------------------------------------------------------------------------
# (f) in the middle of an FTP check's import (今すぐチェック running inside run.py)


def test_kill_mid_ftp_check_then_the_uploaded_file_is_imported_once(cluster):
    filename = "20240601.csv"
    data = results_csv(good_rows(BIG_ROWS, seed=3))
    home = cluster.data_dir / "ftp" / cluster.ftp.ftp_username
    ftp = ftplib.FTP(timeout=WAIT)
    ftp.connect("127.0.0.1", cluster.server.port("ftp"))
    ftp.login(cluster.ftp.ftp_username, cluster.ftp.ftp_password)
    assert ftp.storbinary(f"STOR {filename}", io.BytesIO(data)).startswith("226")
    ftp.quit()

    written = _write_gauge(cluster)
    session = login(cluster.server.web_url, cluster.ftp.email, cluster.ftp.password)
    page = session.get(cluster.server.web_url + "settings/integration", timeout=WAIT)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)

    def press_check_now() -> None:
        try:
            session.post(cluster.server.web_url + "settings/integration/check-now", data={"csrf_token": token},
                         timeout=WAIT)
        except requests.RequestException:
            pass  # the process is killed under this request

    button = threading.Thread(target=press_check_now, daemon=True)
    button.start()
    wait_for(lambda: [r for r in cluster.imports_of(cluster.ftp, filename) if r[1] == "running"]
               and written() > 4_000_000, WAIT, "the check's import did not start writing")
    cluster.kill()
    button.join(WAIT)
    assert [r[1] for r in cluster.imports_of(cluster.ftp, filename)] == ["running"]

    cluster.restart()
    cluster.wait_finished(cluster.ftp, filename)
    _check_now(cluster)
    imports = cluster.imports_of(cluster.ftp, filename)
    assert len(imports) == 1, imports
    assert imports[0][1:3] == ("succeeded", BIG_ROWS)
    assert not (home / filename).exists()
    cluster.finish("f-ftp-check-mid-import", acknowledged=1, imported_once=1)
