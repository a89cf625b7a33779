"""The データ未着 mail and its 「届きました」 notice as the エラー報告メールアドレス gets them: through the outbox and a real SMTP sink."""
from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

from sqlalchemy import update

from app.extensions import db
from app.models import Import, IntegrationSettings
from app.services import ftpfiles, outbox, overdue
from servers.mailer import relay_sender
from tests.fixtures.ingest import csv_file, import_file

TOKYO = ZoneInfo("Asia/Tokyo")
GOOD = csv_file([[1, 100, 50, 1, ""]])


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=TOKYO)


def ftp_account(make_account):
    acc = make_account("acme", name="アクメ商事", mode="ftp", error_to=["errors@acme.example"],
                       members=[(1, "E001", "山田 太郎")], columns=[("売上", "円"), ("粗利", "円"), ("件数", "件")],
                       overdue_enabled="on", overdue_daily="same", overdue_daily_time="09:30")
    db.session.execute(update(IntegrationSettings).where(IntegrationSettings.account_id == acc.id)
                       .values(overdue_since=dt.datetime(2026, 11, 30, 15, 0)))
    db.session.commit()
    return acc


def put(home, name: str, when: dt.datetime) -> None:
    path = home / name
    path.write_bytes(b"No.,\xe5\xa3\xb2\xe4\xb8\x8a\r\n1,1\r\n")
    os.utime(path, (when.timestamp(), when.timestamp()))


def deliver(relay) -> int:
    return outbox.deliver_due(relay_sender(relay.url, "renkei@renkei.test"))


def test_the_mail_names_period_deadline_mode_last_file_and_what_waits_in_the_ftp_home(app, make_account, smtp_relay):
    acc = ftp_account(make_account)
    last = import_file(acc.id, "20261130.csv", GOOD, channel="ftp")
    db.session.execute(update(Import).where(Import.id == last.id)
                       .values(received_at=dt.datetime(2026, 11, 30, 0, 12)))  # 09:12 in Tokyo
    db.session.commit()
    home = ftpfiles.home_path(acc.settings.ftp_username, create=True)
    now = at(1, 9, 30)
    put(home, "20261201.csv.part", now - dt.timedelta(minutes=1))
    put(home, "uriage.csv", now - dt.timedelta(hours=1))
    put(home, "売上.txt", now - dt.timedelta(hours=1))
    put(home, "20261201.csv", now - dt.timedelta(seconds=2))

    assert overdue.evaluate(acc.id, now - dt.timedelta(minutes=1)).opened == []
    assert len(overdue.evaluate(acc.id, now).opened) == 1
    assert deliver(smtp_relay) == 1 and smtp_relay.wait_for(1)

    (mail,) = smtp_relay.messages
    assert mail.rcpt_tos == ["errors@acme.example"]
    assert mail.subject == "【データ未着】アクメ商事 2026/12/01 分(期限 2026/12/01 09:30)"
    text = mail.text
    assert "2026/12/01 分のデータが、期限の 2026/12/01 09:30(Asia/Tokyo)までに届いていません。" in text
    assert "対象: 2026/12/01 分(日次・当日分)" in text
    assert "データ連動方式: FTP連動" in text
    assert "最後に受け取ったファイル: 20261130.csv(2026/11/30 09:12 受信、FTP、成功)" in text
    waiting = text.split("■ FTPサーバーのフォルダにあって、まだ取り込んでいないファイル")[1].split("■")[0]
    assert "・20261201.csv.part(アップロード中の名前です。名前が変わるまで読み込みません)" in waiting
    assert "・20261201.csv(書き込みの途中かもしれないため、まだ読み込んでいません)" in waiting
    assert "・uriage.csv(ファイル名が規則に合いません。例: 20261201.csv、月次は 20261100.csv)" in waiting
    assert "・売上.txt(取り込めない種類のファイルです。CSV・Excel・ODSファイルで送ってください)" in waiting

    # The file comes later: one 「届きました」 notice, and nothing more on the next minutes.
    import_file(acc.id, "20261201.csv", GOOD, channel="ftp")
    assert len(overdue.evaluate(acc.id, at(1, 11, 0)).closed) == 1
    assert overdue.evaluate(acc.id, at(1, 11, 1)).closed == []
    assert deliver(smtp_relay) == 1 and smtp_relay.wait_for(2)
    notice = smtp_relay.messages[1]
    assert notice.subject == "【データ到着】アクメ商事 2026/12/01 分のデータが届きました"
    assert "未着をお知らせした 2026/12/01 分のデータが届きました。取込に成功しています。" in notice.text
    assert "ファイル: 20261201.csv(" in notice.text and "FTP)" in notice.text
    assert deliver(smtp_relay) == 0


def test_a_mail_account_says_nothing_was_received_yet(app, make_account, smtp_relay):
    acc = make_account("beta", mode="mail", senders=["erp@beta.example"], error_to=["ops@beta.example"],
                       overdue_enabled="on", overdue_monthly_day="3", overdue_monthly_time="08:00")
    db.session.execute(update(IntegrationSettings).where(IntegrationSettings.account_id == acc.id)
                       .values(overdue_since=dt.datetime(2026, 11, 30, 15, 0)))
    db.session.commit()
    overdue.evaluate(acc.id, at(3, 8, 0))
    assert deliver(smtp_relay) == 1 and smtp_relay.wait_for(1)
    text = smtp_relay.messages[0].text
    assert "対象: 2026/11 分(月次・翌月3日まで)" in text and "データ連動方式: メール添付連動" in text
    assert "最後に受け取ったファイル: まだありません" in text and "FTPサーバー" not in text
