"""The SMTP DATA body read in blocks: `read_body` and the `BlockData` session mixin.

aiosmtpd's own `smtp_DATA` reads the body a line at a time (one `readuntil(b"\\r\\n")` and a
few list operations per line, ~1,300 per 100 KB mail), which made the Python line loop the
cost of a small mail. This module reads the same bytes in blocks and keeps the meaning of
aiosmtpd 1.4.6's reader:

- Lines are split on CRLF only (a bare LF is part of a line, as in aiosmtpd); the body ends
  at the first line that is exactly `.` CRLF, i.e. at `CRLF . CRLF`, or at once when the
  body is empty (`.` CRLF right after the DATA command's CRLF).
- Dot-stuffing is undone as RFC 5321 4.5.2 and aiosmtpd do it: a line that begins with a
  dot loses that first dot (`..` becomes `.`).
- The size is counted as received: every byte before the final `.` CRLF, stuffed dots and
  CRLFs included (aiosmtpd's `num_bytes`). Over the cap the bytes already read are dropped,
  the rest is read and dropped up to the end, and the answer is `552`.
- Nothing after the end is read: the bytes after `CRLF . CRLF` belong to the next command
  (PIPELINING). The bulk is read with `readuntil(b"\\r\\n.\\r\\n")`, which stops at the
  separator; where an end may begin in bytes already read (the body's start, after a
  block cut by the stream limit), only as many bytes are read as that end still needs.
- No line-length rule: Renkei accepts lines of any length up to the cap (servers/smtp.py),
  so aiosmtpd's `500 Line too long` can only be the size answer there; this reader gives it.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiosmtpd.smtp import MISSING, syntax

log = logging.getLogger("servers.smtp")

END = b"\r\n.\r\n"
DATA_GO_AHEAD = "354 End data with <CR><LF>.<CR><LF>"  # aiosmtpd's text
TOO_MUCH_REPLY = "552 Error: Too much mail data"  # aiosmtpd's text; servers/smtp.py words it for Renkei


@dataclass(frozen=True)
class Body:
    """A DATA body as read: the unstuffed content (None when over the cap) and its size as received."""

    content: bytes | None
    size: int

    @property
    def too_big(self) -> bool:
        return self.content is None


def _pending_end(tail: bytes) -> int:
    """How many bytes at the end of `tail` (CRLF-prefixed read so far) may begin an end marker."""
    for length in (4, 3, 2, 1):
        if tail.endswith(END[:length]):
            return length
    return 0


def unstuff(raw: bytes) -> bytes:
    """The body without its transparency dots: each line beginning with `.` loses that dot."""
    content = raw.replace(b"\r\n.", b"\r\n")
    return content[1:] if raw[:1] == b"." else content


async def read_body(reader: asyncio.StreamReader, limit: int | None) -> Body:
    """Read one DATA body from `reader`, up to and including its end and not one byte more.

    `limit` is the size cap (None or 0: none). Raises asyncio.IncompleteReadError when the
    stream ends before the body does.
    """
    kept: list[bytes] = []
    size = 0  # bytes read, the end marker's final `.` CRLF included until the end
    over = False
    tail = b"\r\n"  # the last bytes read, after the DATA command line's CRLF
    while True:
        pending = _pending_end(tail)
        try:
            if pending:
                # An end may have begun: read only what it still needs (never past an end).
                block = await reader.readexactly(len(END) - pending)
            else:
                block = await reader.readuntil(END)
        except asyncio.LimitOverrunError as error:  # no end within the stream limit: take what is there
            block = await reader.read(error.consumed)
        size += len(block)
        if not over:
            kept.append(block)
            if limit and size - 3 > limit:  # what the end's `.` CRLF may not be part of is over already
                over = True
                kept.clear()
        tail = (tail + block)[-len(END):]
        if tail == END:
            break
    size -= 3  # the final `.` CRLF is not part of the body
    if over or (limit and size > limit):
        return Body(None, size)
    raw = b"".join(kept)[:-3]
    return Body(unstuff(raw), size)


class BlockData:
    """Mixin for an aiosmtpd `SMTP` subclass: its DATA command with `read_body` in place of the line loop.

    Keeps aiosmtpd 1.4.6's `smtp_DATA` contract: the HELO/AUTH checks, `503` without RCPT, `501`
    with an argument, `354`, the handler's `handle_DATA(server, session, envelope)` with
    `envelope.content` / `original_content` set, `250 OK` when the hook returns nothing, and
    `552` (through `push`) after the whole over-size message is read. `_decode_data` is
    honoured as there. The mixin comes before `SMTP` in the bases.
    """

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push(DATA_GO_AHEAD)
        try:
            body = await read_body(self._reader, self.data_size_limit)
        except asyncio.CancelledError:
            log.info("connection lost during DATA")
            self._writer.close()
            raise
        except asyncio.IncompleteReadError:  # the peer closed mid-message: nothing to hand over
            log.info("connection closed during DATA")
            self._writer.close()
            return
        if body.too_big:
            await self.push(TOO_MUCH_REPLY)
            self._set_post_data_state()
            return
        content: bytes | str = body.content
        if self._decode_data:
            if self.enable_SMTPUTF8:
                content = body.content.decode("utf-8", errors="surrogateescape")
            else:
                try:
                    content = body.content.decode("ascii", errors="strict")
                except UnicodeDecodeError:
                    await self.push("500 Error: strict ASCII mode")
                    return
        self.envelope.content = content
        self.envelope.original_content = body.content
        status = MISSING
        if "DATA" in self._handle_hooks:
            status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)
