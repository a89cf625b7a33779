"""Login bans per address and per login name (services/bans.py), with an injected clock."""
from __future__ import annotations

import datetime as dt

import pytest

from app.extensions import db
from app.models import AuthFailure
from app.services import bans

T0 = dt.datetime(2030, 5, 1, 9, 0, 0)
VICTIM = bans.login_key("web", "victim@acme.example")
MINE = bans.login_key("web", "me@other.example")


@pytest.fixture(autouse=True)
def limits(app):
    app.config.update(BAN_THRESHOLD=10, BAN_WINDOW_SECONDS=600, BAN_SECONDS=900,
                      LOGIN_BAN_THRESHOLD=30, LOGIN_BAN_WINDOW_SECONDS=3600, LOGIN_BAN_SECONDS=900)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def fail(address: str, login: str | None, now: dt.datetime) -> bool:
    """One wrong login; True when it is answered with a ban (refused unchecked, or the one that starts it)."""
    attempt = bans.begin(address, login, now=now)
    return not attempt.allowed or attempt.failed()


def succeed(address: str, login: str | None, now: dt.datetime) -> bool:
    """One right login; True when it got through."""
    attempt = bans.begin(address, login, now=now)
    if attempt.allowed:
        attempt.succeeded()
    return attempt.allowed


def test_a_good_login_of_another_name_forgives_nothing():
    # The attack of issue 12: 9 guesses, 1 good login of the attacker's own name, again and again.
    clock = 0
    for _ in range(9):
        clock += 1
        assert not fail("198.51.100.1", VICTIM, now=at(clock))
    assert succeed("198.51.100.1", MINE, now=at(clock))
    assert fail("198.51.100.1", VICTIM, now=at(clock + 1))  # the 10th guess bans
    assert bans.is_banned("198.51.100.1", now=at(clock + 2))


def test_a_good_login_forgives_only_its_own_failures():
    for second in range(3):
        fail("198.51.100.1", MINE, now=at(second))      # my typos
    for second in range(3, 9):
        fail("198.51.100.1", VICTIM, now=at(second))    # guesses at someone else
    assert succeed("198.51.100.1", MINE, now=at(9))
    # 6 guesses remain counted: the 4th after them bans, not the 7th.
    assert [fail("198.51.100.1", VICTIM, now=at(10 + n)) for n in range(4)] == [False] * 3 + [True]


def test_one_login_guessed_from_many_addresses_is_banned_and_a_good_login_does_not_lift_it():
    for n in range(29):
        assert not fail(f"203.0.113.{n}", VICTIM, now=at(n))
    assert fail("203.0.113.200", VICTIM, now=at(30))
    # Refused from everywhere, also an address that never failed, also after a good login of it.
    assert bans.is_banned("192.0.2.9", VICTIM, now=at(31))
    assert not succeed("192.0.2.9", VICTIM, now=at(31))
    assert bans.is_banned("192.0.2.9", VICTIM, now=at(32))
    # Other names and the addresses themselves are not refused.
    assert not bans.is_banned("192.0.2.9", MINE, now=at(32))
    assert not bans.is_banned("203.0.113.1", now=at(32))
    # The ban ends after LOGIN_BAN_SECONDS, and the count starts again.
    assert bans.is_banned("192.0.2.9", VICTIM, now=at(30 + 899))
    assert not bans.is_banned("192.0.2.9", VICTIM, now=at(30 + 900))
    assert not fail("192.0.2.9", VICTIM, now=at(30 + 901))


def test_address_ban_ends_and_counting_starts_again():
    for n in range(10):
        fail("198.51.100.1", VICTIM, now=at(n))
    assert bans.is_banned("198.51.100.1", now=at(10 + 899 - 9))
    assert not bans.is_banned("198.51.100.1", now=at(9 + 900))
    assert not fail("198.51.100.1", VICTIM, now=at(9 + 901))


def test_failures_outside_the_window_are_forgotten_and_old_rows_pruned():
    for n in range(9):
        fail("198.51.100.1", VICTIM, now=at(n))
    # 10 minutes later the address starts from zero; the hour-long login count goes on.
    assert not fail("198.51.100.1", VICTIM, now=at(700))
    assert db.session.get(AuthFailure, ("address", "198.51.100.1")).failures == 1
    assert db.session.get(AuthFailure, ("login", VICTIM)).failures == 10
    fail("192.0.2.1", MINE, now=at(700 + 3601))
    assert {row.key for row in db.session.scalars(db.select(AuthFailure))} == {
        "192.0.2.1", MINE, f"192.0.2.1 {MINE}"}


def test_attempts_are_counted_before_the_check_so_concurrent_ones_stop_at_the_threshold():
    # 12 attempts begun at once, none answered yet: the 11th and 12th are refused unchecked.
    attempts = [bans.begin("198.51.100.1", VICTIM, now=at(1)) for _ in range(12)]
    assert [a.allowed for a in attempts] == [True] * 10 + [False] * 2
    # The failure that reached the threshold starts the ban; those before it are plain failures.
    assert [a.failed() for a in attempts[:10]] == [False] * 9 + [True]
    assert bans.is_banned("198.51.100.1", now=at(2))


def test_good_logins_without_a_login_name_give_back_only_their_own_attempt():
    # API tokens: a good token's requests never add up, and never forgive a wrong token.
    for n in range(50):
        assert succeed("198.51.100.1", None, now=at(n))
    assert [fail("198.51.100.1", None, now=at(100 + n)) for n in range(5)] == [False] * 5
    assert succeed("198.51.100.1", None, now=at(200))
    assert [fail("198.51.100.1", None, now=at(300 + n)) for n in range(5)] == [False] * 4 + [True]


def test_login_names_are_counted_whatever_their_case():
    assert bans.login_key("web", " Victim@ACME.example ") == VICTIM
    assert bans.login_key("ftp", "victim@acme.example") != VICTIM
