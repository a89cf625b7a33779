"""Renkei's SFTP server with real clients (OpenSSH sftp/scp, lftp, curl, paramiko): uploads, checks, confinement, bans, host key."""
from __future__ import annotations

import ftplib
import os
import shutil
import signal
import stat
import subprocess
import time

import pytest

from app.extensions import db
from app.models import Import, IntegrationSettings
from app.services import ftpcheck
from tests.fixtures.ftp import ftp_csv, ftp_files, ftp_set_settings, ftp_staged_bytes, ftp_staging
from tests.fixtures.ingest import all_imports
from tests.fixtures.sftp import SSH_OPTIONS, sftp_paramiko, sftp_run
from tests.fixtures.waiting import wait_for

# Checks only receive files: the import worker runs, as on a server, and imports them.
pytestmark = pytest.mark.usefixtures("import_worker")

STAGING = "sftp-uploading"  # servers.sftp's staging folder in DATA_DIR


def test_openssh_sftp_with_password_uploads_and_the_check_imports(app, ftp_account, sftp_server, sftp_known, tmp_path):
    local = tmp_path / "20180516.csv"
    local.write_bytes(ftp_csv())
    done = sftp_run(sftp_server, ftp_account.username, f"put {local}\nls\n", sftp_known, password=ftp_account.password)
    assert done.returncode == 0, done.stderr
    assert "20180516.csv" in done.stdout
    assert ftp_files(ftp_account.home) == ["20180516.csv"] and ftp_staging(app, STAGING) == []

    result = ftpcheck.check_account(ftp_account.id)

    assert [(f.name, f.succeeded) for f in result.files] == [("20180516.csv", True)]
    imp = all_imports()[-1]
    assert (imp.channel, imp.filename, imp.status, imp.row_count) == ("ftp", "20180516.csv", Import.SUCCEEDED, 2)
    assert ftp_files(ftp_account.home) == [] and len(ftp_files(ftp_account.home / "processed")) == 1


def test_openssh_sftp_with_a_key_of_the_account(app, ftp_account, sftp_server, sftp_known, sftp_keys, tmp_path):
    from app.services import sshkeys

    key, line = sftp_keys
    sshkeys.add(ftp_account.id, line, actor="test")
    local = tmp_path / "20180516.csv"
    local.write_bytes(ftp_csv())
    done = sftp_run(sftp_server, ftp_account.username, f"put {local}\n", sftp_known, key=key)
    assert done.returncode == 0, done.stderr
    assert ftp_files(ftp_account.home) == ["20180516.csv"]


def test_a_key_the_account_does_not_have_is_refused(app, ftp_account, sftp_server, sftp_known, sftp_keys, tmp_path):
    key, _ = sftp_keys
    done = sftp_run(sftp_server, ftp_account.username, "ls\n", sftp_known, key=key)
    assert done.returncode != 0 and "Permission denied" in done.stderr


def test_a_key_is_refused_when_the_mode_is_not_ftp(app, ftp_account, sftp_server, sftp_known, sftp_keys):
    from app.services import sshkeys

    key, line = sftp_keys
    sshkeys.add(ftp_account.id, line, actor="test")
    ftp_set_settings(ftp_account.id, mode="mail")
    done = sftp_run(sftp_server, ftp_account.username, "ls\n", sftp_known, key=key)
    assert done.returncode != 0 and "Permission denied" in done.stderr


def test_scp_uploads_over_sftp_and_legacy_scp_is_refused(app, ftp_account, sftp_server, sftp_known, tmp_path):
    local = tmp_path / "20180516.csv"
    local.write_bytes(ftp_csv())
    base = ["sshpass", "-p", ftp_account.password, "scp", *SSH_OPTIONS, "-o", f"UserKnownHostsFile={sftp_known}",
            "-o", "PubkeyAuthentication=no", "-P", str(sftp_server.port)]
    target = f"{ftp_account.username}@127.0.0.1:20180516.csv"
    done = subprocess.run([*base, str(local), target], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (ftp_account.home / "20180516.csv").read_bytes() == ftp_csv()

    legacy = subprocess.run([*base, "-O", str(local), f"{ftp_account.username}@127.0.0.1:20180517.csv"],
                            check=False, capture_output=True, text=True, timeout=60)
    assert legacy.returncode != 0
    assert ftp_files(ftp_account.home) == ["20180516.csv"]


@pytest.mark.skipif(shutil.which("lftp") is None, reason="lftp not installed")
def test_lftp_sftp_put(app, ftp_account, sftp_server, sftp_known, tmp_path):
    local = tmp_path / "20180516.csv"
    local.write_bytes(ftp_csv())
    connect = (f"ssh -a -x {' '.join(SSH_OPTIONS)} -o UserKnownHostsFile={sftp_known} -o PubkeyAuthentication=no")
    script = (f"set sftp:connect-program '{connect}'; set net:max-retries 1; "
              f"open -u {ftp_account.username},{ftp_account.password} sftp://127.0.0.1:{sftp_server.port}; "
              f"put {local}; bye")
    done = subprocess.run(["lftp", "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (ftp_account.home / "20180516.csv").read_bytes() == ftp_csv()


@pytest.mark.skipif("sftp" not in subprocess.run(["curl", "-V"], check=False, capture_output=True, text=True).stdout,
                    reason="curl without sftp")
def test_curl_sftp_upload(app, ftp_account, sftp_server, sftp_known, tmp_path):
    local = tmp_path / "20180516.csv"
    local.write_bytes(ftp_csv())
    done = subprocess.run(["curl", "-sS", "--insecure", "-u", f"{ftp_account.username}:{ftp_account.password}",
                           "-T", str(local), f"sftp://127.0.0.1:{sftp_server.port}/20180516.csv"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (ftp_account.home / "20180516.csv").read_bytes() == ftp_csv()


# ---------------------------------------------------------------------------------------
# Completeness


def test_filepart_then_rename_is_imported_once(app, ftp_account, sftp_server):
    client = sftp_paramiko(sftp_server, ftp_account.username, ftp_account.password)
    with client.open("20180516.csv.filepart", "wb") as f:
        f.write(ftp_csv())
    # Before the rename the check waits for it and reads nothing.
    assert ftpcheck.check_account(ftp_account.id).files == []
    client.posix_rename("20180516.csv.filepart", "20180516.csv")
    client.close()

    first = ftpcheck.check_account(ftp_account.id)
    second = ftpcheck.check_account(ftp_account.id)

    assert [(f.name, f.succeeded) for f in first.files] == [("20180516.csv", True)]
    assert second.files == []
    assert [i.filename for i in all_imports()] == ["20180516.csv"]


def test_an_upload_cut_half_way_is_never_imported(app, ftp_account, sftp_server):
    client = sftp_paramiko(sftp_server, ftp_account.username, ftp_account.password)
    f = client.open("20180516.csv", "wb")
    f.write(b"No.,\xe5\xa3\xb2\xe4\xb8\x8a\n" * 2000)
    f.flush()
    wait_for(lambda: ftp_staging(app, STAGING), what="the staging file")
    # The connection dies with the file open: no CLOSE ever reaches the server.
    client.get_channel().get_transport().sock.close()
    wait_for(lambda: ftp_staging(app, STAGING) == [], what="the staging file to be discarded")

    assert ftp_files(ftp_account.home) == []
    assert ftpcheck.check_account(ftp_account.id).files == []
    assert all_imports() == []


def test_a_killed_openssh_client_leaves_nothing(app, ftp_account, sftp_server, sftp_known, tmp_path):
    big = tmp_path / "20180516.csv"
    big.write_bytes(ftp_csv() * 400_000)
    command = ["sshpass", "-p", ftp_account.password, "sftp", *SSH_OPTIONS, "-o", f"UserKnownHostsFile={sftp_known}",
               "-o", "PubkeyAuthentication=no", "-P", str(sftp_server.port), "-b", "-",
               f"{ftp_account.username}@127.0.0.1"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    process.stdin.write(f"put {big}\n".encode())
    process.stdin.close()
    wait_for(lambda: ftp_staged_bytes(app, STAGING) > 1_000_000, what="the upload to be under way")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    wait_for(lambda: ftp_staging(app, STAGING) == [], what="the staging file to be discarded")

    assert ftp_files(ftp_account.home) == []
    assert ftpcheck.check_account(ftp_account.id).files == []


def test_stopping_the_server_mid_upload_discards_it(app, ftp_account, sftp_start):
    server = sftp_start()
    client = sftp_paramiko(server, ftp_account.username, ftp_account.password)
    f = client.open("20180516.csv", "wb")
    f.write(b"x" * 100_000)
    f.flush()
    wait_for(lambda: ftp_staging(app, STAGING), what="the staging file")
    server.stop()
    assert ftp_staging(app, STAGING) == [] and ftp_files(ftp_account.home) == []
    assert not server.alive()


def test_uploads_over_the_size_cap_are_refused_and_discarded(app, ftp_account, sftp_start):
    server = sftp_start(FTP_MAX_BYTES=1000)
    client = sftp_paramiko(server, ftp_account.username, ftp_account.password)
    with pytest.raises(OSError, match="size limit"), client.open("20180516.csv", "wb") as f:
        f.write(b"x" * 5000)
    client.close()
    assert ftp_files(ftp_account.home) == [] and wait_for(lambda: ftp_staging(app, STAGING) == [], what="no staging file")


# ---------------------------------------------------------------------------------------
# Confinement and what is not offered


def not_refused(*attempts) -> list[tuple]:
    """The attempts (call, *args) that did not raise PermissionError, by name; any other error is raised."""
    done = []
    for call, *args in attempts:
        try:
            call(*args)
        except PermissionError:
            continue
        done.append((call.__name__, *args))
    return done


def test_nothing_outside_the_home_is_reachable(app, ftp_account, sftp_server, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("secret")
    client = sftp_paramiko(sftp_server, ftp_account.username, ftp_account.password)  # the login makes the home
    os.symlink(outside, ftp_account.home / "link")

    assert client.normalize(".") == "/"
    assert client.listdir("/") == ["link"]
    assert not_refused(*[(client.stat, path) for path in ("..", "/..", "../..", "processed/../../x")],
                       (client.chdir, ".."),
                       # The symlink made outside Renkei points out of the home: refused, not followed.
                       (client.listdir, "link"), (client.open, "link/new.csv", "wb")) == []
    # An absolute path is inside the home: /etc is the home's (missing) etc folder.
    with pytest.raises(FileNotFoundError):
        client.open("/etc/passwd.csv", "wb")
    with client.open("20180516.csv", "wb") as f:
        f.write(ftp_csv())
    assert not_refused((client.rename, "20180516.csv", "../20180516.csv"),
                       (client.posix_rename, "20180516.csv", "link/20180516.csv"),
                       (client.symlink, "/etc/passwd", "passwd.csv"), (client.symlink, "20180516.csv", "again.csv"),
                       # No downloads, no appends (as over FTP).
                       (client.open, "20180516.csv", "rb"), (client.open, "20180516.csv", "ab")) == []
    client.close()
    assert sorted(os.listdir(outside)) == ["secret.csv"]
    assert ftp_files(ftp_account.home) == ["20180516.csv"]


def test_openssh_sftp_cd_up_and_absolute_paths_are_refused(app, ftp_account, sftp_server, sftp_known):
    done = sftp_run(sftp_server, ftp_account.username, "cd ..\n", sftp_known, password=ftp_account.password)
    assert done.returncode != 0
    done = sftp_run(sftp_server, ftp_account.username, "ls /../../etc\n", sftp_known, password=ftp_account.password)
    assert done.returncode != 0 and "passwd" not in done.stdout


def test_folders_rename_delete_and_chmod_work_inside_the_home(app, ftp_account, sftp_server):
    client = sftp_paramiko(sftp_server, ftp_account.username, ftp_account.password)
    client.mkdir("in")
    with client.open("in/a.csv", "wb") as f:
        f.write(b"a")
    client.chmod("in/a.csv", 0o644)  # answered OK, nothing changed (as FTP's SITE CHMOD)
    client.rename("in/a.csv", "b.csv")
    client.remove("b.csv")
    client.rmdir("in")
    client.close()
    assert os.listdir(ftp_account.home) == []


def test_no_shell_no_exec_no_forwarding(app, ftp_account, sftp_server):
    import paramiko

    transport = paramiko.Transport(("127.0.0.1", sftp_server.port))
    transport.connect(username=ftp_account.username, password=ftp_account.password)
    for request in ("exec", "shell"):
        channel = transport.open_session()
        with pytest.raises(paramiko.SSHException):
            channel.exec_command("id") if request == "exec" else channel.invoke_shell()
    with pytest.raises(paramiko.ChannelException):
        transport.open_channel("direct-tcpip", ("127.0.0.1", sftp_server.port), ("127.0.0.1", 1))
    with pytest.raises(paramiko.SSHException):
        transport.request_port_forward("127.0.0.1", 0)
    transport.close()


# ---------------------------------------------------------------------------------------
# Logins: admission, delay, shared bans


def test_a_right_password_is_refused_when_the_mode_is_not_ftp(app, ftp_account, sftp_server):
    import paramiko

    ftp_set_settings(ftp_account.id, mode="mail")
    with pytest.raises(paramiko.AuthenticationException):
        sftp_paramiko(sftp_server, ftp_account.username, ftp_account.password)


def test_a_failed_login_waits_before_answering(app, ftp_account, sftp_start):
    import paramiko

    server = sftp_start(LOGIN_FAIL_DELAY=0.4)
    started = time.monotonic()
    with pytest.raises(paramiko.AuthenticationException):
        sftp_paramiko(server, ftp_account.username, "guess")
    assert time.monotonic() - started >= 0.4


def test_wrong_sftp_passwords_ban_the_address_for_sftp_ftp_and_web(app, client, ftp_account, sftp_start, ftp_start,
                                                                   ftp_connect, sftp_known):
    import paramiko

    app.config.update(BAN_THRESHOLD=3)
    server = sftp_start()
    for _ in range(3):
        with pytest.raises(paramiko.SSHException):
            sftp_paramiko(server, ftp_account.username, "guess")
    # Banned: the right password is refused before it is tried, on SFTP ...
    done = sftp_run(server, ftp_account.username, "ls\n", sftp_known, password=ftp_account.password)
    assert done.returncode != 0 and "Too many failed logins" in done.stderr
    # ... on FTP ...
    with pytest.raises(ftplib.error_temp, match="^421"):
        ftp_connect(ftp_start())
    # ... and on the web login.
    response = client.post("/login", data={"email": "admin@acme.example", "password": "password-123"})
    assert response.status_code == 429


# ---------------------------------------------------------------------------------------
# Host key


def test_the_host_key_is_made_once_private_and_kept_across_restarts(app, ftp_account, sftp_start):
    from servers import sftp

    data_dir = app.config["DATA_DIR"]
    assert sftp.host_key_fingerprint(data_dir) is None
    first = sftp_start()
    path = sftp.host_key_path(data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    fingerprint = first.fingerprint
    assert fingerprint.startswith("SHA256:") and sftp.host_key_fingerprint(data_dir) == fingerprint
    # What OpenSSH's own tools see on the wire.
    scanned = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", str(first.port), "127.0.0.1"],
                             check=False, capture_output=True, text=True, timeout=30).stdout
    shown = subprocess.run(["ssh-keygen", "-lf", "-"], input=scanned, check=False, capture_output=True, text=True).stdout
    assert fingerprint in shown
    first.stop()
    assert not first.alive()

    second = sftp_start()
    assert second.alive() and second.fingerprint == fingerprint
    assert second.listeners == [f"sftp://127.0.0.1:{second.port}"]


def test_connections_per_address_are_capped(app, ftp_account, sftp_start):
    import paramiko

    server = sftp_start(FTP_MAX_CONS_PER_IP=1)
    first = sftp_paramiko(server, ftp_account.username, ftp_account.password)
    with pytest.raises(paramiko.SSHException):
        sftp_paramiko(server, ftp_account.username, ftp_account.password)
    first.close()


def test_a_stopped_status_lets_the_client_in_and_the_files_wait(app, ftp_account, sftp_server):
    settings = db.session.scalar(db.select(IntegrationSettings).where(IntegrationSettings.account_id == ftp_account.id))
    settings.status = "stopped"
    db.session.commit()
    client = sftp_paramiko(sftp_server, ftp_account.username, ftp_account.password)
    with client.open("20180516.csv", "wb") as f:
        f.write(ftp_csv())
    client.close()
    assert ftp_files(ftp_account.home) == ["20180516.csv"]
    assert all_imports() == []
