"""DKIM and SPF of one received mail, through one DNS client with a short timeout and a small cache.

Pure of Flask and the database: `Verifier(dns).verify(raw, origin)` → `Authentication`. The
SMTP spool drain runs it before the mail's imports (after `250`, so DNS never delays an answer);
admission decides what a result means for an account (`admission.authenticated`).

Results are the words of RFC 8601: pass, fail, none, neutral, softfail, temperror, permerror.
- DKIM: every DKIM-Signature (at most MAX_SIGNATURES) is verified; the first that passes gives
  `pass` and its d= domain; otherwise the first signature's failure: a key that does not
  verify the message → fail, no key or a bad key → permerror, a DNS timeout → temperror;
  no signature → none.
- SPF (pyspf): the envelope sender's domain, the peer address and the HELO name.

pyspf looks names up through its module-level `DNSLookup`; it is pointed at `_spf_lookup`,
which asks the DNS client of the check running in this thread. pyspf, dkimpy and dnspython
are imported where they are used (0.15 s of start-up): only the spool drain needs them, and
every process, the CLI too, imports this module through the app.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_SIGNATURES = 5
CACHE_ENTRIES = 1024  # beyond this many names the cache starts over (bounded memory)
NEGATIVE_SECONDS = 60.0  # how long "no such name / no record" is reused (capped by the cache time)
SPF_LOOKUPS_BUDGET = 4  # an SPF check may take this many times the per-look-up timeout in all
# After a look-up timed out, every look-up is a temporary error at once for this long: a box
# without DNS pays one timeout per period, not one per message.
DOWN_SECONDS = 30.0


# How the import's page names each result.
RESULT_LABELS = {
    "pass": "合格(pass)", "fail": "不合格(fail)", "softfail": "不合格の疑い(softfail)",
    "neutral": "判定なし(neutral)", "none": "なし(none)", "temperror": "一時的なエラー(temperror)",
    "permerror": "設定の誤り(permerror)",
}


class DnsTemporaryError(Exception):
    """The look-up did not get an answer in time (or no server could answer): try again later."""


@dataclass(frozen=True)
class Origin:
    """Who delivered a mail, as the SMTP session saw it."""

    mail_from: str  # the envelope sender (MAIL FROM), "" for a bounce
    peer_address: str  # the client's IP address
    helo_name: str  # what it said in HELO/EHLO

    def columns(self) -> dict[str, str | None]:
        return {"mail_from": self.mail_from or None, "peer_address": self.peer_address or None,
                "helo_name": (self.helo_name or "")[:255] or None}


@dataclass(frozen=True)
class Authentication:
    """What DKIM and SPF said of one mail."""

    dkim: str = "none"
    dkim_domain: str | None = None  # d= of the signature that passed (or of the first one checked)
    spf: str = "none"

    def columns(self) -> dict[str, str | None]:
        return {"dkim_result": self.dkim, "dkim_domain": self.dkim_domain, "spf_result": self.spf}


def parse_server(text: str | None) -> tuple[str, int] | None:
    """RENKEI_DNS_SERVER as (address, port): "192.0.2.53", "192.0.2.53:5353", "[::1]:5353"; None = system."""
    text = (text or "").strip()
    if not text:
        return None
    port = 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
        port = int(number)
    else:
        host = text
    ipaddress.ip_address(host)  # a resolver is named by its address: no look-up to find the look-up server
    return host, port


class DnsClient:
    """DNS answers for DKIM and SPF: one resolver, a per-look-up timeout, answers reused within their TTL.

    The cache keeps an answer for min(its TTL, `max_seconds`), a missing name or record for
    min(NEGATIVE_SECONDS, `max_seconds`), and never a timeout; after a timeout the server counts
    as down for DOWN_SECONDS (temperror at once). Thread-safe.
    """

    def __init__(self, server: str | None = None, timeout: float = 3.0, max_seconds: float = 300.0,
                 clock: Callable[[], float] = time.monotonic):
        import dns.resolver

        parsed = parse_server(server)
        if parsed is None:
            try:
                self.resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                self.resolver = None  # every look-up is a temporary error, as with a server that is down
        else:
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = [parsed[0]]
            self.resolver.port = parsed[1]
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.clock = clock
        self._cache: dict[tuple[str, str], tuple[float, list]] = {}
        self._lock = threading.Lock()
        self._down_until = 0.0

    def query(self, name: str, rdtype: str, timeout: float | None = None) -> list:
        """The records of `name` (a list of dnspython rdata; [] when there are none); DnsTemporaryError on timeout."""
        key = (name.lower().rstrip("."), rdtype.upper())
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        if self.resolver is None:
            raise DnsTemporaryError("no DNS resolver is configured")
        if now < self._down_until:
            raise DnsTemporaryError("the DNS server did not answer a moment ago")
        import dns.exception
        import dns.resolver

        lifetime = min(timeout or self.timeout, self.timeout)
        try:
            answer = self.resolver.resolve(key[0] + ".", key[1], lifetime=lifetime, search=False,
                                           raise_on_no_answer=False)
            records = list(answer.rrset or [])
            ttl = float(answer.rrset.ttl) if answer.rrset is not None else NEGATIVE_SECONDS
        except dns.resolver.NXDOMAIN:
            records, ttl = [], NEGATIVE_SECONDS
        except dns.exception.Timeout as error:
            self._down_until = self.clock() + DOWN_SECONDS
            log.warning("DNS look-up timed out name=%s type=%s; DNS treated as down for %.0f s", key[0], key[1],
                        DOWN_SECONDS)
            raise DnsTemporaryError(str(error)) from error
        except (dns.resolver.NoNameservers, OSError) as error:
            raise DnsTemporaryError(str(error)) from error
        with self._lock:
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = (now + min(ttl, self.max_seconds), records)
        return records

    def txt(self, name: str) -> list[bytes]:
        return [b"".join(record.strings) for record in self.query(name, "TXT")]


# ---------------------------------------------------------------------------- SPF through pyspf

_current = threading.local()  # the DnsClient of the SPF check running in this thread


def _spf_lookup(name, qtype, strict=True, timeout=None):
    """pyspf's DNSLookup contract: [((name, type), value)], TempError when DNS did not answer."""
    client: DnsClient = _current.client
    try:
        records = client.query(name, qtype, timeout)
    except DnsTemporaryError as error:
        import spf

        raise spf.TempError(f"DNS {error}") from error
    out = []
    for record in records:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), record.address))
        elif qtype == "MX":
            out.append(((name, qtype), (record.preference, record.exchange)))
        elif qtype == "PTR":
            out.append(((name, qtype), record.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), record.strings))
    return out



class Verifier:
    """DKIM and SPF of one mail with one DNS client (see the module docstring)."""

    def __init__(self, client: DnsClient):
        self.client = client

    def verify(self, raw: bytes, origin: Origin) -> Authentication:
        result, domain = self.dkim(raw)
        return Authentication(dkim=result, dkim_domain=domain, spf=self.spf(origin))

    def dkim(self, raw: bytes) -> tuple[str, str | None]:
        import dkim

        try:
            checker = dkim.DKIM(raw, timeout=self.client.timeout)
            count = sum(1 for name, _ in checker.headers if name.lower() == b"dkim-signature")
        except dkim.DKIMException:
            return "permerror", None
        if not count:
            return "none", None
        first: tuple[str, str | None] | None = None
        for index in range(min(count, MAX_SIGNATURES)):
            problem: list[str] = []
            try:
                passed = checker.verify(idx=index, dnsfunc=self._dkim_txt(problem))
            except dkim.ValidationError:  # e.g. the body hash does not match: the message was changed
                passed, problem[:] = False, ["fail"]
            except dkim.DKIMException:  # a malformed signature or key
                passed, problem[:] = False, ["permerror"]
            domain = _text(getattr(checker, "domain", None))
            if passed:
                return "pass", domain
            if first is None:
                first = (problem[0] if problem else "fail", domain)
        return first

    def _dkim_txt(self, problem: list[str]):
        """dkimpy's dnsfunc: the key record's text, noting why there was none (permerror or temperror)."""
        import dkim

        def lookup(name, timeout=None):
            text = name.decode("ascii", "replace") if isinstance(name, bytes) else str(name)
            try:
                records = self.client.txt(text)
            except DnsTemporaryError as error:
                problem[:] = ["temperror"]
                raise dkim.DnsTimeoutError(str(error)) from error
            # No key record is a permerror; with one, a signature that does not verify is a fail.
            problem[:] = ["fail" if records else "permerror"]
            return records[0] if records else None
        return lookup

    def spf(self, origin: Origin) -> str:
        import spf as pyspf

        if not origin.peer_address or not origin.mail_from:
            return "none"
        pyspf.DNSLookup = _spf_lookup  # the same function every time: set where pyspf is first needed
        _current.client = self.client
        try:
            query = pyspf.query(i=origin.peer_address, s=origin.mail_from, h=origin.helo_name or "unknown",
                              timeout=self.client.timeout, querytime=self.client.timeout * SPF_LOOKUPS_BUDGET)
            result, _code, _explanation = query.check()
        except Exception:  # pyspf raises on malformed input it should have rated; never lose the mail for it
            log.exception("spf check failed mail_from=%s peer=%s", origin.mail_from, origin.peer_address)
            result = "permerror"
        finally:
            _current.client = None
        return str(result).lower()


def _text(value) -> str | None:
    if value is None:
        return None
    return (value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)).lower()


def aligned(domain: str | None, address: str | None) -> bool:
    """True when `domain` (a DKIM d=) is the domain of `address` or a parent of it (relaxed alignment)."""
    if not domain or not address or "@" not in address:
        return False
    own = address.rsplit("@", 1)[1].lower().rstrip(".")
    domain = domain.lower().rstrip(".")
    return own == domain or own.endswith("." + domain)
