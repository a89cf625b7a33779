"""The factory and the schema: migrations are the single source, and they match the models."""
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from app import config as config_module
from app import create_app
from app.extensions import db
from tests.fixtures.migrations import column_names, insert_row, json_value

ROOT = Path(__file__).resolve().parent.parent


def test_factory_applies_overrides(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'a.db'}"})
    assert app.testing
    assert app.config["SECRET_KEY"] == "x"


def test_secret_key_generated_once_into_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("RENKEI_SECRET_KEY", raising=False)
    cfg = {"DATA_DIR": str(tmp_path), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'a.db'}"}
    first = create_app(dict(cfg)).config["SECRET_KEY"]
    second = create_app(dict(cfg)).config["SECRET_KEY"]
    assert first == second and len(first) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_migrations_match_models(app):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
    assert diff == []


def test_security_headers_and_cookie_flags(client, make_account, login):
    _, email, _ = make_account()
    response = login(email)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_trusted_proxy_setting_uses_the_forwarded_address(tmp_path, new_database):
    from app.models import AuthFailure

    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x", "WTF_CSRF_ENABLED": False,
                      "LOGIN_FAIL_DELAY": 0, "TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8",
                      "SQLALCHEMY_DATABASE_URI": new_database(tmp_path)})
    client = app.test_client()
    wrong = {"email": "x@example.com", "password": "wrong-password"}
    # From a trusted proxy: the right-most address no trusted proxy wrote (the client's own entry is ignored).
    client.post("/login", data=wrong, headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7, 10.0.0.5"})
    # From anyone else the header is not believed.
    client.post("/login", data=wrong, headers={"X-Forwarded-For": "203.0.113.8"},
                environ_base={"REMOTE_ADDR": "192.0.2.9"})
    with app.app_context():
        counted = db.session.scalars(db.select(AuthFailure.key).where(AuthFailure.scope == "address")
                                     .order_by(AuthFailure.key)).all()
        assert counted == ["192.0.2.9", "203.0.113.7"]
        db.engine.dispose()


def test_trusted_proxies_are_addresses_not_a_count(tmp_path):
    with pytest.raises(config_module.ConfigError, match="RENKEI_TRUSTED_PROXIES"):
        create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x", "TRUSTED_PROXIES": "1"})


def test_flask_db_commands_migrate_an_empty_database(tmp_path):
    env = dict(os.environ, RENKEI_DATA_DIR=str(tmp_path), RENKEI_SECRET_KEY="x", DATABASE_URL=f"sqlite:///{tmp_path / 'r.db'}")
    flask = [sys.executable, "-m", "flask", "--app", "app", "db"]
    upgrade = subprocess.run([*flask, "upgrade"], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert upgrade.returncode == 0, upgrade.stderr
    current = subprocess.run([*flask, "current"], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert current.returncode == 0 and "(head)" in current.stdout, current.stderr


def test_other_commands_do_not_import_alembic(tmp_path):
    # Alembic is imported for `flask db …` only: it would add ~0.07 s to every other command.
    # A command on a current schema checks alembic_version only (the first one migrated it).
    code = ("import sys; from app import create_app; app = create_app(); "
            "app.test_cli_runner().invoke(args=['accounts', 'list']); print(sorted(m for m in sys.modules if m.startswith(('alembic', 'flask_migrate'))))")
    env = dict(os.environ, RENKEI_DATA_DIR=str(tmp_path), RENKEI_SECRET_KEY="x", DATABASE_URL=f"sqlite:///{tmp_path / 'r.db'}")
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    assert "alembic" in first.stdout.strip().splitlines()[-1]  # the new database was migrated
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_head_revisions_are_read_from_the_migration_files():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from app.extensions import MIGRATIONS_DIR, head_revisions

    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    assert head_revisions() == set(ScriptDirectory.from_config(config).get_heads())


def test_pure_modules_import_without_flask_or_sqlalchemy():
    # The importer and the domain errors are plain Python: importing them must not pull in the
    # web stack (app/__init__.py holds only a lazy create_app).
    code = "import sys; sys.modules.update(flask=None, sqlalchemy=None); import app.importer.layout"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_flask_finds_the_lazy_factory(tmp_path):
    env = dict(os.environ, RENKEI_DATA_DIR=str(tmp_path), RENKEI_SECRET_KEY="x", DATABASE_URL=f"sqlite:///{tmp_path / 'r.db'}")
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "accounts", "list"], env=env,
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_sqlite_settings_apply_to_the_apps_engine_only(tmp_path):
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'a.db'}"})
    other = create_engine(f"sqlite:///{tmp_path / 'other.db'}", poolclass=NullPool)
    try:
        with app.app_context():
            with db.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            db.engine.dispose()
        # Another engine in the same process (a tool, a test's own look-up) keeps SQLite's defaults.
        with other.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "delete"
    finally:
        other.dispose()


def test_a_sqlite_connection_is_not_pinged_each_time_it_leaves_the_pool(tmp_path):
    # The ping is for server connections that can drop; on a SQLite file it is one query per checkout.
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'a.db'}"})
    statements: list[str] = []
    with app.app_context():
        with db.engine.connect() as conn:
            conn.connection.driver_connection.set_trace_callback(statements.append)
        for _ in range(3):
            with db.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 42")
        db.engine.dispose()
    assert [s for s in statements if "42" in s] == ["SELECT 42"] * 3
    assert not [s for s in statements if s.strip().upper() == "SELECT 1"], statements


def test_a_postgresql_app_pings_its_connections():
    app = create_app({"TESTING": True, "SECRET_KEY": "x",
                      "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://renkei@127.0.0.1:1/none"})
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"] == {"pool_pre_ping": True}


def test_the_factory_configures_no_logging(tmp_path):
    # Logging is the entry points' choice (run.py: INFO; `flask …`: warnings), not the factory's.
    code = "import logging; from app import create_app; create_app(); print(logging.getLogger().handlers)"
    env = dict(os.environ, RENKEI_DATA_DIR=str(tmp_path), RENKEI_SECRET_KEY="x", DATABASE_URL=f"sqlite:///{tmp_path / 'r.db'}")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_migration_0007_moves_the_originals_into_import_files_and_back(migrated_to):
    from app.services import files

    migrated_to("0005")
    big = bytes(range(256)) * (5 * 1024 * 1024 // 256 // 2) + b"\x00tail"  # 2.5 MiB: three pieces
    originals = {1: "社員ID,売上\r\nE001,100\r\n".encode("cp932"), 2: big, 3: b"", 4: None}
    insert_row("accounts", integration_enabled=False)
    for import_id, content in originals.items():
        insert_row("imports", id=import_id, size=len(content or b""), content=content)
    insert_row("import_errors", import_id=2)
    db.session.commit()

    upgrade()
    assert {import_id: files.read(import_id) for import_id in originals} == originals
    pieces = db.session.execute(text("SELECT seq, length(data) FROM import_files WHERE import_id = 2 "
                                     "ORDER BY seq")).all()
    assert [tuple(p) for p in pieces] == [(0, 1024 * 1024), (1, 1024 * 1024), (2, len(big) - 2 * 1024 * 1024)]
    # Rebuilding `imports` on SQLite did not cascade into the rows referring to it.
    assert db.session.scalar(text("SELECT count(*) FROM import_errors")) == 1
    db.session.commit()

    downgrade(revision="0005")
    back = dict(db.session.execute(text("SELECT id, content FROM imports")).all())
    assert {key: (bytes(value) if value is not None else None) for key, value in back.items()} == originals
    assert db.session.scalar(text("SELECT count(*) FROM import_errors")) == 1


def _results_owners():
    """Account 1, its members 5 and 6, its succeeded imports 10 and 11: what the results rows name."""
    insert_row("accounts", integration_enabled=False)
    for member_id in (5, 6):
        insert_row("members", id=member_id, account_id=1, no=member_id, name="M", active=True)
    for import_id in (10, 11):
        insert_row("imports", id=import_id, status="succeeded", error_count=0)


def test_migration_0008_keeps_every_result_and_moves_hand_typed_ones(migrated_to):
    migrated_to("0007")
    columns = 'account_id, import_id, member_id, period_kind, period_date, line, "values", note'
    rows = [(1, 10, 5, "day", "2018-05-16", 2, '{"1": 100.0}', "A社"),
            (1, 10, 6, "day", "2018-05-16", 3, '{"1": -5.0, "2": 1.5}', None),
            (1, None, 5, "day", "2018-05-16", None, '{"2": 7.0}', "手入力"),
            (1, 11, 6, "month", "2018-05-01", 2, '{}', None)]
    _results_owners()
    for row in rows:
        insert_row("results", **dict(zip(columns.replace('"', "").split(", "), row)))
    manual_id = db.session.scalar(text("SELECT id FROM results WHERE import_id IS NULL"))
    db.session.commit()

    upgrade(revision="0008")
    imported = db.session.execute(text(
        'SELECT account_id, import_id, member_id, period_kind, period_date, line, "values", note FROM results '
        "ORDER BY import_id, line")).all()
    manual = db.session.execute(text(
        'SELECT id, account_id, member_id, period_kind, period_date, "values", note FROM manual_results')).all()
    assert [(r[0], r[1], r[2], r[3], str(r[4]), r[5], json_value(r[6]), r[7]) for r in imported] == [
        (a, i, m, k, d, line, json.loads(v), n) for a, i, m, k, d, line, v, n in rows if i is not None]
    assert [(r[0], r[1], r[2], r[3], str(r[4]), json_value(r[5]), r[6]) for r in manual] == [
        (manual_id, 1, 5, "day", "2018-05-16", {"2": 7.0}, "手入力")]
    db.session.commit()

    downgrade(revision="0007")
    back = db.session.execute(text(f"SELECT {columns} FROM results ORDER BY id")).all()
    assert sorted((r[0], r[1] or 0, r[2], r[3], str(r[4]), r[5] or 0, json_value(r[6]), r[7]) for r in back) == sorted(
        (a, i or 0, m, k, d, line or 0, json.loads(v), n) for a, i, m, k, d, line, v, n in rows)


def test_result_blocks_are_clustered_by_import_with_no_other_index(app):
    # An import's blocks are one range of the key (import_id, block): appended and deleted as a
    # range, with no second index and no foreign keys to check (migrations 0017 and 0021).
    inspector = inspect(db.engine)
    assert inspector.get_pk_constraint("result_blocks")["constrained_columns"] == ["import_id", "block"]
    assert inspector.get_indexes("result_blocks") == []
    assert inspector.get_foreign_keys("result_blocks") == []
    assert "results" not in inspector.get_table_names()
    if db.engine.dialect.name == "sqlite":
        with db.engine.connect() as conn:
            sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'result_blocks'").scalar()
        assert sql.rstrip().upper().endswith("WITHOUT ROWID"), sql


def test_migration_0021_packs_the_results_into_blocks_and_back(migrated_to):
    from app.db import bulk

    columns = 'import_id, line, account_id, member_id, period_kind, period_date, "values", note'
    # Import 10: 501 lines, so two blocks; one line without column 2, one with no value at all.
    rows = [(10, line, 1, 5 + line % 2, "day", "2018-05-16", {"1": float(line), "2": line / 4}, None)
            for line in range(2, 503)]
    rows[3] = (10, 5, 1, 6, "day", "2018-05-16", {"1": -5.0}, "A社")
    rows[4] = (10, 6, 1, 5, "day", "2018-05-16", {}, None)
    rows.append((11, 2, 1, 6, "month", "2018-05-01", {"2": 1e300}, "月次"))

    def stored():
        found = db.session.execute(text(f"SELECT {columns} FROM results ORDER BY import_id, line")).all()
        return [(r[0], r[1], r[2], r[3], r[4], str(r[5]), json_value(r[6]), r[7]) for r in found]

    migrated_to("0020")
    _results_owners()
    db.session.execute(text("UPDATE imports SET period_kind = 'day', period_date = '2018-05-16' WHERE id = 10"))
    db.session.execute(text("UPDATE imports SET period_kind = 'month', period_date = '2018-05-01' WHERE id = 11"))
    for row in rows:
        insert_row("results", **dict(zip(columns.replace('"', "").split(", "), (*row[:6], json.dumps(row[6]), row[7]))))
    db.session.commit()

    upgrade(revision="0021")
    blocks = db.session.execute(text("SELECT import_id, block, line_count FROM result_blocks "
                                     "ORDER BY import_id, block")).all()
    assert [tuple(block) for block in blocks] == [(10, 0, 500), (10, 1, 1), (11, 0, 1)]
    unpacked = [(block.import_id, *line) for block in db.session.execute(
        text("SELECT import_id, lines, member_ids, numbers, column_ids, notes FROM result_blocks "
             "ORDER BY import_id, block")).all()
        for line in bulk.unpack(SimpleNamespace(lines=block.lines, member_ids=block.member_ids, numbers=block.numbers,
                                                  column_ids=json_value(block.column_ids), notes=json_value(block.notes)))]
    assert unpacked == [(r[0], r[1], r[3], {int(key): value for key, value in r[6].items()}, r[7]) for r in rows]
    db.session.commit()

    downgrade(revision="0020")
    assert stored() == rows
    assert "result_blocks" not in inspect(db.engine).get_table_names()
def test_migration_0010_adds_the_mail_origin_and_sender_rules_and_takes_them_back(migrated_to):
    migrated_to("0009")
    insert_row("accounts")
    insert_row("integration_settings", senders='["s@x.example"]')
    insert_row("imports", channel="mail", sender="s@x.example")
    insert_row("import_errors")
    db.session.commit()

    upgrade()
    row = db.session.execute(text("SELECT sender_networks, sender_auth FROM integration_settings")).one()
    assert (json_value(row[0]), row[1]) == ([], "none")
    old = db.session.execute(text("SELECT sender, mail_from, peer_address, dkim_result FROM imports")).one()
    assert tuple(old) == ("s@x.example", None, None, None)
    assert db.session.scalar(text("SELECT count(*) FROM import_errors")) == 1
    db.session.commit()

    downgrade(revision="0009")
    assert not column_names("imports") & {"mail_from", "peer_address", "helo_name", "dkim_result", "dkim_domain",
                                          "spf_result"}
    assert "sender_auth" not in column_names("integration_settings")
    assert db.session.scalar(text("SELECT count(*) FROM import_errors")) == 1
    assert json_value(db.session.scalar(text("SELECT senders FROM integration_settings"))) == ["s@x.example"]


def _settings_row_of_0010():
    insert_row("integration_settings", sender_networks="[]", sender_auth="none")


def test_migration_0011_adds_aliases_and_the_extra_columns_setting_and_takes_them_back(migrated_to):
    migrated_to("0010")
    insert_row("accounts")
    insert_row("graph_columns", id=1, account_id=1, name="売上", unit="円", position=1)
    _settings_row_of_0010()
    insert_row("imports")
    insert_row("import_errors")
    db.session.commit()

    upgrade(revision="0011")
    assert json_value(db.session.scalar(text("SELECT aliases FROM graph_columns"))) == []
    row = db.session.execute(text("SELECT key_aliases, extra_columns FROM integration_settings")).one()
    assert (json_value(row[0]), row[1]) == ([], "error")
    assert db.session.scalar(text("SELECT ignored_headers FROM imports")) is None
    assert db.session.scalar(text("SELECT count(*) FROM import_errors")) == 1
    db.session.commit()

    downgrade(revision="0010")
    assert "aliases" not in column_names("graph_columns")
    assert not {"key_aliases", "extra_columns"} & column_names("integration_settings")
    assert "ignored_headers" not in column_names("imports")
    assert db.session.scalar(text("SELECT count(*) FROM import_errors")) == 1
    assert db.session.scalar(text("SELECT name FROM graph_columns")) == "売上"


def test_migration_0013_adds_the_archive_link_and_the_zip_password_and_takes_them_back(migrated_to):
    migrated_to("0012")
    insert_row("accounts")
    insert_row("imports")
    insert_row("import_errors")
    db.session.commit()

    upgrade(revision="0013")
    assert db.session.execute(text("SELECT archive_id FROM imports")).one() == (None,)
    insert_row("imports", id=2, filename="20180517.csv", status="queued", error_count=0, archive_id=1)
    db.session.commit()
    assert "ix_imports_archive_id" in {i["name"] for i in inspect(db.engine).get_indexes("imports")}
    assert "zip_password" in column_names("integration_settings")

    downgrade(revision="0012")
    assert "archive_id" not in column_names("imports")
    assert "zip_password" not in column_names("integration_settings")
    assert db.session.scalar(text("SELECT count(*) FROM imports")) == 2
    assert db.session.scalar(text("SELECT count(*) FROM import_errors")) == 1


def test_migration_0012_adds_the_sheet_setting_and_the_error_letter_and_takes_them_back(migrated_to):
    migrated_to("0011")
    insert_row("accounts")
    _settings_row_of_0010()
    insert_row("imports")
    insert_row("import_errors")
    db.session.commit()

    upgrade(revision="0012")
    # Accounts from before read the first sheet; stored errors have no letter.
    assert db.session.scalar(text("SELECT sheet_name FROM integration_settings")) == ""
    assert db.session.scalar(text("SELECT column_letter FROM import_errors")) is None
    db.session.commit()

    downgrade(revision="0011")
    assert "sheet_name" not in column_names("integration_settings")
    assert "column_letter" not in column_names("import_errors")
    assert db.session.scalar(text("SELECT message FROM import_errors")) == "エラー"


def test_migration_0015_adds_the_subject_and_the_discard_notices_and_takes_them_back(migrated_to):
    migrated_to("0013")
    insert_row("accounts")
    insert_row("imports", channel="mail", status="discarded", error_count=0)
    db.session.commit()

    upgrade(revision="0015")
    assert db.session.execute(text("SELECT subject FROM imports")).one() == (None,)
    insert_row("discard_notices", account_id=1, day="2020-01-01", discards=1, created_at="2020-01-02")
    db.session.commit()
    with pytest.raises(IntegrityError):
        insert_row("discard_notices", account_id=1, day="2020-01-01", discards=2, created_at="2020-01-02")
    db.session.rollback()

    downgrade(revision="0013")
    assert "subject" not in column_names("imports")
    assert "discard_notices" not in inspect(db.engine).get_table_names()
    assert db.session.scalar(text("SELECT count(*) FROM imports")) == 1


def test_migration_0016_records_replaced_imports_from_the_existing_links_and_takes_them_back(migrated_to):
    migrated_to("0013")
    insert_row("accounts")
    # 1 replaced by 2, 2 by 3; 4 another name; 5 a failed file of the first name (replaces nothing).
    for import_id, name, status, replaced in ((1, "20180516.csv", "succeeded", None),
                                              (2, "20180516.csv", "succeeded", 1),
                                              (3, "20180516.csv", "succeeded", 2),
                                              (4, "20180517.csv", "succeeded", None),
                                              (5, "20180516.csv", "failed", None)):
        insert_row("imports", id=import_id, filename=name, status=status, error_count=0, period_kind="day",
                   period_date="2018-05-16", replaced_import_id=replaced)
    db.session.commit()

    upgrade(revision="0016")
    stored = dict(db.session.execute(text("SELECT id, replaced_by_id FROM imports ORDER BY id")).all())
    assert stored == {1: 2, 2: 3, 3: None, 4: None, 5: None}
    db.session.commit()  # PostgreSQL: the downgrade's ALTER TABLE waits for this read's transaction otherwise
    indexes = {i["name"]: i["column_names"] for i in inspect(db.engine).get_indexes("imports")}
    assert indexes["ix_imports_account_period"] == ["account_id", "period_date"]

    downgrade(revision="0013")
    assert "replaced_by_id" not in column_names("imports")
    assert "ix_imports_account_period" not in {i["name"] for i in inspect(db.engine).get_indexes("imports")}
    assert db.session.execute(text("SELECT id, replaced_import_id FROM imports ORDER BY id")).all() == [
        (1, None), (2, 1), (3, 2), (4, None), (5, None)]


def test_migration_0017_drops_the_results_foreign_keys_and_keeps_every_row(migrated_to):
    columns = 'import_id, line, account_id, member_id, period_kind, period_date, "values", note'
    rows = [(10, 2, 1, 5, "day", "2018-05-16", {"1": 100.0}, "A社"),
            (10, 3, 1, 6, "day", "2018-05-16", {"1": -5.0, "2": 1.5}, None),
            (11, 2, 1, 6, "month", "2018-05-01", {}, None)]

    def stored():
        found = db.session.execute(text(f"SELECT {columns} FROM results ORDER BY import_id, line")).all()
        return [(r[0], r[1], r[2], r[3], r[4], str(r[5]), json_value(r[6]), r[7]) for r in found]

    def foreign_keys():
        return sorted(key["referred_table"] for key in inspect(db.engine).get_foreign_keys("results"))

    migrated_to("0013")
    _results_owners()
    for row in rows:
        insert_row("results", **dict(zip(columns.replace('"', "").split(", "), (*row[:6], json.dumps(row[6]), row[7]))))
    db.session.commit()
    assert foreign_keys() == ["accounts", "imports", "members"]

    upgrade(revision="0017")
    assert stored() == rows
    assert foreign_keys() == []
    db.session.commit()

    downgrade(revision="0013")
    assert stored() == rows
    assert foreign_keys() == ["accounts", "imports", "members"]


def test_migration_0014_adds_the_last_check_and_the_recheck_and_takes_them_back(migrated_to):
    migrated_to("0013")
    added = {"last_ftp_check_trigger", "last_ftp_check_result", "ftp_recheck_at"}
    insert_row("accounts")
    insert_row("integration_settings", mode="ftp", sender_networks="[]", sender_auth="none",
               last_ftp_check_at="2020-01-02")
    db.session.commit()

    upgrade(revision="0014")
    # A check from before has its time but no trigger or result; no re-check is pending.
    assert db.session.execute(text(
        "SELECT last_ftp_check_trigger, last_ftp_check_result, ftp_recheck_at FROM integration_settings")
    ).one() == (None, None, None)
    db.session.commit()

    downgrade(revision="0013")
    assert not added & column_names("integration_settings")
    assert db.session.scalar(text("SELECT count(*) FROM integration_settings")) == 1


def test_migration_0018_adds_the_ssh_keys_one_per_fingerprint_and_account_and_takes_them_back(migrated_to):
    migrated_to("0017")
    insert_row("accounts")
    insert_row("accounts", id=2, slug="b")
    db.session.commit()

    upgrade(revision="0018")
    key = {"key_type": "ssh-ed25519", "key_data": "AAAAC3NzaC1lZDI1NTE5", "comment": "", "fingerprint": "SHA256:x",
           "created_at": "2020-01-01"}
    insert_row("ssh_keys", account_id=1, **key)
    insert_row("ssh_keys", account_id=2, **key)  # the same key in another account
    db.session.commit()
    with pytest.raises(IntegrityError):
        insert_row("ssh_keys", account_id=1, **key)
    db.session.rollback()
    assert db.session.scalar(text("SELECT count(*) FROM ssh_keys")) == 2
    db.session.commit()

    downgrade(revision="0017")
    assert "ssh_keys" not in inspect(db.engine).get_table_names()
    assert db.session.scalar(text("SELECT count(*) FROM accounts")) == 2


def test_migration_0019_adds_the_mailboxes_and_the_fetched_messages_and_takes_them_back(migrated_to):
    migrated_to("0018")
    insert_row("accounts")
    db.session.commit()

    upgrade(revision="0019")
    insert_row("mailboxes", account_id=1, method="imap", host="imap.example.jp", port=993, tls="implicit",
               verify=True, username="u", folder="INBOX", processed_folder="Renkei/処理済", failures=0)
    insert_row("fetched_messages", account_id=1, uidvalidity=4_000_000_000, uid=7, fetched_at="2030-01-01")
    db.session.commit()
    # One record per message of a mailbox generation: the second hand-over of the same UID is refused.
    with pytest.raises(IntegrityError):
        insert_row("fetched_messages", account_id=1, uidvalidity=4_000_000_000, uid=7, fetched_at="2030-01-02")
    db.session.rollback()
    assert db.session.execute(text("SELECT uidvalidity, uid FROM fetched_messages")).one() == (4_000_000_000, 7)
    db.session.rollback()  # PostgreSQL: the read's lock would hold up the DROP of the downgrade

    downgrade(revision="0018")
    tables = inspect(db.engine).get_table_names()
    assert "mailboxes" not in tables and "fetched_messages" not in tables
    assert db.session.scalar(text("SELECT count(*) FROM accounts")) == 1


def test_migration_0020_adds_the_overdue_settings_and_periods_and_takes_them_back(migrated_to):
    migrated_to("0019")
    insert_row("accounts")
    insert_row("integration_settings", sheet_name="")
    db.session.commit()

    upgrade(revision="0020")
    row = db.session.execute(text("SELECT overdue_enabled, overdue_daily, overdue_daily_time, overdue_monthly_day, "
                                  "overdue_days, overdue_skip_holidays FROM integration_settings")).one()
    assert (bool(row[0]), row[1], row[2], row[3], json_value(row[4]), bool(row[5])) == (
        False, "none", "09:30", None, ["mon", "tue", "wed", "thu", "fri"], True)
    insert_row("overdue_periods", account_id=1, period_kind="day", period_date="2026-12-01",
               deadline="2026-12-01 00:30:00", opened_at="2026-12-01 00:30:00", state="open")
    db.session.commit()
    with pytest.raises(IntegrityError):
        insert_row("overdue_periods", account_id=1, period_kind="day", period_date="2026-12-01",
                   deadline="2026-12-01 00:30:00", opened_at="2026-12-01 00:31:00", state="open")
    db.session.rollback()

    downgrade(revision="0019")
    assert not {name for name in column_names("integration_settings") if name.startswith("overdue_")}
    assert "overdue_periods" not in inspect(db.engine).get_table_names()
    assert db.session.scalar(text("SELECT count(*) FROM integration_settings")) == 1


def test_connections_opening_a_new_sqlite_file_at_once_all_end_in_wal(tmp_path):
    """Two machines' first start open one new file together; switching to WAL must not fail either."""
    import threading

    from app.db.sqlite import apply_settings

    openers = 4
    for round_ in range(40):
        path = tmp_path / f"new{round_}.db"
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE t (x)")
        conn.close()
        start = threading.Barrier(openers)
        modes, errors = [], []

        def open_one():
            conn = sqlite3.connect(path, timeout=30)
            start.wait()
            try:
                apply_settings(conn)
                modes.append(conn.execute("PRAGMA journal_mode").fetchone()[0])
            except sqlite3.Error as exc:
                errors.append(exc)
            finally:
                conn.close()

        threads = [threading.Thread(target=open_one) for _ in range(openers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, (round_, errors)
        assert modes == ["wal"] * openers
