"""検証のみ's preview: the first 20 rows as they would be stored, the totals over every valid row, the ignored headers."""
from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest

from app.extensions import db
from app.models import Import
from app.services import ingest
from app.services.preview import PREVIEW_ROWS
from tests.data.workbooks import make
from tests.fixtures.ingest import csv_file, ingest_options, line_count, manual_upload

WORKBOOKS = Path(make.__file__).parent
NOTE = "髙 ① ～ ㈱ 﨑 № ｶﾅ"


def _dry_run(client, name: str, data: bytes) -> str:
    response = manual_upload(client, name, data, dry_run=True)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _cells(html: str, part: str) -> list[list[str]]:
    """The cells of each row of `part` (thead, tbody or tfoot) of every preview table, tags stripped."""
    found = []
    for table in re.findall(r'<table class="preview">(.*?)</table>', html, re.DOTALL):
        section = re.search(rf"<{part}>(.*?)</{part}>", table, re.DOTALL).group(1)
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", section, re.DOTALL):
            found.append([re.sub(r"<[^>]+>", "", cell).strip()
                          for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.DOTALL)])
    return found


def _counts() -> tuple[int, int]:
    return (db.session.scalar(db.select(db.func.count(Import.id))),
            line_count())


@pytest.fixture
def acme(make_account, login):
    made = make_account("acme", **ingest_options())
    login(made.email)
    return made


def test_a_csv_shows_its_rows_as_stored_in_the_column_order_with_totals(client, acme):
    # The file's order is 件数, 売上; the screen shows the account's order (売上, 粗利, 件数) like the board.
    data = csv_file([[2, 1, "1,200,000", "㈱髙﨑①"], [1, 3, 980000.5, ""], [3, "", 0, ""]],
                    header=["No.", "件数", "売上", "備考"])
    html = _dry_run(client, "20180516.csv", data)

    assert "エラーはありません" in html
    assert _cells(html, "thead") == [["行", "氏名", "売上(円)", "件数(件)", "備考"]]
    assert _cells(html, "tbody") == [
        ["2", "鈴木 花子", "1,200,000", "1", "㈱髙﨑①"],
        ["3", "山田 太郎", "980,000.5", "3", ""],
        ["4", "髙橋 一郎", "0", "", ""],
    ]
    assert _cells(html, "tfoot") == [["合計", "2,180,000.5", "4", ""]]
    assert 'class="table-wrap scroll"' in html and "何も保存していません" in html
    assert _counts() == (0, 0)


@pytest.mark.parametrize("ending", ["xlsx", "xls", "ods"])
def test_a_workbook_shows_its_rows_as_stored(client, acme, ending):
    html = _dry_run(client, f"20180516.{ending}", (WORKBOOKS / f"20180516.{ending}").read_bytes())

    assert _cells(html, "thead") == [["行", "氏名", "売上(円)", "粗利(円)", "件数(件)", "備考"]]
    assert _cells(html, "tbody") == [
        ["2", "山田 太郎", "1,200,000", "-5,000", "2", NOTE],
        ["3", "鈴木 花子", "980,000", "", "3", "ｶﾅ"],
        ["4", "髙橋 一郎", "2,180,000", "0", "1", ""],
    ]
    assert _cells(html, "tfoot") == [["合計", "4,360,000", "-5,000", "6", ""]]
    assert _counts() == (0, 0)


def test_only_the_first_rows_are_shown_and_the_totals_count_every_valid_row(client, acme):
    rows = [[1 + n % 3, 1000, 1, f"行{n}"] for n in range(PREVIEW_ROWS + 15)] + [[99, 5, 5, "会員なし"]]
    html = _dry_run(client, "20180516.csv", csv_file(rows, header=["No.", "売上", "件数", "備考"]))

    body = _cells(html, "tbody")
    assert len(body) == PREVIEW_ROWS and body[0][0] == "2" and body[-1] == ["21", "鈴木 花子", "1,000", "1", "行19"]
    # 35 valid rows; the unknown No. 99 is an error and is in neither the rows nor the totals.
    assert _cells(html, "tfoot") == [["合計", "35,000", "35", ""]]
    assert "1 件のエラー" in html and f"全 35 行のうち先頭 {PREVIEW_ROWS} 行" in html
    assert _counts() == (0, 0)


def test_the_ignored_headers_are_listed(client, make_account, login):
    acc = make_account("acme", **ingest_options(extra_columns="ignore"))
    login(acc.email)
    data = csv_file([[1, 100, "x", 2, "y"]], header=["No.", "売上", "部署", "件数", "担当"])
    html = _dry_run(client, "20180516.csv", data)

    assert "エラーはありません" in html
    assert "無視した見出し(見出しにない列):<code>部署</code>、<code>担当</code>" in html
    assert _cells(html, "tbody") == [["2", "山田 太郎", "100", "2", ""]]
    assert _counts() == (0, 0)


def test_an_archive_shows_each_file_with_its_own_preview(client, acme):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("20180516.csv", csv_file([[1, 100, 1, ""]], header=["No.", "売上", "件数", "備考"]))
        archive.writestr("20180517.csv", csv_file([[2, 200, 2, "b"], [3, 300, 3, ""]],
                                                  header=["No.", "売上", "件数", "備考"]))
    html = _dry_run(client, "results.zip", buffer.getvalue())

    assert "エラーはありません" in html
    assert "保存される内容:20180516.csv" in html and "保存される内容:20180517.csv" in html
    assert _cells(html, "tbody") == [["2", "山田 太郎", "100", "1", ""],
                                     ["2", "鈴木 花子", "200", "2", "b"], ["3", "髙橋 一郎", "300", "3", ""]]
    assert _cells(html, "tfoot") == [["合計", "100", "1", ""], ["合計", "500", "5", ""]]
    assert _counts() == (0, 0)


def test_the_dry_run_keeps_only_the_first_rows(app, acme):
    rows = [[1 + n % 3, n, 1, ""] for n in range(500)]
    result = ingest.dry_run(acme.id, "20180516.csv", csv_file(rows, header=["No.", "売上", "件数", "備考"]))

    assert result.rows == 500 and len(result.preview.rows) == PREVIEW_ROWS
    assert result.preview.totals == [sum(range(500)), 500]
    assert _counts() == (0, 0)
