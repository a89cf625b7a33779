"""Forms of the 取込 area: history filters (GET, no CSRF), manual upload, re-import button."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, DateField, SelectField, StringField
from wtforms.fields import SelectChoice
from wtforms.validators import Length, Optional, ValidationError

from ..importer.filename import RECEIVED_ENDINGS
from ..models import Import


def _choices(labels: dict[str, str]) -> list[SelectChoice]:
    """Return the options of a filter: すべて, then one per label."""
    return [SelectChoice("", "すべて")] + [SelectChoice(value, label) for value, label in labels.items()]


class HistoryFilterForm(FlaskForm):
    """Filters of 取込履歴, read from the query string so a filtered list can be bookmarked."""

    class Meta:
        # A GET form changes nothing, and a token would make every bookmarked URL expire.
        csrf = False

    status = SelectField(
        "状態", choices=_choices(Import.STATUS_LABELS), validators=[Optional()], default=""
    )
    channel = SelectField(
        "経路", choices=_choices(Import.CHANNEL_LABELS), validators=[Optional()], default=""
    )
    filename = StringField("ファイル名", validators=[Optional(), Length(max=255)])
    date_from = DateField("受信日(から)", validators=[Optional()])
    date_to = DateField("受信日(まで)", validators=[Optional()])

    def validate_date_to(self, field) -> None:
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("終了日は開始日以降にしてください。")


class UploadForm(FlaskForm):
    """手動取込: one results file (CSV or a workbook), optionally only checked (検証のみ) without storing anything."""

    file = FileField(
        "ファイル(CSV・Excel・ODS)",
        validators=[FileRequired("ファイルを選択してください。")],
        # The accepted endings are filename.py's one list (the browser's picker only; the server checks the name).
        render_kw={"accept": ",".join([*RECEIVED_ENDINGS, "text/csv"])},
    )
    dry_run = BooleanField("検証のみ(取り込まずにエラーだけを確認する)")


class ReimportForm(FlaskForm):
    """The 再取込 button: no fields, only the CSRF token."""
