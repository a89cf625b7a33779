"""Accounts (tenants): creation with their first admin and settings, integration on/off."""
from __future__ import annotations

import re
import secrets

from sqlalchemy import select

from ..errors import Invalid, NotFound
from ..extensions import db
from ..models import Account, IntegrationSettings, User
from . import users

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def label(account_id: int) -> str:
    """The account's slug for log lines ("#id" when it is gone)."""
    slug = db.session.scalar(select(Account.slug).where(Account.id == account_id))
    return slug or f"#{account_id}"


def new_inbound_local() -> str:
    """An unguessable local part for the account's 送信先メールアドレス (80 random bits)."""
    return "sp-" + secrets.token_hex(10)


def create_account(slug: str, name: str, admin_email: str, admin_password: str | None = None) -> tuple[Account, str]:
    """Create an account, its settings row and its first admin; return the account and the admin's password."""
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug):
        raise Invalid(f"スラッグ「{slug}」は英小文字・数字・ハイフンの2〜63文字にしてください。", field="slug")
    if not name.strip():
        raise Invalid("アカウント名を入力してください。", field="name")
    if db.session.scalar(db.select(Account.id).where(Account.slug == slug)):
        raise Invalid(f"スラッグ「{slug}」のアカウントは既にあります。", field="slug")
    password = admin_password or secrets.token_urlsafe(12)
    account = Account(slug=slug, name=name.strip())
    account.settings = IntegrationSettings(inbound_local=new_inbound_local(), ftp_username=slug)
    db.session.add(account)
    db.session.flush()
    try:
        users.create_user(account.id, admin_email, password, User.ADMIN)
    except Invalid:
        db.session.rollback()
        raise
    return account, password


def get_by_slug(slug: str) -> Account:
    """Return the account with this slug or raise NotFound."""
    account = db.session.scalar(db.select(Account).where(Account.slug == slug.strip().lower()))
    if account is None:
        raise NotFound(f'アカウント "{slug}" はありません (no account with slug "{slug}")')
    return account


def list_accounts() -> list[Account]:
    return list(db.session.scalars(db.select(Account).order_by(Account.slug)))


def set_integration_enabled(slug: str, enabled: bool) -> Account:
    """Show or hide the 外部連携設定 tab (and open or close the channels) for the account."""
    account = get_by_slug(slug)
    account.integration_enabled = enabled
    db.session.commit()
    return account
