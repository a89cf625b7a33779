"""Fixtures shared by the screen tests (a test module may define its own `board` instead)."""
from __future__ import annotations

import pytest

from app.services import columns, members


@pytest.fixture
def board(make_account, login):
    """An account with two members and two graph columns, its admin logged in."""
    account, email, _ = make_account("acme")
    members.create_member(account.id, 1, "E001", "山田 太郎", "営業1課")
    members.create_member(account.id, 2, "E002", "髙橋 花子", "営業2課")
    columns.add_column(account.id, "売上", "円")
    columns.add_column(account.id, "件数", "件")
    login(email)
    return account
