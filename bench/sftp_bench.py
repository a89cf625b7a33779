"""Benchmark (not a test): upload a 100 MB file with OpenSSH's sftp to Renkei's SFTP server and to OpenSSH's sshd.

Run: python bench/sftp_bench.py [--mb 100] [--rounds 3] [--cipher NAME]

Renkei's server is servers.sftp.start() in this process, with a throw-away data folder,
database and FTP account whose SSH key is the bench's throw-away client key. The other is
/usr/sbin/sshd started here on a free loopback port with a throw-away configuration (its
own host key, `Subsystem sftp internal-sftp`, AuthorizedKeysFile of the same client key,
UsePAM no), run as the current user with -D -e -f. Both get the same client: OpenSSH `sftp
-b` with the same key, options and cipher (the client's default unless --cipher). Each
round uploads the file once to each server, the order alternating from round to round
(whichever goes second finds the file in the page cache); the medians are compared.
Target: Renkei / sshd >= 0.5 (asyncssh is Python, sshd is C).
"""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftp_account import USER, ftp_account_app  # noqa: E402

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path) -> str:
    """An Ed25519 key without passphrase at `path`; return its public line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return Path(f"{path}.pub").read_text().strip()


def start_sshd(work: Path, public_line: str, home: Path) -> tuple[subprocess.Popen, int]:
    """OpenSSH's sshd with a throw-away config on a free loopback port; uploads land in `home`."""
    if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
        # sshd run as root needs its privilege separation folder (Debian makes it when the service starts).
        Path("/run/sshd").mkdir(mode=0o755)
    host_key = work / "sshd_host_ed25519_key"
    keygen(host_key)
    authorized = work / "authorized_keys"
    authorized.write_text(public_line + "\n")
    authorized.chmod(0o600)
    port = free_port()
    config = work / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", "PidFile none",
        f"AuthorizedKeysFile {authorized}", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", f"AllowUsers {getpass.getuser()}",
        "PermitRootLogin prohibit-password", f"ForceCommand internal-sftp -d {home}",
        "Subsystem sftp internal-sftp", "",
    ]))
    with open(work / "sshd.log", "wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"sshd did not start: {(work / 'sshd.log').read_text()}") from None
            time.sleep(0.05)


def start_renkei(data_dir: Path, public_line: str):
    """Renkei's SFTP server for the bench account holding the client key; return (server, user)."""
    from servers import sftp

    app, _ = ftp_account_app(data_dir, "SFTP_PORT", public_line)
    return sftp.start(app), USER


def upload(port: int, user: str, key: Path, known: Path, source: Path, cipher: str | None) -> float:
    """Upload `source` with `sftp -b`; return the seconds of the whole session (connect, login, put, close)."""
    command = ["sftp", "-q", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
               "-o", f"UserKnownHostsFile={known}", "-o", "LogLevel=ERROR", "-P", str(port)]
    if cipher:
        command += ["-o", f"Ciphers={cipher}"]
    command += ["-b", "-", f"{user}@127.0.0.1"]
    started = time.perf_counter()
    subprocess.run(command, input=f"put {source} {source.name}\n", text=True, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="file size in MB (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="uploads per server (default 3)")
    parser.add_argument("--cipher", help="force this cipher for both (default: the client's choice)")
    args = parser.parse_args()
    logging.disable(logging.INFO)

    with tempfile.TemporaryDirectory(prefix="renkei-sftp-bench-") as work_name:
        work = Path(work_name)
        source = work / "20180516.csv"
        size = args.mb * 1000 * 1000
        with open(source, "wb") as f:
            f.writelines(os.urandom(1000 * 1000) for _ in range(args.mb))
        client_key = work / "client_ed25519"
        public_line = keygen(client_key)
        known = work / "known_hosts"
        sshd_home = work / "sshd-home"
        sshd_home.mkdir()
        data_dir = work / "renkei"
        data_dir.mkdir()

        sshd, sshd_port = start_sshd(work, public_line, sshd_home)
        renkei, user = start_renkei(data_dir, public_line)
        home = data_dir / "ftp" / user
        times: dict[str, list[float]] = {"OpenSSH sshd": [], "Renkei": []}
        contenders = {"OpenSSH sshd": (sshd_port, getpass.getuser(), sshd_home), "Renkei": (renkei.port, user, home)}
        try:
            for round_ in range(args.rounds):
                order = list(contenders) if round_ % 2 == 0 else list(reversed(contenders))
                for name in order:
                    port, login, landed = contenders[name]
                    times[name].append(upload(port, login, client_key, known, source, args.cipher))
                    assert (landed / source.name).stat().st_size == size, name
                    (landed / source.name).unlink()
        finally:
            renkei.stop()
            sshd.terminate()
            sshd.wait(10)

    print(f"{args.mb} MB uploaded with OpenSSH sftp -b (cipher: {args.cipher or 'client default'}),"
          f" {args.rounds} rounds, order alternating; medians of the whole session")
    rates = {name: size / statistics.median(runs) / 1e6 for name, runs in times.items()}
    for name, rate in rates.items():
        print(f"  {name:13s} {rate:8.1f} MB/s  (runs: {', '.join(f'{t:.2f}s' for t in times[name])})")
    ratio = rates["Renkei"] / rates["OpenSSH sshd"]
    print(f"  ratio Renkei / sshd = {ratio:.2f} (target >= 0.5; higher is faster) -> {'OK' if ratio >= 0.5 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
