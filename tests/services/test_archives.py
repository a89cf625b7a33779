"""Archives on the one ingest path: a .zip/.gz becomes one import per file, linked to the archive's import.

Against a real database (SQLite, or PostgreSQL with RENKEI_TEST_DATABASE_URL): the history rows,
the stored results, the errors and report mails, the stored ZIPパスワード, the CLI and the web's
手動取込 and import pages, the API's ?wait=1. The mail and FTP channels are in
tests/servers/test_archive_channels.py.
"""
from __future__ import annotations

import gzip
import re
import subprocess

import pytest
from sqlalchemy import select, text

from app.extensions import db
from app.importer import archive as unpacking
from app.models import Import, ImportErrorRecord, IntegrationSettings, OutboxMail
from app.services import files, ingest, queue, zippassword
from tests.fixtures.importer import make_zip, needs_zip
from tests.fixtures.ingest import SENDER, csv_file, ingest_options, manual_upload, stored

DAY16 = csv_file([[1, 100, 10, 1, "一"]])
DAY17 = csv_file([[2, 200, 20, 2, "二"]])
MONTH = csv_file([[3, 300, 30, 3, "三"]])
BAD = csv_file([[99, 1, 1, 1, ""]])


def zip_command(tmp_path, entries: list[tuple[str, bytes]], *options: str) -> bytes:
    for name, data in entries:
        (tmp_path / name).write_bytes(data)
    target = tmp_path / "upload.zip"
    target.unlink(missing_ok=True)
    subprocess.run(["zip", "-q", *options, str(target), *[n for n, _ in entries]], cwd=tmp_path, check=True)
    return target.read_bytes()


THREE = [("20180516.csv", DAY16), ("20180517.csv", DAY17), ("20180500.csv", MONTH)]


def receive_and_run(acc, name: str, data: bytes, channel: str = "cli") -> tuple[Import, list[Import]]:
    box = ingest.receive(acc.id, name, data, channel=channel, sender=SENDER)
    entries = [queue.run_until_ended(e.id) for e in db.session.scalars(
        select(Import).where(Import.archive_id == box.id).order_by(Import.id))]
    db.session.expire_all()
    return db.session.get(Import, box.id), entries


def errors_of(import_id: int) -> list[str]:
    return list(db.session.scalars(select(ImportErrorRecord.message).where(ImportErrorRecord.import_id == import_id)))


@pytest.fixture
def acc(make_account):
    return make_account("acme", **ingest_options())


def test_a_zip_of_three_files_is_three_imports_linked_to_the_archive(acc):
    data = make_zip(THREE)
    box, entries = receive_and_run(acc, "results.zip", data)
    assert (box.filename, box.status, box.status_label, box.channel) == ("results.zip", "unpacked", "展開済み", "cli")
    assert files.read(box.id) == data  # the archive itself is kept, downloadable, re-importable
    assert [(e.filename, e.status, e.archive_id, e.sender, e.row_count) for e in entries] == [
        ("20180516.csv", "succeeded", box.id, SENDER, 1), ("20180517.csv", "succeeded", box.id, SENDER, 1),
        ("20180500.csv", "succeeded", box.id, SENDER, 1)]
    assert [files.read(e.id) for e in entries] == [DAY16, DAY17, MONTH]
    assert [(no, values["売上"], note, imp) for no, values, note, imp in stored(acc)] == [
        (1, 100, "一", entries[0].id), (2, 200, "二", entries[1].id), (3, 300, "三", entries[2].id)]


@needs_zip
def test_a_zip_made_by_the_zip_command_replaces_same_named_files_in_order(acc, tmp_path):
    receive_and_run(acc, "first.zip", zip_command(tmp_path, THREE))
    second = [("20180516.csv", csv_file([[1, 999, 9, 9, "新"]]))]
    _, entries = receive_and_run(acc, "second.zip", zip_command(tmp_path, second))
    assert entries[0].status == "succeeded" and entries[0].replaced_import_id is not None
    assert [(no, values["売上"]) for no, values, _, _ in stored(acc, "20180516")] == [(1, 999)]


def test_a_gz_made_by_gzip_is_its_one_file(acc, tmp_path):
    (tmp_path / "20180516.csv").write_bytes(DAY16)
    subprocess.run(["gzip", "20180516.csv"], cwd=tmp_path, check=True)
    box, entries = receive_and_run(acc, "20180516.csv.gz", (tmp_path / "20180516.csv.gz").read_bytes())
    assert box.status == "unpacked" and [(e.filename, e.status) for e in entries] == [("20180516.csv", "succeeded")]


def test_each_file_is_all_or_nothing_as_if_sent_alone(acc):
    _, entries = receive_and_run(acc, "mixed.zip", make_zip([("20180516.csv", DAY16), ("20180517.csv", BAD)]))
    assert [(e.filename, e.status) for e in entries] == [("20180516.csv", "succeeded"), ("20180517.csv", "failed")]
    assert [no for no, *_ in stored(acc)] == [1]
    assert errors_of(entries[1].id)  # its errors name line and column, as for a file sent alone
    reports = db.session.scalars(select(OutboxMail).where(OutboxMail.import_id == entries[1].id)).all()
    assert len(reports) == 1 and "20180517.csv" in reports[0].subject


def test_a_nested_archive_fails_as_its_own_entry_and_other_names_are_reported(acc):
    data = make_zip([("../../x/20180516.csv", DAY16), ("inner.zip", make_zip(THREE)), ("memo.txt", b"hi"),
                     ("売上.pdf", b"%PDF")])
    box, _ = receive_and_run(acc, "n.zip", data)
    assert [(e.filename, e.status) for e in db.session.scalars(
        select(Import).where(Import.archive_id == box.id).order_by(Import.id))] == [
        ("20180516.csv", "succeeded"), ("inner.zip", "failed")]
    inner = db.session.scalar(select(Import).where(Import.filename == "inner.zip"))
    assert errors_of(inner.id) == [unpacking.NESTED_MESSAGE]
    assert box.ignored_attachments == ["n.zip 内の memo.txt", "n.zip 内の 売上.pdf"]
    mail = db.session.scalar(select(OutboxMail).where(OutboxMail.import_id == inner.id))
    assert "n.zip 内の memo.txt" in mail.body and "inner.zip" in mail.subject


@pytest.mark.parametrize(("data", "message"), [
    (make_zip([("20180516.csv", b"0" * (6 * 1024 * 1024))]), "圧縮率"),
    (make_zip([(f"{20180101 + i}.csv", b"") for i in range(101)]), "上限の100個"),
    (make_zip([("a/20180516.csv", DAY16), ("b/20180516.csv", DAY17)]), "同じ名前"),
    (make_zip([("memo.txt", b"x")]), "取り込めるファイル"),
    (b"not a zip", "壊れて"),
])
def test_an_archive_that_cannot_be_unpacked_is_one_failed_import_and_stores_nothing(acc, data, message):
    box = ingest.receive(acc.id, "bad.zip", data, channel="api", sender=SENDER)
    assert box.status == "failed" and box.archive_id is None
    assert message in errors_of(box.id)[0]
    assert db.session.scalar(select(db.func.count(Import.id))) == 1 and stored(acc) == []
    mail = db.session.scalar(select(OutboxMail).where(OutboxMail.import_id == box.id))
    assert mail is not None and "bad.zip" in mail.subject and message in mail.body
    assert "アーカイブ内のファイルは1つも取り込んでいません" in mail.body and "期間が分かりません" not in mail.body


def test_a_bomb_over_the_channels_cap_is_refused(acc, app):
    app.config["MAX_UPLOAD_BYTES"] = 1024 * 1024
    data = gzip.compress("No.,売上\r\n".encode("cp932") + b"1,100\r\n" * 200_000)  # 1.4 MB inflated
    box = ingest.receive(acc.id, "20180516.csv.gz", data, channel="api", sender=SENDER)
    assert box.status == "failed" and "上限(1,048,576バイト)" in errors_of(box.id)[0]


@needs_zip
def test_an_encrypted_zip_with_and_without_the_stored_password(acc, tmp_path, app):
    data = zip_command(tmp_path, THREE, "-P", "社外秘pw")
    without = ingest.receive(acc.id, "secret.zip", data, channel="cli", sender=SENDER)
    assert without.status == "failed" and errors_of(without.id) == [unpacking.NO_PASSWORD_MESSAGE]

    zippassword.set_password(acc.id, "違うpw", actor="admin@acme.example")
    wrong = ingest.receive(acc.id, "secret.zip", data, channel="cli", sender=SENDER)
    assert errors_of(wrong.id) == [unpacking.WRONG_PASSWORD_MESSAGE]

    zippassword.set_password(acc.id, "社外秘pw", actor="admin@acme.example")
    box, entries = receive_and_run(acc, "secret.zip", data)
    assert box.status == "unpacked" and [e.status for e in entries] == ["succeeded"] * 3
    assert len(stored(acc)) == 3


def test_the_password_is_stored_encrypted_and_only_with_this_secret_key(acc, app):
    zippassword.set_password(acc.id, "himitsu-123", actor="admin@acme.example")
    raw = db.session.scalar(text("SELECT zip_password FROM integration_settings WHERE account_id = :id"),
                            {"id": acc.id})
    assert raw and "himitsu" not in raw and zippassword.is_set(acc.id)
    assert zippassword.candidates(acc.id)[0] == b"himitsu-123"
    app.config["SECRET_KEY"] = "another key"
    assert zippassword.candidates(acc.id) == []  # unreadable under another key: as if none were set
    zippassword.clear(acc.id, actor="admin@acme.example")
    assert not zippassword.is_set(acc.id)
    settings = db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == acc.id))
    assert settings.zip_password is None


def test_reimport_of_an_archive_unpacks_it_again(acc):
    box, _ = receive_and_run(acc, "results.zip", make_zip(THREE))
    again = ingest.reimport(acc.id, box.id, "admin@acme.example")
    assert again.status == "unpacked" and again.id != box.id
    assert len(list(db.session.scalars(select(Import).where(Import.archive_id == again.id)))) == 3


def test_a_repeated_delivery_with_the_same_key_stores_the_archive_once(acc):
    first = ingest.receive(acc.id, "r.zip", make_zip(THREE), channel="mail", sender=SENDER, dedupe_key="mail:x:0")
    second = ingest.receive(acc.id, "r.zip", make_zip(THREE), channel="mail", sender=SENDER, dedupe_key="mail:x:0")
    assert first.id == second.id and db.session.scalar(select(db.func.count(Import.id))) == 4


# ---------------------------------------------------------------------------------------
# CLI, 手動取込 and the import pages, API


def test_flask_import_csv_with_a_zip_runs_each_file(acc, cli, tmp_path):
    path = tmp_path / "results.zip"
    path.write_bytes(make_zip([*THREE[:2], ("20180500.csv", BAD)]))
    result = cli("import-csv", "acme", str(path))
    assert result.exit_code == 1
    assert "展開 (unpacked): results.zip" in result.output
    assert re.search(r"取込 #\d+ 成功: 20180516.csv", result.output)
    assert re.search(r"取込 #\d+ 成功: 20180517.csv", result.output)
    assert "20180500.csv" in result.output and "1件のファイルがエラー" in result.output
    assert [no for no, *_ in stored(acc)] == [1, 2]


def test_flask_integration_zip_password(acc, cli):
    result = cli("integration", "zip-password", "acme", "--stdin", input="pw-123\n")
    assert result.exit_code == 0 and "設定しました" in result.output and "pw-123" not in result.output
    assert zippassword.candidates(acc.id)[0] == b"pw-123"
    result = cli("integration", "zip-password", "acme", "--clear")
    assert result.exit_code == 0 and not zippassword.is_set(acc.id)


def test_upload_of_a_zip_shows_the_links_both_ways(acc, client, login):
    login(acc.email, acc.password)
    response = manual_upload(client, "results.zip", make_zip(THREE))
    assert response.status_code == 302
    box = db.session.scalar(select(Import).where(Import.filename == "results.zip"))
    assert response.headers["Location"].endswith(f"/imports/{box.id}")
    entries = list(db.session.scalars(select(Import).where(Import.archive_id == box.id).order_by(Import.id)))
    html = client.get(f"/imports/{box.id}").get_data(as_text=True)
    assert "展開済み" in html and "展開したファイル" in html
    for entry in entries:
        assert f'href="/imports/{entry.id}"' in html and entry.filename in html
    page = client.get(f"/imports/{entries[0].id}").get_data(as_text=True)
    assert "展開元のアーカイブ" in page and f'href="/imports/{box.id}"' in page and "results.zip" in page
    history = client.get("/imports?status=unpacked").get_data(as_text=True)
    assert "results.zip" in history and "20180516.csv" not in history


def test_api_post_of_a_zip_with_wait(app, api_account, import_worker, client):
    response = client.post("/api/v1/imports?filename=results.zip&wait=1", headers=api_account.headers,
                           data=make_zip([("20180516.csv", "No.,売上\r\n1,100\r\n".encode("cp932"))]))
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["status"] == "unpacked" and body["filename"] == "results.zip"
    assert [(e["filename"], e["status"], e["archive_id"]) for e in body["entries"]] == [
        ("20180516.csv", "succeeded", body["id"])]


def test_the_integration_tab_sets_replaces_and_removes_the_zip_password_never_showing_it(acc, app, client, login):
    app.config["WTF_CSRF_ENABLED"] = False
    login(acc.email, acc.password)
    assert "未設定" in client.get("/settings/integration").get_data(as_text=True)
    response = client.post("/settings/integration/zip-password", data={"zip_password": "秘密-123", "action": "set"})
    assert response.status_code == 302
    html = client.get("/settings/integration").get_data(as_text=True)
    assert 'id="zip-password-state">設定済み' in html and "秘密-123" not in html
    assert zippassword.candidates(acc.id)[0] == "秘密-123".encode()
    assert "ZIPパスワードを設定しました" in html  # the change history
    client.post("/settings/integration/zip-password", data={"zip_password": "new-pw", "action": "set"})
    assert zippassword.candidates(acc.id)[0] == b"new-pw"
    client.post("/settings/integration/zip-password", data={"action": "remove"})
    assert not zippassword.is_set(acc.id)


def test_api_get_of_an_archive_lists_its_files_and_a_file_names_its_archive(app, api_account, client):
    box = ingest.receive(api_account.id, "results.zip", make_zip(THREE), channel="api", sender="127.0.0.1")
    body = client.get(f"/api/v1/imports/{box.id}", headers=api_account.headers).get_json()
    assert body["status"] == "unpacked"
    assert [(e["filename"], e["status"]) for e in body["entries"]] == [(n, "queued") for n, _ in THREE]
    entry = client.get(f"/api/v1/imports/{body['entries'][0]['id']}", headers=api_account.headers).get_json()
    assert entry["archive_id"] == box.id and "entries" not in entry


def test_dry_run_of_a_zip_checks_each_file_and_names_it_in_its_errors(acc):
    check = ingest.dry_run(acc.id, "results.zip", make_zip([("20180516.csv", DAY16), ("20180517.csv", BAD)]))
    assert check.rows == 1 and check.errors  # the row of 20180517.csv is the error
    assert all(error.message.startswith("「20180517.csv」: ") for error in check.errors)
    assert db.session.scalar(select(db.func.count(Import.id))) == 0
    refused = ingest.dry_run(acc.id, "bad.zip", b"not a zip")
    assert "壊れて" in refused.errors[0].message and refused.rows == 0


def test_upload_dry_run_of_a_zip_shows_the_errors_of_its_files(acc, client, login):
    login(acc.email, acc.password)
    html = manual_upload(client, "r.zip", make_zip([("20180516.csv", DAY16), ("20180517.csv", BAD)]),
                         dry_run=True).get_data(as_text=True)
    assert "「20180517.csv」: " in html and "何も保存していません" in html
    assert db.session.scalar(select(db.func.count(Import.id))) == 0
