"""What an operator reads from `flask …`: times in RENKEI_TIMEZONE, JSON as the API, Japanese-first help, quiet logs."""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from app.extensions import db
from app.models import Import
from tests.fixtures.api import auth
from tests.fixtures.ingest import csv_file, ingest_options

ROOT = Path(__file__).resolve().parent.parent
RECEIVED = dt.datetime(2018, 5, 16, 0, 0, 5)  # stored naive UTC
# A log line as logs.FORMAT writes it: "2026-12-02 20:00:00,123 INFO name message".
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ", re.MULTILINE)


def _imported(app, tmp_path, make_account):
    acc = make_account("acme", api_token=True, **ingest_options())
    path = tmp_path / "20180516.csv"
    path.write_bytes(csv_file([[1, 100, 10, 1, ""]]))
    result = app.test_cli_runner().invoke(args=["import-csv", "acme", str(path)])
    assert result.exit_code == 0, result.output
    imp = db.session.scalars(db.select(Import)).one()
    imp.received_at = RECEIVED
    db.session.commit()
    return acc, imp


def test_imports_list_shows_times_in_the_configured_zone_and_json_as_the_api(app, tmp_path, make_account):
    acc, _ = _imported(app, tmp_path, make_account)
    app.config["TIMEZONE"] = "America/New_York"
    runner = app.test_cli_runner()

    human = runner.invoke(args=["imports", "list", "acme"])
    as_json = runner.invoke(args=["imports", "list", "acme", "--json"])
    api = app.test_client().get("/api/v1/imports", headers=auth(acc.token))

    assert human.exit_code == 0, human.output
    assert "\t2018-05-15 20:00:05\t" in human.stdout  # 00:00:05 UTC is 20:00:05 the day before in New York (EDT)
    assert api.status_code == 200, api.get_data(as_text=True)
    api_time = api.get_json()["imports"][0]["received_at"]
    assert json.loads(as_json.stdout)[0]["received_at"] == api_time == "2018-05-16T00:00:05Z"


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            # A group's own arguments come before its subcommands (`integration ssh-key SLUG add`).
            arguments = tuple(param.name.upper() for param in command.params if isinstance(param, click.Argument))
            yield from _commands(command, (*path, name, *arguments))


# Japanese before any parenthesis: the sentence starts in Japanese (a word like "FTP" or "CSV" may lead it).
JAPANESE = re.compile(r"^[^()]*?[\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef]")


def test_every_renkei_command_help_starts_in_japanese_with_english_after(app):
    runner = app.test_cli_runner()
    flask_own = {("run",), ("shell",), ("routes",)}
    checked = 0
    for path, command in _commands(app.cli):
        if path in flask_own or path[0] == "db":  # Flask-Migrate's own texts
            continue
        result = runner.invoke(args=[*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        text = (command.help or "").strip()
        assert JAPANESE.match(text), (path, text)
        assert re.search(r"\([a-z][a-zA-Z ,;'/.-]+", text), (path, text)  # the English after it
        assert text.split("\n")[0][:10] in result.output
        if not isinstance(command, click.Group):
            assert "--verbose" in result.output, path
        checked += 1
    assert checked >= 15


@pytest.mark.parametrize("args", [["integration", "show", "demo2"], ["imports", "list", "demo2"],
                                  ["accounts", "enable-integration", "demo2"]])
def test_an_unknown_slug_is_echoed_as_typed(runner, args):
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert 'アカウント "demo2" はありません (no account with slug "demo2")' in result.output


def test_log_lines_about_an_account_name_its_slug(app, tmp_path, make_account, caplog):
    with caplog.at_level(logging.INFO):
        _imported(app, tmp_path, make_account)
    about_account = [r.getMessage() for r in caplog.records if "account=" in r.getMessage()]
    assert about_account, caplog.text
    assert all("account=acme" in message for message in about_account), about_account


def _flask(env, *args):
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], env=env, capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False)


def test_import_csv_and_check_now_print_their_result_without_log_lines(tmp_path, empty_database_url):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RENKEI_SECRET_KEY")}
    env["RENKEI_DATA_DIR"] = str(tmp_path / "data")
    if empty_database_url:
        env["DATABASE_URL"] = empty_database_url
    members = tmp_path / "members.csv"
    members.write_bytes("No.,社員ID,氏名,部署,メールアドレス\r\n1,E001,山田,,\r\n".encode("cp932"))
    data = tmp_path / "20180516.csv"
    data.write_bytes("No.,売上\r\n1,100\r\n".encode("cp932"))

    # The first command on the new data folder migrates it: no Alembic line, nothing but the answer.
    first = _flask(env, "import-csv", "nosuch", str(data))
    assert first.returncode == 1
    assert first.stdout == ""
    assert first.stderr.strip() == 'アカウント "nosuch" はありません (no account with slug "nosuch")'

    for args in (["accounts", "create", "acme", "--name", "アクメ", "--admin-email", "boss@acme.example",
                  "--admin-password", "password-123"], ["columns", "add", "acme", "売上"],
                 ["members", "import", "acme", str(members)], ["accounts", "enable-integration", "acme"],
                 ["integration", "set", "acme", "--mode", "ftp", "--error-to", "boss@acme.example"]):
        done = _flask(env, *args)
        assert done.returncode == 0, done.stderr

    imported = _flask(env, "import-csv", "acme", str(data))
    assert imported.returncode == 0, imported.stderr
    assert re.fullmatch(r"取込 #\d+ 成功: 20180516.csv 期間 20180516 1行 \(imported\)\n", imported.stdout)
    assert imported.stderr == ""
    checked = _flask(env, "integration", "check-now", "acme")
    assert checked.stdout.strip() and not LOG_LINE.search(checked.stdout), checked.stdout
    assert not LOG_LINE.search(checked.stderr), checked.stderr

    verbose = _flask(env, "import-csv", "acme", str(data), "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert not LOG_LINE.search(verbose.stdout)
    assert re.search(r"INFO .*account=acme", verbose.stderr), verbose.stderr
