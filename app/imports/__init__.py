from flask import Blueprint

bp = Blueprint("imports", __name__)

from . import routes, status  # noqa: E402,F401
