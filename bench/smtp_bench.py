"""SMTP benchmark (issue 5): Renkei's SMTP server against a bare aiosmtpd handler that only answers 250.

In one run, on a temporary data folder: N messages (default 200), each with a ~1 MB cp932
CSV of valid rows for a demo account, are sent over 4 parallel smtplib connections first to
the bare server, then to Renkei's SMTP server (with the import worker running). Prints both
throughputs (messages/s, MB/s), their ratio (target ≥ 0.7) and the time from the first
message until every import is stored (succeeded).

    python bench/smtp_bench.py [--messages 200] [--size-mb 1] [--connections 4]
                               [--worker thread|process|none] [--keep]

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
import tempfile
import threading
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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
    from aiosmtpd.controller import Controller

    class Bare:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    class FreePort(Controller):
        def _trigger_server(self):
            if self.port == 0 and self.server is not None:
                self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    controller = FreePort(Bare(), hostname="127.0.0.1", port=0, data_size_limit=64 * 1024 * 1024)
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


def wait_all_succeeded(app, account_id: int, count: int, timeout: float) -> tuple[int, int]:
    """Poll until `count` imports ended; return (succeeded, failed)."""
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
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--size-mb", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--worker", choices=["thread", "process", "none"], default="thread")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING)
    folder = Path(tempfile.mkdtemp(prefix="renkei-smtp-bench-"))
    try:
        app, account_id, address = setup_app(folder)
        logging.getLogger().setLevel(logging.WARNING)  # one line per message would drown the figures
        messages = make_messages(args.messages, int(args.size_mb * 1024 * 1024), address)
        total_mb = sum(len(m) for m in messages) / 1e6
        print(f"{args.messages} messages, {total_mb:.1f} MB on the wire, {args.connections} connections")

        bare = bare_server()
        try:
            bare_seconds = send_all(bare.port, messages, address, args.connections)
        finally:
            bare.stop()

        from servers import smtp

        worker = start_worker(app, args.worker, folder)
        server = smtp.start(app)
        try:
            started = time.perf_counter()
            renkei_seconds = send_all(server.port, messages, address, args.connections)
            if args.worker == "none":
                worker = start_worker(app, "thread", folder)
            succeeded, failed = wait_all_succeeded(app, account_id, args.messages, timeout=3600)
            stored_seconds = time.perf_counter() - started
        finally:
            server.stop()
            stop_worker(worker)

        def line(name: str, seconds: float) -> str:
            return (f"{name:<22} {seconds:8.2f} s  {args.messages / seconds:8.1f} messages/s  "
                    f"{total_mb / seconds:7.1f} MB/s")

        ratio = bare_seconds / renkei_seconds
        print(line("bare aiosmtpd (250)", bare_seconds))
        print(line("Renkei SMTP (stored)", renkei_seconds))
        print(f"ratio Renkei / bare     {ratio:8.2f}  (target >= 0.70: {'OK' if ratio >= 0.7 else 'MISSED'})")
        print(f"worker: {args.worker}")
        print(f"all imports stored      {stored_seconds:8.2f} s after the first message "
              f"(succeeded {succeeded}, failed {failed})")
        return 0 if succeeded == args.messages else 1
    finally:
        if args.keep:
            print(f"data folder kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
