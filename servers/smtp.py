"""The built-in SMTP server (メール添付連動): the aiosmtpd session, limits, STARTTLS, the loop thread and start(app).

A mail to an account's issued address (送信先メールアドレス) from one of its registered
senders (送信元メールアドレス) is written whole to the durable spool (`app.services.spool`,
`{DATA_DIR}/spool/mail/`, file and folder fsynced) before this server answers `250`; only its
header block is parsed before that (the From: check). A drain thread owned by RunningSmtp then
parses each entry in order (MIME, in the parse processes) and hands each CSV to
`services.ingest.receive`. Why not commit to the DB before `250`: on SQLite a running import
holds the only write lock for its whole transaction, so every `250` waited behind imports. Why
not parse the attachments before `250`: a full parse of a 1 MB mail is ~30 ms of CPU, several
times the cost of the spool write. The import itself runs on the worker; this server only stores.

The spool is per machine: the `smtp` part drains its own spool (at start, leftovers of a crash
first), so in a multi-machine setup each SMTP host needs its own data folder (the database may
be shared). A mail acknowledged just before a crash is imported when that host's SMTP part
starts again; the dedupe keys (the entry's random delivery id + part index + part hash) make a
drain repeated after a lost delete harmless. They are not the Message-ID: the same message
delivered again (mutt's bounce, a saved .eml sent again) is a new delivery and a new import.

Where the parts live: `mailhandler.py` (the RCPT and DATA decisions and their replies),
`recipients.py` (the recipient look-up and its cache), `spooldrain.py` (the drain, the MIME
parse, the imports of a mail), `smtpservices.py` (the wiring to the app). This module is the
server: the session with its line rule, the connection cap, the event loop thread, STARTTLS,
start(app).

Decisions of this module (the handler's are in `mailhandler.py`, the drain's in `spooldrain.py`):
- Lines: bare LF and lines of any length are accepted up to the message cap (as Postfix
  does); bare LFs become CRLF before the message is spooled (mailparse.normalise_line_ends).
  A message over the cap gets `552 5.3.4` and each account of its RCPTs records the refusal.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, syntax

from app import config

from .caps import AddressCounts
from .loopthread import LoopThread
from .mailhandler import CHANNEL, MailHandler, _peer
from .mailparse import parse_mail
from .smtpdata import BlockData
from .smtpservices import build_drainer, build_handler
from .spooldrain import ParsePool, SpoolDrainer

log = logging.getLogger(__name__)

TOO_BIG_REPLY = "552 5.3.4 Message too big for system"
TOO_BIG_NOTE = (
    "メールの大きさが上限({limit:,}バイト)を超えているため受信を拒否しました。"
    "添付ファイルを1通に1つずつにして送り直すか、管理者に上限(RENKEI_SMTP_MAX_BYTES)の変更を相談してください"
)

# Defaults of the limits; each one is overridable by app.config or a RENKEI_* variable.
DEFAULT_MAX_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 50
DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 10  # Postfix's smtpd_client_connection_count_limit is 50
DEFAULT_MAIL_TIMEOUT = 30.0  # seconds a session may go without MAIL (from connect or its last mail's end)
DEFAULT_MAX_COMMANDS = 100  # per command name and session (aiosmtpd command_call_limit)
DEFAULT_TIMEOUT = 300.0  # RFC 5321 4.5.3.2.7: a server should wait at least 5 minutes
EXECUTOR_THREADS = 8


# ---------------------------------------------------------------------------------------
# The server: our own loop thread, so port 0 works and the connection cap sits in the factory.


BUSY_REPLY = b"421 4.7.0 Too many connections, try again later\r\n"
ADDRESS_BUSY_REPLY = b"421 4.7.0 Too many connections from your address, try again later\r\n"
MAIL_TIMEOUT_REPLY = b"421 4.4.2 No mail transaction in time, closing connection\r\n"


class _Busy(asyncio.Protocol):
    """Answers a connection beyond the cap with 421 and hangs up."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(BUSY_REPLY)  # type: ignore[attr-defined]
        transport.close()


class _Session(BlockData, SMTP):
    """aiosmtpd's SMTP protocol with Renkei's line rule, its over-size record and the connection cap.

    DATA is read in blocks (`smtpdata.BlockData`, not aiosmtpd's line loop): same end, unstuffing,
    size and answers, a fraction of the CPU per message.

    Lines: RFC 5321 allows 1,000 bytes, but curl `-T` without `--crlf`, smtplib with LF-only
    bytes and unwrapped base64 send far longer "lines" (a bare-LF message is one line until its
    final CRLF). As Postfix does, any line length is accepted up to the message cap: the line
    limit is the cap plus the CRLF and a stuffed dot, so a line can be over it only when the
    message is, and that answer is the size answer (`552`), never `500 Line too long`. The
    reader's buffer per session is thereby bounded by the cap, as the message already was.

    A message refused by the protocol after DATA (over the cap) never reaches the handler; it
    is recorded here (per account of its RCPTs) so the sender's attempt is in 取込履歴.

    Floods: a peer address with `addresses.limit` sessions open gets `421 4.7.0` (only the
    excess connection), and a session that has not begun a mail (MAIL accepted) within
    `mail_timeout` seconds of its start or of its last mail's end gets `421 4.4.2` and is
    closed, however busy it keeps itself meanwhile (NOOP, RSET, EHLO).
    """

    def __init__(self, handler, *, on_close: Callable[[], None], on_refused: Callable[..., Any] | None = None,
                 addresses: AddressCounts | None = None, mail_timeout: float = 0.0, **kwargs):
        limit = kwargs.get("data_size_limit")
        if limit:
            self.line_length_limit = int(limit) + 3  # read by SMTP.__init__ (the reader's buffer limit)
        self._mail_timeout = mail_timeout
        self._mail_deadline: asyncio.TimerHandle | None = None
        super().__init__(handler, **kwargs)
        self._on_close: Callable[[], None] | None = on_close
        self._on_refused = on_refused
        self._in_data = False
        self._addresses = addresses
        self._address: str | None = None  # counted in _addresses while the session lasts
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._addresses is not None and self.transport is None:  # not the STARTTLS re-entry
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if peer else "unknown"
            if not self._addresses.enter(address):
                log.warning("smtp connection refused channel=%s reason=too-many-connections-from address=%s",
                            CHANNEL, address)
                self._refused = True
                transport.write(ADDRESS_BUSY_REPLY)  # type: ignore[attr-defined]
                transport.close()
                return
            self._address = address
        super().connection_made(transport)

    def _set_post_data_state(self) -> None:
        super()._set_post_data_state()  # a new envelope: no mail in progress
        if self._mail_deadline is None:  # connect, a mail's end or RSET after MAIL; EHLO keeps the running one
            self._arm_mail_deadline()

    def _arm_mail_deadline(self) -> None:
        if self._mail_timeout > 0:
            self._mail_deadline = self.loop.call_later(self._mail_timeout, self._mail_timed_out)

    def _mail_timed_out(self) -> None:
        self._mail_deadline = None
        if self.transport is not None and not self._in_data:
            log.info("smtp session closed channel=%s reason=no-mail-in-time peer=%s", CHANNEL, _peer(self.session))
            self.transport.write(MAIL_TIMEOUT_REPLY)  # type: ignore[attr-defined]
            self.transport.close()

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str) -> None:
        await super().smtp_MAIL(arg)
        if self.envelope.mail_from is not None and self._mail_deadline is not None:
            self._mail_deadline.cancel()  # a mail has begun: the idle timeout alone applies until it ends
            self._mail_deadline = None

    async def push(self, status: str) -> None:
        if self._in_data and (status.startswith("500 Line too long") or status.startswith("552")):
            # Only a message over the cap has a line over the limit (see above): one answer for both.
            status = TOO_BIG_REPLY
            await self._record_too_big()
        await super().push(status)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        self._in_data = True
        try:
            await super().smtp_DATA(arg)
        finally:
            self._in_data = False

    async def _record_too_big(self) -> None:
        """Record the refused message per account, before its answer (the client may hang up right after)."""
        envelope = self.envelope
        recipients = list(getattr(envelope, "renkei_recipients", {}).values())
        if not recipients or self._on_refused is None:
            return
        reason = TOO_BIG_NOTE.format(limit=self.data_size_limit or 0)
        try:
            await self.loop.run_in_executor(None, lambda: self._on_refused(
                recipients, envelope_from=envelope.mail_from, reason=reason, peer=_peer(self.session)))
        except Exception:  # the sender gets its answer all the same; a lost history line must not end the session
            log.exception("smtp refusal not recorded channel=%s", CHANNEL)

    def connection_lost(self, error: Exception | None) -> None:
        if self._mail_deadline is not None:
            self._mail_deadline.cancel()
            self._mail_deadline = None
        if self._address is not None and self._addresses is not None:
            self._addresses.leave(self._address)
            self._address = None
        try:
            if not self._refused:  # a refused connection never started aiosmtpd's session
                super().connection_lost(error)
        finally:
            if self._on_close is not None:
                on_close, self._on_close = self._on_close, None
                on_close()


@dataclass(frozen=True)
class Limits:
    """The configurable limits of the SMTP server."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_address: int = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS
    mail_timeout: float = DEFAULT_MAIL_TIMEOUT
    max_commands: int = DEFAULT_MAX_COMMANDS
    timeout: float = DEFAULT_TIMEOUT


class RunningSmtp:
    """An SMTP server on its own event loop thread; `.port` is the bound port, `.stop()` ends it."""

    def __init__(
        self,
        handler: MailHandler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: Limits = Limits(),
        tls_context: ssl.SSLContext | None = None,
        require_tls: bool = False,
        hostname: str | None = None,
        parse_pool: ParsePool | None = None,
        drainer: SpoolDrainer | None = None,
    ):
        self.handler = handler
        self.parse_pool = parse_pool
        self.drainer = drainer
        self.host = host
        self.port = port
        self.limits = limits
        self.tls_context = tls_context
        self.require_tls = bool(tls_context and require_tls)
        self.hostname = hostname or "localhost"
        self.active_connections = 0
        self.addresses = AddressCounts(limits.max_connections_per_address)
        self._loop = asyncio.new_event_loop()
        self._executor = ThreadPoolExecutor(max_workers=EXECUTOR_THREADS, thread_name_prefix="smtp-store")
        self._loop.set_default_executor(self._executor)
        self._server: asyncio.AbstractServer | None = None
        self._serving: LoopThread | None = None

    @property
    def listeners(self) -> list[str]:
        """URLs shown by run.py at start-up."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return [f"smtp://{host}:{self.port}"]

    def alive(self) -> bool:
        """Whether the loop thread still serves and the spool drain still runs (GET /healthz).

        A mail answered `250` but never drained is not imported, so a dead drain is a dead part."""
        serving = self._serving is not None and self._serving.serving()
        return serving and (self.drainer is None or self.drainer.alive())

    def start(self, timeout: float = 10.0) -> RunningSmtp:
        """Start the spool drain, then bind and serve in a background thread; raise if the port cannot be bound."""
        if self.drainer is not None:
            self.drainer.start()  # before accepting mail: it cleans crash leftovers first
        self._serving = LoopThread(self._loop, "smtp", self._open, self._wind_down)
        try:
            started = self._serving.start(timeout)
        except BaseException:
            if self.drainer is not None:
                self.drainer.stop()
            if self.parse_pool is not None:
                self.parse_pool.shutdown()
            raise
        if not started:
            raise TimeoutError("SMTP server did not start in time")
        log.info("smtp listening on %s:%s (max %d bytes, %d connections, %d per address, tls %s)", self.host,
                 self.port, self.limits.max_bytes, self.limits.max_connections,
                 self.limits.max_connections_per_address,
                 "required" if self.require_tls else ("on" if self.tls_context else "off"))
        return self

    async def _open(self) -> None:
        self._server = await self._loop.create_server(self._new_connection, host=self.host, port=self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def _wind_down(self) -> None:
        self._server.close()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.run_until_complete(self._server.wait_closed())
        # A delivery already inside the executor finishes its spool write; its client saw no
        # 250 and will retry: a second import of the same file, which replaces the first.
        self._executor.shutdown(wait=True)

    def _new_connection(self) -> asyncio.Protocol:
        if self.active_connections >= self.limits.max_connections:
            log.warning("smtp connection refused channel=%s reason=too-many-connections (%d)", CHANNEL,
                        self.active_connections)
            return _Busy()
        self.active_connections += 1
        return _Session(
            self.handler,
            on_close=self._connection_closed,
            on_refused=getattr(self.handler, "refuse_unreceived", None),
            addresses=self.addresses,
            mail_timeout=self.limits.mail_timeout,
            loop=self._loop,
            hostname=self.hostname,
            ident="Renkei ESMTP",
            data_size_limit=self.limits.max_bytes,
            enable_SMTPUTF8=True,
            timeout=self.limits.timeout,
            command_call_limit=self.limits.max_commands,
            tls_context=self.tls_context,
            require_starttls=self.require_tls,
        )

    def _connection_closed(self) -> None:
        self.active_connections -= 1

    def stop(self, timeout: float = 15.0) -> None:
        """Stop listening, close the sessions, let a store in progress finish, end the threads."""
        if self._serving is None:
            return
        thread = self._serving.thread
        if thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(timeout)
            if thread.is_alive():
                log.warning("smtp thread did not end within %.0f s", timeout)
        self._serving = None
        if self.drainer is not None:
            self.drainer.stop(timeout)
        if self.parse_pool is not None:  # after the drain: it parses with the pool
            self.parse_pool.shutdown()
        log.info("smtp stopped")


def tls_context_from(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """A server TLS context for STARTTLS from a PEM certificate (chain) and key; None when not configured."""
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key or None)
    return context


def start(app) -> RunningSmtp:
    """Start the SMTP server for `app` on HOST:SMTP_PORT (0 = a free port) and return it running."""
    # aiosmtpd logs every command at INFO; we log one line per message instead.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    limits = Limits(
        max_bytes=config.get(app, "SMTP_MAX_BYTES"),
        max_connections=config.get(app, "SMTP_MAX_CONNECTIONS"),
        max_connections_per_address=config.get(app, "SMTP_MAX_CONNECTIONS_PER_IP"),
        mail_timeout=config.get(app, "SMTP_MAIL_TIMEOUT"),
        max_commands=config.get(app, "SMTP_MAX_COMMANDS"),
        timeout=config.get(app, "SMTP_TIMEOUT"),
    )
    tls = tls_context_from(config.get(app, "SMTP_TLS_CERT"), config.get(app, "SMTP_TLS_KEY"))
    require_tls = config.get(app, "SMTP_REQUIRE_TLS")
    if require_tls and tls is None:
        raise RuntimeError("RENKEI_SMTP_REQUIRE_TLS is set but RENKEI_SMTP_TLS_CERT is not")
    processes = config.get(app, "SMTP_PARSE_PROCESSES")
    pool = ParsePool(processes) if processes > 0 else None
    drainer = build_drainer(app, pool or parse_mail)
    server = RunningSmtp(
        build_handler(app, pool or parse_mail, drainer),
        parse_pool=pool,
        drainer=drainer,
        host=app.config.get("HOST", "127.0.0.1"),
        port=int(app.config.get("SMTP_PORT", 2525)),
        limits=limits,
        tls_context=tls,
        require_tls=require_tls,
        hostname=app.config.get("MAIL_DOMAIN") or "localhost",
    )
    return server.start()
