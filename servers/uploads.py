"""Uploads that land only when complete, shared by the FTP and SFTP servers.

An upload is written to a staging file outside every home and moved into the home with one
rename only when the transfer ended normally (each server decides what "normally" means for
its protocol); otherwise the staging file is deleted. So a file in a home is always a finished
upload, and a half-written one can never be seen, listed, renamed or imported.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def prepare_staging(data_dir: str | Path, folder: str) -> str:
    """Empty and create `{data_dir}/{folder}`: nothing can be in progress before the server runs."""
    staging = Path(data_dir) / folder
    # Leftovers are from a crash: their uploads never ended normally.
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True, mode=0o700)
    (Path(data_dir) / "ftp").mkdir(parents=True, exist_ok=True)
    return str(staging)


def new_staged_path(staging_dir: str) -> str:
    """A fresh staging file name (not created)."""
    return os.path.join(staging_dir, f"{secrets.token_hex(12)}.part")


def settle(staged: str, target: str, complete: bool, who: str) -> bool:
    """Move a finished upload to `target` (True), or delete an unfinished one (False)."""
    if complete:
        try:
            os.replace(staged, target)
            return True
        except OSError as err:
            log.warning("upload could not be moved into place user=%s file=%s: %s", who, target, err)
    discard(staged)
    return False


def discard(staged: str) -> None:
    """Delete a staging file (already gone is fine)."""
    try:
        os.unlink(staged)
    except FileNotFoundError:
        pass
    except OSError as err:
        log.warning("staging file not removed %s: %s", staged, err)
