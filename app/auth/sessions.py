"""Signed-in browser sessions: what a session carries and when it ends (docs/spec.md section 7).

The session is Flask's signed cookie. Besides Flask-Login's user id it carries the user's
session version (User.get_id), the login time and the time of the last request. A session is
signed out, and everything it holds dropped (its CSRF token too), when
- the user's session version moved on: a logout (on any browser: logout ends every session of
  the user), a password change, a role change; a removed user has no version at all;
- it saw no request for RENKEI_SESSION_IDLE_MINUTES (8 hours);
- its login is older than RENKEI_SESSION_MAX_DAYS (7 days), however active it was.
A session without these stamps is no login: Flask-Login's remember-me cookie (never issued
here) cannot sign anyone in.

The clock is `app.extensions["session_clock"]` (epoch seconds), replaced by tests.
"""
from __future__ import annotations

import datetime as dt
import time

from flask import Flask, current_app, g, request, session
from flask_login import current_user, login_user, logout_user

from .. import config
from ..extensions import db
from ..models import User
from .access import MAX_ROW_ID

LOGIN_AT = "login_at"
SEEN_AT = "seen_at"
# The last-request stamp is rewritten at most this often, so not every page sends a new cookie.
SEEN_RESOLUTION_SECONDS = 60
# Flask-Login's own key: "clear" asks it to delete a remember cookie at the end of the request.
_REMEMBER = "_remember"


def init_app(app: Flask) -> None:
    """Tie the session cookie's and the CSRF tokens' lifetimes to the session's; check sessions first.

    Call before CSRFProtect.init_app: an ended session is emptied before its CSRF token is checked,
    so a token of an ended session is refused.
    """
    app.extensions.setdefault("session_clock", time.time)
    max_seconds = config.get(app, "SESSION_MAX_DAYS") * 86400
    app.config["PERMANENT_SESSION_LIFETIME"] = dt.timedelta(seconds=max_seconds)
    app.config["WTF_CSRF_TIME_LIMIT"] = max_seconds
    app.before_request(_check_session)


def now() -> float:
    """The sessions' clock (epoch seconds)."""
    return current_app.extensions["session_clock"]()


def begin(user: User) -> None:
    """Sign `user` in on a new session: nothing of the session before survives (nor its CSRF token)."""
    _empty()
    login_user(user)
    stamp = int(now())
    session[LOGIN_AT] = stamp
    session[SEEN_AT] = stamp


def end() -> None:
    """Sign this browser out and drop everything its session held."""
    logout_user()
    _empty()


def load_user(user_id: str) -> User | None:
    """Flask-Login's user loader: the user of a live session, else None (and the session emptied)."""
    user = _live_user(user_id)
    if user is None:
        _empty()
        return None
    stamp = int(now())
    if stamp - session[SEEN_AT] >= SEEN_RESOLUTION_SECONDS:
        session[SEEN_AT] = stamp
    return user


def _live_user(user_id: str) -> User | None:
    number, _, version = (user_id or "").partition(":")
    if not (number.isdigit() and version.isdigit()) or not 0 < int(number) <= MAX_ROW_ID:
        return None
    login_at, seen_at = session.get(LOGIN_AT), session.get(SEEN_AT)
    if not isinstance(login_at, int) or not isinstance(seen_at, int):
        return None
    app = current_app
    stamp = now()
    if stamp - seen_at > config.get(app, "SESSION_IDLE_MINUTES") * 60:
        return None
    if stamp - login_at > config.get(app, "SESSION_MAX_DAYS") * 86400:
        return None
    user = db.session.get(User, int(number))
    if user is None or (user.session_version or 0) != int(version):
        return None
    return user


def _empty() -> None:
    # Keep only Flask-Login's request to delete a remember cookie.
    remember = session.get(_REMEMBER)
    session.clear()
    if remember == "clear":
        session[_REMEMBER] = remember
    # A CSRF token made earlier in this request belongs to the emptied session: make a new one.
    g.pop(_csrf_field(), None)


def _csrf_field() -> str:
    return current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")


def _check_session() -> None:
    # Load the user of a signed-in session before CSRFProtect looks at it (see init_app).
    if "_user_id" in session and request.endpoint != "static" and request.blueprint != "api":
        current_user._get_current_object()
