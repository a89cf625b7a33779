"""Settings read from RENKEI_* environment variables (and `.env`), defaults in the README (docs/spec.md section 9)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _days(name: str, default: int) -> int:
    """A number of days, 0 or more (0 = for ever)."""
    text = os.environ.get(name, str(default)).strip()
    if not text.isdigit():
        raise ValueError(f"{name} は0以上の整数(日数、0は無期限)で指定してください。値: {text!r}")
    return int(text)


def _bool(name: str, default: bool) -> bool:
    return os.environ.get(name, "1" if default else "0").strip().lower() in ("1", "true", "yes", "on")


def from_environment() -> dict:
    """Return the app's config mapping from the environment; paths are made absolute."""
    data_dir = Path(os.environ.get("RENKEI_DATA_DIR", "instance")).resolve()
    mail_domain = os.environ.get("RENKEI_MAIL_DOMAIN", "renkei.localhost")
    web_port = _int("RENKEI_WEB_PORT", 8000)
    return {
        "DATA_DIR": str(data_dir),
        "SQLALCHEMY_DATABASE_URI": os.environ.get("DATABASE_URL") or f"sqlite:///{data_dir / 'renkei.db'}",
        "HOST": os.environ.get("RENKEI_HOST", "127.0.0.1"),
        "WEB_PORT": web_port,
        "SMTP_PORT": _int("RENKEI_SMTP_PORT", 2525),
        "FTP_PORT": _int("RENKEI_FTP_PORT", 2121),
        "MAIL_DOMAIN": mail_domain,
        "PUBLIC_URL": os.environ.get("RENKEI_PUBLIC_URL", f"http://localhost:{web_port}").rstrip("/"),
        "SMTP_RELAY": os.environ.get("RENKEI_SMTP_RELAY") or None,
        "MAIL_FROM": os.environ.get("RENKEI_MAIL_FROM", f"renkei@{mail_domain}"),
        "TIMEZONE": os.environ.get("RENKEI_TIMEZONE", "Asia/Tokyo"),
        "SECRET_KEY": os.environ.get("RENKEI_SECRET_KEY") or None,
        # Login protection, shared by web, FTP and API (see services/bans.py).
        "LOGIN_FAIL_DELAY": float(os.environ.get("RENKEI_LOGIN_FAIL_DELAY", "1.0")),
        "BAN_THRESHOLD": _int("RENKEI_BAN_THRESHOLD", 10),
        "BAN_WINDOW_SECONDS": _int("RENKEI_BAN_WINDOW_SECONDS", 600),
        "BAN_SECONDS": _int("RENKEI_BAN_SECONDS", 900),
        # Per login name (web e-mail, FTP user) from anywhere: guessing from many addresses stays slow.
        "LOGIN_BAN_THRESHOLD": _int("RENKEI_LOGIN_BAN_THRESHOLD", 30),
        "LOGIN_BAN_WINDOW_SECONDS": _int("RENKEI_LOGIN_BAN_WINDOW_SECONDS", 3600),
        "LOGIN_BAN_SECONDS": _int("RENKEI_LOGIN_BAN_SECONDS", 900),
        # Limits of the channels.
        "MAX_UPLOAD_BYTES": _int("RENKEI_MAX_UPLOAD_BYTES", 25 * 1024 * 1024),
        "SMTP_MAX_BYTES": _int("RENKEI_SMTP_MAX_BYTES", 25 * 1024 * 1024),
        "API_RATE_PER_MINUTE": _int("RENKEI_API_RATE_PER_MINUTE", 60),
        # A claimed import whose holder process ended is taken back at once (its lock file in the
        # data folder is unlocked); on PostgreSQL one whose lease (renewed every lease/5 s) ran out,
        # too. CLAIM_STALE_SECONDS is left for a claim neither tells about (made by an older version).
        "CLAIM_LEASE_SECONDS": _int("RENKEI_CLAIM_LEASE_SECONDS", 10),
        "CLAIM_STALE_SECONDS": _int("RENKEI_CLAIM_STALE_SECONDS", 300),
        # Days an import's original file is kept (download, 再取込); older ones are deleted by the
        # scheduler's daily job, the history rows stay. 0 keeps them for ever.
        "KEEP_FILES_DAYS": _days("RENKEI_KEEP_FILES_DAYS", 400),
        "WORKER_POLL_SECONDS": float(os.environ.get("RENKEI_WORKER_POLL_SECONDS", "1.0")),
        # How long API ?wait=1 and an FTP check (今すぐチェック, the scheduler's) wait for the worker
        # to end a received import before answering that it is still running.
        "IMPORT_WAIT_SECONDS": float(os.environ.get("RENKEI_IMPORT_WAIT_SECONDS", "60")),
        # Number of reverse proxies in front of the web part whose X-Forwarded-For/-Proto to trust
        # (0 = none). Behind a proxy without it, every client shares the proxy's address and one
        # ban would lock everybody out.
        "TRUSTED_PROXIES": _int("RENKEI_TRUSTED_PROXIES", 0),
        "SESSION_COOKIE_SECURE": _bool("RENKEI_SECURE_COOKIES", False),
    }


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
