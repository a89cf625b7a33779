"""Which parts run in this process and whether they still serve, and the server's health: GET /healthz.

run.py names the parts it could start (`configure`) and registers each started object under its
name (`register`); every started object has `alive() -> bool`. This module knows no part by name:
a part added to run.py's PARTS is reported the same way.

Decisions (where docs/spec.md is silent):
- A part is "alive" when its alive() says so, "dead" when it says not (or raises), "not running"
  when run.py was told not to start it (`--only`). Healthy means: every started part alive.
  A part not started is not a fault: `--only web` behind a load balancer is a healthy web server.
- An app run without run.py (tests, `flask run`) has no registry: parts {} and status "ok".
- Parts that run.py stops at shutdown stay registered, so /healthz answers 503 while Renkei
  stops and a load balancer sends no more requests to it.
- Nothing restarts a dead part by itself: the operator (or systemd, or the load balancer's
  health check) restarts the process. `run.restart_part` starts one part again in place.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)

ALIVE = "alive"
DEAD = "dead"
NOT_RUNNING = "not running"
OK = "ok"
UNHEALTHY = "unhealthy"
UNREACHABLE = "unreachable"

_EXTENSION_KEY = "renkei_parts"
# The clock of /healthz and 連携状況: a callable returning an aware datetime, replaced by tests.
CLOCK_KEY = "status_clock"


class Parts:
    """The parts run.py could start and the objects it started, by name (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: list[str] = []
        self._started: dict[str, Any] = {}

    def configure(self, names: Iterable[str]) -> None:
        """Name every part this process could start, in start order; those never registered are "not running"."""
        with self._lock:
            self._names = list(names)

    def register(self, name: str, handle: Any) -> None:
        """Record the started object of part `name` (replacing an earlier one: a restarted part)."""
        with self._lock:
            if name not in self._names:
                self._names.append(name)
            self._started[name] = handle

    def states(self) -> dict[str, str]:
        """Each part's state (ALIVE, DEAD or NOT_RUNNING), in start order."""
        with self._lock:
            names, started = list(self._names), dict(self._started)
        return {name: _state(name, started[name]) if name in started else NOT_RUNNING for name in names}


def _state(name: str, handle: Any) -> str:
    try:
        return ALIVE if handle.alive() else DEAD
    except Exception:  # a part whose alive() fails cannot be trusted to serve
        log.exception("part %s: alive() failed", name)
        return DEAD


def parts(app: Flask) -> Parts:
    """The part registry of `app` (empty unless run.py started parts for it)."""
    return app.extensions.setdefault(_EXTENSION_KEY, Parts())


def now(app: Flask) -> dt.datetime:
    """Now (aware) on the clock of the status screens (app.extensions[CLOCK_KEY], replaced by tests)."""
    clock = app.extensions.get(CLOCK_KEY)
    return clock() if clock is not None else dt.datetime.now(dt.UTC)


def report(app: Flask) -> dict:
    """The body of GET /healthz: the overall status, each part's state, the database, the import queue.

    A database that does not answer makes the server unhealthy (no part can do its work) and
    leaves the queue's numbers null."""
    from sqlalchemy.exc import SQLAlchemyError

    from .extensions import db
    from .services import queue

    states = parts(app).states()
    try:
        waiting = queue.waiting()
    except SQLAlchemyError:
        log.exception("healthz: the database did not answer")
        db.session.rollback()
        waiting = None
    healthy = waiting is not None and all(state != DEAD for state in states.values())
    return {
        "status": OK if healthy else UNHEALTHY,
        "parts": states,
        "database": OK if waiting is not None else UNREACHABLE,
        "queue": {"waiting": waiting.count if waiting else None,
                  "oldest_age_seconds": waiting.age_seconds(now(app)) if waiting else None},
    }
