"""The SMTP handler (aiosmtpd's handle_RCPT / handle_DATA): protocol decisions only.

Everything that touches the database or the spool is injected (see MailHandler), so the
decisions below are tested with fakes.

Decisions (where docs/spec.md is silent):
- Several accounts per message: every RCPT of an issued address is accepted (mutt, s-nail,
  msmtp and curl abort the whole send on a 4xx to a second RCPT), an unknown one gets
  `550 5.1.1` on its own. Several RCPTs for the same account count once. The message is
  spooled once (one entry naming every accepting account, fsynced before `250`) and the
  drain imports it once per account.
- Each account applies its own rules (`services.admission.admit`, channel mail): mode not
  メール添付連動 → discarded and recorded (the sender list is not checked: it belongs to the
  mail mode); mode mail → the From: check (refused, recorded), then a stopped status discards
  and records. This module only maps the admission to a reply. The From: header is known
  only after DATA, which has one reply for all: `250` when at least one account took the
  message (spooled or discarded), `550 5.7.1` only when every account refused it. A refusal
  next to an acceptance is in that account's 取込履歴 only (the sender, having `250`, does not
  see it).
- Who may send (rules of `admission`, decided at RCPT, per recipient, where Postfix rejects a
  sender): the peer outside the account's 送信元サーバー, a bounce `<>` and an envelope sender
  (MAIL FROM) that is not one of its 送信元メールアドレス get `550 5.7.1` for that RCPT and are
  recorded (refused, "(メール)", the envelope sender, peer and HELO) once per account and
  transaction. A mode other than mail does not check them (its mail is discarded after DATA).
- The envelope sender, peer address and HELO name go into the spool entry; the drain records
  them on each import with what DKIM and SPF said (servers/spooldrain.py).
- Every DB call and spool write runs in the loop's executor; an unexpected error answers
  `451 4.3.0` and the client retries. Nothing was spooled then (a failed write removes its
  entry), so the retry is the one delivery; a refusal recorded for another account of the same
  message before the failed write may be recorded again.
- Refusals and discards are recorded in the DB directly before the answer (rare paths, no file
  to import; they alone pay a full parse, to name the files in the history). A mail with no CSV
  and a truncated attachment are recorded by the drain.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from app.enums import ImportStatus
from app.services.admission import Channel, Outcome, Reason, admit
from app.services.senderauth import Origin

from .mailparse import (
    MailHead,
    MailRejected,
    MailUnreadable,
    ParsedMail,
    normalise_line_ends,
    parse_head,
    parse_mail,
)
from .recipients import Recipient

log = logging.getLogger("servers.smtp")  # the log lines keep the logger name they had before the split

CHANNEL = Channel.MAIL
NO_CSV_NAME = "(CSV添付なし)"
UNNAMED = "(メール)"  # the history's file name when the mail's files are not known
NO_SUCH_USER = "550 5.1.1 Recipient address rejected: no such user"
# The RCPT answers of the sender checks (admission's rule 3, before DATA).
SENDER_REPLIES = {
    Reason.NETWORK: "550 5.7.1 Client host not authorized to send to this address",
    Reason.BOUNCE: "550 5.7.1 Bounces are not accepted at this address",
    Reason.ENVELOPE: "550 5.7.1 Sender not authorized for this address",
}


class MailHandler:
    """aiosmtpd handler: RCPT check, then the checks the headers allow, then the durable spool write.

    Only the header block is parsed before `250` (a full MIME parse of a 1 MB mail is ~30 ms of
    CPU, which capped throughput); the attachments are read by MailImporter in the spool drain.

    Injected callables (they run in a worker thread, never on the event loop):
    - resolve_recipient(address) -> Recipient | None (None: unknown address; a disabled account has enabled=False);
      a RecipientCache's fresh answers are read on the loop (its `cached`)
    - spool_mail(account_ids, raw, *, sender, origin[, delivery]) -> None, once the whole message is stored
      durably for them all
    - record_refusal(account_id, *, filename, sender, status, note, trace) -> None (trace: Import columns
      of the mail's origin, Origin.columns())
    - parse(raw) -> ParsedMail (only to name the files of a refused or discarded mail; rare)
    """

    def __init__(
        self,
        *,
        resolve_recipient: Callable[[str], Recipient | None],
        spool_mail: Callable[..., Any],
        record_refusal: Callable[..., Any],
        parse: Callable[[bytes], ParsedMail] = parse_mail,
    ):
        self.parse = parse
        self.resolve_recipient = resolve_recipient
        # A RecipientCache answers a fresh hit on the loop itself (no thread hop, no I/O).
        self.cached_recipient: Callable[[str], tuple[bool, Recipient | None]] = getattr(
            resolve_recipient, "cached", lambda address: (False, None))
        self.spool_mail = spool_mail
        self.record_refusal = record_refusal

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options: list[str]) -> str:
        """Accept every issued address of an enabled account (several accounts per message); never relay."""
        try:
            known, recipient = self.cached_recipient(address)
            if not known:
                recipient = await asyncio.get_running_loop().run_in_executor(None, self.resolve_recipient, address)
        except Exception:
            log.exception("smtp recipient lookup failed channel=%s rcpt=%s", CHANNEL, address)
            return "451 4.3.0 Temporary lookup failure, try again later"
        if recipient is None or admit(recipient.standing, Channel.MAIL).outcome is Outcome.DISABLED:
            # A disabled account's address answers as an unknown one: it must not tell that the account exists.
            log.info("smtp refused channel=%s rcpt=%s reason=%s peer=%s", CHANNEL, address,
                     "unknown-recipient" if recipient is None else "integration-disabled", _peer(session))
            return NO_SUCH_USER
        origin = _origin(session, envelope)
        admission = admit(recipient.standing, Channel.MAIL, envelope=origin.mail_from, peer=origin.peer_address)
        if admission.reason in SENDER_REPLIES:
            return await self._refuse_sender(recipient, admission.text, admission.reason, origin, envelope)
        recipients: dict[int, Recipient] = getattr(envelope, "renkei_recipients", None) or {}
        recipients.setdefault(recipient.account_id, recipient)  # several addresses of one account count once
        envelope.renkei_recipients = recipients
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def _refuse_sender(self, recipient: Recipient, text: str, reason: Reason, origin: Origin,
                             envelope) -> str:
        """Record a sender refused at RCPT (once per account and transaction) and answer `550 5.7.1`."""
        refused: set[int] = getattr(envelope, "renkei_refused", None) or set()
        envelope.renkei_refused = refused
        log.info("smtp refused account=%s channel=%s reason=%s mail_from=%s peer=%s helo=%s", recipient.label,
                 CHANNEL, reason, origin.mail_from or "<>", origin.peer_address, origin.helo_name or "-")
        if recipient.account_id not in refused:
            refused.add(recipient.account_id)
            try:
                await asyncio.get_running_loop().run_in_executor(None, functools.partial(
                    self.record_refusal, recipient.account_id, filename=UNNAMED, sender=None,
                    status=ImportStatus.REFUSED, note=text, trace=origin.columns()))
            except Exception:
                log.exception("smtp refusal not recorded account=%s channel=%s", recipient.label, CHANNEL)
                return "451 4.3.0 Temporary server error, try again later"
        return SENDER_REPLIES[reason]

    async def handle_DATA(self, server, session, envelope) -> str:
        """Check and spool the message (off the loop); answer only after it is durable."""
        recipients = list(envelope.renkei_recipients.values())
        raw = bytes(envelope.original_content or b"")
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(self.deliver, recipients, raw, _peer(session), origin=_origin(session, envelope))
            )
        except Exception:
            log.exception("smtp delivery failed account=%s channel=%s", ",".join(r.label for r in recipients),
                          CHANNEL)
            return "451 4.3.0 Temporary server error, try again later"

    async def handle_exception(self, error: Exception) -> str:
        """Never show internals to the client; a 4xx makes it retry later."""
        log.exception("smtp session error channel=%s", CHANNEL, exc_info=error)
        return "451 4.3.0 Temporary server error, try again later"

    def deliver_fetched(self, recipient: Recipient, raw: bytes, *, envelope: str | None, delivery: str,
                        origin: Origin) -> str:
        """A message fetched from the account's mailbox (servers/imapfetch.py): the same path as an SMTP delivery.

        The envelope sender is the Return-Path: header the mailbox's server wrote (None: there is
        none, e.g. a message a mail client put there; not checked then). It gets the checks of
        RCPT (bounce, 送信元メールアドレス; there is no peer of ours to check against 送信元サーバー),
        then `deliver` applies the From: check, the mode and the status and spools the message
        under `delivery`, an id of this message in this mailbox (a repeat stores nothing twice).
        Returns the reply an SMTP client would have had (for the log line).
        """
        if envelope is not None:
            admission = admit(recipient.standing, Channel.MAIL, envelope=envelope)
            if admission.reason in SENDER_REPLIES:
                self.record_refusal(recipient.account_id, filename=UNNAMED, sender=None, status=ImportStatus.REFUSED,
                                    note=admission.text, trace=origin.columns())
                log.info("imap refused account=%s channel=%s reason=%s return_path=%s", recipient.label, CHANNEL,
                         admission.reason, envelope or "<>")
                return SENDER_REPLIES[admission.reason]
        return self.deliver([recipient], raw, "imap", origin=origin, delivery=delivery)

    def deliver(self, recipients: Recipient | list[Recipient], raw: bytes, peer: str = "-",
                origin: Origin | None = None, delivery: str | None = None) -> str:
        """Apply each account's rules to one received message and return the one SMTP reply (blocking).

        Each account decides on its own (mode, From: in its sender list, status). The reply is
        `250` when at least one account took the message (spooled for import, or discarded as
        its mode or status says), and `550 5.7.1` only when every account refused it; a refusal
        next to an acceptance is recorded in that account's 取込履歴 only. Refusals and discards
        are recorded before the spool write, so a failed write (`451`) may leave them recorded
        twice after the retry, never lost. `delivery` is the spool id of a fetched message (else random).
        """
        if isinstance(recipients, Recipient):
            recipients = [recipients]
        trace = origin.columns() if origin is not None else None
        raw = normalise_line_ends(raw)
        head = parse_head(raw)
        names = _LazyNames(self, raw)
        accepted: list[Recipient] = []
        refusal: str | None = None
        discarded = False
        for recipient in recipients:
            admission = admit(recipient.standing, Channel.MAIL, sender=head.sender)
            if admission.outcome is Outcome.ACCEPT:
                accepted.append(recipient)
            elif admission.outcome is Outcome.DISCARD:
                self._discard(recipient, names, head, admission.text, peer, trace)
                discarded = True
            elif admission.reason is Reason.UNREADABLE_SENDER:
                self.record_refusal(recipient.account_id, filename=UNNAMED, sender=None, status=ImportStatus.REFUSED,
                                    note=f"{admission.text}: {head.rejection}", trace=trace)
                log.info("smtp refused account=%s channel=%s reason=bad-from peer=%s", recipient.label, CHANNEL,
                         peer)
                refusal = refusal or "550 5.7.1 Sender not authorized: unreadable From header"
            elif admission.reason is Reason.SENDER:
                self.record_refusal(recipient.account_id, filename=names(), sender=head.sender, status=ImportStatus.REFUSED,
                                    note=admission.text, trace=trace)
                log.info("smtp refused account=%s channel=%s file=%s sender=%s reason=sender-not-registered peer=%s",
                         recipient.label, CHANNEL, names(), head.sender, peer)
                refusal = refusal or "550 5.7.1 Sender not authorized for this address"
            else:  # disabled since its RCPT was accepted: the account takes nothing and records nothing
                log.info("smtp refused account=%s channel=%s reason=%s peer=%s", recipient.label, CHANNEL,
                         admission.reason, peer)
                refusal = refusal or NO_SUCH_USER
        if not accepted:
            return "250 2.0.0 OK" if discarded or refusal is None else refusal

        assert head.sender is not None
        self.spool_mail([r.account_id for r in accepted], raw, sender=head.sender, origin=origin,
                        **({"delivery": delivery} if delivery else {}))
        for recipient in accepted:
            log.info("smtp accepted account=%s channel=%s sender=%s bytes=%d peer=%s", recipient.label, CHANNEL,
                     head.sender, len(raw), peer)
        return "250 2.0.0 OK: queued"

    def refuse_unreceived(self, recipients: list[Recipient], *, envelope_from: str | None, reason: str,
                          peer: str = "-") -> None:
        """Record a message the protocol refused before it was read (e.g. over the size cap), per account."""
        for recipient in recipients:
            note = f"{reason}(エンベロープの送信者: {envelope_from or '-'})"
            self.record_refusal(recipient.account_id, filename=UNNAMED, sender=None, status=ImportStatus.REFUSED, note=note)
            log.info("smtp refused account=%s channel=%s reason=%s peer=%s", recipient.label, CHANNEL, reason, peer)

    def _discard(self, recipient: Recipient, names: _LazyNames, head: MailHead, reason: str, peer: str,
                 trace: dict | None) -> None:
        # The subject and every attachment are kept for the daily 破棄のお知らせ (services/notices.py).
        sender, filename = head.sender, names()
        self.record_refusal(recipient.account_id, filename=filename, sender=sender, status=ImportStatus.DISCARDED,
                            note=reason, trace=trace, subject=head.subject, ignored=names.ignored)
        log.info("smtp discarded account=%s channel=%s file=%s sender=%s reason=%s peer=%s", recipient.label,
                 CHANNEL, filename, sender or "-", reason, peer)

    def _names_of(self, raw: bytes) -> tuple[str, list[str]]:
        """The file names a refused or discarded mail carried, and its other attachments (a full parse: rare paths)."""
        try:
            mail = self.parse(raw)
        except (MailRejected, MailUnreadable, RecursionError):
            return UNNAMED, []
        return _names(mail), list(mail.ignored)


class _LazyNames:
    """The file names of a refused or discarded mail, parsed at most once and only when asked for."""

    def __init__(self, handler: MailHandler, raw: bytes):
        self._handler, self._raw = handler, raw
        self._names: str | None = None
        self.ignored: list[str] = []  # the attachments that are not files to import (known after the call)

    def __call__(self) -> str:
        if self._names is None:
            self._names, self.ignored = self._handler._names_of(self._raw)
        return self._names


def _names(mail: ParsedMail) -> str:
    """What the history shows as the file name of a refused or discarded mail (never its content)."""
    if not mail.csvs:
        return NO_CSV_NAME
    names = ", ".join(a.filename for a in mail.csvs)
    return names if len(names) <= 255 else names[:252] + "..."


def _origin(session, envelope) -> Origin:
    """Who delivers this transaction: envelope sender ("" for a bounce), peer IP address, HELO name."""
    peer = getattr(session, "peer", None)
    address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
    mail_from = (getattr(envelope, "mail_from", None) or "").strip()
    return Origin(mail_from="" if mail_from == "<>" else mail_from, peer_address=address,
                  helo_name=str(getattr(session, "host_name", None) or ""))


def _peer(session) -> str:
    peer = getattr(session, "peer", None)
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "-")

