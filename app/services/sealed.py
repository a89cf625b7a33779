"""Secrets the server must read back (ZIPパスワード, IMAP password), encrypted with a key derived from SECRET_KEY.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under a key made from SECRET_KEY by
HKDF-SHA256 with the secret's purpose as its info, so each purpose has its own key and none is
the session-signing key itself. A secret that cannot be decrypted any more (SECRET_KEY changed)
reads as None: the caller treats it as not set.
"""
from __future__ import annotations

import base64

from flask import current_app


def _fernet(purpose: bytes):
    """The Fernet of `purpose`. cryptography is imported here, by the first secret sealed or read,
    not by every process that imports this module (about 7 MiB and its start-up time)."""
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode() if isinstance(secret, str) else bytes(secret)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


def seal(text: str, purpose: bytes) -> str:
    """`text` encrypted for `purpose` (ASCII, to store in a text column)."""
    return _fernet(purpose).encrypt(text.encode("utf-8")).decode("ascii")


def unseal(token: str | None, purpose: bytes) -> str | None:
    """The text sealed for `purpose`, or None when there is none or it cannot be decrypted."""
    if not token:
        return None
    from cryptography.fernet import InvalidToken

    try:
        return _fernet(purpose).decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError):
        return None
