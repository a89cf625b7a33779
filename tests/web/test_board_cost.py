"""What a big month costs the board and the month API, and the shortcuts that keep it small.

A 5,000-member month with 7 columns is 35,000 cells. The page and `GET /api/v1/results`
must stay well under 0.2 s for it (issue 13), and timings on a shared machine are noise, so
the cost is counted instead: function calls per member as cProfile counts them, which is what
the time of these two requests grows with. With this test's data (half the values with
decimals): 393 per member for the page and 116 for the API when the board read month_totals
row by row into ORM members and formatted each cell with a template filter; 127 and 24 with
the month's grid (services/monthgrid.py) and the row's cells made at once; 68 per member for
the page with the whole body made at once and the chart's texts escaped once (main/board.py,
main/chart.py).
"""
from __future__ import annotations

import cProfile
import pstats
import random
import re

from markupsafe import escape

from app.formats import shown_number
from app.main.board import number_cells
from app.services import members as member_service
from tests.fixtures.importer import csv_bytes
from tests.fixtures.ingest import import_file

COLUMNS = [("売上", "円"), ("粗利", "円"), ("件数", "件"), ("訪問", ""), ("提案", ""), ("受注", ""), ("入金", "円")]
# Calls per member allowed (C functions and generator steps count too), with room for library
# changes: the ORM objects, the per-cell filter and the per-row month_totals cost 393 and 116, a
# template loop over the rows 127.
PAGE_CALLS_PER_MEMBER = 100
API_CALLS_PER_MEMBER = 60


def _add_members(acc, first: int, last: int, seed: int) -> None:
    """Add members No. first..last, each with a value in every column on two days of May 2018."""
    lines = ["No.,社員ID,氏名,部署,メールアドレス"]
    lines += [f"{no},E{no:05d},髙橋 {no}<&>,営業{no % 12}課," for no in range(first, last + 1)]
    member_service.import_members(acc.id, "\r\n".join(lines).encode("cp932"))
    rng = random.Random(seed)
    for day in (f"201805{seed:02d}.csv", f"201805{seed + 1:02d}.csv"):
        rows = [["No.", *(name for name, _ in COLUMNS)]]
        rows += [[str(no), *(str(rng.choice([rng.randint(-999, 9_999_999), rng.randint(0, 99) / 8]))
                             for _ in COLUMNS)] for no in range(first, last + 1)]
        imp = import_file(acc.id, day, csv_bytes(rows), channel="api")
        assert imp.status == "succeeded", [e.message for e in imp.errors]


def _calls(request) -> int:
    """Function calls of one request as cProfile counts them (after a first one that compiles and caches)."""
    assert request().status_code == 200
    profile = cProfile.Profile()
    profile.enable()
    response = request()
    profile.disable()
    assert response.status_code == 200
    return pstats.Stats(profile).total_calls


def test_board_and_month_api_cost_grows_little_per_member(app, client, make_account, login):
    acc = make_account("acme", columns=COLUMNS, member_key="no", mode="api", status="active",
                       error_to=["errors@acme.example"], api_token=True)
    login(acc.email)
    page, api = {}, {}
    small, big = 50, 550
    for first, last, seed in ((1, small, 1), (small + 1, big, 3)):
        _add_members(acc, first, last, seed)
        page[last] = _calls(lambda: client.get("/?month=2018-05"))
        api[last] = _calls(lambda: client.get("/api/v1/results?period=201805", headers=acc.headers))

    html = client.get("/?month=2018-05").get_data(as_text=True)
    assert html.count("<tr>") == 1 + big and f"髙橋 {big}&lt;&amp;&gt;" in html  # the head row and every member
    assert len(client.get("/api/v1/results?period=201805", headers=acc.headers).get_json()["members"]) == big
    per_member_page = (page[big] - page[small]) / (big - small)
    per_member_api = (api[big] - api[small]) / (big - small)
    assert per_member_page < PAGE_CALLS_PER_MEMBER, per_member_page
    assert per_member_api < API_CALLS_PER_MEMBER, per_member_api


def test_number_cells_are_what_the_template_would_show():
    # number_cells writes the cells without escaping them (numbers hold no markup) and formats
    # integers inline: both must give exactly what `{{ value|number }}` in a <td> gave; no value is "—".
    rng = random.Random(7)
    values = [None, 0.0, -0.0, 1.0, -1.0, 12.5, 0.125, 0.005, -0.001, -0.005, 999.999, 1234567.891, 2.0 ** 53,
              1e20, -1e300, float("inf"), float("-inf"), float("nan"), 3, -7, 10 ** 30]
    values += [rng.uniform(-1e9, 1e9) for _ in range(200)] + [float(rng.randint(-10**12, 10**12)) for _ in range(200)]
    want = "".join(f'<td class="num">{"—" if v is None else escape(shown_number(v))}</td>' for v in values)
    assert str(number_cells(values)) == want


def test_the_day_view_reads_totals_never_the_result_rows(app, client, make_account, login):
    from sqlalchemy import event

    from app.extensions import db

    acc = make_account("acme", columns=COLUMNS, member_key="no", mode="api", status="active",
                       error_to=["errors@acme.example"], api_token=True)
    login(acc.email)
    _add_members(acc, 1, 30, 1)
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        for query in ("/?day=2018-05-01", "/?day=2018-05-02&sort=name", "/?month=2018-05"):
            html = client.get(query).get_data(as_text=True)
            assert html.count("<tr>") == 1 + 30
        assert client.get("/api/v1/results?period=20180501", headers=acc.headers).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert statements and not [s for s in statements if re.search(r"\bresults\b", s)]


def test_day_view_cost_grows_little_per_member(app, client, make_account, login):
    # The day view sorted by a graph column: the same bound as the month (the sort is one pass in C).
    acc = make_account("acme", columns=COLUMNS, member_key="no", mode="api", status="active",
                       error_to=["errors@acme.example"], api_token=True)
    login(acc.email)
    page = {}
    small, big = 50, 550
    for first, last, seed in ((1, small, 1), (small + 1, big, 1)):
        _add_members(acc, first, last, seed)
        page[last] = _calls(lambda: client.get(f"/?day=2018-05-01&sort={acc.column['売上']}"))
    per_member = (page[big] - page[small]) / (big - small)
    assert per_member < PAGE_CALLS_PER_MEMBER, per_member
