"""The closed sets of words Renkei stores and compares: one StrEnum each; imports nothing.

Members are `str`s, so they equal (and are stored as) the same lower-case words as before;
migrations and the database keep those words. The models keep their class attributes
(`Import.QUEUED`, ...) as aliases of these members so existing call sites stay valid.
"""
from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    """データ連動方式: the one channel an account takes files from (integration_settings.mode)."""

    MAIL = "mail"
    FTP = "ftp"
    API = "api"


class LinkStatus(StrEnum):
    """データ連動ステータス (integration_settings.status)."""

    ACTIVE = "active"
    STOPPED = "stopped"


class SenderAuth(StrEnum):
    """送信元の認証: what a mail from an allowed sender must pass (integration_settings.sender_auth)."""

    NONE = "none"      # nothing beyond the addresses (and 送信元サーバー, when set)
    DKIM = "dkim"      # a DKIM signature of the From: domain that verifies
    SPF = "spf"        # SPF pass for the envelope sender's domain and the peer address
    EITHER = "either"  # DKIM or SPF, either one


class Channel(StrEnum):
    """Where an import came from (imports.channel): the three modes, the screen and the command line."""

    MAIL = "mail"
    FTP = "ftp"
    API = "api"
    WEB = "web"
    CLI = "cli"


class ImportStatus(StrEnum):
    """The fate of an import (imports.status)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DISCARDED = "discarded"
    REFUSED = "refused"
    UNPACKED = "unpacked"  # an archive whose files were queued as imports of their own


class MailStatus(StrEnum):
    """A report mail in the outbox (outbox.status)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Role(StrEnum):
    """A user's role (users.role)."""

    ADMIN = "admin"
    VIEWER = "viewer"
