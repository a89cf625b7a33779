"""The report mail a sender receives after a mail: advice that fits the error, every ignored attachment named.

Mails go through Renkei's real SMTP server (smtplib); the worker imports them; the assertions
read the outbox rows, i.e. the text the error and success addresses receive.
"""
from __future__ import annotations

import smtplib

from sqlalchemy import select

from app.extensions import db
from app.models import Import, OutboxMail
from tests.fixtures.smtp import SMTP_SENDER
from tests.fixtures.waiting import wait_for


def send(server, message) -> None:
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
        client.send_message(message, from_addr=SMTP_SENDER)


def reports(account_id: int, count: int) -> list[OutboxMail] | None:
    """The account's report mails once `count` exist."""
    db.session.expire_all()
    rows = list(db.session.scalars(select(OutboxMail).where(OutboxMail.account_id == account_id)
                                   .order_by(OutboxMail.id)))
    return rows if len(rows) >= count else None


def test_an_unread_spreadsheet_sent_by_mail_is_named_with_advice_and_no_same_name_advice(
    smtp_server, smtp_account, smtp_mail
):
    # .xlsx/.xlsm/.xls/.ods are imported (tests/servers/test_workbook_channels.py); .xlsb is not read.
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address,
                                [("売上報告.xlsb", b"PK\x03\x04 not really"), ("説明.pdf", b"%PDF-1.4")])
    send(smtp_server, message)
    [mail] = wait_for(lambda: reports(smtp_account.id, 1), what="the error report")
    body = mail.body
    assert mail.kind == "error" and "(CSV添付なし)" in mail.subject
    assert "同じファイル名で送り直してください" not in body
    assert "同じファイル名で以前に取り込んだ" not in body
    assert "CSVファイルまたはExcelファイルを添付して送り直してください" in body
    assert ("・「売上報告.xlsb」: 読み取れない形式の表計算ファイルのため取り込んでいません。"
            "「名前を付けて保存」で「Excel ブック(*.xlsx)」または「CSV(コンマ区切り)」を選んで保存し") in body
    assert "・「説明.pdf」: 取り込める形式(CSV・Excel・ODS)のファイルではないため取り込んでいません。" in body


def test_a_wrong_file_name_asks_for_a_new_name_not_the_same_one(smtp_server, smtp_account, smtp_mail):
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address, [("売上5月.csv", smtp_mail.csv())])
    send(smtp_server, message)
    [mail] = wait_for(lambda: reports(smtp_account.id, 1), what="the error report")
    assert "同じファイル名で" not in mail.body
    assert "ファイル名「売上5月.csv」からは期間が分かりません。" in mail.body
    assert "yyyymmdd.csv(日次、例 20180516.csv)" in mail.body
    assert "ファイル名を直して" in mail.body


def test_an_error_inside_the_file_still_asks_to_resend_under_the_same_name_and_names_the_ignored_files(
    smtp_server, smtp_account, smtp_mail
):
    bad = smtp_mail.csv([["No.", "売上"], ["1", "abc"]])
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address, [("20180516.csv", bad), ("memo.txt", b"x")])
    send(smtp_server, message)
    [mail] = wait_for(lambda: reports(smtp_account.id, 1), what="the error report")
    assert "エラーを直して、同じファイル名で送り直してください。" in mail.body
    assert "2行目 列「売上」 値「abc」" in mail.body
    assert ("■ 取り込まなかった添付ファイル\n・「memo.txt」: 取り込める形式(CSV・Excel・ODS)のファイルではないため"
            "取り込んでいません。") in mail.body


def test_the_success_report_names_the_attachments_it_ignored(smtp_server, smtp_account, smtp_mail):
    message = smtp_mail.message(SMTP_SENDER, smtp_account.address,
                                [("20180516.csv", smtp_mail.csv()), ("20180516.numbers", b"PK\x03\x04")])
    send(smtp_server, message)
    [mail] = wait_for(lambda: reports(smtp_account.id, 1), what="the success report")
    imp = db.session.scalar(select(Import).where(Import.account_id == smtp_account.id))
    assert imp.status == Import.SUCCEEDED and mail.kind == "success"
    assert ("■ 取り込まなかった添付ファイル\n・「20180516.numbers」: 読み取れない形式の表計算ファイルのため"
            "取り込んでいません。") in mail.body
