"""連携状況: per channel what came last, succeeded last and failed last (with why), what waits, what is next.

Only admins of the account see it, and only their account's imports. The clock is injected
(app.extensions[health.CLOCK_KEY]); stored times are set by the test, so nothing depends on today.
"""
from __future__ import annotations

import datetime as dt
import re

import pytest

from app import health
from app.enums import Channel
from app.extensions import db
from app.models import Import, User
from app.services import ingest, linkstatus, queue, users
from tests.fixtures.api import BAD_ROWS, csv_bytes
from tests.fixtures.html import element
from tests.fixtures.ingest import import_file

JST = dt.timezone(dt.timedelta(hours=9))
FRIDAY_NOON = dt.datetime(2026, 11, 20, 12, 0, tzinfo=JST)
MEMBERS = [(1, "E001", "髙橋 一郎", "営業部"), (2, "E002", "佐藤 花子", "営業部"), (3, "E003", "鈴木 次郎", "営業部")]
COLUMNS = [("売上", "円"), ("粗利", "円"), ("件数", "件")]


def utc(local: str) -> dt.datetime:
    """A Tokyo wall-clock time as stored (naive UTC)."""
    return dt.datetime.fromisoformat(local).replace(tzinfo=JST).astimezone(dt.UTC).replace(tzinfo=None)


def at(imp: Import, received: str, finished: str | None = None) -> Import:
    imp.received_at = utc(received)
    imp.finished_at = utc(finished) if finished else None
    db.session.commit()
    return imp


@pytest.fixture
def ftp_link(app, make_account):
    """acme in FTP連動, active: weekdays 09:00-18:00 hourly, 5 minutes late; the clock at Friday noon."""
    app.extensions[health.CLOCK_KEY] = lambda: FRIDAY_NOON
    return make_account("acme", members=MEMBERS, columns=COLUMNS, mode="ftp", status="active",
                        ftp_days=["mon", "tue", "wed", "thu", "fri"], ftp_start="09:00", ftp_end="18:00",
                        ftp_interval=60, ftp_delay=5, senders=["sales@partner.example"],
                        error_to=["errors@acme.example"])


def row(html: str, channel: str) -> str:
    """The text of the channel's row as a user reads it."""
    found = element(html, f"channel-{channel}")
    assert found is not None, f"no row for {channel}"
    return found.text


def shown(html: str, element_id: str) -> str:
    return element(html, element_id).text


def test_each_channel_shows_its_last_receipt_success_failure_and_queue(client, login, ftp_link):
    at(import_file(ftp_link.id, "20261119.csv", csv_bytes(), channel=Channel.FTP),
       "2026-11-19 09:05:01", "2026-11-19 09:05:03")
    failed = at(import_file(ftp_link.id, "20261120.csv", csv_bytes(BAD_ROWS), channel=Channel.FTP),
                "2026-11-20 09:05:01", "2026-11-20 09:05:02")
    at(ingest.receive(ftp_link.id, "20261120.csv", csv_bytes(), channel=Channel.FTP), "2026-11-20 11:05:00")
    at(ingest.record_refusal(ftp_link.id, channel=Channel.MAIL, filename="20261118.csv", sender="x@other.example",
                             status=Import.REFUSED, note="メールが大きすぎるため受信を拒否しました。"),
       "2026-11-18 08:00:00", "2026-11-18 08:00:00")
    login(ftp_link.email)

    html = client.get("/status").get_data(as_text=True)

    assert failed.status == Import.FAILED and failed.error_count == 3
    ftp = row(html, "ftp")
    assert "使用中" in ftp
    assert "2026-11-20 11:05:00 20261120.csv 待機中" in ftp  # the last receipt, still waiting
    assert "2026-11-19 09:05:03 20261119.csv" in ftp  # the last success
    assert "2026-11-20 09:05:02 20261120.csv エラー" in ftp and "(ほか2件)" in ftp  # the last failure and why
    assert "1 件 最も古いもの: 2026-11-20 11:05:00" in ftp
    mail = row(html, "mail")
    assert "2026-11-18 08:00:00 20261118.csv 拒否" in mail and "メールが大きすぎるため受信を拒否しました。" in mail
    assert row(html, "api") == "API — — — なし"
    assert shown(html, "waiting-total") == "1 件(最も古いもの: 2026-11-20 11:05:00 受信)"
    assert shown(html, "next-expected") == "2026-11-20 12:05 FTPフォルダの定時チェック"
    assert shown(html, "link-mode") == "FTP連動"


def test_every_link_channel_of_the_enum_has_a_row_and_people_have_none(client, login, ftp_link):
    login(ftp_link.email)

    html = client.get("/status").get_data(as_text=True)

    assert re.findall(r'<tr id="channel-(\w+)">', html) == [c.value for c in linkstatus.LINK_CHANNELS]
    assert {"mail", "ftp", "api"} <= set(linkstatus.LINK_CHANNELS)
    assert "web" not in html.split('id="link-channels"')[1] and "cli" not in linkstatus.LINK_CHANNELS


def test_nothing_expected_when_the_link_is_stopped_or_by_mail(app, client, login, make_account):
    app.extensions[health.CLOCK_KEY] = lambda: FRIDAY_NOON
    made = make_account("acme", mode="ftp", status="stopped", error_to=["errors@acme.example"],
                        senders=["sales@partner.example"])
    login(made.email)
    assert shown(client.get("/status").get_data(as_text=True), "next-expected") == "予定なし(データ連動ステータスが停止中です)"

    made.account.settings.mode, made.account.settings.status = "mail", "active"
    db.session.commit()
    html = client.get("/status").get_data(as_text=True)
    assert shown(html, "next-expected") == "予定なし(メール・APIのファイルは送信元が送ったときに届きます)"
    assert linkstatus.next_expected(made.account, FRIDAY_NOON) is None


def test_next_expected_is_the_next_ftp_check_across_the_weekend(app, ftp_link):
    friday_evening = dt.datetime(2026, 11, 20, 18, 6, tzinfo=JST)  # after the last check, 18:05

    expected = linkstatus.next_expected(ftp_link.account, friday_evening)

    assert expected.at == dt.datetime(2026, 11, 23, 9, 5, tzinfo=JST) and expected.channel == "ftp"


def test_only_the_accounts_own_imports_are_shown(client, login, ftp_link, make_account):
    at(import_file(ftp_link.id, "20261119.csv", csv_bytes(), channel=Channel.FTP), "2026-11-19 09:05:01",
       "2026-11-19 09:05:03")
    ingest.receive(ftp_link.id, "20261120.csv", csv_bytes(), channel=Channel.API)
    beta = make_account("beta", mode="api", status="active", error_to=["errors@beta.example"])
    login(beta.email)

    html = client.get("/status").get_data(as_text=True)

    assert "20261119.csv" not in html and "20261120.csv" not in html
    assert shown(html, "waiting-total") == "なし"
    assert queue.waiting(beta.id).count == 0 and queue.waiting(ftp_link.id).count == 1


def test_viewers_get_403_and_no_link(app, client, login, ftp_link):
    users.create_user(ftp_link.id, "viewer@acme.example", "password-123", User.VIEWER)
    login("viewer@acme.example")

    answer = client.get("/status")
    index = client.get("/").get_data(as_text=True)

    assert answer.status_code == 403
    assert "この操作を行う権限がありません。" in answer.get_data(as_text=True)
    assert "連携状況" not in index


def test_admins_find_the_page_in_the_menu(client, login, ftp_link):
    login(ftp_link.email)

    index = client.get("/").get_data(as_text=True)

    assert '<a href="/status" >連携状況</a>' in index


def test_anonymous_is_sent_to_login(client):
    answer = client.get("/status")

    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")


def test_an_account_without_integration_shows_empty_channels(client, login, make_account):
    made = make_account("acme", integration=False)
    login(made.email)

    html = client.get("/status").get_data(as_text=True)

    assert shown(html, "next-expected") == "予定なし(外部連携が無効です)"
    assert element(html, "link-mode") is None and "使用中" not in html
    assert row(html, "mail") == "メール — — — なし"


def test_with_overdue_alerts_on_the_next_deadline_is_expected_skipping_the_holiday(app, client, login, make_account):
    app.extensions[health.CLOCK_KEY] = lambda: FRIDAY_NOON
    made = make_account("acme", mode="mail", status="active", error_to=["errors@acme.example"],
                        senders=["sales@partner.example"])
    settings = made.account.settings
    settings.overdue_enabled, settings.overdue_daily, settings.overdue_daily_time = True, "same", "09:30"
    settings.overdue_days, settings.overdue_skip_holidays = ["mon", "tue", "wed", "thu", "fri"], True
    db.session.commit()
    login(made.email)

    html = client.get("/status").get_data(as_text=True)

    # Friday 11/20's deadline has passed; Monday 11/23 is 勤労感謝の日.
    assert shown(html, "next-expected") == "2026-11-24 09:30 2026/11/24 分のファイルの期限"
