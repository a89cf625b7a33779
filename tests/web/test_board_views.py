"""メイン as a user reads it: the last update, "—" for no data, sorting by any column, the day view."""
from __future__ import annotations

import datetime as dt
import html as html_lib
import re
from xml.etree import ElementTree

import pytest

from app.extensions import db
from app.importer.filename import parse_filename
from app.models import Import
from app.services import members, results
from tests.fixtures.ingest import import_file

SVG = "{http://www.w3.org/2000/svg}"
MEMBERS = [(1, "E001", "山田 太郎", "営業1課"), (2, "E002", "髙橋 花子", "営業2課"),
           (3, "E003", "佐藤 次郎", ""), (4, "E004", "鈴木 一郎", "営業1課")]


@pytest.fixture
def acc(make_account, login):
    made = make_account("acme", members=MEMBERS, columns=[("売上", "円"), ("件数", "件")])
    login(made.email)
    return made


def _import(acc, name: str, text: str) -> Import:
    imp = import_file(acc.id, name, text.encode("cp932"), channel="cli", sender=None)
    assert imp.status == "succeeded", [e.message for e in imp.errors]
    return imp


def _finished(imp: Import, when: dt.datetime) -> None:
    """Set an import's end time (naive UTC, as stored), so no test depends on the clock."""
    db.session.get(Import, imp.id).finished_at = when
    db.session.commit()


def _page(client, query: str) -> str:
    response = client.get("/" + query)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _rows(html: str) -> list[list[str]]:
    """The table body as the user reads it: each row's cell texts."""
    body = re.search(r"<tbody>(.*?)</tbody>", html, re.S).group(1)
    return [[html_lib.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def _names(html: str) -> list[str]:
    return [row[1] for row in _rows(html)]


def _footer(html: str) -> list[str]:
    foot = re.search(r"<tfoot>(.*?)</tfoot>", html, re.S).group(1)
    return re.findall(r'<td class="num">([^<]*)</td>', foot)


def _chart(html: str) -> list[tuple[str, str]]:
    """(label, value text) of each bar row of the chart, top to bottom."""
    root = ElementTree.fromstring(re.search(r"<svg.*?</svg>", html, re.S).group(0))
    out = []
    for group in root.iter(f"{SVG}g"):
        texts = {t.get("class"): t.text for t in group.iter(f"{SVG}text")}
        out.append((texts["bar-label"], texts["bar-value"]))
    return out


def _link_text(html: str, element_id: str) -> str:
    fragment = re.search(rf'<p class="updated" id="{element_id}">(.*?)</p>', html, re.S).group(1)
    return html_lib.unescape(re.sub(r"<[^>]+>", "", fragment))


# --- 最終更新 ---------------------------------------------------------------------------

def test_the_board_says_when_and_by_which_import_its_data_was_last_updated(client, acc):
    # Shown in the configured time zone (TIMEZONE, Asia/Tokyo by default, as in the tests).
    first = _import(acc, "20261201.csv", "No.,売上\n1,100\n")
    month_file = _import(acc, "20261200.csv", "No.,売上\n2,50\n")
    other_month = _import(acc, "20270101.csv", "No.,売上\n1,1\n")
    _finished(first, dt.datetime(2026, 12, 1, 0, 12))  # 09:12 in Tokyo
    _finished(month_file, dt.datetime(2026, 11, 30, 23, 0))
    _finished(other_month, dt.datetime(2027, 1, 1, 0, 0))  # another month's import never counts

    html = _page(client, "?month=2026-12")
    assert _link_text(html, "last-update") == "最終更新: 2026/12/01 09:12 (20261201.csv)"
    assert f'<a href="/imports/{first.id}">20261201.csv</a>' in html

    # The day view names the day's own file; a day without one says nothing of an update.
    html = _page(client, "?day=2026-12-01")
    assert _link_text(html, "last-update") == "最終更新: 2026/12/01 09:12 (20261201.csv)"
    assert 'id="last-update"' not in _page(client, "?day=2026-12-02")


def test_the_last_update_is_the_replacing_import(client, acc):
    old = _import(acc, "20261201.csv", "No.,売上\n1,100\n")
    new = _import(acc, "20261201.csv", "No.,売上\n1,200\n")
    _finished(old, dt.datetime(2026, 12, 1, 12, 0))
    _finished(new, dt.datetime(2026, 12, 1, 15, 30))  # 00:30 of 12/02 in Tokyo
    html = _page(client, "?month=2026-12")
    assert _link_text(html, "last-update") == "最終更新: 2026/12/02 00:30 (20261201.csv)"
    assert f'href="/imports/{new.id}"' in html and f'href="/imports/{old.id}"' not in html


# --- "—" for no data --------------------------------------------------------------------

def test_members_without_data_show_a_dash_in_the_table_and_the_chart(client, acc):
    _import(acc, "20180516.csv", "No.,売上,件数\n1,120000,\n2,0,3\n")
    html = _page(client, "?month=2018-05")
    rows = {row[1]: row[3:] for row in _rows(html)}
    assert rows == {"山田 太郎": ["120,000", "—"], "髙橋 花子": ["0", "3"], "佐藤 次郎": ["—", "—"],
                    "鈴木 一郎": ["—", "—"]}
    # A real 0 stays 0円; no data is "—", never 0円, and draws no bar.
    assert _chart(html) == [("山田 太郎", "120,000円"), ("髙橋 花子", "0円"), ("佐藤 次郎", "—"), ("鈴木 一郎", "—")]
    assert "佐藤 次郎: —" in html
    assert html.count('<rect class="bar"') == 2


# --- sorting ----------------------------------------------------------------------------

@pytest.fixture
def sortable(client, acc):
    _import(acc, "20180516.csv", "No.,売上,件数\n1,300,1\n2,100,5\n4,300,2\n")
    return acc


@pytest.mark.parametrize("query, names", [
    ("", ["山田 太郎", "髙橋 花子", "佐藤 次郎", "鈴木 一郎"]),
    ("&sort=no&order=desc", ["鈴木 一郎", "佐藤 次郎", "髙橋 花子", "山田 太郎"]),
    # Text by code point; ties keep No. order.
    ("&sort=name&order=asc", sorted(["山田 太郎", "髙橋 花子", "佐藤 次郎", "鈴木 一郎"])),
    ("&sort=name&order=desc", sorted(["山田 太郎", "髙橋 花子", "佐藤 次郎", "鈴木 一郎"], reverse=True)),
    # 部署: equal ones keep No. order, a member without one comes last both ways.
    ("&sort=department&order=asc", ["山田 太郎", "鈴木 一郎", "髙橋 花子", "佐藤 次郎"]),
    ("&sort=department&order=desc", ["髙橋 花子", "山田 太郎", "鈴木 一郎", "佐藤 次郎"]),
])
def test_the_table_sorts_by_the_member_columns(client, sortable, query, names):
    assert _names(_page(client, "?month=2018-05" + query)) == names


def test_the_table_sorts_by_a_graph_column_both_ways_with_members_without_data_last(client, sortable):
    sales, count = sortable.column["売上"], sortable.column["件数"]
    # 売上 300 (No.1), 100 (No.2), none (No.3), 300 (No.4): a tie keeps No. order in both directions.
    html = _page(client, f"?month=2018-05&sort={sales}&order=desc")
    assert _names(html) == ["山田 太郎", "鈴木 一郎", "髙橋 花子", "佐藤 次郎"]
    assert [row[3] for row in _rows(html)] == ["300", "300", "100", "—"]
    html = _page(client, f"?month=2018-05&sort={sales}&order=asc")
    assert _names(html) == ["髙橋 花子", "山田 太郎", "鈴木 一郎", "佐藤 次郎"]
    html = _page(client, f"?month=2018-05&sort={count}")  # a graph column starts from the largest
    assert [row[4] for row in _rows(html)] == ["5", "2", "1", "—"]
    assert 'aria-sort="descending"' in html
    # The chart follows the table's order; the totals do not change.
    assert [label for label, _ in _chart(html)] == ["髙橋 花子", "鈴木 一郎", "山田 太郎", "佐藤 次郎"]
    assert _footer(html) == ["700", "8"]


def test_sort_links_keep_the_month_and_the_column_and_turn_the_order(client, sortable):
    sales, count = sortable.column["売上"], sortable.column["件数"]
    html = _page(client, f"?month=2018-05&column={count}&sort={sales}&order=desc")
    head = re.search(r"<thead>(.*?)</thead>", html, re.S).group(1)
    links = dict((html_lib.unescape(re.sub(r"<[^>]+>", "", text)).strip(), html_lib.unescape(href))
                 for href, text in re.findall(r'<a class="sort" href="([^"]+)">(.*?)</a>', head))
    assert links["売上(円) ▼"] == f"/?month=2018-05&column={count}&sort={sales}&order=asc"
    assert links["件数(件)"] == f"/?month=2018-05&column={count}&sort={count}&order=desc"
    assert links["氏名"] == f"/?month=2018-05&column={count}&sort=name&order=asc"
    # The month links and the column picker keep the order too.
    assert f'href="/?month=2018-04&amp;column={count}&amp;sort={sales}"' in html
    assert f'<input type="hidden" name="sort" value="{sales}">' in html


@pytest.mark.parametrize("query", ["&sort=nonsense", "&sort=99999&order=sideways", "&sort=%00&order=",
                                   "&sort=" + "9" * 5000, "&sort=１"])
def test_an_unknown_sort_shows_the_no_order(client, sortable, query):
    assert _names(_page(client, "?month=2018-05" + query)) == ["山田 太郎", "髙橋 花子", "佐藤 次郎", "鈴木 一郎"]


# --- the day view -----------------------------------------------------------------------

def test_the_day_view_shows_the_days_daily_file_only(client, acc):
    _import(acc, "20180516.csv", "No.,売上,件数\n1,100,1\n2,40,2\n")
    _import(acc, "20180517.csv", "No.,売上,件数\n1,7,1\n")
    _import(acc, "20180500.csv", "No.,売上,件数\n1,1000,9\n3,500,1\n")  # the month's file: no day's
    results.add_manual(acc.id, acc.member[4], parse_filename("20180516.csv"), {acc.column["売上"]: 5})

    html = _page(client, "?day=2018-05-16")
    assert "2018年5月16日の実績" in html
    rows = {row[1]: row[3:] for row in _rows(html)}
    assert rows == {"山田 太郎": ["100", "1"], "髙橋 花子": ["40", "2"], "佐藤 次郎": ["—", "—"], "鈴木 一郎": ["5", "—"]}
    assert _footer(html) == ["145", "3"]
    assert _chart(html)[2] == ("佐藤 次郎", "—")
    # The month adds every day, the monthly file and the hand-typed result.
    html = _page(client, "?month=2018-05")
    assert {row[1]: row[3] for row in _rows(html)}["山田 太郎"] == "1,107"
    assert _footer(html) == ["1,652", "14"]


def test_a_day_without_a_daily_file_says_so_and_shows_dashes(client, acc):
    _import(acc, "20180516.csv", "No.,売上\n1,100\n")
    _import(acc, "20180500.csv", "No.,売上\n2,1000\n")
    html = _page(client, "?day=2018-05-18")
    assert "2018年5月18日の日次ファイル(20180518.csv)はまだ取り込まれていません。" in html
    assert all(row[3:] == ["—", "—"] for row in _rows(html)) and len(_rows(html)) == 4
    assert _footer(html) == ["—", "—"]
    assert "<svg" not in html


def test_day_navigation_goes_between_days_and_back_to_the_month(client, acc):
    _import(acc, "20180516.csv", "No.,売上\n1,100\n")
    _import(acc, "20180531.csv", "No.,売上\n1,100\n")
    sales = acc.column["売上"]
    html = _page(client, f"?day=2018-05-31&sort={sales}&order=asc")
    assert f'href="/?day=2018-05-30&amp;column={sales}&amp;sort={sales}&amp;order=asc" rel="prev">← 前日' in html
    assert f'href="/?day=2018-06-01&amp;column={sales}&amp;sort={sales}&amp;order=asc" rel="next">翌日 →' in html
    assert f'href="/?month=2018-05&amp;column={sales}&amp;sort={sales}&amp;order=asc">5月に戻る' in html
    # The days of the month that have a daily file, as links; the picker sends ?day=.
    days = re.search(r'<nav class="day-links"[^>]*>(.*?)</nav>', html, re.S).group(1)
    assert re.findall(r">(\d+日)</a>", days) == ["16日", "31日"]
    assert '<input type="date" id="day" name="day" value="2018-05-31"' in html
    # The month view's 日別 opens the month's last day with a file (not the current month here).
    assert f'href="/?day=2018-05-31&amp;column={sales}">日別</a>' in _page(client, "?month=2018-05")
    # The ends of the calendar stay days a file name can name.
    assert f'href="/?day=9999-12-31&amp;column={sales}" rel="next"' in _page(client, "?day=9999-12-31")
    assert "<h1>1年1月1日の実績</h1>" in _page(client, "?day=0001-01-01")


@pytest.mark.parametrize("raw", ["2018-02-30", "2018-5-1x", "0000-01-01", "１２３４-05-06"])
def test_a_day_that_is_no_date_shows_the_month_with_a_message(client, acc, raw):
    html = _page(client, f"?day={raw}")
    assert "日付は 2018-05-16 のように指定してください。月別を表示しています。" in html
    assert "年月は" not in html and "日の実績" not in html
    # With a month as well, that month is shown.
    assert "<h1>2018年4月の実績</h1>" in _page(client, f"?day={raw}&month=2018-04")


def test_the_day_view_leaves_out_inactive_members(client, acc):
    _import(acc, "20180516.csv", "No.,売上\n1,100\n3,200\n")
    members.set_active(acc.id, acc.member[3], False)
    html = _page(client, "?day=2018-05-16")
    assert "佐藤 次郎" not in html and _footer(html)[0] == "100"
