"""SSH公開鍵 on the 外部連携設定 tab (FTP連動): paste keys to add them, remove one by its 削除 button.

What a post did is said next to the field on the next page (like 今すぐチェック's notice), not at
the top of the page: the field is far down. Only the service's messages travel in the session;
they never repeat a pasted key.
"""
from __future__ import annotations

from flask import abort, redirect, session, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

from ..auth.access import integration_required
from ..errors import Invalid, NotFound
from ..services import sshkeys
from . import bp

# The notice of the last add or remove: {"outcome": "success" | "error", "lines": [...]}, shown once.
SSH_NOTICE = "ssh_key_notice"
FORM_TROUBLE = "送信内容を確認できませんでした。ページを読み込み直してからもう一度お試しください。"


class SshKeysForm(FlaskForm):
    ssh_keys = TextAreaField("SSH公開鍵 (authorized_keys形式)")


class SshKeyRemoveForm(FlaskForm):
    fingerprint = StringField("指紋")


def _back():
    return redirect(url_for("settings.integration") + "#field-ssh_keys")


def _notice(outcome: str, lines: list[str]) -> None:
    session[SSH_NOTICE] = {"outcome": outcome, "lines": lines}


@bp.route("/integration/ssh-keys", methods=["POST"])
@integration_required
def integration_ssh_keys_add():
    if not current_user.is_admin:
        abort(403)
    form = SshKeysForm()
    if not form.validate_on_submit():
        _notice("error", [FORM_TROUBLE])
        return _back()
    try:
        added = sshkeys.add(current_user.account_id, form.ssh_keys.data or "", actor=current_user.email)
    except Invalid as error:
        _notice("error", ["SSH公開鍵を追加できませんでした(どの鍵も追加していません)。",
                          *error.errors.get(sshkeys.FIELD, [error.message])])
        return _back()
    _notice("success", [f"SSH公開鍵を{len(added)}個追加しました。",
                        *(f"{key.key_type} {key.fingerprint} {key.comment}".rstrip() for key in added)])
    return _back()


@bp.route("/integration/ssh-keys/remove", methods=["POST"])
@integration_required
def integration_ssh_key_remove():
    if not current_user.is_admin:
        abort(403)
    form = SshKeyRemoveForm()
    if not form.validate_on_submit():
        _notice("error", [FORM_TROUBLE])
        return _back()
    try:
        key = sshkeys.remove(current_user.account_id, form.fingerprint.data or "", actor=current_user.email)
    except NotFound as error:
        _notice("error", [error.message])
        return _back()
    _notice("success", [f"SSH公開鍵を削除しました: {key.key_type} {key.fingerprint} {key.comment}".rstrip()])
    return _back()
