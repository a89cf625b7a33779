"""Fixtures shared by the screen tests (a test module may define its own `board` instead)."""
from __future__ import annotations

import pytest


@pytest.fixture
def board(make_account, login):
    """An account with two members and two graph columns, its admin logged in (the Account row)."""
    made = make_account("acme", members=[(1, "E001", "山田 太郎", "営業1課"), (2, "E002", "髙橋 花子", "営業2課")],
                        columns=[("売上", "円"), ("件数", "件")])
    login(made.email)
    return made.account
