"""The site icon: an SVG in static, linked from every page; /favicon.ico sends browsers to it."""
from __future__ import annotations


def test_favicon_ico_redirects_to_the_svg_without_login(client):
    answer = client.get("/favicon.ico")

    assert answer.status_code == 301
    assert answer.headers["Location"].endswith("/static/favicon.svg")
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert icon.get_data(as_text=True).startswith("<svg")


def test_pages_link_the_icon(client):
    html = client.get("/login").get_data(as_text=True)

    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
