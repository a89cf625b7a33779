"""A durable on-disk spool for received files: written and fsynced before the channel acknowledges,
moved into the database (ingest.receive) later by a drain.

Why: on SQLite one writer holds the lock at a time and a running import holds it for its whole
transaction, so committing a mail's bytes before `250` made every SMTP answer wait behind imports.
docs/spec.md section 5 allows the answer once a file is stored durably (fsynced or committed):
the SMTP server writes here instead.

One entry = one file `{time_ns}-{counter}-{uuid}.entry`: a one-line JSON header then the bytes:
a whole received mail (`{"kind": "mail", account_id, account_ids, delivery, sender, received_at}`
+ the raw message), written by the SMTP server, whose drain parses it after `250` and imports it
once for each account in `account_ids`. Mail entries of earlier versions (no `account_ids`, no
`delivery`) are still read. The one-file entries of still earlier versions (no "kind") are not:
they are set aside as `.bad` like any unreadable entry, bytes kept. It is written under a
temporary name starting with `.tmp-`, fsynced, renamed to its final name and the folder fsynced,
so a final name always holds a complete entry; a temporary file is the leftover of a crash during
the write (its message was never acknowledged) and is removed by `clean_temporaries()`.

`delivery` is a random id drawn for each accepted message before its entry is written: the
drain's dedupe keys are built from it, so draining one entry twice (a crash between its commit
and its delete) stores it once, while the same message delivered again (same Message-ID: a
bounce, a saved .eml sent again) is a new entry, a new delivery and a new import. A mail entry
of earlier versions has no `delivery`; its keys come from the Message-ID as they did then.

The spool is per machine: the process that writes it (the `smtp` part) drains it, so in a
multi-machine setup each SMTP host needs its own data folder; the database may be shared.
"""
from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"
ENTRY_SUFFIX = ".entry"
BAD_SUFFIX = ".bad"  # a final entry whose header cannot be read: kept aside, never deleted
MAIL = "mail"  # the entry kind

# Names sort in write order even when two entries share a nanosecond timestamp.
_counter = itertools.count()
_counter_lock = threading.Lock()


@dataclass(frozen=True)
class Entry:
    """One spooled mail: `data` is the raw message, its files are known only once it is parsed."""

    path: Path
    account_id: int
    data: bytes
    sender: str | None
    received_at: str
    kind: str = MAIL
    account_ids: tuple[int, ...] = ()  # a mail: every account it was accepted for (account_id first)
    delivery: str | None = None  # a mail: the random id of this delivery (None in earlier versions' entries)
    # Who delivered it: {"mail_from", "peer_address", "helo_name"} (None in earlier versions' entries).
    origin: dict[str, str] | None = None


class SpoolCorrupt(Exception):
    """A final spool entry whose header cannot be read."""


class Unstorable(Exception):
    """Raised by a drain's `store` for an entry that can never be stored (e.g. its account was deleted)."""


def mail_folder(data_dir: str | os.PathLike[str], name: str = "mail") -> Path:
    """The mail spool folder of a data folder (created if absent); `name` "imap" is the mailbox fetcher's."""
    folder = Path(data_dir) / "spool" / name
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def _fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable (the directory entry itself)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _next_name() -> str:
    with _counter_lock:
        count = next(_counter) % 1_000_000
        stamp = time.time_ns()
    return f"{stamp:020d}-{count:06d}-{uuid.uuid4().hex}{ENTRY_SUFFIX}"


def write_mail(folder: Path, *, account_ids: list[int], sender: str, raw: bytes,
               origin: dict[str, str] | None = None, delivery: str | None = None) -> Path:
    """Write one whole received message for one or more accounts durably (fsync file, rename, fsync folder).

    A fresh random delivery id goes into the header, so the drain's dedupe keys belong to this
    delivery and not to the message's headers. A message fetched from a mailbox brings its own
    (`delivery`: its account, mailbox, UIDVALIDITY and UID), so fetching it again after a crash
    stores nothing twice. Returns the final path.
    """
    if not account_ids:
        raise ValueError("a mail entry needs at least one account")
    return _write(folder, {"kind": MAIL, "account_id": account_ids[0], "account_ids": list(account_ids),
                           "delivery": delivery or uuid.uuid4().hex, "sender": sender,
                           **({"origin": dict(origin)} if origin else {})}, raw)


def _write(folder: Path, meta: dict[str, Any], data: bytes) -> Path:
    name = _next_name()
    header = json.dumps({**meta, "received_at": dt.datetime.now(dt.timezone.utc).isoformat()},
                        ensure_ascii=True).encode("ascii")  # ASCII JSON never contains a newline: one line
    temp = folder / f"{TEMP_PREFIX}{name}"
    final = folder / name
    try:
        with open(temp, "xb") as out:
            out.write(header + b"\n")
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    try:
        _fsync_dir(folder)
    except BaseException:
        # Not durable, so not acknowledged: the client retries, and this entry must not become a second import.
        final.unlink(missing_ok=True)
        raise
    return final


def read(path: Path) -> Entry:
    """Read one final entry; raise SpoolCorrupt when its header is not ours."""
    raw = path.read_bytes()
    head, newline, data = raw.partition(b"\n")
    try:
        if not newline:
            raise ValueError("no header line")
        meta = json.loads(head.decode("ascii"))
        kind = meta.get("kind")
        if kind != MAIL:
            raise ValueError(f"not a mail entry (kind {kind!r})")
        account_id = int(meta["account_id"])
        account_ids = tuple(int(a) for a in meta.get("account_ids") or [account_id])
        return Entry(path=path, account_id=account_id, data=data, sender=meta.get("sender"),
                     received_at=str(meta.get("received_at") or ""), account_ids=account_ids,
                     delivery=str(meta["delivery"]) if meta.get("delivery") else None,
                     origin={str(k): str(v) for k, v in meta["origin"].items()} if meta.get("origin") else None)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise SpoolCorrupt(f"{path.name}: {error}") from error


def pending(folder: Path) -> list[Path]:
    """Final entries in write order (temporary files are not entries)."""
    return sorted(p for p in folder.iterdir() if p.name.endswith(ENTRY_SUFFIX) and not p.name.startswith("."))


def clean_temporaries(folder: Path) -> int:
    """Remove unrenamed temporary files (crash leftovers: never acknowledged); call before accepting mail."""
    removed = 0
    for path in folder.iterdir():
        if path.name.startswith(TEMP_PREFIX):
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.warning("spool removed %d unfinished temporary file(s) in %s", removed, folder)
    return removed


def drain(folder: Path, store: Callable[[Entry], Any], should_stop: Callable[[], bool] = lambda: False) -> int:
    """Store every pending entry in order with `store` (e.g. ingest.receive), deleting each after; return the count.

    An exception from `store` propagates with the entry kept, so the caller retries later and
    nothing is lost; the dedupe key makes a repeat after a commit whose delete was lost harmless.
    """
    done = 0
    for path in pending(folder):
        if should_stop():
            break
        try:
            entry = read(path)
        except FileNotFoundError:
            continue
        except SpoolCorrupt as error:
            # Should never happen (entries are renamed only when complete); keep the bytes for a human.
            log.error("spool entry unreadable, set aside as %s: %s", path.name + BAD_SUFFIX, error)
            os.replace(path, path.with_name(path.name + BAD_SUFFIX))
            continue
        try:
            store(entry)
        except Unstorable as error:
            # Retrying would block every later entry forever; keep the bytes aside for a human.
            log.error("spool entry cannot be stored, set aside as %s: %s", path.name + BAD_SUFFIX, error)
            os.replace(path, path.with_name(path.name + BAD_SUFFIX))
            continue
        path.unlink(missing_ok=True)
        done += 1
    return done
