"""設定 > ユーザー: the logins of the account; 管理者 add and remove them, change their role, reset their password."""
from flask import flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from ..auth import sessions
from ..auth.access import admin_required, owned_or_404
from ..errors import Invalid, NotFound
from ..models import User
from ..services import users as user_service
from . import bp
from .forms import ActionForm, RoleForm, UserForm, form_page, performed


@bp.route("/users")
@login_required
def users():
    return render_template(
        "settings/users.html", tab="users", users=user_service.list_users(current_user.account_id),
        action_form=ActionForm(), roles=User.ROLE_LABELS,
    )


@bp.route("/users/new", methods=["GET", "POST"])
@admin_required
def user_new():
    form = UserForm()
    return form_page(form, lambda: user_service.create_user(current_user.account_id, form.email.data, form.password.data,
                                                            form.role.data),
                     lambda user: f"ユーザー {user.email}({user.role_label})を追加しました。",
                     "settings.users", "settings/users_form.html", tab="users")


@bp.route("/users/<int:user_id>/role", methods=["POST"])
@admin_required
def user_role(user_id: int):
    user = owned_or_404(User, user_id)
    form = RoleForm()
    if form.validate_on_submit():
        email, own = user.email, user.id == current_user.id
        try:
            user = user_service.set_role(current_user.account_id, user.id, form.role.data)
        except (Invalid, NotFound) as error:
            flash(error.message, "error")
        else:
            if own:
                # The new role ended every session of the user; this browser goes on in a new one.
                sessions.begin(user)
            flash(f"ユーザー {email} の権限を{user.role_label}にしました。", "success")
    else:
        flash(next(iter(form.role.errors), "送信内容を確認できませんでした。もう一度操作してください。"), "error")
    return redirect(url_for("settings.users"))


@bp.route("/users/<int:user_id>/reset-password", methods=["POST"])
@admin_required
def user_reset_password(user_id: int):
    user = owned_or_404(User, user_id)
    if not ActionForm().validate_on_submit():
        flash("送信内容を確認できませんでした。もう一度操作してください。", "error")
        return redirect(url_for("settings.users"))
    if user.id == current_user.id:
        flash("自分のパスワードは「パスワード変更」で変更してください。", "error")
        return redirect(url_for("settings.users"))
    password = user_service.reset_password(user)
    # Shown in this answer only: never flashed (the flash lives in the session cookie) nor kept.
    response = render_template("settings/users_password.html", tab="users", user=user, password=password)
    return response, 200, {"Cache-Control": "no-store"}


@bp.route("/users/<int:user_id>/delete", methods=["POST"])
@admin_required
def user_delete(user_id: int):
    user = owned_or_404(User, user_id)
    email = user.email
    performed(lambda: user_service.remove_user(current_user.account_id, user.id, current_user.id),
              lambda _: f"ユーザー {email} を削除しました。")
    return redirect(url_for("settings.users"))
