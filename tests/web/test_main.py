"""メイン: the month's table and server-drawn chart; and the pure chart builder."""
from __future__ import annotations

import datetime as dt
import re
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest

from app.importer.filename import parse_filename
from app.main.chart import EMPTY_MESSAGE, bars
from app.services import columns, members, results
from tests.fixtures.ingest import import_file

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def board(make_account, login):
    account, email, _ = make_account("acme")
    yamada = members.create_member(account.id, 1, "E001", "山田 太郎", "営業1課")
    members.create_member(account.id, 2, "E002", "髙橋 花子", "営業2課")
    gone = members.create_member(account.id, 3, "E003", "退職 者", "営業1課")
    sales = columns.add_column(account.id, "売上", "円")
    count = columns.add_column(account.id, "件数", "件")
    login(email)
    return {"account": account, "yamada": yamada, "gone": gone, "sales": sales, "count": count}


def _import(account_id: int, name: str, text: str) -> None:
    imp = import_file(account_id, name, text.encode("cp932"), channel="cli", sender=None)
    assert imp.status == "succeeded", [e.message for e in imp.errors]


def _svg(html: str) -> ElementTree.Element:
    markup = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    return ElementTree.fromstring(markup)


def _total_row(html: str) -> list[str]:
    foot = re.search(r"<tfoot>(.*?)</tfoot>", html, re.S).group(1)
    return re.findall(r'<td class="num">([^<]*)</td>', foot)


def test_month_adds_daily_and_monthly_files(client, board):
    account_id = board["account"].id
    _import(account_id, "20180516.csv", "No.,売上,件数\n1,120000,2\n2,\"50,000\",1\n")
    _import(account_id, "20180517.csv", "No.,売上,件数\n1,30000,1\n1,5000,\n")
    _import(account_id, "20180500.csv", "No.,売上,件数\n2,1000000,3\n")
    _import(account_id, "20180601.csv", "No.,売上,件数\n1,999,9\n")  # another month

    html = client.get("/?month=2018-05").get_data(as_text=True)

    assert "2018年5月の実績" in html
    assert "売上(円)" in html and "件数(件)" in html
    assert re.search(r"山田 太郎</td><td>営業1課</td>\s*<td class=\"num\">155,000</td><td class=\"num\">3</td>", html)
    assert re.search(r"髙橋 花子</td><td>営業2課</td>\s*<td class=\"num\">1,050,000</td><td class=\"num\">4</td>", html)
    assert _total_row(html) == ["1,205,000", "7"]
    # Members are listed by No.
    assert html.index("山田 太郎") < html.index("髙橋 花子")


def test_inactive_members_are_not_rows(client, board):
    account_id = board["account"].id
    _import(account_id, "20180516.csv", "No.,売上\n1,100\n3,200\n")
    members.set_active(account_id, board["gone"].id, False)
    html = client.get("/?month=2018-05").get_data(as_text=True)
    assert "退職 者" not in html
    assert _total_row(html)[0] == "100"


def test_chart_shows_members_and_bars_for_the_picked_column(client, board):
    account_id = board["account"].id
    _import(account_id, "20180516.csv", "No.,売上,件数\n1,120000,2\n2,-5000,7\n")

    html = client.get("/?month=2018-05").get_data(as_text=True)
    svg = _svg(html)
    labels = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "bar-label"]
    values = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "bar-value"]
    assert labels == ["山田 太郎", "髙橋 花子", "退職 者"]
    # The first column by default; a member without data is "—" and draws no bar (no data is not 0円).
    assert values == ["120,000円", "-5,000円", "—"]
    assert len(list(svg.iter(f"{SVG}rect"))) == 2
    assert 'style="' not in html.split("<svg", 1)[1].split("</svg>", 1)[0]  # CSP: no inline styles

    html = client.get(f"/?month=2018-05&column={board['count'].id}").get_data(as_text=True)
    values = [t.text for t in _svg(html).iter(f"{SVG}text") if t.get("class") == "bar-value"]
    assert values == ["2件", "7件", "—"]
    assert f'<option value="{board["count"].id}" selected>件数(件)</option>' in html
    # The picker keeps the month.
    assert '<input type="hidden" name="month" value="2018-05">' in html


def test_unknown_column_falls_back_to_the_first(client, board):
    _import(board["account"].id, "20180516.csv", "No.,売上,件数\n1,10,2\n")
    html = client.get("/?month=2018-05&column=99999").get_data(as_text=True)
    values = [t.text for t in _svg(html).iter(f"{SVG}text") if t.get("class") == "bar-value"]
    assert values[0] == "10円"


def test_month_navigation(client, board):
    html = client.get("/?month=2018-01").get_data(as_text=True)
    assert "2018年1月の実績" in html
    assert "month=2017-12" in html and "month=2018-02" in html
    html = client.get("/?month=2018-12").get_data(as_text=True)
    assert "month=2018-11" in html and "month=2019-01" in html


@pytest.mark.parametrize("query", ["", "?month=nonsense", "?month=2018-13"])
def test_default_month_is_the_current_month_in_the_app_time_zone(app, client, board, query):
    today = dt.datetime.now(ZoneInfo(app.config["TIMEZONE"])).date()
    html = client.get("/" + query).get_data(as_text=True)
    assert f"{today.year}年{today.month}月の実績" in html


def test_hand_typed_results_count_too(client, board):
    account_id = board["account"].id
    _import(account_id, "20180516.csv", "No.,売上\n1,100\n")
    results.add_manual(account_id, board["yamada"].id, parse_filename("20180500.csv"), {board["sales"].id: 50})
    html = client.get("/?month=2018-05").get_data(as_text=True)
    assert _total_row(html)[0] == "150"


def test_empty_month_explains_how_data_arrives(client, board):
    html = client.get("/?month=2018-05").get_data(as_text=True)
    assert "2018年5月の実績はまだありません" in html
    assert "<svg" not in html
    for text in ("メンバー設定", "グラフ設定", "外部連携設定", "手動取込", "yyyymmdd.csv", "yyyymm00.csv"):
        assert text in html
    example = re.search(r'<pre class="csv-example">(.*?)</pre>', html, re.S).group(1)
    assert example.splitlines()[0] == "No.,売上,件数,備考"


def test_empty_account_points_to_the_settings(client, make_account, login):
    _, email, _ = make_account("empty")
    login(email)
    html = client.get("/").get_data(as_text=True)
    assert "実績を表示する準備をしましょう" in html
    assert 'href="/settings/members"' in html and 'href="/settings/columns"' in html
    assert "<table" not in html


def test_results_of_other_accounts_are_not_shown(client, board, make_account):
    other, _, _ = make_account("other")
    members.create_member(other.id, 1, "X001", "他社 社員", "")
    columns.add_column(other.id, "売上", "円")
    _import(other.id, "20180516.csv", "No.,売上\n1,777\n")
    html = client.get("/?month=2018-05").get_data(as_text=True)
    assert "他社 社員" not in html and "777" not in html


# --- app/main/chart.py (pure) ---------------------------------------------------------


def _parse(markup: str) -> ElementTree.Element:
    return ElementTree.fromstring(str(markup))


def _rects(root):
    return [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]


def test_chart_escapes_labels_and_units():
    markup = bars(['<script>alert("x")</script>', "A&B"], [1, 2], unit="<円>", title="<t>")
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    root = _parse(markup)  # still well-formed XML
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "A&B" in texts and "2<円>" in texts
    assert root.get("aria-label") == "<t>"


def test_chart_bar_lengths_are_proportional():
    root = _parse(bars(["a", "b", "c"], [100, 50, 0], unit=""))
    widths = [float(r.get("width")) for r in _rects(root)]
    assert widths[0] == pytest.approx(2 * widths[1]) and widths[2] == 0
    xs = {float(r.get("x")) for r in _rects(root)}
    assert len(xs) == 1  # every positive bar starts at the axis


def test_chart_draws_negative_values_left_of_the_axis():
    root = _parse(bars(["plus", "minus"], [300, -100], unit="円"))
    axis = float(next(root.iter(f"{SVG}line")).get("x1"))
    plus, minus = _rects(root)
    assert float(plus.get("x")) == pytest.approx(axis)
    assert float(minus.get("x")) + float(minus.get("width")) == pytest.approx(axis)
    assert float(plus.get("width")) == pytest.approx(3 * float(minus.get("width")))
    assert plus.get("fill") != minus.get("fill")
    values = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "bar-value"]
    assert values == ["300円", "-100円"]


def test_chart_with_only_negative_values_fits_the_view():
    root = _parse(bars(["a", "b"], [-10, -1000000], unit=""))
    width = float(root.get("viewBox").split()[2])
    for rect in _rects(root):
        assert 0 <= float(rect.get("x")) and float(rect.get("x")) + float(rect.get("width")) <= width


def test_chart_without_data_says_so():
    markup = bars([], [], unit="円")
    root = _parse(markup)
    assert EMPTY_MESSAGE in markup and not _rects(root)


def test_chart_with_all_zero_or_missing_values():
    root = _parse(bars(["a", "b", "c"], [0, None, float("nan")], unit="円"))
    # A missing value draws no bar and says "—"; a zero (or a broken number) is a bar of width 0.
    assert [float(r.get("width")) for r in _rects(root)] == [0, 0]
    values = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "bar-value"]
    assert values == ["0円", "—", "0円"]
    assert "b: —" in [t.text for t in root.iter(f"{SVG}title")]


def test_chart_with_only_missing_values():
    root = _parse(bars(["a", "b"], [None, None], unit="円"))
    assert not _rects(root)
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "bar-value"] == ["—", "—"]


def test_chart_is_responsive_and_uses_no_inline_style():
    markup = bars(["a"], [1], unit="")
    root = _parse(markup)
    assert root.get("viewBox").startswith("0 0 ") and root.get("width") is None
    assert "style=" not in markup


def test_chart_shortens_long_labels_but_keeps_the_full_name_in_the_tooltip():
    name = "とても長い名前のメンバーさん(営業第一部)"
    root = _parse(bars([name], [1], unit=""))
    label = next(t for t in root.iter(f"{SVG}text") if t.get("class") == "bar-label")
    assert label.text.endswith("…") and len(label.text) <= 9
    assert any(name in (t.text or "") for t in root.iter(f"{SVG}title"))


def test_chart_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        bars(["a"], [1, 2])


@pytest.mark.parametrize(
    "value, unit, expected",
    [(1234567, "円", "1,234,567円"), (-5000, "", "-5,000"), (12.5, "件", "12.5件"), (0.125, "", "0.12"),
     (1000.0, "", "1,000"), (-0.001, "円", "0円")],
)
def test_chart_shows_values_as_every_screen_does(value, unit, expected):
    root = _parse(bars(["a"], [value], unit=unit))
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "bar-value"] == [expected]
    assert next(root.iter(f"{SVG}g")).find(f"{SVG}title").text == f"a: {expected}"
