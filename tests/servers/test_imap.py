"""The mailbox fetcher (servers/imapfetch.py) against a real Dovecot on loopback (tests/fixtures/dovecot.py).

Messages are put in with IMAP APPEND; the fetch runs in the test's thread (Fetcher.fetch) with
an injected clock, so nothing waits for a minute to pass.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Import
from app.models_links import FetchedMessage, Mailbox
from app.services import files, mailbox
from servers import imapfetch
from servers.imapfetch import Fetcher, RunningFetcher
from tests.fixtures.dovecot import WRONG_PASSWORD
from tests.fixtures.ingest import account_imports
from tests.fixtures.smtp import SMTP_SENDER

NOW = dt.datetime(2030, 5, 16, 9, 0, tzinfo=dt.timezone.utc)
PROCESSED = "Renkei/処理済"
DATA = Path(__file__).resolve().parents[1] / "data"


class Crash(BaseException):
    """Stands for the process dying: no `except Exception` of the fetcher catches it."""


class Clock:
    def __init__(self, now: dt.datetime = NOW):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def use_mailbox(account_id: int, dovecot, user, *, tls: str = "implicit", verify: bool = True,
                password: str | None = None) -> None:
    port = dovecot.tls_port if tls == "implicit" else dovecot.port
    changes = {"method": "imap", "host": dovecot.host, "port": str(port), "tls": tls, "verify": verify,
               "username": user.name, "password": password or user.password, "folder": "", "processed_folder": ""}
    mailbox.save(account_id, mailbox.parse(changes, mailbox.get(account_id)), actor="test")


@pytest.fixture
def fetcher(app, dovecot):
    app.config["IMAP_CA_FILE"] = dovecot.ca_path  # the test CA, as an operator with a private CA sets it
    app.config["IMAP_TIMEOUT"] = 10.0
    return Fetcher(app, clock=Clock())


def shaped_mails(smtp_mail, to: str) -> dict[str, tuple[str, bytes]]:
    """The attachment-name shapes of the SMTP tests: (file name, raw message)."""
    name = "売上データ_20180516.csv"
    return {
        "thunderbird-rfc2231": (name, smtp_mail.raw(sender=SMTP_SENDER, to=to, parts=[(smtp_mail.rfc2231(name),
                                                                                         smtp_mail.csv())])),
        "gmail-rfc2047-utf8": (name, smtp_mail.raw(sender=SMTP_SENDER, to=to, parts=[(smtp_mail.rfc2047(name),
                                                                                        smtp_mail.csv())])),
        "outlook-rfc2047-iso2022jp": (name, smtp_mail.raw(sender=SMTP_SENDER, to=to, parts=[
            (smtp_mail.rfc2047(name, "ISO-2022-JP"), smtp_mail.csv())])),
        "plain-name": ("20180516.csv", smtp_mail.raw(sender=SMTP_SENDER, to=to, parts=[
            (smtp_mail.plain("20180516.csv"), smtp_mail.csv())])),
    }


def box(account_id: int) -> Mailbox:
    db.session.expire_all()
    return db.session.scalar(select(Mailbox).where(Mailbox.account_id == account_id))


@pytest.mark.parametrize("shape", ["thunderbird-rfc2231", "gmail-rfc2047-utf8", "outlook-rfc2047-iso2022jp",
                                   "plain-name"])
def test_a_message_is_imported_then_moved_to_the_processed_folder(shape, fetcher, dovecot, dovecot_user,
                                                                   smtp_account, smtp_mail):
    name, raw = shaped_mails(smtp_mail, dovecot_user.name)[shape]
    use_mailbox(smtp_account.id, dovecot, dovecot_user)  # implicit TLS, certificate checked against the test CA
    dovecot.append(dovecot_user, "INBOX", raw)

    result = fetcher.fetch(smtp_account.id)

    assert (result.ok, result.handed, result.moved) == (True, 1, 1), result.text
    rows = account_imports(smtp_account.id)
    assert [(i.filename, i.channel, i.status, i.sender) for i in rows] == [(name, "mail", Import.QUEUED, SMTP_SENDER)]
    assert files.read(rows[0].id) == smtp_mail.csv()
    assert dovecot.list_folder(dovecot_user, "INBOX") == []
    assert [m.replace(b"\r\n", b"\n") for m in dovecot.list_folder(dovecot_user, PROCESSED)] == [
        raw.replace(b"\r\n", b"\n")]
    assert PROCESSED in dovecot.folders(dovecot_user)
    assert box(smtp_account.id).last_success_at == NOW.replace(tzinfo=None)

    # The next minute finds nothing new and imports nothing twice.
    again = fetcher.fetch(smtp_account.id)
    assert (again.ok, again.handed, again.moved) == (True, 0, 0)
    assert len(account_imports(smtp_account.id)) == 1


def test_starttls_with_the_certificate_checked(fetcher, dovecot, dovecot_user, smtp_account, smtp_mail):
    name, raw = shaped_mails(smtp_mail, dovecot_user.name)["plain-name"]
    use_mailbox(smtp_account.id, dovecot, dovecot_user, tls="starttls")
    dovecot.append(dovecot_user, "INBOX", raw)
    result = fetcher.fetch(smtp_account.id)
    assert result.ok, result.text
    assert [i.filename for i in account_imports(smtp_account.id)] == [name]
    assert len(dovecot.list_folder(dovecot_user, PROCESSED)) == 1


def test_an_unknown_ca_is_refused_unless_the_check_is_off(app, fetcher, dovecot, dovecot_user, smtp_account,
                                                          smtp_mail):
    app.config["IMAP_CA_FILE"] = None
    _, raw = shaped_mails(smtp_mail, dovecot_user.name)["plain-name"]
    dovecot.append(dovecot_user, "INBOX", raw)
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    result = Fetcher(app, clock=Clock()).fetch(smtp_account.id)
    assert not result.ok and "サーバー証明書を確認できません" in result.text
    assert account_imports(smtp_account.id) == []
    assert len(dovecot.list_folder(dovecot_user, "INBOX")) == 1

    use_mailbox(smtp_account.id, dovecot, dovecot_user, verify=False)
    assert Fetcher(app, clock=Clock()).fetch(smtp_account.id).ok
    assert len(account_imports(smtp_account.id)) == 1


def test_a_wrong_password_is_shown_on_the_tab_and_backed_off(app, fetcher, dovecot, dovecot_user, smtp_account,
                                                             client, login):
    use_mailbox(smtp_account.id, dovecot, dovecot_user, password=WRONG_PASSWORD)
    clock = fetcher.clock
    part = RunningFetcher(fetcher)

    assert [r.ok for r in part.tick()] == [False]
    row = box(smtp_account.id)
    assert "ログインできません(ユーザー名かパスワードが違います)" in row.last_error
    assert (row.failures, row.retry_at) == (1, (NOW + dt.timedelta(minutes=1)).replace(tzinfo=None))
    login(smtp_account.email)
    html = client.get("/settings/integration").get_data(as_text=True)
    assert "ログインできません(ユーザー名かパスワードが違います)" in html and 'id="imap-last-error"' in html

    # Backed off: the same minute does not try again; later waits double: 1, 2, 4 … up to 30 minutes.
    assert part.tick() == []
    waits = []
    for _ in range(7):
        clock.now = box(smtp_account.id).retry_at.replace(tzinfo=dt.timezone.utc)
        before = clock.now
        assert [r.ok for r in part.tick()] == [False]
        waits.append(int((box(smtp_account.id).retry_at.replace(tzinfo=dt.timezone.utc) - before).total_seconds() // 60))
    assert waits == [2, 4, 8, 16, 30, 30, 30]

    # The right password, saved on the tab, ends the wait at once.
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    assert [r.ok for r in part.tick()] == [True]
    assert (box(smtp_account.id).failures, box(smtp_account.id).retry_at) == (0, None)


def test_a_crash_after_the_uid_is_recorded_and_before_the_move_imports_once(app, dovecot, dovecot_user,
                                                                             smtp_account, smtp_mail, fetcher):
    _, raw = shaped_mails(smtp_mail, dovecot_user.name)["plain-name"]
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    dovecot.append(dovecot_user, "INBOX", raw)

    def crash(uid):
        raise Crash()

    with pytest.raises(Crash):
        Fetcher(app, clock=Clock(), after_record=crash).fetch(smtp_account.id)
    assert len(dovecot.list_folder(dovecot_user, "INBOX")) == 1  # not moved
    assert db.session.scalar(select(db.func.count()).select_from(FetchedMessage)) == 1

    result = fetcher.fetch(smtp_account.id)  # the restart
    assert (result.ok, result.handed, result.moved) == (True, 0, 1)
    assert len(account_imports(smtp_account.id)) == 1
    assert dovecot.list_folder(dovecot_user, "INBOX") == []
    assert len(dovecot.list_folder(dovecot_user, PROCESSED)) == 1


def test_a_crash_after_storing_and_before_the_uid_is_recorded_imports_once(app, dovecot, dovecot_user,
                                                                            smtp_account, smtp_mail, fetcher,
                                                                            monkeypatch):
    _, raw = shaped_mails(smtp_mail, dovecot_user.name)["plain-name"]
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    dovecot.append(dovecot_user, "INBOX", raw)

    def crash(*args):
        raise Crash()

    with monkeypatch.context() as patch:
        patch.setattr(mailbox, "record_fetched", crash)
        patch.setattr(Fetcher, "_drain", lambda self, label: None)  # the process died before its drain too
        with pytest.raises(Crash):
            fetcher.fetch(smtp_account.id)
    assert account_imports(smtp_account.id) == []  # only in the spool so far
    assert len(dovecot.list_folder(dovecot_user, "INBOX")) == 1

    restarted = Fetcher(app, clock=Clock())
    result = restarted.fetch(smtp_account.id)  # fetched again: the same spool name, the same dedupe keys
    assert (result.ok, result.handed, result.moved) == (True, 1, 1)
    assert len(account_imports(smtp_account.id)) == 1


def test_a_sender_not_registered_is_refused_on_from_and_on_return_path(fetcher, dovecot, dovecot_user,
                                                                        smtp_account, smtp_mail):
    to = dovecot_user.name
    stranger = smtp_mail.raw(sender="someone@elsewhere.example", to=to,
                             parts=[(smtp_mail.plain("20180516.csv"), smtp_mail.csv())])
    forged = b"Return-Path: <bulk@elsewhere.example>\r\n" + smtp_mail.raw(
        sender=SMTP_SENDER, to=to, parts=[(smtp_mail.plain("20180517.csv"), smtp_mail.csv())])
    bounce = b"Return-Path: <>\r\n" + smtp_mail.raw(sender=SMTP_SENDER, to=to,
                                                    parts=[(smtp_mail.plain("20180518.csv"), smtp_mail.csv())])
    good = b"Return-Path: <" + SMTP_SENDER.encode() + b">\r\n" + smtp_mail.raw(
        sender=SMTP_SENDER, to=to, parts=[(smtp_mail.plain("20180519.csv"), smtp_mail.csv())])
    for raw in (stranger, forged, bounce, good):
        dovecot.append(dovecot_user, "INBOX", raw)
    use_mailbox(smtp_account.id, dovecot, dovecot_user)

    result = fetcher.fetch(smtp_account.id)

    assert (result.handed, result.moved) == (4, 4)
    rows = account_imports(smtp_account.id)
    assert [(i.status, i.filename) for i in rows] == [
        (Import.REFUSED, "20180516.csv"), (Import.REFUSED, "(メール)"), (Import.REFUSED, "(メール)"),
        (Import.QUEUED, "20180519.csv")]
    assert "送信元メールアドレスに登録されていない差出人" in rows[0].note
    assert "bulk@elsewhere.example" in rows[1].note
    assert "エラー通知メール" in rows[2].note
    assert rows[3].mail_from == SMTP_SENDER
    assert dovecot.list_folder(dovecot_user, "INBOX") == []  # refused ones are moved too: never recorded twice


def test_the_cpython_email_corpus_is_fetched_and_each_message_answered_in_the_history(fetcher, dovecot,
                                                                                      dovecot_user, smtp_account):
    test_email = pytest.importorskip("test.test_email", reason="CPython's test package is not installed")
    corpus = sorted((Path(test_email.__file__).parent / "data").glob("msg_*.txt"))
    assert len(corpus) > 40
    for path in corpus:
        dovecot.append(dovecot_user, "INBOX", path.read_bytes())
    use_mailbox(smtp_account.id, dovecot, dovecot_user)

    result = fetcher.fetch(smtp_account.id)

    assert result.ok, result.text
    assert (result.handed, result.moved) == (len(corpus), len(corpus))
    rows = account_imports(smtp_account.id)
    # None of them is from the registered sender: each is one refusal in 取込履歴.
    assert len(rows) == len(corpus)
    assert {i.status for i in rows} == {Import.REFUSED}
    assert dovecot.list_folder(dovecot_user, "INBOX") == []
    assert len(dovecot.list_folder(dovecot_user, PROCESSED)) == len(corpus)


def test_the_eml_samples_of_the_smtp_tests_are_imported(fetcher, dovecot, dovecot_user, smtp_account):
    samples = sorted(DATA.glob("smtp_*.eml"))
    for path in samples:
        dovecot.append(dovecot_user, "INBOX", path.read_bytes())
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    assert fetcher.fetch(smtp_account.id).ok
    rows = account_imports(smtp_account.id)
    assert len(rows) == len(samples) and {i.status for i in rows} == {Import.QUEUED}
    assert {i.filename for i in rows} == {"売上データ_20180516.csv"}


def test_fetch_now_from_the_cli_and_the_part_fetches_only_due_mail_accounts(app, runner, fetcher, dovecot,
                                                                            dovecot_user, smtp_account, smtp_mail,
                                                                            make_account):
    app.config["IMAP_CA_FILE"] = dovecot.ca_path
    _, raw = shaped_mails(smtp_mail, dovecot_user.name)["plain-name"]
    dovecot.append(dovecot_user, "INBOX", raw)
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    other = make_account("other", mode="ftp", error_to=["ops@other.example"])
    use_mailbox(other.id, dovecot, dovecot_user)
    assert fetcher.due() == [smtp_account.id]  # an FTP account's mailbox is left alone

    result = runner.invoke(args=["integration", "fetch-now", "acme"])
    assert result.exit_code == 0, result.output
    assert "取得 1通、移動 1通" in result.output
    assert len(account_imports(smtp_account.id)) == 1

    refused = runner.invoke(args=["integration", "fetch-now", "other"])
    assert refused.exit_code != 0 and "メール添付連動" in refused.output


def test_the_part_starts_stops_and_reports_alive(app, fetcher):
    part = RunningFetcher(fetcher, poll_seconds=3600).start()
    try:
        assert part.alive()
    finally:
        part.stop(timeout=10)
    assert not part.alive()
    assert imapfetch.POLL_SECONDS == 60.0


@pytest.mark.parametrize("name", ["Renkei/処理済", "A&B", "受信トレイ/2018年/売上 データ", "ASCII only", "日本語&mixed~"])
def test_folder_names_are_encoded_in_modified_utf7(name):
    from servers.imapclient import encode_folder
    from tests.fixtures.imap_names import imap_utf7, imap_utf7_decode

    encoded = encode_folder(name)
    assert encoded.isascii() and imap_utf7_decode(encoded) == name
    assert encoded == imap_utf7(name)  # the one spelling RFC 3501 allows, by the codec-built oracle


def test_a_server_that_is_down_is_backed_off_and_fetched_once_it_is_back(app, own_dovecot, smtp_account, smtp_mail):
    app.config["IMAP_CA_FILE"] = own_dovecot.ca_path
    user = own_dovecot.add_user("clerk", "pw-clerk")
    _, raw = shaped_mails(smtp_mail, user.name)["plain-name"]
    own_dovecot.append(user, "INBOX", raw)
    use_mailbox(smtp_account.id, own_dovecot, user)
    clock = Clock()
    part = RunningFetcher(Fetcher(app, clock=clock))

    own_dovecot.stop()
    assert [r.ok for r in part.tick()] == [False]
    row = box(smtp_account.id)
    assert f"IMAPサーバー {own_dovecot.host}:{own_dovecot.tls_port} に接続できません" in row.last_error
    assert row.retry_at == (NOW + dt.timedelta(minutes=1)).replace(tzinfo=None)

    own_dovecot.start()
    clock.now = NOW + dt.timedelta(minutes=1)
    assert [r.ok for r in part.tick()] == [True]
    assert len(account_imports(smtp_account.id)) == 1
    assert box(smtp_account.id).last_success_at == clock.now.replace(tzinfo=None)


def without_capabilities(monkeypatch, missing: tuple[str, ...]) -> None:
    """Make the fetcher's client see a server that lacks `missing` (e.g. MOVE)."""
    from servers.imapclient import MailboxClient

    enter = MailboxClient.__enter__

    def without(self):
        client = enter(self)
        client.conn.capabilities = tuple(c for c in client.conn.capabilities if c not in missing)
        return client

    monkeypatch.setattr(MailboxClient, "__enter__", without)


@pytest.mark.parametrize("missing", [("MOVE",), ("MOVE", "UIDPLUS")], ids=["no-move", "no-move-no-uidplus"])
def test_without_move_the_message_is_copied_and_only_that_one_is_marked_deleted(missing, fetcher, dovecot,
                                                                               dovecot_user, smtp_account, smtp_mail,
                                                                               monkeypatch):
    without_capabilities(monkeypatch, missing)
    _, raw = shaped_mails(smtp_mail, dovecot_user.name)["plain-name"]
    # Someone's own message already marked \Deleted (never ours to expunge), then the mail to import.
    dovecot.append(dovecot_user, "INBOX", b"From: me@acme.example\r\nSubject: draft\r\n\r\nkeep\r\n", flags="\\Deleted")
    dovecot.append(dovecot_user, "INBOX", raw)
    use_mailbox(smtp_account.id, dovecot, dovecot_user)

    assert fetcher.fetch(smtp_account.id).ok
    assert fetcher.fetch(smtp_account.id).handed == 0  # a copy left marked \Deleted is not fetched again
    assert len(account_imports(smtp_account.id)) == 1
    assert len(dovecot.list_folder(dovecot_user, PROCESSED)) == 1
    inbox = dovecot.messages(dovecot_user, "INBOX")
    assert b"draft" in inbox[0].raw  # UID EXPUNGE took only our message
    assert len(inbox) == (1 if "UIDPLUS" not in missing else 2)


def test_a_message_over_the_size_cap_is_refused_without_download_and_moved(app, fetcher, dovecot, dovecot_user,
                                                                           smtp_account, smtp_mail):
    app.config["SMTP_MAX_BYTES"] = 500
    _, raw = shaped_mails(smtp_mail, dovecot_user.name)["plain-name"]
    assert len(raw) > 500
    dovecot.append(dovecot_user, "INBOX", raw)
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    result = Fetcher(app, clock=Clock()).fetch(smtp_account.id)
    assert (result.ok, result.handed, result.moved) == (True, 1, 1)
    rows = account_imports(smtp_account.id)
    assert [(i.status, i.filename) for i in rows] == [(Import.REFUSED, "(メール)")]
    assert "上限(500バイト)" in rows[0].note


def test_the_fetch_now_button_fetches_and_says_what_it_did(app, fetcher, dovecot, dovecot_user, smtp_account,
                                                          smtp_mail, client, login):
    _, raw = shaped_mails(smtp_mail, dovecot_user.name)["plain-name"]
    dovecot.append(dovecot_user, "INBOX", raw)
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    login(smtp_account.email)
    response = client.post("/settings/integration/fetch-now")
    assert response.status_code == 302 and response.headers["Location"].endswith("#imap-fetch-result")
    html = client.get("/settings/integration").get_data(as_text=True)
    assert "メールボックスを確認しました(取得 1通、移動 1通)。" in html
    assert len(account_imports(smtp_account.id)) == 1
    assert dovecot.list_folder(dovecot_user, "INBOX") == []


def test_the_record_keeps_only_what_the_folder_can_still_hold(app, smtp_account):
    # Without forgetting, the record of fetched messages would grow with the years.
    for uid in range(1, 6):
        mailbox.record_fetched(smtp_account.id, 7, uid)
    mailbox.record_fetched(smtp_account.id, 8, 5)

    mailbox.forget_moved(smtp_account.id, 7, 4)
    assert mailbox.fetched_uids(smtp_account.id, 7) == {4, 5}
    assert mailbox.fetched_uids(smtp_account.id, 8) == set()  # an earlier UIDVALIDITY: never seen again


def test_a_fetch_forgets_the_messages_moved_away_by_the_fetches_before(fetcher, dovecot, dovecot_user,
                                                                       smtp_account, smtp_mail):
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    for day in (16, 17, 18):
        dovecot.append(dovecot_user, "INBOX", smtp_mail.raw(sender=SMTP_SENDER, to=dovecot_user.name, parts=[
            (smtp_mail.plain(f"201805{day}.csv"), smtp_mail.csv())]))
        result = fetcher.fetch(smtp_account.id)
        assert (result.ok, result.handed, result.moved) == (True, 1, 1)
        assert db.session.scalar(select(db.func.count()).select_from(FetchedMessage)) == 1
    assert len(account_imports(smtp_account.id)) == 3


def test_a_mailbox_set_up_from_the_cli_is_fetched(app, runner, fetcher, dovecot, dovecot_user, smtp_account,
                                                  smtp_mail):
    import json

    _, raw = shaped_mails(smtp_mail, dovecot_user.name)["plain-name"]
    dovecot.append(dovecot_user, "INBOX", raw)
    saved = runner.invoke(args=["integration", "mailbox", "acme", "--method", "imap", "--host", dovecot.host,
                                "--port", str(dovecot.tls_port), "--tls", "implicit", "--username",
                                dovecot_user.name, "--password-stdin"], input=f"{dovecot_user.password}\n")
    assert saved.exit_code == 0, saved.output

    fetched = runner.invoke(args=["integration", "fetch-now", "acme"])
    assert fetched.exit_code == 0, fetched.output
    assert "取得 1通、移動 1通" in fetched.output
    assert len(account_imports(smtp_account.id)) == 1
    assert len(dovecot.list_folder(dovecot_user, PROCESSED)) == 1
    shown = json.loads(runner.invoke(args=["integration", "mailbox", "acme"]).stdout)
    assert shown["last_success_at"] is not None and shown["last_error"] is None


def test_a_copy_left_marked_deleted_keeps_its_record_and_is_not_imported_again_when_undeleted(
        fetcher, dovecot, dovecot_user, smtp_account, smtp_mail, monkeypatch):
    # Without UIDPLUS our moved message stays in the folder marked \Deleted; a user may undelete it.
    without_capabilities(monkeypatch, ("MOVE", "UIDPLUS"))
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    for day in (16, 17):
        dovecot.append(dovecot_user, "INBOX", smtp_mail.raw(sender=SMTP_SENDER, to=dovecot_user.name, parts=[
            (smtp_mail.plain(f"201805{day}.csv"), smtp_mail.csv())]))
        assert fetcher.fetch(smtp_account.id).handed == 1  # the second fetch forgets what it can
    with dovecot.connect(dovecot_user) as client:
        client.select("INBOX")
        client.uid("STORE", "1:*", "-FLAGS", "(\\Deleted)")

    result = fetcher.fetch(smtp_account.id)
    assert (result.ok, result.handed, result.moved) == (True, 0, 2)
    assert len(account_imports(smtp_account.id)) == 2

