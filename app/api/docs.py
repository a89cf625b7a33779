"""The API reference page (GET /api/v1/docs), rendered on the server from the OpenAPI document.

Decisions:
- Built from openapi.document() on every request, so the page cannot drift from the document
  (a test checks that it lists every path). No JavaScript, no CDN: the page and its stylesheet
  come from this server only.
- No login: the page holds no secret and is the same for everyone (no account data, not even
  the signed-in user's name in the header). The curl examples use the server's public URL
  (PUBLIC_URL, as the 外部連携設定 tab does) and the placeholder $API_TOKEN.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from flask import current_app, render_template
from markupsafe import Markup, escape

from . import bp, openapi

METHODS = ("get", "post", "put", "patch", "delete")
PLACE = {"query": "クエリ", "path": "パス", "header": "ヘッダー"}
TOKEN = "$API_TOKEN"
# What each status code means in general; the operation's own description says the specifics.
STATUS_MEANING = {
    "200": "成功", "202": "受付済み", "400": "リクエストの誤り", "401": "認証なし・認証失敗",
    "403": "権限なし", "404": "見つからない", "409": "状態が合わない", "413": "大きすぎる",
    "422": "取込失敗", "429": "リクエストが多すぎる",
}


@dataclass(frozen=True)
class Example:
    """One curl call shown on the page: the documented path it calls and the command as typed."""
    title: str
    method: str
    path: str
    note: str
    args: tuple[str, ...]
    url: str  # the path with its query, under /api/v1

    def command(self, base: str) -> str:
        parts = ["curl -sS", *self.args, shlex.quote(base + self.url)]
        return " \\\n  ".join(parts)


AUTH = f'-H "Authorization: Bearer {TOKEN}"'
EXAMPLES = (
    Example("ファイルを送る (取込待ちで 202)", "post", "/imports",
            "答えの id と Location ヘッダーで取込の状態を確認します。", (AUTH, '-F "file=@20180516.csv"'), "/imports"),
    Example("ファイルを送り、取込の完了まで待つ (?wait=1)", "post", "/imports",
            "成功なら 200、失敗なら 422 と全エラーが返ります。",
            (AUTH, '-F "file=@20180516.csv"'), "/imports?wait=1"),
    Example("ファイルを本文そのままで送る (?filename= 必須)", "post", "/imports",
            "multipart を使えないクライアント向けです。",
            (AUTH, '-H "Content-Type: text/csv"', "--data-binary @20180516.csv"), "/imports?filename=20180516.csv"),
    Example("取込の状態とエラー", "get", "/imports/{import_id}",
            "42 はアップロードの答えの id (Location のURL) に置き換えます。", (AUTH,), "/imports/42"),
    Example("失敗した取込の一覧", "get", "/imports", "", (AUTH,), "/imports?status=failed"),
    Example("ある日の実績", "get", "/results", "period=yyyymmdd", (AUTH,), "/results?period=20180516"),
    Example("ある月の実績", "get", "/results", "period=yyyymm (その月の日次と月次ファイルの合計)",
            (AUTH,), "/results?period=201805"),
)


def paragraphs(text: str) -> list[Markup]:
    """The document's description text as paragraphs, its `backticks` as <code> (everything else escaped)."""
    return [Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(part)))) for part in text.split("\n\n") if part]


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow local $refs of responses and parameters (schemas keep theirs: they become links)."""
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def schema_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref.startswith("#/components/schemas/") else None


def type_text(schema: dict[str, Any]) -> str:
    """A short reading of a schema's type: string | null, array of Import, 1–200 (default 50) …"""
    if name := schema_name(schema):
        return name
    if "allOf" in schema:
        return " + ".join(type_text(part) for part in schema["allOf"])
    kinds = schema.get("type", "object")
    text = " | ".join(kinds) if isinstance(kinds, list) else kinds
    if text == "array" and "items" in schema:
        text = f"array of {type_text(schema['items'])}"
    if "format" in schema:
        text += f" ({schema['format']})"
    details = []
    if "enum" in schema:
        details.append(" / ".join("null" if v is None else str(v) for v in schema["enum"]))
    if "minimum" in schema or "maximum" in schema:
        details.append(f"{schema.get('minimum', '')}–{schema.get('maximum', '')}")
    if "maxLength" in schema:
        details.append(f"最大{schema['maxLength']}文字")
    if "pattern" in schema:
        details.append(f"形式 {schema['pattern']}")
    if "default" in schema:
        details.append(f"既定 {schema['default']}")
    return text + (": " + ", ".join(details) if details else "")


def properties(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of an object schema: name, type, required, description, link to a named schema."""
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        rows.append({"name": name, "type": type_text(prop), "required": name in required,
                     "description": prop.get("description", ""),
                     "link": schema_name(prop) or schema_name(prop.get("items", {}))})
    return rows


def _schemas(doc: dict[str, Any]) -> list[dict[str, Any]]:
    shown = []
    for name, schema in doc["components"]["schemas"].items():
        parts = schema.get("allOf", [schema])
        shown.append({
            "name": name,
            "includes": [n for n in (schema_name(p) for p in parts) if n],
            "rows": [row for part in parts if not schema_name(part) for row in properties(part)],
        })
    return shown


def _content(doc: dict[str, Any], content: dict[str, Any]) -> list[dict[str, Any]]:
    shown = []
    for media, body in content.items():
        schema = body.get("schema", {})
        shown.append({"media": media, "type": type_text(schema), "link": schema_name(schema),
                      "rows": properties(schema) if "properties" in schema else []})
    return shown


def _operation(doc: dict[str, Any], path: str, method: str, op: dict[str, Any]) -> dict[str, Any]:
    parameters = [_resolve(doc, p) for p in op.get("parameters", [])]
    responses = []
    for status, answer in op["responses"].items():
        answer = _resolve(doc, answer)
        responses.append({"status": status, "meaning": STATUS_MEANING.get(status, ""),
                          "description": answer["description"], "content": _content(doc, answer.get("content", {})),
                          "headers": {name: h.get("description", "") for name, h in answer.get("headers", {}).items()}})
    body = op.get("requestBody")
    security = op.get("security", doc.get("security", []))
    return {
        "id": op["operationId"], "method": method.upper(), "path": path,
        "summary": op.get("summary", ""), "description": paragraphs(op.get("description", "")),
        "auth": bool(security),
        "parameters": [{"name": p["name"], "place": PLACE.get(p["in"], p["in"]), "required": p.get("required", False),
                        "type": type_text(p.get("schema", {})), "description": p.get("description", "")}
                       for p in parameters],
        "body": {"required": body.get("required", False), "content": _content(doc, body["content"])} if body else None,
        "responses": responses,
        "examples": [(n, e.title) for n, e in enumerate(EXAMPLES, 1) if (e.path, e.method) == (path, method)],
    }


def page_context() -> dict[str, Any]:
    """Everything the template shows, read from the OpenAPI document and the server's public URL."""
    doc = openapi.document()
    base = current_app.config["PUBLIC_URL"] + doc["servers"][0]["url"]
    operations = [_operation(doc, path, method, item[method])
                  for path, item in doc["paths"].items() for method in METHODS if method in item]
    return {
        "info": doc["info"], "about": paragraphs(doc["info"]["description"]), "base": base,
        "operations": operations, "schemas": _schemas(doc),
        "examples": [(e, e.command(base)) for e in EXAMPLES], "token": TOKEN,
        "security": doc["components"]["securitySchemes"]["bearerAuth"],
    }


@bp.get("/docs")
def reference():
    """The API reference page (HTML, no token needed)."""
    return render_template("api/docs.html", **page_context())
