from flask import render_template

from ..auth.access import integration_required
from . import bp


@bp.route("/integration")
@integration_required
def integration():
    return render_template("settings/placeholder.html", tab="integration")
