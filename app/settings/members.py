from flask import render_template
from flask_login import login_required

from . import bp


@bp.route("/members")
@login_required
def members():
    return render_template("settings/placeholder.html", tab="members")
