"""The client's address behind reverse proxies: X-Forwarded-For believed only from RENKEI_TRUSTED_PROXIES.

A request whose peer (REMOTE_ADDR) is one of the trusted proxies' addresses or networks gets
as REMOTE_ADDR the right-most address of X-Forwarded-For that is not itself trusted (each proxy
appends the address it saw; what a client wrote itself is further left and never taken), and
its X-Forwarded-Proto (the right-most value) as the URL scheme. From any other peer the headers
are ignored, so a client that reaches the web port directly cannot choose its address for the
bans, the per-address caps and the rate limits.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str | Iterable[str]) -> tuple[Network, ...]:
    """ "127.0.0.1, 10.0.0.0/8 ::1" (commas or spaces) as networks; ValueError on anything else.

    A bare number is refused on purpose: it was once the count of proxies to trust from anyone.
    """
    words = text.replace(",", " ").split() if isinstance(text, str) else [str(w).strip() for w in text]
    networks = []
    for word in words:
        if word.isdigit():
            raise ValueError(word)
        networks.append(ipaddress.ip_network(word, strict=False))
    return tuple(networks)


def _address(text: str):
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def trusted(address: str | None, networks: tuple[Network, ...]) -> bool:
    """Whether `address` (a peer's IP as text) is one of the trusted proxies."""
    parsed = _address(address or "")
    if parsed is None:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return any(parsed.version == n.version and parsed in n for n in networks)


def client_address(peer: str | None, forwarded_for: str | None, networks: tuple[Network, ...]) -> str | None:
    """The client's address: `peer`, or when `peer` is trusted the right-most untrusted X-Forwarded-For entry."""
    if not networks or not trusted(peer, networks):
        return peer
    client = peer
    for entry in reversed([e.strip() for e in (forwarded_for or "").split(",") if e.strip()]):
        if _address(entry) is None:
            break  # garbage (or a port we do not expect): keep the last address we could believe
        client = str(_address(entry))
        if not trusted(client, networks):
            break
    return client


class TrustedProxies:
    """WSGI middleware: REMOTE_ADDR and the scheme from the trusted proxies' X-Forwarded-For/-Proto.

    `networks()` gives the trusted networks at each request (the app's TRUSTED_PROXIES).
    """

    def __init__(self, app, networks: Callable[[], tuple[Network, ...]]):
        self.app = app
        self.networks = networks

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR")
        networks = self.networks()
        if networks and trusted(peer, networks):
            environ["renkei.proxy_peer"] = peer
            environ["REMOTE_ADDR"] = client_address(peer, environ.get("HTTP_X_FORWARDED_FOR"), networks)
            proto = (environ.get("HTTP_X_FORWARDED_PROTO") or "").split(",")[-1].strip().lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
        return self.app(environ, start_response)
