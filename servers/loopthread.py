"""An asyncio server in a thread of its own (SMTP, SFTP): opened on the thread's loop, its failure to
open raised to start() in the caller's thread, then served until the loop is stopped."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable


class LoopThread:
    """The thread of `loop`: `open_server()` on it, then the loop runs; `wind_down()` on it once the loop stops."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, open_server: Callable[[], Awaitable[None]],
                 wind_down: Callable[[], None]):
        self.loop = loop
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._open_server = open_server
        self._wind_down = wind_down
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float | None = None) -> bool:
        """Start the thread and wait for the server to open; False after `timeout`, and what opening it raised is raised."""
        self.thread.start()
        if not self._ready.wait(timeout):
            return False
        if self._error is not None:
            self.thread.join()
            raise self._error
        return True

    def serving(self) -> bool:
        """Whether the thread still runs its loop."""
        return self.thread.is_alive() and self.loop.is_running()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._open_server())
        except BaseException as error:  # noqa: BLE001 - reported to start() in the caller's thread
            self._error = error
            self._ready.set()
            self.loop.close()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self._wind_down()
            self.loop.close()
