"""The HTTP API through the Flask test client: every status code, what is stored, what is shown."""
from __future__ import annotations

import datetime as dt
import io
import re

import pytest

from app.extensions import db
from app.models import Import
from app.services import files, integration, members, queue, results
from tests.fixtures.api import BAD_ROWS, GOOD_ROWS, api_options, auth, csv_bytes
from tests.fixtures.ingest import account_imports, line_count, stored_lines

READ_PATHS = ["/api/v1/imports", "/api/v1/imports/1", "/api/v1/results?period=201805", "/api/v1/members",
              "/api/v1/columns"]
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def upload(client, headers, data: bytes | None = None, filename: str = "20180516.csv", query: str = ""):
    """POST a multipart upload as curl -F file=@NAME does."""
    data = csv_bytes() if data is None else data
    return client.post(f"/api/v1/imports{query}", headers=headers,
                       data={"file": (io.BytesIO(data), filename)}, content_type="multipart/form-data")


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The answer is a JSON error envelope with a bilingual message."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body["error"]) == {"code", "message"}
    assert " / " in body["error"]["message"]  # 日本語 / English
    if code:
        assert body["error"]["code"] == code
    return body


# ---------------------------------------------------------------------------------------
# Authentication


@pytest.mark.parametrize("path", READ_PATHS)
def test_reads_without_a_token_answer_401(client, api_account, path):
    response = client.get(path)
    body = assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "トークン" in body["error"]["message"]


def test_upload_without_a_token_is_401_and_stores_nothing(client, api_account):
    response = upload(client, {})
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert account_imports(api_account.id) == []


@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "Bearer", "Bearer    ", "Token abc"])
def test_other_authorization_schemes_are_401(client, api_account, header):
    assert_error(client.get("/api/v1/members", headers={"Authorization": header}), 401, "unauthorized")


def _comparable(response) -> tuple:
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("date",)}
    return response.status_code, headers, response.get_data()


def test_a_wrong_token_reveals_nothing_about_accounts(app, client, make_account):
    app.config["BAN_THRESHOLD"] = 1000  # this test guesses many times; the ban has its own test
    wrong = auth("not-a-real-token-0123456789")
    with_no_account = {path: _comparable(client.get(path, headers=wrong)) for path in READ_PATHS}
    no_account_upload = _comparable(upload(client, wrong))

    make_account("acme", **api_options())
    make_account("other", **api_options(mode="mail"))
    # A different wrong token, and one that is only a prefix of nothing: answers are byte-identical.
    for token in ("not-a-real-token-0123456789", "x"):
        for path in READ_PATHS:
            assert _comparable(client.get(path, headers=auth(token))) == with_no_account[path]
    assert _comparable(upload(client, wrong)) == no_account_upload
    status, headers, body = with_no_account["/api/v1/members"]
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert "acme" not in body.decode() and "other" not in body.decode()


def test_wrong_tokens_count_towards_the_shared_ban(app, client, api_account):
    app.config["BAN_THRESHOLD"] = 3
    for _ in range(3):
        assert_error(client.get("/api/v1/members", headers=auth("guess")), 401)
    # Banned now: even the right token from that address is refused, with a Retry-After.
    response = client.get("/api/v1/members", headers=api_account.headers)
    assert_error(response, 429, "banned")
    assert int(response.headers["Retry-After"]) == app.config["BAN_SECONDS"]
    # The web login shares the ban: the same address is refused there too.
    from app.services import bans

    assert bans.is_banned("127.0.0.1")


def test_a_good_token_does_not_forgive_wrong_tokens(app, client, api_account):
    # A wrong token names no login, so a client holding one good token cannot reset its guessing.
    app.config["BAN_THRESHOLD"] = 3
    for _ in range(2):
        assert_error(client.get("/api/v1/members", headers=auth("guess")), 401)
    assert client.get("/api/v1/members", headers=api_account.headers).status_code == 200
    assert_error(client.get("/api/v1/members", headers=auth("guess")), 401)  # the third failure: banned from now
    assert_error(client.get("/api/v1/members", headers=api_account.headers), 429, "banned")


def test_a_reissued_token_replaces_the_old_one(client, api_account):
    new = integration.issue_api_token(api_account.id, actor="test")
    assert_error(client.get("/api/v1/members", headers=api_account.headers), 401)
    assert client.get("/api/v1/members", headers=auth(new)).status_code == 200


# ---------------------------------------------------------------------------------------
# Integration settings: 403 and 409


@pytest.mark.parametrize("path", READ_PATHS)
def test_reads_are_403_when_integration_is_disabled(client, app, make_account, path):
    account = make_account("acme", **api_options(integration=False))
    assert_error(client.get(path, headers=account.headers), 403, "integration_disabled")


def test_upload_is_403_when_integration_is_disabled(client, make_account):
    account = make_account("acme", **api_options(integration=False))
    assert_error(upload(client, account.headers), 403, "integration_disabled")
    assert account_imports(account.id) == []


@pytest.mark.parametrize("mode", ["mail", "ftp"])
def test_upload_is_403_when_the_mode_is_not_api_but_reads_work(client, make_account, mode):
    account = make_account("acme", **api_options(mode=mode))
    body = assert_error(upload(client, account.headers), 403, "mode_not_api")
    assert "API連動" in body["error"]["message"]
    assert account_imports(account.id) == []
    for path in READ_PATHS[:1] + READ_PATHS[2:]:
        assert client.get(path, headers=account.headers).status_code == 200, path


def test_upload_is_409_when_stopped_but_reads_work(client, make_account):
    account = make_account("acme", **api_options(status="stopped"))
    body = assert_error(upload(client, account.headers, query="?wait=1"), 409, "integration_stopped")
    assert "連動稼働停止" in body["error"]["message"]
    assert account_imports(account.id) == []
    assert client.get("/api/v1/members", headers=account.headers).status_code == 200


# ---------------------------------------------------------------------------------------
# Uploads


def test_multipart_upload_is_202_with_location_and_queued(client, api_account):
    data = csv_bytes()
    response = upload(client, api_account.headers, data)
    assert response.status_code == 202
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/imports/{body['id']}"
    assert body["status"] == "queued" and body["channel"] == "api" and body["filename"] == "20180516.csv"
    assert body["sender"] == "127.0.0.1" and body["size"] == len(data)
    assert ISO_Z.match(body["received_at"]) and body["finished_at"] is None
    assert "errors" not in body
    [stored] = account_imports(api_account.id)
    assert files.read(stored.id) == data and stored.status == Import.QUEUED

    # The worker imports it; the import's page then shows the outcome.
    queue.process_next()
    detail = client.get(response.headers["Location"], headers=api_account.headers).get_json()
    assert detail["status"] == "succeeded" and detail["period"] == "20180516" and detail["period_kind"] == "day"
    assert detail["row_count"] == 2 and detail["error_count"] == 0 and detail["errors"] == []
    assert ISO_Z.match(detail["finished_at"])


@pytest.mark.parametrize("content_type", ["text/csv", "application/octet-stream",
                                          "application/x-www-form-urlencoded", None])
def test_raw_body_upload_with_filename(client, api_account, content_type):
    data = csv_bytes()
    headers = dict(api_account.headers)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/api/v1/imports?filename=20180500.csv", headers=headers, data=data)
    assert response.status_code == 202, response.get_data(as_text=True)
    [stored] = account_imports(api_account.id)
    assert stored.filename == "20180500.csv" and files.read(stored.id) == data


def test_the_filename_parameter_wins_over_the_part_name_and_loses_its_folder(client, api_account):
    response = upload(client, api_account.headers, filename="upload.tmp", query="?filename=C:%5Cdata%5C20180501.csv")
    assert response.status_code == 202
    assert response.get_json()["filename"] == "20180501.csv"


def test_wait_answers_200_when_the_worker_has_imported_it(client, api_account, api_worker):
    response = upload(client, api_account.headers, query="?wait=1")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["status"] == "succeeded" and body["row_count"] == 2 and body["errors"] == []
    assert body["replaced_import_id"] is None and body["replaced_by_id"] is None and "error" not in body
    db.session.rollback()
    stored = [line for _import_id, line in stored_lines(body["id"])]
    assert [r.line for r in stored] == [2, 3]
    assert stored[0].note == "髙橋様 ①件目"

    # The same file name again replaces the earlier import's results.
    rows = [GOOD_ROWS[0], ["3", "7", "1", "1", ""]]
    again = upload(client, api_account.headers, csv_bytes(rows), query="?wait=true").get_json()
    assert again["replaced_import_id"] == body["id"] and again["replaced_by_id"] is None
    # The earlier import now names the one that replaced it (置換済).
    earlier = client.get(f"/api/v1/imports/{body['id']}", headers=api_account.headers).get_json()
    assert earlier["replaced_by_id"] == again["id"]
    db.session.rollback()
    assert line_count() == 1


def test_the_ignored_headers_are_in_the_import_json(app, client, make_account, api_worker):
    app.config["API_RATE_PER_MINUTE"] = 10_000
    acc = make_account("acme", **api_options(extra_columns="ignore"))
    rows = [["No.", "日付", "売上", "顧客名"], ["1", "5/16", "100", "A社"]]
    body = upload(client, acc.headers, csv_bytes(rows), query="?wait=1").get_json()
    assert body["status"] == "succeeded" and body["ignored_headers"] == ["日付", "顧客名"]
    listed = client.get("/api/v1/imports", headers=acc.headers).get_json()["imports"]
    assert [item["ignored_headers"] for item in listed] == [["日付", "顧客名"]]
    # A file without extra headers says so with an empty list.
    plain = upload(client, acc.headers, csv_bytes([["No.", "売上"], ["1", "5"]]), "20180517.csv", "?wait=1")
    assert plain.get_json()["ignored_headers"] == []


def test_wait_failure_is_422_with_every_error_and_keeps_old_data(client, api_account, api_worker):
    first = upload(client, api_account.headers, query="?wait=1").get_json()
    response = upload(client, api_account.headers, csv_bytes(BAD_ROWS), query="?wait=1")
    body = assert_error(response, 422, "import_rejected")
    assert body["status"] == "failed" and body["error_count"] == 3 and body["row_count"] == 0
    assert "3" in body["error"]["message"]
    assert [(e["line"], e["column"], e["value"]) for e in body["errors"]] == [
        (2, "売上", "12x"), (3, "No.", "99"), (4, "粗利", "abc")]
    assert all(e["message"] for e in body["errors"])
    db.session.rollback()
    kept = [import_id for import_id, _line in stored_lines()]
    assert kept == [first["id"], first["id"]]
    # The failure is in the history with the same errors.
    detail = client.get(f"/api/v1/imports/{body['id']}", headers=api_account.headers).get_json()
    assert detail["errors"] == body["errors"]


def test_wait_with_a_bad_file_name_is_422_naming_both_forms(client, api_account, api_worker):
    response = upload(client, api_account.headers, filename="sales.csv", query="?wait=1")
    body = assert_error(response, 422)
    assert "yyyymmdd.csv" in body["errors"][0]["message"] and "yyyymm00.csv" in body["errors"][0]["message"]


def test_wait_answers_202_still_running_when_no_worker_ends_the_import_in_time(app, client, api_account):
    """No worker runs here: ?wait=1 must not import the file itself, and says so when the wait is over."""
    app.config["IMPORT_WAIT_SECONDS"] = 0
    response = upload(client, api_account.headers, query="?wait=1")

    assert response.status_code == 202, response.get_data(as_text=True)
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/imports/{body['id']}"
    assert body["status"] == "queued" and body["finished_at"] is None and "errors" not in body
    assert body["message"].startswith("取込はまだ実行中です。結果は Location のURLで確認してください。 / ")
    assert [i.status for i in account_imports(api_account.id)] == [Import.QUEUED]
    assert line_count() == 0

    # The worker's step imports it; the Location then shows the outcome.
    assert queue.process_next().id == body["id"]
    detail = client.get(response.headers["Location"], headers=api_account.headers).get_json()
    assert detail["status"] == "succeeded" and detail["row_count"] == 2


@pytest.mark.parametrize("case", ["no_filename", "empty", "no_file_field", "file_as_text", "bad_wait",
                                  "empty_wait", "control_chars"])
def test_bad_uploads_are_400(client, api_account, case):
    headers = api_account.headers
    if case == "no_filename":
        response = client.post("/api/v1/imports", headers=headers, data=csv_bytes())
        code = "filename_required"
    elif case == "empty":
        response = client.post("/api/v1/imports?filename=20180516.csv", headers=headers, data=b"")
        code = "empty_file"
    elif case == "no_file_field":
        response = client.post("/api/v1/imports", headers=headers, content_type="multipart/form-data",
                               data={"other": (io.BytesIO(b"x"), "20180516.csv")})
        code = "file_required"
    elif case == "file_as_text":
        response = client.post("/api/v1/imports?filename=20180516.csv", headers=headers,
                               content_type="multipart/form-data", data={"file": "No.,売上"})
        code = "file_not_a_file"
    elif case in ("bad_wait", "empty_wait"):
        response = upload(client, headers, query="?wait=maybe" if case == "bad_wait" else "?wait=")
        code = "invalid_parameter"
    else:
        response = client.post("/api/v1/imports?filename=2018%0A0516.csv", headers=headers, data=csv_bytes())
        code = "invalid_filename"
    assert_error(response, 400, code)
    assert account_imports(api_account.id) == []


@pytest.fixture
def small_cap(app):
    """A 2 KiB upload cap, with Flask's own limit 1 KiB above it (as create_app sets it)."""
    app.config["MAX_UPLOAD_BYTES"] = 2048
    app.config["MAX_CONTENT_LENGTH"] = 2048 + 1024
    return 2048


@pytest.mark.parametrize("size", [2049, 5000])  # above our cap; above Flask's MAX_CONTENT_LENGTH too
@pytest.mark.parametrize("how", ["multipart", "raw"])
def test_too_large_uploads_are_json_413(client, api_account, small_cap, size, how):
    data = b"x" * size
    if how == "multipart":
        response = upload(client, api_account.headers, data)
    else:
        response = client.post("/api/v1/imports?filename=20180516.csv", headers=api_account.headers, data=data,
                               content_type="text/csv")
    body = assert_error(response, 413, "payload_too_large")
    assert "2,048" in body["error"]["message"]
    assert account_imports(api_account.id) == []


def test_a_file_exactly_at_the_cap_is_accepted(client, api_account, small_cap):
    data = csv_bytes()
    data += b" " * (small_cap - len(data))
    assert upload(client, api_account.headers, data).status_code == 202
    assert client.post("/api/v1/imports?filename=20180517.csv", headers=api_account.headers, data=data,
                       content_type="text/csv").status_code == 202


# ---------------------------------------------------------------------------------------
# Reading


def test_import_history_newest_first_paged_and_scoped(client, api_account, make_account):
    other = make_account("other", **api_options())
    ids = [upload(client, api_account.headers, filename=f"201805{d:02d}.csv").get_json()["id"] for d in range(1, 6)]
    upload(client, other.headers)

    body = client.get("/api/v1/imports", headers=api_account.headers).get_json()
    assert [i["id"] for i in body["imports"]] == ids[::-1]
    assert body["total"] == 5 and body["next"] is None and "errors" not in body["imports"][0]

    page = client.get("/api/v1/imports?limit=2&offset=2", headers=api_account.headers).get_json()
    assert [i["id"] for i in page["imports"]] == [ids[2], ids[1]]
    assert page["next"] == "/api/v1/imports?limit=2&offset=4"
    following = client.get(page["next"], headers=api_account.headers).get_json()
    assert [i["id"] for i in following["imports"]] == [ids[0]] and following["next"] is None

    by_page = client.get("/api/v1/imports?limit=2&page=2", headers=api_account.headers).get_json()
    assert by_page["imports"] == page["imports"] and by_page["offset"] == 2

    queue.process_next()  # the oldest queued import (ids[0]) succeeds
    succeeded = client.get("/api/v1/imports?status=succeeded", headers=api_account.headers).get_json()
    assert [i["id"] for i in succeeded["imports"]] == [ids[0]] and succeeded["total"] == 1


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=x", "offset=-1", "page=0", "offset=1&page=1",
                                   "status=nope", "limit=%EF%BC%91", "limit=", "status="])
def test_bad_history_parameters_are_400(client, api_account, query):
    assert_error(client.get(f"/api/v1/imports?{query}", headers=api_account.headers), 400, "invalid_parameter")


def test_another_accounts_import_is_404(client, api_account, make_account):
    other = make_account("other", **api_options())
    theirs = upload(client, other.headers).get_json()["id"]
    body = assert_error(client.get(f"/api/v1/imports/{theirs}", headers=api_account.headers), 404, "not_found")
    assert "other" not in body["error"]["message"]
    assert client.get(f"/api/v1/imports/{theirs}", headers=other.headers).status_code == 200
    assert_error(client.get("/api/v1/imports/99999999999999999999999", headers=api_account.headers), 404)


def test_results_of_a_day_and_of_a_month(client, api_account, api_worker):
    def post(rows, name):
        response = upload(client, api_account.headers, csv_bytes(rows), filename=name, query="?wait=1")
        assert response.status_code == 200, response.get_data(as_text=True)

    head = ["No.", "売上", "粗利", "件数"]
    post([head, ["1", "100", "10", "1"], ["1", "50", "", "1"], ["2", "7.5", "1", ""]], "20180516.csv")
    post([head, ["1", "1000", "", ""]], "20180517.csv")
    post([head, ["2", "200", "20", "2"]], "20180500.csv")
    post([head, ["1", "99999", "", ""]], "20180601.csv")  # another month: never counted
    members.set_active(api_account.id, members.list_members(api_account.id)[1].id, False)  # No.2 inactive
    columns = {c.name: c.id for c in results.columns_of(api_account.id)}
    member3 = members.list_members(api_account.id)[2]
    from app.importer.filename import parse_period

    results.add_manual(api_account.id, member3.id, parse_period("20180520"), {columns["件数"]: 4})

    day = client.get("/api/v1/results?period=20180516", headers=api_account.headers).get_json()
    assert day["period"] == "20180516" and day["period_kind"] == "day"
    assert day["from"] == day["to"] == "2018-05-16"
    assert [c["name"] for c in day["columns"]] == ["売上", "粗利", "件数"]
    by_no = {m["no"]: m for m in day["members"]}
    assert by_no[1]["values"] == {"売上": 150, "粗利": 10, "件数": 2} and by_no[1]["lines"] == 2
    # Inactive No.2 still has stored results that day, so it is listed (marked inactive).
    assert by_no[2]["active"] is False and by_no[2]["values"] == {"売上": 7.5, "粗利": 1, "件数": None}
    assert by_no[3]["values"] == {"売上": None, "粗利": None, "件数": None} and by_no[3]["lines"] == 0
    assert day["totals"] == {"売上": 157.5, "粗利": 11, "件数": 2}

    month = client.get("/api/v1/results?period=201805", headers=api_account.headers).get_json()
    assert month["period_kind"] == "month" and (month["from"], month["to"]) == ("2018-05-01", "2018-05-31")
    by_no = {m["no"]: m for m in month["members"]}
    assert by_no[1]["values"] == {"売上": 1150, "粗利": 10, "件数": 2}
    assert by_no[2]["values"] == {"売上": 207.5, "粗利": 21, "件数": 2}  # daily + the monthly file
    assert by_no[3]["values"] == {"売上": None, "粗利": None, "件数": 4}  # typed by hand
    assert month["totals"] == {"売上": 1357.5, "粗利": 31, "件数": 8}

    typed = client.get("/api/v1/results?period=20180520", headers=api_account.headers).get_json()
    by_no = {m["no"]: m for m in typed["members"]}
    assert by_no[3]["values"] == {"売上": None, "粗利": None, "件数": 4} and by_no[3]["lines"] == 1
    assert 2 not in by_no and typed["totals"] == {"売上": None, "粗利": None, "件数": 4}

    empty = client.get("/api/v1/results?period=20180101", headers=api_account.headers).get_json()
    assert [m["no"] for m in empty["members"]] == [1, 3]  # active members, no values
    assert empty["totals"] == {"売上": None, "粗利": None, "件数": None}


@pytest.mark.parametrize("query", ["", "?period=", "?period=2018-05", "?period=20180532", "?period=201813",
                                   "?period=２０１８０５", "?period=2018051"])
def test_bad_periods_are_400_naming_both_forms(client, api_account, query):
    body = assert_error(client.get(f"/api/v1/results{query}", headers=api_account.headers), 400)
    assert body["error"]["code"] in ("period_required", "invalid_period")
    assert "yyyymmdd" in body["error"]["message"] and "yyyymm" in body["error"]["message"]


def test_members_and_columns(client, api_account, make_account):
    make_account("other", **api_options())
    body = client.get("/api/v1/members", headers=api_account.headers).get_json()
    assert [(m["no"], m["employee_id"], m["name"], m["active"]) for m in body["members"]] == [
        (1, "E001", "髙橋 一郎", True), (2, "E002", "佐藤 花子", True), (3, "E003", "鈴木 次郎", True)]
    body = client.get("/api/v1/columns", headers=api_account.headers).get_json()
    assert [(c["name"], c["unit"]) for c in body["columns"]] == [("売上", "円"), ("粗利", "円"), ("件数", "件")]


def test_japanese_is_sent_as_utf8_not_escaped(client, api_account):
    response = client.get("/api/v1/members", headers=api_account.headers)
    assert "髙橋 一郎".encode() in response.get_data()
    assert response.headers["Cache-Control"] == "no-store"


# ---------------------------------------------------------------------------------------
# Routing errors and the rate limit


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v1/imports/abc", "/api/v1/", "/api/v1/members/1/x"])
def test_unknown_api_paths_are_json_404(client, api_account, path):
    response = client.get(path, headers=api_account.headers)
    assert_error(response, 404, "not_found")
    assert b"<html" not in response.get_data().lower()


@pytest.mark.parametrize("method, path, allowed", [
    ("delete", "/api/v1/imports", "GET, HEAD, OPTIONS, POST"),
    ("put", "/api/v1/imports/1", "GET, HEAD, OPTIONS"),
    ("post", "/api/v1/members", "GET, HEAD, OPTIONS"),
    ("patch", "/api/v1/openapi.json", "GET, HEAD, OPTIONS"),
])
def test_wrong_methods_are_json_405_with_allow(client, api_account, method, path, allowed):
    response = getattr(client, method)(path, headers=api_account.headers)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == allowed


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "FROBNICATE"])
def test_any_other_method_is_json_405_with_allow(client, api_account, method):
    response = client.open("/api/v1/members", method=method, headers=api_account.headers)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert_error(client.open("/api/v1/nothing", method=method, headers=api_account.headers), 404)


def test_a_too_long_file_name_is_400(client, api_account):
    name = "1" * 252 + ".csv"
    response = client.post(f"/api/v1/imports?filename={name}", headers=api_account.headers, data=csv_bytes())
    assert_error(response, 400, "invalid_filename")


def test_the_rate_limit_answers_429_with_retry_after_per_token(app, client, make_account):
    app.config["API_RATE_PER_MINUTE"] = 3
    first = make_account("acme", **api_options())
    second = make_account("other", **api_options())
    for _ in range(3):
        assert client.get("/api/v1/columns", headers=first.headers).status_code == 200
    response = client.get("/api/v1/members", headers=first.headers)
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 20
    assert_error(upload(client, first.headers), 429)
    # Another token has its own bucket; the openapi document is never limited.
    assert client.get("/api/v1/columns", headers=second.headers).status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200


def test_token_bucket_refills_over_time():
    from app.api.ratelimit import RateLimiter

    now = [1000.0]
    limiter = RateLimiter(6, clock=lambda: now[0])  # one request every 10 s, bursts of 6
    assert [limiter.hit("a") for _ in range(6)] == [None] * 6
    assert limiter.hit("a") == 10
    now[0] += 5
    assert limiter.hit("a") == 5
    now[0] += 5
    assert limiter.hit("a") is None and limiter.hit("a") == 10
    assert limiter.hit("b") is None
    now[0] += 3600  # a long pause refills only up to the burst size
    assert [limiter.hit("a") for _ in range(7)][-1] == 10
    assert RateLimiter(0).hit("a") is None  # 0 = no limit


def test_an_unexpected_error_is_json_500_without_details(app, client, api_account, monkeypatch):
    from app.api import queries

    def broken(account_id):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(queries, "list_columns", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the error is answered, not raised
    response = client.get("/api/v1/columns", headers=api_account.headers)
    body = assert_error(response, 500, "internal_error")
    assert "secret" not in response.get_data(as_text=True)


def test_openapi_document_needs_no_token(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json()["openapi"].startswith("3.")


def test_received_times_are_utc_with_z(client, api_account):
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    body = upload(client, api_account.headers).get_json()
    received = dt.datetime.fromisoformat(body["received_at"].replace("Z", "+00:00"))
    assert before <= received <= dt.datetime.now(dt.timezone.utc)
