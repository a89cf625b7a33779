"""Logging set-up for the entry points (run.py, `flask …`); the app factory configures none.

Pure Python: importing it imports nothing of Flask. Log lines go to stderr, so a command's
result on stdout is never mixed with them. A line about an account names it by its slug
(`account=acme`, services/accounts.label).
"""
from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Alembic and Flask-Migrate say INFO for every migration step: noise on a normal start.
MIGRATION_LOGGERS = ("alembic", "flask_migrate")


def configure(level: int, *, migrations: int = logging.WARNING) -> None:
    """Send log records of `level` and above to stderr, one timestamped line each.

    The migration loggers get `migrations` (a `--verbose` command shows their steps too).
    The handler is not added when the process already has a root handler (the tests', an
    embedding server's); the levels are set all the same.
    """
    logging.basicConfig(level=level, format=FORMAT)
    for name in MIGRATION_LOGGERS:
        logging.getLogger(name).setLevel(migrations)
