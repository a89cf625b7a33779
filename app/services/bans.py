"""Failed-login counting and temporary bans, shared by web, FTP and API logins.

Two bans, neither lifted by a good login:
- per remote address: BAN_THRESHOLD failures within BAN_WINDOW_SECONDS refuse the address on
  every channel for BAN_SECONDS;
- per login name (a web login e-mail, an FTP user name): LOGIN_BAN_THRESHOLD failures against
  it from anywhere within LOGIN_BAN_WINDOW_SECONDS refuse that name for LOGIN_BAN_SECONDS, so
  guessing one password from many addresses stays slow. Attempts while a ban lasts are refused
  unchecked and not counted, so a ban ends after its time whatever an attacker does meanwhile.

A good login forgives only the failures of its own login name from its own address (a user's
typos); failures against other names stay counted. Every count is one atomic
INSERT … ON CONFLICT DO UPDATE … RETURNING (SQLite ≥ 3.35, PostgreSQL), so concurrent
failures neither collide nor slip past the threshold.
"""
from __future__ import annotations

import datetime as dt

from flask import current_app
from sqlalchemy import and_, case, delete, or_, select, update

from ..extensions import db
from ..models import AuthFailure, utcnow

ADDRESS = "address"
LOGIN = "login"
PAIR = "pair"

_table = AuthFailure.__table__
_KEY_LENGTH = _table.c.key.type.length


def login_key(channel: str, name: str) -> str:
    """The login name `name` of `channel` ("web", "ftp") as counted: case and outer spaces do not make another name."""
    return f"{channel}:{(name or '').strip().casefold()}"[:300]


def is_banned(address: str, login: str | None = None, now: dt.datetime | None = None) -> bool:
    """Tell whether `address` (or, when given, the login name `login`) is refused right now."""
    now = now or utcnow()
    which = and_(_table.c.scope == ADDRESS, _table.c.key == address)
    if login is not None:
        which = or_(which, and_(_table.c.scope == LOGIN, _table.c.key == login))
    found = db.session.execute(select(_table.c.scope).where(which, _table.c.banned_until > now).limit(1)).first()
    return found is not None


def record_failure(address: str, login: str | None = None, now: dt.datetime | None = None) -> bool:
    """Count one failed login from `address` (against `login`, when known); True when the attempt is now banned."""
    now = now or utcnow()
    cfg = current_app.config
    banned = False
    try:
        if login is not None:
            _count(PAIR, _pair_key(address, login), now, window=max(cfg["BAN_WINDOW_SECONDS"], cfg["LOGIN_BAN_WINDOW_SECONDS"]))
        failures, until = _count(ADDRESS, address, now, window=cfg["BAN_WINDOW_SECONDS"],
                                 threshold=cfg["BAN_THRESHOLD"], ban_seconds=cfg["BAN_SECONDS"])
        banned |= _banned(until, now)
        if failures == cfg["BAN_THRESHOLD"]:
            current_app.logger.warning("ban address=%s seconds=%s", address, cfg["BAN_SECONDS"])
        if login is not None:
            failures, until = _count(LOGIN, login, now, window=cfg["LOGIN_BAN_WINDOW_SECONDS"],
                                     threshold=cfg["LOGIN_BAN_THRESHOLD"], ban_seconds=cfg["LOGIN_BAN_SECONDS"])
            banned |= _banned(until, now)
            if failures == cfg["LOGIN_BAN_THRESHOLD"]:
                current_app.logger.warning("ban login=%s seconds=%s", login, cfg["LOGIN_BAN_SECONDS"])
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    _prune(now)
    return banned


def record_success(address: str, login: str) -> None:
    """Forgive the failures of `login` from `address` after its good login; every other count and every ban stays."""
    try:
        forgiven = db.session.execute(
            delete(_table).where(_table.c.scope == PAIR, _table.c.key == _pair_key(address, login))
            .returning(_table.c.failures, _table.c.window_start)).first()
        if forgiven is not None:
            count, since = forgiven
            for scope, key in ((ADDRESS, address), (LOGIN, login)):
                # Only a counter whose window holds all of the pair's failures can give them back.
                db.session.execute(
                    update(_table).where(_table.c.scope == scope, _table.c.key == key, _table.c.window_start <= since)
                    .values(failures=case((_table.c.failures > count, _table.c.failures - count), else_=0)))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def failure_delay() -> float:
    """Seconds to hold a failed login's answer, so guessing is slow."""
    return float(current_app.config["LOGIN_FAIL_DELAY"])


def _pair_key(address: str, login: str) -> str:
    return f"{address} {login}"[:_KEY_LENGTH]


def _banned(until: dt.datetime | None, now: dt.datetime) -> bool:
    return until is not None and until > now


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


def _count(scope: str, key: str, now: dt.datetime, *, window: int, threshold: int | None = None,
           ban_seconds: int = 0) -> tuple[int, dt.datetime | None]:
    """Add one failure to the counter (scope, key) in one statement; return its failures and banned_until."""
    t = _table.c
    ban_until = now + dt.timedelta(seconds=ban_seconds)
    # A window that has run out, or a ban that has ended, starts the count again.
    stale = or_(t.window_start < now - dt.timedelta(seconds=window), t.banned_until <= now)
    failures = case((stale, 1), else_=t.failures + 1)
    changes = {"failures": failures, "window_start": case((stale, now), else_=t.window_start)}
    first_ban = None
    if threshold is not None:
        # A ban in force keeps its end: failures racing in during it do not lengthen it.
        changes["banned_until"] = case((t.banned_until > now, t.banned_until),
                                       (failures >= threshold, ban_until), else_=None)
        first_ban = ban_until if threshold <= 1 else None
    stmt = (_insert().values(scope=scope, key=key, failures=1, window_start=now, banned_until=first_ban)
            .on_conflict_do_update(index_elements=[t.scope, t.key], set_=changes)
            .returning(t.failures, t.banned_until))
    row = db.session.execute(stmt).one()
    return row.failures, row.banned_until


def _prune(now: dt.datetime) -> None:
    """Delete counters whose windows and bans have all run out; housekeeping, so a failure here only logs."""
    cfg = current_app.config
    oldest = now - dt.timedelta(seconds=max(cfg["BAN_WINDOW_SECONDS"], cfg["LOGIN_BAN_WINDOW_SECONDS"]))
    try:
        db.session.execute(delete(_table).where(
            _table.c.window_start < oldest, or_(_table.c.banned_until.is_(None), _table.c.banned_until <= now)))
        db.session.commit()
    except Exception:
        db.session.rollback()
        current_app.logger.exception("pruning old login failures failed")
