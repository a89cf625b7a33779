"""The API reference page (/api/v1/docs): every documented path, curl examples that call documented paths, no login."""
from __future__ import annotations

import re
import shlex
from html import unescape
from urllib.parse import urlsplit

import pytest

from app.api.openapi import document
from tests.fixtures.api import api_options

URL = "/api/v1/docs"
BASE = "https://renkei.example.jp"


@pytest.fixture
def page(app, client):
    app.config["PUBLIC_URL"] = BASE
    response = client.get(URL)
    assert response.status_code == 200 and response.mimetype == "text/html"
    return response.get_data(as_text=True)


def operations(html: str) -> set[tuple[str, str]]:
    return {(unescape(path), method.lower())
            for path, method in re.findall(r'class="card api-operation"[^>]*data-path="([^"]+)" data-method="([A-Z]+)"', html)}


def curl_commands(html: str) -> list[list[str]]:
    """Each <pre class="curl"> as the shell would split it (line continuations joined)."""
    blocks = re.findall(r'<pre class="curl">(.*?)</pre>', html, re.DOTALL)
    return [shlex.split(unescape(block).replace("\\\n", " ")) for block in blocks]


def called(words: list[str]) -> tuple[str, str]:
    """(method, URL) of a curl command: -X if given, POST when it sends a body, else GET."""
    urls = [w for w in words if w.startswith(("http://", "https://"))]
    assert len(urls) == 1, words
    if "-X" in words:
        method = words[words.index("-X") + 1]
    elif {"-F", "--data-binary", "-d"} & set(words):
        method = "POST"
    else:
        method = "GET"
    return method.lower(), urls[0]


def documented_path(path: str) -> str | None:
    """The OpenAPI path template that `path` (under /api/v1) matches, or None."""
    for template in document()["paths"]:
        pattern = re.sub(r"\\\{[a-z_]+\\\}", "[0-9]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return template
    return None


def test_the_page_lists_every_operation_of_the_openapi_document(page):
    documented = {(path, method) for path, item in document()["paths"].items() for method in item}
    assert operations(page) == documented
    # The page lists them with their status codes too: a new answer cannot be left off either.
    for path, item in document()["paths"].items():
        for method, op in item.items():
            article = page.split(f'id="{op["operationId"]}"', 1)[1].split("</article>", 1)[0]
            shown = set(re.findall(r'class="api-status s\d">(\d{3})<', article))
            assert shown == set(op["responses"]), (path, method)


def test_the_curl_examples_cover_uploads_status_and_results(page):
    commands = [" ".join(words) for words in curl_commands(page)]
    token = "Authorization: Bearer $API_TOKEN"
    assert all(token in command for command in commands)
    assert any(c.endswith(f"{BASE}/api/v1/imports") and "-F file=@20180516.csv" in c for c in commands)
    assert any(c.endswith(f"{BASE}/api/v1/imports?wait=1") for c in commands)
    assert any(re.search(rf"{re.escape(BASE)}/api/v1/imports/[0-9]+$", c) for c in commands)
    assert any(c.endswith(f"{BASE}/api/v1/results?period=20180516") for c in commands)
    assert any(c.endswith(f"{BASE}/api/v1/results?period=201805") for c in commands)


def test_every_curl_example_calls_a_documented_operation(page):
    doc = document()
    commands = curl_commands(page)
    assert len(commands) >= 5
    for words in commands:
        method, url = called(words)
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == BASE, url
        assert parts.path.startswith("/api/v1/"), url
        template = documented_path(parts.path.removeprefix("/api/v1"))
        assert template is not None, f"{url} is not in the OpenAPI document"
        operation = doc["paths"][template].get(method)
        assert operation is not None, f"{method.upper()} {template} is not documented"
        names = {p["name"] for p in operation.get("parameters", []) if "name" in p}
        for pair in filter(None, parts.query.split("&")):
            assert pair.split("=", 1)[0] in names, f"{url}: ?{pair} is not a documented parameter"


def test_the_page_needs_no_login_and_shows_no_account_data(app, client, make_account, login):
    app.config["PUBLIC_URL"] = BASE
    anonymous = client.get(URL).get_data(as_text=True)
    made = make_account("acme", name="アクメ株式会社", **api_options())
    login(made.email)
    signed_in = client.get(URL)
    assert signed_in.status_code == 200
    text = signed_in.get_data(as_text=True)
    assert text == anonymous
    for private in (made.email, "アクメ株式会社", made.token, "ログアウト", "csrf_token"):
        assert private not in text
    assert signed_in.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_the_page_loads_nothing_from_elsewhere(page):
    # Every stylesheet, script and image is this server's (a path, never another host).
    for url in re.findall(r'(?:src|href)="([^"#]*)"', page):
        assert url.startswith("/"), url
    assert "<script" not in page


def test_the_api_section_of_the_integration_tab_links_the_reference(client, make_account, login):
    made = make_account("acme", **api_options())
    login(made.email)
    html = client.get("/settings/integration").get_data(as_text=True)
    section = html.split('id="api-section"', 1)[1].split("</section>", 1)[0]
    assert f'href="{URL}"' in section and "APIリファレンス" in section


def test_the_descriptions_show_code_as_code(page):
    assert "<code>?wait=1</code>" in page and "<code>Authorization: Bearer &lt;トークン&gt;</code>" in page
    assert "`" not in page
