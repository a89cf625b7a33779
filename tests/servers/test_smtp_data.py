"""The block DATA reader (servers/smtpdata.py) against the bytes a client sends and against aiosmtpd's line reader."""
from __future__ import annotations

import asyncio
import smtplib
import socket

import pytest
from aiosmtpd.smtp import SMTP, Session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servers.smtp import TOO_BIG_REPLY, Limits, RunningSmtp
from servers.smtpdata import BlockData, read_body, unstuff

NEXT = b"NOOP\r\n"


def _feed(reader: asyncio.StreamReader, pieces: list[bytes]) -> asyncio.Future:
    """Feed `pieces` to `reader` one by one (each a separate wake-up), then EOF; the feeding task."""
    async def feed():
        for piece in pieces:
            reader.feed_data(piece)
            await asyncio.sleep(0)
        reader.feed_eof()

    return asyncio.ensure_future(feed())


async def _read(pieces: list[bytes], limit: int | None, stream_limit: int = 2 ** 16):
    """Feed `pieces` one by one (each a separate wake-up) and return (Body, what the reader left unread)."""
    reader = asyncio.StreamReader(limit=stream_limit)
    feeder = _feed(reader, pieces)
    body = await read_body(reader, limit)
    await feeder
    return body, await reader.read()


def read(pieces: list[bytes], limit: int | None = None, stream_limit: int = 2 ** 16):
    return asyncio.run(_read(pieces, limit, stream_limit))


def test_body_ends_at_crlf_dot_crlf_and_the_next_command_is_left_unread():
    body, rest = read([b"Subject: a\r\n\r\nline\r\n.\r\n" + NEXT])
    assert body.content == b"Subject: a\r\n\r\nline\r\n"
    assert body.size == len(b"Subject: a\r\n\r\nline\r\n")
    assert rest == NEXT


def test_empty_body_right_after_data():
    body, rest = read([b".\r\n" + NEXT])
    assert (body.content, body.size, rest) == (b"", 0, NEXT)


def test_empty_first_line_then_end():
    body, rest = read([b"\r\n.\r\n" + NEXT])
    assert (body.content, rest) == (b"\r\n", NEXT)


@pytest.mark.parametrize("cut", range(1, 40))
def test_an_end_split_at_every_offset_of_a_block_boundary(cut):
    stream = b"a\r\n..b\r\n.\r\n" + b"x" * 7 + b"\r\n.\r\n" + NEXT
    # the first `.` CRLF line is a stuffed-dot-free end only at its real place: "a", ".b", then the end
    body, rest = read([stream[:cut], stream[cut:]])
    assert body.content == b"a\r\n.b\r\n"
    assert rest == b"x" * 7 + b"\r\n.\r\n" + NEXT


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
def test_a_stream_fed_in_tiny_pieces(size):
    stream = b"..\r\n.x\r\n\r\n\r\n.\r\n" + NEXT
    body, rest = read([stream[i:i + size] for i in range(0, len(stream), size)])
    assert (body.content, rest) == (b".\r\nx\r\n\r\n\r\n", NEXT)


def test_dot_unstuffing_removes_one_leading_dot_per_line_only():
    assert unstuff(b"..\r\n...x\r\na.b\r\n.y\r\n") == b".\r\n..x\r\na.b\r\ny\r\n"


def test_bare_lf_is_part_of_a_line_as_in_aiosmtpd():
    # ".\n" and "\n.\n" end nothing; "\n.." is not at a line start, so its dots stay
    body, rest = read([b"a\n.\n..b\n.\r\n" + b".\r\n" + NEXT])
    assert (body.content, rest) == (b"a\n.\n..b\n.\r\n", NEXT)


def test_a_body_over_the_stream_limit_is_read_in_blocks_and_kept_whole():
    lines = b"".join(b"%05d." % n + b"y" * 90 + b"\r\n" for n in range(2000))
    body, rest = read([lines + b".\r\n" + NEXT], limit=None, stream_limit=1000)
    assert body.content == lines
    assert rest == NEXT


@pytest.mark.parametrize("stream_limit", [50, 2 ** 16])
def test_over_the_cap_is_read_to_the_end_then_refused_and_the_next_command_is_intact(stream_limit):
    stream = b"x" * 150 + b"\r\n" + b"y\r\n" * 50 + b".\r\n" + NEXT
    body, rest = read([stream[i:i + 17] for i in range(0, len(stream), 17)], limit=100, stream_limit=stream_limit)
    assert body.too_big and body.content is None
    assert body.size == 152 + 150
    assert rest == NEXT


def test_the_cap_counts_stuffed_dots_and_crlfs_as_received():
    raw = b"..\r\n" * 25  # 100 bytes as received, 75 once unstuffed
    assert read([raw + b".\r\n"], limit=100)[0].content == b".\r\n" * 25
    assert read([raw + b".\r\n"], limit=99)[0].too_big


def test_a_stream_that_ends_mid_body_raises():
    with pytest.raises(asyncio.IncompleteReadError):
        read([b"no end\r\n"])


# ---------------------------------------------------------------------------------------
# Differential: the whole DATA command, BlockData against aiosmtpd 1.4.6's own smtp_DATA.


class _Writer:
    def __init__(self):
        self.out = bytearray()

    def write(self, data: bytes) -> None:
        self.out += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Capture:
    async def handle_DATA(self, server, session, envelope):
        server.seen = envelope.content
        return "250 OK"


class _Block(BlockData, SMTP):
    pass


async def _data_command(cls, pieces: list[bytes], limit: int | None):
    """Run `cls`.smtp_DATA on a fed reader; return (replies after 354, content handed over, unread bytes)."""
    loop = asyncio.get_running_loop()
    session = cls(_Capture(), data_size_limit=limit, hostname="test", loop=loop)
    session.line_length_limit = (limit or 2 ** 20) + 3  # Renkei's line rule (servers/smtp.py)
    session.seen = None
    reader = asyncio.StreamReader(limit=session.line_length_limit)
    session._reader, session._writer = reader, _Writer()
    session.session = Session(loop)
    session.session.host_name = "client"
    session.transport = object()  # aiosmtpd's loop runs while a transport is set
    session._set_rset_state()  # a new envelope, as connection_made makes it
    session.envelope.rcpt_tos = ["to@example"]
    feeder = _feed(reader, pieces)
    await session.smtp_DATA(None)
    await feeder
    replies = bytes(session._writer.out).split(b"\r\n")
    assert replies[0].startswith(b"354 ")
    return replies[1], session.seen, await reader.read()


def _both(pieces, limit):
    async def run():
        return await _data_command(SMTP, pieces, limit), await _data_command(_Block, pieces, limit)
    return asyncio.run(run())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.lists(st.sampled_from([b".", b"..", b"\r", b"\n", b"\r\n", b"a", b"xyz" * 7, b"\r\n.", b".\r\n"]),
                  max_size=40).map(b"".join),
    cuts=st.lists(st.integers(min_value=1, max_value=12), max_size=20),
    limit=st.one_of(st.none(), st.integers(min_value=1, max_value=120)),
)
def test_block_reader_agrees_with_aiosmtpd_line_reader(body, cuts, limit):
    stream = body + b"\r\n.\r\n" + NEXT  # an end in `body` comes first for both: they must stop there alike
    pieces, at = [], 0
    for cut in cuts:
        pieces.append(stream[at:at + cut])
        at += cut
    pieces.append(stream[at:])
    (theirs, their_content, their_rest), (ours, our_content, our_rest) = _both([p for p in pieces if p], limit)
    assert our_rest == their_rest
    if theirs.startswith(b"250"):
        assert ours == theirs
        assert our_content == their_content
    else:  # aiosmtpd: 552 Too much, or 500 Line too long, which only a message over the cap has here
        assert theirs.startswith((b"552", b"500 Line too long"))
        assert ours.startswith(b"552")
        assert our_content is None


def test_data_without_rcpt_or_with_an_argument_answers_as_aiosmtpd():
    async def run(cls, arg, rcpt):
        loop = asyncio.get_running_loop()
        session = cls(_Capture(), hostname="test", loop=loop)
        session._writer = _Writer()
        session.session = Session(loop)
        session.session.host_name = "client"
        session._set_rset_state()
        session.envelope.rcpt_tos = rcpt
        await session.smtp_DATA(arg)
        return bytes(session._writer.out)

    for arg, rcpt in ((None, []), ("x", ["to@example"])):
        assert asyncio.run(run(_Block, arg, rcpt)) == asyncio.run(run(SMTP, arg, rcpt))


# ---------------------------------------------------------------------------------------
# Through Renkei's server: pipelining after an over-size message, and a body read in blocks.


class _Recorder:
    def __init__(self):
        self.contents: list[bytes] = []
        self.refused: list[list] = []

    async def handle_RCPT(self, server, session, envelope, address, options):
        envelope.rcpt_tos.append(address)
        envelope.renkei_recipients = {address: address}
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.contents.append(envelope.content)
        return "250 2.0.0 stored"

    def refuse_unreceived(self, recipients, **_):
        self.refused.append(recipients)


@pytest.fixture
def recorder_server():
    recorder = _Recorder()
    server = RunningSmtp(recorder, limits=Limits(max_bytes=1000)).start()
    yield server, recorder
    server.stop()


def _pipelined(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.recv(1024)
        client.sendall(payload)
        received = b""
        while not received.endswith(b"221 Bye\r\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_over_the_cap_then_552_and_the_pipelined_mail_after_it_is_received(recorder_server):
    server, recorder = recorder_server
    big = b"x" * 600 + b"\r\n" + b"y" * 600 + b"\r\n"
    payload = (b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<t@r>\r\nDATA\r\n" + big + b".\r\n"
               + b"MAIL FROM:<a@b>\r\nRCPT TO:<t@r>\r\nDATA\r\n..dot\r\nok\r\n.\r\nQUIT\r\n")
    replies = _pipelined(server.port, payload).decode().splitlines()
    assert TOO_BIG_REPLY in replies
    assert replies.count("250 2.0.0 stored") == 1
    assert replies[-1] == "221 Bye"
    assert recorder.contents == [b".dot\r\nok\r\n"]
    assert recorder.refused == [["t@r"]]


def test_smtplib_message_with_dots_and_long_lines_arrives_byte_exact():
    recorder = _Recorder()
    server = RunningSmtp(recorder, limits=Limits(max_bytes=10 ** 6)).start()
    try:
        body = b"Subject: t\r\n\r\n.leading dot\r\n" + b"z" * 70_000 + b"\r\n..\r\n"
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.sendmail("a@b", ["t@r"], body)
    finally:
        server.stop()
    assert recorder.contents == [body]
