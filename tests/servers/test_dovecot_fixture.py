"""The Dovecot fixture itself: logins over plain, STARTTLS and implicit TLS, APPEND, folders, MOVE."""
from __future__ import annotations

import datetime as dt
import imaplib
import re
import ssl

import pytest

from tests.fixtures.dovecot import WRONG_PASSWORD
from tests.fixtures.imap_names import imap_utf7, imap_utf7_decode, quoted

MAIL = (b"From: sales@partner.example\r\nTo: acme@renkei.localhost\r\nSubject: =?UTF-8?B?5aOy5LiK?=\r\n"
        b"Message-ID: <1@partner.example>\r\n\r\n\xe5\xa3\xb2\xe4\xb8\x8a 120,000\r\n")


def test_plain_login_and_capabilities(dovecot, dovecot_user):
    with dovecot.connect(dovecot_user) as client:
        assert client.state == "AUTH"
        # imaplib keeps the greeting's list; after login it must be asked again.
        _, data = client.capability()
        capabilities = set(data[0].decode().split())
    assert {"IDLE", "MOVE", "UIDPLUS"} <= capabilities


def test_starttls_verifies_the_certificate_against_the_test_ca(dovecot, dovecot_user):
    with dovecot.connect(dovecot_user, security="starttls") as client:
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert client.state == "AUTH"


def test_implicit_tls(dovecot, dovecot_user):
    with dovecot.connect(dovecot_user, security="tls") as client:
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.state == "AUTH"


def test_tls_without_the_ca_is_refused(dovecot):
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(dovecot.host, dovecot.tls_port, ssl_context=ssl.create_default_context(), timeout=10)


def test_wrong_and_changed_password(dovecot, dovecot_user):
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        dovecot.connect(dovecot_user, password=WRONG_PASSWORD)
    old = dovecot_user.password
    dovecot.add_user(dovecot_user.name, old[::-1])  # same length: the reread must not depend on the size
    with pytest.raises(imaplib.IMAP4.error):
        dovecot.connect(dovecot_user.name, password=old)
    with dovecot.connect(dovecot_user.name) as client:
        assert client.state == "AUTH"


def test_removed_user_cannot_log_in(dovecot):
    user = dovecot.add_user("leaving", "pw-leaving")
    dovecot.connect(user).logout()
    dovecot.remove_user(user.name)
    with pytest.raises(imaplib.IMAP4.error):
        dovecot.connect(user, password="pw-leaving")


def test_append_then_fetch(dovecot, dovecot_user):
    when = dt.datetime(2020, 4, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    dovecot.append(dovecot_user, "INBOX", MAIL, when=when)
    dovecot.append(dovecot_user, "INBOX", MAIL.replace(b"<1@", b"<2@"), flags="\\Seen")

    assert dovecot.list_folder(dovecot_user, "INBOX") == [MAIL, MAIL.replace(b"<1@", b"<2@")]
    first, second = dovecot.messages(dovecot_user, "INBOX")
    assert first.flags == frozenset() and second.flags == {"\\Seen"}  # reading marked nothing seen
    with dovecot.connect(dovecot_user) as client:
        client.select("INBOX", readonly=True)
        _, data = client.fetch("1", "(INTERNALDATE)")
    stored = re.search(rb'INTERNALDATE "([^"]+)"', data[0]).group(1).decode()
    assert dt.datetime.strptime(stored, "%d-%b-%Y %H:%M:%S %z") == when  # Dovecot answers in its own zone


def test_create_folder_and_move(dovecot, dovecot_user):
    dovecot.append(dovecot_user, "INBOX", MAIL)
    dovecot.create_folder(dovecot_user, "処理済み")
    assert dovecot.folders(dovecot_user) == ["INBOX", "処理済み"]

    with dovecot.connect(dovecot_user) as client:
        client.select("INBOX")
        typ, data = client.uid("MOVE", "1:*", quoted("処理済み"))
        assert typ == "OK", data

    assert dovecot.list_folder(dovecot_user, "INBOX") == []
    assert dovecot.list_folder(dovecot_user, "処理済み") == [MAIL]


def test_append_creates_a_missing_folder(dovecot, dovecot_user):
    dovecot.append(dovecot_user, "Archive/2030", MAIL)
    assert "Archive/2030" in dovecot.folders(dovecot_user)
    assert dovecot.list_folder(dovecot_user, "Archive/2030") == [MAIL]


@pytest.mark.parametrize(("name", "encoded"), [
    ("INBOX", "INBOX"),
    ("R&D", "R&-D"),
    ("処理済み", "&UeZ0Bm4IMH8-"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501's own example
])
def test_modified_utf7(name, encoded):
    assert imap_utf7(name) == encoded
    assert imap_utf7_decode(encoded) == name


def test_idle_hears_of_new_mail(dovecot, dovecot_user):
    with dovecot.connect(dovecot_user) as client:
        client.select("INBOX")
        # imaplib has no IDLE (Python 3.11): speak it on the connection (RFC 2177).
        client.send(b"I1 IDLE\r\n")
        assert client.readline().startswith(b"+ ")
        dovecot.append(dovecot_user, "INBOX", MAIL)
        assert client.readline() == b"* 1 EXISTS\r\n"  # the client's 10 s timeout bounds the wait
        client.send(b"DONE\r\n")
        while not (line := client.readline()).startswith(b"I1 "):
            assert line.startswith(b"* ")  # e.g. "* 1 RECENT"
        assert line.startswith(b"I1 OK")


def test_own_server_restarts_on_the_same_ports(own_dovecot):
    user = own_dovecot.add_user("alice", "pw-alice")
    own_dovecot.append(user, "INBOX", MAIL)
    port, tls_port = own_dovecot.port, own_dovecot.tls_port
    own_dovecot.stop()
    with pytest.raises(ConnectionRefusedError):
        own_dovecot.connect(user)

    own_dovecot.start()
    assert (own_dovecot.port, own_dovecot.tls_port) == (port, tls_port)
    assert own_dovecot.list_folder(user, "INBOX") == [MAIL]
