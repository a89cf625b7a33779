"""Application factory: extensions, blueprints, error handlers, CLI. Starts no listener.

Kept out of app/__init__.py so that importing a pure module (app.errors, app.importer) does not
import Flask or SQLAlchemy; `from app import create_app` still works through the package's
lazy wrapper.
"""
from __future__ import annotations

import datetime as dt
import os

from dotenv import load_dotenv
from flask import Flask, render_template, request
from sqlalchemy import event

from . import config as config_module
from .db import sqlite as sqlite_settings
from .errors import error_total
from .extensions import csrf, db, login_manager
from .formats import TIME_FORMAT, shown_number, shown_time

# Bytes a request may carry beyond the upload cap (multipart boundaries, part headers, CSRF token).
FORM_OVERHEAD_BYTES = 64 * 1024


def create_app(config: dict | None = None) -> Flask:
    """Build the app from the environment (and `.env`), then apply `config` overrides."""
    load_dotenv()
    # Named "app" (the package), not this module: the logger name and root path stay the package's.
    app = Flask("app", template_folder="../templates", static_folder="../static")
    app.config.from_mapping(config_module.from_environment())
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        JSON_AS_ASCII=False,
    )
    if config:
        app.config.update(config_module.parse_overrides(config))
    # A server's connection can drop (restart, idle timeout), so PostgreSQL's are pinged when
    # taken from the pool; a SQLite file's cannot, and the ping would cost a query on every
    # checkout (about a tenth of the SMTP spool drain's time).
    on_sqlite = app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {} if on_sqlite else {"pool_pre_ping": True})
    # The data folder holds the SQLite file, stored files and FTP homes; `flask …` commands
    # need it as much as run.py does.
    os.makedirs(app.config["DATA_DIR"], mode=0o700, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = config_module.ensure_secret_key(app.config["DATA_DIR"])
    # Flask's defaults already hold MAX_CONTENT_LENGTH (as None), so setdefault would change
    # nothing: set it unless the caller gave one. The room above the upload cap is for the
    # multipart framing and the form's other fields. run.py gives waitress the same cap.
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_UPLOAD_BYTES"] + FORM_OVERHEAD_BYTES

    # X-Forwarded-For is believed only from RENKEI_TRUSTED_PROXIES (read at each request).
    from .proxies import TrustedProxies

    app.wsgi_app = TrustedProxies(app.wsgi_app, lambda: app.config["TRUSTED_PROXIES"])

    db.init_app(app)
    _register_sqlite_listeners(app)
    from .auth import sessions

    sessions.init_app(app)  # before CSRFProtect: an ended session's CSRF token is refused
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "ログインしてください。"
    login_manager.login_message_category = "info"

    _register_blueprints(app)
    _register_template_helpers(app)
    _register_error_handlers(app)
    _register_security_headers(app)

    from .cli import register_cli

    register_cli(app)
    return app


def _register_sqlite_listeners(app: Flask) -> None:
    """Attach the SQLite connection settings to this app's engines only (not to every engine in the process)."""
    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        if engine.dialect.name != "sqlite":
            continue
        event.listen(engine, "connect", sqlite_settings.apply_settings)


def _register_blueprints(app: Flask) -> None:
    from .api import bp as api_bp
    from .auth import bp as auth_bp
    from .imports import bp as imports_bp
    from .main import bp as main_bp
    from .settings import bp as settings_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(main_bp)
    app.register_blueprint(settings_bp, url_prefix="/settings")
    app.register_blueprint(imports_bp)
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    csrf.exempt(api_bp)


def _register_template_helpers(app: Flask) -> None:
    tz = config_module.timezone(app)

    @app.template_filter("localtime")
    def localtime(value: dt.datetime | None, fmt: str = TIME_FORMAT) -> str:
        return shown_time(value, tz, fmt)

    @app.template_filter("number")
    def number(value) -> str:
        if value is None or value == "":
            return ""
        return shown_number(value)

    # How many errors a file had, when the list shown holds only the first MAX_ERRORS_PER_FILE.
    app.jinja_env.globals["error_total"] = error_total


def _register_error_handlers(app: Flask) -> None:
    messages = {
        400: "リクエストが正しくありません。",
        403: "この操作を行う権限がありません。",
        404: "ページが見つかりません。",
        405: "この操作はできません。",
        413: "ファイルが大きすぎます。",
        429: "リクエストが多すぎます。しばらくしてからお試しください。",
        500: "サーバーでエラーが発生しました。",
    }

    def handle(error):
        code = getattr(error, "code", 500) or 500
        if request.path.startswith("/api/"):
            # Every answer under /api/ is the API's JSON error shape, never an HTML page.
            from .api.routes import http_error_response

            allow = error.get_response().headers.get("Allow") if hasattr(error, "get_response") else None
            return http_error_response(code, {"Allow": allow} if allow else None)
        message = messages.get(code, "エラーが発生しました。")
        return render_template("error.html", code=code, message=message), code

    for code in messages:
        app.register_error_handler(code, handle)


def _register_security_headers(app: Flask) -> None:
    @app.after_request
    def headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        # A signed-in page shows the account's data: no cache (browser, proxy) may keep it.
        if response.mimetype == "text/html" and request.endpoint != "static" and _signed_in():
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _signed_in() -> bool:
    from flask_login import current_user

    return current_user.is_authenticated
