"""Deliver outbox mails through the configured SMTP relay (RENKEI_SMTP_RELAY)."""
from __future__ import annotations

import datetime as dt
import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:  # only for hints: the mailer knows SMTP, not the database
    from app.models import OutboxMail

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Relay:
    """Where and how to hand mails over: smtp:// (optionally STARTTLS) or smtps:// (implicit TLS)."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None


def parse_relay_url(relay_url: str) -> Relay:
    """Parse `smtp://user:pass@host:587?starttls=1` or `smtps://user:pass@host:465`."""
    parts = urlsplit(relay_url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ValueError(f"RENKEI_SMTP_RELAY must start with smtp:// or smtps://, not {relay_url!r}")
    if not parts.hostname:
        raise ValueError(f"RENKEI_SMTP_RELAY has no host: {relay_url!r}")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    implicit_tls = scheme == "smtps"
    starttls = not implicit_tls and query.get("starttls", "0").lower() in _TRUE
    default_port = 465 if implicit_tls else (587 if starttls else 25)
    return Relay(
        host=parts.hostname,
        port=parts.port or default_port,
        implicit_tls=implicit_tls,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def build_message(mail: OutboxMail, mail_from: str) -> EmailMessage:
    """Return the outbox mail as a UTF-8 EmailMessage with Date and a Message-ID stable across retries."""
    message = EmailMessage()  # default policy: RFC 2047 encodes the Japanese subject, UTF-8 body
    message["Subject"] = mail.subject
    message["From"] = formataddr(("Renkei", parseaddr(mail_from)[1] or mail_from))
    message["To"] = ", ".join(mail.to_addrs)
    message["Date"] = format_datetime(_aware(mail.created_at))
    domain = (parseaddr(mail_from)[1] or mail_from).rpartition("@")[2] or "renkei.localhost"
    # The same id on every retry lets a recipient's server drop a duplicate after a lost reply.
    stamp = int(_aware(mail.created_at).timestamp())
    message["Message-ID"] = f"<renkei-outbox-{mail.id}-{stamp}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.body, charset="utf-8")
    return message


def _aware(value: dt.datetime | None) -> dt.datetime:
    value = value or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return value.replace(tzinfo=dt.timezone.utc)


def relay_sender(relay_url: str, mail_from: str) -> Callable[[OutboxMail], None]:
    """Return a function that sends one outbox mail through the relay (raises on any failure)."""
    relay = parse_relay_url(relay_url)
    envelope_from = parseaddr(mail_from)[1] or mail_from

    def send(mail: OutboxMail) -> None:
        message = build_message(mail, mail_from)
        if relay.implicit_tls:
            client = smtplib.SMTP_SSL(relay.host, relay.port, timeout=TIMEOUT_SECONDS,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(relay.host, relay.port, timeout=TIMEOUT_SECONDS)
        with client:
            client.ehlo()
            if relay.starttls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if relay.username:
                client.login(relay.username, relay.password or "")
            refused = client.send_message(message, from_addr=envelope_from, to_addrs=list(mail.to_addrs))
        if refused:
            # smtplib raises when every recipient is refused; a partial refusal is not retried,
            # since the others already have the mail.
            log.warning("mail #%s: relay refused %s", mail.id,
                        ", ".join(f"{addr} ({code})" for addr, (code, _reason) in refused.items()))

    return send
