"""ZIPパスワード of an account: stored encrypted with a key derived from SECRET_KEY, never shown again.

Encrypted by services/sealed.py under this module's purpose (INFO). A password that cannot be decrypted any more (SECRET_KEY changed) counts as none set: the
report then says the archive is encrypted and no password is set, and a new one can be saved.
"""
from __future__ import annotations

import logging
import unicodedata

from sqlalchemy import select

from ..errors import Invalid
from ..extensions import db
from ..models import IntegrationSettings, SettingsChange
from . import accounts, sealed

log = logging.getLogger(__name__)

MAX_LENGTH = 128
INFO = b"renkei zip password v1"


def _settings(account_id: int) -> IntegrationSettings:
    settings = db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))
    if settings is None:
        settings = IntegrationSettings(account_id=account_id)
        db.session.add(settings)
    return settings


def is_set(account_id: int) -> bool:
    """Whether the account has a ZIPパスワード (the screens show 「設定済み」, never the password)."""
    settings = db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))
    return bool(settings and settings.zip_password)


def set_password(account_id: int, password: str, actor: str) -> None:
    """Encrypt and store the account's ZIPパスワード, replacing any earlier one (commits)."""
    password = password.strip("\r\n")
    if not password:
        raise Invalid("ZIPパスワードを入力してください。", field="zip_password")
    if len(password) > MAX_LENGTH:
        raise Invalid(f"ZIPパスワードは{MAX_LENGTH}文字以内にしてください。", field="zip_password")
    if any(not c.isprintable() for c in password):
        raise Invalid("ZIPパスワードに制御文字は使えません。", field="zip_password")
    settings = _settings(account_id)
    settings.zip_password = sealed.seal(password, INFO)
    db.session.add(SettingsChange(account_id=account_id, actor=actor, summary="ZIPパスワードを設定しました"))
    db.session.commit()


def clear(account_id: int, actor: str) -> None:
    """Remove the account's ZIPパスワード (commits)."""
    settings = _settings(account_id)
    settings.zip_password = None
    db.session.add(SettingsChange(account_id=account_id, actor=actor, summary="ZIPパスワードを削除しました"))
    db.session.commit()


def candidates(account_id: int) -> list[bytes]:
    """The stored password as the bytes a zip maker may have used: UTF-8, then cp932 (Japanese Windows)."""
    settings = db.session.scalar(select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))
    if settings is None or not settings.zip_password:
        return []
    text = sealed.unseal(settings.zip_password, INFO)
    if text is None:
        log.warning("the ZIP password of account=%s cannot be decrypted (SECRET_KEY changed?)", accounts.label(account_id))
        return []
    out: list[bytes] = []
    for form in (text, unicodedata.normalize("NFC", text)):
        for codec in ("utf-8", "cp932"):
            try:
                encoded = form.encode(codec)
            except UnicodeEncodeError:
                continue
            if encoded not in out:
                out.append(encoded)
    return out
