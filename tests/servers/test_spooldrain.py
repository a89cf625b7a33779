"""The spool drain gives way to messages being received (issue 13), within a bound.

Its database work and the SMTP sessions share one interpreter lock; bench/smtp_bench.py
(smtp-source) showed the drain beside the sessions costing about 40% of their throughput. A
sender waiting for its `250` comes first, but an accepted mail is still imported while the
server stays busy.
"""
from __future__ import annotations

import smtplib
import threading

from servers.smtp import RunningSmtp
from servers.spooldrain import ReceivingGauge, SpoolDrainer

RAW = b"From: a@example.com\r\n\r\nbody\r\n"
TIMEOUT = 30


class WatchedGauge(ReceivingGauge):
    """A gauge that tells the test when the drain starts giving way."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.entered = threading.Event()

    def wait_quiet(self, timeout, should_stop=lambda: False):
        self.calls += 1
        self.entered.set()
        return super().wait_quiet(timeout, should_stop)


class Store:
    """The drain's store: remembers how many messages were being received at each call."""

    def __init__(self, gauge: ReceivingGauge, expected: int = 1):
        self.gauge = gauge
        self.receiving_at_store: list[int] = []
        self.expected = expected
        self.done = threading.Event()

    def __call__(self, entry) -> None:
        self.receiving_at_store.append(self.gauge.receiving)
        if len(self.receiving_at_store) >= self.expected:
            self.done.set()


def test_an_entry_waits_until_no_message_is_being_received(tmp_path):
    gauge = WatchedGauge()
    store = Store(gauge)
    drainer = SpoolDrainer(tmp_path, store, receiving=gauge, max_defer=600)
    gauge.begin()  # a session is in DATA
    drainer.start()
    try:
        drainer.write_mail([1], RAW, sender="a@example.com")
        assert gauge.entered.wait(TIMEOUT)
        assert store.receiving_at_store == []  # not stored while the message is received
        gauge.end()
        assert store.done.wait(TIMEOUT)
    finally:
        drainer.stop()
    assert store.receiving_at_store == [0]


def test_a_busy_server_still_drains_once_the_pass_has_given_way_for_max_defer(tmp_path):
    gauge = WatchedGauge()
    store = Store(gauge, expected=2)
    ticks = iter(range(0, 1000, 10))  # each reading of the clock: 10 s later
    drainer = SpoolDrainer(tmp_path, store, receiving=gauge, max_defer=0.05, clock=lambda: next(ticks))
    drainer.write_mail([1], RAW, sender="a@example.com")
    drainer.write_mail([2], RAW, sender="a@example.com")
    gauge.begin()  # and never ends: the sessions stay busy
    drainer.start()
    try:
        assert store.done.wait(TIMEOUT)
    finally:
        drainer.stop()
    assert store.receiving_at_store == [1, 1]  # stored while messages were being received
    assert gauge.calls == 1  # the second entry of the pass did not give way again


def test_stop_does_not_wait_for_the_sessions_to_go_quiet(tmp_path):
    gauge = WatchedGauge()
    store = Store(gauge)
    drainer = SpoolDrainer(tmp_path, store, receiving=gauge, max_defer=600)
    gauge.begin()
    drainer.start()
    thread = drainer._thread
    drainer.write_mail([1], RAW, sender="a@example.com")
    assert gauge.entered.wait(TIMEOUT)
    drainer.stop(timeout=TIMEOUT)
    assert not thread.is_alive()
    assert store.receiving_at_store == [1]  # the entry in progress was stored, not dropped


def test_the_sessions_count_a_message_from_data_to_its_reply(tmp_path):
    gauge = ReceivingGauge()
    seen: list[int] = []

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            seen.append(gauge.receiving)
            return "250 OK"

    drainer = SpoolDrainer(tmp_path, lambda entry: None, receiving=gauge)
    server = RunningSmtp(Handler(), drainer=drainer).start()
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=TIMEOUT) as client:
            client.sendmail("a@example.com", ["b@example.com"], RAW)
            client.sendmail("a@example.com", ["b@example.com"], RAW)
    finally:
        server.stop()
    assert seen == [1, 1]
    assert gauge.receiving == 0
