"""Forms of the 設定 tabs メンバー設定, グラフ設定 and ユーザー.

The services hold the rules (they also serve the CLI); these forms carry the fields and
CSRF, `apply_errors` puts a service's Invalid onto the matching fields, `form_page` runs one
submitted form through its service and answers its add/edit page, and `performed` one
bodyless POST (delete, deactivate…).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import PasswordField, SelectField, StringField, SubmitField
from wtforms.fields import SelectChoice
from wtforms.validators import AnyOf, DataRequired, ValidationError

from ..errors import Invalid, NotFound
from ..importer.addresses import is_address
from ..models import User


def address_validator(form, field) -> None:
    """WTForms validator: the project's one e-mail address rule (app/importer/addresses.py)."""
    if field.data and field.data.strip() and not is_address(field.data):
        raise ValidationError(f"メールアドレス「{field.data.strip()}」の形式が正しくありません。")


ROLE_CHOICES = [SelectChoice(User.ADMIN, "管理者"), SelectChoice(User.VIEWER, "閲覧者")]


class NameListField(StringField):
    """Header names typed in one line, separated by commas (「売上金額, 売上高」); stored as a list.

    The service splits and checks the text; what was typed is shown again with its error.
    """

    def process_formdata(self, valuelist: list[str]) -> None:
        # Absent from the post means "unchanged" (None), not "empty".
        self.data = valuelist[0] if valuelist else None

    def process_data(self, value) -> None:
        self.data = value

    def _value(self) -> str:
        if isinstance(self.data, str):
            return self.data
        return ", ".join(self.data or [])


class MemberForm(FlaskForm):
    no = StringField("No.", render_kw={"inputmode": "numeric", "autocomplete": "off"})
    employee_id = StringField("社員ID", render_kw={"autocomplete": "off"})
    name = StringField("氏名")
    department = StringField("部署")
    email = StringField("メールアドレス", render_kw={"type": "email", "autocomplete": "off"})
    submit = SubmitField("保存する")


class MemberImportForm(FlaskForm):
    file = FileField("CSVファイル", validators=[FileRequired(message="CSVファイルを選んでください。")],
                     render_kw={"accept": ".csv,text/csv"})
    submit = SubmitField("取り込む")


class ColumnForm(FlaskForm):
    name = StringField("名前")
    unit = StringField("単位")
    position = StringField("表示順", render_kw={"inputmode": "numeric", "autocomplete": "off"})
    aliases = NameListField("別名(カンマ区切り)", render_kw={"autocomplete": "off"})
    submit = SubmitField("保存する")


class UserForm(FlaskForm):
    email = StringField(
        "メールアドレス",
        validators=[
            DataRequired(message="メールアドレスを入力してください。"),
            # The project's one address rule (app/importer/addresses.py), also checked by services/users.py.
            address_validator,
        ],
        render_kw={"type": "email", "autocomplete": "off"},
    )
    password = PasswordField(
        "パスワード",
        validators=[DataRequired(message="パスワードを入力してください。")],
        render_kw={"autocomplete": "new-password"},
    )
    # validate_choice's own message is English; AnyOf says the same thing in Japanese.
    role = SelectField(
        "権限",
        choices=ROLE_CHOICES,
        default=User.VIEWER,
        validate_choice=False,
        validators=[AnyOf([User.ADMIN, User.VIEWER], message="権限を選んでください。")],
    )
    submit = SubmitField("追加する")


class RoleForm(FlaskForm):
    """The role of another user, changed from their row of the ユーザー list."""

    role = SelectField(
        "権限",
        choices=ROLE_CHOICES,
        validate_choice=False,
        validators=[AnyOf([User.ADMIN, User.VIEWER], message="権限を選んでください。")],
    )


class ActionForm(FlaskForm):
    """A bodyless POST (deactivate, delete…): only the CSRF token."""


def apply_errors(form: FlaskForm, error: Invalid) -> bool:
    """Attach a service's Invalid to the form's fields; return False if no field matched (flash it then)."""
    matched = False
    problems = error.errors or ({error.field: [error.message]} if error.field else {})
    for name, messages in problems.items():
        field = getattr(form, name, None) if name else None
        if field is None:
            continue
        # WTForms keeps errors as a tuple until validate() ran on that field.
        field.errors = list(field.errors) + list(messages)
        matched = True
    return matched


def form_page(form: FlaskForm, save: Callable[[], Any], message: Callable[[Any], str], done: str, template: str,
              **context: Any):
    """Answer an add/edit page: for a valid submitted form run `save()`, flash `message(result)` and
    redirect to the endpoint `done`; else show `template` with the form (again).

    A service's Invalid goes onto the form's fields (or is flashed when no field matches), so
    the form is shown again with the user's input and the reason.
    """
    if form.validate_on_submit():
        try:
            result = save()
        except Invalid as error:
            if not apply_errors(form, error):
                flash(error.message, "error")
        else:
            flash(message(result), "success")
            return redirect(url_for(done))
    return render_template(template, form=form, **context)


def performed(action: Callable[[], Any], message: Callable[[Any], str]) -> None:
    """Run `action()` for a posted ActionForm (its CSRF checked) and flash `message(result)`, or the service's error."""
    if not ActionForm().validate_on_submit():
        return
    try:
        result = action()
    except (Invalid, NotFound) as error:
        flash(error.message, "error")
        return
    flash(message(result), "success")
