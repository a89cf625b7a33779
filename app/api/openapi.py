"""The OpenAPI 3.1 document of the HTTP API, written by hand (served at /api/v1/openapi.json).

Keep it in step with routes.py: tests validate it with openapi-spec-validator, call every
documented operation and fuzz the running API with schemathesis against it.
"""
from __future__ import annotations

import copy
from typing import Any

from ..importer.filename import ENDINGS_TEXT
from . import openapi_status

MAX_ID = 2**63 - 1


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return _json(_ref("Error"), description, headers)


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


# Paging of one import's errors (GET /imports/{id}, the 422 of POST /imports?wait=1).
_ERRORS_PAGE_PARAMETERS = [
    {"name": "errors_limit", "in": "query", "required": False,
     "description": "1ページのエラー件数 / errors per page",
     "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
    {"name": "errors_offset", "in": "query", "required": False,
     "description": "何件目のエラーから (0 から) / first error of the page, 0-based",
     "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID, "default": 0}},
]

_READ_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "429": {"$ref": "#/components/responses/TooManyRequests"},
}


def _listing(operation_id: str, summary: str, key: str, item: str, description: str) -> dict[str, Any]:
    """The path of a data GET answering {key: [item, ...]} (the account's members, its graph columns)."""
    return {
        "get": {
            "tags": ["data"],
            "operationId": operation_id,
            "summary": summary,
            "responses": {
                "200": _json({"type": "object", "required": [key],
                              "properties": {key: {"type": "array", "items": _ref(item)}}}, description),
                **_READ_ERRORS,
            },
        },
    }


_IMPORT_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer", "description": "取込ID / import id"},
    "filename": {"type": "string", "description": "ファイル名 (例 20180516.csv)"},
    "channel": {"type": "string", "enum": ["mail", "ftp", "api", "web", "cli"],
                "description": "受信経路 / how the file arrived"},
    "sender": _nullable("string", description="送信元 (APIでは呼び出し元IPアドレス) / sender"),
    "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "discarded", "refused", "unpacked"]},
    "status_label": {"type": "string", "description": "状態の日本語表記 (成功, エラー …)"},
    "received_at": {"type": "string", "format": "date-time", "description": "受信日時 (UTC, ISO 8601, Z)"},
    "finished_at": _nullable("string", format="date-time", description="完了日時 (UTC, ISO 8601, Z)"),
    "period": _nullable("string", pattern="^[0-9]{6}([0-9]{2})?$",
                        description="期間: 日次 yyyymmdd / 月次 yyyymm"),
    "period_kind": _nullable("string", enum=["day", "month", None]),
    "row_count": {"type": "integer", "minimum": 0, "description": "取り込んだ行数 / rows stored"},
    "error_count": {"type": "integer", "minimum": 0,
                    "description": "見つかったエラーの総数 (記録は最初の1,000件まで) / every error found (the first 1,000 are stored)"},
    "replaced_import_id": _nullable("integer", description="置き換えた以前の同名ファイルの取込ID"),
    "replaced_by_id": _nullable("integer", description=("このデータを置き換えた後の同名ファイルの取込ID (置換済) / "
                                                        "the later import that replaced this one's data")),
    "size": {"type": "integer", "minimum": 0, "description": "バイト数 / bytes"},
    "note": _nullable("string"),
    "archive_id": _nullable("integer", description="展開元のアーカイブ(.zip/.gz)の取込ID / the archive it was unpacked from"),
    "ignored_headers": {"type": "array", "items": {"type": "string"},
                        "description": ("見出しにない列を無視する設定で読み飛ばした見出し (ファイルの順) / "
                                        "the file's headers skipped as extra columns, in file order")},
}

_MEMBER_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer"},
    "no": {"type": "integer", "description": "メンバー設定のNo."},
    "employee_id": _nullable("string", description="社員ID"),
    "name": {"type": "string", "description": "氏名"},
    "department": _nullable("string", description="部署"),
    "email": _nullable("string", description="メールアドレス"),
    "active": {"type": "boolean"},
}

_VALUES = {
    "type": "object",
    "description": "グラフ列名 → 値 (値がなければ null) / graph column name → value",
    "additionalProperties": {"type": ["number", "null"]},
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Renkei API",
        "version": "1.0.0",
        "description": (
            "外部連携設定「API連動」のAPIです。CSVファイルを送ると実績が取り込まれます"
            "(ファイル名の規則・CSVの形式は取込の仕様どおり)。取込履歴・実績・メンバー・グラフ列を読めます。\n\n"
            "認証: 設定 → 外部連携設定 で発行したAPIトークンを `Authorization: Bearer <トークン>` で送ります。"
            "アップロードはデータ連動方式が「API連動」で、ステータスが「連動稼働」のときだけ受け付けます。"
            "読み取りはどの方式でも使えます。エラーは常に JSON "
            '`{"error": {"code": "...", "message": "日本語 / English"}}` です。\n\n'
            "The API of the API integration mode: upload result CSV files and read imports, results, "
            "members and graph columns. Authenticate with the account's API token as a Bearer token. "
            "Requests are rate limited per token (429 with Retry-After)."
        ),
    },
    "servers": [{"url": "/api/v1", "description": "このサーバー / this server"}],
    "security": [{"bearerAuth": []}],
    "tags": [
        {"name": "imports", "description": "取込 / imports"},
        {"name": "data", "description": "実績・メンバー・グラフ列 / results, members, graph columns"},
        {"name": "meta", "description": "この文書 / this document"},
    ],
    "paths": {
        "/imports": {
            "post": {
                "tags": ["imports"],
                "operationId": "createImport",
                "summary": "実績ファイル(CSV・Excel・ODS)を送る / upload a results file (CSV, Excel, ODS)",
                "description": (
                    "ファイルは multipart の `file` フィールド、または本文そのもの(`?filename=` 必須)で送ります。"
                    "通常は受信して `202` と取込の JSON・`Location` を返し、取込は順番に実行されます。"
                    "`?wait=1` を付けると取込の完了まで待ち、成功なら `200`、失敗なら `422` と全エラーを返します"
                    "(待ち時間内に終わらなければ `202` と `message`)。\n\n"
                    "Send the file as the multipart field `file`, or as the raw body with `?filename=`. "
                    "Answers `202` (queued) with a `Location`; with `?wait=1` it answers when the import "
                    "has ended: `200` on success, `422` with every error on failure (`202` with a "
                    "`message` when it has not ended within the server's wait time)."
                ),
                "parameters": [
                    {"name": "filename", "in": "query", "required": False,
                     "description": ("ファイル名 (yyyymmdd.csv または yyyymm00.csv。拡張子は "
                                     f"{ENDINGS_TEXT})。本文で送るときは必須、"
                                     "multipart では部品のファイル名より優先 / file name; required for a raw body"),
                     "schema": {"type": "string", "maxLength": 255, "examples": ["20180516.csv"]}},
                    {"name": "wait", "in": "query", "required": False,
                     "description": "1 なら取込の完了まで待つ / 1 = wait for the import to end",
                     "schema": {"type": "string", "enum": ["0", "1", "true", "false"]}},
                    *_ERRORS_PAGE_PARAMETERS,
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {"file": {"type": "string", "format": "binary",
                                                        "description": ("CSV・Excel(.xlsx/.xlsm/.xls)・ODSファイル / "
                                                                        "the CSV or workbook file")}},
                            },
                            "encoding": {"file": {"contentType": "text/csv, application/octet-stream"}},
                        },
                        "text/csv": {"schema": {"type": "string", "format": "binary"}},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "responses": {
                    "200": _json(_ref("ImportDetail"), "?wait=1: 取込成功 / imported"),
                    "202": _json(_ref("Import"), "受信しました(取込待ち。?wait=1 で待ち時間内に終わらないときも) / "
                                 "received and queued (also ?wait=1 when the import has not ended in time)", {
                        "Location": {"description": "取込のURL / URL of the import",
                                     "schema": {"type": "string"}},
                    }),
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    "401": {"$ref": "#/components/responses/Unauthorized"},
                    "403": {"$ref": "#/components/responses/Forbidden"},
                    "409": _error("データ連動ステータスが「連動稼働停止」 / integration is stopped"),
                    "413": _error("ファイルが上限より大きい / the file is larger than the cap"),
                    "422": _json(_ref("ImportFailed"),
                                 "?wait=1: 取込失敗、エラーの1ページ目付き / the import failed, with a page of errors"),
                    "429": {"$ref": "#/components/responses/TooManyRequests"},
                },
            },
            "get": {
                "tags": ["imports"],
                "operationId": "listImports",
                "summary": "取込履歴 (新しい順) / import history, newest first",
                "parameters": [
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
                    {"name": "offset", "in": "query", "required": False,
                     "description": "page と同時には使えません / not together with page",
                     "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID}},
                    {"name": "page", "in": "query", "required": False,
                     "description": "1 から / 1-based; not together with offset",
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID // 200}},
                    {"name": "status", "in": "query", "required": False,
                     "schema": {"type": "string",
                                "enum": ["queued", "running", "succeeded", "failed", "discarded", "refused", "unpacked"]}},
                ],
                "responses": {
                    "200": _json(_ref("ImportList"), "取込履歴 / import history"),
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    **_READ_ERRORS,
                },
            },
        },
        "/imports/{import_id}": {
            "get": {
                "tags": ["imports"],
                "operationId": "getImport",
                "summary": "取込1件とエラー / one import with its errors",
                "description": (
                    "エラーは1ページずつ返します(`errors_limit` 件、`errors_offset` 件目から、ファイルの順)。"
                    "1ファイルにつき最初の1,000件までを記録します。`error_count` は見つかったすべてのエラーの件数、"
                    "`errors_stored` は記録した件数、`errors_next` は次のページのURLです。\n\n"
                    "Errors come a page at a time (`errors_limit` from `errors_offset`, in file order). At most "
                    "the first 1,000 errors of a file are stored: `error_count` counts every error found, "
                    "`errors_stored` the stored ones, `errors_next` is the next page's URL."
                ),
                "parameters": [
                    {"name": "import_id", "in": "path", "required": True,
                     "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID}},
                    *_ERRORS_PAGE_PARAMETERS,
                ],
                "responses": {
                    "200": _json(_ref("ImportDetail"), "取込 / the import"),
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    **_READ_ERRORS,
                },
            },
        },
        "/results": {
            "get": {
                "tags": ["data"],
                "operationId": "getResults",
                "summary": "期間の実績 / stored results of a period",
                "description": (
                    "日 (yyyymmdd) はその日の実績、月 (yyyymm) はその月の日次実績と月次ファイル(yyyymm00.csv)の"
                    "実績の合計(メイン画面と同じ)。メンバーごと・グラフ列ごとの値です。\n\n"
                    "A day gives that day's results; a month adds up the month's daily results and the "
                    "monthly file's results, as the board does."
                ),
                "parameters": [
                    {"name": "period", "in": "query", "required": True,
                     "schema": {"type": "string", "pattern": "^[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])?$",
                                "examples": ["20180516", "201805"]}},
                ],
                "responses": {
                    "200": _json(_ref("Results"), "実績 / results"),
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    **_READ_ERRORS,
                },
            },
        },
        "/members": _listing("listMembers", "メンバー一覧 (No.順) / members by No.", "members", "Member",
                             "メンバー / members"),
        "/columns": _listing("listColumns", "グラフ列一覧 (表示順) / graph columns in display order", "columns", "Column",
                             "グラフ列 / graph columns"),
        "/openapi.json": {
            "get": {
                "tags": ["meta"],
                "operationId": "getOpenApi",
                "summary": "この OpenAPI 文書 (認証不要) / this document (no token needed)",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
            },
        },
        "/docs": {
            "get": {
                "tags": ["meta"],
                "operationId": "getDocs",
                "summary": "この文書を読みやすくしたページ (HTML、認証不要) / this document as a web page (no token needed)",
                "security": [],
                "responses": {"200": {"description": "APIリファレンス / the API reference",
                                      "content": {"text/html": {"schema": {"type": "string"}}}}},
            },
        },
    },
    "components": {
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "設定 → 外部連携設定 → APIトークン / the account's API token",
            },
        },
        "responses": {
            "BadRequest": _error("リクエストが正しくない (パラメータ・ファイル名・空のファイル) / bad request"),
            "Unauthorized": _error("APIトークンがない・正しくない / missing or invalid token", {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": 'Bearer realm="Renkei API"'},
            }),
            "Forbidden": _error("外部連携が無効、またはアップロードで方式がAPI連動でない / integration disabled, "
                                "or (uploads) the mode is not API"),
            "NotFound": _error("見つからない (他のアカウントの取込も) / not found"),
            "TooManyRequests": _error("リクエストが多すぎる (トークンごとの上限、または認証失敗による一時停止) / "
                                      "rate limited or temporarily banned", {
                                          "Retry-After": {"schema": {"type": "string"},
                                                          "description": "待つ秒数 / seconds to wait"},
                                      }),
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "examples": ["unauthorized", "integration_stopped"],
                                     "description": "機械向けのコード / machine-readable code"},
                            "message": {"type": "string", "description": "日本語 / English"},
                        },
                    },
                },
            },
            "Import": {
                "type": "object",
                "required": list(_IMPORT_PROPERTIES),
                "properties": _IMPORT_PROPERTIES,
            },
            "RowError": {
                "type": "object",
                "required": ["line", "column", "value", "message"],
                "properties": {
                    "line": _nullable("integer", description="ファイルの行番号 (見出し = 1)。Excel・ODSではシートの行番号"),
                    "column": _nullable("string", description="列名"),
                    "column_letter": _nullable("string", description=(
                        "Excel・ODSファイルの列 (例 C、シートの表示どおり)。CSVでは null / the sheet column of a workbook")),
                    "value": _nullable("string", description="問題の値"),
                    "message": {"type": "string", "description": "日本語のメッセージ"},
                },
            },
            "ImportDetail": {
                "allOf": [
                    _ref("Import"),
                    {"type": "object",
                     "required": ["errors", "errors_stored", "errors_limit", "errors_offset", "errors_next"],
                     "properties": {
                         "errors": {"type": "array", "items": _ref("RowError"), "maxItems": 500},
                         "errors_stored": {"type": "integer", "minimum": 0,
                                           "description": "記録したエラーの件数 / errors stored"},
                         "errors_limit": {"type": "integer", "minimum": 1, "maximum": 500},
                         "errors_offset": {"type": "integer", "minimum": 0},
                         "errors_next": _nullable("string", description="エラーの次のページのURL / next page of errors"),
                         "entries": {"type": "array", "items": _ref("Import"),
                                     "description": "アーカイブ(状態 unpacked)から展開した各ファイルの取込 / "
                                                    "the imports of an archive's files"},
                     }},
                ],
            },
            "ImportFailed": {"allOf": [_ref("ImportDetail"), _ref("Error")]},
            "ImportList": {
                "type": "object",
                "required": ["imports", "total", "limit", "offset", "next"],
                "properties": {
                    "imports": {"type": "array", "items": _ref("Import")},
                    "total": {"type": "integer", "minimum": 0},
                    "limit": {"type": "integer", "minimum": 1},
                    "offset": {"type": "integer", "minimum": 0},
                    "next": _nullable("string", description="次のページのURL / URL of the next page"),
                },
            },
            "Member": {"type": "object", "required": list(_MEMBER_PROPERTIES), "properties": _MEMBER_PROPERTIES},
            "Column": {
                "type": "object",
                "required": ["id", "name", "unit", "position"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string", "description": "グラフ列名 (CSVの見出し)"},
                    "unit": {"type": "string", "description": "単位 (円, 件 …)"},
                    "position": {"type": "integer"},
                },
            },
            "Results": {
                "type": "object",
                "required": ["period", "period_kind", "from", "to", "columns", "members", "totals"],
                "properties": {
                    "period": {"type": "string"},
                    "period_kind": {"type": "string", "enum": ["day", "month"]},
                    "from": {"type": "string", "format": "date"},
                    "to": {"type": "string", "format": "date"},
                    "columns": {"type": "array", "items": _ref("Column")},
                    "members": {
                        "type": "array",
                        "items": {
                            "allOf": [
                                _ref("Member"),
                                {"type": "object", "required": ["lines", "values"],
                                 "properties": {
                                     "lines": {"type": "integer", "minimum": 0,
                                               "description": "合計した実績の行数 / result lines added up"},
                                     "values": _VALUES,
                                 }},
                            ],
                        },
                    },
                    "totals": _VALUES,
                },
            },
        },
    },
}


def document() -> dict[str, Any]:
    """A fresh copy of the OpenAPI document (callers may change it freely)."""
    doc = copy.deepcopy(_DOCUMENT)
    doc["paths"].update(copy.deepcopy(openapi_status.PATHS))
    doc["components"]["schemas"].update(copy.deepcopy(openapi_status.SCHEMAS))
    return doc
