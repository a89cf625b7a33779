"""A real SMTP server for tests (aiosmtpd on a free port) that keeps every message it receives.

Use the `smtp_sink` fixture (import it into the test module) or SmtpSink directly:
    sink = SmtpSink(); sink.start(); ... sink.url -> "smtp://127.0.0.1:PORT"; sink.wait_for(2); sink.stop()
"""
from __future__ import annotations

import email
import email.policy
import socket
import threading
from dataclasses import dataclass
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller


@dataclass
class ReceivedMail:
    """One message as the sink got it: envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        """The decoded plain-text body."""
        return self.message.get_body(preferencelist=("plain",)).get_content()


class _Handler:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):
        self.sink._add(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"


class _FreePortController(Controller):
    """A Controller that binds port 0 and learns the real port before its self-check connects."""

    def _trigger_server(self):
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """Collects messages on 127.0.0.1:<free port>; `wait_for(n)` blocks until n arrived (or timeout)."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []
        self._changed = threading.Condition()
        self._controller = _FreePortController(_Handler(self), hostname="127.0.0.1", port=0)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def port(self) -> int:
        return self._controller.port

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def _add(self, mail: ReceivedMail) -> None:
        with self._changed:
            self.messages.append(mail)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least `count` messages arrived; return whether they did."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.messages) >= count, timeout)


@pytest.fixture
def smtp_sink():
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


class RawSmtp:
    """A line-level SMTP client over a plain socket, for what smtplib would refuse or rewrite."""

    def __init__(self, port: int, timeout: float = 10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def reply(self) -> str:
        """Read one (possibly multi-line) reply and return its last line."""
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed; pending {self.buffer!r}")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            if line[3:4] != b"-":
                return line.decode()

    def command(self, line: bytes) -> str:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()
