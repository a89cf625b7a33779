"""Import benchmark (issue 3): Renkei's `flask import-csv` against pandas and the sqlite3 shell.

Generates the reference daily file — 200,000 data rows, 社員ID + seven numeric graph
columns + 備考, cp932, 5,000 members, notes with 髙, ①, ～ and half-width kana — then
runs each contender as a whole process and reads its wall time and peak memory
(ru_maxrss from wait4). Prints the figures and the ratios against pandas.

    python bench/import_bench.py [--rows 200000] [--members 5000] [--repeat 3] [--compare DIR] [--keep]

--compare DIR adds a fourth contender: the same `flask import-csv` run from another checkout
(e.g. an older commit exported to DIR), to compare before/after in one run on the same data.

Each contender runs --repeat times, interleaved (renkei, pandas, sqlite3, renkei, ...) so that
load from other processes on the machine hits all of them alike; every run starts from the same
state (Renkei's data folder restored to its state after set-up, the other databases removed).
The table shows the best and the median of each; the verdict compares best with best.

Targets: Renkei ≤ 1.5 × pandas wall time and ≤ pandas peak memory, while Renkei
validates every value (pandas and sqlite3 validate nothing).
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ["売上", "粗利", "件数", "訪問", "提案", "受注", "入金"]
NOTES = ["髙島屋 訪問", "①件目 ～ 継続", "ｶﾌﾞｼｷｶﾞｲｼｬ ﾃｽﾄ", "", "A社 新規", "﨑本 様 ～ ②", ""]

PANDAS_SCRIPT = """
import sys, sqlite3, pandas as pd
frame = pd.read_csv(sys.argv[1], encoding="cp932", dtype={"社員ID": str})
con = sqlite3.connect(sys.argv[2])
frame.to_sql("results", con, index=False, if_exists="replace", chunksize=5000)
con.commit()
print(len(frame))
"""


def generate(folder: Path, rows: int, members: int) -> tuple[Path, Path]:
    """Write the reference file and the member list; return their paths."""
    rng = random.Random(20180516)
    member_csv = folder / "members.csv"
    with open(member_csv, "w", encoding="cp932", newline="") as f:
        f.write("No.,社員ID,氏名,部署,メールアドレス\r\n")
        for i in range(1, members + 1):
            f.write(f"{i},E{i:05d},髙橋 ｲﾁﾛｳ{i},営業{i % 12}課,\r\n")
    data = folder / "20180516.csv"
    with open(data, "w", encoding="cp932", newline="") as f:
        f.write("社員ID," + ",".join(COLUMNS) + ",備考\r\n")
        for i in range(rows):
            member = rng.randint(1, members)
            values = [rng.randint(0, 5_000_000), rng.randint(-100_000, 900_000)] + [rng.randint(0, 99) for _ in range(5)]
            note = NOTES[i % len(NOTES)]
            f.write(f"E{member:05d}," + ",".join(map(str, values)) + f",{note}\r\n")
    return data, member_csv


def run_measured(argv: list[str], env: dict | None = None, cwd: Path = ROOT) -> tuple[float, float, str]:
    """Run a process under wait4 so its own peak memory is known; return (seconds, MiB, stdout)."""
    out_file = tempfile.TemporaryFile()
    err_file = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=out_file, stderr=err_file, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out_file.seek(0)
    err_file.seek(0)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({proc.returncode}):\n{err_file.read().decode(errors='replace')[-3000:]}")
    return wall, usage.ru_maxrss / 1024, out_file.read().decode(errors="replace")


@contextmanager
def scratch_folder(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A new temporary folder of a benchmark's files, removed at the end unless `keep` (--keep)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        if keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def flask(env: dict, *args: str) -> str:
    return run_measured([sys.executable, "-m", "flask", "--app", "app", *args], env)[2]


def setup_renkei(data_dir: Path, member_csv: Path) -> dict:
    """A fresh data folder with the bench account, its members, columns and settings; return the env."""
    env = dict(os.environ, RENKEI_DATA_DIR=str(data_dir), RENKEI_SECRET_KEY="bench")
    env.pop("DATABASE_URL", None)
    # Renkei is timed as it runs from its second start on: with its modules' bytecode cached
    # (the set-up commands below write it), as pip did for pandas. Some shells forbid writing it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    flask(env, "db", "upgrade")
    flask(env, "accounts", "create", "bench", "--name", "ベンチ", "--admin-email", "admin@bench.example",
          "--admin-password", "bench-password")
    flask(env, "members", "import", "bench", str(member_csv))
    for name in COLUMNS:
        flask(env, "columns", "add", "bench", name)
    flask(env, "integration", "set", "bench", "--member-key", "employee_id", "--error-to", "admin@bench.example",
          "--senders", "erp@bench.example")
    return env


def import_fresh(env: dict, data_dir: Path, pristine: Path, path: Path, cwd: Path = ROOT) -> tuple[float, float, str]:
    """`flask import-csv bench path` into a fresh copy of `pristine` (the state after set-up): (s, MiB, stdout).

    Every run imports into the same state, with no earlier import to replace.
    """
    shutil.rmtree(data_dir)
    shutil.copytree(pristine, data_dir)
    return run_measured([sys.executable, "-m", "flask", "--app", "app", "import-csv", "bench", str(path)], env, cwd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--members", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each contender (best and median shown)")
    parser.add_argument("--compare", type=Path, default=None, metavar="DIR",
                        help="also time import-csv from this other checkout of Renkei")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    args.repeat = max(1, args.repeat)

    with scratch_folder("renkei-bench-", args.keep) as folder:
        data, member_csv = generate(folder, args.rows, args.members)
        size_mb = data.stat().st_size / 1e6
        print(f"reference file: {data.name}, {args.rows:,} rows, {size_mb:.1f} MB cp932, {args.members:,} members")

        data_dir, pristine = folder / "renkei", folder / "renkei-after-setup"
        env = setup_renkei(data_dir, member_csv)
        shutil.copytree(data_dir, pristine)
        utf8 = folder / "utf8.csv"

        def renkei(cwd: Path = ROOT) -> tuple[float, float]:
            wall, rss, out = import_fresh(env, data_dir, pristine, data, cwd)
            if "成功" not in out:
                raise SystemExit(f"renkei import did not succeed: {out}")
            return wall, rss

        def pandas() -> tuple[float, float]:
            (folder / "pandas.db").unlink(missing_ok=True)
            wall, rss, _ = run_measured([sys.executable, "-c", PANDAS_SCRIPT, str(data), str(folder / "pandas.db")])
            return wall, rss

        def shell() -> tuple[float, float]:
            for leftover in (utf8, folder / "shell.db"):
                leftover.unlink(missing_ok=True)
            w1, r1, _ = run_measured(["iconv", "-f", "CP932", "-t", "UTF-8", "-o", str(utf8), str(data)])
            w2, r2, _ = run_measured(["sqlite3", str(folder / "shell.db"), ".mode csv", f".import {utf8} results"])
            return w1 + w2, max(r1, r2)

        contenders = {"renkei flask import-csv": renkei, "pandas read_csv + to_sql": pandas,
                      "iconv + sqlite3 .import": shell}
        if args.compare:
            contenders["compare: renkei import-csv"] = lambda: renkei(args.compare.resolve())
        if shutil.which("sqlite3") is None or shutil.which("iconv") is None:
            del contenders["iconv + sqlite3 .import"]
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
        for attempt in range(args.repeat):
            for name, contender in contenders.items():
                runs[name].append(contender())
            print(f"  run {attempt + 1}/{args.repeat}: " + ", ".join(
                f"{name.split()[0]} {runs[name][-1][0]:.2f} s {runs[name][-1][1]:.0f} MiB" for name in contenders))

        def summary(name: str) -> tuple[float, float, float, float]:
            walls, rsss = [r[0] for r in runs[name]], [r[1] for r in runs[name]]
            return min(walls), statistics.median(walls), min(rsss), statistics.median(rsss)

        stats = {name: summary(name) for name in contenders}
        pb_wall, pm_wall, pb_rss, pm_rss = stats["pandas read_csv + to_sql"]
        print(f"\n{args.repeat} run(s) each, interleaved; ratios against pandas (best/best, median/median)")
        print(f"{'contender':<26}{'best s':>8}{'median s':>10}{'best MiB':>10}{'median MiB':>12}"
              f"{'× time best':>13}{'× time med':>12}{'× mem best':>12}{'× mem med':>11}")
        for name, (b_wall, m_wall, b_rss, m_rss) in stats.items():
            print(f"{name:<26}{b_wall:>8.2f}{m_wall:>10.2f}{b_rss:>10.1f}{m_rss:>12.1f}"
                  f"{b_wall / pb_wall:>13.2f}{m_wall / pm_wall:>12.2f}{b_rss / pb_rss:>12.2f}{m_rss / pm_rss:>11.2f}")
        rb_wall, _, rb_rss, _ = stats["renkei flask import-csv"]
        ok_time = rb_wall <= 1.5 * pb_wall
        ok_mem = rb_rss <= pb_rss
        print(f"\ntarget time ≤ 1.5 × pandas (best): {'met' if ok_time else 'MISSED'} ({rb_wall / pb_wall:.2f}×); "
              f"target memory ≤ pandas (best): {'met' if ok_mem else 'MISSED'} ({rb_rss / pb_rss:.2f}×)")


if __name__ == "__main__":
    main()
