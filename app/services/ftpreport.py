"""What an FTP check tells: its outcome and Japanese lines, the account's last check, the automatic re-check.

services/ftpcheck.py runs a check and calls `record` at its end; the 外部連携設定 tab shows
`last_check` next to the 今すぐチェック button; the scheduler claims due re-checks with
`claim_rechecks` and runs them through the same check as a scheduled one.

Decisions (where docs/spec.md is silent):
- The last check of an account is kept in integration_settings (last_ftp_check_at, _trigger,
  _result): one row per account, overwritten by every check; the result holds the lines
  already worded (the quiet seconds of that check), so the tab shows what the check said.
- A check that leaves a file waiting because it is still settling (uploaded less than
  FTP_QUIET_SECONDS ago, dated ahead, changed while read, re-uploaded during the check) sets
  integration_settings.ftp_recheck_at to its clock + FTP_QUIET_SECONDS; one column, so at most
  one re-check per account is pending, and a later check replaces or clears it. A file left
  by an error waits for the next scheduled check instead (no retry loop while the database is
  down), and so does a temporary upload name (nobody knows when the client renames it).
"""
from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING

from ..extensions import db
from ..models import IntegrationSettings
from .ftpfiles import (
    CHANGING,
    FAILED,
    FUTURE,
    QUIET,
    REPLACED,
    quiet_seconds,
    temporary_suffix,
)

if TYPE_CHECKING:
    from .ftpcheck import CheckResult

# Who started a check.
SCHEDULED = "scheduled"
MANUAL = "manual"
RECHECK = "recheck"
TRIGGER_LABELS = {SCHEDULED: "定時チェック", MANUAL: "手動(今すぐチェック)", RECHECK: "自動の再チェック"}

# Outcomes, the CSS class of the result next to the button (check-<outcome>).
SUCCESS = "success"
PARTIAL = "partial"
ERROR = "error"
NOTHING = "nothing"
WAITING = "waiting"

# Reasons that end by themselves within the quiet period: a re-check is scheduled for them.
RECHECKED = (QUIET, FUTURE, CHANGING, REPLACED)


def outcome(result: CheckResult) -> str:
    """success / partial (some failed) / error (all failed) / waiting (some left for later) / nothing."""
    if result.failed:
        return PARTIAL if result.succeeded else ERROR
    if result.busy or result.waiting or result.running or result.temporary:
        return WAITING
    return SUCCESS if result.files else NOTHING


def recheck_delay() -> int:
    """Seconds after a check that its re-check runs: the quiet period, whole seconds."""
    return max(1, math.ceil(quiet_seconds()))


def wait_line(name: str, reason: str) -> str:
    """Why the file `name` was not read by this check, and when it will be."""
    later = f"{recheck_delay()}秒後にもう一度チェックします"
    texts = {
        QUIET: f"アップロードから{recheck_delay()}秒以内のため、{later}",
        FUTURE: f"更新日時がサーバーの時計より先のため、変わらないことを確かめてから読み込みます({later})",
        CHANGING: f"読み込み中に書き換えられたため、{later}",
        REPLACED: f"チェック中に同じ名前で上書きされたため、新しいファイルを{later}",
        FAILED: "読み込み中にエラーが起きたため、次回のチェックでもう一度読み込みます",
    }
    return f"{name}: {texts.get(reason, texts[FAILED])}"


def temporary_line(name: str) -> str:
    return (f"{name}: 名前が {temporary_suffix(name)} で終わるため、アップロードが終わって名前が変わるのを待っています"
            "(このままでは読み込みません)")


def running_line(name: str) -> str:
    return f"{name}: 取込中です。取込が終わると次回のチェックで processed/ または error/ に移します"


def lines(result: CheckResult) -> list[str]:
    """One Japanese line per file the check left in the home, saying why."""
    return ([wait_line(name, result.reasons.get(name, FAILED)) for name in result.waiting]
            + [running_line(name) for name in result.running]
            + [temporary_line(name) for name in result.temporary])


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def record(settings: IntegrationSettings, result: CheckResult, trigger: str, now: dt.datetime) -> None:
    """Keep `result` as the account's last check and set or clear its re-check (the caller commits)."""
    settings.last_ftp_check_at = _utc(now)
    settings.last_ftp_check_trigger = trigger
    settings.last_ftp_check_result = {
        "outcome": outcome(result),
        "message": result.message,
        "files": [{"name": f.name, "succeeded": f.succeeded, "moved_to": f.moved_to} for f in result.files],
        "lines": lines(result),
    }
    settles = any(result.reasons.get(name) in RECHECKED for name in result.waiting)
    settings.ftp_recheck_at = _utc(now + dt.timedelta(seconds=recheck_delay())) if settles else None


def last_check(settings: IntegrationSettings) -> dict | None:
    """The last check for the tab: at (naive UTC), trigger label, outcome, message, files, lines; None before any."""
    stored = settings.last_ftp_check_result
    if settings.last_ftp_check_at is None or not isinstance(stored, dict):
        return None
    return {
        "at": settings.last_ftp_check_at,
        "trigger": TRIGGER_LABELS.get(settings.last_ftp_check_trigger or "", "チェック"),
        "outcome": stored.get("outcome", NOTHING),
        "message": stored.get("message", ""),
        "files": stored.get("files", []),
        "lines": stored.get("lines", []),
        "recheck_at": settings.ftp_recheck_at,
    }


def claim_rechecks(now: dt.datetime) -> list[int]:
    """Ids of the accounts whose re-check is due at `now` (aware); each is cleared, so one process runs it once."""
    at = _utc(now)
    due = db.session.execute(
        db.select(IntegrationSettings.account_id, IntegrationSettings.ftp_recheck_at)
        .where(IntegrationSettings.ftp_recheck_at <= at).order_by(IntegrationSettings.account_id)
    ).all()
    claimed = []
    for account_id, when in due:
        # Cleared only if still the same time: another process may have claimed it, or a check set a new one.
        done = db.session.execute(
            db.update(IntegrationSettings)
            .where(IntegrationSettings.account_id == account_id, IntegrationSettings.ftp_recheck_at == when)
            .values(ftp_recheck_at=None)
        )
        if done.rowcount == 1:
            claimed.append(account_id)
    db.session.commit()
    return claimed
