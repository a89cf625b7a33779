"""The API reference page in a real Chromium: it renders, asks only its own server, and fits a phone."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from app.api.openapi import document

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width, javascript", [(1280, True), (390, True), (390, False)])
def test_the_reference_renders_from_this_server_only(chromium, renkei_server, screenshots, width, javascript):
    # Not signed in: the page needs no login.
    context = chromium.new_context(java_script_enabled=javascript, viewport={"width": width, "height": 844},
                                   locale="ja-JP")
    context.set_default_timeout(10_000)
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    try:
        page = context.new_page()
        response = page.goto(renkei_server.url + "/api/v1/docs", wait_until="load")
        assert response is not None and response.status == 200
        expect(page.locator("h1")).to_contain_text("Renkei API")
        operations = page.locator("article.api-operation")
        expect(operations).to_have_count(sum(len(item) for item in document()["paths"].values()))
        expect(page.locator("pre.curl").first).to_contain_text("Authorization: Bearer $API_TOKEN")
        # The stylesheet of the page was applied (it is this server's, not a CDN's).
        assert page.locator(".api-method").first.evaluate("e => getComputedStyle(e).fontWeight") == "700"
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=str(screenshots / f"api-docs-{width}{'' if javascript else '-nojs'}.png"), full_page=True)
    finally:
        context.close()
    origin = urlsplit(renkei_server.url)
    assert requested, "the browser made no request"
    for url in requested:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc), url
