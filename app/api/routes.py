"""HTTP API (docs/spec.md section 5): uploads for API連動 and a read API, Bearer token per account.

Every authenticated call goes through `bearer.authenticate` first (the order of its checks is
written there).

Decisions (where docs/spec.md is silent):
- A refused upload (401/403/409/413) is not written to the 取込履歴: the caller gets the answer
  at once, and a misconfigured client retrying would only flood the history.
- With multipart, `?filename=` (when given) wins over the part's own file name, so a client
  can upload from a temporary file.
- The sender recorded for an API import is the caller's IP address.
- `?wait=1` runs nothing itself: the file is received like any other and the worker's outcome is
  awaited for at most IMPORT_WAIT_SECONDS; an import still queued or running then is answered
  `202` with its JSON, its `Location` and a `message` saying so.
- Every error, including unknown paths and wrong methods under /api/v1, is JSON
  {"error": {"code": <word>, "message": "日本語 / English"}}.
"""
from __future__ import annotations

from typing import Any

from flask import Response, current_app, request, url_for
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as HTTPNotFound

from .. import config
from ..auth.access import MAX_ROW_ID
from ..errors import ImportRejected, Invalid, NotFound, RenkeiError
from ..importer.filename import PERIOD_MESSAGE, parse_period
from ..models import Import
from ..services import archives, ingest, queue
from ..services.admission import Channel
from . import bp, openapi, queries

# error_body and http_error_response are also reached through this module (servers/web.py, app/factory.py).
from .answers import (  # noqa: F401
    HTTP_ERRORS,
    ApiError,
    error_body,
    error_response,
    http_error_response,
    json_response,
)
from .bearer import authenticate

MAX_PAGE_SIZE = 200
# Errors of one import per answer (GET /imports/<id>, the 422 of ?wait=1): at most
# MAX_ERRORS_PER_FILE are stored, each clipped, so even the largest page stays well below 1 MB.
DEFAULT_ERRORS_PAGE = 100
MAX_ERRORS_PAGE = 500
MAX_FILENAME = 255
DEFAULT_PAGE_SIZE = 50
# The largest OFFSET (and page) number the databases take: a signed 64-bit integer (SQLite raises on a
# bigger one). Ids are smaller: 32-bit INTEGER columns, see auth/access.MAX_ROW_ID.
MAX_ID = 2**63 - 1

# ---------------------------------------------------------------------------------------
# Error handlers of this blueprint only (other areas keep their HTML pages)


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> Response:
    return error_response(error.status, error.code, error.ja, error.en, error.headers, error.extra)


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    headers = {}
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return http_error_response(status, headers)


# By code as well as by class: Flask prefers an app-wide handler for a code over a
# blueprint's handler for a class, and the app's handlers answer without the API's codes.
bp.register_error_handler(HTTPException, _http_error)
for _status in HTTP_ERRORS:
    bp.register_error_handler(_status, _http_error)


@bp.errorhandler(RenkeiError)
def _domain_error(error: RenkeiError) -> Response:
    if isinstance(error, NotFound):
        return error_response(404, "not_found", error.message, "Not found.")
    if isinstance(error, Invalid):
        return error_response(400, error.code, error.message, "The request is invalid.")
    return error_response(400, error.code, error.message, "The request could not be processed.")


@bp.after_request
def _no_store(response: Response) -> Response:
    # Answers carry account data and differ per token: no shared cache may keep them.
    response.headers.setdefault("Cache-Control", "no-store")
    return response


# ---------------------------------------------------------------------------------------
# Request parsing


def _flag(name: str) -> bool:
    """A boolean query parameter: 1/true/yes or 0/false/no (absent = false); anything else, even empty, is 400."""
    if name not in request.args:
        return False
    value = request.args[name].strip().lower()
    if value in ("0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ApiError(400, "invalid_parameter", f"{name} は 1 または 0 で指定してください。",
                   f"{name} must be 1 or 0.")


def _int_arg(name: str, default: int | None, minimum: int, maximum: int) -> int | None:
    """An integer query parameter within bounds (absent = default); anything else, even empty, is 400."""
    raw = request.args.get(name)
    if raw is None:
        return default
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or not minimum <= int(raw) <= maximum:
        raise ApiError(400, "invalid_parameter", f"{name} は {minimum}〜{maximum} の整数で指定してください。",
                       f"{name} must be an integer from {minimum} to {maximum}.")
    return int(raw)


def _too_large() -> ApiError:
    cap = current_app.config["MAX_UPLOAD_BYTES"]
    return ApiError(413, "payload_too_large", f"ファイルが大きすぎます(上限 {cap:,} バイト)。",
                    f"The file is too large (limit {cap:,} bytes).")


def _clean_filename(name: str | None) -> str:
    """The file name to import under; 400 when missing or holding control characters."""
    name = (name or "").strip()
    if not name:
        raise ApiError(400, "filename_required",
                       "ファイル名がありません。?filename=20180516.csv のように指定してください。",
                       "The file name is missing; pass it as ?filename=20180516.csv.")
    if len(name) > MAX_FILENAME:
        raise ApiError(400, "invalid_filename", f"ファイル名は{MAX_FILENAME}文字以内にしてください。",
                       f"The file name must be at most {MAX_FILENAME} characters.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ApiError(400, "invalid_filename", "ファイル名に制御文字は使えません。",
                       "The file name must not contain control characters.")
    return name


def read_upload() -> tuple[str, bytes]:
    """The uploaded file's name and bytes: multipart field `file`, or the raw body with ?filename=."""
    cap = current_app.config["MAX_UPLOAD_BYTES"]
    if request.mimetype == "multipart/form-data":
        # Werkzeug answers 413 itself beyond MAX_CONTENT_LENGTH (the cap plus room for the multipart framing).
        storage = request.files.get("file")
        if storage is None:
            if "file" in request.form:
                raise ApiError(400, "file_not_a_file",
                               "file はファイルとして送ってください(例: curl -F file=@20180516.csv)。",
                               "Send `file` as a file part (e.g. curl -F file=@20180516.csv).")
            raise ApiError(400, "file_required", "multipart の file フィールドがありません。",
                           "The multipart field `file` is missing.")
        data = storage.stream.read(cap + 1)
        filename = request.args.get("filename") or storage.filename
    else:
        if request.content_length is not None and request.content_length > cap:
            raise _too_large()
        # parse_form_data=False: curl --data-binary sends form-urlencoded by default; the body is the file.
        data = request.get_data(cache=False, parse_form_data=False)
        filename = request.args.get("filename")
    if len(data) > cap:
        raise _too_large()
    filename = _clean_filename(filename)
    if not data:
        raise ApiError(400, "empty_file", "ファイルが空です。", "The file is empty.")
    return filename, data


def _period_arg():
    raw = request.args.get("period", "")
    if not raw.strip():
        raise ApiError(400, "period_required", PERIOD_MESSAGE,
                       "Pass ?period=yyyymmdd (a day, e.g. 20180516) or yyyymm (a month, e.g. 201805).")
    try:
        return parse_period(raw)
    except Invalid:
        raise ApiError(400, "invalid_period", PERIOD_MESSAGE,
                       "period must be yyyymmdd (a day, e.g. 20180516) or yyyymm (a month, e.g. 201805).") from None


# ---------------------------------------------------------------------------------------
# Endpoints


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI document of this API (no token needed)."""
    return json_response(openapi.document())


@bp.post("/imports")
def create_import() -> Response:
    """Receive a CSV file: 202 queued, or with ?wait=1 answer when the worker has ended it (200 / 422)."""
    account = authenticate(upload=True)
    wait = _flag("wait")
    _errors_page_args()  # checked even without ?wait=1, as every documented parameter is
    filename, data = read_upload()
    imp = ingest.receive(account.id, filename, data, channel=Channel.API, sender=request.remote_addr)
    del data  # stored: the worker reads its own copy
    location = {"Location": url_for("api.get_import", import_id=imp.id)}
    if not wait:
        return json_response(queries.import_json(imp), 202, location)
    imp, status = archives.settled(queue.wait_for(imp.id, config.get(current_app, "IMPORT_WAIT_SECONDS")),
                                   queue.wait_for, config.get(current_app, "IMPORT_WAIT_SECONDS"))
    if status in queue.PENDING:
        # The worker is busy (or not running): the caller follows the Location instead.
        message = ("取込はまだ実行中です。結果は Location のURLで確認してください。 / "
                   "The import is still queued or running; follow the Location URL for its outcome.")
        return json_response({**queries.import_json(imp), "message": message}, 202, location)
    body = _with_errors(imp)
    if status == Import.SUCCEEDED:
        return json_response(body, 200)
    count = imp.error_count or body["errors_stored"] or sum(e["error_count"] for e in body.get("entries", []))
    return error_response(
        422, ImportRejected.code, f"取込に失敗しました(エラー {count} 件)。ファイルの内容は保存されていません。",
        f"The import failed with {count} error(s); nothing of the file was stored.", extra=body,
    )


def _errors_page_args() -> tuple[int, int]:
    """?errors_limit= and ?errors_offset= (400 when out of bounds)."""
    return (_int_arg("errors_limit", DEFAULT_ERRORS_PAGE, 1, MAX_ERRORS_PAGE),
            _int_arg("errors_offset", 0, 0, MAX_ID))


def _with_errors(imp: Import) -> dict[str, Any]:
    """The import's JSON with one page of its errors (?errors_limit=, ?errors_offset=) and the next page's URL."""
    limit, offset = _errors_page_args()
    body = {**queries.import_json(imp), **queries.errors_page(imp.id, limit=limit, offset=offset)}
    following = None
    if offset + len(body["errors"]) < body["errors_stored"]:
        following = url_for("api.get_import", import_id=imp.id, errors_limit=limit, errors_offset=offset + limit)
    body["errors_next"] = following
    if imp.status == Import.UNPACKED:
        # An archive: each of its files as an import of its own (services/archives.py).
        body["entries"] = [queries.import_json(entry) for entry in archives.entries(imp.id)]
    return body


@bp.get("/imports")
def list_imports() -> Response:
    """The account's 取込履歴, newest first, a page at a time."""
    account = authenticate()
    limit = _int_arg("limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    offset = _int_arg("offset", None, 0, MAX_ID)
    page = _int_arg("page", None, 1, MAX_ID // MAX_PAGE_SIZE)
    if offset is not None and page is not None:
        raise ApiError(400, "invalid_parameter", "offset と page は同時に指定できません。",
                       "Use either offset or page, not both.")
    if page is not None:
        offset = (page - 1) * limit
    offset = offset or 0
    status = request.args.get("status")
    if status is not None and status not in Import.STATUS_LABELS:
        allowed = ", ".join(Import.STATUS_LABELS)
        raise ApiError(400, "invalid_parameter", f"status は {allowed} のいずれかで指定してください。",
                       f"status must be one of {allowed}.")
    rows, total = queries.list_imports(account.id, limit=limit, offset=offset, status=status)
    following = None
    if offset + len(rows) < total:
        args = {"limit": limit, "offset": offset + limit, **({"status": status} if status else {})}
        following = url_for("api.list_imports", **args)
    return json_response({
        "imports": [queries.import_json(imp) for imp in rows],
        "total": total, "limit": limit, "offset": offset, "next": following,
    })


@bp.get("/imports/<int:import_id>")
def get_import(import_id: int) -> Response:
    """One import of the account with a page of its errors; another account's id is 404."""
    account = authenticate()
    imp = queries.get_import(account.id, import_id) if import_id <= MAX_ROW_ID else None
    if imp is None:
        raise ApiError(404, "not_found", f"取込 #{import_id} は見つかりません。", f"Import #{import_id} not found.")
    return json_response(_with_errors(imp))


@bp.get("/results")
def get_results() -> Response:
    """Stored values per member and graph column for a day or a month."""
    account = authenticate()
    period = _period_arg()
    return json_response(queries.results_json(account.id, period))


@bp.get("/members")
def list_members() -> Response:
    """The account's members (メンバー設定)."""
    account = authenticate()
    return json_response({"members": queries.list_members(account.id)})


@bp.get("/columns")
def list_columns() -> Response:
    """The account's graph columns (グラフ設定)."""
    account = authenticate()
    return json_response({"columns": queries.list_columns(account.id)})


def unknown(unknown: str = "") -> Response:
    """Every other path under /api/v1: JSON 404, or 405 (with Allow) when the path exists with other methods."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = set()
    for method in ("GET", "POST"):
        try:
            rule, _ = adapter.match(method=method, return_rule=True)
        except HTTPException:
            continue
        if rule.endpoint != "api.unknown":
            allowed.update(rule.methods or ())
    if allowed:
        raise MethodNotAllowed(valid_methods=sorted(allowed))
    raise HTTPNotFound()


@bp.record_once
def _catch_all(state) -> None:
    # Routing errors (unknown path, wrong method) never reach a blueprint's error handlers, and
    # Flask routes accept only listed methods; a Werkzeug rule with methods=None matches every
    # method (QUERY, TRACE, made-up ones), so the API answers them all in its own shape.
    prefix = (state.url_prefix or "").rstrip("/")
    state.app.view_functions["api.unknown"] = unknown
    for path in (f"{prefix}/", f"{prefix}/<path:unknown>"):
        state.app.url_map.add(state.app.url_rule_class(path, endpoint="api.unknown", methods=None))
