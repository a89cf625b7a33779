"""Background work (imports, report mail, the SMTP spool drain and its MIME parsing) runs at a
lower CPU priority than the threads that answer clients (SMTP, FTP, web).

On a small machine the two compete for the same cores; a sender waiting for its `250` or
`226` should not wait because a file received earlier is being imported. The import still
gets every cycle nobody else wants. Linux gives each thread its own nice value; elsewhere
only whole processes have one, so there this does nothing for threads.
"""
from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

# Added to the process's nice value (which stays as the operator set it, e.g. `nice python run.py`).
BACKGROUND_NICE = 10
_MAX_NICE = 19


def lower_this_thread() -> None:
    """Give the calling thread the background priority (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    _lower(threading.get_native_id())


def lower_this_process() -> None:
    """Give the calling process the background priority (an initializer of worker processes)."""
    _lower(0)


def _lower(who: int) -> None:
    try:
        current = os.getpriority(os.PRIO_PROCESS, who)
        os.setpriority(os.PRIO_PROCESS, who, min(_MAX_NICE, current + BACKGROUND_NICE))
    except (OSError, AttributeError):  # no such call on this system, or not allowed: run at normal priority
        log.debug("could not lower the priority of background work", exc_info=True)
