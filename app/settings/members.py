"""設定 > メンバー設定: list, add, edit, deactivate/reactivate, CSV bulk load."""
from flask import current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from ..auth.access import admin_required, owned_or_404
from ..errors import ImportRejected, Invalid, error_total
from ..models import Member
from ..services import members as member_service
from . import bp
from .forms import ActionForm, MemberForm, MemberImportForm, form_page, performed


@bp.route("/members")
@login_required
def members():
    return render_template(
        "settings/members.html",
        tab="members",
        members=member_service.list_members(current_user.account_id),
        action_form=ActionForm(),
    )


@bp.route("/members/new", methods=["GET", "POST"])
@admin_required
def member_new():
    form = MemberForm()
    return form_page(form, lambda: member_service.create_member(current_user.account_id, **_fields(form)),
                     lambda member: f"メンバー「{member.name}」(No.{member.no})を追加しました。",
                     "settings.members", "settings/members_form.html", tab="members", member=None)


@bp.route("/members/<int:member_id>/edit", methods=["GET", "POST"])
@admin_required
def member_edit(member_id: int):
    member = owned_or_404(Member, member_id)
    form = MemberForm(obj=member)
    return form_page(form, lambda: member_service.update_member(current_user.account_id, member.id, **_fields(form)),
                     lambda _: f"メンバー「{member.name}」(No.{member.no})を更新しました。",
                     "settings.members", "settings/members_form.html", tab="members", member=member,
                     action_form=ActionForm())


@bp.route("/members/<int:member_id>/deactivate", methods=["POST"])
@admin_required
def member_deactivate(member_id: int):
    return _set_active(member_id, False)


@bp.route("/members/<int:member_id>/reactivate", methods=["POST"])
@admin_required
def member_reactivate(member_id: int):
    return _set_active(member_id, True)


@bp.route("/members/import", methods=["GET", "POST"])
@admin_required
def members_import():
    form = MemberImportForm()
    errors = None
    if form.validate_on_submit():
        upload = form.file.data
        limit = current_app.config["MAX_UPLOAD_BYTES"]
        data = upload.stream.read(limit + 1)  # one byte past the cap tells it is too big
        try:
            if len(data) > limit:
                raise Invalid(f"ファイルが大きすぎます(上限 {limit / (1024 * 1024):g} MB)。", field="file")
            inserted, updated = member_service.import_members(current_user.account_id, data)
        except Invalid as error:
            form.file.errors.append(error.message)
        except ImportRejected as rejected:
            errors = rejected.errors
            flash(f"取り込めませんでした({error_total(errors):,} 件のエラー)。何も保存していません。", "error")
        else:
            flash(f"メンバーを取り込みました(追加 {inserted} 件、更新 {updated} 件)。", "success")
            return redirect(url_for("settings.members"))
    return render_template(
        "settings/members_import.html",
        tab="members",
        form=form,
        errors=errors,
        filename=getattr(form.file.data, "filename", None),
    )


def _set_active(member_id: int, active: bool):
    member = owned_or_404(Member, member_id)
    state = "有効" if active else "無効"
    performed(lambda: member_service.set_active(current_user.account_id, member.id, active),
              lambda _: f"メンバー「{member.name}」(No.{member.no})を{state}にしました。")
    return redirect(url_for("settings.members"))


def _fields(form: MemberForm) -> dict:
    return {
        "no": form.no.data,
        "employee_id": form.employee_id.data,
        "name": form.name.data,
        "department": form.department.data,
        "email": form.email.data,
    }
