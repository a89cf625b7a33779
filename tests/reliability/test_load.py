"""Load: one `run.py` process, every channel and the screens busy at once, then nothing may be lost.

For RENKEI_LOAD_SECONDS (default 60): 10 SMTP clients, 3 FTP uploaders, 3 API clients and 5
logged-in browsers-worth of page requests. Each channel has its own account (the mode is per
account). Every file has a name of its own (one day per file), so each acknowledgement
(SMTP 250, FTP 226, API 202) must become exactly one import in the history; every tenth file
of each client is bad on purpose and must become exactly one failed import. Afterwards the
queue must drain, every successful import's rows be stored, every report mail be delivered
once, no answer be 5xx and the process log hold no error. The figures are printed (`-s`)
and written to test-output/load-figures.json.

Client pacing (RENKEI_LOAD_PACE, seconds between a client's operations, default 0.6) keeps
the backlog drainable on a small CI machine within the time the test allows after the load
(DRAIN_SECONDS); the clients still run concurrently for the whole duration. At 0.3 the ten
SMTP clients sent ~1,300 mails a minute, more than a busy 2-core box drains in five.
"""
from __future__ import annotations

import datetime as dt
import ftplib
import io
import itertools
import json
import os
import re
import smtplib
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
import requests

from tests.fixtures.processes import (
    ROOT, SENDER, AccountSpec, RenkeiProcess, bad_rows, flask_cli, good_rows, log_problems, login, query,
    results_csv, setup_accounts,
)
from tests.fixtures.smtp_sink import SmtpSink
from tests.fixtures.waiting import wait_for

DURATION = float(os.environ.get("RENKEI_LOAD_SECONDS", "60"))
PACE = float(os.environ.get("RENKEI_LOAD_PACE", "0.6"))
# After the load: at most this long to import what is left and deliver every report. A bound
# on liveness, not a speed figure (the drain's time is printed with the figures): the backlog
# the load leaves depends on the box's speed and on what else runs on it.
DRAIN_SECONDS = 300
SMTP_CLIENTS, FTP_CLIENTS, API_CLIENTS, BROWSERS = 10, 3, 3, 5
BAD_EVERY = 10
PAGES = ["", "imports", "outbox", "settings/members", "settings/columns", "settings/integration", "upload"]
FIGURES_FILE = ROOT / "test-output" / "load-figures.json"
MESSAGE_ID = re.compile(r"<renkei-outbox-(\d+)-")

# The load (60 s) and the drain's bound exceed pytest.ini's 300 s per test.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(DURATION + DRAIN_SECONDS + 240)]


@dataclass
class Sent:
    """One file a client sent and the answer it got."""

    channel: str
    filename: str
    good: bool
    rows: int
    acked: bool
    answer: str


@dataclass
class Ledger:
    """Everything the clients did, shared by their threads."""

    sent: list[Sent] = field(default_factory=list)
    pages: Counter = field(default_factory=Counter)  # status code -> count
    bad_pages: list[str] = field(default_factory=list)
    api_answers: Counter = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: Sent) -> None:
        with self.lock:
            self.sent.append(item)


class Names:
    """Distinct daily file names per channel: one calendar day per file, counted from `first`."""

    def __init__(self, first: dt.date):
        self.first = first
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def next(self) -> tuple[str, int]:
        with self._lock:
            n = next(self._counter)
        return (self.first + dt.timedelta(days=n)).strftime("%Y%m%d.csv"), n


def _file(n: int) -> tuple[bytes, bool, int]:
    """The n-th file of a channel: (bytes, good?, rows); every BAD_EVERY-th one is rejected by the importer."""
    if n % BAD_EVERY == BAD_EVERY - 1:
        return results_csv(bad_rows()), False, 0
    rows = 1 + n % 5
    return results_csv(good_rows(rows, seed=n)), True, rows


def _run_until(stop: threading.Event, ledger: Ledger, name: str, body) -> threading.Thread:
    """A client thread running `body()` until stop; an exception escaping it is recorded as a crash."""

    def loop() -> None:
        try:
            while not stop.is_set():
                body()
                stop.wait(PACE)
        except Exception as error:  # the test fails on it, with the client named
            with ledger.lock:
                ledger.crashes.append(f"{name}: {type(error).__name__}: {error}")

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


def _smtp_client(port: int, address: str, names: Names, ledger: Ledger):
    state: dict = {"client": None, "count": 0}

    def body() -> None:
        filename, n = names.next()
        data, good, rows = _file(n)
        message = EmailMessage()
        message["From"] = SENDER
        message["To"] = address
        message["Subject"] = f"実績 {filename}"
        message["Message-ID"] = make_msgid(domain="partner.example")
        message.set_content("本文は無視されます。")
        message.add_attachment(data, maintype="text", subtype="csv", filename=filename)
        try:
            if state["client"] is None:
                state["client"] = smtplib.SMTP("127.0.0.1", port, timeout=60)
            state["client"].send_message(message)
            ledger.add(Sent("mail", filename, good, rows, True, "250"))
        except smtplib.SMTPResponseException as error:
            ledger.add(Sent("mail", filename, good, rows, False, f"{error.smtp_code} {error.smtp_error!r}"))
            _close(state)
        except (smtplib.SMTPException, OSError) as error:
            ledger.add(Sent("mail", filename, good, rows, False, f"{type(error).__name__}: {error}"))
            _close(state)
        state["count"] += 1
        if state["count"] % 5 == 0:
            _close(state)  # a mix of new connections and several messages per connection

    return body


def _close(state: dict) -> None:
    client, state["client"] = state["client"], None
    if client is not None:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()


def _ftp_client(port: int, username: str, password: str, names: Names, ledger: Ledger):
    state: dict = {"ftp": None}

    def body() -> None:
        filename, n = names.next()
        data, good, rows = _file(n)
        try:
            if state["ftp"] is None:
                ftp = ftplib.FTP(timeout=60)
                ftp.connect("127.0.0.1", port)
                ftp.login(username, password)
                state["ftp"] = ftp
            answer = state["ftp"].storbinary(f"STOR {filename}", io.BytesIO(data))
            ledger.add(Sent("ftp", filename, good, rows, answer.startswith("226"), answer))
        except (ftplib.Error, OSError, EOFError) as error:
            ledger.add(Sent("ftp", filename, good, rows, False, f"{type(error).__name__}: {error}"))
            ftp, state["ftp"] = state["ftp"], None
            if ftp is not None:
                ftp.close()

    return body


def _api_client(base_url: str, token: str, names: Names, ledger: Ledger, stop: threading.Event):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    def body() -> None:
        filename, n = names.next()
        data, good, rows = _file(n)
        try:
            response = session.post(base_url + "api/v1/imports", files={"file": (filename, data, "text/csv")},
                                    timeout=60)
        except requests.RequestException as error:
            ledger.add(Sent("api", filename, good, rows, False, f"{type(error).__name__}: {error}"))
            return
        with ledger.lock:
            ledger.api_answers[response.status_code] += 1
        ledger.add(Sent("api", filename, good, rows, response.status_code == 202, str(response.status_code)))
        if response.status_code == 429:
            # The per-token rate limit (an expected refusal): wait as told, but not past the end.
            stop.wait(min(float(response.headers.get("Retry-After", "1")), 10))

    return body


def _browser(base_url: str, email: str, password: str, ledger: Ledger, offset: int):
    session = login(base_url, email, password)
    pages = itertools.cycle(PAGES[offset % len(PAGES):] + PAGES[:offset % len(PAGES)])

    def body() -> None:
        page = next(pages)
        response = session.get(base_url + page, timeout=60)
        with ledger.lock:
            ledger.pages[response.status_code] += 1
            if response.status_code != 200 or "<title>ログイン" in response.text:
                ledger.bad_pages.append(f"/{page} -> {response.status_code}")

    return body


def _ftp_home_files(data_dir, username: str) -> list[str]:
    home = data_dir / "ftp" / username
    return sorted(p.name for p in home.iterdir() if p.is_file()) if home.exists() else []


def test_every_acknowledged_file_is_imported_once_under_load(tmp_path, empty_database_url, renkei_processes):
    sink = SmtpSink().start()
    try:
        _load(tmp_path, empty_database_url, renkei_processes, sink)
    finally:
        sink.stop()


def _load(tmp_path, database_url: str, renkei_processes, sink: SmtpSink) -> None:
    data_dir = tmp_path / "data"
    server = RenkeiProcess(data_dir, tmp_path / "renkei.log",
                           # All clients share 127.0.0.1: the per-address SMTP cap (10) is the whole server's here.
                           env={"RENKEI_SMTP_RELAY": sink.url, "RENKEI_LOGIN_FAIL_DELAY": "0",
                                "RENKEI_SMTP_MAX_CONNECTIONS_PER_IP": str(SMTP_CLIENTS * 2)},
                           database_url=database_url)
    renkei_processes.append(server)
    server.start()
    db = server.db_url
    accounts = setup_accounts(data_dir, [AccountSpec("load-mail", "mail"), AccountSpec("load-ftp", "ftp"),
                                         AccountSpec("load-api", "api")], database_url)
    mail, ftp, api = accounts["load-mail"], accounts["load-ftp"], accounts["load-api"]
    by_channel = {"mail": mail, "ftp": ftp, "api": api}
    names = {"mail": Names(dt.date(2001, 1, 1)), "ftp": Names(dt.date(2201, 1, 1)),
             "api": Names(dt.date(2401, 1, 1))}

    ledger, stop = Ledger(), threading.Event()
    base_url = server.web_url
    bodies = (
        [(f"smtp-{i}", _smtp_client(server.port("smtp"), mail.inbound_address, names["mail"], ledger))
         for i in range(SMTP_CLIENTS)]
        + [(f"ftp-{i}", _ftp_client(server.port("ftp"), ftp.ftp_username, ftp.ftp_password, names["ftp"], ledger))
           for i in range(FTP_CLIENTS)]
        + [(f"api-{i}", _api_client(base_url, api.api_token, names["api"], ledger, stop)) for i in range(API_CLIENTS)]
        + [(f"web-{i}", _browser(base_url, mail.email, mail.password, ledger, i)) for i in range(BROWSERS)]
    )
    started = time.monotonic()
    threads = [_run_until(stop, ledger, name, body) for name, body in bodies]
    stop.wait(DURATION)
    stop.set()
    for thread in threads:
        thread.join(90)
    load_seconds = time.monotonic() - started
    assert not [t.name for t in threads if t.is_alive()], "a client did not finish"
    assert not ledger.crashes, ledger.crashes

    # --- drain: FTP files are imported by a check (as the 5-minute schedule or 今すぐチェック would),
    # mail and API files by the worker, then every report mail goes out.
    deadline = time.monotonic() + DRAIN_SECONDS
    check_runs = 0

    def ftp_checked() -> bool:
        nonlocal check_runs
        check_runs += 1
        result = flask_cli(data_dir, "integration", "check-now", ftp.slug, database_url=database_url,
                           timeout=max(5, deadline - time.monotonic()))
        # Exit 1 means some files failed (the bad ones); anything else is a broken check.
        assert result.returncode in (0, 1), result.stdout + result.stderr
        return not [n for n in _ftp_home_files(data_dir, ftp.ftp_username) if n.lower().endswith(".csv")]

    wait_for(ftp_checked, max(1, deadline - time.monotonic()), "FTP files left in the home after check-now")
    wait_for(lambda: query(db, "SELECT count(*) FROM imports WHERE status IN ('queued','running')")[0][0] == 0,
               max(1, deadline - time.monotonic()),
               lambda: f"queue not empty: {query(db, 'SELECT status, count(*) FROM imports GROUP BY status')}")
    wait_for(lambda: query(db, "SELECT count(*) FROM outbox WHERE status != 'sent'")[0][0] == 0,
               max(1, deadline - time.monotonic()),
               lambda: "outbox not delivered: "
               f"{query(db, 'SELECT status, count(*) FROM outbox GROUP BY status')}")
    drain_seconds = DRAIN_SECONDS - (deadline - time.monotonic())

    # --- what is stored
    imports = defaultdict(list)  # (channel, filename) -> [(id, status, row_count)]
    for channel, account in by_channel.items():
        for import_id, filename, status, row_count in query(
            db, "SELECT id, filename, status, row_count FROM imports "
                "WHERE account_id = :account AND channel = :channel",
            {"account": account.id, "channel": channel},
        ):
            imports[(channel, filename)].append((import_id, status, row_count))
    stored_rows = dict(query(db, "SELECT import_id, sum(line_count) FROM result_blocks GROUP BY import_id"))

    problems: list[str] = []
    figures: dict = {"duration_seconds": round(load_seconds, 1), "drain_seconds": round(drain_seconds, 1),
                     "pace_seconds": PACE, "ftp_check_runs": check_runs}
    sent_names = set()
    for channel in ("mail", "ftp", "api"):
        items = [s for s in ledger.sent if s.channel == channel]
        acked = [s for s in items if s.acked]
        sent_names.update((channel, s.filename) for s in items)
        imported = lost = duplicated = failed_as_expected = rows_ok = 0
        for item in acked:
            found = imports.get((channel, item.filename), [])
            if not found:
                lost += 1
                problems.append(f"lost: {channel} {item.filename} ({item.answer})")
                continue
            if len(found) > 1:
                duplicated += 1
                problems.append(f"imported {len(found)} times: {channel} {item.filename} {found}")
            import_id, status, row_count = found[0]
            if item.good:
                if status != "succeeded":
                    problems.append(f"good file not imported: {channel} {item.filename} {found}")
                    continue
                imported += 1
                if row_count == item.rows == stored_rows.get(import_id, 0):
                    rows_ok += 1
                else:
                    problems.append(f"rows of {channel} {item.filename}: sent {item.rows}, recorded {row_count}, "
                                    f"stored {stored_rows.get(import_id, 0)}")
            elif status == "failed" and stored_rows.get(import_id, 0) == 0:
                failed_as_expected += 1
            else:
                problems.append(f"bad file not rejected: {channel} {item.filename} {found}")
        for item in items:
            if not item.acked and len(imports.get((channel, item.filename), [])) > 1:
                problems.append(f"unacknowledged file imported twice: {channel} {item.filename}")
        figures[channel] = {
            "sent": len(items), "acknowledged": len(acked), "refused": len(items) - len(acked),
            "refusals": dict(Counter(s.answer.split(" ")[0] for s in items if not s.acked)),
            "bad_sent": sum(1 for s in items if not s.good), "bad_acknowledged": sum(1 for s in acked if not s.good),
            "imported": imported, "rejected_as_expected": failed_as_expected, "rows_verified": rows_ok,
            "lost": lost, "duplicated": duplicated,
        }
    strangers = [key for key in imports if key not in sent_names]
    if strangers:
        problems.append(f"imports nobody sent: {strangers[:10]}")

    # Every finished import has exactly one report, delivered exactly once (by its Message-ID).
    account_ids = tuple(a.id for a in by_channel.values())
    finished = query(db, f"SELECT count(*) FROM imports WHERE status IN ('succeeded','failed') "
                               f"AND account_id IN {account_ids}")[0][0]
    reports = query(db, f"SELECT import_id, count(*) FROM outbox WHERE account_id IN {account_ids} "
                              f"GROUP BY import_id")
    per_id = Counter(int(MESSAGE_ID.search(m.message["Message-ID"] or "").group(1)) for m in sink.messages)
    if len(reports) != finished or any(count != 1 for _, count in reports):
        problems.append(f"reports: {finished} finished imports, outbox per import {Counter(c for _, c in reports)}")
    duplicates = {k: v for k, v in per_id.items() if v > 1}
    if duplicates:
        problems.append(f"report mails delivered more than once: {duplicates}")
    figures["reports"] = {"finished_imports": finished, "mails_delivered": len(sink.messages),
                          "distinct_mails": len(per_id)}
    figures["pages"] = {"requests": sum(ledger.pages.values()), "by_status": dict(ledger.pages)}
    figures["api_answers"] = dict(ledger.api_answers)
    fives = sum(v for answers in (ledger.pages, ledger.api_answers) for k, v in answers.items() if k >= 500)
    figures["http_5xx"] = fives
    figures["lost"] = sum(figures[c]["lost"] for c in ("mail", "ftp", "api"))

    assert server.stop() == 0, server.log_tail()
    errors = log_problems(server.log_text())
    figures["log_errors"] = len(errors)
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    FIGURES_FILE.write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print("\nload figures:", json.dumps(figures, ensure_ascii=False, indent=2))

    assert not problems, "\n".join(problems[:50])
    assert fives == 0, figures
    assert not ledger.bad_pages, ledger.bad_pages[:20]
    assert not errors, "\n".join(errors[:40])
    # The load really happened on every channel.
    for channel in ("mail", "ftp", "api"):
        assert figures[channel]["acknowledged"] > 0 and figures[channel]["imported"] > 0, figures
        assert figures[channel]["bad_acknowledged"] > 0 or DURATION < 10, figures
    assert figures["mail"]["refused"] == 0 and figures["ftp"]["refused"] == 0, figures
    # The only API refusal allowed is the per-token rate limit (60 calls a minute by default).
    assert set(figures["api"]["refusals"]) <= {"429"}, figures
