"""Files with an error on every line: bounded memory, stored rows and answer sizes, the total still counted.

A real `python run.py` (web only) serves the pages and the API; the results file goes through
`flask import-csv` in a grandchild forked from a small interpreter, whose peak RSS is read with os.wait4; the member file
goes through the メンバー設定 upload of the running server, whose peak RSS (VmHWM) is read
from /proc. The figures are printed (pytest -s) for the closing note of issue 12.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import requests

from app.errors import MAX_ERRORS_PER_FILE
from app.importer.members import MAX_LISTED_ERRORS
from tests.fixtures.processes import (ROOT, AccountSpec, RenkeiProcess, child_env, login, scalar, setup_accounts)

MIB = 1024 * 1024
RSS_BOUND = 200 * MIB
ANSWER_BOUND = 1 * MIB


# Runs argv in a grandchild forked from this small interpreter and prints its peak RSS. Linux
# keeps a process's peak RSS across exec, and a child started straight from pytest starts from
# pytest's own (hundreds of MiB late in a full run): only a fork from a small process measures
# the command alone.
_MEASURE = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execvpe(sys.argv[1], sys.argv[1:], os.environ)
_pid, status, usage = os.wait4(pid, 0)
print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024]))
"""


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[int, bytes, int]:
    """Run argv; return (exit code, its stderr, its own peak RSS in bytes)."""
    result = subprocess.run([sys.executable, "-c", _MEASURE, *argv], cwd=ROOT, env=env, capture_output=True,
                            timeout=600)
    returncode, rss = json.loads(result.stdout.decode().strip().splitlines()[-1])
    return returncode, result.stderr, rss


def peak_rss_of_server(pid: int) -> int:
    """The process's peak resident size so far (VmHWM), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


@pytest.fixture
def server(tmp_path):
    process = RenkeiProcess(tmp_path / "data", tmp_path / "run.log", "--only", "web",
                            env={"RENKEI_MAX_UPLOAD_BYTES": str(30 * MIB)})
    try:
        process.start()
        yield process
    finally:
        process.close()


def error_heavy_results(path, size: int) -> int:
    """Write a results CSV of about `size` bytes whose every data line has 4 errors; return the line count."""
    line = "99,1x,2y,3z,備考です\r\n".encode("cp932")  # unknown No. and three values that are no numbers
    lines = size // len(line)
    path.write_bytes("No.,売上,粗利,件数,備考\r\n".encode("cp932") + line * lines)
    return lines


def test_a_10_mib_results_file_with_every_line_wrong_stays_bounded(server, tmp_path):
    accounts = setup_accounts(server.data_dir, [AccountSpec("acme", "api")])
    csv_path = tmp_path / "20180516.csv"
    lines = error_heavy_results(csv_path, 10 * MIB)

    env = child_env()
    env["RENKEI_DATA_DIR"] = str(server.data_dir)
    returncode, stderr, rss = run_measured(
        [sys.executable, "-m", "flask", "--app", "app", "import-csv", "acme", str(csv_path)], env)
    assert returncode == 1, stderr.decode()[-2000:]
    message = stderr.decode().splitlines()[-1]
    assert f"エラー {lines * 4}件" in message and f"表示は最初の{MAX_ERRORS_PER_FILE}件" in message

    db = server.db_url
    import_id = scalar(db, "SELECT id FROM imports WHERE account_id = :a", {"a": accounts["acme"].id})
    assert scalar(db, "SELECT error_count FROM imports WHERE id = :i", {"i": import_id}) == lines * 4
    stored = scalar(db, "SELECT count(*) FROM import_errors WHERE import_id = :i", {"i": import_id})
    assert stored == MAX_ERRORS_PER_FILE

    token = {"Authorization": f"Bearer {accounts['acme'].api_token}"}
    first = requests.get(f"{server.web_url}api/v1/imports/{import_id}", headers=token, timeout=30)
    assert first.status_code == 200
    body = first.json()
    assert body["error_count"] == lines * 4 and body["errors_stored"] == MAX_ERRORS_PER_FILE
    assert len(body["errors"]) == 100 and body["errors"][0]["line"] == 2 and body["errors_next"]
    largest = requests.get(f"{server.web_url}api/v1/imports/{import_id}?errors_limit=500&errors_offset=500",
                           headers=token, timeout=30)
    assert largest.status_code == 200 and len(largest.json()["errors"]) == 500
    assert largest.json()["errors_next"] is None

    session = login(server.web_url, accounts["acme"].email, accounts["acme"].password)
    page = session.get(f"{server.web_url}imports/{import_id}", timeout=30)
    assert page.status_code == 200
    assert f"エラー({lines * 4:,} 件)" in page.text
    assert f"最初の {MAX_ERRORS_PER_FILE:,} 件だけを記録しています" in page.text
    assert "1 / 10 ページ" in page.text

    print(f"\n[error-heavy results] file={csv_path.stat().st_size} bytes lines={lines} errors={lines * 4} "
          f"stored={stored} import-csv peak RSS={rss / MIB:.1f} MiB; API answer {len(first.content)} bytes "
          f"(500 errors: {len(largest.content)} bytes); import page {len(page.content)} bytes")
    assert rss < RSS_BOUND
    assert len(first.content) < ANSWER_BOUND and len(largest.content) < ANSWER_BOUND
    assert len(page.content) < ANSWER_BOUND


def test_a_25_mib_member_file_with_every_line_wrong_through_the_upload_stays_bounded(server, tmp_path):
    accounts = setup_accounts(server.data_dir, [AccountSpec("acme", "api")])
    account = accounts["acme"]
    line = "abc,,,営業部,not-an-email\r\n".encode("cp932")  # No. not a number, no 氏名, a bad address
    lines = 25 * MIB // len(line) - 1
    data = "No.,社員ID,氏名,部署,メールアドレス\r\n".encode("cp932") + line * lines
    assert len(data) <= 25 * MIB

    session = login(server.web_url, account.email, account.password)
    form = session.get(f"{server.web_url}settings/members/import", timeout=30)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form.text).group(1)
    before = peak_rss_of_server(server.pid)
    answer = session.post(f"{server.web_url}settings/members/import", data={"csrf_token": token},
                          files={"file": ("members.csv", data, "text/csv")}, timeout=300)
    peak = peak_rss_of_server(server.pid)
    assert answer.status_code == 200
    assert f"取り込めませんでした({lines * 3:,} 件のエラー)" in answer.text
    more = lines * 3 - MAX_LISTED_ERRORS
    assert f"ほかに {more:,} 件のエラーがあります(最初の {MAX_LISTED_ERRORS:,} 件を表示しています)" in answer.text
    assert answer.text.count("<tr>") <= MAX_LISTED_ERRORS + 1
    assert scalar(server.db_url, "SELECT count(*) FROM members WHERE account_id = :a", {"a": account.id}) == 4
    print(f"\n[error-heavy members] file={len(data)} bytes lines={lines} errors={lines * 3}; "
          f"server peak RSS before {before / MIB:.1f} MiB, after the upload {peak / MIB:.1f} MiB; "
          f"answer page {len(answer.content)} bytes")
    assert peak < RSS_BOUND
    assert len(answer.content) < ANSWER_BOUND
