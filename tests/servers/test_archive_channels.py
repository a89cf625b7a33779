"""Archives through the real servers: a .zip mailed over SMTP, a .zip and a .csv.gz uploaded by ftplib.

Each file of an archive becomes an import of its own linked to the archive's import
(app/services/archives.py); an encrypted zip needs the account's ZIPパスワード.
"""
from __future__ import annotations

import gzip
import smtplib
import subprocess

from sqlalchemy import select

from app.extensions import db
from app.importer import archive as unpacking
from app.models import ImportErrorRecord
from app.services import ftpcheck, zippassword
from tests.fixtures.ftp import ftp_csv, ftp_files, ftp_upload
from tests.fixtures.importer import make_zip, needs_zip
from tests.fixtures.ingest import account_imports, ended_imports, line_count
from tests.fixtures.smtp import SMTP_SENDER
from tests.fixtures.waiting import wait_for


def send(server, message):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        return client.send_message(message, from_addr=SMTP_SENDER)


def test_a_mailed_zip_of_three_csvs_is_three_imports(smtp_server, smtp_account, smtp_mail, smtp_relay):
    days = ["20180516.csv", "20180517.csv", "20180518.csv"]
    data = make_zip([(name, smtp_mail.csv()) for name in days] + [("memo.txt", b"x")])
    assert send(smtp_server, smtp_mail.message(SMTP_SENDER, smtp_account.address, [("results.zip", data)])) == {}

    rows = wait_for(lambda: ended_imports(smtp_account.id, 4), what="the archive's imports")
    box = rows[0]
    assert (box.filename, box.status, box.channel, box.sender) == ("results.zip", "unpacked", "mail", SMTP_SENDER)
    assert box.mail_from == SMTP_SENDER and box.peer_address == "127.0.0.1"
    assert [(i.filename, i.status, i.archive_id, i.row_count) for i in rows[1:]] == [
        (name, "succeeded", box.id, 2) for name in days]
    assert box.ignored_attachments == ["results.zip 内の memo.txt"]
    counts = [line_count(i.id)
              for i in rows[1:]]
    assert counts == [2, 2, 2]
    assert smtp_relay.wait_for(3), "three success reports"
    assert sorted(m.subject.split()[-1].split("(")[0] for m in smtp_relay.messages) == days
    assert all("results.zip 内の memo.txt" in m.text for m in smtp_relay.messages)


@needs_zip
def test_a_mailed_encrypted_zip_without_then_with_the_password(smtp_server, smtp_account, smtp_mail, tmp_path, app):
    (tmp_path / "20180516.csv").write_bytes(smtp_mail.csv())
    subprocess.run(["zip", "-q", "-P", "pass-word", "s.zip", "20180516.csv"], cwd=tmp_path, check=True)
    data = (tmp_path / "s.zip").read_bytes()

    assert send(smtp_server, smtp_mail.message(SMTP_SENDER, smtp_account.address, [("s.zip", data)])) == {}
    first = wait_for(lambda: ended_imports(smtp_account.id, 1), what="the refused archive")[0]
    assert first.status == "failed"
    assert list(db.session.scalars(select(ImportErrorRecord.message).where(
        ImportErrorRecord.import_id == first.id))) == [unpacking.NO_PASSWORD_MESSAGE]

    zippassword.set_password(smtp_account.id, "pass-word", actor="admin")
    assert send(smtp_server, smtp_mail.message(SMTP_SENDER, smtp_account.address, [("s.zip", data)])) == {}
    rows = wait_for(lambda: ended_imports(smtp_account.id, 3), what="the archive's import")
    assert [(i.filename, i.status) for i in rows[1:]] == [("s.zip", "unpacked"), ("20180516.csv", "succeeded")]


def test_an_ftp_zip_is_filed_under_processed_once_every_file_succeeded(app, import_worker, ftp_account, ftp_server, ftp_connect):
    client = ftp_connect(ftp_server)
    data = make_zip([("20180516.csv", ftp_csv()), ("../../etc/20180517.csv", ftp_csv())])
    assert ftp_upload(client, "results.zip", data).startswith("226")
    gz = gzip.compress(ftp_csv())
    assert ftp_upload(client, "20180518.csv.gz", gz).startswith("226")

    result = ftpcheck.check_account(ftp_account.id)

    assert [(f.name, f.succeeded) for f in result.files] == [("20180518.csv.gz", True), ("results.zip", True)]
    rows = account_imports(ftp_account.id)
    assert [(i.filename, i.status, i.channel) for i in rows] == [
        ("20180518.csv.gz", "unpacked", "ftp"), ("20180518.csv", "succeeded", "ftp"),
        ("results.zip", "unpacked", "ftp"), ("20180516.csv", "succeeded", "ftp"), ("20180517.csv", "succeeded", "ftp")]
    assert rows[1].archive_id == rows[0].id and rows[3].archive_id == rows[4].archive_id == rows[2].id
    moved = ftp_files(ftp_account.home / "processed")
    assert len(moved) == 2 and any(m.startswith("results_") and m.endswith(".zip") for m in moved)


def test_an_ftp_zip_with_a_failing_file_or_a_nested_zip_goes_to_error(app, import_worker, ftp_account, ftp_server, ftp_connect):
    client = ftp_connect(ftp_server)
    data = make_zip([("20180516.csv", ftp_csv()), ("inner.zip", make_zip([("20180517.csv", ftp_csv())]))])
    ftp_upload(client, "results.zip", data)

    result = ftpcheck.check_account(ftp_account.id)

    assert [(f.name, f.succeeded) for f in result.files] == [("results.zip", False)]
    rows = account_imports(ftp_account.id)
    assert [(i.filename, i.status) for i in rows] == [
        ("results.zip", "unpacked"), ("20180516.csv", "succeeded"), ("inner.zip", "failed")]
    assert [m.startswith("results_") for m in ftp_files(ftp_account.home / "error")] == [True]


def test_an_ftp_zip_bomb_is_refused_and_filed_under_error(app, import_worker, ftp_account, ftp_server, ftp_connect):
    client = ftp_connect(ftp_server)
    ftp_upload(client, "bomb.zip", make_zip([("20180516.csv", b"0" * (20 * 1024 * 1024))]))
    result = ftpcheck.check_account(ftp_account.id)
    assert [(f.name, f.succeeded) for f in result.files] == [("bomb.zip", False)]
    rows = account_imports(ftp_account.id)
    assert [(i.filename, i.status) for i in rows] == [("bomb.zip", "failed")]
    assert line_count() == 0
