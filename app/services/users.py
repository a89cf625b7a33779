"""Users of an account: creation, authentication, password change and reset, roles, sign-out everywhere, removal.

The last 管理者 of an account stays one: no service here removes or demotes them, so the web
page, the CLI and any other caller get the same refusal (LAST_ADMIN_*).
"""
from __future__ import annotations

import secrets
from functools import cache

from werkzeug.security import check_password_hash, generate_password_hash

from ..errors import Invalid, NotFound
from ..extensions import db
from ..importer.addresses import InvalidAddress, normalize_address
from ..models import Account, User

LAST_ADMIN_REMOVE = "最後の管理者は削除できません。先に別のユーザーを管理者にしてください。"
LAST_ADMIN_DEMOTE = "最後の管理者は閲覧者に変更できません。先に別のユーザーを管理者にしてください。"


@cache
def _dummy_hash() -> str:
    """A valid hash to compare against when the email is unknown, so timing does not reveal accounts.

    Made on first use, not at import: scrypt costs ~0.3 s, which every `flask` command would pay.
    """
    return generate_password_hash("renkei-dummy-password")


def authenticate(email: str, password: str) -> User | None:
    """Return the user when email and password match, else None (in constant-ish time)."""
    user = db.session.scalar(db.select(User).where(User.email == email.strip().lower()))
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def create_user(account_id: int, email: str, password: str, role: str = User.ADMIN) -> User:
    """Add a login to the account; emails are unique across the server (without saying where one is used)."""
    try:
        email = normalize_address(email).lower()
    except InvalidAddress:
        raise Invalid(f"メールアドレス「{email}」の形式が正しくありません。", field="email") from None
    if role not in User.ROLE_LABELS:
        raise Invalid("権限が正しくありません。", field="role")
    if len(password) < 8:
        raise Invalid("パスワードは8文字以上にしてください。", field="password")
    taken_by = db.session.scalar(db.select(User.account_id).where(User.email == email))
    if taken_by == account_id:
        raise Invalid(f"メールアドレス {email} は既にこのアカウントのユーザーです。", field="email")
    if taken_by is not None:
        # Logins are unique server-wide, but whether another account has this one is not this account's business.
        raise Invalid(f"メールアドレス {email} は使用できません。別のメールアドレスを指定してください。", field="email")
    user = User(account_id=account_id, email=email, password_hash=generate_password_hash(password), role=role)
    db.session.add(user)
    db.session.commit()
    return user


def list_users(account_id: int) -> list[User]:
    """Users of the account, admins first."""
    return list(
        db.session.scalars(db.select(User).where(User.account_id == account_id).order_by(User.role, User.email))
    )


def change_password(user: User, current: str, new: str) -> None:
    """Replace the user's password after checking the current one."""
    if not check_password_hash(user.password_hash, current):
        raise Invalid("現在のパスワードが正しくありません。", field="current")
    if len(new) < 8:
        raise Invalid("パスワードは8文字以上にしてください。", field="new")
    user.password_hash = generate_password_hash(new)  # ends the user's sessions (User.session_version)
    db.session.commit()


def end_sessions(user: User) -> None:
    """Sign the user out everywhere: every session made before stops working."""
    user.end_sessions()
    db.session.commit()


def get_user(account_id: int, user_id: int) -> User:
    """Return the account's user or raise NotFound (never another account's)."""
    user = db.session.get(User, user_id)
    if user is None or user.account_id != account_id:
        raise NotFound("ユーザーが見つかりません。")
    return user


def find_by_email(email: str) -> User:
    """Return the user who logs in with `email` (any account; for the operator's CLI) or raise NotFound."""
    user = db.session.scalar(db.select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"メールアドレス {email.strip()} のユーザーはいません。")
    return user


def reset_password(user: User) -> str:
    """Give the user a new random password and end their sessions; return it (shown once, stored only hashed)."""
    password = secrets.token_urlsafe(12)
    user.password_hash = generate_password_hash(password)  # ends the user's sessions (User.session_version)
    db.session.commit()
    return password


def set_role(account_id: int, user_id: int, role: str) -> User:
    """Change a user's role (ending their sessions); the last admin of the account stays admin."""
    if role not in User.ROLE_LABELS:
        raise Invalid("権限が正しくありません。", field="role")
    user = get_user(account_id, user_id)
    if user.role == role:
        return user
    _change_keeping_an_admin(account_id, lambda: setattr(user, "role", role), LAST_ADMIN_DEMOTE)
    return user


def remove_user(account_id: int, user_id: int, acting_user_id: int | None = None) -> None:
    """Delete a user of the account; an admin cannot remove themself or the last admin."""
    user = get_user(account_id, user_id)
    if user.id == acting_user_id:
        raise Invalid("自分自身は削除できません。")
    _change_keeping_an_admin(account_id, lambda: db.session.delete(user), LAST_ADMIN_REMOVE)


def _change_keeping_an_admin(account_id: int, change, refusal: str) -> None:
    """Make `change` and commit it, unless the account would be left without an admin (Invalid, rolled back).

    The change is written first and the admins counted after it, in one transaction: on SQLite
    the write holds the database's write lock, on PostgreSQL the account row is locked first,
    so two admins demoting each other at once cannot both pass.
    """
    try:
        db.session.execute(db.select(Account.id).where(Account.id == account_id).with_for_update())
        change()
        db.session.flush()
        admins = db.session.scalar(
            db.select(db.func.count(User.id)).where(User.account_id == account_id, User.role == User.ADMIN)
        )
        if not admins:
            raise Invalid(refusal)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
