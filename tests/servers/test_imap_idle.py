"""IDLE: MailboxClient.idle and the `imap` part's watchers, against a real Dovecot on loopback.

The part runs with an hour between its polls and a clock that stands still: after its first
poll, only IDLE can bring a message in while the test waits.
"""
from __future__ import annotations

import logging
import threading
import time

import pytest

from app.services import mailbox
from servers.imapclient import MailboxClient, MailboxError
from servers.imapfetch import Fetcher, RunningFetcher
from tests.fixtures.ingest import account_imports
from tests.fixtures.waiting import wait_for
from tests.servers.test_imap import PROCESSED, Clock, shaped_mails, use_mailbox

HOUR = 3600.0
# Dovecot 2.3's post-login list without IDLE (MOVE and UIDPLUS kept: only IDLE is missing).
WITHOUT_IDLE = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT MULTIAPPEND UNSELECT CHILDREN NAMESPACE UIDPLUS MOVE"


def idle_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("imap-idle-")]


@pytest.fixture
def part(app, dovecot):
    app.config["IMAP_CA_FILE"] = dovecot.ca_path
    app.config["IMAP_TIMEOUT"] = 10.0
    running: list[RunningFetcher] = []

    def start(**kwargs) -> RunningFetcher:
        running.append(RunningFetcher(Fetcher(app, clock=Clock()), poll_seconds=HOUR, **kwargs).start())
        return running[-1]

    yield start
    for each in running:
        each.stop(timeout=10)


def login_of(account_id: int) -> mailbox.Login:
    return mailbox.login(account_id)


def test_idle_answers_false_after_the_wait_and_true_when_mail_comes(app, dovecot, dovecot_user, smtp_account,
                                                                      smtp_mail):
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    _, raw = shaped_mails(smtp_mail, dovecot_user.name)["plain-name"]
    with MailboxClient(login_of(smtp_account.id), timeout=10, ca_file=dovecot.ca_path) as client:
        assert client.can_idle  # Dovecot lists IDLE after login
        client.select("INBOX")
        assert client.idle(0.5) is False
        assert client.uids() == []  # the session goes on after DONE

        appender = threading.Thread(target=dovecot.append, args=(dovecot_user, "INBOX", raw))
        started = time.monotonic()
        appender.start()
        assert client.idle(30) is True
        assert time.monotonic() - started < 20  # announced, not the end of the wait
        appender.join(10)
        assert len(client.uids()) == 1


def test_idle_woken_from_another_thread_raises_a_connection_error(app, dovecot, dovecot_user, smtp_account):
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    with MailboxClient(login_of(smtp_account.id), timeout=10, ca_file=dovecot.ca_path) as client:
        client.select("INBOX")
        waker = threading.Timer(0.2, client.interrupt)  # stop() of the part from its own thread
        started = time.monotonic()
        waker.start()
        with pytest.raises(MailboxError, match="接続"):
            client.idle(60)
        assert time.monotonic() - started < 10
        waker.join()


def test_mail_announced_by_idle_is_imported_and_moved_without_waiting_for_the_minute(app, part, dovecot,
                                                                                     dovecot_user, smtp_account,
                                                                                     smtp_mail):
    mails = shaped_mails(smtp_mail, dovecot_user.name)
    dovecot.append(dovecot_user, "INBOX", mails["plain-name"][1])
    use_mailbox(smtp_account.id, dovecot, dovecot_user)

    running = part()
    wait_for(lambda: len(account_imports(smtp_account.id)) == 1, 20, "the first poll's import")
    wait_for(lambda: running.watchers.watching() == [smtp_account.id], 20, "the IDLE watcher")

    name, raw = mails["gmail-rfc2047-utf8"]
    dovecot.append(dovecot_user, "INBOX", raw)
    rows = wait_for(lambda: len(account_imports(smtp_account.id)) == 2 and account_imports(smtp_account.id), 20,
                    "the message announced by IDLE to be imported")
    assert rows[-1].filename == name
    wait_for(lambda: dovecot.list_folder(dovecot_user, "INBOX") == [], 20, "the move")
    assert len(dovecot.list_folder(dovecot_user, PROCESSED)) == 2
    assert running.watchers.watching() == [smtp_account.id]  # still watching after its fetch

    started = time.monotonic()
    running.stop(timeout=10)
    assert time.monotonic() - started < 10
    assert idle_threads() == [] and not running.alive()


def test_an_account_leaving_imap_is_no_longer_watched(app, part, dovecot, dovecot_user, smtp_account):
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    running = part()
    wait_for(lambda: running.watchers.watching() == [smtp_account.id], 20, "the IDLE watcher")

    mailbox.save(smtp_account.id, mailbox.parse({"method": "smtp"}, mailbox.get(smtp_account.id)), actor="test")
    running.watchers.update([])  # what the next minute's poll does: it fetched nothing for that account
    wait_for(lambda: idle_threads() == [], 10, "the watcher thread to end")
    assert running.watchers.watching() == []


def test_the_cap_bounds_the_watched_mailboxes(app, part, dovecot, dovecot_user, smtp_account):
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    running = part(watch_limit=0)
    wait_for(lambda: mailbox.get(smtp_account.id).last_success_at is not None, 20, "the first poll")
    running.watchers.update([smtp_account.id])  # as every minute: polled, never watched
    assert running.watchers.watching() == [] and idle_threads() == []


def test_a_server_without_idle_is_polled(app, own_dovecot, smtp_account, smtp_mail):
    own_dovecot.stop()
    own_dovecot.imap_capability = WITHOUT_IDLE
    own_dovecot.start()
    app.config["IMAP_CA_FILE"] = own_dovecot.ca_path
    user = own_dovecot.add_user("clerk", "pw-clerk")
    mails = shaped_mails(smtp_mail, user.name)
    own_dovecot.append(user, "INBOX", mails["plain-name"][1])
    use_mailbox(smtp_account.id, own_dovecot, user)
    with MailboxClient(login_of(smtp_account.id), timeout=10, ca_file=own_dovecot.ca_path) as client:
        assert not client.can_idle
        with pytest.raises(MailboxError, match="IDLE"):
            client.idle(1)

    running = RunningFetcher(Fetcher(app, clock=Clock()), poll_seconds=HOUR).start()
    try:
        wait_for(lambda: running.watchers.polled_only() == [smtp_account.id], 20, "the server's lack of IDLE seen")
        assert len(account_imports(smtp_account.id)) == 1  # the first poll
        assert running.watchers.watching() == [] and idle_threads() == []
        running.watchers.update([smtp_account.id])  # the next minute asks the server no more
        assert idle_threads() == []

        own_dovecot.append(user, "INBOX", mails["gmail-rfc2047-utf8"][1])
        assert [r.ok for r in running.tick()] == [True]  # the minute's poll brings it in
        assert len(account_imports(smtp_account.id)) == 2
    finally:
        running.stop(timeout=10)
    assert idle_threads() == []


def test_only_more_messages_than_known_are_news(app, dovecot, dovecot_user, smtp_account):
    # Some servers repeat the folder's size at each IDLE start: that is no reason to fetch.
    use_mailbox(smtp_account.id, dovecot, dovecot_user)
    client = MailboxClient(login_of(smtp_account.id))
    client.exists = 3
    assert [client._counted(line) for line in (b"* 3 EXISTS", b"* 1 RECENT", b"* OK Still here", b"* 2 EXPUNGE",
                                               b"* 3 EXISTS", b"* 4 EXISTS")] == [False] * 4 + [True, True]
    assert client.exists == 4


def test_a_server_going_away_ends_the_watcher_and_the_next_good_minute_starts_one(app, own_dovecot, smtp_account,
                                                                                  smtp_mail, caplog):
    caplog.set_level(logging.INFO, logger="servers.imapidle")
    app.config["IMAP_CA_FILE"] = own_dovecot.ca_path
    user = own_dovecot.add_user("clerk", "pw-clerk")
    use_mailbox(smtp_account.id, own_dovecot, user)
    running = RunningFetcher(Fetcher(app, clock=Clock()), poll_seconds=HOUR).start()
    try:
        wait_for(lambda: running.watchers.watching() == [smtp_account.id], 20, "the IDLE watcher")
        own_dovecot.stop()  # Dovecot says BYE to its idle clients, or the connection is cut
        wait_for(lambda: running.watchers.watching() == [] and idle_threads() == [], 20, "the watcher to end")
        assert f"imap idle ended account=#{smtp_account.id}" in caplog.text

        own_dovecot.start()
        assert [r.ok for r in running.tick()] == [True]
        running.watchers.update([smtp_account.id])  # what the minute does after that good poll
        wait_for(lambda: running.watchers.watching() == [smtp_account.id], 20, "a new watcher")
        _, raw = shaped_mails(smtp_mail, user.name)["plain-name"]
        own_dovecot.append(user, "INBOX", raw)
        wait_for(lambda: len(account_imports(smtp_account.id)) == 1, 20, "the message announced to the new watcher")
    finally:
        running.stop(timeout=10)
    assert idle_threads() == []
