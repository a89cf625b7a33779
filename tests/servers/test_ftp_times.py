"""FTP listings: LIST shows times in TIMEZONE whatever the process's TZ; MLSD stays UTC (RFC 3659)."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from zoneinfo import ZoneInfo

import pytest

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@pytest.fixture
def utc_process(monkeypatch):
    """The process runs in UTC, so a listing in TIMEZONE cannot come from the process's own zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _uploaded(ftp_account, name: str) -> dt.datetime:
    """A file in the home whose mtime is a whole minute a day ago (recent: LIST shows hours and minutes)."""
    ftp_account.home.mkdir(parents=True, exist_ok=True)
    when = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(days=1)
    (ftp_account.home / name).write_bytes(b"No.\r\n")
    os.utime(ftp_account.home / name, (when.timestamp(), when.timestamp()))
    return when


def _list_time(when: dt.datetime, zone: str) -> str:
    local = when.astimezone(ZoneInfo(zone))
    return f"{MONTHS[local.month - 1]} {local:%d %H:%M}"


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/New_York"])
def test_list_shows_the_configured_zone_and_mlsd_utc(ftp_start, ftp_connect, ftp_account, utc_process, zone):
    server = ftp_start(TIMEZONE=zone)
    when = _uploaded(ftp_account, "20261201.csv")
    client = ftp_connect(server)

    lines: list[str] = []
    client.retrlines("LIST", lines.append)
    [line] = [entry for entry in lines if entry.endswith(" 20261201.csv")]
    assert f" {_list_time(when, zone)} 20261201.csv" in line

    facts = dict(client.mlsd())["20261201.csv"]
    assert facts["modify"] == when.strftime("%Y%m%d%H%M%S")
    assert client.sendcmd("MDTM 20261201.csv") == f"213 {when:%Y%m%d%H%M%S}"


def test_curl_lists_the_configured_zone(ftp_start, ftp_account, utc_process):
    server = ftp_start(TIMEZONE="Asia/Tokyo")
    when = _uploaded(ftp_account, "20261201.csv")
    listing = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--user", f"{ftp_account.username}:{ftp_account.password}",
         f"ftp://127.0.0.1:{server.port}/"],
        capture_output=True, text=True, check=True, timeout=20,
    ).stdout
    assert f" {_list_time(when, 'Asia/Tokyo')} 20261201.csv" in listing
