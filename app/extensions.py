"""Flask extensions, instantiated here only so that no module imports another in a cycle."""
import os
import re

from flask import Flask
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData

# Named constraints keep Alembic migrations identical on SQLite and PostgreSQL.
naming_convention = {
    "ix": "ix_%(column_0_label)s",
    # Every column in the name: PostgreSQL wants constraint names unique per schema, and two
    # unique constraints of one table starting with the same column must not clash.
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=naming_convention))
csrf = CSRFProtect()
login_manager = LoginManager()

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")


def init_migrations(app: Flask) -> None:
    """Set up Flask-Migrate (migrations/ is the only way the schema is made) on `app`, once.

    Not done by create_app: importing Flask-Migrate imports Alembic and every SQL dialect it
    knows, about 0.07 s added to every `flask …` command, while only `flask db …` (see
    app/cli), run.py and the tests' set-up migrate.
    """
    if "migrate" not in app.extensions:
        from flask_migrate import Migrate

        Migrate(app, db, directory=MIGRATIONS_DIR, render_as_batch=True, compare_type=True)


def upgrade_database(app: Flask) -> None:
    """Bring the app's database schema up to the newest migration."""
    from flask_migrate import upgrade

    init_migrations(app)
    with app.app_context():
        upgrade()


_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"['\"]([^'\"]+)['\"]")


def head_revisions() -> set[str]:
    """The newest migrations' revision ids, read from migrations/versions/ without importing Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    folder = os.path.join(MIGRATIONS_DIR, "versions")
    for name in os.listdir(folder):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            for key, value in _REVISION.findall(f.read()):
                (revisions if key == "revision" else parents).update(_QUOTED.findall(value))
    return revisions - parents


def database_revisions() -> set[str]:
    """The revision ids the database's alembic_version holds; empty for a new database."""
    from sqlalchemy import inspect, text

    with db.engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return set()
        return {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}


def ensure_database_current(app: Flask) -> None:
    """Bring the schema up to date when the database is behind the code, quietly; one cheap query when it is not.

    What `flask …` commands do first, as run.py does, so an operator's first command on a new data
    folder works instead of failing on missing tables.
    """
    with app.app_context():
        if database_revisions() == head_revisions():
            return
        upgrade_database(app)  # quietly: logs.configure keeps Alembic's INFO lines out
