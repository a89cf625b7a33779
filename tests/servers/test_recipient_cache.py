"""The SMTP server's recipient cache (issue 13): fast RCPTs, yet settings changes take effect.

A change committed in the SMTP server's process empties the cache at once; a change committed
by another process (simulated here by a second engine on the same database, which no ORM
listener of ours sees) takes effect once the cached answer is older than its time to live.
"""
from __future__ import annotations

import smtplib

import pytest
from sqlalchemy import create_engine, text

from app.extensions import db
from servers.recipients import RecipientCache, _listen_for_recipient_changes
from servers.smtpservices import _AppServices
from tests.fixtures.smtp import SMTP_SENDER


def rcpt(server, address: str) -> int:
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        client.ehlo()
        client.mail(SMTP_SENDER)
        code, _ = client.rcpt(address)
        return code


def test_reissued_address_is_refused_at_once_and_the_new_one_accepted(smtp_server, smtp_account):
    from app.services import integration

    assert rcpt(smtp_server, smtp_account.address) == 250  # now cached
    new_address = integration.reissue_inbound_address(smtp_account.id, actor="test")
    assert rcpt(smtp_server, smtp_account.address) == 550
    assert rcpt(smtp_server, new_address) == 250


def test_integration_turned_off_after_a_cached_rcpt_refuses_at_once(smtp_server, smtp_account):
    from app.services import accounts

    assert rcpt(smtp_server, smtp_account.address) == 250
    accounts.set_integration_enabled(smtp_account.slug, False)
    assert rcpt(smtp_server, smtp_account.address) == 550


def test_a_rolled_back_change_keeps_the_cache(app, smtp_account):
    from app.models import IntegrationSettings

    calls = []
    services = _AppServices(app)
    cache = RecipientCache(lambda address: calls.append(address) or services.resolve_recipient(address), ttl=60)
    _listen_for_recipient_changes()
    assert cache(smtp_account.address) is not None
    settings = db.session.scalar(db.select(IntegrationSettings).where(IntegrationSettings.account_id == smtp_account.id))
    settings.status = "stopped"
    db.session.flush()
    db.session.rollback()
    assert cache(smtp_account.address) is not None
    assert len(calls) == 1


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("change", ["reissue", "disable"])
def test_a_change_made_by_another_process_takes_effect_within_the_cache_time(app, smtp_account, change):
    clock = Clock()
    services = _AppServices(app)
    cache = RecipientCache(services.resolve_recipient, ttl=5.0, clock=clock)
    _listen_for_recipient_changes()
    before = cache(smtp_account.address)
    assert before is not None and before.enabled

    # Another process (e.g. the web UI on another host) commits on the same database.
    other = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with other.begin() as connection:
            if change == "reissue":
                connection.execute(text("UPDATE integration_settings SET inbound_local = 'reissued0000' "
                                        "WHERE account_id = :id"), {"id": smtp_account.id})
            else:
                connection.execute(text("UPDATE accounts SET integration_enabled = :off WHERE id = :id"),
                                   {"off": False, "id": smtp_account.id})
    finally:
        other.dispose()

    clock.now += 4.9  # within the documented bound the old answer may still be used
    assert cache(smtp_account.address) == before
    clock.now += 0.1  # from 5 s on it is not
    after = cache(smtp_account.address)
    if change == "reissue":
        assert after is None
    else:
        assert after is not None and not after.enabled
