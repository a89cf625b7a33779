from flask import render_template
from flask_login import login_required

from . import bp


@bp.route("/columns")
@login_required
def columns():
    return render_template("settings/placeholder.html", tab="columns")
