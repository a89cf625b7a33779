"""The web port's guard against connection floods: a per-address cap and a header deadline.

waitress serves a fixed number of connections (RENKEI_WEB_MAX_CONNECTIONS; beyond it new ones
wait in the listen backlog) and closes one only after `channel_timeout` seconds without a byte,
so a client trickling one header byte a second keeps its connection for ever and a hundred of
them keep everybody else out. Two rules, on waitress' own loop (no thread, no extra socket):

- per address: a peer with RENKEI_WEB_MAX_CONNECTIONS_PER_IP connections open gets a bare
  `503` on the next one, which is closed at once. The trusted reverse proxies
  (RENKEI_TRUSTED_PROXIES) are not capped: every client behind them has their address (the
  proxy caps per client itself, see docs/nginx.conf).
- header deadline: a request's line and headers must be complete RENKEI_WEB_HEADER_TIMEOUT
  seconds after the connection was accepted, or after the first byte of a later request on a
  kept-alive connection; otherwise the connection is closed, however steadily bytes arrive.
  A body, once the headers are in, is waitress' (and the proxy's) business.
"""
from __future__ import annotations

import logging
import time

from app import proxies

from .caps import AddressCounts

log = logging.getLogger("servers.web")

BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 b"Retry-After: 10\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")


class Guard(AddressCounts):
    """The limits and the open connections per address of one web server (touched on its loop thread)."""

    def __init__(self, per_address: int, header_timeout: float, trusted: tuple = ()):
        super().__init__(per_address, exempt=lambda address: proxies.trusted(address, trusted))
        self.header_timeout = header_timeout

    @property
    def cleanup_interval(self) -> float:
        """How often waitress' maintenance looks at the channels: often enough for the deadline."""
        return max(0.1, min(30.0, self.header_timeout / 4)) if self.header_timeout > 0 else 30.0


def guarded_channel(base, guard: Guard):
    """A subclass of the waitress channel class `base` that obeys `guard`."""

    class GuardedChannel(base):
        _counted: str | None = None
        headers_since: float | None = None  # when the headers now awaited became due (None: none awaited)

        def __init__(self, server, sock, addr, adj, map=None):
            address = str(addr[0]) if isinstance(addr, tuple) and addr else "unknown"
            if not guard.enter(address):
                log.warning("web connection refused reason=too-many-connections-from address=%s", address)
                _refuse(sock)
                return  # never registered in waitress' map: this object is dropped
            self._counted = address
            super().__init__(server, sock, addr, adj, map)
            self.headers_since = time.monotonic()

        def received(self, data):
            if data and self.request is None and self.headers_since is None:
                self.headers_since = time.monotonic()  # a new request on a kept-alive connection
            accepted = super().received(data)
            if self.request is not None and not self.request.headers_finished:
                if self.headers_since is None:
                    self.headers_since = time.monotonic()
            else:
                self.headers_since = None
            return accepted

        def del_channel(self, map=None):
            super().del_channel(map)
            if self._counted is not None:
                guard.leave(self._counted)
                self._counted = None

    return GuardedChannel


def _refuse(sock) -> None:
    try:
        sock.setblocking(False)
        sock.send(BUSY_RESPONSE)
    except OSError:
        pass
    finally:
        sock.close()


def guard_listener(listener, guard: Guard) -> None:
    """Make waitress' `listener` close the connections whose headers are late (at each maintenance)."""
    base = type(listener)

    def maintenance(self, now):
        base.maintenance(self, now)
        if guard.header_timeout <= 0:
            return
        cutoff = time.monotonic() - guard.header_timeout
        for channel in list(self.active_channels.values()):
            since = getattr(channel, "headers_since", None)
            if since is not None and since < cutoff and not channel.requests:
                log.info("web connection closed reason=headers-too-slow address=%s", channel.addr[0])
                channel.headers_since = None
                channel.will_close = True

    listener.__class__ = type(f"Guarded{base.__name__}", (base,), {"maintenance": maintenance})
