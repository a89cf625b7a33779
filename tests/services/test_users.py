"""Users' service rules against a real database: the last admin stays, also when two admins act at once."""
from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from app.errors import Invalid
from app.extensions import db
from app.models import User
from app.services import users as user_service
from tests.fixtures.waiting import at_once


def admins(account_id: int) -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(db.select(User.email).where(User.account_id == account_id,
                                                               User.role == User.ADMIN)))


def test_two_admins_demoting_each_other_at_once_leave_one_admin(app, make_account):
    acc = make_account("acme")
    second = user_service.create_user(acc.id, "second@acme.example", "password-123", User.ADMIN)
    first_id = db.session.scalar(db.select(User.id).where(User.email == acc.email))
    targets = {"a": second.id, "b": first_id}
    outcome: dict[str, str] = {}

    def demote(name: str) -> None:
        try:
            user_service.set_role(acc.id, targets[name], User.VIEWER)
            outcome[name] = "demoted"
        except Invalid as error:
            outcome[name] = error.message
        except OperationalError as error:  # SQLite may refuse the second writer outright; nothing is lost then
            outcome[name] = type(error).__name__

    at_once(app, demote, list(targets))
    assert len(admins(acc.id)) == 1, outcome
    assert list(outcome.values()).count("demoted") == 1, outcome


def test_removing_and_demoting_stop_at_the_last_admin(app, make_account):
    acc = make_account("acme")
    viewer = user_service.create_user(acc.id, "viewer@acme.example", "password-123", User.VIEWER)
    me = db.session.scalar(db.select(User.id).where(User.email == acc.email))
    with pytest.raises(Invalid, match="最後の管理者は閲覧者に変更できません"):
        user_service.set_role(acc.id, me, User.VIEWER)
    with pytest.raises(Invalid, match="最後の管理者は削除できません"):
        user_service.remove_user(acc.id, me)
    assert admins(acc.id) == [acc.email]
    user_service.set_role(acc.id, viewer.id, User.VIEWER)  # no change, no refusal
    assert admins(acc.id) == [acc.email]
