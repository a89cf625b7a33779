"""`flask …` commands (docs/spec.md section 8). Each command calls a service and maps RenkeiError to exit 1."""
import functools
import logging

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from .. import logs
from ..extensions import ensure_database_current, init_migrations
from . import accounts, imports, integration, members, users


class MigrationCommands(click.Group):
    """`flask db …`: stands in for Flask-Migrate's command group until a db command is run."""

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        # The parser, the group's own options and its subcommands are all Flask-Migrate's.
        from flask_migrate.cli import db as commands

        init_migrations(current_app)  # FlaskGroup has pushed the app context by now
        return commands.make_context(info_name, args, parent=parent, **extra)


def _schema_first(callback):
    """Wrap a command's (or group's) callback so the schema is brought up to date before it runs."""
    if getattr(callback, "schema_first", False):
        return callback

    @functools.wraps(callback or (lambda: None))
    @with_appcontext
    def run(*args, **kwargs):
        # A command prints its own result; the log adds only warnings and errors (run.py logs INFO).
        logs.configure(logging.WARNING)
        ensure_database_current(current_app._get_current_object())
        return callback(*args, **kwargs) if callback else None

    run.schema_first = True
    return run


def register_cli(app: Flask) -> None:
    for module in (accounts, users, members, imports, integration):
        module.register(app)
    # Every command works on an up-to-date schema, also an operator's first one on a new data
    # folder (`flask accounts create …` before the first run.py); `flask db …` manages it itself.
    for command in app.cli.commands.values():
        command.callback = _schema_first(command.callback)
    app.cli.add_command(MigrationCommands("db", help="データベースのマイグレーション(Flask-Migrate / Alembic)"))
