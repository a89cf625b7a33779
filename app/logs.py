"""Logging set-up for the entry points (run.py, `flask …`); the app factory configures none.

Pure Python: importing it imports nothing of Flask.
"""
from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(level: int) -> None:
    """Send log records of `level` and above to stderr, one timestamped line each.

    Does nothing when the process already has a root handler (the tests', an embedding server's).
    """
    logging.basicConfig(level=level, format=FORMAT)
