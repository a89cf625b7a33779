"""送信メール: the outbox list, a mail's page, the no-relay notice, account scoping."""
from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.models import OutboxMail
from app.services import columns, members, outbox
from tests.fixtures.ingest import import_file

GOOD = "No.,売上\r\n1,120000\r\n".encode("cp932")
BAD = "No.,売上\r\n99,<b>100</b>\r\n".encode("cp932")


@pytest.fixture
def board(make_account, login):
    """An account with report addresses for both outcomes, its admin logged in."""
    account, email, _ = make_account("acme")
    members.create_member(account.id, 1, "E001", "山田 太郎", "営業1課")
    columns.add_column(account.id, "売上", "円")
    account.settings.error_to = ["errors@acme.example"]
    account.settings.success_to = ["boss@acme.example", "team@acme.example"]
    db.session.commit()
    login(email)
    return account


def test_outbox_lists_report_mails_newest_first(client, board):
    import_file(board.id, "20180516.csv", GOOD, channel="cli", sender=None)
    import_file(board.id, "20180517.csv", BAD, channel="cli", sender=None)

    html = client.get("/outbox").get_data(as_text=True)

    assert "エラー報告" in html and "正常更新報告" in html
    assert "errors@acme.example" in html and "boss@acme.example, team@acme.example" in html
    assert html.count('<span class="badge pending">送信待ち</span>') == 2
    assert html.index("エラー報告") < html.index("正常更新報告")  # the error report is newer
    assert "20180517.csv" in html  # in the subject


def test_outbox_shows_delivery_state(client, board):
    import_file(board.id, "20180517.csv", BAD, channel="cli", sender=None)
    mail = db.session.scalars(db.select(OutboxMail)).one()
    mail.status = OutboxMail.FAILED
    mail.attempts = 20
    mail.last_error = "Connection refused"
    db.session.commit()

    html = client.get("/outbox").get_data(as_text=True)
    assert '<span class="badge failed">送信失敗</span>' in html
    assert "Connection refused" in html and '<td data-label="試行回数" class="num">20</td>' in html


def test_mail_page_shows_the_body_escaped(client, board):
    import_file(board.id, "20180517.csv", BAD, channel="cli", sender=None)
    mail = db.session.scalars(db.select(OutboxMail)).one()

    html = client.get(f"/outbox/{mail.id}").get_data(as_text=True)

    body = re.search(r'<pre class="mail-body">(.*?)</pre>', html, re.S).group(1)
    assert "99" in body and "&lt;b&gt;100&lt;/b&gt;" in body and "<b>" not in body
    assert mail.subject in html and "errors@acme.example" in html


def test_notice_when_no_relay_is_configured(app, client, board):
    assert "RENKEI_SMTP_RELAY" in client.get("/outbox").get_data(as_text=True)
    app.config["SMTP_RELAY"] = "smtp://relay.example:587"
    assert "RENKEI_SMTP_RELAY" not in client.get("/outbox").get_data(as_text=True)


def test_empty_outbox(client, board):
    html = client.get("/outbox").get_data(as_text=True)
    assert "送信メールはまだありません" in html


def test_other_accounts_mails_are_hidden(client, board, make_account):
    other, _, _ = make_account("other")
    mail = outbox.enqueue(other.id, None, "error", ["x@other.example"], "他社の件名", "本文")
    db.session.commit()
    assert client.get(f"/outbox/{mail.id}").status_code == 404
    assert "他社の件名" not in client.get("/outbox").get_data(as_text=True)
