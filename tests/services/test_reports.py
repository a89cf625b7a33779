"""Report mails: written to the outbox with the import's outcome, delivered through a real SMTP relay."""
from __future__ import annotations

import datetime as dt
import socket

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Import, OutboxMail, utcnow
from app.services import ingest, outbox, reports, runner
from servers.mailer import parse_relay_url, relay_sender
from tests.fixtures.ingest import csv_file, ingest_options, run

MAIL_FROM = "renkei@renkei.test"


def mails() -> list[OutboxMail]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMail).order_by(OutboxMail.id)))


def after_queueing() -> dt.datetime:
    """The outbox's injected clock: a day after the mails were queued (at the real now), never a fixed date."""
    return utcnow().replace(microsecond=0) + dt.timedelta(days=1)


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_failure_report_lists_every_error_with_line_column_value(app, make_account):
    acc = make_account("acme", **ingest_options(error_to=["a@acme.example", "b@acme.example"]))
    imp = ingest.receive(acc.id, "20180516.csv", csv_file([[1, "abc", 1, 1, ""], [77, 1, 1, 1, ""]]),
                         channel="mail", sender="taro@example.com")
    db.session.execute(db.update(Import).where(Import.id == imp.id)
                       .values(received_at=dt.datetime(2018, 5, 16, 0, 5, 0)))  # 09:05 in Tokyo
    db.session.commit()
    imp = runner.run_import(imp.id)

    [mail] = mails()
    assert (mail.kind, mail.import_id, mail.to_addrs, mail.status) == (
        "error", imp.id, ["a@acme.example", "b@acme.example"], "pending")
    assert "取込エラー" in mail.subject and "20180516.csv" in mail.subject
    body = mail.body
    assert "acme 株式会社" in body
    assert "受付経路: メール" in body
    assert "ファイル名: 20180516.csv" in body
    assert "送信者: taro@example.com" in body
    assert "受信日時: 2018-05-16 09:05:00 (Asia/Tokyo)" in body
    assert "2行目 列「売上」 値「abc」: 数値ではありません" in body
    assert "3行目 列「No.」 値「77」: メンバー設定に存在しないNo.です" in body
    assert f"http://renkei.test/imports/{imp.id}" in body


def test_error_mail_is_capped_and_points_to_the_page(app, make_account):
    acc = make_account("acme", **ingest_options())
    rows = [[1, f"x{n}", 1, 1, ""] for n in range(reports.MAX_ERRORS_IN_MAIL + 5)]
    imp = run(acc, "20180516.csv", csv_file(rows))
    assert imp.error_count == reports.MAX_ERRORS_IN_MAIL + 5
    body = mails()[0].body
    assert f"{reports.MAX_ERRORS_IN_MAIL + 1}行目 列「売上」 値「x{reports.MAX_ERRORS_IN_MAIL - 1}」" in body
    assert f"値「x{reports.MAX_ERRORS_IN_MAIL}」" not in body
    assert "ほか 5件のエラーがあります(記録しているのは最初の1,000件です)" in body
    assert body.count("行目 列「売上」") == reports.MAX_ERRORS_IN_MAIL


def test_success_report_only_when_addresses_are_set(app, make_account):
    quiet = make_account("quiet", **ingest_options())
    run(quiet, "20180516.csv", csv_file([[1, 1, 1, 1, ""]]))
    assert mails() == []

    acc = make_account("acme", **ingest_options(success_to=["boss@acme.example"]))
    first = run(acc, "20180516.csv", csv_file([[1, "120,000", 30000, 2, ""], [2, "50,000", 12000.5, 1, ""]]))
    [mail] = mails()
    assert mail.kind == "success" and mail.to_addrs == ["boss@acme.example"]
    assert "取込完了" in mail.subject
    assert "期間: 2018年5月16日(日次)" in mail.body
    assert "取込行数: 2行" in mail.body
    assert "売上: 170,000円" in mail.body
    assert "粗利: 42,000.5円" in mail.body
    assert "件数: 3件" in mail.body
    assert "以前の取込はありません" in mail.body

    second = run(acc, "20180516.csv", csv_file([[1, 1, "", "", ""]]))
    body = mails()[-1].body
    assert f"以前の取込 #{first.id} のデータを削除し" in body
    assert "粗利: (値なし)" in body
    assert f"http://renkei.test/imports/{second.id}" in body


def test_no_report_for_refused_or_discarded_mail(app, make_account):
    acc = make_account("acme", **ingest_options(success_to=["boss@acme.example"]))
    ingest.record_refusal(acc.id, channel="mail", filename="20180516.csv", sender="x@y", status="discarded",
                          note="停止中")
    assert mails() == []


def test_reports_arrive_through_a_real_relay_in_japanese(app, make_account, smtp_relay):
    acc = make_account("acme", **ingest_options(success_to=["boss@acme.example"]))
    run(acc, "20180516.csv", csv_file([[1, 100, 10, 1, ""]]))
    failed = run(acc, "20180517.csv", csv_file([[1, 100, "▲x", 1, ""]]))

    assert outbox.deliver_due(relay_sender(smtp_relay.url, MAIL_FROM)) == 2
    assert smtp_relay.wait_for(2)

    success, error = smtp_relay.messages
    assert success.rcpt_tos == ["boss@acme.example"] and success.mail_from == MAIL_FROM
    assert success.subject.startswith("【取込完了】acme 株式会社 20180516.csv")
    assert "売上: 100円" in success.text
    assert error.rcpt_tos == ["errors@acme.example"]
    assert error.subject.startswith("【取込エラー】")
    assert "2行目 列「粗利」 値「▲x」" in error.text
    assert f"/imports/{failed.id}" in error.text
    message = error.message
    assert message.get_content_charset() == "utf-8"
    assert message["Message-ID"] and message["Date"] and "Renkei" in message["From"]
    assert all(m.status == "sent" and m.sent_at and m.attempts == 1 for m in mails())


def test_relay_outage_loses_nothing_and_sends_once_when_back(app, make_account, smtp_relay):
    acc = make_account("acme", **ingest_options(success_to=["boss@acme.example"]))
    run(acc, "20180516.csv", csv_file([[1, 100, 10, 1, ""]]))
    run(acc, "20180517.csv", csv_file([[1, "bad", 10, 1, ""]]))
    down = relay_sender(f"smtp://127.0.0.1:{closed_port()}", MAIL_FROM)
    t0 = after_queueing()

    assert outbox.deliver_due(down, now=t0) == 0
    assert [(m.status, m.attempts) for m in mails()] == [("pending", 1), ("pending", 1)]
    assert all(m.last_error and m.next_attempt_at == t0 + dt.timedelta(seconds=30) for m in mails())
    up = relay_sender(smtp_relay.url, MAIL_FROM)
    assert outbox.deliver_due(up, now=t0 + dt.timedelta(seconds=10)) == 0  # not due yet
    assert outbox.deliver_due(down, now=t0 + dt.timedelta(seconds=31)) == 0
    assert [m.attempts for m in mails()] == [2, 2]
    assert all(m.next_attempt_at == t0 + dt.timedelta(seconds=31 + 60) for m in mails())

    assert outbox.deliver_due(up, now=t0 + dt.timedelta(hours=1)) == 2
    assert outbox.deliver_due(up, now=t0 + dt.timedelta(hours=2)) == 0
    assert smtp_relay.wait_for(2)
    assert len(smtp_relay.messages) == 2
    assert sorted(m.subject[:6] for m in smtp_relay.messages) == ["【取込エラー", "【取込完了】"]
    assert [(m.status, m.attempts) for m in mails()] == [("sent", 3), ("sent", 3)]


def test_mail_is_given_up_after_max_attempts(app, make_account):
    acc = make_account("acme", **ingest_options())
    run(acc, "20180517.csv", csv_file([[1, "bad", 10, 1, ""]]))

    def refuse(mail):
        raise ConnectionRefusedError("relay down")

    now = after_queueing()
    for _ in range(outbox.MAX_ATTEMPTS):
        outbox.deliver_due(refuse, now=now)
        now += dt.timedelta(hours=2)
    [mail] = mails()
    assert (mail.status, mail.attempts) == ("failed", outbox.MAX_ATTEMPTS)
    assert "relay down" in mail.last_error
    assert outbox.claim_due(now) is None


def test_claim_due_never_hands_out_one_mail_twice(app, make_account):
    acc = make_account("acme", **ingest_options())
    run(acc, "20180517.csv", csv_file([[1, "bad", 10, 1, ""]]))
    now = after_queueing()
    first = outbox.claim_due(now)
    assert first is not None
    assert outbox.claim_due(now) is None
    # The claimer died: after the lease the mail is due again.
    later = now + dt.timedelta(seconds=outbox.CLAIM_TIMEOUT_SECONDS + 1)
    assert outbox.claim_due(later).id == first.id


def test_backoff_doubles_and_is_capped():
    assert [outbox.backoff(n).total_seconds() for n in (1, 2, 3, 8, 20)] == [30, 60, 120, 3600, 3600]


@pytest.mark.parametrize("url, expected", [
    ("smtp://relay.example", ("relay.example", 25, False, False, None, None)),
    ("smtp://u%40x:p%3Aw@relay.example:587?starttls=1", ("relay.example", 587, False, True, "u@x", "p:w")),
    ("smtp://relay.example?starttls=1", ("relay.example", 587, False, True, None, None)),
    ("smtps://u:p@relay.example", ("relay.example", 465, True, False, "u", "p")),
])
def test_relay_url_is_parsed(url, expected):
    relay = parse_relay_url(url)
    assert (relay.host, relay.port, relay.implicit_tls, relay.starttls, relay.username, relay.password) == expected


@pytest.mark.parametrize("url", ["http://relay.example", "smtp://", "relay.example:25"])
def test_bad_relay_url_is_refused(url):
    with pytest.raises(ValueError):
        parse_relay_url(url)


def test_every_error_mail_links_the_sample_file(app, make_account):
    from app.importer.xlsxwrite import write_xlsx

    acc = make_account("acme", **ingest_options())
    bad_csv = ingest.receive(acc.id, "20180516.csv", csv_file([[1, "abc", 1, 1, ""]]), channel="mail",
                             sender="taro@example.com")
    bad_name = ingest.receive(acc.id, "売上.csv", csv_file([[1, 1, 1, 1, ""]]), channel="mail",
                              sender="taro@example.com")
    bad_book = ingest.receive(acc.id, "20180517.xlsx", write_xlsx([["No.", "売上", "粗利", "件数"], [77, 1, 1, 1]]),
                              channel="mail", sender="taro@example.com")
    for imp in (bad_csv, bad_name, bad_book):
        runner.run_import(imp.id)
    ingest.record_failure(acc.id, channel="mail", filename="(添付なし)", sender="taro@example.com",
                          message="CSVファイルが添付されていません。")
    db.session.commit()

    bodies = [mail.body for mail in mails()]
    assert len(bodies) == 4
    assert "■ 見本ファイル" in bodies[0] and "\nhttp://renkei.test/imports/sample.csv\n" in bodies[0]
    assert "\nhttp://renkei.test/imports/sample.csv\n" in bodies[1]
    assert "\nhttp://renkei.test/imports/sample.xlsx\n" in bodies[2]
    assert "メンバー設定に存在しないNo.です" in bodies[2]  # the workbook was read and refused by its content
    assert "\nhttp://renkei.test/imports/sample.csv\n" in bodies[3]


ENCODING_ADVICE = "・文字コード:"
HEADER_ADVICE = "・見出し:"
MEMBER_ADVICE = "・メンバー:"
VALUES_ADVICE = "・値:"
ADVICE = (ENCODING_ADVICE, HEADER_ADVICE, MEMBER_ADVICE, VALUES_ADVICE)


@pytest.mark.parametrize("filename, data, wanted", [
    ("20180516.csv", b"No.,\x83\xff,\xff\xfe\x80\r\n1,\x81\xff\xe3\x80,1\r\n", (ENCODING_ADVICE,)),
    ("20180516.csv", csv_file([[1, 1, 1, 1, ""]], header=["No.", "売上", "粗利", "件数", "未知"]), (HEADER_ADVICE,)),
    ("20180516.csv", csv_file([[77, 1, 1, 1, ""]]), (MEMBER_ADVICE,)),
    ("20180516.csv", csv_file([[1, "abc", 1, 1, ""]]), (VALUES_ADVICE,)),
    ("20180516.csv", csv_file([[77, "abc", 1, 1, ""]]), (MEMBER_ADVICE, VALUES_ADVICE)),
    ("売上5月.csv", csv_file([[1, 1, 1, 1, ""]]), ()),
    ("売上5月.csv", csv_file([[77, 1, 1, 1, ""]]), (MEMBER_ADVICE,)),
])
def test_the_error_report_gives_the_advice_of_each_kind_of_error_found_and_no_other(
    app, make_account, filename, data, wanted
):
    acc = make_account("acme", **ingest_options())
    imp = ingest.receive(acc.id, filename, data, channel="mail", sender="taro@example.com")
    runner.run_import(imp.id)
    [mail] = mails()
    assert [advice for advice in ADVICE if advice in mail.body] == list(wanted), mail.body
    named_wrong = filename.startswith("売上")
    assert ("・ファイル名: ファイル名「売上5月.csv」からは期間が分かりません。" in mail.body) is named_wrong
    assert ("同じファイル名で送り直してください" in mail.body) is not named_wrong
    if MEMBER_ADVICE in wanted:
        assert "メンバー設定にない(または無効な)No.の行があります。" in mail.body


def test_a_pinned_encoding_is_named_in_the_advice(app, make_account):
    acc = make_account("acme", **ingest_options(encoding="utf-8"))
    imp = ingest.receive(acc.id, "20180516.csv", csv_file([[1, 1, 1, 1, "髙橋"]], encoding="cp932"), channel="mail",
                         sender="taro@example.com")
    runner.run_import(imp.id)
    [mail] = mails()
    assert ("・文字コード: 外部連携設定で文字コードが「UTF-8」に決められています。"
            "その文字コードで保存し直してください") in mail.body
    assert HEADER_ADVICE not in mail.body and VALUES_ADVICE not in mail.body
