"""services.integration: validation of every field, history, issued credentials and channel look-ups."""
from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from app.errors import Invalid
from app.extensions import db
from app.models import IntegrationSettings, SettingsChange
from app.services import integration as service
from tests.fixtures.addresses import INVALID as INVALID_ADDRESSES
from tests.fixtures.addresses import VALID as VALID_ADDRESSES

BASE = {"error_to": ["ops@example.com"], "senders": ["erp@example.com"]}


@pytest.fixture
def account(make_account):
    account, _, _ = make_account("acme")
    service.update_settings(account.id, dict(BASE), actor="setup")
    return account


def stored(account) -> IntegrationSettings:
    db.session.expire_all()
    return service.get_settings(account.id)


def errors_of(account, changes) -> dict[str, list[str]]:
    with pytest.raises(Invalid) as info:
        service.update_settings(account.id, changes, actor="test")
    return info.value.errors


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"error_to": []}, "error_to", "エラー報告メールアドレスを1件以上"),
        ({"error_to": "  \n , "}, "error_to", "エラー報告メールアドレスを1件以上"),
        ({"error_to": "ops@example.com\nnot-an-address"}, "error_to", "「not-an-address」はメールアドレスとして正しくありません"),
        ({"success_to": ["a@b..jp"]}, "success_to", "「a@b..jp」はメールアドレスとして正しくありません"),
        ({"senders": []}, "senders", "送信元メールアドレスを1件以上"),
        ({"mode": "fax"}, "mode", "データ連動方式は"),
        ({"status": "paused"}, "status", "データ連動ステータスは"),
        ({"member_key": "name"}, "member_key", "メンバー識別IDは"),
        ({"encoding": "euc-jp"}, "encoding", "文字コードは"),
        ({"mode": "ftp", "ftp_days": []}, "ftp_days", "データ連動曜日を1つ以上"),
        ({"mode": "ftp", "ftp_days": "mon,xyz"}, "ftp_days", "曜日「xyz」"),
        ({"mode": "ftp", "ftp_start": "9時"}, "ftp_start", "HH:MM"),
        ({"mode": "ftp", "ftp_end": "25:00"}, "ftp_end", "00:00〜23:59"),
        ({"mode": "ftp", "ftp_start": "18:00", "ftp_end": "09:00"}, "ftp_end", "終了時刻は開始時刻以降"),
        ({"mode": "ftp", "ftp_interval": "7"}, "ftp_interval", "5分・10分・15分・30分・1時間・2時間"),
        ({"mode": "ftp", "ftp_interval": "abc"}, "ftp_interval", "数字で"),
        ({"mode": "ftp", "ftp_delay": "60"}, "ftp_delay", "0〜59"),
        ({"mode": "ftp", "ftp_delay": "-1"}, "ftp_delay", "数字で"),
        ({"mode": "ftp", "ftp_interval": 30, "ftp_delay": 30}, "ftp_delay", "間隔より短く"),
    ],
)
def test_each_rule_reports_on_its_field(account, changes, field, message):
    errors = errors_of(account, changes)
    assert field in errors
    assert any(message in m for m in errors[field]), errors


def test_every_problem_is_reported_at_once_and_nothing_is_saved(account):
    before = stored(account).error_to
    errors = errors_of(account, {"mode": "ftp", "error_to": "x", "ftp_days": [], "ftp_delay": "99"})
    assert set(errors) == {"error_to", "ftp_days", "ftp_delay"}
    assert stored(account).error_to == before
    assert stored(account).mode == "mail"


def test_addresses_are_normalized_deduplicated_in_order(account):
    service.update_settings(
        account.id,
        {"error_to": "B@Example.COM, a@example.com\nb@example.com；ｃ＠ｅｘａｍｐｌｅ．ｃｏｍ", "success_to": ["x@example.com", ""]},
        actor="test",
    )
    settings = stored(account)
    assert settings.error_to == ["B@example.com", "a@example.com", "c@example.com"]
    assert settings.success_to == ["x@example.com"]


def test_senders_only_required_in_mail_mode(account):
    service.update_settings(account.id, {"mode": "api", "senders": []}, actor="test")
    assert stored(account).mode == "api"
    with pytest.raises(Invalid):
        service.update_settings(account.id, {"mode": "mail"}, actor="test")


def test_values_of_other_modes_are_kept_when_switching(account):
    service.update_settings(
        account.id,
        {"mode": "ftp", "ftp_days": ["sat", "mon"], "ftp_start": "8:30", "ftp_end": "20:00", "ftp_interval": "30", "ftp_delay": "5"},
        actor="test",
    )
    service.update_settings(account.id, {"mode": "api"}, actor="test")
    service.update_settings(account.id, {"mode": "mail"}, actor="test")
    settings = stored(account)
    assert settings.mode == "mail"
    assert settings.senders == ["erp@example.com"]
    assert (settings.ftp_days, settings.ftp_start, settings.ftp_end, settings.ftp_interval, settings.ftp_delay) == (
        ["mon", "sat"], "08:30", "20:00", 30, 5,
    )


@pytest.mark.parametrize("changes, field, message", [
    ({"mode": "mail", "ftp_delay": "99"}, "ftp_delay", "遅らせる"),
    ({"mode": "mail", "ftp_start": "18:00", "ftp_end": "09:00"}, "ftp_end", "終了時刻は開始時刻以降にしてください。"),
    ({"mode": "api", "ftp_interval": "7"}, "ftp_interval", "データ連動間隔"),
    ({"mode": "api", "senders": "broken"}, "senders", "「broken」はメールアドレスとして正しくありません"),
    ({"mode": "ftp", "senders": ["ok@x.co.jp", "not-an-email"]}, "senders", "「not-an-email」はメールアドレスとして正しくありません"),
])
def test_invalid_values_of_another_mode_are_refused_and_nothing_is_saved(account, changes, field, message):
    before = service.as_dict(service.accounts.get_by_slug("acme"), stored(account))
    with pytest.raises(Invalid) as refused:
        service.update_settings(account.id, changes, actor="t")
    assert any(message in text for text in refused.value.errors[field]), refused.value.errors
    assert service.as_dict(service.accounts.get_by_slug("acme"), stored(account)) == before


def test_blank_values_of_another_mode_keep_what_is_stored(account):
    # The settings page posts the hidden sections of the other modes; their blanks are no errors.
    service.update_settings(account.id, {"mode": "api", "senders": "", "ftp_start": "", "ftp_end": " ",
                                         "ftp_interval": "", "ftp_delay": None}, actor="t")
    settings = stored(account)
    assert settings.mode == "api"
    assert (settings.ftp_start, settings.ftp_end, settings.ftp_interval, settings.ftp_delay) == ("09:00", "18:00", 60, 0)


def test_valid_values_of_another_mode_are_saved(account):
    service.update_settings(account.id, {"ftp_days": "月,水", "ftp_interval": 15}, actor="t")
    settings = stored(account)
    assert settings.mode == "mail"
    assert (settings.ftp_days, settings.ftp_interval) == (["mon", "wed"], 15)


def test_change_is_recorded_in_japanese_without_codes(account):
    service.update_settings(account.id, {"mode": "ftp", "status": "stopped", "ftp_interval": 120}, actor="boss@example.com")
    change = service.recent_changes(account.id)[0]
    assert change.actor == "boss@example.com"
    assert "データ連動方式: メール添付連動 → FTP連動" in change.summary
    assert "データ連動ステータス: 連動稼働 → 連動稼働停止" in change.summary
    assert "データ連動間隔: 1時間 → 2時間" in change.summary
    assert "エラー報告" not in change.summary  # unchanged fields are not listed


def test_saving_the_same_values_records_nothing(account):
    count = db.session.scalar(db.select(db.func.count(SettingsChange.id)))
    service.update_settings(account.id, dict(BASE), actor="t")
    assert db.session.scalar(db.select(db.func.count(SettingsChange.id))) == count


def test_unknown_field_is_refused(account):
    with pytest.raises(Invalid):
        service.update_settings(account.id, {"api_token_hash": "x"}, actor="t")


def test_as_dict_has_exactly_the_spec_keys(account, app):
    keys = {
        "enabled", "mode", "status", "member_key", "key_aliases", "extra_columns", "encoding", "error_to",
        "success_to", "senders",
        "sender_networks", "sender_auth", "inbound_address", "ftp_server", "ftp_username", "ftp_days", "ftp_start", "ftp_end",
        "ftp_interval", "ftp_delay", "api_endpoint", "next_checks", "sheet_name",
        "overdue_enabled", "overdue_daily", "overdue_daily_time", "overdue_monthly_day", "overdue_monthly_time",
        "overdue_days", "overdue_skip_holidays",
    }
    data = service.as_dict(account, stored(account))
    assert set(data) == keys
    assert data["inbound_address"].endswith("@" + app.config["MAIL_DOMAIN"])
    assert data["ftp_server"] == f"{app.config['HOST']}:{app.config['FTP_PORT']}"
    assert data["api_endpoint"] == "http://renkei.test/api/v1/imports"
    assert data["next_checks"] == []  # mail mode: no FTP checks


def test_as_dict_next_checks_in_ftp_mode(account):
    service.update_settings(account.id, {"mode": "ftp", "ftp_days": "mon,tue,wed,thu,fri", "ftp_delay": 5}, actor="t")
    now = dt.datetime(2018, 5, 16, 7, 30, tzinfo=dt.timezone.utc)  # 16:30 in Tokyo, a Wednesday
    data = service.as_dict(account, stored(account), now=now)
    assert data["next_checks"] == [
        "2018-05-16T17:05:00+09:00", "2018-05-16T18:05:00+09:00",
        "2018-05-17T09:05:00+09:00", "2018-05-17T10:05:00+09:00", "2018-05-17T11:05:00+09:00",
    ]


def test_ftp_password_is_hashed_and_verifies(account):
    password = service.issue_ftp_password(account.id, actor="t")
    settings = stored(account)
    assert password not in (settings.ftp_password_hash or "")
    assert service.verify_ftp_password("acme", password).account_id == account.id
    assert service.verify_ftp_password("ACME", password).account_id == account.id
    assert service.verify_ftp_password("acme", password + "x") is None
    assert service.verify_ftp_password("nobody", password) is None
    second = service.issue_ftp_password(account.id, actor="t")
    assert service.verify_ftp_password("acme", password) is None
    assert service.verify_ftp_password("acme", second) is not None
    summaries = [c.summary for c in service.recent_changes(account.id)]
    assert "FTPサーバー PWを再発行しました(ID: acme)" in summaries[0]
    assert "FTPサーバー PWを発行しました(ID: acme)" in summaries[1]
    assert not any(password in s or second in s for s in summaries)


def test_api_token_is_stored_as_sha256_and_resolves(account):
    token = service.issue_api_token(account.id, actor="t")
    assert stored(account).api_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert service.account_for_token(token).id == account.id
    assert service.account_for_token(token[:-1]) is None
    assert service.account_for_token("") is None
    newer = service.issue_api_token(account.id, actor="t")
    assert service.account_for_token(token) is None
    assert service.account_for_token(newer).id == account.id


def test_inbound_address_resolves_case_insensitively_and_only_on_our_domain(account, app):
    address = service.inbound_address(stored(account))
    local = address.split("@")[0]
    domain = app.config["MAIL_DOMAIN"]
    assert service.account_for_inbound_address(address).id == account.id
    assert service.account_for_inbound_address(f"{local.upper()}@{domain.upper()}").id == account.id
    assert service.account_for_inbound_address(f"<{address}>").id == account.id
    assert service.account_for_inbound_address(f"{local}@other.example") is None
    assert service.account_for_inbound_address("nobody@" + domain) is None
    assert service.account_for_inbound_address("garbage") is None


def test_reissued_inbound_address_replaces_the_old_one(account):
    old = service.inbound_address(stored(account))
    new = service.reissue_inbound_address(account.id, actor="t")
    assert new != old
    assert service.account_for_inbound_address(old) is None
    assert service.account_for_inbound_address(new).id == account.id
    assert old in service.recent_changes(account.id)[0].summary


def test_accounts_do_not_see_each_other(make_account, account):
    other, _, _ = make_account("beta")
    token = service.issue_api_token(other.id, actor="t")
    assert service.account_for_token(token).id == other.id
    service.update_settings(other.id, {"error_to": "x@beta.example", "senders": "y@beta.example"}, actor="t")
    assert stored(account).error_to == ["ops@example.com"]
    assert all(c.account_id == other.id for c in service.recent_changes(other.id))



def test_every_valid_address_is_accepted_as_sender_and_report_address(account):
    typed = [t for t, _ in VALID_ADDRESSES]
    service.update_settings(account.id, {"senders": typed, "error_to": typed, "success_to": typed}, actor="t")
    settings = stored(account)
    expected = list(dict.fromkeys(n for _, n in VALID_ADDRESSES))  # the same address twice is kept once
    assert settings.senders == settings.error_to == settings.success_to == expected


@pytest.mark.parametrize("typed", [t for t in INVALID_ADDRESSES if t.strip()])
def test_every_invalid_address_is_refused_as_sender(account, typed):
    with pytest.raises(Invalid) as refused:
        service.update_settings(account.id, {"senders": ["ok@sales.local", typed]}, actor="t")
    assert refused.value.errors["senders"] == [f"「{typed}」はメールアドレスとして正しくありません。"]
    assert stored(account).senders == ["erp@example.com"]
