"""Turn the bytes of a received CSV file into text (SPEC section 2, "Encoding")."""
from __future__ import annotations

import codecs

import chardet

from app.errors import ImportRejected, RowError

_UTF8_BOM = codecs.BOM_UTF8

# Names an account may pin, mapped to the one codec we use for each.
# Python's "shift_jis" codec is never used: Excel writes cp932 (①, ～, ㈱, 髙, 﨑, Ⅰ, №).
_PINNED = {
    "cp932": "cp932",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8",
}
_PINNED_LABEL = {"cp932": "Shift_JIS(cp932)", "utf-8": "UTF-8"}

# The only detector proposals we trust: other Japanese encodings, by Python codec name.
_JAPANESE_CODECS = frozenset({
    "euc_jp", "euc_jis_2004", "euc_jisx0213",
    "iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3", "iso2022_jp_ext",
})
_DETECT_CANDIDATES = ("euc-jp", "iso-2022-jp")

UNKNOWN_ENCODING_MESSAGE = (
    "文字コードを判別できませんでした。Shift_JIS(cp932) または UTF-8 で保存してください。"
)


def decode(data: bytes, pinned: str | None = None) -> tuple[str, str]:
    """Decode a CSV file's bytes; return (text, encoding name) or raise ImportRejected."""
    _reject_binary(data)
    if pinned is None or pinned.strip().lower() in ("", "auto"):
        return _decode_auto(data)
    codec = _PINNED.get(pinned.strip().lower())
    if codec is None:
        # A setting we do not know is a programming error, not a user's file problem.
        raise ValueError(f"unknown pinned encoding: {pinned!r}")
    return _decode_pinned(data, codec)


def _reject_binary(data: bytes) -> None:
    """Reject files that cannot be CSV text at all, naming what they probably are."""
    if data.startswith(b"PK\x03\x04"):
        message = ("ZIP形式のファイル(Excelの.xlsxなど)です。Excelで「CSV(コンマ区切り)」形式で保存して送ってください。")
    elif data.startswith(b"\xd0\xcf\x11\xe0"):
        message = "Excel(.xls)形式のファイルです。Excelで「CSV(コンマ区切り)」形式で保存して送ってください。"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        message = ("UTF-16(Excelの「Unicode テキスト」)のファイルは取り込めません。"
                   "Shift_JIS(cp932) または UTF-8 の CSV で保存してください。")
    elif b"\x00" in data:
        message = ("NULバイトを含むバイナリファイルです。CSVではないファイル(ZIP・Excel形式など)か、"
                   "UTF-16で保存されています。Shift_JIS(cp932) または UTF-8 の CSV で保存してください。")
    else:
        return
    raise ImportRejected([RowError(message=message)])


def _decode_auto(data: bytes) -> tuple[str, str]:
    """BOM, then strict UTF-8, then strict cp932, then a Japanese detector proposal."""
    if data.startswith(_UTF8_BOM):
        try:
            return data[len(_UTF8_BOM):].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as error:
            raise _undecodable(data, "utf-8", error.start + len(_UTF8_BOM), pinned=False) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        # ISO-2022-JP is 7-bit, so it always passes strict UTF-8; its escape sequences
        # (ESC $ B ...) never belong in a CSV, so they are the tell.
        if "\x1b" in text:
            try:
                return data.decode("iso2022_jp"), "iso2022_jp"
            except UnicodeDecodeError:
                pass
        return text, "utf-8"
    try:
        return data.decode("cp932"), "cp932"
    except UnicodeDecodeError:
        pass
    # Only now, when both common encodings failed, is the (slow) detector worth running.
    codec = _detect_japanese(data)
    if codec is not None:
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError:
            pass
    raise ImportRejected([RowError(message=UNKNOWN_ENCODING_MESSAGE)])


def _detect_japanese(data: bytes) -> str | None:
    """Ask chardet, restricted to Japanese encodings; return a Python codec name or None."""
    # no_match_encoding must be one of the candidates; iso-2022-jp is 7-bit and can never
    # decode this data (it already failed UTF-8, so it holds 8-bit bytes), so it acts as "none".
    result = chardet.detect(
        data, include_encodings=_DETECT_CANDIDATES, no_match_encoding="iso-2022-jp"
    )
    name = result.get("encoding")
    if not name:
        return None
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return None
    return codec if codec in _JAPANESE_CODECS else None


def _decode_pinned(data: bytes, codec: str) -> tuple[str, str]:
    """Decode strictly with the account's pinned codec only."""
    offset = 0
    if codec == "utf-8" and data.startswith(_UTF8_BOM):
        offset = len(_UTF8_BOM)
    try:
        text = data[offset:].decode(codec) if offset else data.decode(codec)
    except UnicodeDecodeError as error:
        raise _undecodable(data, codec, error.start + offset, pinned=True) from None
    return text, ("utf-8-sig" if offset else codec)


def _undecodable(data: bytes, codec: str, offset: int, *, pinned: bool) -> ImportRejected:
    """Build the rejection for bytes the expected codec cannot read, with the line number."""
    line = data.count(b"\n", 0, offset) + 1
    label = _PINNED_LABEL[codec]
    where = f"(ファイル先頭から {offset + 1} バイト目)"
    if pinned:
        message = (
            f"文字コード {label} として読めないバイトがあります{where}。"
            "外部連携設定の文字コードと、ファイルの保存形式が合っているか確認してください。"
        )
    else:
        message = (
            f"UTF-8 の BOM で始まるのに UTF-8 として読めないバイトがあります{where}。"
            "Shift_JIS(cp932) または UTF-8 で保存し直してください。"
        )
    return ImportRejected([RowError(message=message, line=line)])
