"""SSH public keys of an account (SFTP login without the FTP password): add, list, remove, and read for the server.

Keys are pasted in `authorized_keys` form: one key a line ("type base64 comment"), blank lines
and lines starting with `#` skipped. A paste is added all or nothing: every wrong line is
reported with its line number, and nothing is stored until all are right.

Decisions:
- Only ssh-ed25519, ecdsa-sha2-nistp256/384/521 and ssh-rsa of 2048 bits or more are taken
  (ssh-dss and short RSA keys are breakable; security-key and certificate types are not
  offered by the SFTP server).
- Options before the key (`from=`, `command=`, `restrict` …) are refused, not ignored: the
  server applies none of them, and silently dropping a `from="10.0.0.0/8"` would let the key
  in from anywhere.
- A key already registered, or twice in one paste, is an error of its line: the user sees
  which line to take out (the unique key (account, fingerprint) keeps it one in any case).
- Error texts repeat no more of a line than a word that looks like a key type: a private key
  pasted by mistake stays out of the page and the logs.
"""
from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..errors import Invalid, NotFound
from ..extensions import db
from ..models import SettingsChange
from ..models_links import SshKey

FIELD = "ssh_keys"
LABEL = "SSH公開鍵"
RSA_MIN_BITS = 2048
MAX_KEYS = 100
# A paste larger than this is not a list of public keys (100 RSA-16384 keys are ~300 KB).
MAX_TEXT_CHARS = 400_000
MAX_COMMENT_CHARS = 255
ECDSA_TYPES = ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
KEY_TYPES = ("ssh-ed25519", *ECDSA_TYPES, "ssh-rsa")
# What a key type's name looks like (ssh-dss, sk-ssh-ed25519@openssh.com …: words joined by "-"); only
# such a word is repeated in an error.
_TYPE_NAME = re.compile(r"(?=.{3,50}$)[a-z][a-z0-9]*(-[a-z0-9.@]+)+")
ALLOWED_TEXT = "ssh-ed25519、ecdsa-sha2-nistp256/384/521、2048ビット以上の ssh-rsa"


@dataclass(frozen=True)
class _Parsed:
    key_type: str
    key_data: str
    comment: str
    fingerprint: str


# ---------------------------------------------------------------------------- reading


def list_keys(account_id: int) -> list[SshKey]:
    """The account's keys, oldest first."""
    return list(db.session.scalars(
        select(SshKey).where(SshKey.account_id == account_id).order_by(SshKey.created_at, SshKey.id)))


def public_keys(account_id: int) -> list[str]:
    """The account's keys as authorized_keys lines ("type base64 comment"), for the SFTP server."""
    return [key.line for key in list_keys(account_id)]


# ---------------------------------------------------------------------------- writing


def add(account_id: int, text: str, actor: str) -> list[SshKey]:
    """Add every key of `text` (authorized_keys form) and return them (commits); Invalid lists every wrong line."""
    text = text or ""
    if len(text) > MAX_TEXT_CHARS:
        raise Invalid(f"{LABEL}の貼り付けが大きすぎます({MAX_TEXT_CHARS:,}文字まで)。公開鍵(.pub)だけを貼り付けてください。",
                      field=FIELD)
    registered = set(db.session.scalars(select(SshKey.fingerprint).where(SshKey.account_id == account_id)))
    parsed, errors = _parse(text, registered)
    if not parsed and not errors:
        raise Invalid(f"{LABEL}を貼り付けてください(authorized_keys形式、1行に1つの鍵)。", field=FIELD)
    if not errors and len(registered) + len(parsed) > MAX_KEYS:
        errors.append(f"{LABEL}は1アカウントに{MAX_KEYS}個までです(登録済み {len(registered)}個、"
                      f"追加 {len(parsed)}個)。")
    if errors:
        raise Invalid(errors[0], field=FIELD, errors={FIELD: errors})
    keys = [SshKey(account_id=account_id, key_type=p.key_type, key_data=p.key_data, comment=p.comment,
                   fingerprint=p.fingerprint) for p in parsed]
    db.session.add_all(keys)
    summary = "\n".join(f"{LABEL}を追加しました: {_shown(key)}" for key in keys)
    db.session.add(SettingsChange(account_id=account_id, actor=actor, summary=summary))
    try:
        db.session.commit()
    except IntegrityError:
        # The same key added at the same moment by another session (the unique key kept it one).
        db.session.rollback()
        raise Invalid(f"同じ{LABEL}がいま別の操作で追加されました。一覧を確かめてからもう一度お試しください。",
                      field=FIELD) from None
    return keys


def remove(account_id: int, fingerprint: str, actor: str) -> SshKey:
    """Remove the account's key with this fingerprint ("SHA256:" optional) and return it (commits)."""
    wanted = (fingerprint or "").strip()
    if wanted and not wanted.startswith("SHA256:"):
        wanted = "SHA256:" + wanted
    key = db.session.scalar(select(SshKey).where(SshKey.account_id == account_id, SshKey.fingerprint == wanted))
    if key is None:
        raise NotFound(f"指紋が「{wanted or '(空)'}」の{LABEL}は登録されていません。")
    db.session.delete(key)
    db.session.add(SettingsChange(account_id=account_id, actor=actor, summary=f"{LABEL}を削除しました: {_shown(key)}"))
    db.session.commit()
    return key


def _shown(key: SshKey) -> str:
    """A key as the change history shows it: type, fingerprint and (comment)."""
    return f"{key.key_type} {key.fingerprint}" + (f" ({key.comment})" if key.comment else "")


# ---------------------------------------------------------------------------- parsing


def _parse(text: str, registered: set[str]) -> tuple[list[_Parsed], list[str]]:
    """The keys of an authorized_keys text and the Japanese errors of its wrong lines ("N行目: …")."""
    parsed: list[_Parsed] = []
    errors: list[str] = []
    seen = dict.fromkeys(registered, 0)
    # Lines as an editor numbers them: CRLF, LF or CR ends one (str.splitlines would also split at
    # form feeds and U+2028, and the numbers would not match what the user sees).
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    line_no = 0
    while line_no < len(lines):
        line = lines[line_no].strip()
        line_no += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-----BEGIN", "---- BEGIN")):
            errors.append(f"{line_no}行目: {_block_problem(line)}")
            line_no = _block_end(lines, line_no)
            continue
        try:
            key = _parse_line(line)
        except ValueError as problem:
            errors.append(f"{line_no}行目: {problem}")
            continue
        if key.fingerprint in seen:
            where = "登録済み" if seen[key.fingerprint] == 0 else f"{seen[key.fingerprint]}行目と同じ鍵"
            errors.append(f"{line_no}行目: この鍵({key.fingerprint})は{where}です。")
            continue
        seen[key.fingerprint] = line_no
        parsed.append(key)
    return parsed, errors


def _block_problem(line: str) -> str:
    if "PRIVATE KEY" in line:
        return "秘密鍵が貼り付けられています。公開鍵(.pub ファイルの中身)を貼り付けてください(秘密鍵は保存していません)。"
    if "SSH2 PUBLIC KEY" in line:
        return ("RFC 4716 (SSH2) 形式の公開鍵です。authorized_keys形式(「ssh-ed25519 AAAA… コメント」の1行)で"
                "貼り付けてください(PuTTYgen なら「Public key for pasting into OpenSSH authorized_keys file」の欄)。")
    return "authorized_keys形式の公開鍵ではありません(「ssh-ed25519 AAAA… コメント」の1行で貼り付けてください)。"


def _block_end(lines: list[str], line_no: int) -> int:
    """The index after a PEM/RFC 4716 block's END line (the block is reported once, by its BEGIN line)."""
    for index in range(line_no, len(lines)):
        if lines[index].strip().startswith(("-----END", "---- END")):
            return index + 1
    return len(lines)


def _parse_line(line: str) -> _Parsed:
    """One key line, checked: its type, blob (through asyncssh), size and comment; ValueError in Japanese."""
    parts = line.split(None, 2)
    key_type = parts[0]
    if key_type not in KEY_TYPES:
        if any(part in KEY_TYPES or part.startswith(("ssh-", "ecdsa-", "sk-")) for part in line.split()[1:]):
            raise ValueError("鍵の前にオプション(from=、command=、restrict など)が付いています。オプションは使えません。"
                             "「鍵の種類 鍵 コメント」の形で貼り付けてください。")
        if _TYPE_NAME.fullmatch(key_type):
            raise ValueError(f"「{key_type}」は使えない鍵の種類です(使えるのは {ALLOWED_TEXT})。")
        raise ValueError(f"行の始めが鍵の種類ではありません(使えるのは {ALLOWED_TEXT})。")
    if len(parts) < 2:
        raise ValueError(f"鍵の種類「{key_type}」の後に鍵の本体(base64)がありません。")
    key_data, comment = parts[1], (parts[2].strip() if len(parts) > 2 else "")
    blob_type = _blob_type(key_data)
    if blob_type is None:
        raise ValueError("鍵の本体(base64)を読み取れません。途中で切れていないか確認してください。")
    if blob_type != key_type:
        shown = f"「{blob_type}」" if _TYPE_NAME.fullmatch(blob_type) else ""
        raise ValueError(f"鍵の種類「{key_type}」と鍵の本体の種類{shown}が一致しません。")
    import asyncssh  # here, not at the top: every process loads this module, few add a key

    try:
        key = asyncssh.import_public_key(f"{key_type} {key_data}")
    except (asyncssh.KeyImportError, ValueError):
        raise ValueError("鍵の本体(base64)を読み取れません。途中で切れていないか確認してください。") from None
    if key_type == "ssh-rsa" and key.pyca_key.key_size < RSA_MIN_BITS:
        raise ValueError(f"RSA鍵が{key.pyca_key.key_size}ビットです。{RSA_MIN_BITS}ビット以上の鍵にしてください"
                         "(例: ssh-keygen -t ed25519)。")
    if len(comment) > MAX_COMMENT_CHARS:
        raise ValueError(f"コメントが長すぎます({MAX_COMMENT_CHARS}文字まで)。")
    if any(not char.isprintable() for char in comment):
        raise ValueError("コメントに制御文字は使えません。")
    return _Parsed(key_type, key_data, comment, key.get_fingerprint("sha256"))


def _blob_type(key_data: str) -> str | None:
    """The key type written inside a base64 blob (its first SSH string), None when it is no blob."""
    try:
        blob = base64.b64decode(key_data, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(blob) < 4:
        return None
    (length,) = struct.unpack(">I", blob[:4])
    if length > 64 or len(blob) < 4 + length:
        return None
    return blob[4:4 + length].decode("ascii", "replace")
