from flask import Blueprint

bp = Blueprint("settings", __name__)

# Each tab of 設定 lives in its own module and attaches its routes to bp.
from . import columns, integration, members, routes, ssh_keys, users, zip_password  # noqa: E402,F401
