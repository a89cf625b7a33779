"""Waiting for work done by other threads of a test's servers."""
from __future__ import annotations

import time


def wait_for(predicate, timeout: float = 20.0, message: str = "condition"):
    """Poll `predicate` (each try in a fresh DB transaction) until it returns something truthy."""
    from app.extensions import db

    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()  # end the read snapshot so other threads' commits are visible
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.02)
