"""別名 in グラフ設定 and 見出しにない列 / メンバー識別IDの見出しの別名 on 外部連携設定, with CSRF on."""
from __future__ import annotations

import re
from html import unescape

import pytest

from app.extensions import db
from app.models import SettingsChange
from app.services import columns as column_service
from app.services import integration as integration_service


@pytest.fixture
def admin(app, make_account, login):
    """The admin logged in; from then on every POST needs its CSRF token, as in production."""
    made = make_account("acme", columns=[("売上", "円"), ("件数", "件")])
    login(made.email)
    app.config["WTF_CSRF_ENABLED"] = True
    yield made
    app.config["WTF_CSRF_ENABLED"] = False


def token(client, url: str) -> str:
    html = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "no csrf_token in the form"
    return match.group(1)


def aliases_of(column_id: int) -> list[str]:
    db.session.expire_all()
    return column_service.get_column(db.session.get(column_service.GraphColumn, column_id).account_id,
                                     column_id).aliases


def test_aliases_are_saved_from_the_edit_page_and_listed(client, admin):
    url = f"/settings/columns/{admin.column['売上']}/edit"
    data = {"name": "売上", "unit": "円", "position": "", "aliases": "売上金額，ｳﾘｱｹﾞ、 売上高 "}
    assert client.post(url, data=data).status_code == 400  # no CSRF token
    assert aliases_of(admin.column["売上"]) == []
    response = client.post(url, data={**data, "csrf_token": token(client, url)}, follow_redirects=True)
    assert "グラフ列「売上」を更新しました。" in response.get_data(as_text=True)
    assert aliases_of(admin.column["売上"]) == ["売上金額", "ウリアゲ", "売上高"]
    html = unescape(client.get("/settings/columns").get_data(as_text=True))
    assert "売上金額、ウリアゲ、売上高" in html
    assert 'value="売上金額, ウリアゲ, 売上高"' in unescape(client.get(url).get_data(as_text=True))

    # An empty field removes them.
    client.post(url, data={**data, "aliases": "", "csrf_token": token(client, url)})
    assert aliases_of(admin.column["売上"]) == []


@pytest.mark.parametrize("alias, message", [
    ("件数", "「件数」は既にグラフ列「件数」の名前です"),
    ("社員ＩＤ", "CSVの特別な列名"),
    ("備考", "CSVの特別な列名"),
    ("No", "CSVの特別な列名"),
    ("=1+1", "別名は「=」「+」「-」「@」で始められません"),
])
def test_refused_aliases_are_explained_next_to_the_field(client, admin, alias, message):
    url = f"/settings/columns/{admin.column['売上']}/edit"
    response = client.post(url, data={"name": "売上", "unit": "円", "aliases": f"売上金額, {alias}",
                                      "csrf_token": token(client, url)})
    html = unescape(response.get_data(as_text=True))
    block = html[html.index('id="field-aliases"'):]
    assert message in block[:block.index("</div>")]
    assert f'value="売上金額, {alias}"' in html  # what was typed is kept
    assert aliases_of(admin.column["売上"]) == []


def test_another_columns_alias_is_refused_as_alias_and_as_name(client, admin):
    column_service.set_aliases(admin.id, admin.column["件数"], ["件数合計"])
    url = f"/settings/columns/{admin.column['売上']}/edit"
    html = unescape(client.post(url, data={"name": "売上", "aliases": "件数合計",
                                           "csrf_token": token(client, url)}).get_data(as_text=True))
    assert "「件数合計」は既にグラフ列「件数」の別名です" in html
    html = unescape(client.post("/settings/columns/new", data={"name": "件数合計", "csrf_token": token(
        client, "/settings/columns/new")}).get_data(as_text=True))
    assert "「件数合計」は既にグラフ列「件数」の別名です" in html
    assert [c.name for c in column_service.list_columns(admin.id)] == ["売上", "件数"]


INTEGRATION = "/settings/integration"


def settings_form(**overrides) -> dict:
    data = {"mode": "mail", "status": "active", "member_key": "employee_id", "encoding": "auto",
            "error_to": "ops@example.com", "success_to": "", "senders": "erp@example.com",
            "ftp_days": ["", "mon"], "ftp_start": "09:00", "ftp_end": "18:00", "ftp_interval": "60", "ftp_delay": "0"}
    data.update(overrides)
    return data


def test_extra_columns_and_key_aliases_are_saved_with_a_change_record(client, admin):
    data = settings_form(extra_columns="ignore", key_aliases="担当者コード, ｼｬｲﾝﾊﾞﾝｺﾞｳ")
    assert client.post(INTEGRATION, data=data).status_code == 400  # no CSRF token
    assert integration_service.get_settings(admin.id).extra_columns == "error"
    response = client.post(INTEGRATION, data={**data, "csrf_token": token(client, INTEGRATION)})
    assert response.status_code == 302
    settings = integration_service.get_settings(admin.id)
    db.session.refresh(settings)
    assert (settings.extra_columns, settings.key_aliases) == ("ignore", ["担当者コード", "シャインバンゴウ"])
    summary = db.session.query(SettingsChange.summary).order_by(SettingsChange.id.desc()).first()[0]
    assert "見出しにない列: エラーにする → 無視する" in summary
    assert "メンバー識別IDの見出しの別名: (なし) → 担当者コード, シャインバンゴウ" in summary
    html = unescape(client.get(INTEGRATION).get_data(as_text=True))
    assert 'value="担当者コード, シャインバンゴウ"' in html
    assert '<option selected value="ignore">無視する</option>' in html


def test_a_key_alias_taken_by_a_column_is_refused(client, admin):
    response = client.post(INTEGRATION, data={**settings_form(key_aliases="担当者, 売上"),
                                              "csrf_token": token(client, INTEGRATION)})
    assert response.status_code == 422
    html = unescape(response.get_data(as_text=True))
    block = html[html.index('id="field-key_aliases"'):]
    assert "「売上」は既にグラフ列「売上」の名前です" in block[:block.index("</div>")]
    assert integration_service.get_settings(admin.id).key_aliases == []
