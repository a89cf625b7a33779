"""SMTP benchmark (issues 5, 13): Renkei's SMTP server against a bare aiosmtpd handler that only answers 250.

In one run, on a temporary data folder, both servers live in this process and receive the same
messages `--rounds` times (default 3) in alternating order (bare first in odd rounds, Renkei
first in even ones); the figures are the medians. Between rounds the spool drain and the
imports of the round before finish, so every round starts from the same state. Two clients:

- `--client smtplib` (default): N messages (default 200), each with a ~1 MB (`--size-kb 1024`)
  cp932 CSV of valid rows for a demo account, over 4 parallel smtplib connections;
- `--client smtp-source`: Postfix's `smtp-source` (Debian package `postfix`, /usr/sbin/smtp-source;
  its daemon need not run) sends N messages of `--size-kb` (default 100) with 4 sessions: a
  body of text lines and no attachment, which Renkei accepts and records as a failed import
  "(CSV添付なし)", so the figure is the cost of accepting small mails.

Prints both throughputs (messages/s, MB/s), their ratio (target >= 0.7) and, for smtplib, the
time from the first message until every import is stored (succeeded).

    python bench/smtp_bench.py [--client smtplib|smtp-source] [--messages 200] [--size-kb N]
                               [--connections 4] [--rounds 3] [--worker thread|process|none] [--keep]

--worker thread (default) runs the worker in the SMTP server's process, as `python run.py`
does; `process` runs it in a second process on the same database (`run.py --only worker`),
so the two do not share one interpreter lock; `none` measures the SMTP server alone.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import smtplib
import subprocess
import sys
import threading
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_bench import scratch_folder  # noqa: E402

SENDER = "bench@partner.example"
MEMBERS = [(1, "E001", "髙橋 一郎"), (2, "E002", "佐藤 花子"), (3, "E003", "鈴木 次郎"), (4, "E004", "田中 美咲")]
COLUMNS = [("売上", "円"), ("粗利", "円"), ("件数", "件")]
NOTES = ["髙島屋 訪問", "①件目 ～ 継続", "ｶﾌﾞｼｷｶﾞｲｼｬ ﾃｽﾄ", "", "A社 新規"]


def make_csv(size: int, seed: int) -> bytes:
    """A valid results CSV (cp932, CRLF) of about `size` bytes for the demo account."""
    lines = ["No.,売上,粗利,件数,備考"]
    total = 0
    i = seed
    while total < size:
        line = f"{i % 4 + 1},{(i * 7919) % 5_000_000},{(i * 104729) % 900_000},{i % 10},{NOTES[i % len(NOTES)]}"
        lines.append(line)
        total += len(line.encode("cp932")) + 2
        i += 1
    return ("\r\n".join(lines) + "\r\n").encode("cp932")


def make_messages(count: int, size: int, to: str) -> list[bytes]:
    """`count` messages, each with one CSV named after a different day (no file replaces another)."""
    messages = []
    first_day = dt.date(2018, 1, 1)
    for n in range(count):
        message = EmailMessage()
        message["From"] = SENDER
        message["To"] = to
        message["Subject"] = f"売上 {n}"
        message["Message-ID"] = f"<bench-{n}@partner.example>"
        message.set_content("ベンチマーク")
        name = (first_day + dt.timedelta(days=n)).strftime("%Y%m%d") + ".csv"
        message.add_attachment(make_csv(size, n * 1000), maintype="text", subtype="csv", filename=name)
        messages.append(message.as_bytes(policy=policy.SMTP))
    return messages


def send_all(port: int, messages: list[bytes], to: str, connections: int) -> float:
    """Send every message over `connections` parallel sessions; return the wall time in seconds."""
    errors: list[BaseException] = []
    chunks = [messages[i::connections] for i in range(connections)]

    def worker(chunk: list[bytes]) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
                for raw in chunk:
                    client.sendmail(SENDER, [to], raw)
        except BaseException as error:  # reported after the join
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} sending thread(s) failed: {errors[0]!r}")
    return elapsed


def bare_server():
    """A bare aiosmtpd server on a free port whose handler only answers 250."""
    from tests.fixtures.smtp_sink import FreePortController

    class Bare:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    controller = FreePortController(Bare(), hostname="127.0.0.1", port=0, data_size_limit=64 * 1024 * 1024)
    controller.start()
    return controller


def setup_app(folder: Path):
    """A migrated app on `folder` with the demo account in mail mode; returns (app, account id, address)."""
    from app import create_app
    from app.extensions import upgrade_database
    from app.services import accounts, columns, integration, members

    app = create_app({
        "DATA_DIR": str(folder),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'renkei.db'}",
        "SECRET_KEY": "bench",
        "SMTP_PORT": 0,
        "HOST": "127.0.0.1",
        "SMTP_RELAY": None,
    })
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    with app.app_context():
        upgrade_database(app)
        root.setLevel(level)
        root.handlers[:] = handlers
        account, _ = accounts.create_account("demo", "デモ株式会社", "admin@demo.example", "bench-password")
        accounts.set_integration_enabled("demo", True)
        for no, employee_id, name in MEMBERS:
            members.create_member(account.id, no, employee_id, name, "営業部")
        for name, unit in COLUMNS:
            columns.add_column(account.id, name, unit)
        settings = integration.update_settings(
            account.id, {"mode": "mail", "senders": [SENDER], "error_to": ["admin@demo.example"]}, actor="bench"
        )
        return app, account.id, integration.inbound_address(settings)


WORKER_SCRIPT = """
import sys
from app import create_app
from servers.worker import Worker
worker = Worker(create_app({"SQLALCHEMY_DATABASE_URI": sys.argv[1], "SECRET_KEY": "bench", "SMTP_RELAY": None}),
                poll_seconds=0.2)
worker.start()
sys.stdin.read()  # until the benchmark closes our stdin
worker.stop(timeout=600)
"""


def start_worker(app, mode: str, folder: Path):
    """The import worker: a thread of this process, a second process, or nothing."""
    if mode == "none":
        return None
    if mode == "process":
        env = dict(os.environ, RENKEI_DATA_DIR=str(folder), PYTHONPATH=str(ROOT))
        return subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, app.config["SQLALCHEMY_DATABASE_URI"]],
                                cwd=ROOT, env=env, stdin=subprocess.PIPE)
    from servers.worker import Worker

    worker = Worker(app)
    worker.start()
    return worker


def stop_worker(worker) -> None:
    if worker is None:
        return
    if isinstance(worker, subprocess.Popen):
        worker.stdin.close()
        worker.wait(600)
    else:
        worker.stop(timeout=600)


def wait_all_done(app, account_id: int, count: int, timeout: float) -> tuple[int, int]:
    """Poll until `count` imports of the account ended; return (succeeded, failed)."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Import

    deadline = time.monotonic() + timeout
    with app.app_context():
        while True:
            rows = dict(db.session.execute(
                select(Import.status, func.count()).where(Import.account_id == account_id).group_by(Import.status)
            ).all())
            db.session.rollback()
            done = rows.get(Import.SUCCEEDED, 0) + rows.get(Import.FAILED, 0)
            if done >= count or time.monotonic() > deadline:
                return rows.get(Import.SUCCEEDED, 0), rows.get(Import.FAILED, 0)
            time.sleep(0.05)


def smtp_source_path() -> str:
    """Postfix's smtp-source (RENKEI_BENCH_SMTP_SOURCE, PATH, /usr/sbin); exits with advice when absent."""
    path = os.environ.get("RENKEI_BENCH_SMTP_SOURCE") or shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    if not os.access(path, os.X_OK):
        sys.exit("smtp-source not found: install the Debian package postfix "
                 "(apt-get install --no-install-recommends postfix) or set RENKEI_BENCH_SMTP_SOURCE; "
                 "without installing: apt-get download postfix, dpkg-deb -x postfix_*.deb DIR, and point "
                 "RENKEI_BENCH_SMTP_SOURCE at a script running DIR/usr/sbin/smtp-source with "
                 "LD_LIBRARY_PATH=DIR/usr/lib/postfix")
    return path


def run_smtp_source(port: int, count: int, size: int, to: str, sessions: int) -> float:
    """`smtp-source` sends `count` messages of `size` bytes over `sessions` reused sessions; return the wall time."""
    command = [smtp_source_path(), "-d", "-s", str(sessions), "-m", str(count), "-l", str(size),
               "-f", SENDER, "-t", to, f"127.0.0.1:{port}"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or result.stderr.strip():
        raise RuntimeError(f"smtp-source failed ({result.returncode}): {result.stderr.strip()[:500]}")
    return elapsed


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=["smtplib", "smtp-source"], default="smtplib")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--size-kb", type=float, default=None,
                        help="message size in KiB (default 1024 with smtplib, 100 with smtp-source)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", choices=["thread", "process", "none"], default="thread")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = parser.parse_args(argv)
    size = int((args.size_kb or (100 if args.client == "smtp-source" else 1024)) * 1024)

    logging.basicConfig(level=logging.WARNING)
    with scratch_folder("renkei-smtp-bench-", args.keep) as folder:
        app, account_id, address = setup_app(folder)
        logging.getLogger().setLevel(logging.WARNING)  # one line per message would drown the figures
        if args.client == "smtplib":
            messages = make_messages(args.messages, size, address)
            total_mb = sum(len(m) for m in messages) / 1e6

            def send(port: int) -> float:
                return send_all(port, messages, address, args.connections)
        else:
            smtp_source_path()
            total_mb = args.messages * size / 1e6

            def send(port: int) -> float:
                return run_smtp_source(port, args.messages, size, address, args.connections)
        print(f"client {args.client}: {args.messages} messages, {total_mb:.1f} MB on the wire, "
              f"{args.connections} connections, {args.rounds} rounds (alternating order), worker {args.worker}")
        print(f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
              "(other processes on the box move both figures; compare ratios of one run)")

        from servers import smtp

        bare = bare_server()
        worker = start_worker(app, args.worker, folder)
        server = smtp.start(app)
        bare_times: list[float] = []
        renkei_times: list[float] = []
        stored_times: list[float] = []
        succeeded = failed = 0
        try:
            for round_no in range(args.rounds):
                order = ["bare", "renkei"] if round_no % 2 == 0 else ["renkei", "bare"]
                for name in order:
                    if name == "bare":
                        bare_times.append(send(bare.port))
                        continue
                    started = time.perf_counter()
                    renkei_times.append(send(server.port))
                    if args.worker == "none" and worker is None:
                        worker = start_worker(app, "thread", folder)
                    # The next measurement starts once this round's mails are drained and imported.
                    succeeded, failed = wait_all_done(app, account_id, args.messages * (round_no + 1), timeout=3600)
                    stored_times.append(time.perf_counter() - started)
                print(f"round {round_no + 1} ({' first, '.join(order)} second): "
                      f"bare {args.messages / bare_times[-1]:7.1f} msg/s, "
                      f"Renkei {args.messages / renkei_times[-1]:7.1f} msg/s, "
                      f"ratio {bare_times[-1] / renkei_times[-1]:.2f}")
        finally:
            server.stop()
            bare.stop()
            stop_worker(worker)

        def line(name: str, seconds: float) -> str:
            return (f"{name:<22} {seconds:8.2f} s  {args.messages / seconds:8.1f} messages/s  "
                    f"{total_mb / seconds:7.1f} MB/s")

        bare_seconds, renkei_seconds = median(bare_times), median(renkei_times)
        ratio = bare_seconds / renkei_seconds
        print("medians:")
        print(line("bare aiosmtpd (250)", bare_seconds))
        print(line("Renkei SMTP (stored)", renkei_seconds))
        print(f"ratio Renkei / bare     {ratio:8.2f}  (higher is faster; target >= 0.70: {'OK' if ratio >= 0.7 else 'MISSED'})")
        print(f"all imports stored      {median(stored_times):8.2f} s after the first message of a round "
              f"(succeeded {succeeded}, failed {failed})")
        print(f"load average at end {os.getloadavg()[0]:.1f}")
        expected = args.messages * args.rounds
        if args.client == "smtplib":
            return 0 if succeeded == expected else 1
        return 0 if failed == expected else 1  # smtp-source mails carry no CSV: each is a failed import


if __name__ == "__main__":
    sys.exit(main())
