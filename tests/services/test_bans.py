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


def test_a_good_login_of_another_name_forgives_nothing():
    # The attack of issue 12: 9 guesses, 1 good login of the attacker's own name, again and again.
    clock = 0
    for _ in range(9):
        clock += 1
        assert not bans.record_failure("198.51.100.1", VICTIM, now=at(clock))
    bans.record_success("198.51.100.1", MINE)
    assert bans.record_failure("198.51.100.1", VICTIM, now=at(clock + 1))  # the 10th guess bans
    assert bans.is_banned("198.51.100.1", now=at(clock + 2))


def test_a_good_login_forgives_only_its_own_failures():
    for second in range(3):
        bans.record_failure("198.51.100.1", MINE, now=at(second))      # my typos
    for second in range(3, 9):
        bans.record_failure("198.51.100.1", VICTIM, now=at(second))    # guesses at someone else
    bans.record_success("198.51.100.1", MINE)
    # 6 guesses remain counted: the 4th after them bans, not the 7th.
    assert [bans.record_failure("198.51.100.1", VICTIM, now=at(10 + n)) for n in range(4)] == [False] * 3 + [True]


def test_one_login_guessed_from_many_addresses_is_banned_and_a_good_login_does_not_lift_it():
    for n in range(29):
        assert not bans.record_failure(f"203.0.113.{n}", VICTIM, now=at(n))
    assert bans.record_failure("203.0.113.200", VICTIM, now=at(30))
    # Refused from everywhere, also an address that never failed, also after a good login of it.
    assert bans.is_banned("192.0.2.9", VICTIM, now=at(31))
    bans.record_success("192.0.2.9", VICTIM)
    assert bans.is_banned("192.0.2.9", VICTIM, now=at(32))
    # Other names and the addresses themselves are not refused.
    assert not bans.is_banned("192.0.2.9", MINE, now=at(32))
    assert not bans.is_banned("203.0.113.1", now=at(32))
    # The ban ends after LOGIN_BAN_SECONDS, and the count starts again.
    assert bans.is_banned("192.0.2.9", VICTIM, now=at(30 + 899))
    assert not bans.is_banned("192.0.2.9", VICTIM, now=at(30 + 900))
    assert not bans.record_failure("192.0.2.9", VICTIM, now=at(30 + 901))


def test_address_ban_ends_and_counting_starts_again():
    for n in range(10):
        bans.record_failure("198.51.100.1", VICTIM, now=at(n))
    assert bans.is_banned("198.51.100.1", now=at(10 + 899 - 9))
    assert not bans.is_banned("198.51.100.1", now=at(9 + 900))
    assert not bans.record_failure("198.51.100.1", VICTIM, now=at(9 + 901))


def test_failures_outside_the_window_are_forgotten_and_old_rows_pruned():
    for n in range(9):
        bans.record_failure("198.51.100.1", VICTIM, now=at(n))
    # 10 minutes later the address starts from zero; the hour-long login count goes on.
    assert not bans.record_failure("198.51.100.1", VICTIM, now=at(700))
    assert db.session.get(AuthFailure, ("address", "198.51.100.1")).failures == 1
    assert db.session.get(AuthFailure, ("login", VICTIM)).failures == 10
    bans.record_failure("192.0.2.1", MINE, now=at(700 + 3601))
    assert {row.key for row in db.session.scalars(db.select(AuthFailure))} == {
        "192.0.2.1", MINE, f"192.0.2.1 {MINE}"}


def test_login_names_are_counted_whatever_their_case():
    assert bans.login_key("web", " Victim@ACME.example ") == VICTIM
    assert bans.login_key("ftp", "victim@acme.example") != VICTIM
