"""The web part: waitress serving the UI and the API from a thread; start(app) for run.py.

The connection caps and the header deadline are servers/webguard.py's."""
from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

# Seconds stop() waits for requests in progress and for the thread.
STOP_TIMEOUT = 15.0


class WebServer:
    """Waitress serving the app from a thread; stop() closes every socket and ends the thread."""

    def __init__(self, app, host: str, port: int, threads: int = 8) -> None:
        import waitress
        from waitress.server import BaseWSGIServer
        from waitress.trigger import trigger

        from app import config

        from .webguard import Guard, guard_listener, guarded_channel

        # Our own socket map, so that stop() can close exactly this server's sockets.
        self._map: dict = {}
        # Waitress reads a whole body (spooling it to a temporary file) before the app sees the
        # request, so the app's MAX_CONTENT_LENGTH alone would still let a client fill the disk:
        # waitress itself refuses a larger body (by Content-Length before reading it, chunked
        # as soon as it passes the cap), with the app's own 413 message.
        body_cap = app.config["MAX_CONTENT_LENGTH"]
        self.guard = Guard(config.get(app, "WEB_MAX_CONNECTIONS_PER_IP"), config.get(app, "WEB_HEADER_TIMEOUT"),
                           config.get(app, "TRUSTED_PROXIES"))
        self._server = waitress.create_server(
            app, map=self._map, host=host, port=port, threads=threads, ident="Renkei",
            max_request_body_size=body_cap + 1,  # waitress refuses >= its size
            connection_limit=config.get(app, "WEB_MAX_CONNECTIONS"),
            # waitress would drop every X-Forwarded-* header (it trusts no proxy here): the app's
            # TrustedProxies middleware (app/proxies.py) decides whom to believe.
            clear_untrusted_proxy_headers=False)
        sockets = [s for s in self._map.values() if isinstance(s, BaseWSGIServer)]
        for adj in {id(s.adj): s.adj for s in [self._server, *sockets]}.values():
            # Set after parsing: waitress reads both as whole seconds. The loop wakes at least this
            # often, so its maintenance (and the header deadline) runs in time.
            adj.cleanup_interval = self.guard.cleanup_interval
            adj.asyncore_loop_timeout = min(1.0, self.guard.cleanup_interval)
        channel = guarded_channel(_channel_refusing_large_bodies(app), self.guard)
        for listener in sockets:
            listener.channel_class = channel
            guard_listener(listener, self.guard)
        self._listeners = sockets
        self._trigger = next(s for s in self._map.values() if isinstance(s, trigger))
        self.listeners = [f"http://{url_host(s.effective_host)}:{s.effective_port}/" for s in sockets]
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)

    def start(self) -> "WebServer":
        """Serve requests in a background thread."""
        self._thread.start()
        return self

    def alive(self) -> bool:
        """Whether waitress' loop thread still serves (GET /healthz; a dead one cannot answer it at all)."""
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._server.run()
        except Exception:  # a dead web thread must show up in the log, not vanish
            log.exception("web server stopped unexpectedly")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Refuse new connections, let requests in progress finish, close all sockets, join the thread."""
        from waitress import wasyncore

        # Sockets are closed from the loop thread itself (via the trigger): closing them from
        # here while the loop sits in select() would make select() fail with EBADF.
        listeners_closed = threading.Event()

        def close_listeners() -> None:
            for listener in self._listeners:
                wasyncore.dispatcher.close(listener)
            listeners_closed.set()

        if not self._thread.is_alive():
            wasyncore.close_all(self._map)
            return
        self._trigger.pull_trigger(close_listeners)
        listeners_closed.wait(timeout)
        self._server.task_dispatcher.shutdown(timeout=timeout)
        # Emptying the map ends waitress' loop, so the thread returns.
        self._trigger.pull_trigger(lambda: wasyncore.close_all(self._map))
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("web server thread did not end within %.0f s", timeout)


def _channel_refusing_large_bodies(app):
    """A waitress channel class whose 413 (body over the cap) is the app's answer, not waitress' English text:
    the API's JSON error under /api/, the Japanese error page elsewhere."""
    import json

    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser
    from waitress.utilities import Error, RequestEntityTooLarge

    from app.api.routes import error_body

    cap = app.config["MAX_UPLOAD_BYTES"]
    size = f"{cap / (1024 * 1024):g} MB" if cap >= 1024 * 1024 else f"{cap:,} バイト"
    message = f"ファイルが大きすぎます(上限 {size})。"
    api_body = json.dumps(error_body("payload_too_large", f"ファイルが大きすぎます(上限 {cap:,} バイト)。",
                                     f"The file is too large (limit {cap:,} bytes)."), ensure_ascii=False)
    with app.test_request_context("/"):
        from flask import render_template

        page = render_template("error.html", code=413, message=message)

    class TooLarge(Error):
        code = 413
        reason = "Request Entity Too Large"

        def __init__(self, path: str):
            super().__init__("")
            self.path = path or ""

        def to_response(self, ident=None):
            if self.path.startswith("/api/"):
                body, kind = api_body, "application/json"
            else:
                body, kind = page, "text/html; charset=utf-8"
            return f"{self.code} {self.reason}", [("Content-Type", kind)], body.encode("utf-8")

    class Parser(HTTPRequestParser):
        def received(self, data):
            consumed = super().received(data)
            if isinstance(self.error, RequestEntityTooLarge):
                self.error = TooLarge(self.path)
            return consumed

    return type("RenkeiChannel", (HTTPChannel,), {"parser_class": Parser})


def start(app) -> WebServer:
    """Serve the UI and the API with waitress (never Flask's development server) on HOST:WEB_PORT."""
    return WebServer(app, app.config["HOST"], app.config["WEB_PORT"]).start()


def url_host(host: str) -> str:
    """`host` as it goes into a URL: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host else host
