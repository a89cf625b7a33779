"""`flask columns alias` and one export of another system imported end to end by `flask import-csv`."""
from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import Import, OutboxMail
from app.services import columns as column_service
from app.services import integration as integration_service
from tests.fixtures.ingest import csv_file, ingest_options, stored


def test_alias_adds_then_clears_and_refuses_with_a_message(cli, make_account):
    acc = make_account("acme", **ingest_options())
    result = cli("columns", "alias", "acme", "売上", "売上金額", "ｳﾘｱｹﾞﾀﾞｶ")
    assert result.exit_code == 0, result.output
    assert "グラフ列「売上」の別名 (aliases): 売上金額、ウリアゲダカ" in result.stdout
    assert cli("columns", "alias", "acme", "売上", "売上高").exit_code == 0
    assert column_service.get_column(acc.id, acc.column["売上"]).aliases == ["売上金額", "ウリアゲダカ", "売上高"]

    refused = cli("columns", "alias", "acme", "粗利", "売上高")
    assert refused.exit_code == 1 and "「売上高」は既にグラフ列「売上」の別名です" in refused.stderr
    assert cli("columns", "alias", "acme", "粗利", "=SUM(A1)").exit_code == 1
    missing = cli("columns", "alias", "acme", "利益", "x")
    assert missing.exit_code == 1 and "グラフ列「利益」はありません" in missing.stderr
    assert cli("columns", "alias", "acme", "売上").exit_code == 1  # nothing to do

    cleared = cli("columns", "alias", "acme", "売上", "--clear")
    assert cleared.exit_code == 0 and "別名 (aliases): (なし)" in cleared.stdout
    db.session.expire_all()
    assert column_service.get_column(acc.id, acc.column["売上"]).aliases == []


def test_help_is_in_japanese(cli, app):
    result = cli("columns", "alias", "--help")
    assert "別名" in result.stdout and "--clear" in result.stdout


def test_another_systems_export_imports_with_extra_columns_ignored(cli, app, make_account, client, login):
    acc = make_account("acme", **ingest_options(member_key="employee_id", success_to=["boss@acme.example"]))
    export = csv_file([["2018/05/16", "㈱髙島屋", "E002", "1,200", "初回"],
                       ["2018/05/16", "=1+1", "007", "300", ""]],
                      header=["日付", "顧客名", "担当者コード", "売上金額", "備考"])
    path = app.config["DATA_DIR"] + "/20180516.csv"
    with open(path, "wb") as file:
        file.write(export)

    # Refused while unknown headers are errors and no alias says what they are.
    refused = cli("import-csv", "acme", path)
    assert refused.exit_code == 1
    assert "メンバー識別IDの列がありません" in refused.stderr and "20180516.csv:1:日付:" in refused.stderr

    assert cli("columns", "alias", "acme", "売上", "売上金額").exit_code == 0
    result = cli("integration", "set", "acme", "--key-aliases", "担当者コード", "--extra-columns", "ignore")
    assert result.exit_code == 0, result.output
    settings = integration_service.get_settings(acc.id)
    assert (settings.key_aliases, settings.extra_columns) == (["担当者コード"], "ignore")

    imported = cli("import-csv", "acme", path)
    assert imported.exit_code == 0, imported.output
    assert [(no, values, note) for no, values, note, _ in stored(acc)] == [
        (2, {"売上": 1200.0}, "初回"), (3, {"売上": 300.0}, None)]
    imp = db.session.scalars(select(Import).where(Import.status == Import.SUCCEEDED)).one()
    assert imp.ignored_headers == ["日付", "顧客名"]

    mail = db.session.scalars(select(OutboxMail).where(OutboxMail.kind == "success")).one()
    assert "■ 無視した列(見出しにない列)\n" in mail.body
    assert "・日付\n・顧客名\n" in mail.body

    login(acc.email)
    html = client.get(f"/imports/{imp.id}").get_data(as_text=True)
    assert "無視した列" in html and "日付、顧客名" in html
