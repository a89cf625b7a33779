"""設定 > グラフ設定 through the browser: list, add, edit, reorder, delete, name rules, viewer limits."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.models import User
from app.services import columns as column_service
from app.services import users as user_service


def stored(account_id: int) -> list[tuple]:
    db.session.expire_all()
    return [(c.name, c.unit, c.position) for c in column_service.list_columns(account_id)]


def test_add_columns_go_last_and_show_in_order(client, admin):
    for name, unit in (("売上", "円"), ("粗利", "円"), ("件数", "件")):
        response = client.post("/settings/columns/new", data={"name": name, "unit": unit, "position": ""},
                               follow_redirects=True)
        assert f"グラフ列「{name}」を追加しました。" in response.get_data(as_text=True)
    html = client.get("/settings/columns").get_data(as_text=True)
    assert html.index("売上") < html.index("粗利") < html.index("件数")
    assert stored(admin.id) == [("売上", "円", 1), ("粗利", "円", 2), ("件数", "件", 3)]


def test_names_are_stored_normalized_and_compared_after_nfkc(client, admin):
    client.post("/settings/columns/new", data={"name": " ｳﾘｱｹﾞ ", "unit": "円"})
    assert stored(admin.id) == [("ウリアゲ", "円", 1)]
    html = client.post("/settings/columns/new", data={"name": "ウリアゲ"}).get_data(as_text=True)
    assert "「ウリアゲ」という列は既にあります。" in html
    html = client.post("/settings/columns/new", data={"name": "　ｳﾘｱｹﾞ"}).get_data(as_text=True)
    assert "既にあります" in html
    assert len(stored(admin.id)) == 1


@pytest.mark.parametrize("name", ["備考", "No.", "Ｎｏ．", "no", "社員ID", "社員ＩＤ", "  "])
def test_reserved_or_empty_names_are_refused(client, admin, name):
    html = client.post("/settings/columns/new", data={"name": name}).get_data(as_text=True)
    assert ("グラフ列の名前には使えません" in html) or ("名前を入力してください。" in html)
    assert stored(admin.id) == []


@pytest.mark.parametrize("name", ["=1+1", "-2+3", "+1", "@SUM(1+1)", "＝1+1", "－1"])
def test_names_a_spreadsheet_would_run_as_a_formula_are_refused(client, admin, name):
    html = client.post("/settings/columns/new", data={"name": name}).get_data(as_text=True)
    assert "グラフ列の名前は「=」「+」「-」「@」で始められません(表計算ソフトで開いたときに数式として実行されるため)。" in html
    assert stored(admin.id) == []


def test_a_column_cannot_be_renamed_to_a_formula(client, admin):
    column = column_service.add_column(admin.id, "売上", "円")
    html = client.post(f"/settings/columns/{column.id}/edit", data={"name": "=HYPERLINK(\"x\")", "unit": "円"}
                       ).get_data(as_text=True)
    assert "で始められません" in html
    assert stored(admin.id) == [("売上", "円", 1)]


def test_position_must_be_a_number(client, admin):
    html = client.post("/settings/columns/new", data={"name": "売上", "position": "first"}).get_data(as_text=True)
    assert "表示順は0以上の整数で入力してください。" in html
    assert stored(admin.id) == []


def test_edit_name_unit_and_position(client, admin):
    a = column_service.add_column(admin.id, "売上", "円")
    column_service.add_column(admin.id, "件数", "件")
    page = client.get(f"/settings/columns/{a.id}/edit").get_data(as_text=True)
    assert 'value="売上"' in page and "を削除する" in page
    response = client.post(f"/settings/columns/{a.id}/edit", data={"name": "売上高", "unit": "千円", "position": "5"},
                           follow_redirects=True)
    assert "グラフ列「売上高」を更新しました。" in response.get_data(as_text=True)
    assert stored(admin.id) == [("件数", "件", 2), ("売上高", "千円", 5)]
    # Renaming onto another column's name is refused; keeping one's own name is fine.
    html = client.post(f"/settings/columns/{a.id}/edit", data={"name": "件数"}).get_data(as_text=True)
    assert "「件数」という列は既にあります。" in html
    assert client.post(f"/settings/columns/{a.id}/edit", data={"name": "売上高", "unit": "円"}).status_code == 302
    assert stored(admin.id)[1] == ("売上高", "円", 5)


def test_reorder_with_the_position_numbers(client, admin):
    a = column_service.add_column(admin.id, "売上")
    b = column_service.add_column(admin.id, "粗利")
    c = column_service.add_column(admin.id, "件数")
    html = client.post("/settings/columns/order",
                       data={f"position-{a.id}": "3", f"position-{b.id}": "１", f"position-{c.id}": "2"},
                       follow_redirects=True).get_data(as_text=True)
    assert "表示順を保存しました。" in html
    assert [name for name, _, _ in stored(admin.id)] == ["粗利", "件数", "売上"]
    html = client.post("/settings/columns/order", data={f"position-{a.id}": "x", f"position-{b.id}": "9"},
                       follow_redirects=True).get_data(as_text=True)
    assert "「売上」の表示順は0以上の整数で入力してください。" in html
    assert [name for name, _, _ in stored(admin.id)] == ["粗利", "件数", "売上"]


def test_reorder_cannot_touch_another_accounts_column(client, admin, make_account):
    other, _, _ = make_account("other")
    theirs = column_service.add_column(other.id, "売上")
    html = client.post("/settings/columns/order", data={f"position-{theirs.id}": "99"},
                       follow_redirects=True).get_data(as_text=True)
    assert "グラフ列が見つかりません" in html
    assert stored(other.id) == [("売上", "", 1)]


def test_delete_column(client, admin):
    a = column_service.add_column(admin.id, "売上", "円")
    column_service.add_column(admin.id, "件数", "件")
    response = client.post(f"/settings/columns/{a.id}/delete", follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "グラフ列「売上」を削除しました。" in html
    assert stored(admin.id) == [("件数", "件", 2)]
    assert client.post(f"/settings/columns/{a.id}/delete").status_code == 404


def test_empty_list_says_so(client, admin):
    assert "グラフ列がありません" in client.get("/settings/columns").get_data(as_text=True)


def test_viewer_sees_columns_but_cannot_change_them(client, make_account, login):
    account, _, _ = make_account("acme")
    column = column_service.add_column(account.id, "売上", "円")
    user_service.create_user(account.id, "viewer@acme.example", "password-123", User.VIEWER)
    login("viewer@acme.example")
    html = client.get("/settings/columns").get_data(as_text=True)
    assert "売上" in html and "円" in html
    assert "グラフ列を追加" not in html and "表示順を保存" not in html and "編集" not in html
    assert client.get("/settings/columns/new").status_code == 403
    assert client.post("/settings/columns/new", data={"name": "粗利"}).status_code == 403
    assert client.post(f"/settings/columns/{column.id}/edit", data={"name": "X"}).status_code == 403
    assert client.post(f"/settings/columns/{column.id}/delete").status_code == 403
    assert client.post("/settings/columns/order", data={f"position-{column.id}": "9"}).status_code == 403
    assert stored(account.id) == [("売上", "円", 1)]
