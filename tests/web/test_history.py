"""取込履歴: the list (badges, filters, paging), the page per import, download and 再取込."""
from __future__ import annotations

import datetime as dt
import re
from urllib.parse import quote

import pytest

from app.extensions import db
from app.models import Import, User
from app.services import files, ingest, runner, users
from tests.fixtures.ingest import import_file, line_count

GOOD = "No.,売上,件数\r\n1,120000,2\r\n2,\"50,000\",1\r\n".encode("cp932")
# Three errors: unknown member (line 2), not a number (line 3), unknown member again (line 4).
BAD = "No.,売上,件数\r\n99,100,1\r\n1,abc,1\r\n77,1,1\r\n".encode("cp932")


def _viewer(account, client):
    users.create_user(account.id, "viewer@acme.example", "password-123", User.VIEWER)
    client.post("/logout")
    response = client.post("/login", data={"email": "viewer@acme.example", "password": "password-123"})
    assert response.status_code == 302


def test_history_lists_imports_newest_first_with_badges(client, board):
    ok = import_file(board.id, "20180516.csv", GOOD, channel="cli", sender="cli-user")
    bad = import_file(board.id, "20180517.csv", BAD, channel="api", sender="system-x")
    queued = ingest.receive(board.id, "20180518.csv", GOOD, channel="mail", sender="sales@acme.example")

    html = client.get("/imports").get_data(as_text=True)

    assert '<span class="badge succeeded">成功</span>' in html
    assert '<span class="badge failed">エラー</span>' in html
    assert '<span class="badge queued">待機中</span>' in html
    assert "コマンド" in html and "API" in html and "メール" in html
    assert "sales@acme.example" in html and "system-x" in html
    # Newest first.
    assert html.index("20180518.csv") < html.index("20180517.csv") < html.index("20180516.csv")
    assert f"/imports/{ok.id}" in html and f"/imports/{bad.id}" in html and f"/imports/{queued.id}" in html
    # Row and error counts are shown.
    row = re.search(r"<tr>(?:(?!</tr>).)*20180517\.csv.*?</tr>", html, re.S).group(0)
    assert '<td data-label="エラー数" class="num">3</td>' in row


def test_history_filters(client, board):
    import_file(board.id, "20180516.csv", GOOD, channel="cli", sender=None)
    import_file(board.id, "20180517.csv", BAD, channel="api", sender=None)
    old = ingest.receive(board.id, "20170101.csv", GOOD, channel="mail", sender="a@b.example")
    old.received_at = dt.datetime(2017, 1, 1, 3, 0)  # 12:00 in Tokyo
    db.session.commit()

    def names(query: str) -> set[str]:
        html = client.get("/imports" + query).get_data(as_text=True)
        return set(re.findall(r">(\d{8}\.csv)</a>", html))

    assert names("") == {"20180516.csv", "20180517.csv", "20170101.csv"}
    assert names("?status=failed") == {"20180517.csv"}
    assert names("?status=succeeded") == {"20180516.csv"}
    assert names("?channel=mail") == {"20170101.csv"}
    assert names("?filename=0516") == {"20180516.csv"}
    assert names("?filename=%25") == set()  # a literal %, not a wildcard
    assert names("?date_from=2017-01-01&date_to=2017-01-01") == {"20170101.csv"}
    assert names("?date_to=2016-12-31") == set()
    assert "条件に合う取込はありません" in client.get("/imports?status=refused").get_data(as_text=True)


def test_history_paginates_by_fifty(client, board):
    for n in range(51):
        ingest.record_refusal(board.id, channel="mail", filename=f"file{n:02d}.csv", sender=None,
                              status=Import.REFUSED, note="拒否")
    first = client.get("/imports").get_data(as_text=True)
    second = client.get("/imports?page=2").get_data(as_text=True)
    assert first.count('class="badge refused"') == 50
    assert "file50.csv" in first and "file00.csv" not in first
    assert second.count('class="badge refused"') == 1 and "file00.csv" in second
    assert "1 / 2 ページ" in first and "page=2" in first


def test_history_empty_state_explains_channels(client, board):
    html = client.get("/imports").get_data(as_text=True)
    assert "まだ取込はありません" in html
    for channel in ("メール添付", "FTP", "API", "手動取込"):
        assert channel in html


def test_detail_shows_every_field_and_every_error(client, board):
    imp = import_file(board.id, "20180517.csv", BAD, channel="api", sender="system-x")
    html = client.get(f"/imports/{imp.id}").get_data(as_text=True)

    assert "20180517.csv" in html and "system-x" in html and "API" in html
    assert "2018年5月17日" in html and "Shift_JIS(cp932)" in html
    rows = re.findall(r"<tr>\s*<td[^>]*>(\d+)</td>\s*<td[^>]*>([^<]*)</td>\s*<td[^>]*>([^<]*)</td>", html)
    assert ("2", "No.", "99") in rows
    assert ("3", "売上", "abc") in rows
    assert ("4", "No.", "77") in rows
    assert len(rows) == imp.error_count == 3
    assert "再取込" in html and f"/imports/{imp.id}/download" in html


def test_detail_links_the_replaced_import(client, board):
    first = import_file(board.id, "20180516.csv", GOOD, channel="cli", sender=None)
    second = import_file(board.id, "20180516.csv", GOOD, channel="cli", sender=None)
    assert second.replaced_import_id == first.id
    html = client.get(f"/imports/{second.id}").get_data(as_text=True)
    assert f'href="/imports/{first.id}"' in html
    # The older one points forward to the import that replaced it.
    assert f'href="/imports/{second.id}"' in client.get(f"/imports/{first.id}").get_data(as_text=True)


def test_a_replaced_import_shows_replaced_and_links_to_the_one_that_replaced_it(client, board):
    first = import_file(board.id, "20180516.csv", GOOD, channel="cli", sender=None)
    second = import_file(board.id, "20180516.csv", GOOD, channel="cli", sender=None)
    third = import_file(board.id, "20180516.csv", GOOD, channel="cli", sender=None)
    other = import_file(board.id, "20180517.csv", GOOD, channel="cli", sender=None)
    # Recorded by the replacing import's transaction; an import replaced once keeps its first replacer.
    assert [db.session.get(Import, i.id).replaced_by_id for i in (first, second, third, other)] == [
        second.id, third.id, None, None]

    listed = client.get("/imports").get_data(as_text=True)
    rows = {int(n): row for row, n in re.findall(r'(<tr>(?:(?!</tr>).)*?href="/imports/(\d+)">詳細</a></td>\s*</tr>)',
                                                  listed, re.S)}
    assert f'<a class="badge replaced" href="/imports/{second.id}"' in rows[first.id]
    assert "置換済 → #" + str(second.id) in rows[first.id]
    assert "置換済" in rows[second.id] and "置換済" not in rows[third.id] and "置換済" not in rows[other.id]
    assert f'href="/imports/{second.id}" title="置換した取込">(#{second.id} を置換)' in rows[third.id]

    page = client.get(f"/imports/{second.id}").get_data(as_text=True)
    assert '<span class="badge replaced">置換済</span>' in page
    by = re.search(r'<dd id="replaced-by-import">(.*?)</dd>', page, re.S).group(1)
    assert f'href="/imports/{third.id}">#{third.id} 20180516.csv' in by
    assert f'href="/imports/{third.id}"' in re.search(r'<p class="flash flash-warning" id="replaced-by">(.*?)</p>',
                                                      page, re.S).group(1)
    back = re.search(r'<dt>置換した取込</dt><dd id="replaced-import">(.*?)</dd>', page, re.S).group(1)
    assert f'href="/imports/{first.id}">#{first.id} 20180516.csv' in back
    # The newest is not replaced and links back to the one it replaced.
    page = client.get(f"/imports/{third.id}").get_data(as_text=True)
    assert "置換済" not in page
    assert f'href="/imports/{second.id}"' in re.search(r'<dd id="replaced-import">(.*?)</dd>', page, re.S).group(1)


def test_a_failed_file_of_the_same_name_replaces_nothing(client, board):
    first = import_file(board.id, "20180516.csv", GOOD, channel="cli", sender=None)
    import_file(board.id, "20180516.csv", BAD, channel="cli", sender=None)
    assert db.session.get(Import, first.id).replaced_by_id is None
    assert "置換済" not in client.get(f"/imports/{first.id}").get_data(as_text=True)
    assert "置換済" not in client.get("/imports").get_data(as_text=True)


def test_queued_import_page_refreshes_itself(client, board):
    imp = ingest.receive(board.id, "20180516.csv", GOOD, channel="web", sender="admin@acme.example")
    response = client.get(f"/imports/{imp.id}")
    html = response.get_data(as_text=True)
    head = html.split("</head>")[0]
    assert '<meta http-equiv="refresh" content="2">' in head
    assert "待機中" in html

    runner.run_import(imp.id)
    response = client.get(f"/imports/{imp.id}")
    assert 'http-equiv="refresh"' not in response.get_data(as_text=True)


def test_download_returns_original_bytes_with_japanese_name(client, board):
    name = "5月売上 データ.csv"
    imp = import_file(board.id, name, BAD, channel="web", sender="admin@acme.example")
    response = client.get(f"/imports/{imp.id}/download")

    assert response.status_code == 200
    assert response.data == BAD
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert f"filename*=UTF-8''{quote(name)}" in disposition
    assert response.mimetype == "application/octet-stream"


def test_download_of_a_refusal_is_404(client, board):
    imp = ingest.record_refusal(board.id, channel="mail", filename="a.xlsx", sender="x@y.example",
                                status=Import.REFUSED, note="CSVではありません")
    assert client.get(f"/imports/{imp.id}/download").status_code == 404
    html = client.get(f"/imports/{imp.id}").get_data(as_text=True)
    assert "CSVではありません" in html and "拒否" in html
    assert f'action="/imports/{imp.id}/reimport"' not in html
    assert "元のファイルは保存されていません" in html


def test_reimport_queues_the_same_bytes(client, board):
    imp = import_file(board.id, "20180516.csv", GOOD, channel="cli", sender=None)
    response = client.post(f"/imports/{imp.id}/reimport")

    assert response.status_code == 302
    new_id = int(response.headers["Location"].rsplit("/", 1)[-1])
    assert new_id != imp.id
    new = db.session.get(Import, new_id)
    assert new.status == Import.QUEUED and new.filename == "20180516.csv" and files.read(new.id) == GOOD
    assert new.sender == "admin@acme.example"
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "再取込" in html and "待機中" in html

    # The worker would run it; it replaces the earlier import's rows.
    done = runner.run_import(new_id)
    assert done.status == Import.SUCCEEDED and done.replaced_import_id == imp.id
    assert line_count() == 2


def test_reimport_is_for_admins_only(client, board):
    imp = import_file(board.id, "20180516.csv", GOOD, channel="cli", sender=None)
    _viewer(board, client)
    html = client.get(f"/imports/{imp.id}").get_data(as_text=True)
    assert 'action="/imports/%d/reimport"' % imp.id not in html
    assert client.post(f"/imports/{imp.id}/reimport").status_code == 403
    assert db.session.scalar(db.select(db.func.count(Import.id))) == 1


def test_reimport_needs_the_csrf_token(app, client, board):
    imp = import_file(board.id, "20180516.csv", GOOD, channel="cli", sender=None)
    app.config["WTF_CSRF_ENABLED"] = True
    assert client.post(f"/imports/{imp.id}/reimport").status_code == 400
    html = client.get(f"/imports/{imp.id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    assert client.post(f"/imports/{imp.id}/reimport", data={"csrf_token": token}).status_code == 302
    assert db.session.scalar(db.select(db.func.count(Import.id))) == 2


def test_other_accounts_imports_are_404(client, board, make_account):
    other, _, _ = make_account("other")
    imp = ingest.receive(other.id, "20180516.csv", GOOD, channel="api", sender=None)
    assert client.get(f"/imports/{imp.id}").status_code == 404
    assert client.get(f"/imports/{imp.id}/download").status_code == 404
    assert client.post(f"/imports/{imp.id}/reimport").status_code == 404
    assert "まだ取込はありません" in client.get("/imports").get_data(as_text=True)


@pytest.mark.parametrize("url", ["/imports", "/imports/1", "/imports/1/download", "/outbox", "/upload", "/"])
def test_pages_need_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
