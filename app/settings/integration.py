"""The 外部連携設定 tab (docs/spec.md section 3): one form for every mode, plus the re-issue buttons."""
from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user

from ..auth.access import admin_required, integration_required
from ..errors import Invalid, RenkeiError
from ..services import ftpcheck, ftpreport, ftpways, mailbox, samplefile, sshkeys, zippassword
from ..services import integration as service
from . import bp
from .integration_forms import FORM_TROUBLE, IntegrationForm, MailboxForm, ReissueForm
from .ssh_keys import SSH_NOTICE

# Where 今すぐチェック's answer lands: the check's result, next to the button in the FTP section.
CHECK_RESULT_ANCHOR = "#ftp-check-result"
# A 今すぐチェック that did not run (refused, busy, bad form) says so next to the button once, on the next page.
CHECK_NOTICE = "ftp_check_notice"
# 今すぐ取得's answer (one line) is shown once next to its button; the fetch's outcome itself is stored.
FETCH_NOTICE = "imap_fetch_notice"
FETCH_RESULT_ANCHOR = "#imap-fetch-result"


def _render(form: IntegrationForm, status: int = 200, issued: dict[str, str] | None = None,
            mailbox_form: MailboxForm | None = None):
    settings = service.get_settings(current_user.account_id)
    box = mailbox.get(current_user.account_id)
    mailbox_form = mailbox_form or MailboxForm(formdata=None, obj=box)
    mode = form.mode.data if form.mode.data in service.MODES else settings.mode
    response = make_response(
        render_template(
            "settings/integration.html",
            tab="integration",
            form=form,
            reissue_form=ReissueForm(),
            settings=settings,
            mode=mode,
            readonly=not current_user.is_admin,
            inbound_address=service.shown_inbound_address(settings, full=current_user.is_admin),
            ftp_server=service.ftp_server(),
            connect_ways=ftpways.connect_ways(),
            api_endpoint=service.api_endpoint(),
            next_checks=service.next_checks(settings),
            issued=issued or {},
            zip_password_set=zippassword.is_set(current_user.account_id),
            changes=service.recent_changes(current_user.account_id),
            modes=service.MODES,
            weekday_labels=service.WEEKDAY_LABELS,
            day_names="月火水木金土日",
            sample_header=samplefile.header(current_user.account_id),
            last_check=ftpreport.last_check(settings),
            check_notice=session.pop(CHECK_NOTICE, None),
            quiet_seconds=ftpreport.recheck_delay(),
            mailbox_form=mailbox_form,
            mailbox=box,
            mailbox_password_set=mailbox.password_set(box),
            fetch_notice=session.pop(FETCH_NOTICE, None),
            ssh_keys=sshkeys.list_keys(current_user.account_id),
            ssh_notice=session.pop(SSH_NOTICE, None),
        ),
        status,
    )
    # The page may carry a just-issued secret: keep it out of every cache (the browser's history too).
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/integration", methods=["GET", "POST"])
@integration_required
def integration():
    if request.method == "GET":
        settings = service.get_settings(current_user.account_id)
        return _render(IntegrationForm(formdata=None, obj=settings))
    if not current_user.is_admin:  # 閲覧者 see the tab but do not save it
        abort(403)
    form = IntegrationForm()
    mailbox_form = MailboxForm()
    if not form.validate_on_submit():
        flash("送信内容を確認できませんでした。ページを読み込み直してからもう一度保存してください。", "error")
        return _render(form, 400, mailbox_form=mailbox_form)
    mailbox_changes = mailbox_form.changes()
    try:
        # The mailbox fields are checked first, so an error there saves nothing of the page.
        mailbox_values = (mailbox.parse(mailbox_changes, mailbox.get(current_user.account_id))
                          if mailbox_changes is not None else {})
    except Invalid as e:
        mailbox_form.add_errors(e.errors or {"method": [e.message]})
        flash("入力内容に誤りがあります。各項目のメッセージを確認してください。", "error")
        return _render(form, 422, mailbox_form=mailbox_form)
    try:
        service.update_settings(current_user.account_id, form.changes(), actor=current_user.email)
    except Invalid as e:
        form.add_errors(e.errors or {"mode": [e.message]})
        flash("入力内容に誤りがあります。各項目のメッセージを確認してください。", "error")
        return _render(form, 422, mailbox_form=mailbox_form)
    if mailbox_values:
        mailbox.save(current_user.account_id, mailbox_values, actor=current_user.email)
    flash("外部連携設定を保存しました。", "success")
    return redirect(url_for("settings.integration"))


def _render_issued(issued: dict[str, str]):
    """The tab with a just-issued secret, as this POST's own answer.

    Never carried to a next page: the session is a cookie, signed but readable by anyone who
    holds it (docs/decisions.md).
    """
    settings = service.get_settings(current_user.account_id)
    return _render(IntegrationForm(formdata=None, obj=settings), issued=issued)


def _confirmed_reissue() -> bool:
    """Check CSRF and the confirmation; flash why not when the re-issue must not happen."""
    form = ReissueForm()
    if not form.validate_on_submit():
        flash(FORM_TROUBLE, "error")
        return False
    if not form.confirm.data:
        flash("確認のチェックを入れてから、もう一度ボタンを押してください。", "error")
        return False
    return True


@bp.route("/integration/inbound-address", methods=["POST"])
@integration_required
@admin_required
def integration_reissue_address():
    if _confirmed_reissue():
        address = service.reissue_inbound_address(current_user.account_id, actor=current_user.email)
        flash(f"送信先メールアドレスを再発行しました: {address}(以前のアドレスには送れなくなりました)", "success")
    return redirect(url_for("settings.integration") + "#mail-section")


def _issue_secret(key: str, issue: Callable[[int, str], str], what: str, section: str):
    """Issue the secret `key` once the re-issue is confirmed and show it in this answer; else back to its section."""
    if not _confirmed_reissue():
        return redirect(url_for("settings.integration") + section)
    secret = issue(current_user.account_id, current_user.email)
    flash(f"{what}を発行しました。この画面を離れると二度と表示されません。控えてください。", "success")
    return _render_issued({key: secret})


@bp.route("/integration/ftp-password", methods=["POST"])
@integration_required
@admin_required
def integration_ftp_password():
    return _issue_secret("ftp_password", service.issue_ftp_password, "FTPサーバー PW", "#ftp-section")


@bp.route("/integration/api-token", methods=["POST"])
@integration_required
@admin_required
def integration_api_token():
    return _issue_secret("api_token", service.issue_api_token, "APIトークン", "#api-section")


@bp.route("/integration/check-now", methods=["POST"])
@integration_required
@admin_required
def integration_check_now():
    """今すぐチェック: run the account's FTP check at once, like `flask integration check-now`."""
    # The check's result is stored as the account's last check and shown next to the button;
    # only what is not a check (a refusal, a check already running) travels in the session.
    if not ReissueForm().validate_on_submit():
        session[CHECK_NOTICE] = {"outcome": ftpreport.ERROR, "text": FORM_TROUBLE}
    else:
        try:
            result = ftpcheck.check_account(current_user.account_id, trigger=ftpreport.MANUAL)
            if result.busy:
                session[CHECK_NOTICE] = {"outcome": ftpreport.WAITING, "text": result.message}
        except RenkeiError as e:
            session[CHECK_NOTICE] = {"outcome": ftpreport.ERROR, "text": e.message}
    return redirect(url_for("settings.integration") + CHECK_RESULT_ANCHOR)


@bp.route("/integration/fetch-now", methods=["POST"])
@integration_required
@admin_required
def integration_fetch_now():
    """今すぐ取得: fetch the account's mailbox at once, like `flask integration fetch-now`."""
    if not ReissueForm().validate_on_submit():
        session[FETCH_NOTICE] = {"ok": False, "text": FORM_TROUBLE}
    else:
        try:
            result = mailbox.fetch_now(current_user.account_id)
            session[FETCH_NOTICE] = {"ok": result.ok, "text": result.text}
        except RenkeiError as e:
            session[FETCH_NOTICE] = {"ok": False, "text": e.message}
    return redirect(url_for("settings.integration") + FETCH_RESULT_ANCHOR)
