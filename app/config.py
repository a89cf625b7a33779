"""Every setting Renkei reads: one table of keys (type, default, meaning) and one way to read them.

A key is read from app.config first (create_app overrides, tests), then from its environment
variable (RENKEI_<key>, or `.env`), then the declared default. README's tables and
docs/spec.md name the same keys; tests/test_config.py checks that they agree.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo

# The zone of schedules, screens and mails when RENKEI_TIMEZONE is not set.
DEFAULT_TIMEZONE = "Asia/Tokyo"

MiB = 1024 * 1024
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class ConfigError(ValueError):
    """A setting's value cannot be read as its type; the message names the variable."""


def _parse_int(text: str) -> int:
    return int(text.strip())


def _parse_days(text: str) -> int:
    value = int(text.strip())
    if value < 0:
        raise ValueError(text)
    return value


def _parse_positive(text: str) -> int:
    value = int(text.strip())
    if value < 1:
        raise ValueError(text)
    return value


def _parse_float(text: str) -> float:
    return float(text.strip())


def _parse_flag(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(text)


def _parse_networks(text: str):
    from .proxies import parse_networks

    return parse_networks(text)


def _parse_dns_server(text: str) -> str:
    from .services.senderauth import parse_server

    try:
        parse_server(text)
    except (ValueError, IndexError):
        raise ValueError(text) from None
    return text.strip()


# type name -> (parser of text, what the error says the value should be)
TYPES: dict[str, tuple[Callable[[str], Any], str]] = {
    "int": (_parse_int, "整数"),
    "days": (_parse_days, "0以上の整数(日数、0は無期限)"),
    "positive": (_parse_positive, "1以上の整数"),
    "float": (_parse_float, "数値"),
    "flag": (_parse_flag, "1/0 (true/false, yes/no, on/off)"),
    "str": (str.strip, "文字列"),
    "networks": (_parse_networks, "IPアドレスまたはCIDRのカンマ区切り(例: 127.0.0.1, 10.0.0.0/8。段数の数値ではありません)"),
    "dns_server": (_parse_dns_server, "IPアドレス、またはIPアドレス:ポート(例: 192.0.2.53、192.0.2.53:5353、[2001:db8::53]:53)"),
}


def _parse_processes_default(values: Mapping[str, Any]) -> int:
    # One CPU is the event loop's and the worker's; the others may parse (the drain parses one
    # mail at a time, in a child so the loop keeps the interpreter lock to itself).
    return min(2, max(0, (os.cpu_count() or 1) - 1))


@dataclass(frozen=True)
class Setting:
    """One key: its app.config name, type, default (a value, or a function of the other keys' values)."""

    key: str
    type: str
    default: Any
    meaning: str
    env: str = ""  # the environment variable, when it is not RENKEI_<key>

    @property
    def variable(self) -> str:
        return self.env or f"RENKEI_{self.key}"

    def parse(self, value: Any) -> Any:
        """The value as this key's type; ConfigError naming the variable when it is not one."""
        if self.type == "flag" and isinstance(value, bool):
            return value
        if self.type in ("int", "days", "positive") and isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        elif self.type == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        elif self.type == "networks" and isinstance(value, (list, tuple)):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        parser, expected = TYPES[self.type]
        try:
            return parser(text)
        except ValueError:
            raise ConfigError(f"{self.variable} は{expected}で指定してください。値: {value!r}") from None

    def default_for(self, values: Mapping[str, Any]) -> Any:
        return self.default(values) if callable(self.default) else self.default


_S = Setting
SETTINGS: tuple[Setting, ...] = (
    _S("DATA_DIR", "str", "instance", "data folder (database, received files, FTP homes, key)"),
    _S("SQLALCHEMY_DATABASE_URI", "str", None, "database URL; default SQLite renkei.db in the data folder",
       env="DATABASE_URL"),
    _S("HOST", "str", "127.0.0.1", "bind address of every listener"),
    _S("WEB_PORT", "int", 8000, "web UI and API port (0 = any free port)"),
    _S("SMTP_PORT", "int", 2525, "SMTP port (0 = any free port)"),
    _S("FTP_PORT", "int", 2121, "FTP port (0 = any free port)"),
    _S("SFTP_PORT", "int", 2222, "SFTP port (0 = any free port)"),
    _S("MAIL_DOMAIN", "str", "renkei.localhost", "domain of the issued inbound addresses"),
    _S("PUBLIC_URL", "str", lambda v: f"http://localhost:{v.get('WEB_PORT', 8000)}",
       "base of the links in report mails"),
    _S("SMTP_RELAY", "str", None, "relay of report mails (smtp://user:pass@host:587?starttls=1); none = outbox only"),
    _S("MAIL_FROM", "str", lambda v: f"renkei@{v.get('MAIL_DOMAIN', 'renkei.localhost')}",
       "sender of report mails"),
    _S("TIMEZONE", "str", DEFAULT_TIMEZONE, "time zone of schedules, screens and mails"),
    _S("SECRET_KEY", "str", None, "session signing key; default generated once into the data folder"),
    # Login protection, shared by web, FTP and API (see services/bans.py).
    _S("LOGIN_FAIL_DELAY", "float", 1.0, "seconds after a failed login before its address may try that login again"),
    _S("BAN_THRESHOLD", "int", 10, "failures after which an address is refused for a while"),
    _S("BAN_WINDOW_SECONDS", "int", 600, "window in which an address's failures are counted"),
    _S("BAN_SECONDS", "int", 900, "how long a banned address is refused"),
    # Per login name (web e-mail, FTP user) from anywhere: guessing from many addresses stays slow.
    _S("LOGIN_BAN_THRESHOLD", "int", 30, "failures after which a login name is refused from anywhere"),
    _S("LOGIN_BAN_WINDOW_SECONDS", "int", 3600, "window in which a login name's failures are counted"),
    _S("LOGIN_BAN_SECONDS", "int", 900, "how long a banned login name is refused"),
    # Limits of the channels.
    _S("MAX_UPLOAD_BYTES", "int", 25 * MiB, "largest upload (screen, API)"),
    _S("API_RATE_PER_MINUTE", "int", 60, "API calls per token and minute (0 = no limit)"),
    # The web port's flood limits (servers/webguard.py); a trusted proxy has no per-address cap.
    _S("WEB_MAX_CONNECTIONS", "int", 100, "concurrent web connections (over it new ones wait to be accepted)"),
    _S("WEB_MAX_CONNECTIONS_PER_IP", "int", 20, "concurrent web connections per client address (over it: 503; 0 = no cap)"),
    _S("WEB_HEADER_TIMEOUT", "float", 10.0, "seconds a web client has to send a request's line and headers"),
    _S("SMTP_MAX_BYTES", "int", 25 * MiB, "largest mail"),
    _S("SMTP_MAX_CONNECTIONS", "int", 50, "concurrent SMTP sessions (over it: 421)"),
    _S("SMTP_MAX_CONNECTIONS_PER_IP", "int", 10, "concurrent SMTP sessions per client address (over it: 421; 0 = no cap)"),
    _S("SMTP_MAIL_TIMEOUT", "float", 30.0, "seconds a session may go without MAIL, from connect or its last mail (then 421)"),
    _S("SMTP_MAX_COMMANDS", "int", 100, "times one command may be sent in a session"),
    # RFC 5321 4.5.3.2.7: a server should wait at least 5 minutes.
    _S("SMTP_TIMEOUT", "float", 300.0, "idle seconds before an SMTP session is closed"),
    _S("SMTP_RECIPIENT_CACHE_SECONDS", "float", 5.0, "seconds a RCPT look-up is remembered (0 = not)"),
    _S("SMTP_PARSE_PROCESSES", "int", _parse_processes_default, "MIME parsing child processes; min(2, CPUs-1), 0 = threads"),
    _S("SMTP_TLS_CERT", "str", None, "STARTTLS certificate (PEM)"),
    _S("SMTP_TLS_KEY", "str", None, "STARTTLS key (PEM)"),
    _S("SMTP_REQUIRE_TLS", "flag", False, "refuse MAIL before STARTTLS"),
    # DKIM and SPF checks of received mail (app/services/senderauth.py), in the spool drain.
    _S("DNS_SERVER", "dns_server", None, "DNS server of the DKIM/SPF look-ups, host or host:port; none = the system resolver"),
    _S("DNS_TIMEOUT_SECONDS", "float", 3.0, "seconds one DNS look-up may take (SPF: 4 times this in all)"),
    _S("DNS_CACHE_SECONDS", "float", 300.0, "longest time a DNS answer is reused (shorter when its TTL says so)"),
    _S("IMAP_CA_FILE", "str", None, "PEM file of CA certificates trusted for IMAP servers besides the system's (a private CA)"),
    _S("IMAP_TIMEOUT", "float", 60.0, "seconds an IMAP server may take to answer one command (mailbox fetch)"),
    _S("FTP_MAX_BYTES", "int", 100 * MiB, "largest FTP upload"),
    _S("FTP_MAX_CONS", "int", 256, "concurrent FTP connections"),
    _S("FTP_MAX_CONS_PER_IP", "int", 10, "concurrent FTP connections per address"),
    _S("FTP_LOGIN_TIMEOUT", "float", 30.0, "seconds from connect to login before an FTP session is closed (421)"),
    _S("FTP_PASSIVE_PORTS", "str", None, "passive port range, e.g. 60000-60100; none = any the OS picks"),
    _S("FTP_PUBLIC_HOST", "str", None, "address in PASV replies and the FTP server name on screens; none = HOST"),
    _S("FTP_TLS_CERT", "str", None, "explicit FTPS (AUTH TLS) certificate"),
    _S("FTP_TLS_KEY", "str", None, "explicit FTPS (AUTH TLS) key"),
    _S("FTP_REQUIRE_TLS", "flag", False, "refuse logins and transfers without TLS"),
    _S("FTP_QUIET_SECONDS", "float", 10.0, "seconds a file's size and mtime must stay unchanged before it is read"),
    # A claimed import whose holder process ended is taken back at once (its lock file in the
    # data folder is unlocked); on PostgreSQL one whose lease (renewed every lease/5 s) ran out,
    # too. CLAIM_STALE_SECONDS is left for a claim neither tells about (made by an older version).
    _S("CLAIM_LEASE_SECONDS", "int", 10, "lease of a claimed import on PostgreSQL"),
    _S("CLAIM_STALE_SECONDS", "int", 300, "seconds before a claim of unknown holder is requeued"),
    # Originals older than this are deleted by the scheduler's daily job; the history rows stay.
    _S("KEEP_FILES_DAYS", "days", 400, "days an import's original file is kept (0 = for ever)"),
    _S("WORKER_POLL_SECONDS", "float", 1.0, "how often the worker looks at the queue"),
    # How long API ?wait=1 and an FTP check (今すぐチェック, the scheduler's) wait for the worker
    # to end a received import before answering that it is still running.
    _S("IMPORT_WAIT_SECONDS", "float", 60.0, "how long ?wait=1 and FTP checks wait for an import to end"),
    # Behind a proxy without it, every client shares the proxy's address and one ban would
    # lock everybody out (app/proxies.py).
    _S("TRUSTED_PROXIES", "networks", (), "addresses/CIDRs of reverse proxies whose X-Forwarded-For/-Proto to believe"),
    # A signed-in browser session ends after this long without a request, and this long after
    # its login whatever happens (app/auth/sessions.py); its CSRF tokens end with it.
    _S("SESSION_IDLE_MINUTES", "positive", 8 * 60, "minutes without a request before a web session ends"),
    _S("SESSION_MAX_DAYS", "positive", 7, "days after its login a web session ends, however active"),
    _S("SESSION_COOKIE_SECURE", "flag", False, "Secure attribute on cookies (behind HTTPS)",
       env="RENKEI_SECURE_COOKIES"),
)
BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}


def _present(value: Any) -> bool:
    return value is not None and value != ""


def read(config: Mapping[str, Any], key: str, environ: Mapping[str, str] | None = None) -> Any:
    """`key` from `config`, else its environment variable, else its default; parsed as its type."""
    setting = BY_KEY[key]  # a KeyError here is a key nobody declared: add it to SETTINGS
    value = config.get(key)
    if not _present(value):
        value = (os.environ if environ is None else environ).get(setting.variable)
    if not _present(value):
        return setting.default_for(config)
    return setting.parse(value)


def parse_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """create_app's overrides with each declared key's value parsed (unset ones and other keys as given)."""
    return {key: BY_KEY[key].parse(value) if key in BY_KEY and _present(value) else value
            for key, value in values.items()}


def get(app, key: str) -> Any:
    """`key` for `app` (app.config, then the environment, then the declared default)."""
    return read(app.config, key)


def timezone(app) -> ZoneInfo:
    """The zone of schedules, screens and mails (RENKEI_TIMEZONE, else DEFAULT_TIMEZONE)."""
    return ZoneInfo(get(app, "TIMEZONE"))


def from_environment(environ: Mapping[str, str] | None = None) -> dict:
    """Return the app's config mapping of every declared key; paths are made absolute."""
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        values[setting.key] = read(values, setting.key, environ)
    data_dir = Path(values["DATA_DIR"]).resolve()
    values["DATA_DIR"] = str(data_dir)
    values["SQLALCHEMY_DATABASE_URI"] = values["SQLALCHEMY_DATABASE_URI"] or f"sqlite:///{data_dir / 'renkei.db'}"
    values["PUBLIC_URL"] = values["PUBLIC_URL"].rstrip("/")
    return values


def ensure_secret_key(data_dir: str) -> str:
    """Read the session key from the data folder, generating it once (mode 0600)."""
    path = Path(data_dir) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key
