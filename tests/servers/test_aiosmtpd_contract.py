"""What servers/smtp.py and servers/smtpdata.py rely on in aiosmtpd (pinned 1.4.6): an upgrade that moves it fails here.

BlockData replaces aiosmtpd's smtp_DATA and calls its helpers and private attributes; _Session
sets `line_length_limit` before aiosmtpd builds its reader and overrides `push`,
`_set_post_data_state`, `connection_made`/`connection_lost`.
"""
from __future__ import annotations

import asyncio
import inspect

import aiosmtpd
from aiosmtpd import smtp as aiosmtpd_smtp
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session

from servers.smtp import _Session
from servers.smtpdata import BlockData


class _Handler:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


def test_the_version_we_mirror():
    assert aiosmtpd.__version__ == "1.4.6"


def test_smtp_data_has_the_signature_we_override_and_is_a_coroutine():
    assert inspect.iscoroutinefunction(SMTP.smtp_DATA)
    assert list(inspect.signature(SMTP.smtp_DATA).parameters) == ["self", "arg"]
    assert SMTP.smtp_DATA.__smtp_syntax__ == "DATA"  # set by @syntax, read by HELP
    assert inspect.iscoroutinefunction(BlockData.smtp_DATA)
    assert BlockData.smtp_DATA.__smtp_syntax__ == "DATA"


def test_our_session_dispatches_data_to_the_block_reader():
    assert _Session.__mro__.index(BlockData) < _Session.__mro__.index(SMTP)

    async def methods():
        session = _Session(_Handler(), on_close=lambda: None, loop=asyncio.get_running_loop(),
                           data_size_limit=1000, hostname="test")
        return session, session._smtp_methods["DATA"]

    _session, method = asyncio.run(methods())
    assert method.__func__ is _Session.smtp_DATA  # the command table is built from the bound methods
    assert "smtp_DATA" in BlockData.__dict__


def test_the_helpers_and_attributes_block_data_uses():
    for name in ("check_helo_needed", "check_auth_needed", "push", "_call_handler_hook"):
        assert inspect.iscoroutinefunction(getattr(SMTP, name)), name
    assert list(inspect.signature(SMTP.check_auth_needed).parameters) == ["self", "caller_method"]
    assert callable(SMTP._set_post_data_state) and callable(SMTP._set_rset_state)
    assert MISSING is aiosmtpd_smtp.MISSING
    envelope = Envelope()
    assert envelope.content is None and envelope.original_content is None and envelope.rcpt_tos == []
    assert hasattr(Session(None), "host_name")

    async def build():
        session = SMTP(_Handler(), loop=asyncio.get_running_loop(), data_size_limit=123, hostname="test")
        return session

    session = asyncio.run(build())
    assert session.data_size_limit == 123
    assert session._decode_data is False and session.enable_SMTPUTF8 is False
    assert "DATA" in session._handle_hooks  # handle_DATA found on the handler
    reader, writer = object(), object()
    session._cb_client_connected(reader, writer)  # StreamReaderProtocol's callback: where _reader/_writer come from
    assert session._reader is reader and session._writer is writer


def test_line_length_limit_read_by_init_is_the_readers_limit():
    class Wide(SMTP):
        line_length_limit = 5000

    async def build():
        return Wide(_Handler(), loop=asyncio.get_running_loop(), hostname="test")

    session = asyncio.run(build())
    assert session._stream_reader._limit == 5000  # StreamReaderProtocol's reader, handed to us as _reader


def test_the_replies_block_data_repeats_are_aiosmtpd_texts():
    source = inspect.getsource(SMTP.smtp_DATA)
    for text in ("354 End data with <CR><LF>.<CR><LF>", "552 Error: Too much mail data",
                 "503 Error: need RCPT command", "501 Syntax: DATA", "500 Line too long",
                 "readuntil(b'\\r\\n')", "if text.startswith(b'.'):"):
        assert text in source, text
    assert "EMPTYBYTES" in dir(aiosmtpd_smtp)
