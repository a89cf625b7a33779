"""Failed-login counting and temporary bans per remote address, shared by web, FTP and API logins."""
from __future__ import annotations

import datetime as dt

from flask import current_app

from ..extensions import db
from ..models import AuthFailure, utcnow


def is_banned(address: str, now: dt.datetime | None = None) -> bool:
    """Tell whether `address` is refused right now."""
    now = now or utcnow()
    row = db.session.get(AuthFailure, address)
    return bool(row and row.banned_until and row.banned_until > now)


def record_failure(address: str, now: dt.datetime | None = None) -> bool:
    """Count one failed login; return True when this failure starts a ban."""
    now = now or utcnow()
    cfg = current_app.config
    row = db.session.get(AuthFailure, address)
    if row is None:
        row = AuthFailure(address=address, failures=0, window_start=now)
        db.session.add(row)
    if now - row.window_start > dt.timedelta(seconds=cfg["BAN_WINDOW_SECONDS"]):
        row.failures = 0
        row.window_start = now
    row.failures += 1
    banned = row.failures >= cfg["BAN_THRESHOLD"]
    if banned:
        row.banned_until = now + dt.timedelta(seconds=cfg["BAN_SECONDS"])
        row.failures = 0
        row.window_start = now
        current_app.logger.warning("ban address=%s seconds=%s", address, cfg["BAN_SECONDS"])
    db.session.commit()
    return banned


def record_success(address: str) -> None:
    """Forget earlier failures of `address` after a good login."""
    row = db.session.get(AuthFailure, address)
    if row is not None and not (row.banned_until and row.banned_until > utcnow()):
        db.session.delete(row)
        db.session.commit()


def failure_delay() -> float:
    """Seconds to hold a failed login's answer, so guessing is slow."""
    return float(current_app.config["LOGIN_FAIL_DELAY"])
