"""SMTP floods: the per-address session cap and the deadline before MAIL (servers/smtp.py)."""
from __future__ import annotations

import smtplib
import socket

from sqlalchemy import select

from app.extensions import db
from app.models import Import
from tests.fixtures.smtp import SMTP_SENDER
from tests.fixtures.waiting import wait_for


def finished(account_id: int):
    """The account's imports once there is one and none is queued or running."""
    rows = list(db.session.scalars(select(Import).where(Import.account_id == account_id)))
    return rows if rows and all(i.status not in (Import.QUEUED, Import.RUNNING) for i in rows) else None


def banner(port: int, source: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return sock, sock.recv(1024)


def test_fifty_idle_sessions_from_one_address_do_not_stop_a_sender_from_another(
        smtp_start, smtp_worker, smtp_account, smtp_mail):
    server = smtp_start()  # the defaults: 50 sessions in all, 10 per address
    idle = [banner(server.port) for _ in range(50)]
    try:
        greetings = [reply.split(b" ", 2)[:2] for _, reply in idle]
        host = greetings[0][1]
        assert greetings[:10] == [[b"220", host]] * 10
        assert greetings[10:] == [[b"421", b"4.7.0"]] * 40  # only the excess connections
        assert all(sock.recv(1024) == b"" for sock, _ in idle[10:])  # and they are closed

        message = smtp_mail.message(SMTP_SENDER, smtp_account.address, [("20180516.csv", smtp_mail.csv())])
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10, source_address=("127.0.0.2", 0)) as client:
            assert client.noop()[0] == 250
            assert client.send_message(message) == {}
    finally:
        for sock, _ in idle:
            sock.close()
    rows = wait_for(lambda: finished(smtp_account.id), what="the import")
    assert [(i.filename, i.status) for i in rows] == [("20180516.csv", Import.SUCCEEDED)]


def test_a_closed_session_frees_its_place_of_the_address(smtp_start):
    server = smtp_start(SMTP_MAX_CONNECTIONS_PER_IP=1)
    first, greeting = banner(server.port)
    assert greeting.startswith(b"220")
    second, refused = banner(server.port)
    assert refused.startswith(b"421 4.7.0") and second.recv(1024) == b""
    first.close()
    wait_for(lambda: not server.addresses.open, timeout=10, what="the session to end")
    third, greeting = banner(server.port)
    assert greeting.startswith(b"220")
    for sock in (second, third):
        sock.close()


def test_a_session_without_mail_in_time_gets_421(smtp_start):
    server = smtp_start(SMTP_MAIL_TIMEOUT=0.5)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as mailing, \
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as idle:
        assert mailing.ehlo()[0] == 250
        assert mailing.mail(SMTP_SENDER)[0] == 250
        idle.recv(1024)  # banner
        idle.sendall(b"EHLO client.example\r\nNOOP\r\n")  # commands other than MAIL do not count
        reply = b""
        while chunk := idle.recv(1024):
            reply += chunk
        assert reply.endswith(b"250 OK\r\n421 4.4.2 No mail transaction in time, closing connection\r\n")
        # The session that began a mail at the same time is not closed by the deadline.
        assert mailing.noop()[0] == 250
        assert mailing.rset()[0] == 250
