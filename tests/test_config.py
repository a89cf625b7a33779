"""One table of settings: every key the code reads is declared, README names every one, values parse."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import config

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "run.py", *sorted((ROOT / "app").rglob("*.py")), *sorted((ROOT / "servers").rglob("*.py"))]
# Names the code spells out: RENKEI_FOO in text, or config.get(app, "FOO") at a call site.
_VARIABLE = re.compile(r"\bRENKEI_([A-Z][A-Z0-9_]*[A-Z0-9])")
_CALL = re.compile(r"config\.get\(\s*\w+\s*,\s*\"([A-Z0-9_]+)\"")


def _mentioned() -> tuple[set[str], set[str]]:
    variables, keys = set(), set()
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        variables |= {f"RENKEI_{name}" for name in _VARIABLE.findall(text)}
        keys |= set(_CALL.findall(text))
    return variables, keys


def _readme_variables() -> set[str]:
    # The first cell of each table row of README: `RENKEI_A` or `RENKEI_A` / `RENKEI_B`.
    names: set[str] = set()
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names |= set(re.findall(r"`((?:RENKEI_|DATABASE_URL)[A-Z0-9_]*)", first_cell))
    return names


def test_every_variable_the_code_reads_is_declared():
    variables, keys = _mentioned()
    declared_variables = {s.variable for s in config.SETTINGS}
    assert sorted(variables - declared_variables) == []
    assert sorted(keys - set(config.BY_KEY)) == []


def test_readme_tables_name_every_declared_variable():
    missing = sorted({s.variable for s in config.SETTINGS} - _readme_variables())
    assert missing == []


def test_no_raw_environment_reads_outside_config():
    # The one reader is app/config.py; run.py writes its flags into the environment for it.
    raw = re.compile(r"os\.environ\.get\(|os\.getenv\(|environ\[\"RENKEI_")
    offenders = [str(p.relative_to(ROOT)) for p in SOURCES
                 if p.name != "config.py" and p.name != "run.py" and raw.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_declared_defaults_without_environment(tmp_path):
    values = config.from_environment({"RENKEI_DATA_DIR": str(tmp_path)})
    assert values["SMTP_PORT"] == 2525
    assert values["FTP_QUIET_SECONDS"] == 10.0
    assert values["TIMEZONE"] == config.DEFAULT_TIMEZONE == "Asia/Tokyo"
    assert values["PUBLIC_URL"] == "http://localhost:8000"
    assert values["MAIL_FROM"] == "renkei@renkei.localhost"
    assert values["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'renkei.db'}"
    assert values["SESSION_COOKIE_SECURE"] is False
    assert (values["SESSION_IDLE_MINUTES"], values["SESSION_MAX_DAYS"]) == (480, 7)


def test_environment_values_are_parsed_as_their_type(tmp_path):
    values = config.from_environment({
        "RENKEI_DATA_DIR": str(tmp_path), "RENKEI_WEB_PORT": "9000", "RENKEI_SECURE_COOKIES": "On",
        "RENKEI_FTP_REQUIRE_TLS": "no", "RENKEI_LOGIN_FAIL_DELAY": "0.25", "RENKEI_MAIL_DOMAIN": "example.jp",
    })
    assert (values["WEB_PORT"], values["SESSION_COOKIE_SECURE"], values["FTP_REQUIRE_TLS"]) == (9000, True, False)
    assert values["LOGIN_FAIL_DELAY"] == 0.25
    # Derived defaults follow the keys they come from.
    assert (values["PUBLIC_URL"], values["MAIL_FROM"]) == ("http://localhost:9000", "renkei@example.jp")


@pytest.mark.parametrize("variable, value, says", [
    ("RENKEI_SMTP_PORT", "25x", "整数"),
    ("RENKEI_KEEP_FILES_DAYS", "-1", "0以上の整数"),
    ("RENKEI_SESSION_IDLE_MINUTES", "0", "1以上の整数"),
    ("RENKEI_SESSION_MAX_DAYS", "-7", "1以上の整数"),
    ("RENKEI_LOGIN_FAIL_DELAY", "one", "数値"),
    ("RENKEI_SECURE_COOKIES", "maybe", "1/0"),
])
def test_a_bad_value_names_its_variable(tmp_path, variable, value, says):
    with pytest.raises(config.ConfigError) as caught:
        config.from_environment({"RENKEI_DATA_DIR": str(tmp_path), variable: value})
    assert variable in str(caught.value) and says in str(caught.value) and repr(value) in str(caught.value)


def test_app_config_wins_over_the_environment_and_is_parsed(app, monkeypatch):
    monkeypatch.setenv("RENKEI_FTP_MAX_CONS", "7")
    app.config["FTP_MAX_CONS"] = None
    assert config.get(app, "FTP_MAX_CONS") == 7  # unset in app.config: the environment
    app.config["FTP_MAX_CONS"] = "12"
    assert config.get(app, "FTP_MAX_CONS") == 12
    monkeypatch.delenv("RENKEI_FTP_MAX_CONS")
    app.config["FTP_MAX_CONS"] = ""
    assert config.get(app, "FTP_MAX_CONS") == 256


def test_server_defaults_are_the_declared_ones():
    # The handlers keep module constants for use without an app; they must say what the table says.
    from servers import ftp, ftpsession, recipients, smtp

    assert smtp.DEFAULT_MAX_BYTES == config.BY_KEY["SMTP_MAX_BYTES"].default
    assert smtp.DEFAULT_MAX_CONNECTIONS == config.BY_KEY["SMTP_MAX_CONNECTIONS"].default
    assert smtp.DEFAULT_MAX_COMMANDS == config.BY_KEY["SMTP_MAX_COMMANDS"].default
    assert smtp.DEFAULT_TIMEOUT == config.BY_KEY["SMTP_TIMEOUT"].default
    assert smtp.DEFAULT_MAX_CONNECTIONS_PER_ADDRESS == config.BY_KEY["SMTP_MAX_CONNECTIONS_PER_IP"].default
    assert smtp.DEFAULT_MAIL_TIMEOUT == config.BY_KEY["SMTP_MAIL_TIMEOUT"].default
    assert recipients.DEFAULT_RECIPIENT_CACHE_SECONDS == config.BY_KEY["SMTP_RECIPIENT_CACHE_SECONDS"].default
    assert ftpsession.DEFAULT_MAX_BYTES == config.BY_KEY["FTP_MAX_BYTES"].default
    assert ftp.DEFAULT_MAX_CONS == config.BY_KEY["FTP_MAX_CONS"].default
    assert ftp.DEFAULT_MAX_CONS_PER_IP == config.BY_KEY["FTP_MAX_CONS_PER_IP"].default


def test_create_app_overrides_are_parsed_so_app_config_is_typed(tmp_path):
    from app import create_app

    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'r.db'}",
                      "SMTP_MAX_BYTES": "1000", "SESSION_COOKIE_SECURE": "yes"})
    assert (app.config["SMTP_MAX_BYTES"], app.config["SESSION_COOKIE_SECURE"]) == (1000, True)
    with pytest.raises(config.ConfigError, match="RENKEI_SMTP_MAX_BYTES"):
        create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "SMTP_MAX_BYTES": "lots"})
