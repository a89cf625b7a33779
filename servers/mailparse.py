"""Pure mail parsing for the SMTP channel: the From: address and the attachments of one message.

No Flask, no database, no sockets: bytes in, a `ParsedMail` out, so every rule here is
unit-tested with hand-made messages.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email import errors as email_errors
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses

from app.importer.filename import base_name, is_received

# Old-style syntax and internationalised (RFC 6532) local parts are fine; anything else is ambiguous.
_TOLERATED_DEFECTS = (email_errors.ObsoleteHeaderDefect, email_errors.NonASCIILocalPartDefect)

_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


class MailRejected(Exception):
    """The message cannot be processed; `reason` is the Japanese text for the history."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class MailUnreadable(Exception):
    """The message's structure cannot be read at all (e.g. nested too deep); refuse it permanently."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Attachment:
    """One results-file attachment (filename.ACCEPTED_ENDINGS: CSV or a workbook): its base name, its decoded bytes and their sha256.

    `truncated` is set when the part is the last one of a multipart whose closing boundary
    never came: the message may have been cut off, so the file must not be imported.
    """

    filename: str
    data: bytes
    sha256: str
    truncated: bool = False


@dataclass(frozen=True)
class ParsedMail:
    """What the SMTP channel needs from one message."""

    sender: str  # the From: address, lower case, without display name
    message_id: str | None
    digest: str  # sha256 of the whole message as received
    csvs: list[Attachment] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # names of the other attachments

    def dedupe_key(self, index: int, attachment: Attachment) -> str:
        """Identity of one CSV of this message: the same message delivered twice gives the same key."""
        return f"mail:{self.identity}:{index}:{attachment.sha256}"

    @property
    def identity(self) -> str:
        """sha256 of the Message-ID (bounded length), or of the whole message when it has none."""
        return _identity(self.message_id, self.digest)


@dataclass(frozen=True)
class MailHead:
    """What the headers alone tell (no body parsed): enough for the checks before `250`."""

    sender: str | None  # None when the From: check failed
    rejection: str | None  # MailRejected.reason when it failed
    identity: str  # as ParsedMail.identity
    subject: str = ""  # the decoded Subject:, at most SUBJECT_CHARS (for the 破棄のお知らせ)


_BARE_LF_STUFFED = re.compile(rb"(?<!\r)\n\.\.")
_BARE_LF = re.compile(rb"(?<!\r)\n")


def normalise_line_ends(raw: bytes) -> bytes:
    """The message as received over SMTP with every bare LF made a CRLF (Postfix's "normalize").

    curl `-T` without `--crlf` and `smtplib.sendmail(msg.as_bytes())` send LF-only lines; the
    SMTP server has already ended DATA only at CRLF.CRLF and undone the dot-stuffing of lines
    after a CRLF. A line after a bare LF that starts with two dots was dot-stuffed by its client
    (smtplib stuffs after LF too), so one dot is removed there as well; a single leading dot is
    kept (curl does not stuff after a bare LF). Bare CRs are left alone (the parser reads them).
    """
    if raw.count(b"\n") == raw.count(b"\r\n"):
        return raw  # the usual case: no bare LF
    return _BARE_LF.sub(b"\r\n", _BARE_LF_STUFFED.sub(b"\n.", raw))


def parse_head(raw: bytes) -> MailHead:
    """Parse only the header block (cheap, no recursion into parts); never raises MailRejected."""
    message = BytesParser(policy=policy.default).parsebytes(_header_block(raw), headersonly=True)
    message_id = _message_id(message)
    # Hash the whole message only when there is no Message-ID: most mails have one.
    identity = _identity(message_id, None if message_id else hashlib.sha256(raw).hexdigest())
    subject = _subject(message)
    try:
        return MailHead(sender=parse_sender(message), rejection=None, identity=identity, subject=subject)
    except MailRejected as error:
        return MailHead(sender=None, rejection=error.reason, identity=identity, subject=subject)


SUBJECT_CHARS = 255  # imports.subject


def _subject(message) -> str:
    """The Subject: as a reader sees it, on one line; "" when missing or undecodable."""
    try:
        text = " ".join(str(message.get("Subject", "") or "").split())
    except (ValueError, LookupError, TypeError):  # a broken encoded word: the notice shows no subject
        return ""
    return text if len(text) <= SUBJECT_CHARS else text[:SUBJECT_CHARS - 1] + "…"


def _header_block(raw: bytes) -> bytes:
    """A prefix of `raw` that holds its whole header block (the parser would still walk a 1 MB body line by line).

    The headers end at the first empty line at the latest, whatever the line ends (CRLF, LF or a
    bare CR, which the parser all accepts); every empty line shows as one of these byte pairs.
    Cutting later than the true end changes nothing: the parser decides from the prefix alone.
    """
    end = len(raw)
    for pair in (b"\n\r", b"\n\n", b"\r\r"):  # CRLF mail first; each search stops at the best end so far
        found = raw.find(pair, 0, end)
        if found >= 0:
            end = found
    return raw[:end + 3]


def _identity(message_id: str | None, digest: str | None) -> str:
    if message_id:
        return hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()
    assert digest is not None
    return digest


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse a received message; raise MailRejected when its From: is missing, multiple or unparsable."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        sender = parse_sender(message)
        csvs: list[Attachment] = []
        ignored: list[str] = []
        for part, name, truncated in _attachments(message):
            if name and is_received(name):
                data = _payload(part)
                csvs.append(Attachment(name, data, hashlib.sha256(data).hexdigest(), truncated))
            else:
                ignored.append(name or "(名前なし)")
    except RecursionError:
        # Python's email parser recurses once per nesting level; a hostile message can exhaust it.
        raise MailUnreadable("メールの入れ子(マルチパート)が深すぎるため読み取れません") from None
    return ParsedMail(
        sender=sender,
        message_id=_message_id(message),
        digest=hashlib.sha256(raw).hexdigest(),
        csvs=csvs,
        ignored=ignored,
    )


def parse_sender(message: EmailMessage) -> str:
    """Return the single From: address in lower case; anything ambiguous is rejected.

    Two parsers must agree (the header registry and email.utils.getaddresses), because a
    From: that parsers read differently is the classic way to slip past a sender list.
    """
    raw_values = [value for name, value in message.raw_items() if name.lower() == "from"]
    if not raw_values:
        raise MailRejected("From: ヘッダーがありません")
    if len(raw_values) > 1:
        raise MailRejected("From: ヘッダーが複数あります")
    raw = raw_values[0]
    if _has_surrogates(raw):
        # Raw 8-bit header (no RFC 2047): accept it only when it is valid UTF-8 (RFC 6532).
        try:
            raw = raw.encode("ascii", "surrogateescape").decode("utf-8")
        except UnicodeError:
            raise MailRejected("From: ヘッダーの文字コードを解釈できません") from None
    raw = "".join(raw.splitlines())
    try:
        header = policy.default.header_factory("From", raw)
        addresses = header.addresses
        defects = header.defects
    except Exception:  # the header parser raises on some malformed input
        raise MailRejected(f"From: ヘッダーを解釈できません: {_printable(raw)}") from None
    if any(not isinstance(d, _TOLERATED_DEFECTS) for d in defects):
        raise MailRejected(f"From: ヘッダーを解釈できません: {_printable(raw)}")
    if len(addresses) != 1:
        raise MailRejected(f"From: ヘッダーには差出人アドレスを1つだけ書いてください: {_printable(raw)}")
    address = addresses[0]
    if not address.username or not address.domain or any(c.isspace() for c in address.addr_spec):
        raise MailRejected(f"From: ヘッダーのアドレスが正しくありません: {_printable(raw)}")
    other = getaddresses([raw])
    if len(other) != 1 or other[0][1].lower() != address.addr_spec.lower():
        raise MailRejected(f"From: ヘッダーを解釈できません: {_printable(raw)}")
    return address.addr_spec.lower()


def attachment_name(part: EmailMessage) -> str | None:
    """The part's file name (RFC 2231, RFC 2047 or plain), reduced to its base name; None if it has none."""
    try:
        name = part.get_filename()
    except Exception:  # malformed parameters make the header parser raise
        name = None
    if name is None:
        return None
    if "=?" in name:
        # Some clients put RFC 2047 words inside a quoted parameter next to plain text,
        # which the parameter parser leaves undecoded.
        name = _ENCODED_WORD.sub(_decode_word, name)
    return base_name(name)


def _attachments(message: EmailMessage):
    """Yield (part, name, truncated) for every leaf part that carries a file name, in message order.

    A forwarded message (message/rfc822) counts as one attachment: its own attachments
    were sent by somebody else, so they are not entered. The last child of a multipart
    whose closing boundary is missing, and everything inside it, is marked truncated.
    """
    stack: list[tuple[EmailMessage, bool]] = [(message, False)]
    while stack:
        part, truncated = stack.pop(0)
        content_type = part.get_content_type()
        if part.is_multipart() and not content_type.startswith("message/"):
            children = [c for c in part.get_payload() if isinstance(c, EmailMessage)]
            cut = any(isinstance(d, email_errors.CloseBoundaryNotFoundDefect) for d in part.defects)
            stack[0:0] = [(c, truncated or (cut and i == len(children) - 1)) for i, c in enumerate(children)]
            continue
        if part is message and not part.is_multipart():
            # A single-part message can itself be the CSV (Content-Disposition on the top level).
            name = attachment_name(part)
            if name is not None:
                yield part, name, truncated
            continue
        name = attachment_name(part)
        if content_type.startswith("message/"):
            yield part, name or "転送されたメール", truncated
        elif name is not None or _disposition(part) == "attachment":
            yield part, name, truncated


def _disposition(part: EmailMessage) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:  # unreadable: list the part as an ignored attachment rather than drop it silently
        return "attachment"


def _payload(part: EmailMessage) -> bytes:
    """The attachment's bytes after base64 / quoted-printable decoding (8bit parts byte for byte)."""
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _message_id(message: EmailMessage) -> str | None:
    values = [value for name, value in message.raw_items() if name.lower() == "message-id"]
    if len(values) != 1:
        return None
    value = " ".join(str(values[0]).split())
    return value or None


def _decode_word(match: re.Match) -> str:
    try:
        return str(make_header(decode_header(match.group(0))))
    except Exception:  # unknown charset or broken base64: keep the text as sent
        return match.group(0)


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= c <= "\udcff" for c in text)


def _printable(text: str) -> str:
    text = "".join(c if c.isprintable() and not ("\udc80" <= c <= "\udcff") else "?" for c in str(text))
    return text[:200]
