"""`flask import-csv`, `flask imports list`, `flask results export` through the CLI runner."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Import
from tests.fixtures.ingest import csv_file, ingest_options, line_count, stored, write_file


def test_import_csv_ok(cli, app, make_account, tmp_path):
    acc = make_account("acme", **ingest_options())
    path = write_file(tmp_path, "20180516.csv", csv_file([[1, 100, 10, 1, ""], [2, 200, 20, 2, ""]]))

    result = cli("import-csv", "acme", path)

    assert result.exit_code == 0, result.output
    assert "成功" in result.stdout and "20180516.csv" in result.stdout and "2行" in result.stdout
    imp = db.session.scalars(select(Import)).one()
    assert (imp.channel, imp.sender, imp.status) == ("cli", "cli", "succeeded")
    assert len(stored(acc)) == 2

    again = cli("import-csv", "acme", path)
    assert again.exit_code == 0 and f"取込 #{imp.id} を置換" in again.stdout


def test_import_csv_rejected_prints_every_error_and_exits_1(cli, app, make_account, tmp_path):
    acc = make_account("acme", **ingest_options())
    cli("import-csv", "acme", write_file(tmp_path, "20180516.csv", csv_file([[1, 100, 10, 1, ""]])))
    (tmp_path / "bad").mkdir()
    path = write_file(tmp_path / "bad", "20180516.csv", csv_file([[1, "abc", 10, 1, ""], [42, 1, 1, 1, ""]]))

    result = cli("import-csv", "acme", path)

    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("20180516.csv:2:売上:abc: 数値ではありません")
    assert lines[1].startswith("20180516.csv:3:No.:42: メンバー設定に存在しない")
    assert "エラー 2件" in lines[-1]
    assert [row[1] for row in stored(acc)] == [{"売上": 100, "粗利": 10, "件数": 1}]  # old data kept


def test_import_csv_dry_run_stores_nothing(cli, app, make_account, tmp_path):
    make_account("acme", **ingest_options())
    ok = cli("import-csv", "acme", write_file(tmp_path, "20180500.csv", csv_file([[1, 1, 1, 1, ""]])), "--dry-run")
    assert ok.exit_code == 0 and "検証OK" in ok.stdout and "2018年5月" in ok.stdout
    bad = cli("import-csv", "acme", write_file(tmp_path, "x.csv", csv_file([[1, 1, 1, 1, ""]])), "--dry-run")
    assert bad.exit_code == 1 and "x.csv::::" not in bad.stderr and "x.csv:::x.csv: ファイル名は" in bad.stderr
    assert db.session.scalar(select(func.count()).select_from(Import)) == 0
    assert line_count() == 0


def test_unknown_slug_exits_1(cli, app, tmp_path):
    path = write_file(tmp_path, "20180516.csv", b"No.\r\n")
    for args in (("import-csv", "nobody", path), ("imports", "list", "nobody"),
                 ("results", "export", "nobody", "20180516")):
        result = cli(*args)
        assert result.exit_code == 1, args
        assert "nobody" in result.stderr


def test_imports_list_json(cli, app, make_account, tmp_path):
    make_account("acme", **ingest_options())
    cli("import-csv", "acme", write_file(tmp_path, "20180516.csv", csv_file([[1, 1, 1, 1, ""]])))
    cli("import-csv", "acme", write_file(tmp_path, "20180517.csv", csv_file([[1, "x", 1, 1, ""]])))

    result = cli("imports", "list", "acme", "--json")

    assert result.exit_code == 0
    items = json.loads(result.stdout)
    assert [(i["filename"], i["status"], i["row_count"], i["error_count"], i["channel"]) for i in items] == [
        ("20180517.csv", "failed", 0, 1, "cli"), ("20180516.csv", "succeeded", 1, 0, "cli")]
    text = cli("imports", "list", "acme")
    assert text.exit_code == 0 and "20180517.csv" in text.stdout and "failed" in text.stdout
    assert text.stdout.splitlines()[0].split("\t")[:2] == ["番号", "受信日時"]


def test_imports_list_json_has_the_ignored_headers(cli, app, make_account, tmp_path):
    make_account("acme", **ingest_options(extra_columns="ignore"))
    data = csv_file([[1, "x", 5, ""]], header=["No.", "部署", "売上", "備考"])
    assert cli("import-csv", "acme", write_file(tmp_path, "20180516.csv", data)).exit_code == 0

    items = json.loads(cli("imports", "list", "acme", "--json").stdout)
    assert [(i["filename"], i["status"], i["ignored_headers"]) for i in items] == [
        ("20180516.csv", "succeeded", ["部署"])]


@pytest.mark.parametrize("encoding", ["cp932", "utf-8"])
def test_export_then_import_round_trips(cli, app, make_account, tmp_path, encoding):
    acc = make_account("acme", **ingest_options())
    source = csv_file([[2, "1,234", "-0.5", "", "㈱髙﨑 ①"], [1, 7, 8, 9, "=1+1"], [3, "", "", 4, ""]])
    assert cli("import-csv", "acme", write_file(tmp_path, "20180516.csv", source)).exit_code == 0
    before = sorted((no, values) for no, values, _note, _id in stored(acc))

    exported = cli("results", "export", "acme", "20180516", "--encoding", encoding)
    assert exported.exit_code == 0
    assert exported.stdout_bytes.decode(encoding).startswith("No.,売上,粗利,件数,備考\r\n")
    out_file = tmp_path / "out" / "20180516.csv"
    out_file.parent.mkdir()
    to_file = cli("results", "export", "acme", "20180516", "--encoding", encoding, "--output", str(out_file))
    assert to_file.exit_code == 0 and out_file.read_bytes() == exported.stdout_bytes
    dash = cli("results", "export", "acme", "20180516", "--encoding", encoding, "--output", "-")
    assert dash.exit_code == 0 and dash.stdout_bytes == exported.stdout_bytes  # "-" is stdout, as usual

    again = cli("import-csv", "acme", str(out_file))
    assert again.exit_code == 0, again.stderr
    assert sorted((no, values) for no, values, _note, _id in stored(acc)) == before
    notes = sorted(note or "" for _no, _values, note, _id in stored(acc))
    assert notes == ["", "'=1+1", "㈱髙﨑 ①"]  # the formula-looking note is neutralised, as documented


def test_export_bad_period_exits_1(cli, app, make_account):
    make_account("acme", **ingest_options())
    result = cli("results", "export", "acme", "2018-05")
    assert result.exit_code == 1 and "yyyymmdd" in result.stderr


@pytest.mark.parametrize("producer", ["nkf -e", "nkf CP51932", "iconv EUCJP-MS", "nkf -j", "nkf CP50221"])
def test_import_csv_keeps_extension_kanji_of_euc_jp_and_iso2022jp_files(cli, app, make_account, tmp_path,
                                                                        producer):
    from tests.fixtures.encodings import PRODUCERS, produce

    acc = make_account("acme", **ingest_options())
    text = csv_file([[1, 100, 10, 1, "髙﨑①㈱～№"], [2, 200, 20, 2, "高崎 ∥－"]], encoding="utf-8").decode("utf-8")
    command, name = PRODUCERS[producer]
    path = write_file(tmp_path, "20180516.csv", produce(command, text))

    result = cli("import-csv", "acme", path)

    assert result.exit_code == 0, result.output
    assert [row[2] for row in stored(acc)] == ["髙﨑①㈱～№", "高崎 ∥－"]
    assert db.session.scalars(select(Import)).one().encoding == name


def test_export_month_writes_the_month_as_the_board_shows_it(cli, app, make_account, client, login, tmp_path):
    from app.importer.filename import parse_period
    from app.services import results

    acc = make_account("acme", **ingest_options())
    for name, rows in (("20261201.csv", [[1, 100, 10, 1, ""], [2, "0.25", "", "", "日次"]]),
                       ("20261231.csv", [[1, 200, 20, 2, ""], [1, 3, "", "", ""]]),
                       ("20261200.csv", [[1, 1000, "", "", "月次"], [3, 7, 7, 7, ""]]),
                       ("20270101.csv", [[1, 99999, 1, 1, ""]]),      # next month
                       ("20261130.csv", [[2, 88888, 1, 1, ""]])):     # previous month
        assert cli("import-csv", "acme", write_file(tmp_path, name, csv_file(rows))).exit_code == 0
    results.add_manual(acc.id, acc.member[2], parse_period("20261215"), {acc.column["件数"]: 5})

    month = cli("results", "export", "acme", "202612", "--month", "--encoding", "utf-8")

    assert month.exit_code == 0, month.output
    lines = month.stdout_bytes.decode("utf-8").splitlines()
    assert lines == ["No.,売上,粗利,件数,備考", "1,1303,30,3,", "2,0.25,,5,", "3,7,7,7,"]
    # Each cell is the board's sum (results.month_table is what the board draws) …
    table = results.month_table(acc.id, 2026, 12)
    board = {member.no: [results.format_number(v) if v is not None else "" for v in values]
             for member, values in zip(table.members, table.values)}
    assert {int(line.split(",")[0]): line.split(",")[1:4] for line in lines[1:]} == board
    # … and the page shows the same figures.
    login(acc.email)
    page = client.get("/?month=2026-12").get_data(as_text=True)
    assert "1,303" in page and "0.25" in page
    assert "ボードの表示どおり" in month.stderr and "as the board shows it" in month.stderr

    plain = cli("results", "export", "acme", "202612", "--encoding", "utf-8")
    assert plain.exit_code == 0
    assert plain.stdout_bytes.decode("utf-8").splitlines() == ["No.,売上,粗利,件数,備考", "1,1000,,,月次", "3,7,7,7,"]
    assert "月次ファイル(20261200.csv)の行と手入力の実績だけ" in plain.stderr and "--month" in plain.stderr
    assert "monthly file's rows" in plain.stderr

    day = cli("results", "export", "acme", "20261201")
    assert day.exit_code == 0 and "日次ファイル(20261201.csv)" in day.stderr
    refused = cli("results", "export", "acme", "20261201", "--month")
    assert refused.exit_code == 1 and "--month には年月を指定してください(例 202612)" in refused.stderr
