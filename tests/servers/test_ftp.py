"""Renkei's FTP server with real clients (ftplib, curl, lftp): uploads, checks, confinement, limits, bans, FTPS."""
from __future__ import annotations

import ftplib
import hashlib
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

from app.extensions import db
from app.models import Import, IntegrationSettings
from app.services import ftpcheck, ingest
from tests.fixtures.ftp import FTP_BAD_CSV, ftp_csv, ftp_files, ftp_set_settings, ftp_staged_bytes, ftp_staging, ftp_upload
from tests.fixtures.ingest import all_imports
from tests.fixtures.waiting import wait_for

# Checks only receive files: the import worker runs, as on a server, and imports them.
pytestmark = pytest.mark.usefixtures("import_worker")


# ---------------------------------------------------------------------------------------
# Upload, then a check imports and files it


def test_ftplib_upload_then_check_imports_and_moves_to_processed(app, ftp_account, ftp_server, ftp_connect):
    client = ftp_connect(ftp_server)
    assert ftp_upload(client, "20180516.csv", ftp_csv()).startswith("226")
    assert client.nlst() == ["20180516.csv"]
    assert ftp_staging(app) == []

    result = ftpcheck.check_account(ftp_account.id)

    assert [(f.name, f.succeeded) for f in result.files] == [("20180516.csv", True)]
    imp = all_imports()[-1]
    assert (imp.channel, imp.filename, imp.sender, imp.status) == ("ftp", "20180516.csv", "ftp:acme", Import.SUCCEEDED)
    assert imp.row_count == 2
    # The uploader sees what happened: the file left the top folder for processed/.
    assert client.nlst() == ["processed"]
    moved = client.nlst("processed")
    assert len(moved) == 1 and moved[0].startswith("20180516_") and moved[0].endswith(".csv")
    assert (ftp_account.home / "processed" / moved[0]).read_bytes() == ftp_csv()


def test_bad_file_goes_to_error_and_files_are_taken_in_name_order(app, ftp_account, ftp_server, ftp_connect):
    client = ftp_connect(ftp_server)
    ftp_upload(client, "20180517.csv", ftp_csv())
    ftp_upload(client, "20180516.csv", FTP_BAD_CSV)

    result = ftpcheck.check_account(ftp_account.id)

    assert [(f.name, f.succeeded) for f in result.files] == [("20180516.csv", False), ("20180517.csv", True)]
    assert [(i.filename, i.status) for i in all_imports()] == [("20180516.csv", Import.FAILED),
                                                          ("20180517.csv", Import.SUCCEEDED)]
    assert [n[:9] for n in ftp_files(ftp_account.home / "error")] == ["20180516_"]
    assert [n[:9] for n in ftp_files(ftp_account.home / "processed")] == ["20180517_"]
    assert ftp_files(ftp_account.home) == []


def test_curl_upload(app, ftp_account, ftp_server, tmp_path):
    source = tmp_path / "20180518.csv"
    source.write_bytes(ftp_csv())
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "20", "-T", str(source), f"ftp://127.0.0.1:{ftp_server.port}/",
         "--user", f"{ftp_account.username}:{ftp_account.password}"],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    assert ftp_files(ftp_account.home) == ["20180518.csv"]
    assert [f.succeeded for f in ftpcheck.check_account(ftp_account.id).files] == [True]


def test_lftp_upload(app, ftp_account, ftp_server, tmp_path):
    source = tmp_path / "20180519.csv"
    source.write_bytes(ftp_csv())
    done = subprocess.run(
        ["lftp", "-c", f"set ftp:ssl-allow no; set net:max-retries 1; "
                       f"open -u {ftp_account.username},{ftp_account.password} -p {ftp_server.port} 127.0.0.1; "
                       f"put {source}"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (ftp_account.home / "20180519.csv").read_bytes() == ftp_csv()
    assert [f.succeeded for f in ftpcheck.check_account(ftp_account.id).files] == [True]


@pytest.mark.parametrize("how", ["STOR", "filepart + RNFR/RNTO"])
def test_a_reupload_during_the_check_is_imported_by_the_next_check(app, client, login, ftp_account, ftp_server,
                                                                   ftp_connect, monkeypatch, how):
    old_bytes = ftp_csv([["No.", "売上", "件数", "備考"], ["1", "120,000", "2", ""], ["2", "50000", "1", ""]])
    new_bytes = ftp_csv([["No.", "売上", "件数", "備考"], ["1", "777,777", "7", "再送"]])
    uploader = ftp_connect(ftp_server)
    assert ftp_upload(uploader, "20180701.csv", old_bytes).startswith("226")
    real_receive = ingest.receive
    reuploaded = []

    def receive_while_the_file_is_uploaded_again(*args, **kwargs):
        # The check has read the old bytes and hands them on: the uploader sends the file again.
        if not reuploaded:
            if how == "STOR":
                reuploaded.append(ftp_upload(uploader, "20180701.csv", new_bytes))
            else:
                ftp_upload(uploader, "20180701.csv.filepart", new_bytes)
                reuploaded.append(uploader.rename("20180701.csv.filepart", "20180701.csv"))
        return real_receive(*args, **kwargs)

    monkeypatch.setattr(ingest, "receive", receive_while_the_file_is_uploaded_again)
    first = ftpcheck.check_account(ftp_account.id)
    monkeypatch.undo()

    assert reuploaded and reuploaded[0][:3] in ("226", "250")
    assert [(f.name, f.succeeded) for f in first.files] == [("20180701.csv", True)]
    assert first.waiting == ["20180701.csv"]
    # The new upload is still there for the next check; processed/ holds what was imported.
    assert sorted(uploader.nlst()) == ["20180701.csv", "processed"]
    assert (ftp_account.home / "20180701.csv").read_bytes() == new_bytes
    [processed] = ftp_files(ftp_account.home / "processed")
    assert (ftp_account.home / "processed" / processed).read_bytes() == old_bytes

    second = ftpcheck.check_account(ftp_account.id)
    assert [(f.name, f.succeeded) for f in second.files] == [("20180701.csv", True)]
    assert second.waiting == []
    assert [(i.filename, i.sha256) for i in all_imports()] == [
        ("20180701.csv", hashlib.sha256(old_bytes).hexdigest()), ("20180701.csv", hashlib.sha256(new_bytes).hexdigest())]
    assert ftp_files(ftp_account.home) == []

    login("admin@acme.example")
    html = client.get("/?month=2018-07").get_data(as_text=True)
    assert "777,777" in html and "120,000" not in html


# ---------------------------------------------------------------------------------------
# Login, refusals and bans


def test_wrong_password_is_refused(ftp_account, ftp_server, ftp_connect):
    with pytest.raises(ftplib.error_perm, match="^530"):
        ftp_connect(ftp_server, password="wrong-password")
    with pytest.raises(ftplib.error_perm, match="^530"):
        ftp_connect(ftp_server, user="nobody", password="x")


@pytest.mark.parametrize("change", [{"mode": "mail"}, {"mode": "api"}, "disable"])
def test_login_refused_when_not_in_ftp_mode_or_integration_disabled(app, ftp_account, ftp_server, ftp_connect, change):
    if change == "disable":
        from app.services import accounts

        accounts.set_integration_enabled(ftp_account.slug, False)
    else:
        ftp_set_settings(ftp_account.id, **change)
    with pytest.raises(ftplib.error_perm, match="^530"):
        ftp_connect(ftp_server)


def login_reply(server, user: str, password: str) -> str:
    """The server's answer to connect and USER/PASS (a refusal's text), with ftplib."""
    client = ftplib.FTP()
    try:
        client.connect("127.0.0.1", server.port, timeout=10)
        return client.login(user, password)
    except ftplib.Error as error:
        return str(error)
    finally:
        client.close()


def service_mode(ftp_username: str) -> str:
    db.session.rollback()
    return db.session.scalar(db.select(IntegrationSettings.mode).where(IntegrationSettings.ftp_username == ftp_username))


@pytest.mark.parametrize("change", [{"mode": "mail"}, {"mode": "api"}, "disable"])
def test_a_right_password_of_an_account_not_taking_ftp_is_answered_as_a_wrong_one(app, ftp_account, ftp_start,
                                                                                  change, caplog):
    if change == "disable":
        from app.services import accounts

        accounts.set_integration_enabled(ftp_account.slug, False)
    else:
        ftp_set_settings(ftp_account.id, **change)
    app.config.update(BAN_THRESHOLD=3)
    server = ftp_start()
    with caplog.at_level("INFO", logger="servers.ftp"):
        right = login_reply(server, ftp_account.username, ftp_account.password)
    wrong = login_reply(server, ftp_account.username, "wrong-password")
    assert right == wrong == "530 Authentication failed."
    # Counted like a wrong one too: the third refusal bans the address, so no count tells them apart.
    login_reply(server, ftp_account.username, ftp_account.password)
    assert login_reply(server, ftp_account.username, ftp_account.password).startswith("421")
    # Only the log says why.
    reason = "disabled" if change == "disable" else "mode"
    assert f"ftp login refused account=acme reason={reason}" in caplog.text


def test_the_demo_accounts_ftp_login_is_refused_while_it_is_in_mail_mode(app, ftp_server):
    from app.services import demo

    made = demo.create_demo_account(app)
    assert service_mode(made.ftp_username) == "mail"
    right = login_reply(ftp_server, made.ftp_username, made.ftp_password)
    assert right == login_reply(ftp_server, made.ftp_username, "wrong-password") == "530 Authentication failed."


def test_repeated_failures_ban_the_address_for_ftp_and_web(app, client, ftp_account, ftp_start, ftp_connect):
    app.config.update(BAN_THRESHOLD=3)
    server = ftp_start()
    for _ in range(3):
        with pytest.raises(ftplib.error_perm, match="^530"):
            ftp_connect(server, password="guess")
    # Banned: refused at connect, even with the right password.
    with pytest.raises(ftplib.error_temp, match="^421"):
        ftp_connect(server)
    # The same list guards the web login from that address.
    response = client.post("/login", data={"email": "admin@acme.example", "password": "password-123"})
    assert response.status_code == 429


def test_a_guessed_ftp_user_is_banned_from_every_address_and_its_good_login_does_not_lift_it(
        app, ftp_account, ftp_start, ftp_connect):
    app.config.update(BAN_THRESHOLD=100, LOGIN_BAN_THRESHOLD=3)
    server = ftp_start()
    for _ in range(2):
        with pytest.raises(ftplib.error_perm, match="^530"):
            ftp_connect(server, password="guess")
    # A good login of the user from that address forgives its own 2 failures only ...
    ftp_connect(server).quit()
    for _ in range(3):
        with pytest.raises(ftplib.error_perm, match="^530"):
            ftp_connect(server, password="guess")
    # ... and after 3 more the user is refused, the right password too; a login name not guessed still works.
    with pytest.raises(ftplib.error_perm, match="^530 Too many failed logins"):
        ftp_connect(server)
    from app.services import bans

    assert bans.is_banned("192.0.2.1", bans.login_key("ftp", ftp_account.username))
    assert not bans.is_banned("127.0.0.1")


def test_failed_login_waits_before_answering(app, ftp_account, ftp_start, ftp_connect):
    server = ftp_start(LOGIN_FAIL_DELAY=0.4)
    started = time.monotonic()
    with pytest.raises(ftplib.error_perm, match="^530"):
        ftp_connect(server, password="guess")
    assert time.monotonic() - started >= 0.4


def test_connections_per_address_are_capped(ftp_account, ftp_start, ftp_connect):
    server = ftp_start(FTP_MAX_CONS_PER_IP=2)
    ftp_connect(server)
    ftp_connect(server)
    with pytest.raises(ftplib.error_temp, match="^421"):
        ftp_connect(server)


def test_stopped_status_accepts_uploads_and_leaves_them_until_reactivated(app, ftp_account, ftp_server, ftp_connect):
    from app.errors import Invalid

    ftp_set_settings(ftp_account.id, status="stopped")
    client = ftp_connect(ftp_server)
    ftp_upload(client, "20180516.csv", ftp_csv())
    with pytest.raises(Invalid, match="連動稼働停止"):
        ftpcheck.check_account(ftp_account.id)
    assert ftp_files(ftp_account.home) == ["20180516.csv"]
    assert all_imports() == []

    ftp_set_settings(ftp_account.id, status="active")
    assert [f.name for f in ftpcheck.check_account(ftp_account.id).files] == ["20180516.csv"]
    assert ftp_files(ftp_account.home) == []


# ---------------------------------------------------------------------------------------
# Confinement and permissions


def test_no_escape_by_dotdot_absolute_path_or_rename(app, ftp_account, ftp_server, ftp_connect, tmp_path):
    client = ftp_connect(ftp_server)
    with pytest.raises(ftplib.error_perm, match="^550"):
        client.cwd("../..")
    with pytest.raises(ftplib.error_perm, match="^550"):
        client.sendcmd("CDUP")
    assert client.pwd() == "/"
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp_upload(client, "../x.csv", b"x")
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp_upload(client, "/../../x.csv", b"x")

    ftp_upload(client, "a.csv", b"a")
    with pytest.raises(ftplib.error_perm, match="^550"):
        client.rename("a.csv", "/etc/x")
    with pytest.raises(ftplib.error_perm, match="^550"):
        client.rename("a.csv", "../../x")
    assert not os.path.exists("/etc/x")
    data_dir = app.config["DATA_DIR"]
    assert not os.path.exists(os.path.join(data_dir, "x.csv"))
    assert not os.path.exists(os.path.join(data_dir, "ftp", "x.csv"))
    assert not os.path.exists(os.path.join(data_dir, "x"))
    assert ftp_files(ftp_account.home) == ["a.csv"]


def test_symlink_in_home_is_refused(app, ftp_account, ftp_server, ftp_connect, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_bytes(b"secret")
    client = ftp_connect(ftp_server)  # logging in creates the home
    os.symlink(outside, ftp_account.home / "link")
    os.symlink(outside / "secret.csv", ftp_account.home / "20180516.csv")

    with pytest.raises(ftplib.error_perm, match="^550"):
        client.cwd("link")
    with pytest.raises(ftplib.error_perm, match="^550"):
        client.nlst("link")
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp_upload(client, "link/new.csv", b"x")
    with pytest.raises(ftplib.error_perm, match="^550"):
        client.delete("link/secret.csv")
    with pytest.raises(ftplib.error_perm, match="^550"):
        client.rename("link", "moved")
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp_upload(client, "20180516.csv", b"overwrite")
    assert sorted(os.listdir(outside)) == ["secret.csv"]
    assert (outside / "secret.csv").read_bytes() == b"secret"
    # The check does not follow the link either.
    assert ftpcheck.check_account(ftp_account.id).files == []
    assert os.path.islink(ftp_account.home / "20180516.csv")


def test_allowed_operations_inside_home(ftp_account, ftp_server, ftp_connect):
    client = ftp_connect(ftp_server)
    assert client.mkd("sub") == "/sub"
    client.cwd("sub")
    ftp_upload(client, "draft.tmp", b"x")
    client.rename("draft.tmp", "/20180516.csv")
    client.cwd("/")
    assert sorted(client.nlst()) == ["20180516.csv", "sub"]
    client.delete("20180516.csv")
    client.rmd("sub")
    assert client.nlst() == []


@pytest.mark.parametrize("command, code", [
    ("RETR a.csv", "550"),          # no download
    ("APPE a.csv", "550"),          # no append
    ("MFMT 20200101000000 a.csv", "500"),  # not offered
    ("STOU", "500"),
    ("REST 10", "500"),
])
def test_commands_outside_the_permissions_are_refused(ftp_account, ftp_server, ftp_connect, command, code):
    client = ftp_connect(ftp_server)
    ftp_upload(client, "a.csv", b"abc")
    with pytest.raises(ftplib.Error, match=f"^{code}"):
        if command.split()[0] in ("RETR", "APPE", "STOU"):
            client.transfercmd(command).close()
        else:
            client.sendcmd(command)
    assert (ftp_account.home / "a.csv").read_bytes() == b"abc"


def test_site_chmod_inside_the_home_succeeds_and_changes_nothing(ftp_account, ftp_server, ftp_connect):
    client = ftp_connect(ftp_server)
    ftp_upload(client, "a.csv", b"abc")
    client.mkd("sub")
    mode = os.stat(ftp_account.home / "a.csv").st_mode
    assert client.sendcmd("SITE CHMOD 777 a.csv").startswith("200")
    assert client.sendcmd("SITE CHMOD 0600 /sub").startswith("200")
    assert os.stat(ftp_account.home / "a.csv").st_mode == mode
    assert (ftp_account.home / "a.csv").read_bytes() == b"abc"
    for command, code in [("SITE CHMOD 644 missing.csv", "550"), ("SITE CHMOD 644 ../../etc/passwd", "550"),
                          ("SITE CHMOD 644 /../x", "550"), ("SITE CHMOD 9x9 a.csv", "501"),
                          ("SITE CHMOD 644", "501")]:
        with pytest.raises(ftplib.error_perm, match=f"^{code}"):
            client.sendcmd(command)


def run_client(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a real FTP client binary; a missing one fails the test with the package to install."""
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=60, **kwargs)
    except FileNotFoundError:
        pytest.fail(f"{args[0]} is not installed (Debian packages: lftp, ncftp, busybox, tnftp)")


def test_lftp_mirror_reverse_exits_0_and_the_files_are_imported(app, ftp_account, ftp_server, tmp_path):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    for name, mode in [("20180516.csv", 0o640), ("20180517.csv", 0o664)]:
        (outbox / name).write_bytes(ftp_csv())
        os.chmod(outbox / name, mode)  # modes other than the server's default: lftp sends SITE CHMOD
    done = run_client(
        ["lftp", "-c", f"debug 5; set ftp:ssl-allow no; set net:max-retries 1; "
                       f"open -u {ftp_account.username},{ftp_account.password} -p {ftp_server.port} 127.0.0.1; "
                       f"mirror -R -v {outbox} /"])  # -v as cron scripts log it: failures set the exit code
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.count("---> SITE CHMOD") == 2
    assert os.stat(ftp_account.home / "20180516.csv").st_mode & 0o777 != 0o640  # nothing changed
    assert ftp_files(ftp_account.home) == ["20180516.csv", "20180517.csv"]
    result = ftpcheck.check_account(ftp_account.id)
    assert [(f.name, f.succeeded) for f in result.files] == [("20180516.csv", True), ("20180517.csv", True)]


def test_ncftpput_upload_is_imported(app, ftp_account, ftp_server, tmp_path):
    source = tmp_path / "20180520.csv"
    source.write_bytes(ftp_csv())
    done = run_client(["ncftpput", "-t", "20", "-u", ftp_account.username, "-p", ftp_account.password,
                       "-P", str(ftp_server.port), "127.0.0.1", "/", str(source)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert (ftp_account.home / "20180520.csv").read_bytes() == ftp_csv()
    assert [(f.name, f.succeeded) for f in ftpcheck.check_account(ftp_account.id).files] == [("20180520.csv", True)]


def test_busybox_ftpput_upload_is_imported(app, ftp_account, ftp_server, tmp_path):
    source = tmp_path / "local.csv"
    source.write_bytes(ftp_csv())
    done = run_client(["busybox", "ftpput", "-u", ftp_account.username, "-p", ftp_account.password,
                       "-P", str(ftp_server.port), "127.0.0.1", "20180521.csv", str(source)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(f.name, f.succeeded) for f in ftpcheck.check_account(ftp_account.id).files] == [("20180521.csv", True)]


def test_tnftp_upload_is_imported(app, ftp_account, ftp_server, tmp_path):
    source = tmp_path / "20180522.csv"
    source.write_bytes(ftp_csv())
    done = run_client(["tnftp", "-n", "-u",
                       f"ftp://{ftp_account.username}:{ftp_account.password}@127.0.0.1:{ftp_server.port}/",
                       source.name], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(f.name, f.succeeded) for f in ftpcheck.check_account(ftp_account.id).files] == [("20180522.csv", True)]


# ---------------------------------------------------------------------------------------
# Completeness: nothing half-uploaded is ever imported


def half_uploaded(app, client):
    """Start `STOR 20180516.csv` and send half of ftp_csv(); its data connection once the server staged that half."""
    data = ftp_csv()
    client.voidcmd("TYPE I")
    conn = client.transfercmd("STOR 20180516.csv")
    conn.sendall(data[: len(data) // 2])
    wait_for(lambda: ftp_staged_bytes(app) == len(data) // 2, 10, what="the partial upload in staging")
    return conn


def test_upload_reset_half_way_is_discarded(app, ftp_account, ftp_server, ftp_connect):
    client = ftp_connect(ftp_server)
    conn = half_uploaded(app, client)
    # Close abruptly: SO_LINGER 0 makes close() send a reset instead of a normal end.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    with pytest.raises(ftplib.error_temp, match="^426"):
        client.voidresp()
    assert ftp_files(ftp_account.home) == []
    assert ftp_staging(app) == []
    assert ftpcheck.check_account(ftp_account.id).files == []
    assert all_imports() == []


def test_upload_aborted_with_abor_is_discarded(app, ftp_account, ftp_server, ftp_connect):
    client = ftp_connect(ftp_server)
    conn = half_uploaded(app, client)
    client.putcmd("ABOR")
    with pytest.raises(ftplib.error_temp, match="^426"):
        client.getresp()
    assert client.getresp().startswith("226")
    conn.close()
    assert ftp_files(ftp_account.home) == []
    assert ftp_staging(app) == []
    assert all_imports() == []


def test_client_dying_mid_upload_is_discarded(app, ftp_account, ftp_server, ftp_connect):
    client = ftp_connect(ftp_server)
    conn = half_uploaded(app, client)
    # A killed client: the kernel closes both connections, control first (lower descriptor).
    client.close()
    conn.close()
    wait_for(lambda: ftp_staging(app) == [], 10, what="an empty staging folder")
    assert ftp_files(ftp_account.home) == []
    assert ftpcheck.check_account(ftp_account.id).files == []


def test_upload_cut_by_server_stop_is_discarded(app, ftp_account, ftp_start, ftp_connect):
    server = ftp_start()
    client = ftp_connect(server)
    conn = half_uploaded(app, client)
    server.stop()
    conn.close()
    assert ftp_files(ftp_account.home) == []
    assert ftp_staging(app) == []


def test_file_being_uploaded_slowly_is_left_for_the_next_check(app, ftp_account, ftp_server, ftp_connect):
    client = ftp_connect(ftp_server)
    data = ftp_csv()
    go_on = threading.Event()
    replies: list[str] = []

    def upload_slowly():
        client.voidcmd("TYPE I")
        conn = client.transfercmd("STOR 20180516.csv")
        conn.sendall(data[:10])
        go_on.wait(10)
        conn.sendall(data[10:])
        conn.close()
        replies.append(client.voidresp())

    uploader = threading.Thread(target=upload_slowly)
    uploader.start()
    try:
        wait_for(lambda: ftp_staged_bytes(app) == 10, 10, what="the partial upload in staging")
        first = ftpcheck.check_account(ftp_account.id)
        assert first.files == []
        assert ftp_files(ftp_account.home) == []
    finally:
        go_on.set()
        uploader.join(10)
    assert replies and replies[0].startswith("226")
    second = ftpcheck.check_account(ftp_account.id)
    assert [(f.name, f.succeeded) for f in second.files] == [("20180516.csv", True)]


def test_upload_over_the_size_cap_is_refused_and_discarded(app, ftp_account, ftp_start, ftp_connect):
    server = ftp_start(FTP_MAX_BYTES=1000)
    client = ftp_connect(server)
    with pytest.raises((ftplib.error_perm, OSError)):
        ftp_upload(client, "20180516.csv", b"x" * 200_000)
    wait_for(lambda: ftp_staging(app) == [], 10, what="an empty staging folder")
    assert ftp_files(ftp_account.home) == []
    # A fresh session: when the client's send fails first (OSError), the 552 reply is still
    # unread on the old control connection and would answer the next command.
    ftp_upload(ftp_connect(server), "small.csv", b"x" * 1000)
    assert ftp_files(ftp_account.home) == ["small.csv"]


# ---------------------------------------------------------------------------------------
# FTPS


def test_ftps_with_curl_ssl_reqd_and_lftp(app, ftp_account, ftp_start, ftp_connect, ftp_tls_files, tmp_path):
    cert, key = ftp_tls_files
    server = ftp_start(FTP_TLS_CERT=cert, FTP_TLS_KEY=key, FTP_REQUIRE_TLS=True)

    # Plain FTP is refused when TLS is required.
    with pytest.raises(ftplib.error_perm, match="^550"):
        ftp_connect(server)

    first = tmp_path / "20180516.csv"
    first.write_bytes(ftp_csv())
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "20", "--ssl-reqd", "--cacert", cert, "-T", str(first),
         f"ftp://127.0.0.1:{server.port}/", "--user", f"{ftp_account.username}:{ftp_account.password}"],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr

    second = tmp_path / "20180517.csv"
    second.write_bytes(ftp_csv())
    done = subprocess.run(
        ["lftp", "-c", f"set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:ca-file {cert}; "
                       f"set net:max-retries 1; "
                       f"open -u {ftp_account.username},{ftp_account.password} -p {server.port} 127.0.0.1; "
                       f"put {second}"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr

    tls_client = ftplib.FTP_TLS()
    tls_client.connect("127.0.0.1", server.port, timeout=10)
    tls_client.login(ftp_account.username, ftp_account.password)
    tls_client.prot_p()
    assert sorted(tls_client.nlst()) == ["20180516.csv", "20180517.csv"]
    tls_client.quit()

    result = ftpcheck.check_account(ftp_account.id)
    assert [(f.name, f.succeeded) for f in result.files] == [("20180516.csv", True), ("20180517.csv", True)]


def test_passive_port_range_and_public_address(ftp_account, ftp_start, ftp_connect):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ftp_start(FTP_PASSIVE_PORTS=f"{port}-{port}", FTP_PUBLIC_HOST="127.0.0.1")
    client = ftp_connect(server)
    reply = client.sendcmd("PASV")
    numbers = reply[reply.index("(") + 1: reply.index(")")].split(",")
    assert numbers[:4] == ["127", "0", "0", "1"]
    assert int(numbers[4]) * 256 + int(numbers[5]) == port
