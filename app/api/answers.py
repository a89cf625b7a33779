"""The API's answers: JSON bodies with Japanese kept readable, and the error envelope every error uses.

Every error is {"error": {"code": <word>, "message": "日本語 / English"}} (docs/spec.md section 5);
servers/web.py and the app-wide error pages use the same builders for /api/ paths.
"""
from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app

# Generic answers for HTTP errors raised inside the API (by Werkzeug or abort()).
HTTP_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("bad_request", "リクエストが正しくありません。", "The request is malformed."),
    401: ("unauthorized", "APIトークンが必要です。", "An API token is required."),
    403: ("forbidden", "この操作は許可されていません。", "This operation is not allowed."),
    404: ("not_found", "見つかりません。", "Not found."),
    405: ("method_not_allowed", "このメソッドは使えません。", "Method not allowed."),
    409: ("conflict", "現在この操作はできません。", "The operation conflicts with the current state."),
    413: ("payload_too_large", "ファイルが大きすぎます。", "The file is too large."),
    415: ("unsupported_media_type", "この形式は受け付けていません。", "Unsupported media type."),
    422: ("unprocessable", "処理できませんでした。", "The request could not be processed."),
    429: ("rate_limited", "リクエストが多すぎます。しばらくしてからお試しください。",
          "Too many requests; try again later."),
    500: ("internal_error", "サーバーでエラーが発生しました。", "Internal server error."),
}


class ApiError(Exception):
    """An API error answer: HTTP status, a code word, the message in Japanese and English."""

    def __init__(self, status: int, code: str, ja: str, en: str, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None):
        super().__init__(f"{ja} / {en}")
        self.status, self.code, self.ja, self.en = status, code, ja, en
        self.headers = headers or {}
        self.extra = extra or {}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON with Japanese kept readable (UTF-8, not \\u escapes)."""
    body = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body, status=status, headers=headers, mimetype="application/json")


def error_body(code: str, ja: str, en: str) -> dict[str, Any]:
    """The error envelope every API error uses."""
    return {"error": {"code": code, "message": f"{ja} / {en}"}}


def error_response(status: int, code: str, ja: str, en: str, headers: dict[str, str] | None = None,
                   extra: dict[str, Any] | None = None) -> Response:
    """An error answer in the API's shape (usable by the app-wide handler for /api/ paths too)."""
    return json_response({**(extra or {}), **error_body(code, ja, en)}, status, headers)


def http_error_response(status: int, headers: dict[str, str] | None = None) -> Response:
    """The API's answer for a plain HTTP status (unknown path, wrong method, body too large…)."""
    code, ja, en = HTTP_ERRORS.get(status, HTTP_ERRORS[500] if status >= 500 else HTTP_ERRORS[400])
    if status == 413:
        cap = current_app.config["MAX_UPLOAD_BYTES"]
        ja, en = f"ファイルが大きすぎます(上限 {cap:,} バイト)。", f"The file is too large (limit {cap:,} bytes)."
    return error_response(status, code, ja, en, headers)
