"""Start Renkei: create the data folder, apply migrations, start the parts, wait for Ctrl-C or SIGTERM.

This is the only file that starts anything. `python run.py --help` lists the flags; each flag
overrides the RENKEI_* environment variable of the same name (and `.env`).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import signal
import stat
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dotenv import load_dotenv

from servers.web import url_host

log = logging.getLogger("renkei.run")

# What Renkei writes is its own: files 0600, folders 0700 (the database holds password hashes,
# every received file and the members' addresses; the data folder also holds the secret key).
PRIVATE_UMASK = 0o077

# Seconds a part may take to stop. The worker gets longer: it finishes the import in progress.
STOP_TIMEOUT = 15.0
WORKER_STOP_TIMEOUT = 300.0


# --------------------------------------------------------------------------------------
# Parts


def start_worker(app):
    """Run queued imports and outgoing mail in the background."""
    from servers.worker import Worker

    worker = Worker(app)
    worker.start()
    return worker


@dataclass(frozen=True)
class Part:
    """How to start one part: a function(app) -> started object, or "module:function" naming one.

    The started object has `.stop(timeout=...)` (or `.stop()`), `.alive()` (whether it still
    serves: GET /healthz, app/health.py) and may have `.listeners`, a list
    of URLs such as "smtp://127.0.0.1:2525" (or `.host` and `.port`), which run.py prints.
    """

    start: Callable[[Any], Any] | str
    stop_timeout: float = STOP_TIMEOUT

    def run(self, app):
        start = self.start
        if isinstance(start, str):
            module_name, function = start.split(":")
            start = getattr(importlib.import_module(module_name), function)
        return start(app)


# Start order; parts are stopped in reverse, so the channels stop taking files before the
# worker stops (the worker finishes the import in progress). A new part is one line here.
PARTS: dict[str, Part] = {
    "worker": Part(start_worker, stop_timeout=WORKER_STOP_TIMEOUT),
    "scheduler": Part("servers.scheduler:start"),
    "smtp": Part("servers.smtp:start"),
    "ftp": Part("servers.ftp:start"),
    "sftp": Part("servers.sftp:start"),
    "imap": Part("servers.imapfetch:start"),
    "web": Part("servers.web:start"),
}


# --------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the flags; each one mirrors a RENKEI_* environment variable."""
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Renkei をすべて起動します (Web UI, SMTP, FTP, SFTP, スケジューラー, 取込ワーカー)。"
        " Starts Renkei. Flags override the RENKEI_* environment variables and .env.",
    )
    parser.add_argument("--host", help="bind address of all listeners (RENKEI_HOST, default 127.0.0.1)")
    parser.add_argument("--web-port", type=_port, help="web UI and API port (RENKEI_WEB_PORT, default 8000; 0 = any free port)")
    parser.add_argument("--smtp-port", type=_port, help="SMTP port (RENKEI_SMTP_PORT, default 2525; 0 = any free port)")
    parser.add_argument("--ftp-port", type=_port, help="FTP port (RENKEI_FTP_PORT, default 2121; 0 = any free port)")
    parser.add_argument("--sftp-port", type=_port, help="SFTP port (RENKEI_SFTP_PORT, default 2222; 0 = any free port)")
    parser.add_argument("--data-dir", help="data folder (RENKEI_DATA_DIR, default ./instance)")
    parser.add_argument(
        "--only",
        type=_parts,
        default=list(PARTS),
        metavar="PARTS",
        help=f"comma-separated subset of {','.join(PARTS)} (default: all)",
    )
    return parser.parse_args(argv)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"ポート番号は0〜65535にしてください / port must be 0-65535: {text!r}")
    return port


def _parts(text: str) -> list[str]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PARTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"不明なパート / unknown part: {','.join(unknown) or text!r} (choose from {','.join(PARTS)})"
        )
    # Keep the registry's start order whatever order the user typed.
    return [name for name in PARTS if name in names]


def apply_flags(args: argparse.Namespace) -> None:
    """Put the flags into the environment, so config.from_environment() sees them over `.env`."""
    for flag, variable in (
        ("host", "RENKEI_HOST"),
        ("web_port", "RENKEI_WEB_PORT"),
        ("smtp_port", "RENKEI_SMTP_PORT"),
        ("ftp_port", "RENKEI_FTP_PORT"),
        ("sftp_port", "RENKEI_SFTP_PORT"),
        ("data_dir", "RENKEI_DATA_DIR"),
    ):
        value = getattr(args, flag)
        if value is not None:
            os.environ[variable] = str(value)


# --------------------------------------------------------------------------------------
# Database


def migrate_database(app) -> None:
    """Create the data folder and bring the schema up to date (migrations/ is the only way it is made)."""
    from app.extensions import upgrade_database

    Path(app.config["DATA_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    upgrade_database(app)
    log.info("database ready url=%s", _safe_db_url(app.config["SQLALCHEMY_DATABASE_URI"]))


def warn_if_data_folder_is_open(app) -> None:
    """Warn when the data folder can be entered or read by group or others (Renkei leaves its mode alone)."""
    folder = Path(app.config["DATA_DIR"])
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o077:
        # Not changed here: the operator made the folder with this mode, perhaps for a backup user.
        log.warning("データフォルダ %s は他のユーザーからも開けます (mode %04o)。chmod 700 %s で閉じてください"
                    " / data folder is open to group or others (mode %04o); close it with chmod 700",
                    folder, mode, folder, mode)


def _safe_db_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --------------------------------------------------------------------------------------
# Main


def start_parts(app, names: list[str]) -> list[tuple[str, Any]]:
    """Start the named parts in registry order; on a failure stop those already started and re-raise.

    Each started part is registered for GET /healthz (app/health.py); the parts of PARTS not
    named are reported there as not running.
    """
    from app import health

    health.parts(app).configure(PARTS)
    started: list[tuple[str, Any]] = []
    for name in names:
        part = PARTS[name]
        try:
            handle = part.run(app)
        except Exception:
            log.exception("part %s failed to start", name)
            stop_parts(started)
            raise
        started.append((name, handle))
        health.parts(app).register(name, handle)
        _record_bound_port(app, name, handle)
        log.info("part %s started", name)
    return started


def restart_part(app, started: list[tuple[str, Any]], name: str) -> Any:
    """Stop part `name` (a dead one too) and start it again in its place, on the port it had; return it.

    run.py never calls this by itself (a dead part makes /healthz answer 503, and the operator
    restarts the process); it is the one way to replace a single part, used by the tests.
    """
    from app import health

    index = next(i for i, (started_name, _) in enumerate(started) if started_name == name)
    try:
        _call_stop(started[index][1], PARTS[name].stop_timeout)
    except Exception:
        log.exception("part %s failed to stop cleanly", name)
    handle = PARTS[name].run(app)
    started[index] = (name, handle)
    health.parts(app).register(name, handle)
    log.info("part %s restarted", name)
    return handle


def _record_bound_port(app, name: str, handle: Any) -> None:
    """With port 0, put the port actually bound into the config, so screens and mails show it."""
    key = f"{name.upper()}_PORT"
    listeners = _listeners(name, handle)
    if app.config.get(key) != 0 or not listeners:
        return
    port = int(listeners[0].rstrip("/").rsplit(":", 1)[1])
    app.config[key] = port
    if name == "web" and not os.environ.get("RENKEI_PUBLIC_URL"):
        app.config["PUBLIC_URL"] = f"http://localhost:{port}"


def stop_parts(started: list[tuple[str, Any]]) -> None:
    """Stop the parts in reverse start order; one part failing to stop does not keep the others running."""
    for name, handle in reversed(started):
        log.info("part %s stopping", name)
        try:
            _call_stop(handle, PARTS[name].stop_timeout)
        except Exception:
            log.exception("part %s failed to stop cleanly", name)
        else:
            log.info("part %s stopped", name)


def _call_stop(handle: Any, timeout: float) -> None:
    """Call handle.stop(), passing the part's timeout when stop() takes one."""
    if "timeout" in inspect.signature(handle.stop).parameters:
        handle.stop(timeout=timeout)
    else:
        handle.stop()


def _listeners(name: str, handle: Any) -> list[str]:
    """The part's listener URLs: its `.listeners`, else one URL made from its `.host` and `.port`."""
    listeners = getattr(handle, "listeners", None)
    if listeners:
        return list(listeners)
    host, port = getattr(handle, "host", None), getattr(handle, "port", None)
    if host and port:
        return [f"{name}://{url_host(host)}:{port}"]
    return []


def print_startup(app, started: list[tuple[str, Any]], demo) -> None:
    """Print one line per listener, the demo logins (first start only), then the READY line."""
    urls: dict[str, str] = {}
    for name, handle in started:
        listeners = _listeners(name, handle)
        for url in listeners:
            print(f"{name}: {url}", flush=True)
        if getattr(handle, "fingerprint", None):  # the SFTP host key, for users to verify on first connect
            print(f"{name}: host key {handle.fingerprint}", flush=True)
        if listeners:
            urls[name] = listeners[0]
        else:
            print(f"{name}: running", flush=True)
    if demo is not None:
        web_url = urls.get("web") or app.config["PUBLIC_URL"] + "/"
        ftp_url = urls.get("ftp") or "(FTP未起動 not running)"
        lines = [
            "",
            "デモアカウントを作成しました (demo account created)",
            f"  URL (url): {web_url}",
            f"  ログイン (login): {demo.email}",
            f"  パスワード (password): {demo.password}",
            f"  送信先メールアドレス (inbound address): {demo.inbound_address}",
            f"  FTPサーバー (ftp server): {ftp_url}",
            f"  FTPログイン (ftp login): {demo.ftp_username} / {demo.ftp_password}"
            "  (データ連動方式をFTP連動にすると使えます / usable once the mode is FTP)",
            "  パスワードは今回だけ表示されます (passwords are shown only this once)",
            "",
        ]
        print("\n".join(lines), flush=True)
    ready = " ".join([f"parts={','.join(name for name, _ in started) or '-'}"] + [f"{k}={v}" for k, v in urls.items()])
    print(f"RENKEI READY {ready}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run Renkei until Ctrl-C or SIGTERM; return the exit code."""
    # First: the data folder, the database, the spool and FTP uploads are all made after this.
    os.umask(PRIVATE_UMASK)
    load_dotenv()
    args = parse_args(argv)
    apply_flags(args)
    from app import logs

    logs.configure(logging.INFO)  # the servers' log: every part's start, stop and each file handled

    stop = threading.Event()
    received: list[int] = []

    def request_stop(signum, frame) -> None:
        # Only set the event: a handler that logs could wait for a lock the interrupted code holds.
        received.append(signum)
        stop.set()

    # Installed first: a signal during migrations or start-up lets them finish, then stops cleanly.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    from app import create_app
    from app.config import ConfigError

    try:
        app = create_app()
    except ConfigError as error:  # a setting of the wrong type: say which, without a traceback
        print(f"起動できませんでした (could not start): {error}", file=sys.stderr, flush=True)
        return 1
    warn_if_data_folder_is_open(app)
    migrate_database(app)
    from app.services.demo import create_demo_account

    demo = create_demo_account(app)

    try:
        started = start_parts(app, args.only)
    except Exception as error:
        print(f"起動できませんでした (could not start): {error}", file=sys.stderr, flush=True)
        return 1
    print_startup(app, started, demo)

    # A timeout keeps the main thread responsive to signals on every platform.
    while not stop.wait(0.5):
        pass
    log.info("signal %s received, stopping", signal.Signals(received[0]).name)
    stop_parts(started)
    log.info("renkei stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
