"""メイン on a 390 px phone without JavaScript: the page never scrolls sideways, sorting and the day view are links."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.services import columns, members
from tests.fixtures.ingest import import_file

PHONE = {"width": 390, "height": 844}
COLUMNS = [("売上", "円"), ("粗利", "円"), ("件数", "件"), ("訪問", "回"), ("提案", "件"), ("受注", "件")]


@pytest.fixture(scope="module")
def board_data(renkei_server):
    with renkei_server.app.app_context():
        account_id = renkei_server.account_id
        for no, name, department in ((1, "山田 太郎", "営業第一部 東京支店"), (2, "髙橋 花子", "営業第二部"),
                                     (3, "佐藤 次郎", "")):
            members.create_member(account_id, no, f"E{no:03d}", name, department)
        ids = [columns.add_column(account_id, name, unit).id for name, unit in COLUMNS]
        header = "No.," + ",".join(name for name, _ in COLUMNS)
        for name, body in (("20180516.csv", "1,1200000,300000,2,5,3,1\n2,50000,12000,1,2,1,0\n"),
                           ("20180500.csv", "2,990000,1,1,1,1,1\n")):
            imp = import_file(account_id, name, f"{header}\n{body}".encode("cp932"))
            assert imp.status == "succeeded"
        db.session.remove()
    return ids


def _no_sideways_scroll(page) -> None:
    # The table may scroll inside its frame; the page itself must fit the phone's width.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_the_board_on_a_phone_sorts_and_opens_a_day_without_javascript(new_page, renkei_server, board_data,
                                                                        screenshots):
    page = new_page(renkei_server.admin_email, javascript=False, viewport=PHONE)
    page.goto(renkei_server.url + "/?month=2018-05")
    assert page.inner_text("h1") == "2018年5月の実績"
    assert page.inner_text("#last-update").startswith("最終更新: ")
    _no_sideways_scroll(page)
    page.screenshot(path=str(screenshots / "board-phone-month.png"), full_page=True)

    page.click("table.results thead a.sort:has-text('売上')")  # first click: the largest first
    names = page.locator("table.results tbody tr td:nth-child(2)").all_inner_texts()
    assert names == ["山田 太郎", "髙橋 花子", "佐藤 次郎"]
    page.click("table.results thead a.sort:has-text('売上')")  # again: the other way, no data still last
    names = page.locator("table.results tbody tr td:nth-child(2)").all_inner_texts()
    assert names == ["髙橋 花子", "山田 太郎", "佐藤 次郎"]
    assert "sort=" in page.url and "month=2018-05" in page.url

    page.click("nav.day-links a:has-text('16日')")
    assert page.inner_text("h1") == "2018年5月16日の実績"
    cells = page.locator("table.results tbody tr:has-text('髙橋 花子') td").all_inner_texts()
    assert cells[3] == "50,000"  # the day's file only, not the monthly file's 990,000
    assert page.locator("table.results tbody tr:has-text('佐藤 次郎') td").all_inner_texts()[3:] == ["—"] * 6
    _no_sideways_scroll(page)
    page.screenshot(path=str(screenshots / "board-phone-day.png"), full_page=True)

    page.fill("#day", "2018-05-17")
    page.click("button:has-text('日別を表示')")
    assert page.inner_text("h1") == "2018年5月17日の実績"
    assert "はまだ取り込まれていません" in page.inner_text("#no-day-data")
    page.click("a:has-text('5月に戻る')")
    assert page.inner_text("h1") == "2018年5月の実績"
