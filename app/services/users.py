"""Users of an account: creation, authentication, password change, sign-out everywhere, removal."""
from __future__ import annotations

from functools import cache

from werkzeug.security import check_password_hash, generate_password_hash

from ..errors import Invalid, NotFound
from ..extensions import db
from ..importer.addresses import InvalidAddress, normalize_address
from ..models import User

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


def remove_user(account_id: int, user_id: int, acting_user_id: int) -> None:
    """Delete a user of the account; an admin cannot remove themself or the last admin."""
    user = db.session.get(User, user_id)
    if user is None or user.account_id != account_id:
        raise NotFound("ユーザーが見つかりません。")
    if user.id == acting_user_id:
        raise Invalid("自分自身は削除できません。")
    if user.is_admin:
        admins = db.session.scalar(
            db.select(db.func.count(User.id)).where(User.account_id == account_id, User.role == User.ADMIN)
        )
        if admins <= 1:
            raise Invalid("最後の管理者は削除できません。")
    db.session.delete(user)
    db.session.commit()
