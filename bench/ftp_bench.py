"""Benchmark (not a test): upload a 100 MB file with curl to Renkei's FTP server and to a bare pyftpdlib server.

Run: python bench/ftp_bench.py [--mb 100] [--rounds 6]

Both servers run in this process on 127.0.0.1 and free ports. Renkei's is servers.ftp.start()
with a throw-away data folder, database and FTP account; the bare one is pyftpdlib's plain
FTPHandler with a DummyAuthorizer writing to a temp folder. Each round uploads the same
file once to each server, and the order alternates from round to round (bare first, then
Renkei first, ...): whichever goes second in a round finds the file in the page cache and the
CPU clocked up, so a fixed order favours one side. The medians of each are compared, with the
median of the per-round ratios next to them; a best-of-N on a shared machine is mostly noise
(1.07, 2.07, 1.10 on identical runs). Target: Renkei / bare >= 0.8.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyftpdlib.authorizers import DummyAuthorizer  # noqa: E402
from pyftpdlib.handlers import FTPHandler  # noqa: E402
from pyftpdlib.ioloop import IOLoop  # noqa: E402
from pyftpdlib.servers import FTPServer  # noqa: E402

from ftp_account import USER, ftp_account_app  # noqa: E402


class BareServer:
    """pyftpdlib as its documentation shows it, serving `folder` to user bench/bench."""

    def __init__(self, folder: str):
        authorizer = DummyAuthorizer()
        authorizer.add_user("bench", "bench", folder, perm="elradfmw")
        handler = type("BareHandler", (FTPHandler,), {"authorizer": authorizer})
        self.server = FTPServer(("127.0.0.1", 0), handler, ioloop=IOLoop())
        self.port = self.server.address[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.server.serve_forever(timeout=0.2, blocking=False, handle_exit=False)
        self.server.close_all()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def start_renkei(data_dir: Path):
    """Renkei's FTP server for the bench account; return (running server, user, password)."""
    from servers import ftp

    app, password = ftp_account_app(data_dir, "FTP_PORT")
    return ftp.start(app), USER, password


def upload(port: int, user: str, password: str, source: Path) -> tuple[float, float]:
    """Upload `source` with curl; return (seconds for the whole session, seconds of the data transfer).

    The whole session counts connect, login, the transfer and the wait for 226; the data
    transfer is curl's time_total minus time_pretransfer (login and commands excluded).
    """
    done = subprocess.run(
        ["curl", "-sS", "--fail", "-T", str(source), f"ftp://127.0.0.1:{port}/", "--user", f"{user}:{password}",
         "-w", "%{time_pretransfer} %{time_total}"],
        check=True, capture_output=True, text=True,
    )
    pretransfer, total = map(float, done.stdout.split())
    return total, total - pretransfer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="file size in MB (default 100)")
    parser.add_argument("--rounds", type=int, default=6, help="uploads per server (default 6, even: each order as often)")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # one log line per transfer would only add noise here

    with tempfile.TemporaryDirectory(prefix="renkei-ftp-bench-") as work:
        work_dir = Path(work)
        source = work_dir / "20180516.csv"
        size = args.mb * 1000 * 1000
        with open(source, "wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1000 * 1000))
        bare_home = work_dir / "bare"
        bare_home.mkdir()
        data_dir = work_dir / "renkei"
        data_dir.mkdir()

        bare = BareServer(str(bare_home))
        renkei, user, password = start_renkei(data_dir)
        home = data_dir / "ftp" / user
        times: dict[str, list[tuple[float, float]]] = {"bare pyftpdlib": [], "Renkei": []}
        try:
            contenders = {"bare pyftpdlib": (bare.port, "bench", "bench"), "Renkei": (renkei.port, user, password)}
            for round_ in range(args.rounds):
                order = list(contenders) if round_ % 2 == 0 else list(reversed(contenders))
                for name in order:
                    port, login, secret = contenders[name]
                    times[name].append(upload(port, login, secret, source))
                assert (bare_home / source.name).stat().st_size == size
                assert (home / source.name).stat().st_size == size
        finally:
            renkei.stop()
            bare.stop()

    print(f"{args.mb} MB uploaded with curl, {args.rounds} rounds, order alternating; medians")
    for index, label in ((0, "whole session (login + transfer + 226)"), (1, "data transfer only")):
        rates = {name: size / statistics.median(r[index] for r in runs) / 1e6 for name, runs in times.items()}
        ratio = rates["Renkei"] / rates["bare pyftpdlib"]
        per_round = statistics.median(b[index] / r[index] for b, r in zip(times["bare pyftpdlib"], times["Renkei"]))
        print(f"  {label}:")
        for name, rate in rates.items():
            print(f"    {name:15s} {rate:8.1f} MB/s")
        print(f"    ratio Renkei / bare = {ratio:.2f} (median of per-round ratios {per_round:.2f}; target >= 0.8; higher is faster)"
              f" -> {'OK' if ratio >= 0.8 else 'BELOW TARGET'}")

if __name__ == "__main__":
    main()
