"""Unpack a received .zip or .gz into the files it holds, with limits against zip bombs (pure: no Flask, no SQL).

Rules (docs/spec.md, アーカイブ): at most MAX_ENTRIES files; the bytes are read through a counter
(the sizes a header claims are never trusted), so the total uncompressed size stops at the
caller's cap and an entry inflating more than MAX_RATIO times its compressed size (past
RATIO_FLOOR bytes) is refused; names are reduced to their base name, folders skipped; two
entries with the same base name refuse the archive; an archive inside is an entry error, not
read; entries that are not import files are listed, not read. Encrypted entries are read with
the account's password (legacy ZipCrypto); AES entries cannot be read by zipfile and refuse
the archive with a message that says how to save the file instead.
"""
from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from .filename import base_name, is_accepted

# Archives of any kind inside an archive: never read (a nested bomb), each one an entry error.
NESTED_SUFFIXES = (".zip", ".gz", ".tgz", ".7z", ".rar", ".lzh", ".tar", ".bz2", ".xz")
MAX_ENTRIES = 100
MAX_RATIO = 100
RATIO_FLOOR = 1024 * 1024  # below 1 MiB a high ratio is harmless (a CSV of repeated rows)
READ_PIECE = 64 * 1024
AES_METHOD = 99  # WinZip AES: zipfile cannot decrypt it

NESTED_MESSAGE = "アーカイブ(ZIPなど)の中のアーカイブは取り込めません。中のファイルを直接アーカイブに入れてください。"
AES_MESSAGE = ("このZIPファイルはAES方式で暗号化されているため読み取れません。"
               "「従来のZIP暗号化」(ZipCrypto)でパスワードを付けて保存し直して送ってください。")
NO_PASSWORD_MESSAGE = ("このZIPファイルはパスワード付き(暗号化)ですが、ZIPパスワードが設定されていません。"
                       "外部連携設定でZIPパスワードを設定してから送り直してください。")
WRONG_PASSWORD_MESSAGE = ("このZIPファイルのパスワードが、外部連携設定のZIPパスワードと一致しません"
                          "(パスワードが違います)。パスワードを確かめて送り直してください。")
BROKEN_MESSAGE = "アーカイブファイルが壊れているか、{kind}形式ではありません。作り直して送ってください。"


class ArchiveRefused(Exception):
    """The archive as a whole cannot be imported; `message` is the Japanese reason."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class Entry:
    """One file of an archive: its base name and bytes, or the reason it is refused (error, no bytes)."""

    name: str
    data: bytes | None
    error: str | None = None


@dataclass
class Unpacked:
    """What an archive holds: its import files in archive order, and the names of the other files."""

    entries: list[Entry] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def unpack(name: str, data: bytes, *, max_total: int, password: bytes | list[bytes] | None = None,
           accepts: Callable[[str], bool] = is_accepted, max_entries: int = MAX_ENTRIES,
           max_ratio: int = MAX_RATIO) -> Unpacked:
    """Return the files of a .zip or .gz archive, or raise ArchiveRefused."""
    lower = base_name(name).lower()
    if lower.endswith(".gz"):
        return _gunzip(base_name(name), data, max_total, max_ratio, accepts)
    return _unzip(data, max_total, max_ratio, max_entries, accepts, _passwords(password))


def _passwords(password: bytes | list[bytes] | None) -> list[bytes]:
    if password is None:
        return []
    return [password] if isinstance(password, bytes) else list(password)


def _too_large(max_total: int) -> ArchiveRefused:
    return ArchiveRefused(f"アーカイブを展開したサイズが上限({max_total:,}バイト)を超えるため、取り込みませんでした。")


def _too_compressed(entry: str, max_ratio: int) -> ArchiveRefused:
    return ArchiveRefused(f"「{entry}」の圧縮率が{max_ratio}倍を超えるため(ZIP爆弾の疑い)、アーカイブを取り込みませんでした。")


def _read_counted(stream, entry: str, compressed: int, budget: int, max_total: int, max_ratio: int) -> bytes:
    """Read a stream to its end, stopping as soon as the budget or the ratio is exceeded."""
    out = bytearray()
    while True:
        piece = stream.read(READ_PIECE)
        if not piece:
            return bytes(out)
        out += piece
        if len(out) > budget:
            raise _too_large(max_total)
        if len(out) > RATIO_FLOOR and len(out) > max(compressed, 1) * max_ratio:
            raise _too_compressed(entry, max_ratio)


def _gunzip(name: str, data: bytes, max_total: int, max_ratio: int, accepts: Callable[[str], bool]) -> Unpacked:
    inner = name[:-3]
    if not inner:
        raise ArchiveRefused(BROKEN_MESSAGE.format(kind="gzip"))
    if inner.lower().endswith(NESTED_SUFFIXES) or inner.lower().endswith(".tar.gz"):
        return Unpacked(entries=[Entry(inner, None, NESTED_MESSAGE)])
    if not accepts(inner) or inner.startswith("."):
        return Unpacked(ignored=[inner])
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            content = _read_counted(stream, inner, len(data), max_total, max_total, max_ratio)
    except (OSError, EOFError, zlib.error):
        raise ArchiveRefused(BROKEN_MESSAGE.format(kind="gzip")) from None
    return Unpacked(entries=[Entry(inner, content)])


def _entry_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as its maker wrote it: a name without the UTF-8 flag is cp932 on a Japanese Windows."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("cp932")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return name


def _unzip(data: bytes, max_total: int, max_ratio: int, max_entries: int, accepts: Callable[[str], bool],
           passwords: list[bytes]) -> Unpacked:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
        raise ArchiveRefused(BROKEN_MESSAGE.format(kind="ZIP")) from None
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        if len(infos) > max_entries:
            raise ArchiveRefused(f"アーカイブのファイル数({len(infos):,}個)が上限の{max_entries}個を超えるため、"
                                 "取り込みませんでした。分けて送ってください。")
        names = [base_name(_entry_name(info)) for info in infos]
        dupes = sorted({n for n in names if n and names.count(n) > 1})
        if dupes:
            raise ArchiveRefused("アーカイブに同じ名前のファイルが複数あります(フォルダーは区別しません): "
                                 + "、".join(f"「{n}」" for n in dupes) + "。どちらを取り込むか分からないため、取り込みませんでした。")
        result = Unpacked()
        budget = max_total
        for info, entry in zip(infos, names):
            if not entry:
                continue
            if entry.lower().endswith(NESTED_SUFFIXES):
                result.entries.append(Entry(entry, None, NESTED_MESSAGE))
                continue
            if entry.startswith(".") or not accepts(entry):
                result.ignored.append(entry)
                continue
            content = _read_entry(archive, info, entry, budget, max_total, max_ratio, passwords)
            budget -= len(content)
            result.entries.append(Entry(entry, content))
        return result


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, entry: str, budget: int, max_total: int,
                max_ratio: int, passwords: list[bytes]) -> bytes:
    if info.compress_type == AES_METHOD:
        raise ArchiveRefused(AES_MESSAGE)
    encrypted = bool(info.flag_bits & 0x1)
    if encrypted and not passwords:
        raise ArchiveRefused(NO_PASSWORD_MESSAGE)
    wrong = False
    for pwd in passwords if encrypted else [None]:
        try:
            with archive.open(info, pwd=pwd) as stream:
                return _read_counted(stream, entry, info.compress_size, budget, max_total, max_ratio)
        except RuntimeError:  # "Bad password for file": the check byte does not match
            wrong = True
        except zipfile.BadZipFile:
            if encrypted:
                wrong = True  # a wrong password can pass the one-byte check and then fail the CRC
                continue
            raise ArchiveRefused(f"「{entry}」を展開できません(ファイルが壊れています)。作り直して送ってください。") from None
        except NotImplementedError:
            raise ArchiveRefused(f"「{entry}」の圧縮方式には対応していません。通常のZIP(Deflate)で作り直して送ってください。") from None
        except (OSError, EOFError, zlib.error):
            raise ArchiveRefused(f"「{entry}」を展開できません(ファイルが壊れています)。作り直して送ってください。") from None
    if wrong:
        raise ArchiveRefused(WRONG_PASSWORD_MESSAGE)
    raise ArchiveRefused(NO_PASSWORD_MESSAGE)  # pragma: no cover - no password to try
