"""Open connections per peer address, the one counter of the SMTP and web per-address caps."""
from __future__ import annotations

from collections.abc import Callable


class AddressCounts:
    """Connections open per address, capped at `limit` (0 = no cap); `exempt(address)` ones are never capped.

    Touched only on its server's loop thread, so it needs no lock.
    """

    def __init__(self, limit: int, exempt: Callable[[str], bool] | None = None):
        self.limit = limit
        self.exempt = exempt
        self.open: dict[str, int] = {}

    def enter(self, address: str) -> bool:
        """Count a new connection of `address`; False (nothing counted) when the address is at its cap."""
        count = self.open.get(address, 0)
        if self.limit > 0 and count >= self.limit and not (self.exempt and self.exempt(address)):
            return False
        self.open[address] = count + 1
        return True

    def leave(self, address: str) -> None:
        count = self.open.get(address, 0) - 1
        if count > 0:
            self.open[address] = count
        else:
            self.open.pop(address, None)
