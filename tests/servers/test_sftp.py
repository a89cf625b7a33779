"""Renkei's SFTP server with real clients (OpenSSH sftp/scp, lftp, curl, paramiko): uploads, checks, confinement, bans, host key."""
from __future__ import annotations

import os

import pytest

from app.extensions import db
from app.models import Import
from app.services import ftpcheck
from tests.fixtures.ftp import ftp_csv, ftp_files
from tests.fixtures.sftp import sftp_paramiko, sftp_run

# Checks only receive files: the import worker runs, as on a server, and imports them.
pytestmark = pytest.mark.usefixtures("import_worker")


def staging(app) -> list[str]:
    folder = os.path.join(app.config["DATA_DIR"], "sftp-uploading")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def imports() -> list[Import]:
    db.session.rollback()
    return list(db.session.scalars(db.select(Import).order_by(Import.id)))


def test_openssh_sftp_with_password_uploads_and_the_check_imports(app, ftp_account, sftp_server, sftp_known, tmp_path):
    local = tmp_path / "20180516.csv"
    local.write_bytes(ftp_csv())
    done = sftp_run(sftp_server, ftp_account.username, f"put {local}\nls\n", sftp_known, password=ftp_account.password)
    assert done.returncode == 0, done.stderr
    assert "20180516.csv" in done.stdout
    assert ftp_files(ftp_account.home) == ["20180516.csv"] and staging(app) == []

    result = ftpcheck.check_account(ftp_account.id)

    assert [(f.name, f.succeeded) for f in result.files] == [("20180516.csv", True)]
    imp = imports()[-1]
    assert (imp.channel, imp.filename, imp.status, imp.row_count) == ("ftp", "20180516.csv", Import.SUCCEEDED, 2)
    assert ftp_files(ftp_account.home) == [] and len(ftp_files(ftp_account.home / "processed")) == 1
