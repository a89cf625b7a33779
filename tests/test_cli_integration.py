"""`flask integration show|set|ftp-password|api-token|ssh-key` through app.test_cli_runner()."""
from __future__ import annotations

import json

import pytest

from app.extensions import db
from app.services import integration as service
from tests.fixtures.publickeys import fingerprint, public_line

SPEC_KEYS = {
    "enabled", "mode", "status", "member_key", "key_aliases", "extra_columns", "encoding", "error_to", "success_to", "senders",
    "sender_networks", "sender_auth", "inbound_address", "ftp_server", "ftp_username", "ftp_days", "ftp_start", "ftp_end",
    "ftp_interval", "ftp_delay", "api_endpoint", "next_checks", "sheet_name",
    "overdue_enabled", "overdue_daily", "overdue_daily_time", "overdue_monthly_day", "overdue_monthly_time",
    "overdue_days", "overdue_skip_holidays",
}


@pytest.fixture
def runner(app):
    # Click ≥ 8.2 keeps stdout and stderr apart, so JSON on stdout can be parsed as is.
    return app.test_cli_runner()


@pytest.fixture
def account(make_account):
    account, _, _ = make_account("acme")
    return account


def printed_json(runner, command: str = "show") -> dict:
    """What `flask integration COMMAND acme` prints, as JSON (show, or mailbox without options)."""
    result = runner.invoke(args=["integration", command, "acme"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def show(runner) -> dict:
    return printed_json(runner)


def test_show_prints_json_with_the_spec_keys(runner, account):
    data = show(runner)
    assert set(data) == SPEC_KEYS
    assert data["enabled"] is True
    assert data["mode"] == "mail" and data["status"] == "active" and data["member_key"] == "no"
    assert data["ftp_username"] == "acme"
    assert data["ftp_days"] == ["mon", "tue", "wed", "thu", "fri"]


def test_show_keeps_japanese_readable(runner, account):
    service.update_settings(account.id, {"error_to": "担当@example.com", "senders": "erp@example.com"}, actor="t")
    result = runner.invoke(args=["integration", "show", "acme"])
    assert "担当@example.com" in result.stdout


def test_set_saves_through_the_service_and_records_cli(runner, account):
    result = runner.invoke(
        args=[
            "integration", "set", "acme", "--mode", "ftp", "--status", "stopped", "--member-key", "employee_id",
            "--encoding", "cp932", "--error-to", "ops@example.com,OPS@example.com", "--success-to", "boss@example.com",
            "--ftp-days", "mon,wed,fri", "--ftp-start", "08:00", "--ftp-end", "20:00",
            "--ftp-interval", "30", "--ftp-delay", "10",
        ]
    )
    assert result.exit_code == 0, result.output
    data = show(runner)
    assert data["mode"] == "ftp" and data["status"] == "stopped"
    assert data["member_key"] == "employee_id" and data["encoding"] == "cp932"
    assert data["error_to"] == ["ops@example.com"]
    assert data["success_to"] == ["boss@example.com"]
    assert data["ftp_days"] == ["mon", "wed", "fri"]
    assert (data["ftp_start"], data["ftp_end"], data["ftp_interval"], data["ftp_delay"]) == ("08:00", "20:00", 30, 10)
    assert len(data["next_checks"]) == 5
    assert service.recent_changes(account.id)[0].actor == "cli"


@pytest.mark.parametrize(
    "args, field",
    [
        (["--mode", "ftp", "--error-to", "ops@example.com", "--ftp-start", "18:00", "--ftp-end", "09:00"], "ftp_end"),
        (["--error-to", "not-an-address", "--senders", "a@example.com"], "error_to"),
        (["--mode", "ftp", "--error-to", "ops@example.com", "--ftp-delay", "75"], "ftp_delay"),
        (["--mode", "ftp", "--error-to", "ops@example.com", "--ftp-days", "mon,funday"], "ftp_days"),
        (["--error-to", "ops@example.com"], "senders"),  # mail mode needs 送信元メールアドレス
    ],
)
def test_set_bad_input_prints_the_field_and_exits_1(runner, account, args, field):
    before = show(runner)
    result = runner.invoke(args=["integration", "set", "acme", *args])
    assert result.exit_code == 1
    assert f"({field})" in result.stderr
    assert show(runner) == before


def test_set_bad_choice_and_unknown_account_exit_non_zero(runner, account):
    assert runner.invoke(args=["integration", "set", "acme", "--mode", "fax"]).exit_code != 0
    result = runner.invoke(args=["integration", "set", "nobody", "--status", "stopped"])
    assert result.exit_code == 1
    assert runner.invoke(args=["integration", "show", "nobody"]).exit_code == 1


def test_set_sender_networks_and_sender_auth(runner, account):
    result = runner.invoke(args=["integration", "set", "acme", "--sender-networks", "127.0.0.0/8, 192.0.2.1",
                                 "--sender-auth", "spf", "--senders", "erp@example.com",
                                 "--error-to", "ops@example.com"])
    assert result.exit_code == 0, result.output
    data = show(runner)
    assert data["sender_networks"] == ["127.0.0.0/8", "192.0.2.1"] and data["sender_auth"] == "spf"
    result = runner.invoke(args=["integration", "set", "acme", "--sender-networks", "192.0.2.0/33"])
    assert result.exit_code == 1
    assert "「192.0.2.0/33」はIPアドレスまたはネットワーク" in result.stderr
    assert runner.invoke(args=["integration", "set", "acme", "--sender-networks", ""]).exit_code == 0
    assert show(runner)["sender_networks"] == []


def test_set_without_options_is_an_error(runner, account):
    assert runner.invoke(args=["integration", "set", "acme"]).exit_code == 1


def test_ftp_password_prints_a_password_that_verifies_and_only_a_hash_is_stored(runner, account):
    result = runner.invoke(args=["integration", "ftp-password", "acme"])
    assert result.exit_code == 0
    password = result.stdout.strip()
    assert len(password) >= 16
    settings = service.get_settings(account.id)
    db.session.refresh(settings)
    assert password not in settings.ftp_password_hash
    assert settings.ftp_password_hash.startswith("sha256:")
    assert service.verify_ftp_password("acme", password).account_id == account.id
    assert service.recent_changes(account.id)[0].actor == "cli"


def test_api_token_prints_a_token_that_resolves(runner, account):
    result = runner.invoke(args=["integration", "api-token", "acme"])
    assert result.exit_code == 0
    token = result.stdout.strip()
    assert service.account_for_token(token).id == account.id
    assert token not in json.dumps(show(runner))


# ---------------------------------------------------------------------------------------
# Every given option is validated, whatever the mode; the one address rule


@pytest.mark.parametrize("mode, options, field, message", [
    ("api", ["--ftp-interval", "7"], "ftp_interval", "データ連動間隔"),
    ("mail", ["--ftp-delay", "75"], "ftp_delay", "遅らせる時間は 0〜59 分で入力してください。"),
    ("mail", ["--ftp-start", "18:00", "--ftp-end", "09:00"], "ftp_end", "終了時刻は開始時刻以降にしてください。"),
    ("ftp", ["--senders", "ok@x.co.jp,not-an-email"], "senders", "「not-an-email」はメールアドレスとして正しくありません。"),
    ("api", ["--senders", "broken"], "senders", "「broken」はメールアドレスとして正しくありません。"),
])
def test_set_refuses_a_bad_value_of_another_mode_and_saves_nothing(runner, account, mode, options, field, message):
    assert runner.invoke(args=["integration", "set", "acme", "--mode", mode, "--error-to", "ops@example.com",
                               "--senders", "erp@example.com"]).exit_code == 0
    before = show(runner)
    result = runner.invoke(args=["integration", "set", "acme", *options])
    assert result.exit_code == 1, result.output
    assert "保存しました" not in result.output
    assert f"({field}): " in result.stderr and message in result.stderr, result.stderr
    assert show(runner) == before


def test_set_accepts_every_valid_address(runner, account):
    from tests.fixtures.addresses import VALID

    typed = ",".join(t.strip() for t, _ in VALID)
    result = runner.invoke(args=["integration", "set", "acme", "--senders", typed, "--error-to", "it@corp.internal"])
    assert result.exit_code == 0, result.output
    assert "保存しました" in result.stdout
    data = show(runner)
    assert data["senders"] == list(dict.fromkeys(n for _, n in VALID))
    assert data["error_to"] == ["it@corp.internal"]


def test_ssh_key_add_from_stdin_or_a_file_list_and_remove(runner, account, tmp_path):
    added = runner.invoke(args=["integration", "ssh-key", "acme", "add"],
                          input=f"# 山田のPC\n{public_line('ed25519', 'yamada@pc')}\n")
    assert added.exit_code == 0, added.output
    assert added.stdout.splitlines() == [f"ssh-ed25519\t{fingerprint('ed25519')}\tyamada@pc",
                                         "acme にSSH公開鍵を1個追加しました (1 key(s) added)。"]
    keys_file = tmp_path / "authorized_keys"
    keys_file.write_text(public_line("ecdsa256") + "\n", encoding="utf-8")
    assert runner.invoke(args=["integration", "ssh-key", "acme", "add", "--file", str(keys_file)]).exit_code == 0

    listed = runner.invoke(args=["integration", "ssh-key", "acme", "list"])
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == ["type\tfingerprint\tcomment",
                                          f"ssh-ed25519\t{fingerprint('ed25519')}\tyamada@pc",
                                          f"ecdsa-sha2-nistp256\t{fingerprint('ecdsa256')}\t"]

    removed = runner.invoke(args=["integration", "ssh-key", "acme", "remove", fingerprint("ed25519")])
    assert removed.exit_code == 0
    assert removed.stdout == f"SSH公開鍵を削除しました (key removed): ssh-ed25519\t{fingerprint('ed25519')}\tyamada@pc\n"
    assert [line.split("\t")[0] for line in runner.invoke(
        args=["integration", "ssh-key", "acme", "list"]).stdout.splitlines()] == ["type", "ecdsa-sha2-nistp256"]


def test_ssh_key_errors_name_the_line_and_exit_1(runner, account):
    bad = runner.invoke(args=["integration", "ssh-key", "acme", "add"],
                        input=f"{public_line('ed25519')}\nssh-dss AAAA\n{public_line('rsa1024')}\n")
    assert bad.exit_code == 1
    assert bad.stderr.splitlines() == [
        ("エラー: SSH公開鍵 (ssh_keys): 2行目: 「ssh-dss」は使えない鍵の種類です(使えるのは ssh-ed25519、"
         "ecdsa-sha2-nistp256/384/521、2048ビット以上の ssh-rsa)。"),
        "エラー: SSH公開鍵 (ssh_keys): 3行目: RSA鍵が1024ビットです。2048ビット以上の鍵にしてください(例: ssh-keygen -t ed25519)。",
    ]
    assert runner.invoke(args=["integration", "ssh-key", "acme", "list"]).stdout == "SSH公開鍵はありません (no SSH keys)。\n"

    missing = runner.invoke(args=["integration", "ssh-key", "acme", "remove", fingerprint("ed25519")])
    assert missing.exit_code == 1
    assert missing.stderr == f"エラー: 指紋が「{fingerprint('ed25519')}」のSSH公開鍵は登録されていません。\n"
    unknown = runner.invoke(args=["integration", "ssh-key", "nosuch", "list"])
    assert unknown.exit_code == 1 and 'アカウント "nosuch" はありません' in unknown.stderr


def mailbox_json(runner) -> dict:
    return printed_json(runner, "mailbox")


def test_mailbox_without_options_prints_the_builtin_smtp_default(runner, account):
    data = mailbox_json(runner)
    assert data["method"] == "smtp" and data["password_set"] is False
    assert (data["folder"], data["processed_folder"], data["port"]) == ("INBOX", "Renkei/処理済", 993)


def test_mailbox_sets_imap_with_the_password_from_stdin_and_never_prints_it(runner, account):
    from app.models_links import Mailbox

    result = runner.invoke(args=["integration", "mailbox", "acme", "--method", "imap", "--host", "imap.example.jp",
                                 "--tls", "starttls", "--port", "", "--username", "uriage@example.jp",
                                 "--password-stdin", "--no-verify"], input="pässwörd 秘密\n")
    assert result.exit_code == 0, result.output
    assert "受信方法を保存しました" in result.stdout and "パスワード" in result.stdout
    printed = runner.invoke(args=["integration", "mailbox", "acme"]).stdout
    assert "pässwörd" not in printed
    data = json.loads(printed)
    assert (data["method"], data["host"], data["tls"], data["port"], data["verify"]) == (
        "imap", "imap.example.jp", "starttls", 143, False)
    assert data["username"] == "uriage@example.jp" and data["password_set"] is True
    stored = db.session.scalar(db.select(Mailbox.password).where(Mailbox.account_id == account.id))
    assert "pässwörd" not in stored  # sealed, as the tab stores it
    assert service.recent_changes(account.id)[0].actor == "cli"

    # An empty stdin line keeps the stored password, as a blank field on the tab does.
    kept = runner.invoke(args=["integration", "mailbox", "acme", "--password-stdin", "--folder", "受信/売上"], input="\n")
    assert kept.exit_code == 0, kept.output
    assert mailbox_json(runner)["password_set"] is True and mailbox_json(runner)["folder"] == "受信/売上"


@pytest.mark.parametrize("args, field, message", [
    (["--method", "imap", "--username", "u"], "host", "メールボックスから取得する場合はIMAPサーバーを入力してください。"),
    (["--method", "imap", "--host", "h", "--username", "u", "--password-stdin", "--port", "70000"], "port",
     "ポートは1〜65535の数字で入力してください。"),
    (["--method", "imap", "--host", "h", "--username", "u", "--password-stdin", "--folder", "A",
      "--processed-folder", "A"], "processed_folder", "取得するフォルダと別のフォルダを指定してください。"),
])
def test_mailbox_refusals_name_the_field_and_save_nothing(runner, account, args, field, message):
    before = mailbox_json(runner)
    result = runner.invoke(args=["integration", "mailbox", "acme", *args], input="pw\n")
    assert result.exit_code == 1
    label = {"host": "IMAPサーバー", "port": "ポート", "processed_folder": "処理済みメールの移動先"}[field]
    assert f"エラー: {label} ({field}):" in result.stderr and message in result.stderr
    assert mailbox_json(runner) == before
