"""Access helpers: every lookup is scoped to the signed-in user's account."""
from __future__ import annotations

from functools import wraps
from typing import TypeVar

from flask import abort
from flask_login import current_user, login_required

from ..extensions import db

T = TypeVar("T")


def admin_required(view):
    """Allow the view only to 管理者 of the account; 閲覧者 get 403."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def integration_required(view):
    """Answer 404 unless the operator enabled integration for the user's account (docs/spec.md section 1)."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.account.integration_enabled:
            abort(404)
        return view(*args, **kwargs)

    return wrapped


# The largest id an id column can hold: they are INTEGER, 32 bits on PostgreSQL, which refuses
# (instead of finding nothing) a bigger number in `id = …`. A bigger id from a URL is a 404.
MAX_ROW_ID = 2**31 - 1


def owned_or_404(model: type[T], object_id: int) -> T:
    """Load `model` by id only if it belongs to the current user's account; otherwise 404."""
    if not 0 < object_id <= MAX_ROW_ID:
        abort(404)
    obj = db.session.get(model, object_id)
    if obj is None or getattr(obj, "account_id", None) != current_user.account_id:
        abort(404)
    return obj
