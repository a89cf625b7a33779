"""見本ファイル: downloads with the account's header of today, which import as they are once renamed."""
from __future__ import annotations

import csv
import io
import shutil
import subprocess
import zipfile
from urllib.parse import unquote

import pytest
import python_calamine

from app.extensions import db
from app.models import Import, User
from app.services import members, runner, users
from tests.fixtures.ingest import manual_upload, stored_lines

# Columns added in this order, then reordered: the sample follows the display order, not creation.
MEMBERS = [(3, "E003", "佐藤 一郎", "営業1課"), (1, "E001", "山田 太郎", "営業1課"),
           (2, "E002", "髙橋 花子", "営業2課"), (4, "E004", "鈴木 次郎", "営業2課")]


@pytest.fixture
def acme(make_account, login):
    made = make_account("acme", members=MEMBERS, columns=[("売上", "円"), ("件数", "件"), ("粗利", "円")])
    members.set_active(made.id, made.member[1], False)  # the first active members by No. are 2 and 3
    login(made.email)
    return made


def _csv_rows(data: bytes, encoding: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(encoding), newline="")))


def _stored(acc) -> dict[int, tuple[dict, str | None]]:
    """Stored results by member No.: ({column name: value}, 備考)."""
    db.session.expire_all()
    names = {column_id: name for name, column_id in acc.column.items()}
    numbers = {member_id: no for no, member_id in acc.member.items()}
    return {numbers[r.member_id]: ({names[k]: v for k, v in r.values.items()}, r.note)
            for _import_id, r in stored_lines()}


def test_cp932_csv_has_todays_header_and_two_real_keys(client, acme):
    response = client.get("/imports/sample.csv")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=Shift_JIS"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and "filename=sample_shift_jis.csv" in disposition
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == "見本_Shift_JIS.csv"
    data = response.data
    assert not data.startswith(b"\xef\xbb\xbf")
    assert data.decode("cp932").endswith("\r\n")
    assert _csv_rows(data, "cp932") == [
        ["No.", "売上", "件数", "粗利", "備考"],
        ["2", "0", "0", "0", "備考の例(空欄でも可)"],
        ["3", "0", "0", "0", ""],
    ]


def test_utf8_csv_starts_with_a_bom_and_follows_the_column_order(client, acme):
    from app.services import columns
    columns.reorder_columns(acme.id, {str(acme.column["粗利"]): 1, str(acme.column["売上"]): 2,
                                      str(acme.column["件数"]): 3})
    db.session.commit()

    data = client.get("/imports/sample-utf8.csv").data

    assert data.startswith(b"\xef\xbb\xbfNo.,")
    assert _csv_rows(data, "utf-8-sig")[0] == ["No.", "粗利", "売上", "件数", "備考"]


def test_employee_id_key_gives_the_employee_id_header_and_keys(client, make_account, login):
    made = make_account("beta", members=MEMBERS, columns=[("売上", "円")], member_key="employee_id",
                        error_to=["errors@beta.example"], senders=["s@beta.example"])
    login(made.email)

    rows = _csv_rows(client.get("/imports/sample.csv").data, "cp932")

    assert rows == [["社員ID", "売上", "備考"], ["E001", "0", "備考の例(空欄でも可)"], ["E002", "0", ""]]


def test_without_members_one_placeholder_row_says_what_to_do(client, make_account, login):
    made = make_account("empty", columns=[("売上", "円")])
    login(made.email)

    rows = _csv_rows(client.get("/imports/sample.csv").data, "cp932")

    assert rows[0] == ["No.", "売上", "備考"]
    assert rows[1][:2] == ["1", "0"] and "メンバー設定に登録したNo.に置き換えて" in rows[1][2]
    assert len(rows) == 2


def test_xlsx_reads_back_with_the_header_numbers_and_keys(client, acme):
    response = client.get("/imports/sample.xlsx")

    assert response.headers["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert unquote(response.headers["Content-Disposition"].split("filename*=UTF-8''")[1]) == "見本.xlsx"
    book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(response.data))
    assert book.sheet_names == ["Sheet1"]
    assert book.get_sheet_by_index(0).to_python() == [
        ["No.", "売上", "件数", "粗利", "備考"],
        [2.0, 0.0, 0.0, 0.0, "備考の例(空欄でも可)"],
        [3.0, 0.0, 0.0, 0.0, ""],
    ]


def test_csv_round_trip_through_the_upload_page(client, acme):
    rows = _csv_rows(client.get("/imports/sample.csv").data, "cp932")
    rows[1][1] = "12,345"  # the sender fills in a value
    rows[2][3] = "7"
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)

    response = manual_upload(client, "20180516.csv", buffer.getvalue().encode("cp932"))
    assert response.status_code == 302
    imp = db.session.scalars(db.select(Import)).one()
    runner.run_import(imp.id)

    db.session.refresh(imp)
    assert imp.status == Import.SUCCEEDED
    assert _stored(acme) == {2: ({"売上": 12345.0, "件数": 0.0, "粗利": 0.0}, "備考の例(空欄でも可)"),
                             3: ({"売上": 0.0, "件数": 0.0, "粗利": 7.0}, None)}


def test_xlsx_round_trip_through_the_upload_page(client, acme):
    data = client.get("/imports/sample.xlsx").data
    # The sender types a value into cell B2 (売上 of the first example row).
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        parts = {name: book.read(name) for name in book.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    assert sheet.count('<c r="B2"><v>0</v></c>') == 1
    parts["xl/worksheets/sheet1.xml"] = sheet.replace('<c r="B2"><v>0</v></c>', '<c r="B2"><v>98765</v></c>').encode()
    filled = io.BytesIO()
    with zipfile.ZipFile(filled, "w") as book:
        for name, content in parts.items():
            book.writestr(name, content)

    assert manual_upload(client, "20180516.xlsx", filled.getvalue()).status_code == 302
    imp = db.session.scalars(db.select(Import)).one()
    runner.run_import(imp.id)

    db.session.refresh(imp)
    assert imp.status == Import.SUCCEEDED
    assert _stored(acme)[2] == ({"売上": 98765.0, "件数": 0.0, "粗利": 0.0}, "備考の例(空欄でも可)")


def test_xlsx_sheet_is_the_one_the_import_reads(client, make_account, login):
    made = make_account("gamma", members=MEMBERS, columns=[("売上", "円")], sheet_name="実績",
                        error_to=["errors@gamma.example"], senders=["s@gamma.example"])
    login(made.email)

    book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(client.get("/imports/sample.xlsx").data))

    assert book.sheet_names == ["実績"]


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (soffice) is not installed")
def test_libreoffice_opens_the_xlsx(client, acme, tmp_path):
    (tmp_path / "sample.xlsx").write_bytes(client.get("/imports/sample.xlsx").data)

    subprocess.run(["soffice", f"-env:UserInstallation=file://{tmp_path}/profile", "--headless",
                    "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76", "--outdir", str(tmp_path),
                    str(tmp_path / "sample.xlsx")], check=True, capture_output=True, timeout=120)

    rows = _csv_rows((tmp_path / "sample.csv").read_bytes(), "utf-8")
    assert rows == [["No.", "売上", "件数", "粗利", "備考"], ["2", "0", "0", "0", "備考の例(空欄でも可)"],
                    ["3", "0", "0", "0", ""]]


def test_any_role_may_download_and_the_pages_link_it(client, acme):
    users.create_user(acme.id, "viewer@acme.example", "password-123", User.VIEWER)
    db.session.commit()
    client.post("/logout")
    client.post("/login", data={"email": "viewer@acme.example", "password": "password-123"})

    assert client.get("/imports/sample.xlsx").status_code == 200
    assert _csv_rows(client.get("/imports/sample.csv").data, "cp932")[1][0] == "2"
    html = client.get("/settings/integration").get_data(as_text=True)
    assert 'href="/imports/sample.csv"' in html and 'href="/imports/sample.xlsx"' in html
    assert "yyyymmdd.csv" in html and "今の見出し:<code>No.,売上,件数,粗利,備考</code>" in html


def test_upload_page_links_the_samples(client, acme):
    html = client.get("/upload").get_data(as_text=True)
    assert "見本ファイル" in html and "今の見出し:<code>No.,売上,件数,粗利,備考</code>" in html
    for fmt in ("sample.csv", "sample-utf8.csv", "sample.xlsx"):
        assert f'href="/imports/{fmt}"' in html


def test_login_is_required(client, acme):
    client.post("/logout")
    for fmt in ("sample.csv", "sample-utf8.csv", "sample.xlsx"):
        response = client.get(f"/imports/{fmt}")
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_unknown_format_is_404(client, acme):
    assert client.get("/imports/sample.pdf").status_code == 404


def test_another_accounts_data_never_appears(client, make_account, login, acme):
    other = make_account("other", members=[(901, "X901", "他社 太郎")], columns=[("他社列", "円")])
    client.post("/logout")
    login(other.email)

    for fmt, encoding in (("sample.csv", "cp932"), ("sample-utf8.csv", "utf-8-sig")):
        rows = _csv_rows(client.get(f"/imports/{fmt}").data, encoding)
        assert rows == [["No.", "他社列", "備考"], ["901", "0", "備考の例(空欄でも可)"]]
    sheet = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(client.get("/imports/sample.xlsx").data))
    text = repr(sheet.get_sheet_by_index(0).to_python())
    assert "他社列" in text and "売上" not in text and "2.0" not in text


def test_a_name_shift_jis_cannot_hold_asks_for_utf8(client, acme):
    from app.services import columns
    columns.add_column(acme.id, "売上😀", "円")
    db.session.commit()

    response = client.get("/imports/sample.csv")

    assert response.status_code == 422
    assert "Shift_JISで書けない文字" in response.get_data(as_text=True)
    assert "売上😀" in _csv_rows(client.get("/imports/sample-utf8.csv").data, "utf-8-sig")[0]


def test_the_error_mail_link_downloads_the_sample(app, client, make_account, login):
    from app.models import OutboxMail
    from tests.fixtures.ingest import csv_file, ingest_options

    acc = make_account("delta", **ingest_options())
    login(acc.email)
    assert manual_upload(client, "20180516.csv", csv_file([[1, "abc", 1, 1, ""]])).status_code == 302
    runner.run_import(db.session.scalars(db.select(Import)).one().id)

    body = db.session.scalars(db.select(OutboxMail)).one().body
    [link] = [line for line in body.splitlines() if "/imports/sample." in line]
    assert link.startswith(app.config["PUBLIC_URL"])
    rows = _csv_rows(client.get(link.removeprefix(app.config["PUBLIC_URL"])).data, "cp932")
    assert rows[0] == ["No.", "売上", "粗利", "件数", "備考"]
