"""The demo account run.py creates on a database without accounts, so a first start can be tried at once."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask
from sqlalchemy.exc import IntegrityError

from app.errors import Invalid
from app.extensions import db

from . import accounts, columns, integration, members

log = logging.getLogger(__name__)

DEMO_SLUG = "demo"
DEMO_NAME = "デモ株式会社"
DEMO_ADMIN = "admin@demo.example"
DEMO_MEMBERS = [
    # (No., 社員ID, 氏名, 部署)
    (1, "E001", "髙橋 一郎", "営業一部"),
    (2, "E002", "佐藤 花子", "営業一部"),
    (3, "E003", "鈴木 次郎", "営業二部"),
    (4, "E004", "田中 美咲", "営業二部"),
]
DEMO_COLUMNS = [("売上", "円"), ("粗利", "円"), ("件数", "件")]


@dataclass
class DemoAccount:
    """What the operator needs to try the demo account; passwords are known only right after creation."""

    email: str
    password: str
    inbound_address: str
    ftp_username: str
    ftp_password: str


def create_demo_account(app: Flask) -> DemoAccount | None:
    """On a database without accounts, create the demo account; return its logins, else None."""
    with app.app_context():
        if accounts.list_accounts():
            return None
        try:
            account, password = accounts.create_account(DEMO_SLUG, DEMO_NAME, DEMO_ADMIN)
        except (Invalid, IntegrityError):
            # Another process (`--only` on a shared database) created it a moment earlier.
            db.session.rollback()
            log.info("demo account already created by another process")
            return None
        accounts.set_integration_enabled(DEMO_SLUG, True)
        for no, employee_id, name, department in DEMO_MEMBERS:
            members.create_member(account.id, no, employee_id, name, department)
        for name, unit in DEMO_COLUMNS:
            columns.add_column(account.id, name, unit)
        # The admin receives the error reports and may send CSVs by mail (both lists are required in mail mode).
        integration.update_settings(account.id, {"error_to": [DEMO_ADMIN], "senders": [DEMO_ADMIN]}, "run.py")
        ftp_password = integration.issue_ftp_password(account.id, "run.py")
        settings = account.settings
        log.info("demo account created slug=%s members=%d columns=%d", DEMO_SLUG, len(DEMO_MEMBERS), len(DEMO_COLUMNS))
        return DemoAccount(
            email=DEMO_ADMIN,
            password=password,
            inbound_address=integration.inbound_address(settings),
            ftp_username=settings.ftp_username,
            ftp_password=ftp_password,
        )
