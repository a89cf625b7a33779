import logging
from contextlib import contextmanager, nullcontext
from logging.config import fileConfig

from flask import current_app
from sqlalchemy import text

from alembic import context

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging.
# This line sets up loggers basically.
# Inside run.py or a test the app has set up logging already: keep it.
if not logging.getLogger().handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger('alembic.env')


def get_engine():
    return current_app.extensions['migrate'].db.engine


def get_engine_url():
    try:
        return get_engine().url.render_as_string(hide_password=False).replace(
            '%', '%%')
    except AttributeError:
        return str(get_engine().url).replace('%', '%%')


# add your model's MetaData object here
# for 'autogenerate' support
# from myapp import mymodel
# target_metadata = mymodel.Base.metadata
config.set_main_option('sqlalchemy.url', get_engine_url())
target_db = current_app.extensions['migrate'].db

# other values from the config, defined by the needs of env.py,
# can be acquired:
# my_important_option = config.get_main_option("my_important_option")
# ... etc.


def get_metadata():
    if hasattr(target_db, 'metadatas'):
        return target_db.metadatas[None]
    return target_db.metadata


def run_migrations_offline():
    """Run migrations in 'offline' mode.

    This configures the context with just a URL
    and not an Engine, though an Engine is acceptable
    here as well.  By skipping the Engine creation
    we don't even need a DBAPI to be available.

    Calls to context.execute() here emit the given string to the
    script output.

    """
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url, target_metadata=get_metadata(), literal_binds=True
    )

    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run migrations in 'online' mode.

    In this scenario we need to create an Engine
    and associate a connection with the context.

    """

    # this callback is used to prevent an auto-migration from being generated
    # when there are no changes to the schema
    # reference: http://alembic.zzzcomputing.com/en/latest/cookbook.html
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, 'autogenerate', False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info('No changes in schema detected.')

    conf_args = current_app.extensions['migrate'].configure_args
    if conf_args.get("process_revision_directives") is None:
        conf_args["process_revision_directives"] = process_revision_directives

    connectable = get_engine()

    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=get_metadata(),
            **conf_args
        )

        # Several processes may start run.py (which upgrades) at once on one database (parts
        # run separately, or several machines against one PostgreSQL): they take turns, and
        # the later ones find the schema up to date instead of failing on tables the first
        # one is creating.
        with _sqlite_file_lock(connection), _sqlite_foreign_keys_off(connection), context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            context.run_migrations()
            if connection.dialect.name == "sqlite":
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:  # rolls the migration back
                    raise RuntimeError(f"migration left rows whose references are missing: {broken[:5]}")


# Any fixed number; only Renkei's migrations take this advisory lock.
MIGRATION_LOCK_KEY = 0x52454E4B4549  # "RENKEI"


def _sqlite_file_lock(connection):
    """An exclusive lock on `<database file>.migrate-lock` while SQLite migrates (SQLite has no advisory locks)."""
    database = connection.engine.url.database
    if connection.dialect.name != "sqlite" or not database or database == ":memory:":
        return nullcontext()
    return _flock(database + ".migrate-lock")


@contextmanager
def _sqlite_foreign_keys_off(connection):
    """On SQLite, no foreign key actions while migrating; the references are checked at the end.

    Batch mode rebuilds a table as copy, DROP, rename. With foreign keys on, SQLite's DROP TABLE
    first deletes every row, and ON DELETE CASCADE would then delete the rows referring to them
    (an `imports` rebuild would empty results, import_errors and import_files). The PRAGMA only
    works outside a transaction, so it is set before the migration's transaction begins;
    run_migrations_online checks the references before it commits.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()
    try:
        yield
    finally:
        connection.rollback()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


@contextmanager
def _flock(path):
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
