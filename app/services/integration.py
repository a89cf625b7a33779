"""外部連携設定 (docs/spec.md section 3):
the one place that validates and saves an account's integration settings.

The settings tab, `flask integration …` and the channel servers all go through here:
- `update_settings` validates every field and raises Invalid with `errors` {field: [messages]};
- `reissue_inbound_address`, `issue_ftp_password`, `issue_api_token` issue credentials
  (secrets are returned once and stored only as hashes);
- `verify_ftp_password`, `account_for_token`, `account_for_inbound_address` resolve a
  channel's credentials. They check the credential only: whether the integration is
  enabled, the mode and the status are the caller's decision (each channel answers
  those cases differently, e.g. the API's 401 vs 403 vs 409).

Decisions (where docs/spec.md is silent):
- Only the fields of the selected mode are required and validated. A value of another
  mode that is valid is saved; one that is not is ignored and the stored value kept, so
  switching modes never loses anything and never fails on a field the user cannot see.
- `as_dict(...)["next_checks"]` lists the next 5 FTP check times only in FTP mode
  (whatever the status); in mail or API mode it is [] because no check will run.
- Address lists are compared case-insensitively for duplicates, the first spelling kept;
  input is NFKC-normalised first, so full-width ＠ and letters typed in Japanese IME work.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app

from .. import config
from ..enums import Mode
from ..errors import Invalid, NotFound
from ..extensions import db
from ..models import Account, IntegrationSettings, SettingsChange, utcnow
from . import accounts, checktimes, columns
# The fields' labels are read from here by the tab, the CLI and the forms, too.
from .integration_fields import (ADDRESS_FIELDS, DAILY_EXPECTATIONS, ENCODINGS, EXTRA_COLUMNS,  # noqa: F401
                                 FIELD_LABELS, FTP_FIELDS, HOLIDAY_CHOICES, INTERVAL_LABELS, MAIL_ONLY_FIELDS,
                                 MEMBER_KEYS, MODES, SCALAR_PARSERS, SENDER_AUTHS, STATUSES, SWITCHES,
                                 WEEKDAY_LABELS, parse_addresses, split_addresses)

NEXT_CHECK_COUNT = 5

# FTP passwords are issued by Renkei as 128 random bits, never chosen by a person, so a
# plain sha256 is as strong as a slow hash against guessing and keeps each FTP login (and
# cron scripts that log in every few minutes) under a millisecond instead of ~0.1 s.
_FTP_HASH_PREFIX = "sha256:"


# ---------------------------------------------------------------------------- reading


def get_settings(account_id: int) -> IntegrationSettings:
    """Return the account's settings row, creating it with issued values if it is missing."""
    settings = db.session.scalar(db.select(IntegrationSettings).where(IntegrationSettings.account_id == account_id))
    if settings is None:
        account = db.session.get(Account, account_id)
        if account is None:
            raise NotFound("アカウントが見つかりません。")
        settings = IntegrationSettings(
            account_id=account_id, inbound_local=accounts.new_inbound_local(), ftp_username=account.slug
        )
        db.session.add(settings)
        db.session.commit()
    return settings


def inbound_address(settings: IntegrationSettings) -> str:
    """The issued 送信先メールアドレス of the account."""
    return f"{settings.inbound_local}@{current_app.config['MAIL_DOMAIN']}"


def shown_inbound_address(settings: IntegrationSettings, *, full: bool) -> str:
    """The inbound address as a screen shows it: in full to admins, masked (`sp***@domain`) to viewers."""
    address = inbound_address(settings)
    return address if full else mask_address(address)


def mask_address(address: str) -> str:
    """An address with all but the first two characters of its local part hidden (the local part is the secret)."""
    local, at, domain = address.partition("@")
    return f"{local[:2]}***{at}{domain}" if local else address


def ftp_server() -> str:
    """The FTP server's advertised "host:port"."""
    host = config.get(current_app, "FTP_PUBLIC_HOST") or config.get(current_app, "HOST")
    return f"{host}:{current_app.config['FTP_PORT']}"


def api_endpoint() -> str:
    """The upload URL of the HTTP API."""
    return f"{current_app.config['PUBLIC_URL']}/api/v1/imports"


def timezone() -> ZoneInfo:
    """The configured time zone of schedules and screens (RENKEI_TIMEZONE)."""
    return config.timezone(current_app)


def next_checks(settings: IntegrationSettings, now: dt.datetime | None = None) -> list[dt.datetime]:
    """The next FTP check times (aware, in the configured zone); [] unless the mode is FTP."""
    if settings.mode != Mode.FTP:
        return []
    now = now or dt.datetime.now(dt.timezone.utc)
    try:
        return checktimes.next_check_times(settings, now, NEXT_CHECK_COUNT, timezone())
    except ValueError:
        # Only a row edited by hand can be invalid; show no schedule rather than fail the page.
        return []


def as_dict(account: Account, settings: IntegrationSettings, now: dt.datetime | None = None) -> dict[str, Any]:
    """The settings as `flask integration show` prints them (docs/spec.md section 8); never a secret."""
    return {
        "enabled": bool(account.integration_enabled),
        "mode": settings.mode,
        "status": settings.status,
        "member_key": settings.member_key,
        "key_aliases": list(settings.key_aliases or []),
        "extra_columns": settings.extra_columns,
        "encoding": settings.encoding,
        "sheet_name": settings.sheet_name or "",
        "error_to": list(settings.error_to or []),
        "success_to": list(settings.success_to or []),
        "senders": list(settings.senders or []),
        "sender_networks": list(settings.sender_networks or []),
        "sender_auth": settings.sender_auth,
        "inbound_address": inbound_address(settings),
        "ftp_server": ftp_server(),
        "ftp_username": settings.ftp_username,
        "ftp_days": list(settings.ftp_days or []),
        "ftp_start": settings.ftp_start,
        "ftp_end": settings.ftp_end,
        "ftp_interval": settings.ftp_interval,
        "ftp_delay": settings.ftp_delay,
        "api_endpoint": api_endpoint(),
        "overdue_enabled": bool(settings.overdue_enabled),
        "overdue_daily": settings.overdue_daily,
        "overdue_daily_time": settings.overdue_daily_time,
        "overdue_monthly_day": settings.overdue_monthly_day,
        "overdue_monthly_time": settings.overdue_monthly_time,
        "overdue_days": list(settings.overdue_days or []),
        "overdue_skip_holidays": bool(settings.overdue_skip_holidays),
        "next_checks": [t.isoformat() for t in next_checks(settings, now)],
    }


def recent_changes(account_id: int, limit: int = 20) -> list[SettingsChange]:
    """The latest changes of the account's settings, newest first."""
    return list(
        db.session.scalars(
            db.select(SettingsChange)
            .where(SettingsChange.account_id == account_id)
            .order_by(SettingsChange.changed_at.desc(), SettingsChange.id.desc())
            .limit(limit)
        )
    )


# ---------------------------------------------------------------------------- writing


def update_settings(account_id: int, changes: dict[str, Any], actor: str) -> IntegrationSettings:
    """Validate and save `changes` (any subset of FIELD_LABELS; None = unchanged); Invalid lists every problem."""
    unknown = sorted(set(changes) - set(FIELD_LABELS))
    if unknown:
        raise Invalid(f"不明な項目です: {', '.join(unknown)}", field=unknown[0])
    settings = get_settings(account_id)
    current = {field: _current_value(settings, field) for field in FIELD_LABELS}
    candidate = dict(current)
    errors: dict[str, list[str]] = {}

    for field, value in changes.items():
        if value is None:
            continue
        if field in ADDRESS_FIELDS or field == "key_aliases":
            parsed, messages = (columns.clean_key_aliases(account_id, value) if field == "key_aliases"
                                else parse_addresses(field, value))
            if messages:
                errors[field] = messages
            else:
                candidate[field] = parsed
            continue
        try:
            candidate[field] = SCALAR_PARSERS[field](value)
        except ValueError as e:
            errors[field] = [str(e)]

    _forgive_blanks_of_other_modes(candidate["mode"], changes, current, candidate, errors)
    _check_required(candidate, errors)
    _check_schedule(candidate, errors)
    if errors:
        first = next(iter(errors.values()))[0]
        raise Invalid(first, field=next(iter(errors)), errors=errors)

    lines = [
        f"{FIELD_LABELS[field]}: {_show(field, current[field])} → {_show(field, candidate[field])}"
        for field in FIELD_LABELS
        if candidate[field] != current[field]
    ]
    if not lines:
        return settings
    for field in FIELD_LABELS:
        setattr(settings, field, candidate[field])
    if candidate["overdue_enabled"] and not current["overdue_enabled"]:
        # Deadlines before this moment never alert (services/overdue.py): turning it on does not mail the past.
        settings.overdue_since = utcnow()
    _record(account_id, actor, "\n".join(lines))
    db.session.commit()
    return settings


def _current_value(settings: IntegrationSettings, field: str) -> Any:
    value = getattr(settings, field)
    # JSON columns come back as the same list object; copy so comparisons see the old value.
    return list(value or []) if isinstance(value, list) or field in ADDRESS_FIELDS else value


def _check_required(candidate: dict[str, Any], errors: dict[str, list[str]]) -> None:
    if not candidate["error_to"] and "error_to" not in errors:
        errors["error_to"] = ["エラー報告メールアドレスを1件以上入力してください。"]
    if candidate["mode"] == Mode.MAIL and not candidate["senders"] and "senders" not in errors:
        errors["senders"] = ["送信元メールアドレスを1件以上入力してください。"]
    if candidate["mode"] == Mode.FTP and not candidate["ftp_days"] and "ftp_days" not in errors:
        errors["ftp_days"] = ["データ連動曜日を1つ以上選んでください。"]
    expects_nothing = candidate["overdue_daily"] == "none" and candidate["overdue_monthly_day"] is None
    if candidate["overdue_enabled"] and expects_nothing and not {"overdue_daily", "overdue_monthly_day"} & set(errors):
        errors["overdue_daily"] = [("データ未着の通知をするには、期待するファイル(日次)を選ぶか、"
                                    "月次ファイルの期限を入力してください。")]
    if (candidate["overdue_enabled"] and candidate["overdue_daily"] != "none" and not candidate["overdue_days"]
            and "overdue_days" not in errors):
        errors["overdue_days"] = ["対象曜日を1つ以上選んでください。"]


def _check_schedule(candidate: dict[str, Any], errors: dict[str, list[str]]) -> None:
    # Each pair is compared only when both of its values are valid on their own.
    if "ftp_start" not in errors and "ftp_end" not in errors:
        start, end = checktimes.parse_hhmm(candidate["ftp_start"]), checktimes.parse_hhmm(candidate["ftp_end"])
        if problem := checktimes.window_error(start, end):
            errors["ftp_end"] = [problem]
    if "ftp_interval" not in errors and "ftp_delay" not in errors:
        if problem := checktimes.delay_error(candidate["ftp_delay"], candidate["ftp_interval"]):
            errors["ftp_delay"] = [problem]


def _forgive_blanks_of_other_modes(
    mode: str, changes: dict[str, Any], current: dict[str, Any], candidate: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    """Drop the errors of fields the selected mode does not use when they were given blank, keeping their stored values.

    A value given for another mode is validated like any other (the CLI must not say 保存しました
    for `--ftp-interval 7` in API mode); only the blanks the settings page posts for the hidden
    sections of other modes are not errors.
    """
    unused = set(FTP_FIELDS) if mode != Mode.FTP else set()
    if mode != Mode.MAIL:
        unused.update(MAIL_ONLY_FIELDS)
    for field in unused & set(errors):
        if _blank(changes.get(field)):
            errors.pop(field)
            candidate[field] = current[field]


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple)):
        return all(_blank(item) for item in value)
    return False


def _show(field: str, value: Any) -> str:
    """A value as the change history shows it (labels, not codes)."""
    if field in ADDRESS_FIELDS or field in ("sender_networks", "key_aliases"):
        return ", ".join(value) if value else "(なし)"
    if field in ("ftp_days", "overdue_days"):
        return "・".join(WEEKDAY_LABELS[d] for d in value) if value else "(なし)"
    if field in ("overdue_enabled", "overdue_skip_holidays"):
        return (SWITCHES if field == "overdue_enabled" else HOLIDAY_CHOICES)["on" if value else "off"]
    if field == "overdue_monthly_day":
        return f"翌月{value}日" if value else "(なし)"
    if field == "ftp_interval":
        return INTERVAL_LABELS.get(value, f"{value}分")
    if field == "ftp_delay":
        return f"{value}分"
    if field == "sheet_name":
        return f"「{value}」" if value else "(最初のシート)"
    labels = {"mode": MODES, "status": STATUSES, "member_key": MEMBER_KEYS, "encoding": ENCODINGS,
              "sender_auth": SENDER_AUTHS, "extra_columns": EXTRA_COLUMNS,
              "overdue_daily": DAILY_EXPECTATIONS}.get(field)
    return labels.get(value, str(value)) if labels else str(value)


def _record(account_id: int, actor: str, summary: str) -> None:
    db.session.add(SettingsChange(account_id=account_id, actor=actor, summary=summary))


def reissue_inbound_address(account_id: int, actor: str) -> str:
    """Issue a new 送信先メールアドレス (the old one stops working at once) and return it."""
    settings = get_settings(account_id)
    old = inbound_address(settings) if settings.inbound_local else "(なし)"
    settings.inbound_local = accounts.new_inbound_local()
    new = inbound_address(settings)
    _record(account_id, actor, f"送信先メールアドレスを再発行しました: {old} → {new}")
    db.session.commit()
    return new


def issue_ftp_password(account_id: int, actor: str) -> str:
    """Issue a new FTP password, store only its hash, and return it (shown once)."""
    settings = get_settings(account_id)
    if not settings.ftp_username:
        settings.ftp_username = db.session.get(Account, account_id).slug
    verb = "再発行" if settings.ftp_password_hash else "発行"
    password = secrets.token_urlsafe(16)
    settings.ftp_password_hash = _FTP_HASH_PREFIX + _token_hash(password)
    _record(account_id, actor, f"FTPサーバー PWを{verb}しました(ID: {settings.ftp_username})")
    db.session.commit()
    return password


def issue_api_token(account_id: int, actor: str) -> str:
    """Issue a new API token, store only its sha256, and return it (shown once)."""
    settings = get_settings(account_id)
    verb = "再発行" if settings.api_token_hash else "発行"
    token = secrets.token_urlsafe(32)
    settings.api_token_hash = _token_hash(token)
    _record(account_id, actor, f"APIトークンを{verb}しました")
    db.session.commit()
    return token


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------- channel look-ups


def settings_for_ftp_username(username: str) -> IntegrationSettings | None:
    """The settings whose FTP ID this is (case and outer spaces aside), else None."""
    return db.session.scalar(
        db.select(IntegrationSettings).where(IntegrationSettings.ftp_username == (username or "").strip().lower())
    )


def verify_ftp_password(username: str, password: str) -> IntegrationSettings | None:
    """The settings whose FTP login matches, else None (credentials only: mode/enabled are the caller's check)."""
    settings = settings_for_ftp_username(username)
    given = _FTP_HASH_PREFIX + _token_hash(password or "")
    if settings is None or not settings.ftp_password_hash:
        return None
    return settings if hmac.compare_digest(settings.ftp_password_hash, given) else None


def account_for_token(token: str) -> Account | None:
    """The account whose API token this is, else None (no check of mode, status or enabled)."""
    if not token:
        return None
    digest = _token_hash(token)
    settings = db.session.scalar(db.select(IntegrationSettings).where(IntegrationSettings.api_token_hash == digest))
    if settings is None or not hmac.compare_digest(settings.api_token_hash, digest):
        return None
    return settings.account


def account_for_inbound_address(address: str) -> Account | None:
    """The account that was issued this 送信先メールアドレス (local part case-insensitive), else None."""
    local, sep, domain = (address or "").strip().strip("<>").rpartition("@")
    if not sep or not local or domain.lower() != current_app.config["MAIL_DOMAIN"].lower():
        return None
    settings = db.session.scalar(
        db.select(IntegrationSettings).where(db.func.lower(IntegrationSettings.inbound_local) == local.lower())
    )
    return settings.account if settings else None
