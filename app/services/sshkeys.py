"""PLACEHOLDER until branch sftp-keys is merged: the SSH public keys of an account (none yet)."""
from __future__ import annotations


def public_keys(account_id: int) -> list[str]:
    """The account's SSH public keys as authorized_keys lines."""
    return []
