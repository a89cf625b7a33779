"""連携状況: the one page to look at when someone asks why the board is old (admins of the account)."""
from __future__ import annotations

from flask import current_app, render_template
from flask_login import current_user

from .. import health
from ..auth.access import admin_required
from ..enums import LinkStatus
from ..services import linkstatus, queue
from ..services.integration_fields import MODES, STATUSES
from . import bp


@bp.route("/status")
@admin_required
def status():
    account = current_user.account
    settings = account.settings  # read only: a page that only looks creates no settings row
    now = health.now(current_app)
    return render_template(
        "imports/status.html",
        account=account,
        mode=settings.mode if settings and account.integration_enabled else None,
        mode_label=MODES.get(settings.mode) if settings else None,
        link_label=STATUSES.get(settings.status) if settings else None,
        stopped=bool(settings) and settings.status == LinkStatus.STOPPED,
        channels=linkstatus.channel_statuses(account.id),
        waiting=queue.waiting(account.id),
        expected=linkstatus.next_expected(account, now),
        now=now,
    )
