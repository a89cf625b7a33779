"""DKIM and SPF of a mail against a DNS server the test runs on loopback (tests/fixtures/dnsserver.py)."""
import pytest

from app.services.senderauth import (
    DnsClient,
    DnsTemporaryError,
    Origin,
    Verifier,
    aligned,
)

MAIL = (b"From: sales@beta.example\r\nTo: in@renkei.example\r\nSubject: data\r\n"
        b"Date: Wed, 16 May 2018 09:00:00 +0900\r\nMessage-ID: <a1@beta.example>\r\n\r\nbody line\r\n")
ORIGIN = Origin(mail_from="sales@beta.example", peer_address="127.0.0.1", helo_name="mx.beta.example")


@pytest.fixture
def verifier(dns_records):
    return Verifier(DnsClient(dns_records.address, timeout=2.0))


def test_dkim_pass_fail_none(verifier, dns_records, dkim_key):
    dns_records.txt("sel1._domainkey.beta.example", dkim_key.record)
    signed = dkim_key.sign(MAIL, "beta.example")
    assert verifier.dkim(signed) == ("pass", "beta.example")
    assert verifier.dkim(signed.replace(b"body line", b"body lime")) == ("fail", "beta.example")
    assert verifier.dkim(MAIL) == ("none", None)


def test_dkim_without_key_is_permerror(verifier, dkim_key):
    assert verifier.dkim(dkim_key.sign(MAIL, "beta.example")) == ("permerror", "beta.example")


def test_spf_pass_fail_none(verifier, dns_records):
    assert verifier.spf(Origin("x@nospf.example", "127.0.0.1", "h")) == "none"
    dns_records.txt("beta.example", "v=spf1 ip4:127.0.0.0/8 -all")
    assert verifier.spf(ORIGIN) == "pass"
    dns_records.txt("gamma.example", "v=spf1 ip4:10.0.0.0/8 -all")
    assert verifier.spf(Origin("x@gamma.example", "127.0.0.1", "h")) == "fail"


def test_a_silent_server_is_a_temporary_error_within_the_timeout():
    import socket
    import time

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        client = DnsClient(f"127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(DnsTemporaryError):
            client.txt("beta.example")
        assert time.monotonic() - started < 2
        # Down for a while: the next mail gets its temperror without waiting again.
        started = time.monotonic()
        assert Verifier(client).spf(ORIGIN) == "temperror"
        assert Verifier(client).dkim(b"DKIM-Signature: v=1; a=rsa-sha256; d=beta.example; s=sel1; c=relaxed/simple; "
                                     b"h=from; bh=AAAA; b=AAAA\r\n" + MAIL)[0] == "temperror"
        assert time.monotonic() - started < 0.2


def test_answers_are_cached_within_their_ttl(dns_records):
    now = [0.0]
    client = DnsClient(dns_records.address, timeout=2.0, max_seconds=30, clock=lambda: now[0])
    dns_records.txt("beta.example", "v=spf1 -all")
    assert client.txt("beta.example") == [b"v=spf1 -all"]
    client.txt("beta.example")
    assert dns_records.asked.count(("beta.example", "TXT")) == 1
    now[0] = 31.0
    client.txt("beta.example")
    assert dns_records.asked.count(("beta.example", "TXT")) == 2


def test_alignment():
    assert aligned("beta.example", "a@beta.example")
    assert aligned("beta.example", "a@mail.beta.example")
    assert not aligned("evil.example", "a@beta.example")
    assert not aligned("ta.example", "a@beta.example")
