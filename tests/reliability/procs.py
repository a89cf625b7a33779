"""Helpers for the load and fault tests: a real `python run.py` process on free ports, its accounts, its database.

    server = RenkeiProcess(data_dir, log_file, env={"RENKEI_SMTP_RELAY": sink.url},
                           database_url=empty_database_url).start()
    accounts = setup_accounts(data_dir, [AccountSpec("mailco", "mail"), ...], server.database_url)
    server.kill9(); server.start()          # same data folder and database, new free ports
    query(server.db_url, "SELECT status FROM imports WHERE id = :id", {"id": 1})

Every process is started in its own session, so teardown (`close()`) also ends the SMTP
parse processes it spawned. Accounts are made by a child `python -m tests.reliability.procs`
that runs the services against the same data folder (the server's database is never touched
from the test process except by `expire_claims`, which only runs while the server is dead).
`database_url` is what the children get as DATABASE_URL: "" means the SQLite file in the data
folder (conftest's `empty_database_url` on SQLite), otherwise the test's PostgreSQL database.
The test process reads (and `expire_claims` writes) that same database through SQLAlchemy, so
the checks are one SQL for both databases.
"""
from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from sqlalchemy import DateTime, bindparam, create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from tests.test_run import READY_RE, ROOT, START_TIMEOUT, _env, _login

__all__ = ["ROOT", "AccountSpec", "Account", "RenkeiProcess", "setup_accounts", "flask_cli", "query", "scalar",
           "wait_until", "expire_claims", "url_of", "results_csv", "good_rows", "bad_rows", "login", "log_problems",
           "renkei_processes"]

STOP_TIMEOUT = 60
MEMBERS = [(1, "E001", "髙橋 一郎"), (2, "E002", "佐藤 花子"), (3, "E003", "鈴木 次郎"), (4, "E004", "田中 美咲")]
COLUMNS = [("売上", "円"), ("粗利", "円"), ("件数", "件")]
SENDER = "sales@partner.example"
ERROR_TO = "errors@acme.example"
SUCCESS_TO = "board@acme.example"
ADMIN_PASSWORD = "password-123"

# Log lines that mean something went wrong: a level at ERROR or above, or a traceback.
_PROBLEM = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback \(most recent call last\)")


# ---------------------------------------------------------------------------------------
# Files


def results_csv(rows: list[tuple], header: tuple[str, ...] = ("No.", "売上", "粗利", "件数")) -> bytes:
    """A results CSV as Excel writes it (cp932, CRLF)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("cp932")


def good_rows(count: int, seed: int = 0) -> list[tuple]:
    """`count` valid rows for the members of AccountSpec accounts (several rows per member are allowed)."""
    return [(1 + (seed + i) % len(MEMBERS), 1000 + seed + i, 100 + i, 1 + i % 3) for i in range(count)]


def bad_rows() -> list[tuple]:
    """Rows the importer rejects: an unknown member No. and a value that is not a number."""
    return [(1, 1000, 100, 1), (99, 5, 5, 5), (2, "たくさん", 1, 1)]


# ---------------------------------------------------------------------------------------
# The process


class RenkeiProcess:
    """`python run.py` on a data folder with every port 0; output appended to `log_file`."""

    def __init__(self, data_dir: Path, log_file: Path, *flags: str, env: dict[str, str] | None = None,
                 database_url: str = ""):
        self.data_dir = Path(data_dir)
        self.database_url = database_url
        self.log_file = Path(log_file)
        self.flags = flags
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen | None = None
        self.ready: dict[str, str] = {}
        self.starts = 0
        self._groups: list[int] = []

    @property
    def db_url(self) -> str:
        """The URL of the database this process works on (for query / scalar / expire_claims)."""
        return url_of(self.data_dir, self.database_url)

    def env(self) -> dict[str, str]:
        env = _env(self.database_url)
        env.update({"RENKEI_DATA_DIR": str(self.data_dir), "RENKEI_FTP_QUIET_SECONDS": "0"})
        env.update(self.extra_env)
        return env

    def start(self) -> RenkeiProcess:
        """Start run.py and wait for its READY line (listener URLs in self.ready)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open(self.log_file, "ab") as out:
            out.write(f"\n===== start {self.starts + 1} =====\n".encode())
            out.flush()
            command = [sys.executable, "run.py", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
                       "--web-port", "0", "--smtp-port", "0", "--ftp-port", "0", *self.flags]
            # A session of its own: teardown can then end the parse processes run.py spawns.
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env(), stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self._groups.append(self.process.pid)
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            match = next((m for m in map(READY_RE.match, self._lines_since(offset)) if m), None)
            if match:
                self.ready = dict(item.split("=", 1) for item in match["fields"].split())
                return self
            if self.process.poll() is not None:
                pytest.fail(f"run.py ended (code {self.process.returncode}) before READY:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"run.py printed no READY line in {START_TIMEOUT}s:\n{self.log_tail()}")
            time.sleep(0.05)  # polling the log file the process writes

    def _lines_since(self, offset: int) -> list[str]:
        with open(self.log_file, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace").splitlines()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def web_url(self) -> str:
        return self.ready["web"]

    def port(self, part: str) -> int:
        return int(re.search(r":(\d+)/?$", self.ready[part]).group(1))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """kill -9 of run.py itself (no clean-up runs), then of the helper processes it leaves behind."""
        assert self.running, "run.py is not running"
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT)
        self._kill_group(self.process.pid)

    def stop(self) -> int:
        """SIGTERM and wait; return the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail("run.py did not stop on SIGTERM in time:\n" + self.log_tail())
        finally:
            self._kill_group(self.process.pid)

    def close(self) -> None:
        """Teardown: end every process this object started (any state)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for group in self._groups:
            self._kill_group(group)

    @staticmethod
    def _kill_group(group: int) -> None:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def log_text(self) -> str:
        return self.log_file.read_text("utf-8", "replace") if self.log_file.exists() else ""

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


@pytest.fixture
def renkei_processes():
    """A list to append RenkeiProcess objects to; every one is closed at teardown."""
    processes: list[RenkeiProcess] = []
    yield processes
    for process in processes:
        process.close()


def log_problems(text: str, allowed: list[str] = ()) -> list[str]:
    """Lines of a log that report an error or a traceback, except those matching an `allowed` pattern."""
    patterns = [re.compile(p) for p in allowed]
    return [line for line in text.splitlines()
            if _PROBLEM.search(line) and not any(p.search(line) for p in patterns)]


# ---------------------------------------------------------------------------------------
# Accounts (made by a child process through the services)


@dataclass
class AccountSpec:
    """An integration-enabled account: 4 members, 3 graph columns, the given mode, reports to the sink."""

    slug: str
    mode: str  # mail | ftp | api
    success_to: bool = True


@dataclass
class Account:
    """What a test needs to use an account made by setup_accounts."""

    id: int
    slug: str
    mode: str
    email: str
    password: str
    inbound_address: str | None = None
    ftp_username: str | None = None
    ftp_password: str | None = None
    api_token: str | None = None
    member_ids: list[int] = field(default_factory=list)


def setup_accounts(data_dir: Path, specs: list[AccountSpec], database_url: str = "") -> dict[str, Account]:
    """Create the accounts in the process's database (already migrated by run.py); return them by slug."""
    env = _env(database_url)
    env["RENKEI_DATA_DIR"] = str(data_dir)
    result = subprocess.run(
        [sys.executable, "-m", "tests.reliability.procs", "setup", json.dumps([asdict(s) for s in specs])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    payload = result.stdout.strip().splitlines()[-1]
    return {item["slug"]: Account(**item) for item in json.loads(payload)}


def _setup_in_app(specs: list[dict]) -> list[dict]:
    """Runs in the child process: create each account with the services and return its logins."""
    from app import create_app
    from app.services import accounts, columns, integration, members

    app = create_app()
    out = []
    with app.app_context():
        for spec in specs:
            slug, mode = spec["slug"], spec["mode"]
            email = f"admin@{slug}.example"
            account, password = accounts.create_account(slug, f"{slug} 株式会社", email, ADMIN_PASSWORD)
            accounts.set_integration_enabled(slug, True)
            member_ids = [members.create_member(account.id, no, employee_id, name, "営業部").id
                          for no, employee_id, name in MEMBERS]
            for name, unit in COLUMNS:
                columns.add_column(account.id, name, unit)
            changes: dict[str, Any] = {"mode": mode, "status": "active", "error_to": [ERROR_TO],
                                       "success_to": [SUCCESS_TO] if spec["success_to"] else []}
            if mode == "mail":
                changes["senders"] = [SENDER]
            if mode == "ftp":
                # Checks every 5 minutes all day long; the tests also check at once with check-now.
                changes.update({"ftp_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                "ftp_start": "00:00", "ftp_end": "23:55", "ftp_interval": 5, "ftp_delay": 0})
            settings = integration.update_settings(account.id, changes, actor="reliability-test")
            item = {"id": account.id, "slug": slug, "mode": mode, "email": email, "password": password,
                    "member_ids": member_ids, "inbound_address": integration.inbound_address(settings)}
            if mode == "ftp":
                item["ftp_password"] = integration.issue_ftp_password(account.id, actor="reliability-test")
                item["ftp_username"] = integration.get_settings(account.id).ftp_username
            if mode == "api":
                item["api_token"] = integration.issue_api_token(account.id, actor="reliability-test")
            out.append(item)
    return out


def flask_cli(data_dir: Path, *args: str, database_url: str = "",
              timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `flask --app app ARGS` against the data folder and database (the operator's way in)."""
    env = _env(database_url)
    env.update({"RENKEI_DATA_DIR": str(data_dir), "RENKEI_FTP_QUIET_SECONDS": "0"})
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def login(base_url: str, email: str, password: str):
    """A requests.Session logged in through the login form (with its CSRF token)."""
    import requests

    session = requests.Session()
    response = _login(base_url, email, password, session)
    assert response.status_code == 200 and "ログアウト" in response.text, response.text[:500]
    return session


# ---------------------------------------------------------------------------------------
# The database


def url_of(data_dir: Path, database_url: str = "") -> str:
    """The database a process on `data_dir` with DATABASE_URL=`database_url` works on, as a URL."""
    return database_url or f"sqlite:///{Path(data_dir) / 'renkei.db'}"


@functools.lru_cache(maxsize=None)
def _engine(url: str) -> Engine:
    """One engine per URL; NullPool, so every call has a fresh connection and none stays open."""
    # SQLite waits up to 30 s for the server's write lock instead of failing at once.
    connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
    return create_engine(url, poolclass=NullPool, connect_args=connect_args)


def query(url: str, sql: str, params: dict | None = None) -> list[tuple]:
    """Run a query (`:name` parameters) on the database at `url`, in a connection of its own."""
    with _engine(url).connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params or {})]


def scalar(url: str, sql: str, params: dict | None = None) -> Any:
    rows = query(url, sql, params)
    return rows[0][0] if rows else None


def wait_until(condition: Callable[[], Any], timeout: float, message: Callable[[], str] | str = "") -> Any:
    """Poll `condition` until it returns something truthy (and return it); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s: {message() if callable(message) else message}")
        time.sleep(0.05)  # polling state another process changes


def expire_claims(url: str, age_seconds: int = 3600) -> tuple[int, int]:
    """Make every open claim (imports running, outbox mails being sent) `age_seconds` old; return the counts.

    Stands in for the wait a real operator would have after a crash: a mail claim is taken back
    after outbox.CLAIM_TIMEOUT_SECONDS (600 s), longer than a test may wait. (An import claimed by
    a dead process is taken back at once, whatever its age: see app/services/claims.py and
    tests/reliability/test_recovery.py.) Only call it while no Renkei process runs on the data folder.
    """
    stamp = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=age_seconds)
    # Typed, so the stamp is stored as the app stores naive UTC times on either database.
    stamp_param = bindparam("stamp", stamp, type_=DateTime())
    with _engine(url).begin() as conn:
        imports = conn.execute(text("UPDATE imports SET claimed_at = :stamp WHERE status = 'running' "
                                    "AND claimed_at IS NOT NULL").bindparams(stamp_param)).rowcount
        mails = conn.execute(text("UPDATE outbox SET claimed_at = :stamp WHERE status = 'pending' "
                                  "AND claimed_at IS NOT NULL").bindparams(stamp_param)).rowcount
    return imports, mails


# ---------------------------------------------------------------------------------------
# Child-process entry point


def _main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "setup":
        print(json.dumps(_setup_in_app(json.loads(argv[1])), ensure_ascii=False))
        return 0
    print("usage: python -m tests.reliability.procs setup SPECS_JSON", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
