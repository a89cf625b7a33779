"""Forms of the 外部連携設定 tab. They parse and render only: app.services.integration validates."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    Field,
    HiddenField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.widgets import TextArea

from ..services import integration as service
from ..services import mailbox
from .forms import NameListField

# What a POST of this tab says when its CSRF token (or form) does not check: the page was open too long.
FORM_TROUBLE = "送信内容を確認できませんでした。ページを読み込み直してからもう一度お試しください。"


class AddressListField(Field):
    """Addresses from several inputs of one name (JS rows) or one textarea (no JS); keeps what was typed."""

    widget = TextArea()

    def process_formdata(self, valuelist: list[str]) -> None:
        # Absent from the post (the field was not on the page) means "unchanged", not "empty".
        self.data = service.split_addresses(valuelist) if valuelist else None

    def process_data(self, value) -> None:
        self.data = list(value or [])

    def _value(self) -> str:
        return "\n".join(self.data or [])


def _switch(value) -> str:
    """A stored on/off (True/False) as the select's key; a posted key as it is."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return "" if value is None else str(value)


def _choices(labels: dict) -> list[SelectChoice]:
    return [SelectChoice(str(key), label) for key, label in labels.items()]


class IntegrationForm(FlaskForm):
    """Every field of docs/spec.md section 3; choices are checked by the service (its Japanese message is shown)."""

    mode = SelectField("データ連動方式", choices=_choices(service.MODES), validate_choice=False)
    status = SelectField("データ連動ステータス", choices=_choices(service.STATUSES), validate_choice=False)
    member_key = SelectField("メンバー識別ID", choices=_choices(service.MEMBER_KEYS), validate_choice=False)
    key_aliases = NameListField("メンバー識別IDの見出しの別名(カンマ区切り)")
    extra_columns = SelectField("見出しにない列", choices=_choices(service.EXTRA_COLUMNS), validate_choice=False)
    encoding = SelectField("文字コード", choices=_choices(service.ENCODINGS), validate_choice=False)
    sheet_name = StringField("読み込むシート")
    error_to = AddressListField("エラー報告メールアドレス")
    success_to = AddressListField("正常更新報告メールアドレス")
    senders = AddressListField("送信元メールアドレス")
    sender_networks = AddressListField("送信元サーバー")
    sender_auth = SelectField("送信元の認証", choices=_choices(service.SENDER_AUTHS), validate_choice=False)
    ftp_days = SelectMultipleField("データ連動曜日", choices=_choices(service.WEEKDAY_LABELS), validate_choice=False)
    ftp_start = StringField("開始")
    ftp_end = StringField("終了")
    ftp_interval = SelectField("データ連動間隔", choices=_choices(service.INTERVAL_LABELS), validate_choice=False)
    ftp_delay = StringField("○分遅らせてチェック")
    # データ未着の通知 (all modes). The switches are selects: an absent field stays unchanged, as for the others.
    overdue_enabled = SelectField("データ未着の通知", choices=_choices(service.SWITCHES), validate_choice=False,
                                  coerce=_switch)
    overdue_daily = SelectField("期待するファイル(日次)", choices=_choices(service.DAILY_EXPECTATIONS),
                                validate_choice=False)
    overdue_daily_time = StringField("日次ファイルの期限")
    overdue_monthly_day = StringField("月次ファイルの期限(翌月の日)")
    overdue_monthly_time = StringField("月次ファイルの期限(時刻)")
    overdue_days = SelectMultipleField("対象曜日", choices=_choices(service.WEEKDAY_LABELS), validate_choice=False)
    overdue_skip_holidays = SelectField("祝日", choices=_choices(service.HOLIDAY_CHOICES), validate_choice=False,
                                        coerce=_switch)

    def changes(self) -> dict:
        """The submitted values, as update_settings takes them (None = not on the page, unchanged)."""
        changes = {name: self[name].data for name in service.FIELD_LABELS}
        # The page always posts an empty ftp_days marker, so "no day ticked" differs from "not on the page".
        raw_days = self.ftp_days.raw_data or []
        changes["ftp_days"] = [day for day in raw_days if day] if raw_days else None
        raw_days = self.overdue_days.raw_data or []
        changes["overdue_days"] = [day for day in raw_days if day] if raw_days else None
        return changes

    def add_errors(self, errors: dict[str, list[str]]) -> None:
        """Show each service error next to its field."""
        for name, messages in errors.items():
            if name in self._fields:
                # Field.errors is a tuple until validate() ran on it.
                self[name].errors = list(self[name].errors) + list(messages)


class ReissueForm(FlaskForm):
    """A re-issue button; the checkbox is the confirmation when JavaScript (confirm()) is not available."""

    confirm = BooleanField("再発行してよいことを確認しました")


class MailboxForm(FlaskForm):
    """受信方法 of メール添付連動 and its IMAP fields, posted with IntegrationForm (which checks the CSRF token)."""

    class Meta:
        csrf = False

    imap_fields = HiddenField(default="1")  # present only when the fields were on the page
    method = RadioField(mailbox.LABELS["method"], choices=_choices(mailbox.METHODS), validate_choice=False)
    host = StringField(mailbox.LABELS["host"])
    port = StringField(mailbox.LABELS["port"])
    tls = RadioField(mailbox.LABELS["tls"], choices=_choices(mailbox.TLS_MODES), validate_choice=False)
    verify = BooleanField(mailbox.LABELS["verify"])
    username = StringField(mailbox.LABELS["username"])
    password = PasswordField(mailbox.LABELS["password"])
    folder = StringField(mailbox.LABELS["folder"])
    processed_folder = StringField(mailbox.LABELS["processed_folder"])

    def changes(self) -> dict | None:
        """The submitted values for mailbox.parse, or None when the fields were not on the page."""
        if not self.imap_fields.raw_data:
            return None
        return {name: self[name].data for name in mailbox.LABELS}

    def add_errors(self, errors: dict[str, list[str]]) -> None:
        for name, messages in errors.items():
            if name in self._fields:
                self[name].errors = list(self[name].errors) + list(messages)
