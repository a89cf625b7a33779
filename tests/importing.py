"""Import a file in a test as a channel and the worker do it: receive, then the worker's own step."""
from __future__ import annotations

from app.models import Import
from app.services import ingest, queue


def import_file(account_id: int, filename: str, data: bytes, *, channel: str = "cli",
                sender: str | None = None) -> Import:
    """Receive the file and run the queue here (queue.run_until_ended) until its import has ended."""
    received = ingest.receive(account_id, filename, data, channel=channel, sender=sender)
    return queue.run_until_ended(received.id)
