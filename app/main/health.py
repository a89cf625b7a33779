"""GET /healthz: whether this server's parts still serve, for load balancers and uptime checks (app/health.py).

No login, no session, no account data: the answer is the same for everyone who can reach the port.
"""
from __future__ import annotations

from flask import current_app, jsonify

from .. import health
from . import bp


@bp.route("/healthz")
def healthz():
    body = health.report(current_app)
    response = jsonify(body)
    response.status_code = 200 if body["status"] == health.OK else 503
    # Every check must see the state of now, never a proxy's copy.
    response.headers["Cache-Control"] = "no-store"
    return response
