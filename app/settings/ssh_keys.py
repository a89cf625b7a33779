"""SSH公開鍵 on the 外部連携設定 tab (FTP連動): paste keys to add them, remove one by its 削除 button.

What a post did is said next to the field on the next page (like 今すぐチェック's notice), not at
the top of the page: the field is far down. Only the service's messages travel in the session;
they never repeat a pasted key.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import redirect, session, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

from ..auth.access import admin_required, integration_required
from ..errors import Invalid, NotFound, RenkeiError
from ..services import sshkeys
from . import bp
from .integration_forms import FORM_TROUBLE

# The notice of the last add or remove: {"outcome": "success" | "error", "lines": [...]}, shown once.
SSH_NOTICE = "ssh_key_notice"


class SshKeysForm(FlaskForm):
    ssh_keys = TextAreaField("SSH公開鍵 (authorized_keys形式)")


class SshKeyRemoveForm(FlaskForm):
    fingerprint = StringField("指紋")


def _posted(form: FlaskForm, action: Callable[[FlaskForm], Any], success: Callable[[Any], list[str]],
            failure: Callable[[RenkeiError], list[str]], errors: type[RenkeiError]):
    """Run `action(form)` for a valid post; keep the notice of what it did (or of its `errors`) and go back to the field."""
    if not form.validate_on_submit():
        outcome, lines = "error", [FORM_TROUBLE]
    else:
        try:
            outcome, lines = "success", success(action(form))
        except errors as error:
            outcome, lines = "error", failure(error)
    session[SSH_NOTICE] = {"outcome": outcome, "lines": lines}
    return redirect(url_for("settings.integration") + "#field-ssh_keys")


@bp.route("/integration/ssh-keys", methods=["POST"])
@integration_required
@admin_required
def integration_ssh_keys_add():
    return _posted(
        SshKeysForm(),
        lambda form: sshkeys.add(current_user.account_id, form.ssh_keys.data or "", actor=current_user.email),
        lambda added: [f"SSH公開鍵を{len(added)}個追加しました。",
                       *(f"{key.key_type} {key.fingerprint} {key.comment}".rstrip() for key in added)],
        lambda error: ["SSH公開鍵を追加できませんでした(どの鍵も追加していません)。",
                       *error.errors.get(sshkeys.FIELD, [error.message])],
        errors=Invalid,
    )


@bp.route("/integration/ssh-keys/remove", methods=["POST"])
@integration_required
@admin_required
def integration_ssh_key_remove():
    return _posted(
        SshKeyRemoveForm(),
        lambda form: sshkeys.remove(current_user.account_id, form.fingerprint.data or "", actor=current_user.email),
        lambda key: [f"SSH公開鍵を削除しました: {key.key_type} {key.fingerprint} {key.comment}".rstrip()],
        lambda error: [error.message],
        errors=NotFound,
    )
