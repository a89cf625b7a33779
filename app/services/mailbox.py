"""受信方法 of メール添付連動: the built-in SMTP address, or a mailbox fetched over IMAP (servers/imapfetch.py).

This module keeps the settings (validated here, the password sealed as the ZIPパスワード is, never
shown again), the messages already handed to the mail path and each fetch's outcome with its
backoff. The fetch itself talks IMAP and lives with the other channels in servers/.

Decisions (where docs/spec.md is silent):
- No row means 内蔵SMTP: an account sees no change until someone picks IMAP.
- A blank password keeps the stored one; a changed server, user or folder forgets the messages
  recorded as fetched (their UIDs mean nothing in another mailbox).
- After a failed fetch the next one waits 1, 2, 4 … minutes, at most BACKOFF_MAX_MINUTES; a
  success, a saved change or 今すぐ取得 ends the wait.
"""
from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError

from ..errors import Invalid, NotFound
from ..extensions import db
from ..models import Account, SettingsChange, utcnow
from ..models_links import FetchedMessage, Mailbox
from . import sealed

SMTP, IMAP = "smtp", "imap"
METHODS = {SMTP: "専用アドレス(内蔵SMTP)", IMAP: "メールボックスから取得(IMAP)"}
TLS_MODES = {"implicit": "SSL/TLS(ポート993)", "starttls": "STARTTLS(ポート143)"}
DEFAULT_PORTS = {"implicit": 993, "starttls": 143}
DEFAULT_FOLDER = "INBOX"
DEFAULT_PROCESSED = "Renkei/処理済"
PURPOSE = b"renkei imap password v1"
BACKOFF_MAX_MINUTES = 30
MAX_ERROR_LENGTH = 500

LABELS = {
    "method": "受信方法",
    "host": "IMAPサーバー",
    "port": "ポート",
    "tls": "暗号化",
    "verify": "サーバー証明書を確認する",
    "username": "ユーザー名",
    "password": "パスワード",
    "folder": "取得するフォルダ",
    "processed_folder": "処理済みメールの移動先",
}
# A change of one of these points at another mailbox: the recorded UIDs are forgotten.
MAILBOX_IDENTITY = ("host", "port", "username", "folder")


@dataclass(frozen=True)
class Login:
    """What a fetch needs of the account's mailbox (the password decrypted)."""

    account_id: int
    host: str
    port: int
    tls: str
    verify: bool
    username: str
    password: str
    folder: str
    processed_folder: str


def get(account_id: int) -> Mailbox:
    """The account's 受信方法 row (a new, unsaved one with the defaults when it has none)."""
    row = db.session.scalar(select(Mailbox).where(Mailbox.account_id == account_id))
    if row is None:
        if db.session.get(Account, account_id) is None:
            raise NotFound("アカウントが見つかりません。")
        row = Mailbox(account_id=account_id, method=SMTP, host="", port=993, tls="implicit", verify=True,
                      username="", folder=DEFAULT_FOLDER, processed_folder=DEFAULT_PROCESSED, failures=0)
    return row


def password_set(row: Mailbox) -> bool:
    return bool(row.password)


def _text(value, limit: int) -> str:
    return unicodedata.normalize("NFKC", str(value or "")).strip()[:limit + 1]


def parse(changes: dict, current: Mailbox) -> dict:
    """Validate the submitted fields (None = not on the page: unchanged); raise Invalid with every error."""
    values: dict = {}
    errors: dict[str, list[str]] = {}

    def fail(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    method = changes.get("method")
    if method is not None:
        if method not in METHODS:
            fail("method", "受信方法を選択してください。")
        values["method"] = method
    for field, limit in (("host", 255), ("username", 320), ("folder", 255), ("processed_folder", 255)):
        if changes.get(field) is not None:
            # Folder names keep their characters as typed (no NFKC: 処理済 and a full-width name are different folders).
            text = str(changes[field]).strip() if "folder" in field else _text(changes[field], limit)
            if len(text) > limit:
                fail(field, f"{LABELS[field]}は{limit}文字以内にしてください。")
            elif any(not c.isprintable() for c in text):
                fail(field, f"{LABELS[field]}に制御文字は使えません。")
            values[field] = text
    if changes.get("tls") is not None:
        if changes["tls"] not in TLS_MODES:
            fail("tls", "暗号化の方式を選択してください。")
        values["tls"] = changes["tls"]
    if changes.get("port") is not None:
        text = _text(changes["port"], 5)
        tls = values.get("tls", current.tls)
        if not text:
            values["port"] = DEFAULT_PORTS.get(tls, 993)
        elif not text.isdigit() or not 1 <= int(text) <= 65535:
            fail("port", "ポートは1〜65535の数字で入力してください。")
        else:
            values["port"] = int(text)
    if changes.get("verify") is not None:
        values["verify"] = bool(changes["verify"])
    password = changes.get("password")
    if password:  # blank keeps the stored one
        password = str(password).strip("\r\n")
        if len(password) > 256 or any(not c.isprintable() for c in password):
            fail("password", "パスワードは256文字以内で、制御文字を含めないでください。")
        values["password"] = password
    merged = {name: values.get(name, getattr(current, name)) for name in LABELS if name != "password"}
    if merged["method"] == IMAP:
        for field in ("host", "username"):
            if not merged[field]:
                fail(field, f"メールボックスから取得する場合は{LABELS[field]}を入力してください。")
        if not (values.get("password") or current.password):
            fail("password", "メールボックスから取得する場合はパスワードを入力してください。")
        merged["folder"] = merged["folder"] or DEFAULT_FOLDER
        merged["processed_folder"] = merged["processed_folder"] or DEFAULT_PROCESSED
        values["folder"], values["processed_folder"] = merged["folder"], merged["processed_folder"]
        if merged["folder"] == merged["processed_folder"]:
            fail("processed_folder", "処理済みメールの移動先には、取得するフォルダと別のフォルダを指定してください。")
    if errors:
        raise Invalid(next(iter(errors.values()))[0], errors=errors)
    return values


def save(account_id: int, values: dict, actor: str) -> list[str]:
    """Store parsed values (parse()) and record the change (commits); return the labels of what changed."""
    row = get(account_id)
    changed: list[str] = []
    for name, value in values.items():
        if name == "password":
            row.password = sealed.seal(value, PURPOSE)
            changed.append(LABELS[name])
        elif getattr(row, name) != value:
            if name in MAILBOX_IDENTITY and row.id is not None:
                db.session.execute(delete(FetchedMessage).where(FetchedMessage.account_id == account_id))
            setattr(row, name, value)
            changed.append(LABELS[name])
    if not changed:
        return []
    row.retry_at = None  # a corrected setting is tried at the next minute, not after the backoff
    row.failures = 0
    db.session.add(row)
    db.session.add(SettingsChange(account_id=account_id, actor=actor, summary=f"{'、'.join(changed)}を変更しました"))
    db.session.commit()
    return changed


def login(account_id: int) -> Login | None:
    """The account's mailbox login, or None when its 受信方法 is not IMAP or its password is unreadable."""
    row = db.session.scalar(select(Mailbox).where(Mailbox.account_id == account_id))
    if row is None or row.method != IMAP:
        return None
    password = sealed.unseal(row.password, PURPOSE)
    if password is None:
        record_failure(account_id, "保存されているパスワードを読み取れません(SECRET_KEYが変わった可能性があります)。"
                                   "パスワードを入力し直してください。", utcnow())
        return None
    return Login(account_id=account_id, host=row.host, port=row.port, tls=row.tls, verify=row.verify,
                 username=row.username, password=password, folder=row.folder or DEFAULT_FOLDER,
                 processed_folder=row.processed_folder or DEFAULT_PROCESSED)


def due(now: dt.datetime) -> list[int]:
    """Ids of the accounts whose mailbox is fetched now: IMAP, 外部連携 on, メール添付連動, not backing off."""
    from ..models import IntegrationSettings

    rows = db.session.execute(
        select(Mailbox.account_id, Mailbox.retry_at)
        .join(Account, Account.id == Mailbox.account_id)
        .join(IntegrationSettings, IntegrationSettings.account_id == Mailbox.account_id)
        .where(Mailbox.method == IMAP, Account.integration_enabled.is_(True), IntegrationSettings.mode == "mail")
        .order_by(Mailbox.account_id)
    ).all()
    naive = now.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return [account_id for account_id, retry_at in rows if retry_at is None or retry_at <= naive]


def forget_moved(account_id: int, uidvalidity: int, lowest_uid: int) -> None:
    """Forget (commits) the records no message in the folder can match any more.

    UIDs only grow and are never reused within one UIDVALIDITY, and a message put back into
    the folder gets a new one: a UID below the folder's lowest, or of an earlier UIDVALIDITY,
    is never seen again. So the record holds about as many rows as the folder holds messages.
    """
    db.session.execute(delete(FetchedMessage).where(
        FetchedMessage.account_id == account_id,
        or_(FetchedMessage.uidvalidity != uidvalidity, FetchedMessage.uid < lowest_uid)))
    db.session.commit()


def fetched_uids(account_id: int, uidvalidity: int) -> set[int]:
    """The UIDs of this mailbox generation already handed to the mail path (forget_moved keeps them few)."""
    return set(db.session.scalars(select(FetchedMessage.uid).where(
        FetchedMessage.account_id == account_id, FetchedMessage.uidvalidity == uidvalidity)))


def record_fetched(account_id: int, uidvalidity: int, uid: int) -> None:
    """Record durably (commits) that the message was handed over: it is never imported again."""
    db.session.add(FetchedMessage(account_id=account_id, uidvalidity=uidvalidity, uid=uid))
    try:
        db.session.commit()
    except IntegrityError:  # another fetch of the same mailbox recorded it first
        db.session.rollback()


def record_success(account_id: int, now: dt.datetime) -> None:
    row = get(account_id)
    row.last_success_at = _naive(now)
    row.failures, row.retry_at = 0, None
    db.session.commit()


def record_failure(account_id: int, message: str, now: dt.datetime) -> dt.datetime:
    """Store the error for the tab and back off; return when the next fetch may run (UTC, naive)."""
    row = get(account_id)
    row.last_error = message[:MAX_ERROR_LENGTH]
    row.last_error_at = _naive(now)
    row.failures = (row.failures or 0) + 1
    row.retry_at = _naive(now) + dt.timedelta(minutes=min(2 ** (row.failures - 1), BACKOFF_MAX_MINUTES))
    db.session.add(row)
    db.session.commit()
    return row.retry_at


def fetch_now(account_id: int):
    """今すぐ取得 / `flask integration fetch-now`: fetch the account's mailbox in this process (a FetchResult)."""
    from flask import current_app

    from servers import imapfetch  # the fetch talks IMAP: it lives with the channels

    from ..models import IntegrationSettings

    row = get(account_id)
    if row.method != IMAP:
        raise Invalid("受信方法が「メールボックスから取得(IMAP)」ではありません。", field="method")
    settings = db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))
    account = db.session.get(Account, account_id)
    if settings is None or settings.mode != "mail" or not account.integration_enabled:
        # Fetching for another mode would discard (and move) every message of the mailbox.
        raise Invalid("外部連携設定が有効で、データ連動方式が「メール添付連動」のときだけ取得できます。", field="method")
    return imapfetch.fetch_once(current_app._get_current_object(), account_id)


def _naive(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value
