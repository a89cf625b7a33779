"""The Renkei side of ftp_bench.py and sftp_bench.py: the app on a throw-away database with one FTP連動 account."""
from __future__ import annotations

from pathlib import Path

USER = "bench"  # the account's slug, which is its FTP and SFTP login name


def ftp_account_app(data_dir: Path, port_key: str, public_line: str | None = None):
    """Renkei's app in `data_dir` (listeners on 127.0.0.1, `port_key` on a free port, 1 GiB uploads) with the
    account bench in FTP連動, optionally holding the SSH key `public_line`; return (app, FTP password)."""
    from app import create_app
    from app.extensions import upgrade_database
    from app.services import accounts, integration, sshkeys

    app = create_app({
        "DATA_DIR": str(data_dir),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{data_dir}/renkei.db",
        "SECRET_KEY": "bench",
        port_key: 0,
        "HOST": "127.0.0.1",
        "FTP_MAX_BYTES": 1024 * 1024 * 1024,
    })
    with app.app_context():
        upgrade_database(app)
        account, _ = accounts.create_account(USER, "ベンチ", "admin@bench.example", "password-123")
        account.integration_enabled = True
        integration.update_settings(account.id, {"mode": "ftp", "error_to": ["ops@bench.example"]}, actor="bench")
        password = integration.issue_ftp_password(account.id, actor="bench")
        if public_line:
            sshkeys.add(account.id, public_line, actor="bench")
    return app, password
