"""FTP logins (FTP連動): a pyftpdlib authorizer backed by the database and the shared ban list.

Decisions (where docs/spec.md is silent):
- Failed logins go through `bans.guarded_login` like web and API logins: the answer waits
  LOGIN_FAIL_DELAY seconds (pyftpdlib's auth_failed_timeout, which does not block other
  sessions), the failure is counted in the ban list shared with the web login, and a
  banned address is refused at connect and at login. A correct password is then admitted
  by `services.admission` (channel ftp) within the same check: integration disabled or mode
  not FTP is a failed login like a wrong password (same answer, same delay, counted, nothing
  forgiven), so a client cannot tell a right password from a wrong one; only the log says
  why. A 連動稼働停止 status is HOLD, so the login is allowed and files wait for the first
  check after re-activation.
"""
from __future__ import annotations

import logging
import os
import threading

from flask import Flask
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.exceptions import AuthenticationFailed
from pyftpdlib.handlers import FTPHandler

from app.models import IntegrationSettings
from app.services import bans, ftpcheck, integration
from app.services.admission import Channel, Outcome, admit

log = logging.getLogger("servers.ftp")  # the log lines keep the logger name they had before the split

PERMISSIONS = "elmwdf"
# pyftpdlib's permission letter of SITE CHMOD: granted, but the handler changes nothing.
CHMOD_PERM = "M"


def admitted(settings: IntegrationSettings | None) -> IntegrationSettings | None:
    """The settings when the account takes FTP now, else None (SFTP logins ask the same).

    A right password (or key) still needs the account to take FTP files (a stopped status:
    HOLD, files wait); refused, it is answered as a wrong one and only the log records why.
    """
    if settings is None:
        return None
    admission = admit(settings.account, Channel.FTP, settings=settings)
    if admission.outcome not in (Outcome.ACCEPT, Outcome.HOLD):
        log.info("ftp login refused account=%s reason=%s mode=%s", settings.account.slug, admission.reason,
                 settings.mode)
        return None
    return settings


def password_login(username: str, password: str) -> IntegrationSettings | None:
    """The account's settings when the FTP ID/PW are right and the account takes FTP now, else None."""
    return admitted(integration.verify_ftp_password(username, password))


class DatabaseAuthorizer(DummyAuthorizer):
    """Checks logins against the accounts' hashed FTP passwords and the shared ban list."""

    def __init__(self, app: Flask, perm: str = PERMISSIONS):
        super().__init__()
        self.app = app
        self.perm = perm
        self._homes: dict[str, str] = {}
        self._lock = threading.Lock()

    def validate_authentication(self, username: str, password: str, handler: FTPHandler) -> None:
        """Raise AuthenticationFailed unless the login is good and the account may use FTP now."""
        address = handler.remote_ip
        try:
            with self.app.app_context():
                # pyftpdlib holds the failed answer (auth_failed_timeout) on the session's own loop.
                result = bans.guarded_login(address, bans.login_key("ftp", username),
                                            lambda: password_login(username, password))
                if result.verdict is bans.Verdict.TOO_SOON:
                    raise AuthenticationFailed("authentication failed.")
                if result.verdict is bans.Verdict.BANNED:
                    handler.attempted_logins = handler.max_login_attempts
                    raise AuthenticationFailed("too many failed logins; try again later.")
                if not result.passed:
                    if result.ban_started:
                        handler.attempted_logins = handler.max_login_attempts
                    log.info("ftp login failed user=%s address=%s", username, address)
                    raise AuthenticationFailed("authentication failed.")
                settings = result.subject
                home = ftpcheck.home_path(settings.ftp_username, create=True)
                slug = settings.account.slug
        except AuthenticationFailed:
            raise
        except Exception:
            log.exception("ftp login check failed user=%s", username)
            raise AuthenticationFailed("temporary server error; try again later.")
        with self._lock:
            self._homes[username] = os.path.realpath(home)
        log.info("ftp login account=%s user=%s address=%s", slug, username, address)

    def get_home_dir(self, username: str) -> str:
        with self._lock:
            home = self._homes.get(username)
        if home is None:
            raise AuthenticationFailed("authentication failed.")
        return home

    def has_user(self, username: str) -> bool:
        with self._lock:
            return username in self._homes

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        # pyftpdlib has already refused any path outside the home (HomeFS.validpath).
        return perm in self.perm or perm == CHMOD_PERM

    def get_perms(self, username: str) -> str:
        return self.perm

    def get_msg_login(self, username: str) -> str:
        return "Login successful."

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."
