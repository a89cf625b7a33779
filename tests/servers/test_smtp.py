"""The built-in SMTP server with real clients (smtplib, swaks, raw sockets) against a real database.

Each test starts servers.smtp.start(app) on a free port; the worker imports what it stores and
sends report mails to a sink relay.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from app.extensions import db
from app.models import Import
from app.services import files, spool
from servers.mailhandler import MailHandler
from servers.recipients import Recipient
from servers.spooldrain import MailImporter
from tests.fixtures.ingest import account_imports, ended_imports, line_count, stored_lines
from tests.fixtures.smtp import SMTP_ERROR_TO, SMTP_SENDER, SMTP_SUCCESS_TO, smtp_message
from tests.fixtures.smtp_sink import RawSmtp
from tests.fixtures.waiting import wait_for
from tests.fixtures.worker import running_worker

ROOT = Path(__file__).resolve().parents[2]


def stored(account_id: int, count: int):
    """The account's imports once `count` exist (the spool drain stores them shortly after 250)."""
    rows = account_imports(account_id)
    return rows if len(rows) >= count else None


def send(server, message, sender: str = SMTP_SENDER, to: str | None = None):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        return client.send_message(message, from_addr=sender, to_addrs=[to] if to else None)


def send_raw(server, raw: bytes, to: str, sender: str = SMTP_SENDER):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        return client.sendmail(sender, [to], raw)


# ---------------------------------------------------------------------------------------
# The main path: a cp932 CSV from a registered sender is imported and reported


def test_smtplib_cp932_csv_is_imported_and_success_mail_reaches_relay(
    smtp_server, smtp_account, smtp_relay, smtp_mail
):
    csv_bytes = smtp_mail.csv()
    message = smtp_mail.message("営業部 <Sales@Partner.Example>", smtp_account.address, [("20180516.csv", csv_bytes)])
    refused = send(smtp_server, message)
    assert refused == {}

    rows = wait_for(lambda: ended_imports(smtp_account.id, 1), what="the import")
    assert [(i.filename, i.status, i.channel, i.sender) for i in rows] == [
        ("20180516.csv", Import.SUCCEEDED, "mail", "sales@partner.example")
    ]
    assert rows[0].encoding == "cp932" and rows[0].row_count == 2
    notes = [line.note for _import_id, line in stored_lines(rows[0].id)]
    assert notes == ["髙橋様 ①件目", "Ａ社 新規"]

    assert smtp_relay.wait_for(1), "no report mail reached the relay"
    report = smtp_relay.messages[0]
    assert report.rcpt_tos == [SMTP_SUCCESS_TO]
    assert "【取込完了】" in report.subject and "20180516.csv" in report.subject
    assert "取込行数: 2行" in report.text


def test_swaks_attachment_is_imported(smtp_server, smtp_account, smtp_relay, smtp_mail, tmp_path):
    swaks = shutil.which("swaks") or "/usr/bin/swaks"
    csv_file = tmp_path / "20180500.csv"
    csv_file.write_bytes(smtp_mail.csv())
    result = subprocess.run(
        [swaks, "--server", f"127.0.0.1:{smtp_server.port}", "--to", smtp_account.address,
         "--from", SMTP_SENDER, "--attach-type", "text/csv", "--attach", f"@{csv_file}", "--timeout", "20"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250 2.0.0 OK: queued" in result.stdout

    rows = wait_for(lambda: ended_imports(smtp_account.id, 1), what="the import")
    assert [(i.filename, i.status, i.period_kind) for i in rows] == [("20180500.csv", Import.SUCCEEDED, "month")]
    assert smtp_relay.wait_for(1)
    assert "20180500.csv" in smtp_relay.messages[0].subject


def test_two_csvs_become_two_imports_in_order_other_attachments_noted(
    smtp_server, smtp_account, smtp_mail
):
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address, [
        ("20180516.csv", smtp_mail.csv()),
        ("説明.pdf", b"%PDF-1.4"),
        ("20180517.CSV", smtp_mail.csv()),
    ])
    send(smtp_server, message)
    rows = wait_for(lambda: ended_imports(smtp_account.id, 2), what="two imports")
    assert [(i.filename, i.status) for i in rows] == [
        ("20180516.csv", Import.SUCCEEDED), ("20180517.CSV", Import.SUCCEEDED)
    ]
    assert all("説明.pdf" in (i.note or "") for i in rows)
    assert [i.ignored_attachments for i in rows] == [["説明.pdf"], ["説明.pdf"]]


@pytest.mark.parametrize("processes", [0, 1], ids=["parse-in-thread", "parse-in-process"])
@pytest.mark.parametrize("encoding", ["rfc2231", "rfc2047-utf8", "rfc2047-iso2022jp"])
def test_japanese_attachment_name_is_stored(encoding, processes, smtp_start, smtp_account, smtp_mail):
    server = smtp_start(SMTP_PARSE_PROCESSES=processes)  # no worker: the name is stored at receipt
    assert (server.parse_pool is not None) == bool(processes)
    name = "売上データ_20180516.csv"
    disposition = {
        "rfc2231": lambda: smtp_mail.rfc2231(name),
        "rfc2047-utf8": lambda: smtp_mail.rfc2047(name),
        "rfc2047-iso2022jp": lambda: smtp_mail.rfc2047(name, "ISO-2022-JP"),
    }[encoding]()
    raw = smtp_mail.raw(sender=SMTP_SENDER, to=smtp_account.address, parts=[(disposition, smtp_mail.csv())])
    send_raw(server, raw, smtp_account.address)
    rows = wait_for(lambda: stored(smtp_account.id, 1), what="the spool drain")
    assert [(i.filename, i.status) for i in rows] == [(name, Import.QUEUED)]


def test_mail_without_csv_makes_a_failed_import_and_an_error_report(
    smtp_server, smtp_account, smtp_relay, smtp_mail
):
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address, [("report.xlsb", b"PK"), ("説明.pdf", b"%PDF")])
    send(smtp_server, message)
    rows = wait_for(lambda: ended_imports(smtp_account.id, 1))
    assert [(i.filename, i.status) for i in rows] == [("(CSV添付なし)", Import.FAILED)]
    assert "添付されていません" in rows[0].errors[0].message
    assert "report.xlsb" in rows[0].note
    # Every ignored attachment is stored on the import itself, for the report mail.
    assert rows[0].ignored_attachments == ["report.xlsb", "説明.pdf"]
    assert smtp_relay.wait_for(1)
    assert len(account_imports(smtp_account.id)) == 1
    assert smtp_relay.messages[0].rcpt_tos == [SMTP_ERROR_TO]
    assert "【取込エラー】" in smtp_relay.messages[0].subject


# ---------------------------------------------------------------------------------------
# Refusals and discards


def test_unregistered_sender_gets_550_and_only_a_refusal_is_recorded(smtp_server, smtp_account, smtp_mail):
    # Envelope and From: both a stranger (what swaks --from does): refused at RCPT, before any data.
    message = smtp_mail.message("stranger@elsewhere.example", smtp_account.address, [("20180516.csv", b"secret")])
    with pytest.raises(smtplib.SMTPRecipientsRefused) as error:
        send(smtp_server, message, sender="stranger@elsewhere.example")
    [(code, text)] = error.value.recipients.values()
    assert code == 550 and text.startswith(b"5.7.1")

    db.session.rollback()
    rows = account_imports(smtp_account.id)
    assert [(i.status, i.mail_from, i.size) for i in rows] == [(Import.REFUSED, "stranger@elsewhere.example", 0)]
    assert files.read(rows[0].id) is None
    assert "stranger@elsewhere.example" in rows[0].note


def test_a_registered_envelope_sender_does_not_excuse_a_stranger_in_from(smtp_server, smtp_account, smtp_mail):
    # Registered address in the envelope, a stranger in From: → refused.
    message = smtp_mail.message("stranger@elsewhere.example", smtp_account.address, [("20180516.csv", b"x")])
    with pytest.raises(smtplib.SMTPDataError) as error:
        send(smtp_server, message, sender=SMTP_SENDER)
    assert error.value.smtp_code == 550


def test_two_from_headers_are_refused(smtp_server, smtp_account, smtp_mail):
    raw = smtp_mail.raw(sender=SMTP_SENDER, to=smtp_account.address,
                        parts=[(smtp_mail.plain("20180516.csv"), b"x")],
                        extra_headers=b"From: stranger@elsewhere.example\r\n")
    with pytest.raises(smtplib.SMTPDataError) as error:
        send_raw(smtp_server, raw, smtp_account.address)
    assert error.value.smtp_code == 550
    db.session.rollback()
    assert [i.status for i in account_imports(smtp_account.id)] == [Import.REFUSED]


@pytest.mark.parametrize("address", ["sp-0000000000@renkei.localhost", "someone@gmail.com", "postmaster"])
def test_unknown_recipient_or_relay_attempt_gets_550_5_1_1(smtp_server, smtp_account, address):
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=10) as client:
        client.ehlo()
        client.mail(SMTP_SENDER)
        code, text = client.rcpt(address)
    assert code == 550 and text.startswith(b"5.1.1")


def test_integration_disabled_refuses_rcpt(smtp_server, smtp_account, smtp_mail):
    from app.services import accounts

    accounts.set_integration_enabled(smtp_account.slug, False)
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address, [("20180516.csv", smtp_mail.csv())])
    with pytest.raises(smtplib.SMTPRecipientsRefused) as error:
        send(smtp_server, message)
    assert error.value.recipients[smtp_account.address][0] == 550
    db.session.rollback()
    assert account_imports(smtp_account.id) == []


@pytest.mark.parametrize(
    "changes, reason",
    [({"status": "stopped"}, "連動稼働停止"), ({"mode": "api"}, "データ連動方式が「API連動」のため")],
)
def test_stopped_or_other_mode_accepts_discards_and_records(
    changes, reason, smtp_server, smtp_account, smtp_relay, smtp_mail
):
    from app.services import integration

    integration.update_settings(smtp_account.id, changes, actor="test")
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address, [("20180516.csv", smtp_mail.csv())])
    assert send(smtp_server, message) == {}
    db.session.rollback()
    rows = account_imports(smtp_account.id)
    assert [(i.status, i.filename, i.size) for i in rows] == [(Import.DISCARDED, "20180516.csv", 0)]
    assert reason in rows[0].note
    assert files.read(rows[0].id) is None
    assert line_count() == 0


def other_mail_account(make_account, slug: str, senders: list[str]):
    """A second mail-mode account with its own sender list; returns (account id, issued address)."""
    made = make_account(slug, members=[(1, "E001", "髙橋 一郎", "営業部"), (2, "E002", "佐藤 花子", "営業部")],
                        columns=(("売上", "円"), ("粗利", "円"), ("件数", "件")), mode="mail", status="active",
                        senders=senders, error_to=[SMTP_ERROR_TO])
    return made.id, made.address


def test_one_mail_to_two_accounts_is_imported_once_per_account(smtp_server, smtp_account, make_account,
                                                               smtp_mail):
    other_id, other_address = other_mail_account(make_account, "other", [SMTP_SENDER])
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address, [("20180516.csv", smtp_mail.csv())])
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=10) as client:
        client.ehlo()
        client.mail(SMTP_SENDER)
        assert client.rcpt(smtp_account.address)[0] == 250
        assert client.rcpt(smtp_account.address.upper())[0] == 250  # same account again: imported once
        assert client.rcpt(other_address)[0] == 250
        code, text = client.rcpt("sp-0000000000@renkei.localhost")
        assert code == 550 and text.startswith(b"5.1.1")  # an unknown one is still refused, per RCPT
        assert client.data(message.as_bytes())[0] == 250
    for account_id in (smtp_account.id, other_id):
        rows = wait_for(lambda: ended_imports(account_id, 1), what=f"the import of account #{account_id}")
        assert [(i.filename, i.status, i.sender) for i in rows] == [
            ("20180516.csv", Import.SUCCEEDED, SMTP_SENDER)]
    assert spool.pending(spool.mail_folder(smtp_server.drainer.folder.parents[1])) == []


def test_a_sender_refused_by_one_account_does_not_block_the_other(smtp_server, smtp_account, make_account,
                                                                 smtp_mail):
    other_id, other_address = other_mail_account(make_account, "other", ["someone@else.example"])
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address, [("20180516.csv", smtp_mail.csv())])
    # The other account refuses the envelope sender at its RCPT; the message goes to the first one only.
    refused_rcpts = send_to(smtp_server, message, [other_address, smtp_account.address])
    assert list(refused_rcpts) == [other_address] and refused_rcpts[other_address][0] == 550
    rows = wait_for(lambda: ended_imports(smtp_account.id, 1))
    assert [(i.filename, i.status) for i in rows] == [("20180516.csv", Import.SUCCEEDED)]
    [refused] = account_imports(other_id)
    assert (refused.status, refused.filename, refused.mail_from, refused.size) == (
        Import.REFUSED, "(メール)", SMTP_SENDER, 0)
    assert "送信元メールアドレスに登録されていない" in refused.note and SMTP_SENDER in refused.note

    # Refused by every account: 550, and each account records it.
    with pytest.raises(smtplib.SMTPDataError) as error:
        send_to(smtp_server, smtp_mail.message("stranger@x.example", smtp_account.address,
                                               [("20180517.csv", b"x")]), [other_address, smtp_account.address])
    assert error.value.smtp_code == 550
    db.session.rollback()
    assert [i.status for i in account_imports(other_id)] == [Import.REFUSED, Import.REFUSED]
    assert [i.status for i in account_imports(smtp_account.id)] == [Import.SUCCEEDED, Import.REFUSED]


def send_to(server, message, recipients: list[str], sender: str = SMTP_SENDER):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        return client.send_message(message, from_addr=sender, to_addrs=recipients)


# ---------------------------------------------------------------------------------------
# Durability and duplicates


def test_the_same_eml_sent_twice_is_imported_twice(smtp_server, smtp_account, smtp_mail, tmp_path):
    # mutt's bounce and a saved .eml sent again keep the Message-ID: each delivery is a new import,
    # the second replacing the first by the same-name rule (the error report asks for a resend).
    files = [("20180516.csv", smtp_mail.csv()), ("20180517.csv", smtp_mail.csv())]
    eml = tmp_path / "saved.eml"
    eml.write_bytes(smtp_mail.message(SMTP_SENDER, smtp_account.address, files,
                                      message_id="<same@partner.example>").as_bytes())
    send_raw(smtp_server, eml.read_bytes(), smtp_account.address)
    wait_for(lambda: ended_imports(smtp_account.id, 2))
    send_raw(smtp_server, eml.read_bytes(), smtp_account.address)
    rows = wait_for(lambda: ended_imports(smtp_account.id, 4), what="the second delivery's imports")
    assert [(i.filename, i.status) for i in rows] == [
        ("20180516.csv", Import.SUCCEEDED), ("20180517.csv", Import.SUCCEEDED),
        ("20180516.csv", Import.SUCCEEDED), ("20180517.csv", Import.SUCCEEDED),
    ]
    assert (rows[2].replaced_import_id, rows[3].replaced_import_id) == (rows[0].id, rows[1].id)


def test_one_spool_entry_drained_twice_is_stored_once(app, smtp_account, smtp_mail):
    """A crash between the drain's commit and its delete: the same entry is drained again at start."""
    from servers.smtpservices import _AppServices

    folder = spool.mail_folder(app.config["DATA_DIR"])
    raw = smtp_mail.message(SMTP_SENDER, smtp_account.address,
                            [("20180516.csv", smtp_mail.csv()), ("report.xlsb", b"PK")],
                            message_id="<crash@partner.example>").as_bytes()
    path = spool.write_mail(folder, account_ids=[smtp_account.id], sender=SMTP_SENDER, raw=raw)
    entry = spool.read(path)
    assert entry.delivery and entry.account_ids == (smtp_account.id,)
    services = _AppServices(app)
    services.store_spooled(entry)
    services.store_spooled(entry)  # the delete was lost: drained once more
    db.session.rollback()
    assert [(i.filename, i.status, i.ignored_attachments) for i in account_imports(smtp_account.id)] == [
        ("20180516.csv", Import.QUEUED, ["report.xlsb"])]
    # The same bytes spooled again (a second delivery) are a second import.
    services.store_spooled(spool.read(spool.write_mail(folder, account_ids=[smtp_account.id], sender=SMTP_SENDER,
                                                       raw=raw)))
    db.session.rollback()
    assert len(account_imports(smtp_account.id)) == 2


def test_a_mail_entry_of_an_earlier_version_keeps_its_message_id_keys(app, smtp_account, smtp_mail):
    """Entries spooled before the delivery id existed: a repeated drain must still find what it stored."""
    import json

    from servers.smtpservices import _AppServices

    folder = spool.mail_folder(app.config["DATA_DIR"])
    raw = smtp_mail.message(SMTP_SENDER, smtp_account.address, [("20180516.csv", smtp_mail.csv())],
                            message_id="<old@partner.example>").as_bytes()
    path = folder / "00000000000000000001-000000-old.entry"
    header = {"kind": "mail", "account_id": smtp_account.id, "sender": SMTP_SENDER, "received_at": ""}
    path.write_bytes(json.dumps(header).encode() + b"\n" + raw)
    services = _AppServices(app)
    services.store_spooled(spool.read(path))
    services.store_spooled(spool.read(path))
    db.session.rollback()
    assert [i.filename for i in account_imports(smtp_account.id)] == ["20180516.csv"]


def test_smtp_smuggling_yields_one_message(app, smtp_start, smtp_account, smtp_mail):
    server = smtp_start()
    smuggled = smtp_mail.raw(sender=SMTP_SENDER, to=smtp_account.address,
                             parts=[(smtp_mail.plain("20180517.csv"), b"smuggled")], message_id="<s2@x>")
    payload = (
        b"\n.\r\nMAIL FROM:<" + SMTP_SENDER.encode() + b">\r\nRCPT TO:<" + smtp_account.address.encode()
        + b">\r\nDATA\r\n" + smuggled
    )
    first = smtp_mail.raw(sender=SMTP_SENDER, to=smtp_account.address,
                          parts=[(smtp_mail.plain("20180516.csv"), b"first")], message_id="<s1@x>", epilogue=payload)
    session = RawSmtp(server.port)
    try:
        assert session.reply().startswith("220")
        assert session.command(b"EHLO client.example").startswith("250")
        assert session.command(b"MAIL FROM:<" + SMTP_SENDER.encode() + b">").startswith("250")
        assert session.command(b"RCPT TO:<" + smtp_account.address.encode() + b">").startswith("250")
        assert session.command(b"DATA").startswith("354")
        session.sock.sendall(first + b"\r\n.\r\n")
        assert session.reply() == "250 2.0.0 OK: queued"
        # Nothing else was answered: the next reply is the one to our QUIT.
        assert session.command(b"QUIT").startswith("221")
    finally:
        session.close()
    wait_for(lambda: stored(smtp_account.id, 1), what="the spool drain")
    server.stop()  # the drain has nothing more to store: a smuggled second message would be in the DB now
    db.session.rollback()
    assert [i.filename for i in account_imports(smtp_account.id)] == ["20180516.csv"]
    assert spool.pending(spool.mail_folder(app.config["DATA_DIR"])) == []


def test_kill_9_right_after_250_then_restart_imports_exactly_once(app, smtp_account, smtp_mail,
                                                                 smtp_start):
    """The SMTP server runs in its own process (no worker); SIGKILL it on 250, then import."""
    env = dict(os.environ)
    env.update({
        "RENKEI_DATA_DIR": app.config["DATA_DIR"],
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "RENKEI_SECRET_KEY": "test-secret",
        "RENKEI_SMTP_PORT": "0",
        "RENKEI_HOST": "127.0.0.1",
        "RENKEI_MAIL_DOMAIN": app.config["MAIL_DOMAIN"],
        "PYTHONPATH": str(ROOT),
    })
    script = (
        "import sys, threading\n"
        "from app import create_app\n"
        "from servers import smtp\n"
        "server = smtp.start(create_app())\n"
        "print(server.port, flush=True)\n"
        "threading.Event().wait()\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(process.stdout.readline())
        message = smtp_mail.message(SMTP_SENDER, smtp_account.address, [("20180516.csv", smtp_mail.csv())],
                                    message_id="<crash@partner.example>")
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
            client.ehlo()
            client.mail(SMTP_SENDER)
            client.rcpt(smtp_account.address)
            code, _ = client.data(message.as_bytes())
            assert code == 250
            process.send_signal(signal.SIGKILL)  # before QUIT: the process dies right after its 250
            process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == -signal.SIGKILL
    # Acknowledged means durable: the file is in the spool, or the drain already stored it (or both,
    # when the kill fell between its commit and its delete).
    db.session.rollback()
    in_db = [(i.filename, i.status) for i in account_imports(smtp_account.id)]
    in_spool = [spool.read(p) for p in spool.pending(spool.mail_folder(app.config["DATA_DIR"]))]
    assert in_db in ([], [("20180516.csv", Import.QUEUED)])
    assert [(e.kind, e.sender, b"20180516.csv" in e.data) for e in in_spool] in ([], [("mail", SMTP_SENDER, True)])
    assert in_db or in_spool

    # The restarted server drains what the killed one had acknowledged: exactly one import.
    smtp_start()
    with running_worker(app):
        rows = wait_for(lambda: ended_imports(smtp_account.id, 1))
        wait_for(lambda: not spool.pending(spool.mail_folder(app.config["DATA_DIR"])), what="the drained spool")
    db.session.rollback()
    assert [(i.filename, i.status) for i in account_imports(smtp_account.id)] == [("20180516.csv", Import.SUCCEEDED)]


def spool_entry(folder, account_id: int, filename: str, data: bytes) -> Path:
    """A spooled mail carrying one attached file, as the SMTP server writes it before `250`."""
    raw = smtp_message(SMTP_SENDER, "in@renkei.localhost", [(filename, data)]).as_bytes()
    return spool.write_mail(folder, account_ids=[account_id], sender=SMTP_SENDER, raw=raw)


def test_spool_entry_left_by_a_crash_is_imported_when_the_server_starts(app, smtp_start, smtp_account,
                                                                        smtp_mail):
    folder = spool.mail_folder(app.config["DATA_DIR"])
    first = spool_entry(folder, smtp_account.id, "20180516.csv", smtp_mail.csv())
    spool_entry(folder, smtp_account.id, "20180517.csv", smtp_mail.csv())
    assert spool.read(first).account_ids == (smtp_account.id,)

    smtp_start()  # no mail sent: only the leftovers
    rows = wait_for(lambda: stored(smtp_account.id, 2), what="the leftover entries")
    assert [(i.filename, i.status, i.channel, i.sender) for i in rows] == [
        ("20180516.csv", Import.QUEUED, "mail", SMTP_SENDER), ("20180517.csv", Import.QUEUED, "mail", SMTP_SENDER)
    ]
    assert files.read(rows[0].id) == smtp_mail.csv()
    wait_for(lambda: not spool.pending(folder), what="the entries to be deleted")


def test_unrenamed_temporary_spool_file_is_ignored_and_removed(app, smtp_start, smtp_account, smtp_mail):
    folder = spool.mail_folder(app.config["DATA_DIR"])
    partial = folder / (spool.TEMP_PREFIX + "00000000000000000001-000000-cut.entry")
    partial.write_bytes(b'{"account_id": %d, "filename": "20180515.csv"' % smtp_account.id)  # cut mid-header
    spool_entry(folder, smtp_account.id, "20180516.csv", smtp_mail.csv())

    smtp_start()
    assert not partial.exists()  # cleaned before the server accepts mail
    rows = wait_for(lambda: stored(smtp_account.id, 1), what="the whole entry")
    wait_for(lambda: not spool.pending(folder), what="the entry to be deleted")
    db.session.rollback()
    assert [i.filename for i in account_imports(smtp_account.id)] == [i.filename for i in rows] == ["20180516.csv"]


def test_database_failure_during_drain_keeps_the_entry_and_retries(app, smtp_start, smtp_account, smtp_mail, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from app.services import ingest

    real_receive = ingest.receive
    seen: list[list[str]] = []  # the spool's entries at each failed attempt

    def flaky_receive(*args, **kwargs):
        if len(seen) < 3:
            seen.append([p.name for p in spool.pending(spool.mail_folder(app.config["DATA_DIR"]))])
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return real_receive(*args, **kwargs)

    monkeypatch.setattr(ingest, "receive", flaky_receive)
    server = smtp_start()
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address, [("20180516.csv", smtp_mail.csv())])
    assert send(server, message) == {}
    rows = wait_for(lambda: stored(smtp_account.id, 1), what="the retried drain")
    assert [(i.filename, i.status) for i in rows] == [("20180516.csv", Import.QUEUED)]
    assert len(seen) == 3 and seen[0] == seen[1] == seen[2] and len(seen[0]) == 1  # the same entry, kept
    wait_for(lambda: not spool.pending(spool.mail_folder(app.config["DATA_DIR"])), what="the entry deleted")


def test_drain_keeps_the_entry_when_store_fails_and_stores_in_order(tmp_path):
    folder = spool.mail_folder(tmp_path)
    raws = [spool_entry(folder, 1, f"2018051{n}.csv", f"data {n}".encode()).read_bytes().partition(b"\n")[2]
            for n in range(3)]

    def broken(entry):
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError):
        spool.drain(folder, broken)
    assert len(spool.pending(folder)) == 3
    stored_entries = []
    assert spool.drain(folder, stored_entries.append) == 3
    assert [e.data for e in stored_entries] == raws
    assert spool.pending(folder) == []


def test_mail_entry_of_an_earlier_version_is_drained(app, smtp_account, smtp_mail):
    # Before account_ids and delivery ids, a mail entry named its one account only.
    from servers.smtpservices import _AppServices

    folder = spool.mail_folder(app.config["DATA_DIR"])
    raw = smtp_mail.message(SMTP_SENDER, smtp_account.address, [("20180516.csv", smtp_mail.csv())]).as_bytes()
    path = folder / "00000000000000000001-000000-old.entry"
    path.write_bytes(b'{"kind": "mail", "account_id": %d, "sender": "%s", "received_at": ""}\n'
                     % (smtp_account.id, SMTP_SENDER.encode()) + raw)
    assert spool.drain(folder, _AppServices(app).store_spooled) == 1
    db.session.rollback()
    assert [(i.filename, i.channel, i.sender) for i in account_imports(smtp_account.id)] == [
        ("20180516.csv", "mail", SMTP_SENDER)]
    assert spool.pending(folder) == []


def test_one_file_entry_of_still_earlier_versions_is_set_aside_not_imported(app, smtp_account, smtp_mail):
    from servers.smtpservices import _AppServices

    folder = spool.mail_folder(app.config["DATA_DIR"])
    path = folder / "00000000000000000001-000000-file.entry"
    path.write_bytes(b'{"account_id": %d, "filename": "20180516.csv", "sender": null, "dedupe_key": "k", '
                     b'"note": null, "received_at": ""}\n' % smtp_account.id + smtp_mail.csv())
    spool.drain(folder, _AppServices(app).store_spooled)
    db.session.rollback()
    assert account_imports(smtp_account.id) == []
    assert spool.pending(folder) == []
    assert path.with_name(path.name + spool.BAD_SUFFIX).read_bytes().endswith(smtp_mail.csv())


# ---------------------------------------------------------------------------------------
# Limits and TLS


def test_oversize_message_gets_552_and_is_recorded_as_refused(smtp_start, smtp_account, smtp_mail):
    server = smtp_start(SMTP_MAX_BYTES=50_000)
    big = smtp_mail.csv([["No.", "売上"]] + [["1", "1"]] * 20_000)
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address, [("20180516.csv", big)])
    # smtplib announces SIZE= in MAIL FROM: refused before DATA.
    with pytest.raises(smtplib.SMTPSenderRefused) as error:
        send(server, message)
    assert error.value.smtp_code == 552
    db.session.rollback()
    assert account_imports(smtp_account.id) == []  # refused at MAIL FROM: no account known yet
    # A client that does not announce the size is refused after DATA, and the account records it.
    session = RawSmtp(server.port)
    try:
        session.reply()
        session.command(b"EHLO client.example")
        session.command(b"MAIL FROM:<" + SMTP_SENDER.encode() + b">")
        session.command(b"RCPT TO:<" + smtp_account.address.encode() + b">")
        session.command(b"DATA")
        session.sock.sendall(message.as_bytes().replace(b"\n", b"\r\n") + b"\r\n.\r\n")
        assert session.reply().startswith("552 5.3.4")
        # One line longer than the whole cap (bare LF, no CRLF at all) is the same answer, not 500.
        assert session.command(b"MAIL FROM:<" + SMTP_SENDER.encode() + b">").startswith("250")
        assert session.command(b"RCPT TO:<" + smtp_account.address.encode() + b">").startswith("250")
        assert session.command(b"DATA").startswith("354")
        session.sock.sendall(message.as_bytes().replace(b"\r\n", b"\n") + b"\r\n.\r\n")
        assert session.reply().startswith("552 5.3.4")
    finally:
        session.close()
    rows = wait_for(lambda: stored(smtp_account.id, 2), what="the refusal records")
    assert [(i.status, i.filename, i.size) for i in rows] == [(Import.REFUSED, "(メール)", 0)] * 2
    assert "上限(50,000バイト)を超えている" in rows[0].note and SMTP_SENDER in rows[0].note


def test_connection_cap_answers_421(smtp_start):
    server = smtp_start(SMTP_MAX_CONNECTIONS=2)
    first = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    second = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    try:
        with pytest.raises(smtplib.SMTPConnectError) as error:
            smtplib.SMTP("127.0.0.1", server.port, timeout=10)
        assert error.value.smtp_code == 421
    finally:
        first.quit()
    wait_for(lambda: server.active_connections < 2, timeout=10, what="the session to end")
    third = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    assert third.noop()[0] == 250
    third.quit()
    second.quit()


def test_commands_per_session_are_limited(smtp_start):
    server = smtp_start(SMTP_MAX_COMMANDS=3)
    session = RawSmtp(server.port)
    try:
        session.reply()
        for _ in range(3):
            assert session.command(b"NOOP").startswith("250")
        assert session.command(b"NOOP").startswith("421")
    finally:
        session.close()


def test_idle_session_is_closed(smtp_start):
    server = smtp_start(SMTP_TIMEOUT=0.3)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.recv(1024)  # banner
        assert sock.recv(1024) == b""  # the server hung up on its own, well before our timeout


def test_starttls_delivery(smtp_start, smtp_worker, smtp_account, smtp_tls_files, smtp_mail):
    cert, key = smtp_tls_files
    server = smtp_start(SMTP_TLS_CERT=cert, SMTP_TLS_KEY=key, SMTP_REQUIRE_TLS="1")
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address, [("20180516.csv", smtp_mail.csv())])
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert client.mail(SMTP_SENDER)[0] == 530  # TLS is required first
        context = ssl.create_default_context(cafile=cert)
        client.starttls(context=context)
        client.ehlo()
        client.send_message(message)
    rows = wait_for(lambda: ended_imports(smtp_account.id, 1))
    assert rows[0].status == Import.SUCCEEDED


# ---------------------------------------------------------------------------------------
# The handler alone, with fakes (no database, no socket)


def run_coroutine(coroutine):
    """Run a coroutine on a fresh loop in its own thread (another test may leave a loop running in this one)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class Fakes:
    def __init__(self, recipient: Recipient | None):
        self.recipient = recipient
        self.calls: list[tuple] = []

    def handler(self) -> MailHandler:
        return MailHandler(
            resolve_recipient=lambda address: self.recipient,
            spool_mail=lambda *a, **k: self.calls.append(("spool", a, k)),
            record_refusal=lambda *a, **k: self.calls.append(("refusal", a, k)),
        )

    def importer(self, **options) -> MailImporter:
        """A MailImporter whose ingest and record_failure are recorded in `calls`; `options` as for it (parse=…)."""
        return MailImporter(
            ingest=lambda *a, **k: self.calls.append(("ingest", a, k)),
            record_failure=lambda *a, **k: self.calls.append(("failure", a, k)),
            **options,
        )


RECIPIENT = Recipient(account_id=7, label="acme", mode="mail", status="active",
                      senders=frozenset({"sales@partner.example"}))


def test_handler_spools_the_whole_message_once_with_its_sender(smtp_mail):
    fakes = Fakes(RECIPIENT)
    raw = smtp_mail.raw(sender="Sales <SALES@partner.example>", to="x",
                        parts=[(smtp_mail.plain("a.csv"), b"1"), (smtp_mail.plain("b.csv"), b"2")])
    reply = fakes.handler().deliver(RECIPIENT, raw)
    assert reply.startswith("250")
    assert fakes.calls == [("spool", ([7], raw), {"sender": "sales@partner.example", "origin": None})]


def test_handler_does_not_parse_the_attachments_before_250(smtp_mail):
    def no_full_parse(raw):
        raise AssertionError("full parse before 250")

    calls = []
    handler = MailHandler(resolve_recipient=lambda a: RECIPIENT, spool_mail=lambda *a, **k: calls.append(a),
                          record_refusal=lambda *a, **k: calls.append(a), parse=no_full_parse)
    raw = smtp_mail.raw(sender=SMTP_SENDER, to="x",
                        parts=[(smtp_mail.plain("a.csv"), b"1")])
    accepted = Recipient(account_id=7, label="acme", mode="mail", status="active",
                         senders=frozenset({SMTP_SENDER}))
    assert handler.deliver(accepted, raw).startswith("250")
    assert calls == [([7], raw)]


def test_importer_hands_each_csv_to_ingest_with_sender_and_dedupe_key(smtp_mail):
    fakes = Fakes(RECIPIENT)
    raw = smtp_mail.raw(sender="Sales <SALES@partner.example>", to="x",
                        parts=[(smtp_mail.plain("a.csv"), b"1"), (smtp_mail.plain("b.csv"), b"2")])
    assert fakes.importer().import_mail(7, raw, sender="sales@partner.example", delivery="d1") == 2
    assert [(c[0], c[1][1], c[1][2], c[2]["sender"]) for c in fakes.calls] == [
        ("ingest", "a.csv", b"1", "sales@partner.example"), ("ingest", "b.csv", b"2", "sales@partner.example")
    ]
    assert fakes.calls[0][2]["dedupe_key"] != fakes.calls[1][2]["dedupe_key"]
    # A drain repeated after a crash hands over the same keys (ingest skips what it already has) ...
    first = [c[2]["dedupe_key"] for c in fakes.calls]
    fakes.calls.clear()
    fakes.importer().import_mail(7, raw, sender="sales@partner.example", delivery="d1")
    assert [c[2]["dedupe_key"] for c in fakes.calls] == first
    # ... while another delivery of the same message (same Message-ID) has keys of its own.
    fakes.calls.clear()
    fakes.importer().import_mail(7, raw, sender="sales@partner.example", delivery="d2")
    assert not {c[2]["dedupe_key"] for c in fakes.calls} & set(first)


def test_importer_records_an_unreadable_mail_as_a_failure_with_a_stable_key(smtp_mail):
    from servers.mailparse import MailUnreadable

    def unreadable(raw):
        raise MailUnreadable("メールの入れ子(マルチパート)が深すぎるため読み取れません")

    fakes = Fakes(RECIPIENT)
    importer = fakes.importer(parse=unreadable)
    raw = smtp_mail.raw(sender=SMTP_SENDER, to="x", parts=[(smtp_mail.plain("a.csv"), b"1")])
    importer.import_mail(7, raw, sender=SMTP_SENDER, delivery="d1")
    importer.import_mail(7, raw, sender=SMTP_SENDER, delivery="d1")
    calls = fakes.calls
    assert [c[0] for c in calls] == ["failure", "failure"]
    assert calls[0][2]["filename"] == "(メール)" and calls[0][2]["sender"] == SMTP_SENDER
    assert "深すぎる" in calls[0][2]["message"] and "送り直してください" in calls[0][2]["message"]
    assert calls[0][2]["dedupe_key"] == calls[1][2]["dedupe_key"]


def test_importer_reports_an_unexpected_parser_error_instead_of_retrying_for_ever(smtp_mail):
    def broken(raw):
        raise ValueError("a parser bug")

    fakes = Fakes(RECIPIENT)
    raw = smtp_mail.raw(sender=SMTP_SENDER, to="x", parts=[(smtp_mail.plain("a.csv"), b"1")])
    assert fakes.importer(parse=broken).import_mail(7, raw, sender=SMTP_SENDER) == 1
    assert [c[0] for c in fakes.calls] == ["failure"]
    assert "解釈できませんでした" in fakes.calls[0][2]["message"]


def test_handler_rcpt_refuses_unknown_and_accepts_known():
    from aiosmtpd.smtp import Envelope

    async def rcpt(fakes, envelope):
        return await fakes.handler().handle_RCPT(None, None, envelope, "sp-x@renkei.localhost", [])

    envelope = Envelope()
    envelope.mail_from = "sales@partner.example"
    assert run_coroutine(rcpt(Fakes(None), envelope)).startswith("550 5.1.1")
    assert envelope.rcpt_tos == []
    assert run_coroutine(rcpt(Fakes(RECIPIENT), envelope)).startswith("250")
    assert envelope.rcpt_tos == ["sp-x@renkei.localhost"]


def test_handler_answers_451_when_storing_fails(smtp_mail):
    from aiosmtpd.smtp import Envelope

    def broken(*args, **kwargs):
        raise RuntimeError("database is down")

    handler = MailHandler(resolve_recipient=lambda a: RECIPIENT, spool_mail=broken, record_refusal=broken)
    envelope = Envelope()
    envelope.renkei_recipients = {RECIPIENT.account_id: RECIPIENT}
    envelope.original_content = smtp_mail.raw(sender=SMTP_SENDER, to="x", parts=[(smtp_mail.plain("a.csv"), b"1")])
    assert run_coroutine(handler.handle_DATA(None, None, envelope)).startswith("451 4.3.0")


# ---------------------------------------------------------------------------------------
# Real mail clients, to one account and to two (each RCPT accepted, one import per account)


def client_binary(name: str) -> str:
    path = shutil.which(name) or f"/usr/bin/{name}"
    if not os.path.exists(path):
        pytest.fail(f"{name} is not installed (Debian package {name}); CI installs it")
    return path


def run_client(argv: list[str], *, env: dict[str, str] | None = None, stdin: bytes = b"") -> None:
    result = subprocess.run(argv, input=stdin, capture_output=True, timeout=60,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, (argv[0], result.returncode, result.stdout, result.stderr)


def lf_mail(to: list[str], csv_bytes: bytes, name: str = "20180516.csv") -> bytes:
    """A message as a user's mail program writes it to a file: LF line ends, base64 attachment."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = SMTP_SENDER
    message["To"] = ", ".join(to)
    message["Subject"] = "売上データ"
    message.set_content("売上データを送ります。")
    message.add_attachment(csv_bytes, maintype="text", subtype="csv", filename=name)
    raw = message.as_bytes()
    assert b"\r\n" not in raw and len(raw) > 1000
    return raw


def send_with_mutt(port: int, to: list[str], csv_file: Path, home: Path) -> None:
    muttrc = home / "muttrc"
    muttrc.write_text(
        f'set smtp_url="smtp://127.0.0.1:{port}/"\nset from="{SMTP_SENDER}"\nset use_from=yes\n'
        'set ssl_starttls=no\nset ssl_force_tls=no\nset record=""\nset copy=no\nset charset="utf-8"\n'
        'set send_charset="utf-8"\n', encoding="utf-8")
    run_client([client_binary("mutt"), "-n", "-F", str(muttrc), "-s", "売上データ", "-a", str(csv_file), "--", *to],
               env={"HOME": str(home), "LANG": "C.UTF-8"}, stdin="売上データを送ります。\n".encode())


def send_with_s_nail(port: int, to: list[str], csv_file: Path, home: Path) -> None:
    run_client([client_binary("s-nail"), "-n", "-#", "-S", "v15-compat", "-S", f"mta=smtp://127.0.0.1:{port}",
                "-S", f"from={SMTP_SENDER}", "-S", "smtp-auth=none", "-S", "sendwait", "-S", "ttycharset=utf-8",
                "-s", "売上データ", "-a", f"{csv_file}=cp932", *to],  # the CSV is Shift_JIS: sent unconverted
               env={"HOME": str(home), "LANG": "C.UTF-8", "MAILRC": "/dev/null"},
               stdin="売上データを送ります。\n".encode())


def send_with_msmtp(port: int, to: list[str], csv_file: Path, home: Path) -> None:
    run_client([client_binary("msmtp"), "--host=127.0.0.1", f"--port={port}", "--auth=off", "--tls=off",
                f"--from={SMTP_SENDER}", "--", *to],
               env={"HOME": str(home)}, stdin=lf_mail(to, csv_file.read_bytes(), csv_file.name))


def send_with_curl(port: int, to: list[str], csv_file: Path, home: Path) -> None:
    mail = home / "mail.txt"
    mail.write_bytes(lf_mail(to, csv_file.read_bytes(), csv_file.name))
    rcpts = [arg for address in to for arg in ("--mail-rcpt", address)]
    run_client([client_binary("curl"), "--silent", "--show-error", "--fail", f"smtp://127.0.0.1:{port}",
                "--mail-from", SMTP_SENDER, *rcpts, "-T", str(mail)])  # no --crlf: LF line ends as they are


CLIENTS = {"mutt": send_with_mutt, "s-nail": send_with_s_nail, "msmtp": send_with_msmtp, "curl": send_with_curl}


@pytest.mark.parametrize("accounts", [1, 2], ids=["one-account", "two-accounts"])
@pytest.mark.parametrize("client", list(CLIENTS))
def test_real_client_sends_a_csv_attachment(client, accounts, smtp_server, smtp_account, make_account, smtp_mail, tmp_path):
    targets = [(smtp_account.id, smtp_account.address)]
    if accounts == 2:
        targets.append(other_mail_account(make_account, "other", [SMTP_SENDER]))
    # Long enough that an LF-only message (curl) is far over 1,000 bytes before its first CRLF.
    csv_bytes = smtp_mail.csv([["No.", "売上", "粗利", "件数", "備考"]]
                              + [[str(n % 2 + 1), "1,000", "300", "1", f"髙橋様 {n}件目"] for n in range(40)])
    csv_file = tmp_path / "20180516.csv"
    csv_file.write_bytes(csv_bytes)
    CLIENTS[client](smtp_server.port, [address for _, address in targets], csv_file, tmp_path)
    for account_id, _ in targets:
        rows = wait_for(lambda: ended_imports(account_id, 1), what=f"the import of account #{account_id}")
        assert [(i.filename, i.status, i.sender, i.row_count) for i in rows] == [
            ("20180516.csv", Import.SUCCEEDED, SMTP_SENDER, 40)]
        assert files.read(rows[0].id) == csv_bytes


# ---------------------------------------------------------------------------------------
# Bare LF and long lines: accepted up to the size cap, as Postfix does


def test_smtplib_sendmail_with_lf_only_bytes_is_imported(smtp_server, smtp_account, smtp_mail):
    csv_bytes = smtp_mail.csv([["No.", "売上", "粗利", "件数", "備考"]]
                              + [[str(n % 3 + 1), "1", "1", "1", "x" * 40] for n in range(400)])
    raw = lf_mail([smtp_account.address], csv_bytes)
    assert len(raw) > 10_000
    assert send_raw(smtp_server, raw, smtp_account.address) == {}  # smtplib sends the LF bytes unchanged
    rows = wait_for(lambda: ended_imports(smtp_account.id, 1))
    assert [(i.filename, i.status, i.row_count) for i in rows] == [("20180516.csv", Import.SUCCEEDED, 400)]
    assert files.read(rows[0].id) == csv_bytes


def test_a_dot_stuffed_line_after_a_bare_lf_keeps_its_one_dot(smtp_server, smtp_account, smtp_mail):
    # smtplib doubles a leading dot after LF too; the server reads LF as a line end for that as well.
    data = b"No.,\x94\x84\x8f\xe3,\x91\x65\x97\x98,\x8c\x8f\x90\x94,\x94\xf5\x8d\x6c\n1,1,1,1,ok\n.2,1,1,1,x\n"
    raw = (f"From: {SMTP_SENDER}\nTo: {smtp_account.address}\nSubject: dots\nMIME-Version: 1.0\n"
           "Content-Type: text/csv\nContent-Transfer-Encoding: 8bit\n"
           'Content-Disposition: attachment; filename="20180516.csv"\n\n').encode() + data
    send_raw(smtp_server, raw, smtp_account.address)
    rows = wait_for(lambda: stored(smtp_account.id, 1))
    # smtplib ends the data with a CRLF of its own when it does not end in one: one empty line more.
    stored_bytes = files.read(rows[0].id)
    assert stored_bytes == data.replace(b"\n", b"\r\n") + b"\r\n"


def test_an_unwrapped_200_kb_base64_line_is_imported(smtp_server, smtp_account, smtp_mail):
    import base64

    csv_bytes = smtp_mail.csv([["No.", "売上", "粗利", "件数", "備考"]]
                              + [[str(n % 3 + 1), "1", "1", "1", "y" * 100] for n in range(1400)])
    line = base64.b64encode(csv_bytes)
    assert len(line) > 200_000
    raw = (f"From: {SMTP_SENDER}\r\nTo: {smtp_account.address}\r\nSubject: one line\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
           '--b\r\nContent-Type: text/csv\r\nContent-Transfer-Encoding: base64\r\n'
           'Content-Disposition: attachment; filename="20180516.csv"\r\n\r\n').encode() + line + b"\r\n--b--\r\n"
    assert send_raw(smtp_server, raw, smtp_account.address) == {}
    rows = wait_for(lambda: ended_imports(smtp_account.id, 1))
    assert [(i.filename, i.status, i.row_count) for i in rows] == [("20180516.csv", Import.SUCCEEDED, 1400)]
