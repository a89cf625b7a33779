"""The StrEnums keep the stored words: what the database, the API and the screens show stays the same."""
from __future__ import annotations

from sqlalchemy import text

from app.enums import Channel, ImportStatus, LinkStatus, MailStatus, Mode, Role
from app.extensions import db
from app.models import Import, OutboxMail, User
from app.services import admission, integration


def test_model_constants_are_the_enum_members():
    assert Import.QUEUED is ImportStatus.QUEUED and Import.REFUSED is ImportStatus.REFUSED
    assert OutboxMail.PENDING is MailStatus.PENDING and User.ADMIN is Role.ADMIN
    assert admission.Channel is Mode


def test_every_word_has_its_japanese_label():
    assert set(Import.STATUS_LABELS) == set(ImportStatus)
    assert set(Import.CHANNEL_LABELS) == set(Channel)
    assert set(integration.MODES) == set(Mode) and set(integration.STATUSES) == set(LinkStatus)
    assert {m.value for m in Mode} <= {c.value for c in Channel}  # a mode is also an import's channel


def test_the_database_stores_the_plain_words(app, make_account):
    account, _, _ = make_account()
    imp = Import(account_id=account.id, channel=Channel.MAIL, filename="20180516.csv", status=ImportStatus.REFUSED)
    db.session.add(imp)
    db.session.commit()
    stored = db.session.execute(text("SELECT channel, status FROM imports WHERE id = :id"), {"id": imp.id}).one()
    assert tuple(stored) == ("mail", "refused")
    defaults = db.session.execute(text(
        "SELECT mode, status FROM integration_settings WHERE account_id = :id"), {"id": account.id}).one()
    assert tuple(defaults) == ("mail", "active")
