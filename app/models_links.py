"""The tables of the later ways in and their watch: SSH public keys (SFTP), the mailbox fetched
over IMAP and the messages fetched from it, and the 未着 periods. `migrations/` creates them
(0018, 0019, 0020); app/models.py imports this module, so db.metadata always has them.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .extensions import db
from .models import utcnow


class SshKey(db.Model):
    """One public key an account logs in with (services/sshkeys.py): its type, blob, comment and fingerprint."""

    __tablename__ = "ssh_keys"
    __table_args__ = (UniqueConstraint("account_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index of its own: the unique key (account_id, fingerprint) serves every look-up by account.
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # "ssh-ed25519", "ecdsa-sha2-nistp256" …; the blob is the key's base64 as authorized_keys has it.
    key_type: Mapped[str] = mapped_column(String(32))
    key_data: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(String(255), default="")
    # "SHA256:" and the unpadded base64 of the blob's SHA-256, as `ssh-keygen -l` shows it.
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @property
    def line(self) -> str:
        """The key as one authorized_keys line: "type base64 comment"."""
        return f"{self.key_type} {self.key_data} {self.comment}".rstrip()


class Mailbox(db.Model):
    """受信方法 of メール添付連動 and the mailbox fetched over IMAP (services/mailbox.py); no row = 内蔵SMTP."""

    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), unique=True)
    method: Mapped[str] = mapped_column(String(8), default="smtp")  # smtp | imap
    host: Mapped[str] = mapped_column(String(255), default="")
    port: Mapped[int] = mapped_column(default=993)
    tls: Mapped[str] = mapped_column(String(8), default="implicit")  # implicit | starttls
    verify: Mapped[bool] = mapped_column(default=True)
    username: Mapped[str] = mapped_column(String(320), default="")
    # Encrypted like the ZIPパスワード (services/sealed.py); never shown again.
    password: Mapped[str | None] = mapped_column(Text)
    folder: Mapped[str] = mapped_column(String(255), default="INBOX")
    processed_folder: Mapped[str] = mapped_column(String(255), default="Renkei/処理済")
    last_success_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None]
    failures: Mapped[int] = mapped_column(default=0)  # consecutive failed fetches (the backoff's exponent)
    retry_at: Mapped[dt.datetime | None]  # no fetch before this (backoff after a failure)


class FetchedMessage(db.Model):
    """A message of a mailbox handed to the mail path (before it is moved): it is never imported again."""

    __tablename__ = "fetched_messages"
    __table_args__ = (UniqueConstraint("account_id", "uidvalidity", "uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    fetched_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class OverduePeriod(db.Model):
    """One 未着 period of an account (services/overdue.py): opened and alerted once, closed once.

    The period is stored as imports store theirs (period_kind "day" | "month", period_date; a
    month's is its 1st), unique per account, so a second worker's alert of the same period fails.
    """

    __tablename__ = "overdue_periods"
    __table_args__ = (UniqueConstraint("account_id", "period_kind", "period_date"),)

    OPEN = "open"
    CLOSED = "closed"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    period_kind: Mapped[str] = mapped_column(String(8))
    period_date: Mapped[dt.date]
    deadline: Mapped[dt.datetime]
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    alerted_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    # The succeeded import that closed it (届きました).
    import_id: Mapped[int | None] = mapped_column(ForeignKey("imports.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(8), default=OPEN)
