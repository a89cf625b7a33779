"""The outbox: every outgoing mail is a row first; the worker delivers it with retries and back-off.

A relay outage loses nothing: a failed attempt leaves the mail pending with a later
next_attempt_at. Without a configured relay nothing is delivered and mails stay pending
(the 送信メール screen shows them).
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import or_, select, update

from ..extensions import db
from ..models import OutboxMail, utcnow

log = logging.getLogger(__name__)

# After this many failed attempts a mail is given up (status failed, still shown in the UI).
MAX_ATTEMPTS = 20
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
# A claim this old means the sender died mid-delivery; the mail may then be tried again.
CLAIM_TIMEOUT_SECONDS = 600


def enqueue(account_id: int | None, import_id: int | None, kind: str, to_addrs: list[str], subject: str,
            body: str, not_before: dt.datetime | None = None) -> OutboxMail:
    """Add a pending mail to the session; the caller's commit makes it durable (with whatever it reports).

    `not_before` holds the mail back until then (an FTP report waits for its file's move, reports.filed).
    """
    now = utcnow()
    mail = OutboxMail(account_id=account_id, import_id=import_id, kind=kind, to_addrs=list(to_addrs),
                      subject=subject, body=body, status=OutboxMail.PENDING, attempts=0,
                      created_at=now, next_attempt_at=not_before or now)
    db.session.add(mail)
    return mail


def backoff(attempts: int) -> dt.timedelta:
    """Return the wait before the next try after `attempts` failed tries (30 s doubling, at most 1 h)."""
    return dt.timedelta(seconds=min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS))


def claim_due(now: dt.datetime | None = None) -> OutboxMail | None:
    """Atomically claim the oldest due pending mail, or return None."""
    now = now or utcnow()
    lease_expired = now - dt.timedelta(seconds=CLAIM_TIMEOUT_SECONDS)
    free = or_(OutboxMail.claimed_at.is_(None), OutboxMail.claimed_at < lease_expired)
    while True:
        mail_id = db.session.scalar(
            select(OutboxMail.id)
            .where(OutboxMail.status == OutboxMail.PENDING, OutboxMail.next_attempt_at <= now, free)
            .order_by(OutboxMail.next_attempt_at, OutboxMail.id).limit(1)
        )
        if mail_id is None:
            db.session.rollback()
            return None
        result = db.session.execute(
            update(OutboxMail)
            .where(OutboxMail.id == mail_id, OutboxMail.status == OutboxMail.PENDING, free)
            .values(claimed_at=now),
            execution_options={"synchronize_session": False},
        )
        db.session.commit()
        if result.rowcount == 1:
            return db.session.get(OutboxMail, mail_id)


def deliver_due(send: Callable[[OutboxMail], None], now: dt.datetime | None = None) -> int:
    """Send every due mail once with `send`; record success or schedule a retry; return how many were sent."""
    now = now or utcnow()
    sent = 0
    while True:
        mail = claim_due(now)
        if mail is None:
            return sent
        try:
            send(mail)
        except Exception as error:  # any relay problem: keep the mail and try later
            mail.attempts += 1
            mail.last_error = f"{type(error).__name__}: {error}"[:2000]
            mail.claimed_at = None
            if mail.attempts >= MAX_ATTEMPTS:
                mail.status = OutboxMail.FAILED
                log.error("mail #%s to %s given up after %d attempts: %s", mail.id, ",".join(mail.to_addrs),
                          mail.attempts, mail.last_error)
            else:
                mail.next_attempt_at = now + backoff(mail.attempts)
                log.warning("mail #%s to %s not sent (attempt %d, next %s): %s", mail.id,
                            ",".join(mail.to_addrs), mail.attempts, mail.next_attempt_at, mail.last_error)
            db.session.commit()
            continue
        mail.status = OutboxMail.SENT
        mail.sent_at = utcnow()
        mail.attempts += 1
        mail.claimed_at = None
        mail.last_error = None
        db.session.commit()
        sent += 1
        log.info("mail #%s sent kind=%s account=%s import=#%s to=%s", mail.id, mail.kind, mail.account_id,
                 mail.import_id, ",".join(mail.to_addrs))


def list_mails(account_id: int, limit: int | None = 200) -> list[OutboxMail]:
    """Return the account's outgoing mails, newest first."""
    query = select(OutboxMail).where(OutboxMail.account_id == account_id).order_by(OutboxMail.id.desc())
    if limit:
        query = query.limit(limit)
    return list(db.session.scalars(query))
