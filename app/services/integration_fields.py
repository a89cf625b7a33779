"""The fields of 外部連携設定: their Japanese labels and how each is read from form or CLI text.

Each parser takes what a person typed (NFKC-normalised first, so full-width digits, ＠ and
letters typed with a Japanese IME work) and returns the stored value or raises ValueError
with the Japanese message shown next to the field. services/integration.py decides which
fields a change needs and saves them.
"""
from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Any, Iterable

from ..enums import LinkStatus, Mode, SenderAuth
from ..importer.addresses import InvalidAddress, normalize_address
from ..importer.header import KEY_SETTINGS
from . import checktimes
from .typedlists import typed_parts

MODES = {Mode.MAIL: "メール添付連動", Mode.FTP: "FTP連動", Mode.API: "API連動"}
STATUSES = {LinkStatus.ACTIVE: "連動稼働", LinkStatus.STOPPED: "連動稼働停止"}
MEMBER_KEYS = KEY_SETTINGS  # the importer names the key setting the same way in its messages
ENCODINGS = {"auto": "自動", "cp932": "Shift_JIS(cp932)", "utf-8": "UTF-8"}
SENDER_AUTHS = {SenderAuth.NONE: "確認しない", SenderAuth.DKIM: "DKIM必須", SenderAuth.SPF: "SPF必須",
                SenderAuth.EITHER: "DKIMまたはSPF必須"}
WEEKDAY_LABELS = dict(zip(checktimes.WEEKDAYS, "月火水木金土日"))
EXTRA_COLUMNS = {"error": "エラーにする", "ignore": "無視する"}
INTERVAL_LABELS = {5: "5分", 10: "10分", 15: "15分", 30: "30分", 60: "1時間", 120: "2時間"}

FIELD_LABELS = {
    "mode": "データ連動方式",
    "status": "データ連動ステータス",
    "member_key": "メンバー識別ID",
    "key_aliases": "メンバー識別IDの見出しの別名",
    "extra_columns": "見出しにない列",
    "encoding": "文字コード",
    "error_to": "エラー報告メールアドレス",
    "success_to": "正常更新報告メールアドレス",
    "senders": "送信元メールアドレス",
    "sender_networks": "送信元サーバー",
    "sender_auth": "送信元の認証",
    "ftp_days": "データ連動曜日",
    "ftp_start": "データ連動時間(開始)",
    "ftp_end": "データ連動時間(終了)",
    "ftp_interval": "データ連動間隔",
    "ftp_delay": "○分遅らせてチェック",
    "sheet_name": "読み込むシート",
    "overdue_enabled": "データ未着の通知",
    "overdue_daily": "期待するファイル(日次)",
    "overdue_daily_time": "日次ファイルの期限",
    "overdue_monthly_day": "月次ファイルの期限(翌月の日)",
    "overdue_monthly_time": "月次ファイルの期限(時刻)",
    "overdue_days": "対象曜日",
    "overdue_skip_holidays": "祝日",
}
SWITCHES = {"on": "通知する", "off": "通知しない"}
HOLIDAY_CHOICES = {"on": "祝日を除く", "off": "祝日も対象にする"}
DAILY_EXPECTATIONS = {"none": "なし", "same": "当日分(その日の期限までに届く)",
                      "previous": "前日分(翌営業日の期限までに届く)"}
OVERDUE_FIELDS = ("overdue_enabled", "overdue_daily", "overdue_daily_time", "overdue_monthly_day",
                  "overdue_monthly_time", "overdue_days", "overdue_skip_holidays")
FTP_FIELDS = ("ftp_days", "ftp_start", "ftp_end", "ftp_interval", "ftp_delay")
MAX_ADDRESSES = 50
MAIL_ONLY_FIELDS = ("senders", "sender_networks", "sender_auth")

# Separators a user may put between addresses: newline, tab (a pasted Excel row), comma,
# semicolon and the Japanese 、 (NFKC already turned full-width ，； into ASCII). Not spaces:
# "taro yamada@example.com" is reported as one wrong address, not as two.
_SEPARATORS = re.compile(r"[\r\n\t,;、]+")


def split_addresses(value: str | Iterable[str] | None) -> list[str]:
    """Split a list and/or newline-, comma-separated text into stripped, non-empty entries."""
    return [part.strip() for part in typed_parts(value, _SEPARATORS) if part.strip()]


def parse_addresses(field: str, value: Any) -> tuple[list[str], list[str]]:
    """Validate addresses; return (normalized unique addresses, error messages)."""
    addresses: list[str] = []
    seen: set[str] = set()
    errors: list[str] = []
    for raw in split_addresses(value):
        try:
            normalized = normalize_address(raw)
        except InvalidAddress:
            errors.append(f"「{raw}」はメールアドレスとして正しくありません。")
            continue
        if normalized.casefold() not in seen:
            seen.add(normalized.casefold())
            addresses.append(normalized)
    if len(addresses) > MAX_ADDRESSES:
        errors.append(f"{FIELD_LABELS[field]}は{MAX_ADDRESSES}件までにしてください。")
    return addresses, errors


def _parse_choice(field: str, value: Any, choices: dict) -> str:
    text = str(value or "").strip().lower()
    if text not in choices:
        allowed = "・".join(f"{label}({key})" for key, label in choices.items())
        raise ValueError(f"{FIELD_LABELS[field]}は {allowed} から選んでください。")
    return text


def _parse_switch(field: str, value: Any, choices: dict) -> bool:
    """An on/off choice; True and False (a stored value) are taken as they are."""
    if isinstance(value, bool):
        return value
    return _parse_choice(field, value, choices) == "on"


def _parse_monthly_day(value: Any) -> int | None:
    """月次ファイルの期限: a day 1〜31 of the next month (the month's last day when shorter); blank = no monthly file."""
    text = unicodedata.normalize("NFKC", str(value if value is not None else "")).strip().removesuffix("日")
    if not text:
        return None
    if not re.fullmatch(r"\d{1,2}", text) or not 1 <= int(text) <= 31:
        raise ValueError("月次ファイルの期限は翌月の 1〜31 日で入力してください(月次ファイルがなければ空欄)。")
    return int(text)


def _parse_days(value: Any) -> list[str]:
    japanese = {label: key for key, label in WEEKDAY_LABELS.items()}
    chosen: set[str] = set()
    for part in split_addresses(value):
        key = japanese.get(part, part.lower()[:3])
        if key not in WEEKDAY_LABELS:
            raise ValueError(f"曜日「{part}」は正しくありません(mon〜sun または 月〜日)。")
        chosen.add(key)
    # Stored in calendar order so that comparing and showing the list is stable.
    return [day for day in checktimes.WEEKDAYS if day in chosen]


def _parse_time(value: Any) -> str:
    text = unicodedata.normalize("NFKC", str(value or "")).strip()
    if not text:
        raise ValueError("時刻を入力してください。")
    return checktimes.format_hhmm(checktimes.parse_hhmm(text))


def _parse_minutes(value: Any, what: str) -> int:
    text = unicodedata.normalize("NFKC", str(value if value is not None else "")).strip()
    if not re.fullmatch(r"\d{1,4}", text):
        raise ValueError(f"{what}を分単位の数字で入力してください。")
    return int(text)


def _parse_interval(value: Any) -> int:
    minutes = _parse_minutes(value, "データ連動間隔")
    if problem := checktimes.interval_error(minutes):
        raise ValueError(problem)
    return minutes


def _parse_delay(value: Any) -> int:
    minutes = _parse_minutes(value, "遅らせる時間")
    if problem := checktimes.delay_error(minutes):
        raise ValueError(problem)
    return minutes


def parse_networks(value: Any) -> list[str]:
    """送信元サーバー: IP addresses or networks (CIDR), IPv4 or IPv6, stored in their normal form."""
    networks: list[str] = []
    wrong: list[str] = []
    for part in split_addresses(value):
        try:
            network = ipaddress.ip_network(part, strict=False)
        except ValueError:
            wrong.append(f"「{part}」")
            continue
        text = str(network.network_address) if network.num_addresses == 1 else str(network)
        if text not in networks:
            networks.append(text)
    if wrong:
        raise ValueError(f"{''.join(wrong)}はIPアドレスまたはネットワーク(例: 192.0.2.10、192.0.2.0/24、"
                         "2001:db8::/32)として正しくありません。")
    if len(networks) > MAX_ADDRESSES:
        raise ValueError(f"送信元サーバーは{MAX_ADDRESSES}件までにしてください。")
    return networks


# Excel's limits on a sheet name: 31 characters, none of these.
SHEET_NAME_MAX = 31
_SHEET_FORBIDDEN = set(":\\/?*[]")


def parse_sheet_name(value: Any) -> str:
    """読み込むシート: a sheet name as Excel allows it (trimmed; empty = the first sheet)."""
    text = str(value or "").strip()
    if len(text) > SHEET_NAME_MAX:
        raise ValueError(f"読み込むシートは{SHEET_NAME_MAX}文字以内にしてください(Excelのシート名の上限です)。")
    bad = sorted({char for char in text if char in _SHEET_FORBIDDEN or not char.isprintable()})
    if bad:
        shown = " ".join(repr(char)[1:-1] for char in bad)
        raise ValueError(f"読み込むシートに使えない文字があります: {shown}(シート名に : \\ / ? * [ ] は使えません)。")
    return text


SCALAR_PARSERS = {
    "mode": lambda v: _parse_choice("mode", v, MODES),
    "status": lambda v: _parse_choice("status", v, STATUSES),
    "member_key": lambda v: _parse_choice("member_key", v, MEMBER_KEYS),
    "encoding": lambda v: _parse_choice("encoding", v, ENCODINGS),
    "extra_columns": lambda v: _parse_choice("extra_columns", v, EXTRA_COLUMNS),
    "sender_networks": parse_networks,
    "sender_auth": lambda v: _parse_choice("sender_auth", v, SENDER_AUTHS),
    "ftp_days": _parse_days,
    "ftp_start": _parse_time,
    "ftp_end": _parse_time,
    "ftp_interval": _parse_interval,
    "ftp_delay": _parse_delay,
    "sheet_name": parse_sheet_name,
    "overdue_enabled": lambda v: _parse_switch("overdue_enabled", v, SWITCHES),
    "overdue_daily": lambda v: _parse_choice("overdue_daily", v, DAILY_EXPECTATIONS),
    "overdue_daily_time": _parse_time,
    "overdue_monthly_day": _parse_monthly_day,
    "overdue_monthly_time": _parse_time,
    "overdue_days": _parse_days,
    "overdue_skip_holidays": lambda v: _parse_switch("overdue_skip_holidays", v, HOLIDAY_CHOICES),
}
ADDRESS_FIELDS = ("error_to", "success_to", "senders")
