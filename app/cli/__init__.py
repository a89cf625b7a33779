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


VERBOSE_HELP = "ログ(INFO)も標準エラーに表示します (also log INFO lines on stderr)"


def _schema_first(command: click.Command) -> None:
    """Give a command --verbose and bring the schema up to date before its callback runs."""
    callback = command.callback
    if getattr(callback, "schema_first", False):
        return

    @functools.wraps(callback)
    @with_appcontext
    def run(*args, verbose: bool = False, **kwargs):
        # A command prints its own result on stdout; the log (stderr) adds only warnings and
        # errors unless --verbose (run.py logs INFO).
        logs.configure(logging.INFO if verbose else logging.WARNING,
                       migrations=logging.INFO if verbose else logging.WARNING)
        ensure_database_current(current_app._get_current_object())
        return callback(*args, **kwargs)

    run.schema_first = True
    command.callback = run
    command.params.append(click.Option(["--verbose", "-v"], is_flag=True, help=VERBOSE_HELP))


def _leaves(command: click.Command):
    """The commands that run: a group's subcommands (nested), else the command itself."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            yield from _leaves(sub)
    else:
        yield command


def register_cli(app: Flask) -> None:
    for module in (accounts, users, members, imports, integration):
        module.register(app)
    # Every command works on an up-to-date schema, also an operator's first one on a new data
    # folder (`flask accounts create …` before the first run.py); `flask db …` manages it itself.
    for group in app.cli.commands.values():
        for command in _leaves(group):
            _schema_first(command)
    app.cli.add_command(MigrationCommands("db", help="データベースのマイグレーション (database migrations, Flask-Migrate / Alembic)"))
