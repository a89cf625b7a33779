"""ZIPパスワード on the 外部連携設定 tab: set, replace or remove it; the page only ever says 「設定済み」."""
from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import PasswordField

from ..auth.access import admin_required, integration_required
from ..errors import Invalid
from ..services import zippassword
from . import bp
from .integration_forms import FORM_TROUBLE


class ZipPasswordForm(FlaskForm):
    """The password field (never filled in by the page) and which button was pressed."""

    zip_password = PasswordField("ZIPパスワード")


@bp.route("/integration/zip-password", methods=["POST"])
@integration_required
@admin_required
def integration_zip_password():
    form = ZipPasswordForm()
    target = url_for("settings.integration") + "#zip-section"
    if not form.validate_on_submit():
        flash(FORM_TROUBLE, "error")
        return redirect(target)
    if request.form.get("action") == "remove":
        zippassword.clear(current_user.account_id, actor=current_user.email)
        flash("ZIPパスワードを削除しました。パスワード付きZIPは取り込めなくなります。", "success")
        return redirect(target)
    try:
        zippassword.set_password(current_user.account_id, form.zip_password.data or "", actor=current_user.email)
    except Invalid as error:
        flash(error.message, "error")
        return redirect(target)
    flash("ZIPパスワードを保存しました(暗号化して保存し、画面には表示しません)。", "success")
    return redirect(target)
