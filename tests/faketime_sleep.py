"""Keep time.sleep working in the CI's faketime pass (libfaketime with FAKETIME_DONT_FAKE_MONOTONIC=1).

libfaketime 0.9.10 (Debian bookworm) shifts the absolute CLOCK_MONOTONIC deadline that
Python 3.11's time.sleep hands to clock_nanosleep(TIMER_ABSTIME) by the fake offset, although
monotonic time is not faked: the kernel gets a time in the past and every sleep, even
sleep(0), raises OSError EINVAL (wolfcw/libfaketime#426). That breaks pyftpdlib's session
threads, the tests' polling and the login failure delay, none of which is about dates.

install() replaces time.sleep, in this process only and only when that failure is seen,
by a wait on select(), whose relative timeout libfaketime passes through unchanged.
"""
from __future__ import annotations

import errno
import os
import select
import time


def sleep_is_broken() -> bool:
    """True when this process runs under libfaketime and time.sleep fails with EINVAL."""
    if "faketime" not in os.environ.get("LD_PRELOAD", ""):
        return False
    try:
        time.sleep(0)
    except OSError as err:
        return err.errno == errno.EINVAL
    return False


def select_sleep(seconds: float) -> None:
    """time.sleep on select(): sleeps `seconds` of real (monotonic) time."""
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([], [], [], left)


def install() -> bool:
    """Replace time.sleep when it is broken (see the module docstring); True when it was replaced."""
    if not sleep_is_broken():
        return False
    time.sleep = select_sleep
    return True
