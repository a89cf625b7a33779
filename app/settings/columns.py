"""設定 > グラフ設定: the graph columns (name, unit, 表示順, 別名): list, add, edit, reorder, delete."""
from flask import redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth.access import admin_required, owned_or_404
from ..models import GraphColumn
from ..services import columns as column_service
from . import bp
from .forms import ActionForm, ColumnForm, form_page, performed


@bp.route("/columns")
@login_required
def columns():
    return render_template(
        "settings/columns.html",
        tab="columns",
        columns=column_service.list_columns(current_user.account_id),
        action_form=ActionForm(),
    )


@bp.route("/columns/new", methods=["GET", "POST"])
@admin_required
def column_new():
    form = ColumnForm()
    return form_page(form, lambda: column_service.add_column(current_user.account_id, form.name.data, form.unit.data,
                                                             form.position.data or None, form.aliases.data),
                     lambda column: f"グラフ列「{column.name}」を追加しました。",
                     "settings.columns", "settings/columns_form.html", tab="columns", column=None)


@bp.route("/columns/<int:column_id>/edit", methods=["GET", "POST"])
@admin_required
def column_edit(column_id: int):
    column = owned_or_404(GraphColumn, column_id)
    form = ColumnForm(obj=column)
    return form_page(form, lambda: column_service.update_column(current_user.account_id, column.id, form.name.data,
                                                                form.unit.data, form.position.data or None,
                                                                form.aliases.data),
                     lambda _: f"グラフ列「{column.name}」を更新しました。",
                     "settings.columns", "settings/columns_form.html", tab="columns", column=column,
                     action_form=ActionForm())


@bp.route("/columns/<int:column_id>/delete", methods=["POST"])
@admin_required
def column_delete(column_id: int):
    column = owned_or_404(GraphColumn, column_id)
    name = column.name
    performed(lambda: column_service.delete_column(current_user.account_id, column.id),
              lambda _: f"グラフ列「{name}」を削除しました。")
    return redirect(url_for("settings.columns"))


@bp.route("/columns/order", methods=["POST"])
@admin_required
def columns_order():
    # One number input per row, named position-<id>; ids come from the browser, so the service checks ownership.
    positions = {
        key.removeprefix("position-"): value
        for key, value in request.form.items()
        if key.startswith("position-")
    }
    performed(lambda: column_service.reorder_columns(current_user.account_id, positions), lambda _: "表示順を保存しました。")
    return redirect(url_for("settings.columns"))
