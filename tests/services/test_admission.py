"""Admission (services/admission.py) per channel, and guarded_login (services/bans.py) with an injected sleeper."""
from __future__ import annotations

import itertools

import pytest

from app.extensions import db
from app.models import IntegrationSettings
from app.services import admission, bans, integration
from app.services.admission import Channel, Outcome, Reason, Standing, admit

SENDER = "sales@partner.example"
STRANGER = "someone@else.example"
PENDING = "(before DATA)"  # the table's word for "sender not given"

DISABLED_FTP_MAIL = "このアカウントでは外部連携設定が有効になっていません。"
DISABLED_API = "このアカウントでは外部連携が有効になっていません。"
REFUSED_STRANGER = f"送信元メールアドレスに登録されていない差出人のため受信を拒否しました: {STRANGER}"
STOPPED_MAIL = "データ連動ステータスが連動稼働停止のため、メールを破棄しました"
NOT_FTP = "データ連動方式がFTP連動ではないため、チェックしません。"
NOT_API = "データ連動方式が「API連動」ではありません。"

# channel, enabled, mode, status, sender -> outcome, reason, text
TABLE = [
    # mail: mode, then the From: check, then the status
    ("mail", True, "mail", "active", SENDER, Outcome.ACCEPT, None, ""),
    ("mail", True, "mail", "active", "Sales@Partner.example", Outcome.ACCEPT, None, ""),
    ("mail", True, "mail", "active", PENDING, Outcome.ACCEPT, None, ""),
    ("mail", True, "mail", "active", STRANGER, Outcome.REFUSE, Reason.SENDER, REFUSED_STRANGER),
    ("mail", True, "mail", "active", None, Outcome.REFUSE, Reason.UNREADABLE_SENDER,
     "差出人を確認できないため受信を拒否しました"),
    ("mail", True, "mail", "stopped", SENDER, Outcome.DISCARD, Reason.STOPPED, STOPPED_MAIL),
    ("mail", True, "mail", "stopped", PENDING, Outcome.DISCARD, Reason.STOPPED, STOPPED_MAIL),
    # a stopped account still refuses a stranger: the sender rule comes first
    ("mail", True, "mail", "stopped", STRANGER, Outcome.REFUSE, Reason.SENDER, REFUSED_STRANGER),
    # another mode discards without looking at the sender list
    ("mail", True, "ftp", "active", STRANGER, Outcome.DISCARD, Reason.MODE,
     "データ連動方式が「FTP連動」のため、メールを破棄しました"),
    ("mail", True, "api", "stopped", None, Outcome.DISCARD, Reason.MODE,
     "データ連動方式が「API連動」のため、メールを破棄しました"),
    ("mail", False, "mail", "active", SENDER, Outcome.DISABLED, Reason.DISABLED, DISABLED_FTP_MAIL),
    ("mail", False, "mail", "active", PENDING, Outcome.DISABLED, Reason.DISABLED, DISABLED_FTP_MAIL),
    # FTP: a stopped status holds the files (login works, the check leaves them)
    ("ftp", True, "ftp", "active", PENDING, Outcome.ACCEPT, None, ""),
    ("ftp", True, "ftp", "stopped", PENDING, Outcome.HOLD, Reason.STOPPED,
     "データ連動ステータスが連動稼働停止のため、ファイルはそのまま残しています。"),
    ("ftp", True, "mail", "active", PENDING, Outcome.REFUSE, Reason.MODE, NOT_FTP),
    ("ftp", True, "api", "stopped", PENDING, Outcome.REFUSE, Reason.MODE, NOT_FTP),
    ("ftp", True, "ftp", "active", STRANGER, Outcome.ACCEPT, None, ""),  # only mail has senders
    ("ftp", False, "ftp", "active", PENDING, Outcome.DISABLED, Reason.DISABLED, DISABLED_FTP_MAIL),
    # API: a stopped status is refused (409)
    ("api", True, "api", "active", PENDING, Outcome.ACCEPT, None, ""),
    ("api", True, "api", "active", None, Outcome.ACCEPT, None, ""),
    ("api", True, "api", "stopped", PENDING, Outcome.REFUSE, Reason.STOPPED, "データ連動ステータスが「連動稼働停止」です。"),
    ("api", True, "mail", "active", PENDING, Outcome.REFUSE, Reason.MODE, NOT_API),
    ("api", True, "ftp", "stopped", PENDING, Outcome.REFUSE, Reason.MODE, NOT_API),
    ("api", False, "api", "active", PENDING, Outcome.DISABLED, Reason.DISABLED, DISABLED_API),
]


def decide(channel, enabled, mode, status, sender):
    standing = Standing(enabled=enabled, mode=mode, status=status, senders=frozenset({SENDER}))
    if sender == PENDING:
        return admit(standing, channel)
    return admit(standing, channel, sender=sender)


@pytest.mark.parametrize("channel, enabled, mode, status, sender, outcome, reason, text", TABLE)
def test_admission_table(channel, enabled, mode, status, sender, outcome, reason, text):
    assert decide(channel, enabled, mode, status, sender) == admission.Admission(outcome, reason, text)


SENDERS = [SENDER, STRANGER, None, PENDING]
EVERY = list(itertools.product(Channel, [True, False], ["mail", "ftp", "api"], ["active", "stopped"], SENDERS))


@pytest.mark.parametrize("channel, enabled, mode, status, sender", EVERY)
def test_every_combination_has_an_outcome_with_japanese_text(channel, enabled, mode, status, sender):
    got = decide(channel, enabled, mode, status, sender)
    if got.outcome is Outcome.ACCEPT:
        assert (got.reason, got.text) == (None, "")
    else:
        assert got.reason is not None and got.text and not got.text.isascii()
    # What the switch and the mode decide, nothing else changes.
    if not enabled:
        assert got.reason is Reason.DISABLED
    elif mode != channel:
        assert got.reason is Reason.MODE
        assert got.outcome is (Outcome.DISCARD if channel is Channel.MAIL else Outcome.REFUSE)


def test_an_account_is_admitted_from_its_stored_settings(make_account):
    account, _, _ = make_account("acme")
    settings = integration.get_settings(account.id)
    settings.mode, settings.status = "api", "stopped"
    db.session.commit()
    assert admit(account, "api").reason is Reason.STOPPED
    assert admit(account, Channel.FTP).text == NOT_FTP
    account.integration_enabled = False
    db.session.commit()
    assert admit(account, Channel.API).outcome is Outcome.DISABLED


def test_an_account_without_settings_admits_nothing(make_account):
    account, _, _ = make_account("acme")
    db.session.execute(db.delete(IntegrationSettings).where(IntegrationSettings.account_id == account.id))
    db.session.commit()
    db.session.expire_all()
    assert admit(account, Channel.MAIL, sender=SENDER).outcome is Outcome.DISABLED


# ---------------------------------------------------------------------------------------
# guarded_login


@pytest.fixture
def delayed(app, login_clock):
    """A 7.5 s delay between a failed login and the next try, on the test's clock (tests/fixtures/bans.py)."""
    app.config.update(LOGIN_FAIL_DELAY=7.5, BAN_THRESHOLD=3, BAN_SECONDS=900)
    return login_clock


def test_guarded_login_delays_only_after_failures_and_bans_at_the_threshold(app, delayed):
    key = bans.login_key("web", "me@acme.example")
    assert bans.guarded_login("192.0.2.1", key, lambda: "me").subject == "me"
    assert bans.guarded_login("192.0.2.1", key, lambda: "me").passed  # a success sets no delay
    answers = []
    for _ in range(3):
        answers.append(bans.guarded_login("192.0.2.1", key, lambda: None))
        delayed.advance(7.5)
    assert [r.verdict for r in answers] == [bans.Verdict.FAILED] * 3
    assert [(r.ban_started, r.retry_after) for r in answers] == [(False, 0), (False, 0), (True, 900)]
    # Banned: refused without checking the credentials, with the seconds actually left.
    checked = []
    banned = bans.guarded_login("192.0.2.1", key, lambda: checked.append(1) or "me")
    assert (banned.verdict, banned.subject, banned.retry_after, checked) == (bans.Verdict.BANNED, None, 893, [])


def test_a_try_before_the_delay_is_refused_unchecked_uncounted_with_the_seconds_left(app, delayed):
    key = bans.login_key("web", "me@acme.example")
    assert bans.guarded_login("192.0.2.1", key, lambda: None).verdict is bans.Verdict.FAILED
    checked = []
    delayed.advance(5)
    for _ in range(5):  # however many: none is counted towards the ban
        early = bans.guarded_login("192.0.2.1", key, lambda: checked.append(1) or "me")
        assert (early.verdict, early.retry_after) == (bans.Verdict.TOO_SOON, 3)
    assert checked == []
    # Other addresses and other logins of this address are not delayed.
    assert bans.guarded_login("192.0.2.2", key, lambda: "me").passed
    assert bans.guarded_login("192.0.2.1", bans.login_key("web", "you@acme.example"), lambda: "you").passed
    delayed.advance(2.5)
    assert bans.guarded_login("192.0.2.1", key, lambda: "me").passed


def test_a_good_login_forgives_its_own_failures(app):
    app.config.update(BAN_THRESHOLD=3)
    key = bans.login_key("ftp", "acme")
    for _ in range(2):
        bans.guarded_login("192.0.2.1", key, lambda: None)
    assert bans.guarded_login("192.0.2.1", key, lambda: "acme").passed
    assert [bans.guarded_login("192.0.2.1", key, lambda: None).ban_started for _ in range(3)] == [False, False, True]


def test_web_and_api_answer_a_failure_at_once_and_a_try_too_soon_with_429(app, client, make_account, delayed):
    make_account("acme")
    wrong = {"email": "admin@acme.example", "password": "wrong"}
    response = client.post("/login", data=wrong)
    assert response.status_code == 401
    assert "メールアドレスまたはパスワードが正しくありません。" in response.get_data(as_text=True)
    delayed.advance(2)
    response = client.post("/login", data={"email": "admin@acme.example", "password": "password-123"})
    assert (response.status_code, response.headers["Retry-After"]) == (429, "6")
    assert "ログインに失敗した直後のため、6秒後にもう一度お試しください。" in response.get_data(as_text=True)
    response = client.get("/api/v1/members", headers={"Authorization": "Bearer wrong-token"})
    assert response.status_code == 401
    response = client.get("/api/v1/members", headers={"Authorization": "Bearer wrong-token"})
    assert (response.status_code, response.headers["Retry-After"], response.json["error"]["code"]) == (
        429, "8", "rate_limited")
    delayed.advance(6)
    assert client.post("/login", data={"email": "admin@acme.example", "password": "password-123"}).status_code == 302


def test_the_api_ban_answers_the_seconds_actually_left(app, client, login_clock):
    app.config.update(BAN_THRESHOLD=2, BAN_SECONDS=900)
    wrong = {"Authorization": "Bearer wrong-token"}
    assert [client.get("/api/v1/members", headers=wrong).status_code for _ in range(3)] == [401, 401, 429]
    login_clock.advance(100.2)
    for headers in (wrong, {}):  # with a token or without one
        response = client.get("/api/v1/members", headers=headers)
        assert (response.status_code, response.json["error"]["code"], response.headers["Retry-After"]) == (
            429, "banned", "800")
        assert "残り800秒" in response.json["error"]["message"]


# ---------------------------------------------------------------------------- who may send (mail)

MAIL_STANDING = Standing(enabled=True, mode="mail", status="active", senders=frozenset({SENDER}))


@pytest.mark.parametrize("envelope, peer, networks, reason", [
    (SENDER, "127.0.0.1", (), None),
    ("SALES@partner.example", "127.0.0.1", ("127.0.0.0/8",), None),
    ("attacker@evil.example", "127.0.0.1", (), Reason.ENVELOPE),
    ("", "127.0.0.1", (), Reason.BOUNCE),
    (None, "127.0.0.1", (), Reason.BOUNCE),
    (SENDER, "127.0.0.1", ("10.0.0.0/8", "192.0.2.7"), Reason.NETWORK),
    (SENDER, "::ffff:10.1.2.3", ("10.0.0.0/8",), None),
    (SENDER, "2001:db8::5", ("10.0.0.0/8", "2001:db8::/32"), None),
    ("attacker@evil.example", "10.9.9.9", ("127.0.0.0/8",), Reason.NETWORK),  # the network rule comes first
])
def test_envelope_sender_and_peer(envelope, peer, networks, reason):
    standing = Standing(enabled=True, mode="mail", status="active", senders=frozenset({SENDER}), networks=networks)
    decision = admit(standing, Channel.MAIL, envelope=envelope, peer=peer)
    assert decision.reason is reason
    assert decision.outcome is (Outcome.ACCEPT if reason is None else Outcome.REFUSE)


def test_another_mode_discards_without_checking_envelope_or_peer():
    standing = Standing(enabled=True, mode="ftp", status="active", networks=("10.0.0.0/8",))
    assert admit(standing, Channel.MAIL, envelope="", peer="127.0.0.1").reason is Reason.MODE


@pytest.mark.parametrize("required, dkim, domain, spf, accepted", [
    ("none", "none", None, "none", True),
    ("dkim", "pass", "partner.example", "fail", True),
    ("dkim", "pass", "evil.example", "pass", False),  # a signature of another domain is no DKIM pass
    ("dkim", "none", None, "pass", False),
    ("spf", "none", None, "pass", True),
    ("spf", "pass", "partner.example", "softfail", False),
    ("either", "fail", "partner.example", "pass", True),
    ("either", "temperror", None, "temperror", False),
])
def test_required_sender_authentication(required, dkim, domain, spf, accepted):
    from dataclasses import replace

    from app.services.senderauth import Authentication

    standing = replace(MAIL_STANDING, sender_auth=required)
    decision = admission.authenticated(standing, Authentication(dkim=dkim, dkim_domain=domain, spf=spf), SENDER)
    assert decision.accepted is accepted
    if not accepted:
        assert decision.reason is Reason.UNAUTHENTICATED and f"SPF: {spf}" in decision.text
