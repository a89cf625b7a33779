import math
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..errors import Invalid
from ..extensions import login_manager
from ..services import bans, users
from . import bp, sessions
from .forms import LoginForm, PasswordChangeForm

login_manager.user_loader(sessions.load_user)


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths, so a crafted link cannot send the user elsewhere.
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("main.index")


BANNED_TEXT = ("ログインの失敗が続いたため、このアドレスまたはこのメールアドレスでのログインを一時的に止めています。"
               "{wait}後にもう一度お試しください。")
TOO_SOON_TEXT = "ログインに失敗した直後のため、{wait}後にもう一度お試しください。"


def wait_text(seconds: int) -> str:
    """A wait as a person reads it: "約15分", "30秒"."""
    if seconds >= 120:
        return f"約{math.ceil(seconds / 60)}分"
    return f"{max(1, seconds)}秒"


def _refused(text: str, seconds: int):
    """The temporary refusal of a login: 429, how long it lasts, and Retry-After with the seconds actually left."""
    seconds = max(1, seconds)
    page = render_template("error.html", code=429, message=text.format(wait=wait_text(seconds)))
    return page, 429, {"Retry-After": str(seconds)}


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    address = request.remote_addr or "unknown"
    if form.validate_on_submit():
        result = bans.guarded_login(address, bans.login_key("web", form.email.data),
                                    lambda: users.authenticate(form.email.data, form.password.data))
        if result.verdict is bans.Verdict.TOO_SOON:
            return _refused(TOO_SOON_TEXT, result.retry_after)
        if result.verdict is bans.Verdict.BANNED or result.ban_started:
            return _refused(BANNED_TEXT, result.retry_after)
        if not result.passed:
            current_app.logger.info("web login failed address=%s", address)
            flash("メールアドレスまたはパスワードが正しくありません。", "error")
            return render_template("auth/login.html", form=form), 401
        sessions.begin(result.subject)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    # Logout ends every session of the user (a copied cookie, another browser): docs/decisions.md.
    users.end_sessions(current_user._get_current_object())
    sessions.end()
    flash("ログアウトしました。", "info")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            users.change_password(current_user, form.current.data, form.new.data)
        except Invalid as e:
            getattr(form, e.field or "current").errors.append(e.message)
        else:
            # The new password ended every session; this browser goes on in a new one.
            sessions.begin(current_user._get_current_object())
            flash("パスワードを変更しました。", "success")
            return redirect(url_for("main.index"))
    return render_template("auth/password.html", form=form)
