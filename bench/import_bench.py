"""Import benchmark (issue 3): Renkei's `flask import-csv` against pandas and the sqlite3 shell.

Generates the reference daily file — 200,000 data rows, 社員ID + seven numeric graph
columns + 備考, cp932, 5,000 members, notes with 髙, ①, ～ and half-width kana — then
runs each contender as a whole process and reads its wall time and peak memory
(ru_maxrss from wait4). Prints the figures and the ratios against pandas.

    python bench/import_bench.py [--rows 200000] [--members 5000] [--keep]

Targets: Renkei ≤ 1.5 × pandas wall time and ≤ pandas peak memory, while Renkei
validates every value (pandas and sqlite3 validate nothing).
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
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


def run_measured(argv: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run a process under wait4 so its own peak memory is known; return (seconds, MiB, stdout)."""
    out_file = tempfile.TemporaryFile()
    err_file = tempfile.TemporaryFile()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=out_file, stderr=err_file, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out_file.seek(0)
    err_file.seek(0)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({proc.returncode}):\n{err_file.read().decode(errors='replace')[-3000:]}")
    return wall, usage.ru_maxrss / 1024, out_file.read().decode(errors="replace")


def flask(env: dict, *args: str) -> str:
    return run_measured([sys.executable, "-m", "flask", "--app", "app", *args], env)[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--members", type=int, default=5_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="renkei-bench-"))
    try:
        data, member_csv = generate(folder, args.rows, args.members)
        size_mb = data.stat().st_size / 1e6
        print(f"reference file: {data.name}, {args.rows:,} rows, {size_mb:.1f} MB cp932, {args.members:,} members")

        env = dict(os.environ, RENKEI_DATA_DIR=str(folder / "renkei"), RENKEI_SECRET_KEY="bench")
        env.pop("DATABASE_URL", None)
        flask(env, "db", "upgrade")
        flask(env, "accounts", "create", "bench", "--name", "ベンチ", "--admin-email", "admin@bench.example",
              "--admin-password", "bench-password")
        flask(env, "members", "import", "bench", str(member_csv))
        for name in COLUMNS:
            flask(env, "columns", "add", "bench", name)
        flask(env, "integration", "set", "bench", "--member-key", "employee_id", "--error-to", "admin@bench.example",
              "--senders", "erp@bench.example")

        results = {}
        wall, rss, out = run_measured([sys.executable, "-m", "flask", "--app", "app", "import-csv", "bench", str(data)], env)
        results["renkei flask import-csv"] = (wall, rss)
        print(f"  renkei: {out.strip().splitlines()[-1] if out.strip() else ''}")

        wall, rss, out = run_measured([sys.executable, "-c", PANDAS_SCRIPT, str(data), str(folder / "pandas.db")])
        results["pandas read_csv + to_sql"] = (wall, rss)

        utf8 = folder / "utf8.csv"
        w1, r1, _ = run_measured(["iconv", "-f", "CP932", "-t", "UTF-8", "-o", str(utf8), str(data)])
        w2, r2, _ = run_measured(["sqlite3", str(folder / "shell.db"), ".mode csv", f".import {utf8} results"])
        results["iconv + sqlite3 .import"] = (w1 + w2, max(r1, r2))

        pandas_wall, pandas_rss = results["pandas read_csv + to_sql"]
        print(f"\n{'contender':<28}{'wall s':>9}{'peak MiB':>10}{'× pandas time':>15}{'× pandas mem':>14}")
        for name, (wall, rss) in results.items():
            print(f"{name:<28}{wall:>9.2f}{rss:>10.1f}{wall / pandas_wall:>15.2f}{rss / pandas_rss:>14.2f}")
        renkei_wall, renkei_rss = results["renkei flask import-csv"]
        ok_time = renkei_wall <= 1.5 * pandas_wall
        ok_mem = renkei_rss <= pandas_rss
        print(f"\ntarget time ≤ 1.5 × pandas: {'met' if ok_time else 'MISSED'}; "
              f"target memory ≤ pandas: {'met' if ok_mem else 'MISSED'}")
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
