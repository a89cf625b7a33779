"""The daily 破棄のお知らせ: mail discarded for 連動稼働停止 or another データ連動方式 is told once per account and day.

The mails go through Renkei's real SMTP server (smtplib); the discards' times are then moved to
two fixed days, and the scheduler's job runs with an injected clock. The worker delivers the
notices to the sink relay, whose messages are what the エラー報告メールアドレス receives.
"""
from __future__ import annotations

import datetime as dt
import smtplib
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from app.extensions import db
from app.models import DiscardNotice, Import, OutboxMail
from app.services import integration, notices
from servers.scheduler import DiscardNotices
from tests.fixtures.smtp import SMTP_ERROR_TO, SMTP_SENDER, smtp_message
from tests.fixtures.waiting import wait_for

TOKYO = ZoneInfo("Asia/Tokyo")
DAY1 = dt.date(2018, 5, 16)
DAY2 = dt.date(2018, 5, 17)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """An aware time in Tokyo (the app's TIMEZONE), as the scheduler's clock gives it."""
    return dt.datetime.combine(day, dt.time(hour, minute), TOKYO)


def send(server, subject: str, files: list[tuple[str, bytes]]) -> None:
    message = smtp_message(SMTP_SENDER, server.account_address, files)
    message.replace_header("Subject", subject)
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        assert client.send_message(message, from_addr=SMTP_SENDER) == {}


def discards(account_id: int, count: int) -> list[Import] | None:
    db.session.expire_all()
    rows = list(db.session.scalars(select(Import).where(Import.account_id == account_id,
                                                       Import.status == Import.DISCARDED).order_by(Import.id)))
    return rows if len(rows) >= count else None


def received_at(imp: Import, when: dt.datetime) -> None:
    db.session.execute(update(Import).where(Import.id == imp.id)
                       .values(received_at=when.astimezone(dt.timezone.utc).replace(tzinfo=None)))
    db.session.commit()


def notice_mails(account_id: int) -> list[OutboxMail]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMail).where(OutboxMail.account_id == account_id,
                                                            OutboxMail.kind == "discard").order_by(OutboxMail.id)))


def test_discards_of_two_days_give_exactly_one_notice_a_day_listing_them_all(
    app, smtp_server, smtp_account, smtp_relay, smtp_mail
):
    smtp_server.account_address = smtp_account.address
    integration.update_settings(smtp_account.id, {"status": "stopped"}, actor="test")
    send(smtp_server, "5月16日分の売上", [("20180516.csv", smtp_mail.csv()), ("説明.pdf", b"%PDF-1.4")])
    send(smtp_server, "5月16日分の売上(再送)", [("20180516.csv", smtp_mail.csv())])
    send(smtp_server, "添付なし", [])
    integration.update_settings(smtp_account.id, {"status": "active", "mode": "ftp"}, actor="test")
    send(smtp_server, "5月17日分の売上", [("20180517.csv", smtp_mail.csv())])
    first, second, third, fourth = wait_for(lambda: discards(smtp_account.id, 4), what="four discards")
    received_at(first, at(DAY1, 9, 15))
    received_at(second, at(DAY1, 18, 0))
    received_at(third, at(DAY1, 23, 59))
    received_at(fourth, at(DAY2, 23, 50))

    job = DiscardNotices(app, clock=lambda: at(DAY1, 23, 0))
    assert job.tick() == 0  # the day is not over
    assert job.tick(at(DAY2, 0, 1)) is None  # still DAY1 until the grace after midnight has passed
    assert job.tick(at(DAY2, 0, 6)) == 1
    assert job.tick(at(DAY2, 12, 0)) is None  # once a day
    with app.app_context():
        assert notices.send_due(at(DAY2, 12, 0)) == 0  # a second worker, or a restart, queues nothing more
    assert job.tick(at(dt.date(2018, 5, 18), 0, 10)) == 1
    assert DiscardNotices(app, clock=lambda: at(dt.date(2018, 5, 19), 9, 0)).tick() == 0

    day1, day2 = notice_mails(smtp_account.id)
    assert day1.to_addrs == [SMTP_ERROR_TO] and day2.to_addrs == [SMTP_ERROR_TO]
    assert day1.subject == "【メール破棄のお知らせ】acme 株式会社 2018-05-16(3件)"
    body = day1.body
    assert "2018-05-16(Asia/Tokyo)に受信した次のメール 3件は、取り込まずに破棄しました。" in body
    assert ("1. 受信日時: 2018-05-16 09:15:00\n"
            f"   差出人: {SMTP_SENDER}\n"
            "   件名: 5月16日分の売上\n"
            "   添付ファイル: 20180516.csv、説明.pdf\n"
            "   理由: データ連動ステータスが連動稼働停止のため\n") in body
    assert "2. 受信日時: 2018-05-16 18:00:00\n" in body and "件名: 5月16日分の売上(再送)\n" in body
    assert "3. 受信日時: 2018-05-16 23:59:00\n" in body and "添付ファイル: なし\n" in body
    assert "「連動稼働中」に戻ってから、同じファイルを送り直してください。" in body
    assert "データ連動方式で決められた方法" not in body  # no advice for a reason that did not happen
    body = day2.body
    assert day2.subject.endswith("2018-05-17(1件)")
    assert "件名: 5月17日分の売上\n" in body and "理由: データ連動方式が「FTP連動」のため\n" in body
    assert "連動稼働中" not in body
    assert [(n.day, n.discards, n.mail_id) for n in db.session.scalars(
        select(DiscardNotice).order_by(DiscardNotice.day))] == [(DAY1, 3, day1.id), (DAY2, 1, day2.id)]

    assert smtp_relay.wait_for(2)
    got = sorted(smtp_relay.messages, key=lambda m: m.subject)
    assert [m.rcpt_tos for m in got] == [[SMTP_ERROR_TO], [SMTP_ERROR_TO]]
    assert [m.subject for m in got] == sorted([day1.subject, day2.subject])
    assert "件名: 5月16日分の売上(再送)" in got[0].text
    assert len(smtp_relay.messages) == 2


def test_each_account_gets_its_own_notice_and_days_past_the_look_back_are_not_mailed(app, make_account):
    from app.services import ingest

    def discard(account, when: dt.datetime) -> None:
        imp = ingest.record_refusal(account.id, channel="mail", filename="20180516.csv", sender=SMTP_SENDER,
                                    status=Import.DISCARDED, subject="売上",
                                    note="データ連動ステータスが連動稼働停止のため、メールを破棄しました")
        received_at(imp, when)

    first = make_account("first", mode="mail", status="stopped", senders=[SMTP_SENDER], error_to=["a@first.example"])
    other = make_account("other", mode="mail", status="stopped", senders=[SMTP_SENDER], error_to=["b@other.example"])
    discard(first, at(DAY1, 10))
    discard(other, at(DAY1, 11))
    discard(other, at(DAY1 - dt.timedelta(days=notices.LOOKBACK_DAYS + 1), 11))  # too old to tell now

    assert notices.send_due(at(DAY2, 1)) == 2
    assert [(m.to_addrs, m.subject) for m in notice_mails(first.id)] == [
        (["a@first.example"], "【メール破棄のお知らせ】first 株式会社 2018-05-16(1件)")]
    assert [(m.to_addrs, m.subject) for m in notice_mails(other.id)] == [
        (["b@other.example"], "【メール破棄のお知らせ】other 株式会社 2018-05-16(1件)")]
    assert notices.send_due(at(DAY2, 2)) == 0


def test_a_day_of_many_discards_lists_the_first_ones_and_counts_the_rest(app, make_account, monkeypatch):
    from app.services import ingest

    monkeypatch.setattr(notices, "MAX_LISTED", 2)
    account = make_account("flood", mode="mail", status="stopped", senders=[SMTP_SENDER],
                           error_to=["boss@flood.example"])
    for minute in range(5):
        imp = ingest.record_refusal(account.id, channel="mail", filename="20180516.csv", sender=SMTP_SENDER,
                                    status=Import.DISCARDED, subject=f"件名{minute}",
                                    note="データ連動ステータスが連動稼働停止のため、メールを破棄しました")
        received_at(imp, at(DAY1, 10, minute))

    assert notices.send_due(at(DAY2, 1)) == 1
    [mail] = notice_mails(account.id)
    assert mail.subject.endswith("(5件)")
    assert "次のメール 5件は" in mail.body and "件名1" in mail.body and "件名2" not in mail.body
    assert "ほかに 3件(一覧は最初の 2件です)。" in mail.body and "・連動稼働停止" in mail.body
