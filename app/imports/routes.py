from flask import render_template
from flask_login import login_required

from ..auth.access import admin_required
from . import bp


@bp.route("/imports")
@login_required
def history():
    return render_template("imports/placeholder.html")


@bp.route("/upload", methods=["GET", "POST"])
@admin_required
def upload():
    return render_template("imports/placeholder.html")


@bp.route("/outbox")
@login_required
def outbox():
    return render_template("imports/placeholder.html")
