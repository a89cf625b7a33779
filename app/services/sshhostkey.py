"""The SFTP server's host key in the data folder: made once, kept, and its fingerprint for the screens.

Decisions (where docs/spec.md is silent):
- Ed25519, made on the first SFTP start at `{DATA_DIR}/sftp_host_ed25519_key` (0600, OpenSSH
  format) and never replaced: clients remember it, and a new key would look like an attack.
  Two processes starting at once keep the first key written (a hard link, never a rename).
- The fingerprint is the SHA256 one OpenSSH shows (`SHA256:...`), so a user compares it with
  what `ssh-keyscan -p PORT HOST | ssh-keygen -lf -` or their client prints.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncssh

HOST_KEY_FILE = "sftp_host_ed25519_key"


def host_key_path(data_dir: str | Path) -> Path:
    """Where the SFTP host key lives in the data folder."""
    return Path(data_dir) / HOST_KEY_FILE


def host_key(data_dir: str | Path) -> asyncssh.SSHKey:
    """The SFTP host key: read from the data folder, or made there (Ed25519, 0600) when missing."""
    import asyncssh  # here, not at the top: a quarter of a second that only SFTP needs

    path = host_key_path(data_dir)
    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519")
        temporary = path.with_name(f"{path.name}.{os.getpid()}.new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.export_private_key())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return asyncssh.read_private_key(str(path))


def host_key_fingerprint(data_dir: str | Path) -> str | None:
    """The host key's fingerprint as OpenSSH shows it ("SHA256:..."), None before the first SFTP start."""
    path = host_key_path(data_dir)
    if not path.exists():
        return None
    import asyncssh  # only the screens showing a key pay for it

    return asyncssh.read_private_key(str(path)).get_fingerprint("sha256")
