"""SSH public keys of an account, for logging in to the SFTP server without the FTP password.

Apart from app/models.py only because that module is at its size limit; `migrations/` creates
the table (0018). Loaded with services/sshkeys.py, which the app imports with its blueprints
and commands, so db.metadata always has it.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
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
