"""An API upload of Excel's 「Unicode テキスト」 (UTF-16LE, tabs) and of currency values (issue 15)."""
from __future__ import annotations

import io
from pathlib import Path


from app.extensions import db
from tests.fixtures.ingest import stored_lines

DATA = Path(__file__).resolve().parent.parent / "data" / "text"


def upload(client, headers, data: bytes, query: str = "?wait=1"):
    return client.post(f"/api/v1/imports{query}", headers=headers,
                       data={"file": (io.BytesIO(data), "20180516.csv")}, content_type="multipart/form-data")


def test_utf16_tab_separated_upload_is_imported(client, api_account, api_worker):
    response = upload(client, api_account.headers, (DATA / "results-utf16.txt").read_bytes())

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["status"], body["row_count"], body["errors"]) == ("succeeded", 4, [])
    db.session.rollback()
    stored = [line for _import_id, line in stored_lines(body["id"])]
    names = {column_id: name for name, column_id in api_account.column.items()}
    assert [({names[key]: value for key, value in row.values.items()}, row.note) for row in stored] == [
        ({"売上": 1200000, "粗利": -5000, "件数": 3}, "髙﨑①㈱～№"),
        ({"売上": 980000, "粗利": -12345}, "ｶﾌﾞｼｷｶﾞｲｼｬ 新規"),
        ({"売上": 450000, "粗利": -7500, "件数": 1234}, None),
        ({"売上": -100, "粗利": 2500, "件数": 0}, "タブ\t入り"),
    ]


def test_value_form_errors_come_back_with_their_messages(client, api_account, api_worker):
    data = "No.\t売上\t粗利\r\n1\t5,000-\t12％\r\n".encode("utf-16")

    response = upload(client, api_account.headers, data)

    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert [(e["line"], e["column"], e["value"]) for e in errors] == [(2, "売上", "5,000-"), (2, "粗利", "12％")]
    assert "末尾の「-」はマイナスとして読みません" in errors[0]["message"]
    assert errors[1]["message"].startswith("パーセントの値です")
