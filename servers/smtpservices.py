"""Wiring of the SMTP server to the app: the only place that knows the services.

Each call runs in its own app context (a fresh session), in the loop's executor or the drain thread.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from app import config
from app.services import accounts, spool
from app.services.admission import Standing
from app.services.senderauth import DnsClient, Origin, Verifier

from .mailhandler import CHANNEL, MailHandler
from .mailparse import ParsedMail, parse_mail
from .recipients import (
    Recipient,
    RecipientCache,
    _listen_for_recipient_changes,
)
from .spooldrain import MailImporter, SpoolDrainer

log = logging.getLogger("servers.smtp")  # the log lines keep the logger name they had before the split


class _AppServices:
    """Binds the ingest and integration services, each call in its own app context (fresh session)."""

    def __init__(self, app, parse: Callable[[bytes], ParsedMail] = parse_mail):
        self.app = app
        dns = DnsClient(config.get(app, "DNS_SERVER"), timeout=config.get(app, "DNS_TIMEOUT_SECONDS"),
                        max_seconds=config.get(app, "DNS_CACHE_SECONDS"))
        self.importer = MailImporter(ingest=self.receive, record_failure=self.record_failure, parse=parse,
                                     authenticate=Verifier(dns).verify, standing=self.standing)

    def standing(self, account_id: int) -> Standing:
        """What admission reads of the account now (the drain applies its 送信元の認証)."""
        from app.extensions import db
        from app.models import Account
        from app.services import integration

        with self.app.app_context():
            account = db.session.get(Account, account_id)
            return Standing.of(account, integration.get_settings(account_id)) if account else Standing(False, "", "")

    def resolve_recipient(self, address: str) -> Recipient | None:
        from app.services import integration

        with self.app.app_context():
            account = integration.account_for_inbound_address(address)
            account_id = account.id if account is not None else None
        return self.recipient_of(account_id) if account_id is not None else None

    def recipient_of(self, account_id: int) -> Recipient | None:
        """The account as the handler sees a recipient (a mailbox fetch has no address to look up)."""
        from app.extensions import db
        from app.models import Account
        from app.services import integration

        with self.app.app_context():
            account = db.session.get(Account, account_id)
            if account is None:
                return None
            standing = Standing.of(account, integration.get_settings(account.id))
            return Recipient(account_id=account.id, label=account.slug, mode=standing.mode, status=standing.status,
                             senders=standing.senders, enabled=standing.enabled, networks=standing.networks)

    def store_spooled(self, entry: spool.Entry) -> None:
        """Move one spool entry into the database (the drain's store): a mail is parsed into its imports."""
        from app.extensions import db
        from app.models import Account

        with self.app.app_context():
            account_ids = [a for a in (entry.account_ids or (entry.account_id,)) if db.session.get(Account, a)]
        if not account_ids:
            raise spool.Unstorable(f"account(s) {entry.account_ids or entry.account_id} no longer exist")
        origin = Origin(**entry.origin) if entry.origin else None
        self.importer.import_mail(account_ids, entry.data, sender=entry.sender or "",
                                  label=",".join(f"#{a}" for a in account_ids), delivery=entry.delivery, origin=origin)

    def receive(self, account_id: int, filename: str, data: bytes, *, sender: str | None,
                dedupe_key: str | None, note: str | None, ignored: list[str] | None = None,
                trace: dict | None = None) -> None:
        """Store one file as a queued import (a repeat of its dedupe key stores nothing)."""
        from app.services import ingest

        with self.app.app_context():
            imp = ingest.receive(account_id, filename, data, channel=CHANNEL, sender=sender,
                                 dedupe_key=dedupe_key, note=note, ignored=ignored, trace=trace)
            log.info("smtp spool drained account=%s channel=%s file=%s import=#%s", accounts.label(imp.account_id), CHANNEL,
                     imp.filename, imp.id)

    def record_refusal(self, account_id: int, *, filename: str, sender: str | None, status: str,
                       note: str | None, trace: dict | None = None, subject: str | None = None,
                       ignored: list[str] | None = None) -> None:
        from app.services import ingest

        with self.app.app_context():
            ingest.record_refusal(account_id, channel=CHANNEL, filename=filename, sender=sender, status=status,
                                  note=note, trace=trace, subject=subject, ignored=ignored)

    def record_failure(self, account_id: int, *, filename: str, sender: str | None, message: str,
                       dedupe_key: str | None, note: str | None, ignored: list[str] | None = None,
                       trace: dict | None = None) -> None:
        from app.services import ingest

        with self.app.app_context():
            ingest.record_failure(account_id, channel=CHANNEL, filename=filename, sender=sender, message=message,
                                  dedupe_key=dedupe_key, note=note, ignored=ignored, trace=trace)


def build_drainer(app, parse: Callable[[bytes], ParsedMail] = parse_mail) -> SpoolDrainer:
    """The spool of `{DATA_DIR}/spool/mail` and its drain (parse, then the app's ingest service)."""
    return SpoolDrainer(spool.mail_folder(app.config["DATA_DIR"]), _AppServices(app, parse).store_spooled)


def build_handler(app, parse: Callable[[bytes], ParsedMail] = parse_mail,
                  drainer: SpoolDrainer | None = None) -> MailHandler:
    """The handler bound to the app's services; accepted mails go to `drainer`'s spool."""
    services = _AppServices(app, parse)
    drainer = drainer or build_drainer(app, parse)
    _listen_for_recipient_changes()
    ttl = config.get(app, "SMTP_RECIPIENT_CACHE_SECONDS")
    return MailHandler(
        resolve_recipient=RecipientCache(services.resolve_recipient, ttl=ttl),
        spool_mail=drainer.write_mail,
        record_refusal=services.record_refusal,
        parse=parse,
    )



def build_fetch_handler(app, folder) -> tuple[MailHandler, Callable[[], int], Callable[[int], Recipient | None]]:
    """The handler of messages fetched from mailboxes (servers/imapfetch.py), spooling into `folder`.

    Returns (handler, drain, recipient_of): `drain()` imports what is spooled there (in the
    calling thread) and returns how many entries it stored; `recipient_of(account_id)` is the
    account as the handler's Recipient.
    """
    services = _AppServices(app)
    _listen_for_recipient_changes()
    handler = MailHandler(resolve_recipient=services.resolve_recipient,
                          spool_mail=SpoolDrainer(folder, services.store_spooled).write_mail,
                          record_refusal=services.record_refusal)
    return handler, lambda: spool.drain(folder, services.store_spooled), services.recipient_of
