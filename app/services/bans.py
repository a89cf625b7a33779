"""Failed-login counting and temporary bans, shared by web, FTP and API logins.

Two bans, neither lifted by a good login:
- per remote address: BAN_THRESHOLD failures within BAN_WINDOW_SECONDS refuse the address on
  every channel for BAN_SECONDS;
- per login name (a web login e-mail, an FTP user name): LOGIN_BAN_THRESHOLD failures against
  it from anywhere within LOGIN_BAN_WINDOW_SECONDS refuse that name for LOGIN_BAN_SECONDS, so
  guessing one password from many addresses stays slow. Attempts while a ban lasts are refused
  unchecked and not counted, so a ban ends after its time whatever an attacker does meanwhile.

Every attempt is counted before its credentials are checked, with one atomic
INSERT … ON CONFLICT DO UPDATE … RETURNING per counter (SQLite ≥ 3.35, PostgreSQL): concurrent
attempts neither collide nor slip past the threshold; those beyond it are refused unchecked.
A good login gives back its own attempt and forgives only the failures of its own login name
from its own address (a user's typos); failures against other names stay counted.

`guarded_login` is the one road of a login on every channel (web, API token, FTP): banned or
too soon? → count the attempt → verify → on failure note when this address may try this login
again (LOGIN_FAIL_DELAY seconds on) → on success forgive. The channel only maps its Login to an
answer. The delay is not slept: a worker thread (one of waitress' few) answers at once, and an
attempt of the same address and login before its time is refused unchecked and uncounted, with
the seconds left (Retry-After), as a ban is. So a guesser gets one try per delay per address
and login, and bad logins from many addresses slow nobody else.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from flask import current_app
from sqlalchemy import and_, case, delete, func, or_, select, update

from ..extensions import db
from ..models import AuthFailure, utcnow

ADDRESS = "address"
LOGIN = "login"
PAIR = "pair"
NEXT = "next"  # key: the pair's; banned_until: when this address may try this login (or token) again

T = TypeVar("T")


def clock() -> dt.datetime:
    """Now, naive UTC as stored. A module attribute so tests can set the time (tests/fixtures/bans.py)."""
    return utcnow()

_table = AuthFailure.__table__
_KEY_LENGTH = _table.c.key.type.length


def login_key(channel: str, name: str) -> str:
    """The login name `name` of `channel` ("web", "ftp") as counted: case and outer spaces do not make another name."""
    return f"{channel}:{(name or '').strip().casefold()}"[:300]


def is_banned(address: str, login: str | None = None, now: dt.datetime | None = None) -> bool:
    """Tell whether `address` (or, when given, the login name `login`) is refused right now."""
    return ban_end(address, login, now) is not None


def ban_end(address: str, login: str | None = None, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the ban of `address` (or of the login name `login`) in force now ends; None when there is none."""
    now = now or clock()
    which = and_(_table.c.scope == ADDRESS, _table.c.key == address)
    if login is not None:
        which = or_(which, and_(_table.c.scope == LOGIN, _table.c.key == login))
    return db.session.execute(select(func.max(_table.c.banned_until)).where(which, _table.c.banned_until > now)
                              ).scalar()


def seconds_left(until: dt.datetime | None, now: dt.datetime) -> int:
    """Whole seconds from `now` to `until`, rounded up (a Retry-After); 0 when it has passed."""
    if until is None or until <= now:
        return 0
    return max(1, math.ceil((until - now).total_seconds()))


def _next_allowed(address: str, login: str | None, now: dt.datetime) -> dt.datetime | None:
    """When `address` may try `login` again after its last failure; None when it may now."""
    t = _table.c
    return db.session.execute(select(t.banned_until).where(
        t.scope == NEXT, t.key == _pair_key(address, login or ""), t.banned_until > now)).scalar()


@dataclass
class Attempt:
    """One login attempt, counted before its credentials are checked (see `begin`)."""

    address: str
    login: str | None
    at: dt.datetime
    allowed: bool
    retry_after: int = 0  # when not allowed: the seconds until it may be tried again
    too_soon: bool = False  # not allowed because the last failure of this address and login was just now
    address_count: int = 0  # this attempt's place in its address's count, and in its login's
    login_count: int = 0

    def failed(self) -> bool:
        """The credentials were wrong: ban what reached its threshold; True when this attempt's answer is the ban."""
        return _failed(self)

    def succeeded(self) -> None:
        """The credentials were right: give back this attempt and the earlier failures of its login from its address."""
        _succeeded(self)


def begin(address: str, login: str | None = None, now: dt.datetime | None = None) -> Attempt:
    """Count a login attempt from `address` (against `login`, when it names one) before checking it.

    Counting first makes the threshold exact under concurrency: attempts beyond it are refused
    unchecked (`allowed` False), however many arrive at once. A banned attempt is not counted,
    nor one before the time its address and login may try again.
    """
    now = now or clock()
    ends = ban_end(address, login, now)
    if ends is not None:
        return Attempt(address, login, now, allowed=False, retry_after=seconds_left(ends, now))
    again = _next_allowed(address, login, now)
    if again is not None:
        return Attempt(address, login, now, allowed=False, retry_after=seconds_left(again, now), too_soon=True)
    cfg = current_app.config
    login_count = 0
    try:
        if login is not None:
            _count(PAIR, _pair_key(address, login), now, _longest_window())
        address_count = _count(ADDRESS, address, now, cfg["BAN_WINDOW_SECONDS"])
        if login is not None:
            login_count = _count(LOGIN, login, now, cfg["LOGIN_BAN_WINDOW_SECONDS"])
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    allowed = address_count <= cfg["BAN_THRESHOLD"] and login_count <= cfg["LOGIN_BAN_THRESHOLD"]
    # Over a threshold: the ban its failure starts may not be written yet; then its whole length.
    retry_after = 0 if allowed else (seconds_left(ban_end(address, login, now), now) or int(cfg["BAN_SECONDS"]))
    return Attempt(address, login, now, allowed, retry_after, False, address_count, login_count)


def _failed(attempt: Attempt) -> bool:
    cfg = current_app.config
    # The failure that reached a threshold starts that ban; a ban in force keeps its end.
    banned = False
    try:
        if attempt.address_count >= cfg["BAN_THRESHOLD"]:
            _ban(ADDRESS, attempt.address, attempt.at, cfg["BAN_SECONDS"])
            banned = True
        if attempt.login is not None and attempt.login_count >= cfg["LOGIN_BAN_THRESHOLD"]:
            _ban(LOGIN, attempt.login, attempt.at, cfg["LOGIN_BAN_SECONDS"])
            banned = True
        delay = failure_delay()
        if delay > 0:
            _set_next(_pair_key(attempt.address, attempt.login or ""), attempt.at, delay)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    _prune(attempt.at)
    return banned


def _succeeded(attempt: Attempt) -> None:
    t = _table.c
    try:
        if attempt.login is None:
            # Nothing names the earlier failures' target (a wrong API token): give back this attempt only.
            given_back = [(ADDRESS, attempt.address, 1, attempt.at)]
        else:
            pair = db.session.execute(
                delete(_table).where(t.scope == PAIR, t.key == _pair_key(attempt.address, attempt.login))
                .returning(t.failures, t.window_start)).first()
            given_back = [] if pair is None else [
                (ADDRESS, attempt.address, pair.failures, pair.window_start),
                (LOGIN, attempt.login, pair.failures, pair.window_start)]
        # This address may try this login again at once (a typo, then the right password).
        db.session.execute(delete(_table).where(t.scope == NEXT,
                                                t.key == _pair_key(attempt.address, attempt.login or "")))
        for scope, key, count, since in given_back:
            # Only a counter whose window holds all of them can give them back.
            db.session.execute(
                update(_table).where(t.scope == scope, t.key == key, t.window_start <= since)
                .values(failures=case((t.failures > count, t.failures - count), else_=0)))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


class Verdict(StrEnum):
    PASSED = "passed"    # the credentials were right
    FAILED = "failed"    # wrong: counted; the next try of this address and login waits LOGIN_FAIL_DELAY
    BANNED = "banned"    # refused unchecked: the address or the login name is banned, or over its threshold
    TOO_SOON = "too_soon"  # refused unchecked: this address's last failure with this login was just now


@dataclass(frozen=True)
class Login(Generic[T]):
    """What `guarded_login` found: the verdict, what `verify` returned when it passed, and whether a ban now applies."""

    verdict: Verdict
    subject: T | None = None
    ban_started: bool = False  # a failure that reached a threshold: its answer is the ban
    retry_after: int = 0  # BANNED, TOO_SOON or a started ban: whole seconds until a new try may pass

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED


def guarded_login(address: str, login: str | None, verify: Callable[[], T | None], *,
                  now: dt.datetime | None = None) -> Login[T]:
    """Check one login from `address` against the bans: count it, run `verify`, note a failure, forgive a success.

    `login` is the counted login name (`login_key(...)`), None when nothing names one (an API
    token). `verify()` returns the logged-in subject, or None for wrong credentials. Nothing
    here waits: a failure is answered at once and the same address and login may try again
    LOGIN_FAIL_DELAY seconds later (TOO_SOON before that, with the seconds left).
    """
    attempt = begin(address, login, now)
    if not attempt.allowed:
        verdict = Verdict.TOO_SOON if attempt.too_soon else Verdict.BANNED
        return Login(verdict, retry_after=attempt.retry_after)
    subject = verify()
    if subject is None:
        started = attempt.failed()
        left = seconds_left(ban_end(address, login, attempt.at), attempt.at) if started else 0
        return Login(Verdict.FAILED, ban_started=started, retry_after=left)
    attempt.succeeded()
    return Login(Verdict.PASSED, subject)


def failure_delay() -> float:
    """Seconds after a failed login before the same address may try the same login again."""
    return float(current_app.config["LOGIN_FAIL_DELAY"])


def _set_next(key: str, now: dt.datetime, seconds: float) -> None:
    """Note that `key` (an address and login) may be tried again `seconds` after `now`."""
    t = _table.c
    until = now + dt.timedelta(seconds=seconds)
    stmt = (_insert().values(scope=NEXT, key=key, failures=0, window_start=now, banned_until=until)
            .on_conflict_do_update(index_elements=[t.scope, t.key], set_={"window_start": now, "banned_until": until}))
    db.session.execute(stmt)


def _pair_key(address: str, login: str) -> str:
    return f"{address} {login}"[:_KEY_LENGTH]


def _longest_window() -> int:
    cfg = current_app.config
    return max(cfg["BAN_WINDOW_SECONDS"], cfg["LOGIN_BAN_WINDOW_SECONDS"])


def _insert():
    """The dialect's INSERT with ON CONFLICT support."""
    name = db.engine.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - Renkei runs on SQLite or PostgreSQL only
        raise RuntimeError(f"login bans need SQLite or PostgreSQL, not {name}")
    return insert(_table)


def _count(scope: str, key: str, now: dt.datetime, window: int) -> int:
    """Add one to the counter (scope, key) in one atomic statement; return its new value."""
    t = _table.c
    # A window that has run out, or a ban that has ended, starts the count again.
    stale = or_(t.window_start < now - dt.timedelta(seconds=window), t.banned_until <= now)
    changes = {"failures": case((stale, 1), else_=t.failures + 1),
               "window_start": case((stale, now), else_=t.window_start),
               "banned_until": case((stale, None), else_=t.banned_until)}
    stmt = (_insert().values(scope=scope, key=key, failures=1, window_start=now, banned_until=None)
            .on_conflict_do_update(index_elements=[t.scope, t.key], set_=changes)
            .returning(t.failures))
    return db.session.execute(stmt).scalar_one()


def _ban(scope: str, key: str, now: dt.datetime, seconds: int) -> None:
    """Ban (scope, key) for `seconds` from `now`, unless a ban is in force already."""
    t = _table.c
    started = db.session.execute(
        update(_table).where(t.scope == scope, t.key == key, or_(t.banned_until.is_(None), t.banned_until <= now))
        .values(banned_until=now + dt.timedelta(seconds=seconds)).returning(t.failures)).first()
    if started is not None:
        current_app.logger.warning("ban %s=%s seconds=%s", scope, key, seconds)


def _prune(now: dt.datetime) -> None:
    """Delete counters whose windows and bans have all run out; housekeeping, so a failure here only logs."""
    oldest = now - dt.timedelta(seconds=_longest_window())
    try:
        db.session.execute(delete(_table).where(
            _table.c.window_start < oldest, or_(_table.c.banned_until.is_(None), _table.c.banned_until <= now)))
        db.session.commit()
    except Exception:
        db.session.rollback()
        current_app.logger.exception("pruning old login failures failed")
