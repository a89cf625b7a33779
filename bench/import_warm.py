"""Warm import and board benchmark (issue 13): what the worker and the board pay, start-up aside.

Import: one process creates the app once and runs --imports imports of the 200,000-row reference
file (bench/import_bench.py's data: 5,000 members, cp932, 7 numeric columns + 備考) through the
worker's path (`ingest.receive` then `queue.process_next`): the first import of the name, then
re-imports that replace its rows. Side by side, interleaved round by round so that load from
other processes hits all alike: pandas `read_csv` + `to_sql` warm in another process (pandas
imported once; each round replaces its table) and `iconv | sqlite3 .import` (a new database
each round). With --whole, also whole processes: `flask import-csv` (first import and
re-import) and pandas. Medians; rows/s and ratios against pandas.

Board: a month of --days daily files of --day-rows rows (same members and columns), imported
through the same path, then the メイン page (test client GET /?month=YYYY-MM) and
`GET /api/v1/results?period=YYYYMM`, medians of --repeat requests.

    python bench/import_warm.py [--imports 5] [--whole 3] [--no-board] [--days 30] [--day-rows 20000]
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_bench import COLUMNS, NOTES, generate, run_measured, scratch_folder, setup_renkei  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CPU_SECONDS: list[float] = []  # the worker's CPU time of each warm_import, in order

PANDAS_WARM = """
import resource, sys, sqlite3, time, pandas as pd
data, db = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    start = time.perf_counter()
    frame = pd.read_csv(data, encoding="cp932", dtype={"社員ID": str})
    con = sqlite3.connect(db)
    frame.to_sql("results", con, index=False, if_exists="replace", chunksize=5000)
    con.commit()
    con.close()
    print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, flush=True)
"""

PANDAS_WHOLE = """
import sys, sqlite3, pandas as pd
frame = pd.read_csv(sys.argv[1], encoding="cp932", dtype={"社員ID": str})
con = sqlite3.connect(sys.argv[2])
frame.to_sql("results", con, index=False, if_exists="replace", chunksize=5000)
con.commit()
"""


# Runs argv in a grandchild forked from this small interpreter and prints its peak RSS: Linux keeps
# a process's peak across exec, so a child forked straight from this (large) process would
# report at least this process's size.
LAUNCH = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.exit(print(json.dumps(usage.ru_maxrss / 1024)) or os.waitstatus_to_exitcode(status))
"""


def run_peak(argv: list[str], env: dict | None = None) -> tuple[float, float]:
    """Run argv as a whole process; return (seconds, its own peak RSS in MiB)."""
    seconds, _, out = run_measured([sys.executable, "-c", LAUNCH, *argv], env)
    return seconds, float(out.strip().splitlines()[-1])


def make_app(env: dict):
    os.environ.update({k: env[k] for k in ("RENKEI_DATA_DIR", "RENKEI_SECRET_KEY")})
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    from app import create_app

    return create_app({"SMTP_RELAY": None})


def warm_import(app, data: bytes, filename: str) -> tuple[float, float]:
    """Receive and run one import as the worker does; return (worker seconds, receive + worker seconds).

    The worker's CPU seconds (time.process_time) go to CPU_SECONDS: on a shared box they move
    less with the load than wall time does.
    """
    from app.models import Account
    from app.extensions import db
    from app.services import ingest, queue

    with app.app_context():
        account_id = db.session.query(Account.id).filter_by(slug="bench").scalar()
        start = time.perf_counter()
        imp = ingest.receive(account_id, filename, data, channel="cli")
        received = time.perf_counter()
        cpu = time.process_time()
        done = queue.process_next()
        end = time.perf_counter()
        CPU_SECONDS.append(time.process_time() - cpu)
        assert done is not None and done.id == imp.id and done.status == "succeeded", (done and done.status)
        db.session.remove()
    return end - received, end - start


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def import_bench(args, folder: Path, data: Path, member_csv: Path) -> None:
    env = setup_renkei(folder / "warm", member_csv)
    whole_env = setup_renkei(folder / "whole", member_csv)
    pristine = folder / "whole-after-setup"
    shutil.copytree(folder / "whole", pristine)
    app = make_app(env)
    raw = data.read_bytes()
    pandas = subprocess.Popen([sys.executable, "-c", PANDAS_WARM, str(data), str(folder / "pandas.db")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    have_shell = shutil.which("sqlite3") and shutil.which("iconv")
    worker, received, pandas_warm, shell = [], [], [], []
    pandas_rss = 0.0
    # Peak RSS of this process before the first import: the app and the file's bytes; the
    # import's own peak is what comes on top of it.
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    CPU_SECONDS.clear()
    for round_ in range(args.imports):
        worker_s, received_s = warm_import(app, raw, data.name)
        worker.append(worker_s)
        received.append(received_s)
        pandas.stdin.write("go\n")
        pandas.stdin.flush()
        seconds, rss = map(float, pandas.stdout.readline().split())
        pandas_warm.append(seconds)
        pandas_rss = rss
        if have_shell:
            (folder / "shell.db").unlink(missing_ok=True)
            start = time.perf_counter()
            iconv = subprocess.Popen(["iconv", "-f", "CP932", "-t", "UTF-8", str(data)], stdout=subprocess.PIPE)
            subprocess.run(["sqlite3", str(folder / "shell.db"), ".mode csv", ".import /dev/stdin results"],
                           stdin=iconv.stdout, check=True)
            iconv.wait()
            shell.append(time.perf_counter() - start)
        kind = "first" if round_ == 0 else "re-import"
        print(f"  round {round_ + 1} ({kind}): renkei worker {worker_s:.3f} s (CPU {CPU_SECONDS[-1]:.3f} s, "
              f"receive+worker {received_s:.3f} s), "
              f"pandas warm {pandas_warm[-1]:.3f} s" + (f", iconv|sqlite3 {shell[-1]:.3f} s" if shell else ""))
    pandas.stdin.close()
    pandas.wait()
    renkei_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    whole_first, whole_again, whole_pandas, whole_rss = [], [], [], {"first": 0.0, "again": 0.0, "pandas": 0.0}
    for _ in range(args.whole):
        shutil.rmtree(folder / "whole")
        shutil.copytree(pristine, folder / "whole")
        argv = [sys.executable, "-m", "flask", "--app", "app", "import-csv", "bench", str(data)]
        for times, key in ((whole_first, "first"), (whole_again, "again")):
            seconds, rss = run_peak(argv, whole_env)
            times.append(seconds)
            whole_rss[key] = max(whole_rss[key], rss)
        (folder / "pandas-whole.db").unlink(missing_ok=True)
        seconds, rss = run_peak([sys.executable, "-c", PANDAS_WHOLE, str(data), str(folder / "pandas-whole.db")])
        whole_pandas.append(seconds)
        whole_rss["pandas"] = max(whole_rss["pandas"], rss)

    rows = args.rows
    p = median(pandas_warm)
    lines = [
        ("renkei warm, first import (worker)", worker[0], p),
        ("renkei warm, re-import (worker, median)", median(worker[1:]), p),
        ("renkei warm, re-import (receive+worker)", median(received[1:]), p),
        ("pandas read_csv+to_sql warm (median)", p, p),
    ]
    if shell:
        lines.append(("iconv | sqlite3 .import (median)", median(shell), p))
    if whole_first:
        wp = median(whole_pandas)
        lines += [("renkei flask import-csv first (whole)", median(whole_first), wp),
                  ("renkei flask import-csv re-import (whole)", median(whole_again), wp),
                  ("pandas whole process (median)", wp, wp)]
    print(f"\n{rows:,} rows; {args.imports} warm rounds interleaved, {args.whole} whole-process runs")
    print("ratios: higher is faster (1.00 = as fast as pandas); seconds: lower is faster")
    print(f"{'contender':<44}{'s':>8}{'rows/s':>12}{'× pandas thr.':>15}")
    for name, seconds, reference in lines:
        print(f"{name:<44}{seconds:>8.3f}{rows / seconds:>12,.0f}{reference / seconds:>15.2f}")
    if len(worker) > 1:
        print(f"re-import / first import: {median(worker[1:]) / worker[0]:.2f}×")
        print(f"renkei worker CPU: first import {CPU_SECONDS[0]:.3f} s, re-import median {median(CPU_SECONDS[1:]):.3f} s; "
              f"load average {os.getloadavg()[0]:.2f} (2 cores)")
    print(f"peak RSS: renkei warm process {renkei_rss:.1f} MiB (before the first import {base_rss:.1f} MiB), "
          f"pandas warm process {pandas_rss:.1f} MiB")
    if whole_first:
        print(f"peak RSS whole process: renkei first {whole_rss['first']:.1f} MiB, re-import {whole_rss['again']:.1f} MiB, "
              f"pandas {whole_rss['pandas']:.1f} MiB ({whole_rss['first'] / whole_rss['pandas']:.2f}×)")


def write_day(path: Path, rows: int, members: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="cp932", newline="") as f:
        f.write("社員ID," + ",".join(COLUMNS) + ",備考\r\n")
        for i in range(rows):
            values = [rng.randint(0, 5_000_000), rng.randint(-100_000, 900_000)] + [rng.randint(0, 99) for _ in range(5)]
            f.write(f"E{rng.randint(1, members):05d}," + ",".join(map(str, values)) + f",{NOTES[i % len(NOTES)]}\r\n")


def board_bench(args, folder: Path, member_csv: Path) -> None:
    env = setup_renkei(folder / "board", member_csv)
    app = make_app(env)
    from app.extensions import db
    from app.models import Account, User
    from app.auth import sessions
    from app.services import accounts, integration

    with app.app_context():
        account = db.session.query(Account).filter_by(slug="bench").one()
        accounts.set_integration_enabled("bench", True)
        token = integration.issue_api_token(account.id, "bench")
        user_id = db.session.query(User).filter_by(account_id=account.id).first().get_id()
        db.session.remove()
    start = time.perf_counter()
    for day in range(1, args.days + 1):
        path = folder / f"201805{day:02d}.csv"
        write_day(path, args.day_rows, args.members, day)
        warm_import(app, path.read_bytes(), path.name)
        path.unlink()
    print(f"\nboard: {args.days} daily files of {args.day_rows:,} rows imported in {time.perf_counter() - start:.1f} s")
    client = app.test_client()
    with client.session_transaction() as session:  # what sessions.begin() writes at a login
        session["_user_id"] = user_id
        session["_fresh"] = True
        session[sessions.LOGIN_AT] = session[sessions.SEEN_AT] = int(time.time())
    timings: dict[str, list[float]] = {"メイン page GET /?month=2018-05": [], "GET /api/v1/results?period=201805": []}
    for _ in range(args.repeat):
        start = time.perf_counter()
        page = client.get("/?month=2018-05")
        timings["メイン page GET /?month=2018-05"].append(time.perf_counter() - start)
        assert page.status_code == 200 and "売上" in page.get_data(as_text=True), page.status_code
        start = time.perf_counter()
        answer = client.get("/api/v1/results?period=201805", headers={"Authorization": f"Bearer {token}"})
        timings["GET /api/v1/results?period=201805"].append(time.perf_counter() - start)
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    total = answer.get_json()["totals"]["売上"]
    rows = args.days * args.day_rows
    print(f"{rows:,}-row month, {args.members:,} members, median of {args.repeat} (売上 total {total:,})")
    for name, values in timings.items():
        print(f"  {name:<40}{median(values):>8.3f} s  (min {min(values):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--members", type=int, default=5_000)
    parser.add_argument("--imports", type=int, default=5)
    parser.add_argument("--whole", type=int, default=3, help="whole-process runs of each (0: none)")
    parser.add_argument("--no-import", action="store_true")
    parser.add_argument("--no-board", action="store_true")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--day-rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with scratch_folder("renkei-warm-") as folder:
        data, member_csv = generate(folder, args.rows, args.members)
        if not args.no_import:
            import_bench(args, folder, data, member_csv)
        if not args.no_board:
            board_bench(args, folder, member_csv)


if __name__ == "__main__":
    main()
