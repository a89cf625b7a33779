"""services.sshkeys: authorized_keys text parsed line by line, keys stored per account, read back for the SFTP server."""
from __future__ import annotations

import shutil
import subprocess

import asyncssh
import pytest

from app.errors import Invalid, NotFound
from app.extensions import db
from app.models import SettingsChange
from app.services import sshkeys
from tests.fixtures.publickeys import fingerprint, private_key, public_line


@pytest.fixture
def acme(make_account):
    return make_account("acme")


def errors_of(account_id: int, text: str) -> list[str]:
    with pytest.raises(Invalid) as info:
        sshkeys.add(account_id, text, actor="test")
    return info.value.errors["ssh_keys"]


def stored(account_id: int) -> list[tuple[str, str, str]]:
    db.session.expire_all()
    return [(key.key_type, key.fingerprint, key.comment) for key in sshkeys.list_keys(account_id)]


@pytest.mark.parametrize("kind, key_type", [
    ("ed25519", "ssh-ed25519"),
    ("ecdsa256", "ecdsa-sha2-nistp256"),
    ("ecdsa384", "ecdsa-sha2-nistp384"),
    ("ecdsa521", "ecdsa-sha2-nistp521"),
    ("rsa2048", "ssh-rsa"),
])
def test_a_key_of_each_accepted_type_is_stored_and_given_back_as_an_authorized_keys_line(acme, kind, key_type):
    line = public_line(kind, "taro@pc")
    added = sshkeys.add(acme.id, line + "\n", actor="admin@acme.example")
    assert [key.fingerprint for key in added] == [fingerprint(kind)]
    assert stored(acme.id) == [(key_type, fingerprint(kind), "taro@pc")]
    assert sshkeys.public_keys(acme.id) == [line]
    # What the SFTP server does with them: asyncssh reads the lines as authorized keys.
    assert asyncssh.import_authorized_keys("\n".join(sshkeys.public_keys(acme.id))) is not None


def test_a_whole_authorized_keys_file_with_comments_blank_lines_and_spaced_comments(acme):
    text = ("# 山田のPC\r\n"
            f"{public_line('ed25519', 'yamada@pc')}\r\n"
            "\r\n"
            f"   {public_line('ecdsa256', 'cron job on batch01')}   \r\n"
            f"{public_line('rsa2048')}\r\n")
    sshkeys.add(acme.id, text, actor="test")
    assert stored(acme.id) == [("ssh-ed25519", fingerprint("ed25519"), "yamada@pc"),
                               ("ecdsa-sha2-nistp256", fingerprint("ecdsa256"), "cron job on batch01"),
                               ("ssh-rsa", fingerprint("rsa2048"), "")]
    assert sshkeys.public_keys(acme.id)[1] == public_line("ecdsa256", "cron job on batch01")
    summary = db.session.scalar(db.select(SettingsChange.summary).order_by(SettingsChange.id.desc()))
    assert summary.splitlines() == [f"SSH公開鍵を追加しました: ssh-ed25519 {fingerprint('ed25519')} (yamada@pc)",
                                    (f"SSH公開鍵を追加しました: ecdsa-sha2-nistp256 {fingerprint('ecdsa256')} "
                                     "(cron job on batch01)"),
                                    f"SSH公開鍵を追加しました: ssh-rsa {fingerprint('rsa2048')}"]


def test_a_file_saved_by_windows_notepad_with_a_bom_and_line_numbers_as_an_editor_counts_them(acme):
    text = f"\ufeff{public_line('ed25519', 'win')}\r\n\x0c\r\nssh-dss AAAA\r\n"
    # The form feed makes a blank line 2 (str.splitlines would have made it two lines).
    assert errors_of(acme.id, text) == [("3行目: 「ssh-dss」は使えない鍵の種類です(使えるのは ssh-ed25519、"
                                         "ecdsa-sha2-nistp256/384/521、2048ビット以上の ssh-rsa)。")]
    sshkeys.add(acme.id, f"\ufeff{public_line('ed25519', 'win')}\r\n", actor="test")
    assert stored(acme.id) == [("ssh-ed25519", fingerprint("ed25519"), "win")]


def test_a_key_written_by_ssh_keygen_is_taken_as_the_user_pastes_it(acme, tmp_path):
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen (OpenSSH) is not installed")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hanako@laptop", "-f", str(tmp_path / "id")],
                   check=True)
    pasted = (tmp_path / "id.pub").read_text()
    shown = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "id.pub")], check=True, capture_output=True,
                           text=True).stdout.split()[1]
    sshkeys.add(acme.id, pasted, actor="test")
    assert stored(acme.id) == [("ssh-ed25519", shown, "hanako@laptop")]


def test_every_wrong_line_is_named_and_nothing_is_stored(acme):
    ed25519_blob = public_line("ed25519").split()[1]
    text = "\n".join([
        public_line("ecdsa384", "good"),                              # 1 good, but not stored: a line is wrong
        "# a comment",                                                 # 2
        f'from="10.0.0.0/8" {public_line("ed25519")}',                # 3 options
        f'command="/bin/date",no-pty {public_line("rsa2048")}',       # 4 options
        public_line("rsa1024"),                                        # 5 too short
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",                             # 6 type refused
        "ssh-rsa",                                                     # 7 no blob
        "ssh-ed25519 !!!notbase64",                                    # 8 not base64
        f"ssh-rsa {ed25519_blob}",                                     # 9 type and blob differ
        f"ssh-ed25519 {ed25519_blob[:30]}",                            # 10 cut off
        "AAAAC3NzaC1lZDI1NTE5AAAAIKmfbZddMn7",                         # 11 no type
        f"sk-ssh-ed25519@openssh.com {ed25519_blob}",                  # 12 security key type
    ])
    errors = errors_of(acme.id, text)
    assert [error.split(":")[0] for error in errors] == [f"{n}行目" for n in (3, 4, 5, 6, 7, 8, 9, 10, 11, 12)]
    assert "オプション" in errors[0] and "オプション" in errors[1]
    assert "RSA鍵が1024ビットです。2048ビット以上" in errors[2]
    assert "「ssh-dss」は使えない鍵の種類です" in errors[3]
    assert "鍵の本体(base64)がありません" in errors[4]
    assert "鍵の本体(base64)を読み取れません" in errors[5]
    assert "鍵の種類「ssh-rsa」と鍵の本体の種類「ssh-ed25519」が一致しません" in errors[6]
    assert "鍵の本体(base64)を読み取れません" in errors[7]
    assert "行の始めが鍵の種類ではありません" in errors[8]
    assert "「sk-ssh-ed25519@openssh.com」は使えない鍵の種類です" in errors[9]
    assert stored(acme.id) == []


def test_a_private_key_pasted_by_mistake_is_one_error_that_does_not_repeat_it(acme):
    secret = private_key("ed25519").export_private_key("openssh").decode()
    text = f"{public_line('ed25519')}\n{secret}# after\n{public_line('ecdsa256', 'x')}\nnot a key\n"
    errors = errors_of(acme.id, text)
    after = 2 + len(secret.splitlines()) + 2  # the line after the block's END and the comment
    assert errors[0].startswith("2行目: 秘密鍵が貼り付けられています")
    assert errors[1].startswith(f"{after}行目: 行の始めが鍵の種類ではありません")
    assert len(errors) == 2
    body = "".join(secret.splitlines()[1:-1])
    assert not any(body[:12] in error for error in errors)
    assert stored(acme.id) == []


def test_an_rfc4716_key_is_refused_with_the_form_to_paste_instead(acme):
    ssh2 = private_key("ed25519").export_public_key("rfc4716").decode()
    errors = errors_of(acme.id, ssh2)
    assert len(errors) == 1 and errors[0].startswith("1行目: RFC 4716 (SSH2) 形式の公開鍵です。authorized_keys形式")


def test_duplicates_within_a_paste_and_of_registered_keys_are_errors_of_their_line(acme):
    sshkeys.add(acme.id, public_line("ed25519", "first"), actor="test")
    text = f"{public_line('ecdsa256')}\n{public_line('ed25519', 'again')}\n{public_line('ecdsa256', 'copy')}\n"
    assert errors_of(acme.id, text) == [
        f"2行目: この鍵({fingerprint('ed25519')})は登録済みです。",
        f"3行目: この鍵({fingerprint('ecdsa256')})は1行目と同じ鍵です。",
    ]
    assert stored(acme.id) == [("ssh-ed25519", fingerprint("ed25519"), "first")]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_a_paste_without_a_key_asks_for_one(acme, text):
    assert errors_of(acme.id, text) == ["SSH公開鍵を貼り付けてください(authorized_keys形式、1行に1つの鍵)。"]


def test_the_number_of_keys_of_an_account_is_capped(acme, monkeypatch):
    monkeypatch.setattr(sshkeys, "MAX_KEYS", 2)
    sshkeys.add(acme.id, public_line("ed25519"), actor="test")
    assert errors_of(acme.id, f"{public_line('ecdsa256')}\n{public_line('ecdsa384')}") == [
        "SSH公開鍵は1アカウントに2個までです(登録済み 1個、追加 2個)。"]
    sshkeys.add(acme.id, public_line("ecdsa256"), actor="test")
    assert len(stored(acme.id)) == 2


def test_a_bad_comment_is_named(acme):
    errors = errors_of(acme.id, f"{public_line('ed25519')} {'x' * 256}\n{public_line('ecdsa256')} a\x07b")
    assert errors == ["1行目: コメントが長すぎます(255文字まで)。", "2行目: コメントに制御文字は使えません。"]


def test_keys_belong_to_one_account_only(acme, make_account):
    beta = make_account("beta")
    line = public_line("ed25519", "shared")
    # The same key may be registered by two accounts (one person, two tenants); each sees its own.
    sshkeys.add(acme.id, line, actor="test")
    sshkeys.add(beta.id, line + "\n" + public_line("ecdsa256"), actor="test")
    assert sshkeys.public_keys(acme.id) == [line]
    assert len(sshkeys.public_keys(beta.id)) == 2
    with pytest.raises(NotFound):
        sshkeys.remove(acme.id, fingerprint("ecdsa256"), actor="test")
    assert len(stored(beta.id)) == 2

    sshkeys.remove(beta.id, fingerprint("ed25519"), actor="test")
    assert sshkeys.public_keys(acme.id) == [line]
    assert sshkeys.public_keys(beta.id) == [public_line("ecdsa256")]


def test_remove_takes_the_fingerprint_with_or_without_its_prefix_and_records_it(acme):
    sshkeys.add(acme.id, f"{public_line('ed25519', 'a')}\n{public_line('ecdsa256', 'b')}", actor="test")
    removed = sshkeys.remove(acme.id, fingerprint("ed25519"), actor="admin@acme.example")
    assert removed.comment == "a"
    sshkeys.remove(acme.id, " " + fingerprint("ecdsa256").removeprefix("SHA256:") + " ", actor="cli")
    assert stored(acme.id) == []
    changes = db.session.execute(db.select(SettingsChange.actor, SettingsChange.summary)
                                 .order_by(SettingsChange.id.desc()).limit(2)).all()
    assert changes == [("cli", f"SSH公開鍵を削除しました: ecdsa-sha2-nistp256 {fingerprint('ecdsa256')} (b)"),
                       ("admin@acme.example", f"SSH公開鍵を削除しました: ssh-ed25519 {fingerprint('ed25519')} (a)")]
    with pytest.raises(NotFound) as info:
        sshkeys.remove(acme.id, fingerprint("ed25519"), actor="test")
    assert info.value.message == f"指紋が「{fingerprint('ed25519')}」のSSH公開鍵は登録されていません。"


def test_a_key_added_by_another_session_meanwhile_is_refused_by_the_unique_key(acme, monkeypatch):
    sshkeys.add(acme.id, public_line("ed25519"), actor="test")
    # As if the other session's commit came after this one read the registered keys.
    parse = sshkeys._parse
    monkeypatch.setattr(sshkeys, "_parse", lambda text, registered: parse(text, set()))
    assert errors_of(acme.id, public_line("ed25519", "twice")) == [
        "同じSSH公開鍵がいま別の操作で追加されました。一覧を確かめてからもう一度お試しください。"]
    assert stored(acme.id) == [("ssh-ed25519", fingerprint("ed25519"), "")]
