"""Workbook benchmark (issue 15): a 200,000-row .xlsx against the same data as CSV, both via `flask import-csv`.

The reference file of bench/import_bench.py (社員ID + seven graph columns + 備考, cp932, 5,000
members) is converted to 20180516.xlsx by LibreOffice headless (a real producer; numbers become
number cells, 社員ID and 備考 text cells). Each is imported into a fresh copy of the same set-up
state, as a whole `flask import-csv` process (the worker's own step: ingest.receive, then
queue.run_until_ended -> runner.run_import), measured with wait4 (wall time, peak RSS).

    python bench/import_workbook.py [--rows 200000] [--members 5000] [--repeat 3]

Target: the xlsx within 3x the CSV's wall time; memory is the sheet (calamine loads it whole)
plus the importer's flat batches, not growing with the rows beyond the workbook itself.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_bench import generate, import_fresh, scratch_folder, setup_renkei


def to_xlsx(csv_path: Path, folder: Path) -> Path:
    """Convert the cp932 CSV with soffice (filter options: comma, double quote, Shift_JIS = 64)."""
    work = folder / "convert"
    work.mkdir()
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(["soffice", f"-env:UserInstallation=file://{profile}", "--headless",
                        "--infilter=CSV:44,34,64,1", "--convert-to", "xlsx", "--outdir", str(work), str(csv_path)],
                       check=True, capture_output=True, timeout=900)
    made = work / f"{csv_path.stem}.xlsx"
    target = folder / "20180516.xlsx"
    made.rename(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--members", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("soffice") is None:
        raise SystemExit("soffice (libreoffice-calc-nogui) is needed to write the xlsx")
    with scratch_folder("renkei-bench-books-") as folder:
        data, member_csv = generate(folder, args.rows, args.members)
        xlsx = to_xlsx(data, folder)
        print(f"files: {data.name} {data.stat().st_size / 1e6:.1f} MB, {xlsx.name} {xlsx.stat().st_size / 1e6:.1f} MB, "
              f"{args.rows:,} rows")
        data_dir, pristine = folder / "renkei", folder / "renkei-after-setup"
        env = setup_renkei(data_dir, member_csv)
        shutil.copytree(data_dir, pristine)

        def run(path: Path) -> tuple[float, float]:
            wall, rss, out = import_fresh(env, data_dir, pristine, path)
            if "成功" not in out or f"{args.rows:,}行" not in out and f"{args.rows}行" not in out:
                raise SystemExit(f"import of {path.name} did not succeed with every row: {out}")
            return wall, rss

        runs: dict[str, list[tuple[float, float]]] = {"csv": [], "xlsx": []}
        for attempt in range(max(1, args.repeat)):
            runs["csv"].append(run(data))
            runs["xlsx"].append(run(xlsx))
            print(f"  run {attempt + 1}: csv {runs['csv'][-1][0]:.2f} s {runs['csv'][-1][1]:.0f} MiB, "
                  f"xlsx {runs['xlsx'][-1][0]:.2f} s {runs['xlsx'][-1][1]:.0f} MiB")
        best = {name: min(r[0] for r in values) for name, values in runs.items()}
        median = {name: statistics.median(r[0] for r in values) for name, values in runs.items()}
        rss = {name: max(r[1] for r in values) for name, values in runs.items()}
        for name in runs:
            print(f"{name:5s} best {best[name]:.2f} s  median {median[name]:.2f} s  peak RSS {rss[name]:.0f} MiB")
        ratio = best["xlsx"] / best["csv"]
        print(f"xlsx / csv wall time: {ratio:.2f}x (target <= 3x): {'OK' if ratio <= 3 else 'OVER'}")


if __name__ == "__main__":
    main()
