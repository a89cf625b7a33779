from flask import redirect, url_for
from flask_login import login_required

from . import bp


@bp.route("/")
@login_required
def index():
    return redirect(url_for("settings.members"))
