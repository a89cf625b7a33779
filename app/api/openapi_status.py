"""The OpenAPI part of GET /status (app/api/status.py), merged into the document by openapi.document()."""
from __future__ import annotations

from typing import Any

_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "429": {"$ref": "#/components/responses/TooManyRequests"},
}

PATHS: dict[str, Any] = {
    "/status": {
        "get": {
            "tags": ["data"],
            "operationId": "getStatus",
            "summary": "データ未着の状態 / overdue data, last receipt, last success",
            "description": (
                "外部連携設定の「データ未着の通知」で期限を過ぎても届いていない期間(`overdue`、空なら未着なし)、"
                "最後に受け取ったファイル、最後に成功した取込を返します。監視スクリプト向けです。\n\n"
                "The periods whose expected file did not come by its deadline (`overdue`, empty when none), "
                "the last file received and the last succeeded import, for monitoring."),
            "responses": {
                "200": {"description": "状態 / the status", "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/Status"}}}},
                **_ERRORS,
            },
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "Status": {
        "type": "object",
        "required": ["account", "overdue_enabled", "overdue", "last_receipt", "last_success"],
        "properties": {
            "account": {"type": "string", "description": "アカウントのスラッグ / account slug"},
            "overdue_enabled": {"type": "boolean", "description": "データ未着の通知が有効か / overdue alerts on"},
            "overdue": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["period", "period_kind", "deadline", "opened_at", "message"],
                    "properties": {
                        "period": {"type": "string", "description": "期間 (20261201, 202611)"},
                        "period_kind": {"type": "string", "enum": ["day", "month"]},
                        "deadline": {"type": "string", "format": "date-time", "description": "期限 (UTC, Z)"},
                        "opened_at": {"type": "string", "format": "date-time", "description": "未着と判定した日時 (UTC, Z)"},
                        "message": {"type": "string", "description": "メイン画面の表示 / the banner's text"},
                    },
                },
            },
            "last_receipt": {"oneOf": [{"$ref": "#/components/schemas/Import"}, {"type": "null"}],
                             "description": "最後に受け取ったファイル / last file received"},
            "last_success": {"oneOf": [{"$ref": "#/components/schemas/Import"}, {"type": "null"}],
                             "description": "最後に成功した取込 / last succeeded import"},
        },
    },
}
