"""`python run.py` as an operator runs it: a real process on free ports, stopped by SIGTERM or Ctrl-C."""
from __future__ import annotations

import ftplib
import io
import queue
import re
import shlex
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests

from tests.fixtures.processes import (
    READY_RE,
    ROOT,
    SENDER,
    START_TIMEOUT,
    AccountSpec,
    RenkeiProcess,
    child_env,
    results_csv,
    setup_accounts,
    web_login,
)
from tests.fixtures.waiting import wait_for

PASSWORD_RE = re.compile(r"パスワード \(password\): (\S+)")
DEMO_COMMANDS_RE = re.compile(r"<!-- demo-commands:start -->\n```sh\n(.*?)```\n<!-- demo-commands:end -->", re.S)
STOP_TIMEOUT = 30


class RunPy:
    """A `python run.py` subprocess whose output is read line by line on a thread."""

    def __init__(self, data_dir: Path, *flags: str, database_url: str = "") -> None:
        command = [sys.executable, "run.py", "--data-dir", str(data_dir), "--host", "127.0.0.1",
                   "--web-port", "0", "--smtp-port", "0", "--ftp-port", "0", "--sftp-port", "0", *flags]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=child_env(database_url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, encoding="utf-8", errors="replace",
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        # Draining the pipe all the time keeps the server from blocking on a full pipe.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_ready(self) -> dict[str, str]:
        """Read output until the READY line; return its key=value fields."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail("run.py printed no READY line in time:\n" + self.output())
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"run.py ended (code {self.process.wait()}) before READY:\n" + self.output())
            self.lines.append(line)
            match = READY_RE.match(line)
            if match:
                return dict(field.split("=", 1) for field in match["fields"].split())

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send the signal and return the exit code (fail if it does not end in time)."""
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail("run.py did not stop in time:\n" + self.output())
        self._reader.join(STOP_TIMEOUT)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return code

    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def start(tmp_path, empty_database_url):
    """Start run.py on a data folder (default tmp_path/data) and the test's database; every process is killed at the end."""
    processes: list[RunPy] = []

    def do(*flags: str, data_dir: Path | None = None) -> RunPy:
        process = RunPy(data_dir or tmp_path / "data", *flags, database_url=empty_database_url)
        processes.append(process)
        return process

    yield do
    for process in processes:
        process.kill()


def _port_of(url: str) -> int:
    return int(re.search(r":(\d+)/?$", url).group(1))


def _port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _query(database: Path | str, sql: str) -> list[tuple]:
    """Rows of `sql` from a SQLite file (a Path) or the database at a URL."""
    if isinstance(database, str):
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        engine = create_engine(database, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(sql))]
        finally:
            engine.dispose()
    with closing(sqlite3.connect(database)) as conn:
        return conn.execute(sql).fetchall()


def _database(data_dir: Path, database_url: str) -> Path | str:
    """What run.py used: the URL given to it, else the SQLite file in its data folder."""
    return database_url or data_dir / "renkei.db"


def test_first_start_migrates_creates_demo_and_stops_on_sigterm(start, tmp_path, empty_database_url):
    data_dir = tmp_path / "data"  # does not exist yet: run.py creates it
    run = start()
    ready = run.wait_ready()
    base_url = ready["web"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", base_url)
    assert f"web: {base_url}" in run.lines
    passwords = PASSWORD_RE.findall(run.output())
    assert len(passwords) == 1, run.output()
    assert "admin@demo.example" in run.output()
    # The migrations of a new database are applied quietly: no Alembic INFO lines on a normal start.
    assert "alembic" not in run.output() and "Running upgrade" not in run.output(), run.output()
    assert re.search(r"送信先メールアドレス \(inbound address\): sp-[0-9a-f]+@renkei\.localhost", run.output())

    session = requests.Session()
    page = web_login(base_url, "admin@demo.example", passwords[0], session)
    assert page.status_code == 200
    assert "<title>メイン - Renkei</title>" in page.text
    assert "デモ株式会社" in page.text
    if "ftp" in ready:
        # Started on port 0, the 外部連携設定 tab shows the port the FTP server really bound.
        settings_page = session.get(base_url + "settings/integration", timeout=10)
        assert f"127.0.0.1:{_port_of(ready['ftp'])}" in settings_page.text
    if "sftp" in ready:
        # The host key's fingerprint is printed at start, for users to compare on their first connect.
        assert re.fullmatch(r"sftp://127\.0\.0\.1:\d+", ready["sftp"])
        fingerprint = next(line for line in run.lines if line.startswith("sftp: host key ")).split()[-1]
        assert fingerprint.startswith("SHA256:")
        settings_page = session.get(base_url + "settings/integration", timeout=10)
        assert fingerprint in settings_page.text and f"<code>{_port_of(ready['sftp'])}</code>" in settings_page.text

    db_file = _database(data_dir, empty_database_url)
    assert _query(db_file, "SELECT count(*) FROM alembic_version") == [(1,)]
    assert _query(db_file, "SELECT slug, name, integration_enabled FROM accounts") == [("demo", "デモ株式会社", 1)]
    members = _query(db_file, "SELECT no, employee_id, name FROM members ORDER BY no")
    assert 3 <= len(members) <= 5
    assert members[0] == (1, "E001", "髙橋 一郎")
    columns = _query(db_file, "SELECT name, unit FROM graph_columns ORDER BY position")
    assert columns == [("売上", "円"), ("粗利", "円"), ("件数", "件")]
    assert _query(db_file, "SELECT CAST(error_to AS TEXT) FROM integration_settings") == [('["admin@demo.example"]',)]

    port = _port_of(base_url)
    assert run.stop(signal.SIGTERM) == 0, run.output()
    assert not _port_is_open(port)
    assert "part web stopped" in run.output()


def test_second_start_keeps_the_demo_account_and_prints_no_password(start, tmp_path, empty_database_url):
    first = start("--only", "web")
    first.wait_ready()
    assert first.stop() == 0, first.output()

    second = start("--only", "web")
    ready = second.wait_ready()
    assert "web" in ready
    assert not PASSWORD_RE.search(second.output())
    assert "デモアカウントを作成しました" not in second.output()
    assert _query(_database(tmp_path / "data", empty_database_url), "SELECT slug FROM accounts") == [("demo",)]
    assert second.stop() == 0, second.output()


def test_only_web_starts_without_the_worker_and_ctrl_c_stops_it(start):
    run = start("--only", "web")
    ready = run.wait_ready()
    assert ready["parts"] == "web"
    port = _port_of(ready["web"])
    assert requests.get(ready["web"] + "login", timeout=10).status_code == 200
    assert "part worker" not in run.output()

    assert run.stop(signal.SIGINT) == 0, run.output()
    assert "Traceback" not in run.output()
    assert not _port_is_open(port)


def test_only_starts_exactly_the_named_parts(start):
    run = start("--only", "web,smtp,ftp,scheduler")
    ready = run.wait_ready()
    assert ready["parts"] == "scheduler,smtp,ftp,web", run.output()
    assert "part worker" not in run.output()
    # What a load balancer is told: the part left out is not running, which is no fault.
    health = requests.get(ready["web"] + "healthz", timeout=10)
    assert health.status_code == 200
    parts = health.json()["parts"]
    assert parts["worker"] == "not running"
    assert {name: parts[name] for name in ("scheduler", "smtp", "ftp", "web")} == dict.fromkeys(
        ("scheduler", "smtp", "ftp", "web"), "alive")
    assert run.stop() == 0, run.output()


def test_only_imap_starts_the_mailbox_fetcher_alone(start):
    run = start("--only", "imap")
    ready = run.wait_ready()
    assert ready["parts"] == "imap", run.output()
    assert "imap fetcher started" in run.output() or "part imap started" in run.output()
    assert run.stop() == 0, run.output()
    assert "Traceback" not in run.output()


def test_unknown_part_is_refused_with_the_list_of_parts(tmp_path):
    result = subprocess.run(
        [sys.executable, "run.py", "--data-dir", str(tmp_path / "data"), "--only", "web,mystery"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=child_env(),
    )
    assert result.returncode == 2
    assert "mystery" in result.stderr and "worker,scheduler,smtp,ftp,sftp,imap,web" in result.stderr
    assert not (tmp_path / "data").exists()


def test_a_busy_port_stops_start_up_with_exit_code_1(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "run.py", "--data-dir", str(tmp_path / "data"), "--host", "127.0.0.1",
             "--web-port", str(port), "--only", "web"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env=child_env(),
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "起動できませんでした" in result.stderr
    assert "RENKEI READY" not in result.stdout


def test_a_csv_mailed_to_the_demo_address_is_imported_by_the_running_worker(start, tmp_path, empty_database_url):
    """The parts are wired together: SMTP hands the file to ingest, the worker of the same process imports it."""
    import smtplib
    from email.message import EmailMessage

    run = start("--only", "worker,smtp")
    ready = run.wait_ready()
    assert ready["parts"] == "worker,smtp", run.output()
    inbound = re.search(r"\(inbound address\): (\S+)", run.output()).group(1)
    mail = EmailMessage()
    mail["From"] = "admin@demo.example"
    mail["To"] = inbound
    mail["Subject"] = "実績"
    csv = "No.,売上,粗利,件数\r\n1,120000,30000,2\r\n2,\"50,000\",12000,1\r\n".encode("cp932")
    mail.add_attachment(csv, maintype="text", subtype="csv", filename="20180516.csv")
    smtp_port = _port_of(ready["smtp"])
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
        client.send_message(mail)

    db_file = _database(tmp_path / "data", empty_database_url)
    wait_for(lambda: _query(db_file, "SELECT status FROM imports") == [("succeeded",)], 30,
             what=lambda: f"the mailed import to succeed\n{run.output()}", interval=0.1)
    assert _query(db_file, "SELECT sum(line_count) FROM result_blocks") == [(2,)]
    assert run.stop() == 0, run.output()
    assert not _port_is_open(smtp_port)


def test_a_setting_of_the_wrong_type_stops_the_start_naming_the_variable(tmp_path):
    env = {**child_env(), "RENKEI_SMTP_MAX_CONNECTIONS": "many"}
    done = subprocess.run([sys.executable, "run.py", "--data-dir", str(tmp_path), "--only", "web"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=START_TIMEOUT)
    assert done.returncode == 1
    assert "RENKEI_SMTP_MAX_CONNECTIONS は整数で指定してください。値: 'many'" in done.stderr
    assert "Traceback" not in done.stderr


class _WritesHeld:
    """Hold the database's write lock (readers go on), so a spooled mail stays in the spool until release()."""

    def __init__(self, database: Path | str) -> None:
        if isinstance(database, str):  # PostgreSQL: no insert into imports until released
            from sqlalchemy import create_engine, text
            from sqlalchemy.pool import NullPool

            self._engine = create_engine(database, poolclass=NullPool)
            self._conn = self._engine.connect()
            self._transaction = self._conn.begin()
            self._conn.execute(text("LOCK TABLE imports IN SHARE ROW EXCLUSIVE MODE"))
        else:
            self._engine = None
            self._conn = sqlite3.connect(database, isolation_level=None)
            self._conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self._engine is not None:
            self._transaction.rollback()
            self._conn.close()
            self._engine.dispose()
        else:
            self._conn.execute("ROLLBACK")
            self._conn.close()


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_files_at_rest_are_private_in_an_existing_open_data_folder(tmp_path, empty_database_url, renkei_processes):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)  # made by the operator, as `mkdir` makes folders
    server = RenkeiProcess(data_dir, tmp_path / "run.log", database_url=empty_database_url)
    renkei_processes.append(server)
    server.start()
    assert (f"データフォルダ {data_dir} は他のユーザーからも開けます (mode 0755)。chmod 700 {data_dir} で閉じてください"
            " / data folder is open to group or others (mode 0755); close it with chmod 700") in server.log_text()
    assert _mode(data_dir) == 0o755  # the operator's folder keeps its mode
    accounts = setup_accounts(data_dir, [AccountSpec("mailco", "mail"), AccountSpec("ftpco", "ftp")],
                              empty_database_url)

    # A mail waits in the spool while the database takes no writes: the spooled message is 0600.
    spool = data_dir / "spool" / "mail"
    held = _WritesHeld(_database(data_dir, empty_database_url))
    try:
        mail = EmailMessage()
        mail["From"] = SENDER
        mail["To"] = accounts["mailco"].inbound_address
        mail["Subject"] = "実績"
        mail.add_attachment(results_csv([(1, 100, 10, 1)]), maintype="text", subtype="csv", filename="20180516.csv")
        with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as client:
            client.send_message(mail)
        entries = list(spool.glob("*.entry"))
        assert len(entries) == 1, list(spool.iterdir())
        assert _mode(entries[0]) == 0o600
    finally:
        held.release()
    wait_for(lambda: not list(spool.glob("*.entry")), 30, what="the spool to be drained", interval=0.1)

    # A file received over FTP is 0600 in the account's FTP home.
    ftp_account = accounts["ftpco"]
    ftp = ftplib.FTP(timeout=30)
    ftp.connect("127.0.0.1", server.port("ftp"))
    ftp.login(ftp_account.ftp_username, ftp_account.ftp_password)
    assert ftp.storbinary("STOR 20180517.csv", io.BytesIO(results_csv([(1, 100, 10, 1)]))).startswith("226")
    ftp.quit()
    received = data_dir / "ftp" / ftp_account.ftp_username / "20180517.csv"
    assert _mode(received) == 0o600

    # Every file in the data folder (the database and its WAL when on SQLite, the key, locks, …) is 0600,
    # every folder run.py made is 0700.
    files = [path for path in data_dir.rglob("*") if path.is_file()]
    if not empty_database_url:
        assert {"renkei.db", "renkei.db-wal"} <= {path.name for path in files}
    assert {path.name: oct(_mode(path)) for path in files if _mode(path) != 0o600} == {}
    for folder in (spool, data_dir / "spool", data_dir / "ftp-uploading"):
        assert _mode(folder) == 0o700, folder
    assert server.stop() == 0, server.log_tail()


def test_the_readmes_demo_commands_import_the_file_by_mail_api_and_ftp(start, tmp_path, empty_database_url):
    """The README's 「デモアカウントに送ってみる」 lines, run as written (ports and the printed secrets filled in)."""
    data_dir = tmp_path / "data"
    run = start(data_dir=data_dir)
    ready = run.wait_ready()
    output = run.output()
    secrets = {
        "<送信先メールアドレス>": re.search(r"\(inbound address\): (\S+)", output).group(1),
        "<FTPパスワード>": re.search(r"\(ftp login\): demo / (\S+)", output).group(1),
    }
    ports = {f"127.0.0.1:{default}": f"127.0.0.1:{_port_of(ready[part])}"
             for default, part in (("2525", "smtp"), ("8000", "web"), ("2121", "ftp"))}
    block = DEMO_COMMANDS_RE.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert block, "README.md has no demo-commands block"
    commands = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    assert any(line.startswith("swaks ") for line in commands) and any(line.startswith("curl -T") for line in commands)
    work = tmp_path / "work"
    work.mkdir()
    # The flask commands find the app as they do in the repository folder, and its data folder as
    # run.py's; the FTP check does not wait out the quiet period the README mentions.
    env = {**child_env(empty_database_url), "RENKEI_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT),
           "HOME": str(work), "LANG": "C.UTF-8", "RENKEI_FTP_QUIET_SECONDS": "0"}
    for line in commands:
        command = line
        for old, new in (*ports.items(), *secrets.items()):
            command = command.replace(old, new)
        if command.startswith("flask "):
            command = f"{shlex.quote(sys.executable)} -m {command}"
        assert "<" not in command.replace("<<", ""), f"a placeholder left in: {line}"
        done = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        if " api-token " in command:
            secrets["<APIトークン>"] = done.stdout.strip().splitlines()[-1]

    database = _database(data_dir, empty_database_url)
    wait_for(lambda: len(_query(database, "SELECT id FROM imports WHERE status = 'succeeded'")) == 4, 30,
             what=lambda: f"four imports\n{_query(database, 'SELECT channel, filename, status FROM imports')}",
             interval=0.1)
    assert sorted(_query(database, "SELECT channel, filename, row_count FROM imports")) == [
        ("api", "20261201.csv", 2), ("ftp", "20261201.csv", 2), ("mail", "20261201.csv", 2), ("mail", "20261201.csv", 2)]
    assert run.stop() == 0, run.output()
