"""`flask …` commands (SPEC section 7). Each command calls a service and maps RenkeiError to exit 1."""
import click
from flask import Flask, current_app

from ..extensions import init_migrations
from . import accounts, imports, integration, members


class MigrationCommands(click.Group):
    """`flask db …`: stands in for Flask-Migrate's command group until a db command is run."""

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        # The parser, the group's own options and its subcommands are all Flask-Migrate's.
        from flask_migrate.cli import db as commands

        init_migrations(current_app)  # FlaskGroup has pushed the app context by now
        return commands.make_context(info_name, args, parent=parent, **extra)


def register_cli(app: Flask) -> None:
    app.cli.add_command(MigrationCommands("db", help="データベースのマイグレーション(Flask-Migrate / Alembic)"))
    for module in (accounts, members, imports, integration):
        module.register(app)
