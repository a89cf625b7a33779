"""The schema, as SQLAlchemy 2 typed models. `migrations/` creates it; keep both in step."""
from __future__ import annotations

import datetime as dt

from flask_login import UserMixin
from sqlalchemy import JSON, BigInteger, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from .enums import Channel, ImportStatus, LinkStatus, MailStatus, Mode, Role, SenderAuth
from .extensions import db


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Account(db.Model):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    integration_enabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    settings: Mapped[IntegrationSettings | None] = relationship(back_populates="account", uselist=False)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    ADMIN = Role.ADMIN
    VIEWER = Role.VIEWER
    ROLE_LABELS = {ADMIN: "管理者", VIEWER: "閲覧者"}

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=ADMIN)
    # Carried by every signed-in session (get_id); a session of another version is signed out
    # (app/auth/sessions.py). Bumped by a logout, a new password and a new role.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship()

    def get_id(self) -> str:
        """What Flask-Login keeps in the session: the id and the session version."""
        return f"{self.id}:{self.session_version or 0}"

    def end_sessions(self) -> None:
        """Sign out every session of this user made before (committed by the caller)."""
        self.session_version = (self.session_version or 0) + 1

    @validates("password_hash", "role")
    def _ends_sessions_when_changed(self, key: str, value: str) -> str:
        # Whatever code changes a stored user's password or role, the sessions opened with the old one end.
        if self.id is not None and getattr(self, key) != value:
            self.end_sessions()
        return value

    @property
    def is_admin(self) -> bool:
        return self.role == self.ADMIN

    @property
    def role_label(self) -> str:
        return self.ROLE_LABELS.get(self.role, self.role)


class Member(db.Model):
    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("account_id", "no"),
        UniqueConstraint("account_id", "employee_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    no: Mapped[int]
    employee_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    department: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(default=True)


class GraphColumn(db.Model):
    __tablename__ = "graph_columns"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(String(20), default="")
    position: Mapped[int] = mapped_column(default=0)
    # 別名: other headers that mean this column (another system's export), stored NFKC-normalised
    # like the name; unique with the names and the key aliases within the account (services/columns.py).
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)


class Import(db.Model):
    """One received file and its fate. The original bytes are in `import_files` (services/files.py), never on this row."""

    __tablename__ = "imports"
    __table_args__ = (
        Index("ix_imports_account_filename", "account_id", "filename"),
        Index("ix_imports_status", "status"),
        # The board's look-ups by period: a day's daily imports and a month's latest import.
        Index("ix_imports_account_period", "account_id", "period_date"),
        UniqueConstraint("account_id", "dedupe_key"),
    )

    # Aliases of the enum members (app/enums.py), so `Import.QUEUED` keeps reading well.
    QUEUED = ImportStatus.QUEUED
    RUNNING = ImportStatus.RUNNING
    SUCCEEDED = ImportStatus.SUCCEEDED
    FAILED = ImportStatus.FAILED
    DISCARDED = ImportStatus.DISCARDED
    REFUSED = ImportStatus.REFUSED
    UNPACKED = ImportStatus.UNPACKED
    STATUS_LABELS = {
        QUEUED: "待機中",
        RUNNING: "取込中",
        SUCCEEDED: "成功",
        FAILED: "エラー",
        DISCARDED: "破棄",
        REFUSED: "拒否",
        UNPACKED: "展開済み",
    }
    CHANNEL_LABELS = {Channel.MAIL: "メール", Channel.FTP: "FTP", Channel.API: "API", Channel.WEB: "画面",
                      Channel.CLI: "コマンド"}

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    # Set while a worker holds the import; a dead holder's claim is taken back (services/claims.py).
    claimed_at: Mapped[dt.datetime | None]
    # The holder "host:pid:nonce" and, on PostgreSQL, the end of its lease (renewed by its heartbeat).
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    lease_until: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    encoding: Mapped[str | None] = mapped_column(String(32))
    period_kind: Mapped[str | None] = mapped_column(String(8))
    period_date: Mapped[dt.date | None]
    row_count: Mapped[int] = mapped_column(default=0)
    error_count: Mapped[int] = mapped_column(default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    # Channel-level identity of a delivery (e.g. Message-ID + content hash) so a repeat is stored once.
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    replaced_import_id: Mapped[int | None] = mapped_column(ForeignKey("imports.id", ondelete="SET NULL"))
    # The later import whose data replaced this one's (置換済), set in the replacing transaction.
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("imports.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)
    # Names of the attachments of the same mail that were not imported (e.g. an .xlsx), for the report mail.
    ignored_attachments: Mapped[list[str] | None] = mapped_column(JSON)
    # The headers the file had that name nothing and were skipped (見出しにない列: 無視する), for the page and report.
    ignored_headers: Mapped[list[str] | None] = mapped_column(JSON)
    # When the retention job (RENKEI_KEEP_FILES_DAYS) deleted the original bytes; the row itself stays.
    file_deleted_at: Mapped[dt.datetime | None]
    # Mail only: who delivered it (SMTP envelope sender, peer address, HELO name) and what DKIM/SPF said.
    mail_from: Mapped[str | None] = mapped_column(String(320))
    peer_address: Mapped[str | None] = mapped_column(String(64))
    helo_name: Mapped[str | None] = mapped_column(String(255))
    # A discarded mail's Subject: (decoded, clipped), for the daily 破棄のお知らせ (services/notices.py).
    subject: Mapped[str | None] = mapped_column(String(255))
    dkim_result: Mapped[str | None] = mapped_column(String(16))
    dkim_domain: Mapped[str | None] = mapped_column(String(255))
    spf_result: Mapped[str | None] = mapped_column(String(16))
    # A file unpacked from an archive: the archive's own import (services/archives.py).
    archive_id: Mapped[int | None] = mapped_column(ForeignKey("imports.id", ondelete="SET NULL"), index=True)

    account: Mapped[Account] = relationship()
    errors: Mapped[list[ImportErrorRecord]] = relationship(
        order_by="ImportErrorRecord.id", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def status_label(self) -> str:
        return self.STATUS_LABELS.get(self.status, self.status)

    @property
    def channel_label(self) -> str:
        return self.CHANNEL_LABELS.get(self.channel, self.channel)


class ImportFile(db.Model):
    """One piece of an import's original bytes (pieces of services/files.CHUNK_SIZE, in `seq` order).

    Kept apart from `imports` so that no query of the history ever reads the bytes, and in
    pieces so that storing, streaming a download and moving them hold one piece at a time.
    An import whose bytes are kept has a piece 0 (empty for an empty file).
    """

    __tablename__ = "import_files"

    import_id: Mapped[int] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ImportErrorRecord(db.Model):
    """One error of a failed import (named ...Record so it never shadows the builtin ImportError)."""

    __tablename__ = "import_errors"

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"), index=True)
    line: Mapped[int | None]
    column: Mapped[str | None] = mapped_column(String(255))
    # "C" for an error in a workbook (the column as a spreadsheet shows it); None for CSV files.
    column_letter: Mapped[str | None] = mapped_column(String(3))
    value: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)


class IntegrationSettings(db.Model):
    """外部連携設定 of one account (docs/spec.md section 3). Lists are JSON arrays of strings."""

    __tablename__ = "integration_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), unique=True)
    mode: Mapped[str] = mapped_column(String(8), default=Mode.MAIL)
    status: Mapped[str] = mapped_column(String(8), default=LinkStatus.ACTIVE)
    member_key: Mapped[str] = mapped_column(String(16), default="no")
    encoding: Mapped[str] = mapped_column(String(16), default="auto")
    # メンバー識別IDの見出しの別名: other headers of the member-key column (besides No. / 社員ID).
    key_aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    # 見出しにない列: "error" refuses a file with a header that names nothing, "ignore" skips that column.
    extra_columns: Mapped[str] = mapped_column(String(8), default="error")
    error_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    success_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    senders: Mapped[list[str]] = mapped_column(JSON, default=list)
    # 送信元サーバー: IP addresses / networks (CIDR) mail may come from; empty = any.
    sender_networks: Mapped[list[str]] = mapped_column(JSON, default=list)
    sender_auth: Mapped[str] = mapped_column(String(8), default=SenderAuth.NONE)
    # 読み込むシート: the sheet of a workbook to read (Excel allows 31 characters); "" = the first sheet.
    sheet_name: Mapped[str] = mapped_column(String(31), default="", server_default="")
    inbound_local: Mapped[str | None] = mapped_column(String(64), unique=True)
    ftp_username: Mapped[str | None] = mapped_column(String(64), unique=True)
    ftp_password_hash: Mapped[str | None] = mapped_column(String(255))
    ftp_days: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["mon", "tue", "wed", "thu", "fri"])
    ftp_start: Mapped[str] = mapped_column(String(5), default="09:00")
    ftp_end: Mapped[str] = mapped_column(String(5), default="18:00")
    ftp_interval: Mapped[int] = mapped_column(default=60)
    ftp_delay: Mapped[int] = mapped_column(default=0)
    # The last FTP check (services/ftpreport.py): when, who started it, what it said.
    last_ftp_check_at: Mapped[dt.datetime | None]
    last_ftp_check_trigger: Mapped[str | None] = mapped_column(String(16))
    last_ftp_check_result: Mapped[dict | None] = mapped_column(JSON)
    # When the automatic re-check of files still settling runs (at most one pending per account).
    ftp_recheck_at: Mapped[dt.datetime | None]
    # データ未着の通知 (services/overdue.py): which files are expected by when, and since when it is on
    # (deadlines before overdue_since never alert, so turning it on does not mail the past).
    overdue_enabled: Mapped[bool] = mapped_column(default=False, server_default="0")
    # 期待するファイル (日次): "none", "same" (当日分: day D's file by the time on D) or "previous"
    # (前日分: by the time on the working day after D).
    overdue_daily: Mapped[str] = mapped_column(String(8), default="none", server_default="none")
    overdue_daily_time: Mapped[str] = mapped_column(String(5), default="09:30", server_default="09:30")
    # 期待するファイル (月次): month M's file by day N of month M+1 at the time; None = no monthly file.
    overdue_monthly_day: Mapped[int | None]
    overdue_monthly_time: Mapped[str] = mapped_column(String(5), default="09:30", server_default="09:30")
    overdue_days: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["mon", "tue", "wed", "thu", "fri"])
    overdue_skip_holidays: Mapped[bool] = mapped_column(default=True, server_default="1")
    overdue_since: Mapped[dt.datetime | None]
    # sha256 of the token: tokens are 256 random bits, so a fast hash is safe and allows lookup.
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # ZIPパスワード, encrypted with a key derived from SECRET_KEY (services/zippassword.py); never shown.
    zip_password: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    account: Mapped[Account] = relationship(back_populates="settings")


class SettingsChange(db.Model):
    """Who changed which integration setting, and when (shown at the bottom of the tab)."""

    __tablename__ = "settings_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    actor: Mapped[str] = mapped_column(String(320))
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    summary: Mapped[str] = mapped_column(Text)


class OutboxMail(db.Model):
    """A report mail, written before it is sent; the sender thread delivers it with retries."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    PENDING = MailStatus.PENDING
    SENT = MailStatus.SENT
    FAILED = MailStatus.FAILED
    STATUS_LABELS = {PENDING: "送信待ち", SENT: "送信済み", FAILED: "送信失敗"}

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    import_id: Mapped[int | None] = mapped_column(ForeignKey("imports.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    to_addrs: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    @property
    def status_label(self) -> str:
        return self.STATUS_LABELS.get(self.status, self.status)


class DiscardNotice(db.Model):
    """The one 破棄のお知らせ of an account for one local day (services/notices.py); the unique key keeps it one."""

    __tablename__ = "discard_notices"
    __table_args__ = (UniqueConstraint("account_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    day: Mapped[dt.date]
    mail_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    discards: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuthFailure(db.Model):
    """Failed-login counters shared by web, FTP and API, so a ban covers all three (services/bans.py).

    One row per `scope` and `key`: "address" counts the failures from one remote address,
    "login" those against one login name (from anywhere), "pair" those of one address against
    one login name (the part a good login of that name from that address forgives), "next"
    when one address may try one login name (or API token) again after a failure (banned_until).
    """

    __tablename__ = "auth_failures"

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    window_start: Mapped[dt.datetime] = mapped_column(default=utcnow)
    banned_until: Mapped[dt.datetime | None]


# The result tables live in models_results.py and the later links' in models_links.py (this
# module's size); importing them here puts them in db.metadata wherever the models are loaded.
from . import models_links, models_results  # noqa: F401,E402
