"""The HTTP API with real clients (curl and requests) against the app served by waitress."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html import unescape

import pytest
import requests

from tests.fixtures.api import BAD_ROWS, csv_bytes
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl(*args: str) -> tuple[int, dict[str, str], dict]:
    """Run curl; return (status, lower-cased response headers, JSON body)."""
    completed = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "-D", "-", *args],
        capture_output=True, check=True, timeout=60,
    )
    head, _, body = completed.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, json.loads(body.decode("utf-8"))


@pytest.fixture
def csv_file(tmp_path):
    """Write a valid results CSV (cp932) as 20180516.csv and one with errors as 20180517.csv."""
    good = tmp_path / "20180516.csv"
    good.write_bytes(csv_bytes())
    bad = tmp_path / "20180517.csv"
    bad.write_bytes(csv_bytes(BAD_ROWS))
    return good, bad


def test_curl_multipart_upload_is_queued_then_imported(api_server, api_account, api_worker, csv_file):
    good, _ = csv_file
    status, headers, body = curl("-H", f"Authorization: Bearer {api_account.token}", "-F", f"file=@{good}",
                                 f"{api_server}/api/v1/imports")
    assert status == 202, body
    assert headers["location"] == f"/api/v1/imports/{body['id']}"
    assert body["filename"] == "20180516.csv" and body["status"] == "queued" and body["size"] == good.stat().st_size

    # The worker imports it; a client polls the Location until the import has ended.
    def finished():
        _, _, detail = curl("-H", f"Authorization: Bearer {api_account.token}", api_server + headers["location"])
        return detail if detail["status"] in ("succeeded", "failed") else None

    detail = wait_for(finished, what="the import to end")
    assert detail["status"] == "succeeded" and detail["row_count"] == 2 and detail["period"] == "20180516"


def test_curl_raw_body_upload(api_server, api_account, csv_file):
    good, _ = csv_file
    status, headers, body = curl("-H", f"Authorization: Bearer {api_account.token}", "--data-binary", f"@{good}",
                                 f"{api_server}/api/v1/imports?filename=20180500.csv")
    assert status == 202, body
    assert body["filename"] == "20180500.csv" and body["size"] == good.stat().st_size
    assert headers["location"].endswith(f"/{body['id']}")


def test_curl_wait_answers_200_then_422_with_every_error(api_server, api_account, csv_file, api_worker):
    good, bad = csv_file
    token = f"Authorization: Bearer {api_account.token}"
    status, _, body = curl("-H", token, "-F", f"file=@{good}", f"{api_server}/api/v1/imports?wait=1")
    assert status == 200 and body["status"] == "succeeded" and body["row_count"] == 2

    status, _, body = curl("-H", token, "-H", "Content-Type: text/csv", "--data-binary", f"@{bad}",
                           f"{api_server}/api/v1/imports?filename=20180517.csv&wait=1")
    assert status == 422
    assert body["error"]["code"] == "import_rejected" and body["status"] == "failed"
    assert [(e["line"], e["column"]) for e in body["errors"]] == [(2, "売上"), (3, "No."), (4, "粗利")]


def test_curl_without_a_token_gets_401_json(api_server, api_account, csv_file):
    good, _ = csv_file
    status, headers, body = curl("-F", f"file=@{good}", f"{api_server}/api/v1/imports")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert body["error"]["code"] == "unauthorized"


def test_curl_too_large_is_json_413(app, api_server, api_account, tmp_path):
    app.config["MAX_UPLOAD_BYTES"] = 2048
    app.config["MAX_CONTENT_LENGTH"] = 2048 + 1024
    big = tmp_path / "20180516.csv"
    big.write_bytes(b"x" * 10_000)
    token = f"Authorization: Bearer {api_account.token}"
    for how in (["-F", f"file=@{big}"], ["--data-binary", f"@{big}"]):
        status, _, body = curl("-H", token, *how, f"{api_server}/api/v1/imports?filename=20180516.csv")
        assert status == 413 and body["error"]["code"] == "payload_too_large"


def test_requests_multipart_raw_and_wait(api_server, api_account, api_worker):
    url = f"{api_server}/api/v1/imports"
    with requests.Session() as session:
        session.headers.update(api_account.headers)
        response = session.post(url, files={"file": ("20180516.csv", csv_bytes(), "text/csv")}, timeout=30)
        assert response.status_code == 202 and response.headers["Location"] == f"/api/v1/imports/{response.json()['id']}"

        response = session.post(url, params={"filename": "20180500.csv"}, data=csv_bytes(),
                                headers={"Content-Type": "text/csv"}, timeout=30)
        assert response.status_code == 202 and response.json()["filename"] == "20180500.csv"

        response = session.post(url, params={"wait": 1}, files={"file": ("20180518.csv", csv_bytes())}, timeout=30)
        assert response.status_code == 200 and response.json()["status"] == "succeeded"

        response = session.post(url, params={"wait": 1, "filename": "20180519.csv"}, data=csv_bytes(BAD_ROWS),
                                timeout=30)
        assert response.status_code == 422 and response.json()["error_count"] == 3

        history = session.get(url, timeout=30).json()
        # The worker takes the queue oldest first: the two queued before the waited ones ended first.
        assert [i["status"] for i in history["imports"]] == ["failed", "succeeded", "succeeded", "succeeded"]
        assert session.get(f"{api_server}/api/v1/results", params={"period": "20180518"},
                           timeout=30).json()["totals"]["売上"] == 170000


def test_requests_chunked_upload_over_the_cap_is_413(app, api_server, api_account):
    app.config["MAX_UPLOAD_BYTES"] = 2048
    app.config["MAX_CONTENT_LENGTH"] = 2048 + 1024

    def chunks():  # a generator body: sent chunked, no Content-Length
        for _ in range(10):
            yield b"x" * 1000

    response = requests.post(f"{api_server}/api/v1/imports", params={"filename": "20180516.csv"}, data=chunks(),
                             headers=api_account.headers, timeout=30)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"

    small = requests.post(f"{api_server}/api/v1/imports", params={"filename": "20180516.csv"},
                          data=iter([csv_bytes()]), headers=api_account.headers, timeout=30)
    assert small.status_code == 202


def test_requests_wrong_token_and_unknown_path(api_server, api_account):
    response = requests.get(f"{api_server}/api/v1/members", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    response = requests.get(f"{api_server}/api/v1/nothing", headers=api_account.headers, timeout=30)
    assert response.status_code == 404 and response.headers["Content-Type"] == "application/json"
    response = requests.delete(f"{api_server}/api/v1/imports", headers=api_account.headers, timeout=30)
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


def test_the_reference_pages_curl_examples_work_as_written(app, api_server, api_account, api_worker, tmp_path):
    """Copy the ?wait=1 upload and the day's results from /api/v1/docs and run them in a shell, as a user would."""
    app.config["PUBLIC_URL"] = api_server
    page = requests.get(f"{api_server}/api/v1/docs", timeout=30).text
    examples = [unescape(block) for block in re.findall(r'<pre class="curl">(.*?)</pre>', page, re.DOTALL)]
    (tmp_path / "20180516.csv").write_bytes(csv_bytes())
    env = {**os.environ, "API_TOKEN": api_account.token}

    def run(ending: str) -> dict:
        [command] = [e for e in examples if e.rstrip("'").endswith(ending)]
        completed = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                                   check=True, timeout=60)
        return json.loads(completed.stdout)

    body = run("/api/v1/imports?wait=1")
    assert body["status"] == "succeeded" and body["filename"] == "20180516.csv" and body["row_count"] == 2
    results = run("/api/v1/results?period=20180516")
    assert results["period"] == "20180516" and results["totals"]["売上"] == 170000
