"""設定 > メンバー設定 through the browser: list, add, edit, deactivate, CSV bulk load, viewer limits."""
from __future__ import annotations

import io
import re
from html import unescape

import pytest

from app.extensions import db
from app.models import User
from app.services import members as member_service
from app.services import users as user_service

HEADER = "No.,社員ID,氏名,部署,メールアドレス\r\n"


def stored(account_id: int) -> list[tuple]:
    db.session.expire_all()
    return [
        (m.no, m.employee_id, m.name, m.department, m.email, m.active)
        for m in member_service.list_members(account_id)
    ]


def upload(client, data: bytes, filename: str = "members.csv"):
    return client.post(
        "/settings/members/import",
        data={"file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
        follow_redirects=True,
    )


def error_rows(html: str) -> list[tuple[str, str, str, str]]:
    """The (line, column, value, message) rows of the error table, as the user reads them."""
    section = html.split('id="import-errors"', 1)[1]
    cells = re.findall(r"<tr>\s*<td[^>]*>(.*?)</td>\s*<td[^>]*>(.*?)</td>\s*<td[^>]*>(.*?)</td>\s*<td[^>]*>(.*?)</td>",
                       section, re.S)
    return [tuple(c.strip() for c in row) for row in cells]


def test_list_is_sorted_by_no_and_shows_every_field(client, admin):
    member_service.create_member(admin.id, 10, "E010", "鈴木 次郎", "営業2部", "suzuki@example.com")
    member_service.create_member(admin.id, 2, "00002", "山田 太郎", "営業1部", None)
    member_service.set_active(admin.id, member_service.create_member(admin.id, 5, None, "佐藤 花子").id, False)
    html = client.get("/settings/members").get_data(as_text=True)
    assert html.index("山田 太郎") < html.index("佐藤 花子") < html.index("鈴木 次郎")
    for text in ("00002", "営業1部", "E010", "suzuki@example.com", "有効", "無効", "メンバーを追加", "CSVで一括登録"):
        assert text in html
    for header in ("No.", "社員ID", "氏名", "部署", "メールアドレス", "状態"):
        assert "<th" in html and header in html


def test_empty_list_says_so(client, admin):
    assert "メンバーが登録されていません" in client.get("/settings/members").get_data(as_text=True)


def test_add_member_stores_it_and_shows_it(client, admin):
    response = client.post(
        "/settings/members/new",
        data={"no": "３", "employee_id": "000123", "name": " 髙橋 一郎 ", "department": "営業①課",
              "email": "takahashi@example.com"},
        follow_redirects=True,
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "メンバー「髙橋 一郎」(No.3)を追加しました" in html
    assert "000123" in html
    assert stored(admin.id) == [(3, "000123", "髙橋 一郎", "営業①課", "takahashi@example.com", True)]


def test_add_member_shows_every_field_error_and_stores_nothing(client, admin):
    member_service.create_member(admin.id, 1, "E001", "既存 太郎")
    response = client.post(
        "/settings/members/new",
        data={"no": "1", "employee_id": "E001", "name": "  ", "email": "not-an-address"},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "No.1 は既に使われています。" in html
    assert "社員ID「E001」は既に使われています。" in html
    assert "氏名を入力してください。" in html
    assert "メールアドレス「not-an-address」の形式が正しくありません。" in html
    assert len(stored(admin.id)) == 1


@pytest.mark.parametrize("key", ["=HYPERLINK(\"http://evil.example\")", "@SUM(1+1)", "-2+3", "-123", "+81"])
def test_an_employee_id_a_spreadsheet_would_run_is_refused(client, admin, key):
    html = client.post("/settings/members/new", data={"no": "1", "employee_id": key, "name": "山田"}
                       ).get_data(as_text=True)
    assert "社員IDは「=」「+」「-」「@」で始められません(表計算ソフトで開いたときに数式として実行されるため)。" in html
    assert stored(admin.id) == []


def test_an_employee_id_cannot_be_changed_to_a_formula(client, admin):
    member = member_service.create_member(admin.id, 1, "E001", "山田")
    html = client.post(f"/settings/members/{member.id}/edit", data={"no": "1", "employee_id": "=1+1", "name": "山田"}
                       ).get_data(as_text=True)
    assert "社員IDは「=」「+」「-」「@」で始められません" in html
    assert stored(admin.id) == [(1, "E001", "山田", None, None, True)]


def test_the_member_csv_refuses_a_formula_key_and_stores_nothing(client, admin):
    html = upload(client, (HEADER + "1,E001,山田,,\r\n2,@SUM(1+1),田中,,\r\n").encode("cp932")).get_data(as_text=True)
    assert "取り込めませんでした(1 件のエラー)" in html
    assert "社員IDは「=」「+」「-」「@」で始められません" in html and "@SUM(1+1)" in html
    assert stored(admin.id) == []


@pytest.mark.parametrize("no", ["0", "-1", "abc", "", "1.5"])
def test_no_must_be_a_positive_integer(client, admin, no):
    html = client.post("/settings/members/new", data={"no": no, "name": "山田"}).get_data(as_text=True)
    assert "No.は1以上の整数で入力してください。" in html
    assert stored(admin.id) == []


def test_edit_member(client, admin):
    member = member_service.create_member(admin.id, 1, "E001", "山田 太郎", "営業1部", None)
    page = client.get(f"/settings/members/{member.id}/edit").get_data(as_text=True)
    assert 'value="山田 太郎"' in page and 'value="E001"' in page
    response = client.post(
        f"/settings/members/{member.id}/edit",
        data={"no": "7", "employee_id": "0007", "name": "山田 太郎", "department": "", "email": "y@example.com"},
        follow_redirects=True,
    )
    assert "を更新しました" in response.get_data(as_text=True)
    assert stored(admin.id) == [(7, "0007", "山田 太郎", None, "y@example.com", True)]


def test_edit_keeping_own_no_and_employee_id_is_fine_but_taking_anothers_is_not(client, admin):
    a = member_service.create_member(admin.id, 1, "E001", "A")
    member_service.create_member(admin.id, 2, "E002", "B")
    ok = client.post(f"/settings/members/{a.id}/edit", data={"no": "1", "employee_id": "E001", "name": "A2"})
    assert ok.status_code == 302
    clash = client.post(f"/settings/members/{a.id}/edit", data={"no": "2", "employee_id": "E002", "name": "A3"})
    html = clash.get_data(as_text=True)
    assert "No.2 は既に使われています。" in html and "社員ID「E002」は既に使われています。" in html
    assert stored(admin.id)[0][:3] == (1, "E001", "A2")


def test_deactivate_and_reactivate(client, admin):
    member = member_service.create_member(admin.id, 1, "E001", "山田 太郎")
    html = client.post(f"/settings/members/{member.id}/deactivate", follow_redirects=True).get_data(as_text=True)
    assert "を無効にしました" in html and "有効にする" in html
    assert stored(admin.id)[0][-1] is False
    html = client.post(f"/settings/members/{member.id}/reactivate", follow_redirects=True).get_data(as_text=True)
    assert "を有効にしました" in html
    assert stored(admin.id)[0][-1] is True


def test_unknown_member_is_404(client, admin):
    assert client.get("/settings/members/999/edit").status_code == 404
    assert client.post("/settings/members/999/deactivate").status_code == 404


# --- CSV bulk load -------------------------------------------------------------------------

def test_import_cp932_keeps_every_character_exactly(client, admin):
    data = (HEADER
            + "1,00123,髙橋 一郎,営業①課,takahashi@example.com\r\n"
            + "2,,ｶﾀｶﾅ ﾀﾛｳ,ｿﾌﾄ部,\r\n"
            + "3,E003,山﨑 №１,㈱本社～東京,\r\n").encode("cp932")
    html = upload(client, data).get_data(as_text=True)
    assert "メンバーを取り込みました(追加 3 件、更新 0 件)" in html
    assert stored(admin.id) == [
        (1, "00123", "髙橋 一郎", "営業①課", "takahashi@example.com", True),
        (2, None, "ｶﾀｶﾅ ﾀﾛｳ", "ｿﾌﾄ部", None, True),
        (3, "E003", "山﨑 №１", "㈱本社～東京", None, True),
    ]
    for text in ("髙橋 一郎", "営業①課", "ｶﾀｶﾅ ﾀﾛｳ", "00123", "山﨑 №１"):
        assert text in html


def test_import_utf8_with_and_without_bom(client, admin):
    upload(client, (HEADER + "1,E1,髙橋 一郎,営業,\n").encode("utf-8"))
    html = upload(client, ("\ufeff" + HEADER + "2,E2,ｶﾀｶﾅ,営業,\n").encode("utf-8")).get_data(as_text=True)
    assert "追加 1 件" in html
    assert [row[:3] for row in stored(admin.id)] == [(1, "E1", "髙橋 一郎"), (2, "E2", "ｶﾀｶﾅ")]


def test_import_upserts_by_no_and_keeps_members_not_in_the_file(client, admin):
    member_service.create_member(admin.id, 1, "E001", "旧 一郎", "旧部署", "old@example.com")
    member_service.create_member(admin.id, 9, "E009", "残る 九郎")
    data = (HEADER + "1,E001,新 一郎,新部署,\r\n" + "2,E002,追加 二郎,営業,\r\n").encode("cp932")
    html = upload(client, data).get_data(as_text=True)
    assert "追加 1 件、更新 1 件" in html
    assert stored(admin.id) == [
        (1, "E001", "新 一郎", "新部署", None, True),
        (2, "E002", "追加 二郎", "営業", None, True),
        (9, "E009", "残る 九郎", None, None, True),
    ]


def test_import_can_swap_employee_ids_between_members(client, admin):
    member_service.create_member(admin.id, 1, "E001", "一郎")
    member_service.create_member(admin.id, 2, "E002", "二郎")
    upload(client, (HEADER + "1,E002,一郎,,\n2,E001,二郎,,\n").encode())
    assert [row[:2] for row in stored(admin.id)] == [(1, "E002"), (2, "E001")]


def test_import_with_errors_lists_every_error_with_line_numbers_and_stores_nothing(client, admin):
    member_service.create_member(admin.id, 50, "E050", "既存 五十郎")
    data = (HEADER
            + "1,E001,正しい 一郎,営業,\r\n"          # line 2: fine
            + "0,E002,ゼロ,営業,\r\n"                 # line 3: No. not positive
            + "3,E003,,営業,\r\n"                     # line 4: 氏名 missing
            + "1,E004,重複,営業,\r\n"                 # line 5: No. repeats line 2
            + "5,E005,メール,営業,bad address\r\n"     # line 6: email
            + "6,E050,社員ID衝突,営業,\r\n"            # line 7: 社員ID of No.50 kept by the account
            ).encode("cp932")
    response = upload(client, data)
    html = response.get_data(as_text=True)
    assert "取り込めませんでした(5 件のエラー)。何も保存していません。" in html
    rows = error_rows(html)
    assert [(line, column) for line, column, _, _ in rows] == [
        ("3", "No."), ("4", "氏名"), ("5", "No."), ("6", "メールアドレス"), ("7", "社員ID"),
    ]
    assert rows[0][2] == "0" and rows[3][2] == "bad address" and rows[4][2] == "E050"
    assert "2行目と重複" in rows[2][3]
    assert "No.50" in rows[4][3]
    assert stored(admin.id) == [(50, "E050", "既存 五十郎", None, None, True)]


def test_import_reports_a_format_error_and_a_duplicate_employee_id_together(client, admin):
    data = (HEADER
            + "1,E001,一郎,営業,\r\n"                   # line 2: fine
            + "x,E002,二郎,営業,\r\n"                   # line 3: No. is no number
            + '3,"E003"z,三郎,営業,\r\n'                # line 4: CSV syntax (text after a closing quote)
            + "4,E001,四郎,営業,\r\n"                   # line 5: 社員ID repeats line 2
            + "5,E005,五郎,営業,not-an-address\r\n"     # line 6: email
            ).encode("utf-8")
    html = upload(client, data).get_data(as_text=True)
    assert "取り込めませんでした(4 件のエラー)。何も保存していません。" in html
    rows = error_rows(html)
    assert [(line, column, unescape(value)) for line, column, value, _ in rows] == [
        ("3", "No.", "x"), ("4", "", '3,"E003"z,三郎,営業,'), ("5", "社員ID", "E001"),
        ("6", "メールアドレス", "not-an-address")]
    assert "No.は1以上の整数" in rows[0][3] and "CSVの形式が正しくありません" in rows[1][3]
    assert "社員IDが2行目と重複しています" in rows[2][3]
    assert "ほかに" not in html
    assert stored(admin.id) == []


def test_import_lists_the_first_100_errors_and_says_how_many_more(client, admin):
    member_service.create_member(admin.id, 900, "E900", "既存")
    lines = "".join(f"{no},E{no:03},,営業,\r\n" for no in range(1, 131))  # 130 lines without 氏名
    data = (HEADER + lines + "131,E900,衝突,,\r\n").encode("utf-8")     # and a 社員ID No.900 keeps
    html = upload(client, data).get_data(as_text=True)
    assert "取り込めませんでした(131 件のエラー)" in html
    rows = error_rows(html)
    assert len(rows) == 100 and [row[0] for row in rows] == [str(line) for line in range(2, 102)]
    assert "ほかに 31 件のエラーがあります(最初の 100 件を表示しています)。" in html
    assert [row[:3] for row in stored(admin.id)] == [(900, "E900", "既存")]


def test_import_wrong_header_is_rejected(client, admin):
    html = upload(client, "社員ID,氏名\nE1,山田\n".encode()).get_data(as_text=True)
    assert "見出し行は「No.,社員ID,氏名,部署,メールアドレス」にしてください" in html
    assert stored(admin.id) == []


def test_import_without_file_asks_for_one(client, admin):
    response = client.post("/settings/members/import", data={}, content_type="multipart/form-data")
    assert "CSVファイルを選んでください。" in response.get_data(as_text=True)


def test_import_of_an_excel_file_explains_itself(client, admin):
    html = upload(client, b"PK\x03\x04rest-of-a-zip", "members.xlsx").get_data(as_text=True)
    assert "CSV(コンマ区切り)" in html
    assert stored(admin.id) == []


# --- viewers ---------------------------------------------------------------------------------

def test_viewer_sees_the_list_but_cannot_change_anything(client, make_account, login):
    account, _, _ = make_account("acme")
    member = member_service.create_member(account.id, 1, "E001", "山田 太郎")
    user_service.create_user(account.id, "viewer@acme.example", "password-123", User.VIEWER)
    login("viewer@acme.example")
    html = client.get("/settings/members").get_data(as_text=True)
    assert "山田 太郎" in html
    assert "メンバーを追加" not in html and "CSVで一括登録" not in html and "無効にする" not in html
    assert client.get("/settings/members/new").status_code == 403
    assert client.post("/settings/members/new", data={"no": "2", "name": "X"}).status_code == 403
    assert client.get(f"/settings/members/{member.id}/edit").status_code == 403
    assert client.post(f"/settings/members/{member.id}/edit", data={"no": "1", "name": "X"}).status_code == 403
    assert client.post(f"/settings/members/{member.id}/deactivate").status_code == 403
    assert client.post(f"/settings/members/{member.id}/reactivate").status_code == 403
    response = client.post("/settings/members/import", data={"file": (io.BytesIO((HEADER + "2,,X,,\n").encode()), "m.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 403
    assert stored(account.id) == [(1, "E001", "山田 太郎", None, None, True)]


def test_member_addresses_follow_the_one_address_rule_in_the_form_and_the_csv(client, admin):
    from tests.fixtures.addresses import INVALID, VALID

    for no, (typed, _) in enumerate(VALID, start=1):
        response = client.post("/settings/members/new", data={"no": str(no), "name": f"メンバー{no}", "email": typed})
        assert response.status_code == 302, response.get_data(as_text=True)
    assert [m[4] for m in stored(admin.id)] == [normal for _, normal in VALID]
    rows = "".join(f"{100 + n},,CSV{n},,{typed}\r\n" for n, (typed, _) in enumerate(VALID) if "," not in typed)
    upload(client, (HEADER + rows).encode("utf-8"))
    assert [m[4] for m in stored(admin.id) if m[0] >= 100] == [normal for _, normal in VALID]
    for typed in (t for t in INVALID if t.strip() and "," not in t and '"' not in t):
        html = upload(client, (HEADER + f"500,,X,,{typed}\r\n").encode("utf-8")).get_data(as_text=True)
        assert "メールアドレスの形式が正しくありません" in html and "何も保存していません" in html, typed
    assert all(m[0] != 500 for m in stored(admin.id))
