"""Turn the bytes of a received CSV file into text (docs/spec.md section 2, "Characters")."""
from __future__ import annotations

import codecs

from app.errors import ImportRejected, RowError
from app.importer import eucjp

_UTF8_BOM = codecs.BOM_UTF8
# Excel's 「Unicode テキスト」 is UTF-16LE with a BOM (tab separated, CRLF); big-endian is read too.
_UTF16_BOMS = ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)  # FF FE 00 00 would pass for UTF-16LE

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

UNKNOWN_ENCODING_MESSAGE = (
    "文字コードを判別できませんでした。Shift_JIS(cp932) または UTF-8 で保存してください。"
)


def decode(data: bytes, pinned: str | None = None) -> tuple[str, str]:
    """Decode a CSV file's bytes; return (text, encoding name) or raise ImportRejected."""
    auto = pinned is None or pinned.strip().lower() in ("", "auto")
    codec = None if auto else _PINNED.get(pinned.strip().lower())
    if not auto and codec is None:
        # A setting we do not know is a programming error, not a user's file problem.
        raise ValueError(f"unknown pinned encoding: {pinned!r}")
    utf16 = _utf16_codec(data)
    if utf16 is not None:
        if codec is not None:
            raise _utf16_but_pinned(codec)
        return _decode_utf16(data, utf16)
    _reject_binary(data)
    if codec is None:
        return _decode_auto(data)
    return _decode_pinned(data, codec)


def _utf16_codec(data: bytes) -> str | None:
    """The UTF-16 codec a file's BOM names, or None (no UTF-16 BOM, or a UTF-32 one)."""
    if data.startswith(_UTF32_BOMS):
        return None
    for bom, codec in _UTF16_BOMS:
        if data.startswith(bom):
            return codec
    return None


def _decode_utf16(data: bytes, codec: str) -> tuple[str, str]:
    """Decode UTF-16 after its BOM exactly: a lone surrogate or a missing last byte refuses the file."""
    body = memoryview(data)[2:]
    even = len(body) - len(body) % 2
    try:
        text = codecs.decode(body[:even], codec)
    except UnicodeDecodeError as error:
        line = codecs.decode(body[:error.start], codec).count("\n") + 1
        message = (f"UTF-16 のファイルですが、対になっていないサロゲート(壊れた文字)があります"
                   f"(ファイル先頭から {error.start + 2 + 1} バイト目)。"
                   "文字が変わらないように、保存し直して送ってください。")
        raise ImportRejected([RowError(message=message, line=line)]) from None
    if even != len(body):
        message = (f"UTF-16 のファイルですが、バイト数が奇数で最後の文字が欠けています"
                   f"(ファイル先頭から {len(data)} バイト目)。"
                   "ファイルが途中で切れていないか確認し、保存し直して送ってください。")
        raise ImportRejected([RowError(message=message, line=text.count("\n") + 1)])
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        message = ("UTF-16 のファイルですが、NUL文字(U+0000)を含んでいます。"
                   "テキストではないファイルか、UTF-32 など別の形式で保存されています。")
        raise ImportRejected([RowError(message=message, line=line)])
    return text, codec


def _utf16_but_pinned(codec: str) -> ImportRejected:
    """A UTF-16 file (its BOM says so) sent to an account that pinned another encoding."""
    label = _PINNED_LABEL[codec]
    message = (f"UTF-16(Excelの「Unicode テキスト」)のファイルですが、外部連携設定の文字コードが{label}に"
               f"指定されています。文字コードを「自動」にするか、{label} で保存して送ってください。")
    return ImportRejected([RowError(message=message)])


def _reject_binary(data: bytes) -> None:
    """Reject files that cannot be CSV text at all, naming what they probably are."""
    if data.startswith(b"PK\x03\x04"):
        message = ("ZIP形式のファイル(Excelの.xlsxなど)です。Excelで「CSV(コンマ区切り)」形式で保存して送ってください。")
    elif data.startswith(b"\xd0\xcf\x11\xe0"):
        message = "Excel(.xls)形式のファイルです。Excelで「CSV(コンマ区切り)」形式で保存して送ってください。"
    elif data.startswith(_UTF32_BOMS):
        message = ("UTF-32 のファイルは取り込めません。"
                   "Shift_JIS(cp932)・UTF-8 の CSV か、Excelの「Unicode テキスト」(UTF-16)で保存してください。")
    elif b"\x00" in data:
        message = ("NULバイトを含むバイナリファイルです。CSVではないファイル(ZIP・Excel形式など)か、"
                   "UTF-16で保存されています。Shift_JIS(cp932) または UTF-8 の CSV で保存してください。")
    else:
        return
    raise ImportRejected([RowError(message=message)])


def _decode_auto(data: bytes) -> tuple[str, str]:
    """BOM, ISO-2022-JP escapes, strict UTF-8, then cp932 or EUC-JP (whichever reads as Japanese)."""
    if data.startswith(_UTF8_BOM):
        try:
            return data[len(_UTF8_BOM):].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as error:
            raise _undecodable(data, "utf-8", error.start + len(_UTF8_BOM), pinned=False) from None
    # ISO-2022-JP is 7-bit, so it always passes strict UTF-8; its escape sequences
    # (ESC $ B ...) never belong in a CSV, so they are the tell and are checked first.
    if eucjp.ISO2022_DESIGNATION.search(data):
        try:
            return eucjp.decode_iso2022jp_ms(data), "iso2022-jp"
        except eucjp.Unreadable as error:
            raise _refused(data, "ISO-2022-JP(JIS)", error.offset) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        cp932_text: str | None = data.decode("cp932")
    except UnicodeDecodeError:
        cp932_text = None
    try:
        euc_text = eucjp.decode_eucjp_ms(data)
    except eucjp.Unreadable as error:
        if cp932_text is not None and (error.structural or _oddities(cp932_text) == 0):
            return cp932_text, "cp932"
        if not error.structural:
            # Every byte is where EUC-JP puts it, only this character has no mapping: it is
            # an EUC-JP file, and saying so is the useful advice.
            raise _refused(data, "EUC-JP", error.offset) from None
        raise ImportRejected([RowError(message=UNKNOWN_ENCODING_MESSAGE)]) from None
    if cp932_text is None or _oddities(euc_text) < _oddities(cp932_text):
        return euc_text, "euc-jp"
    return cp932_text, "cp932"


def _oddities(text: str) -> int:
    """How many characters of `text` are unlikely in a Japanese business CSV.

    Used only when the same bytes read as both cp932 and EUC-JP: EUC-JP read as cp932 gives
    half-width punctuation (､ ･ ｡ from the hiragana, katakana and symbol rows), stray ﾞ ﾟ and
    rare kanji; cp932 half-width katakana read as EUC-JP gives random, mostly rare kanji.
    ASCII, kana, JIS level-1 kanji and the usual full-width punctuation count 0.
    """
    count = 0
    previous = 0
    for char in text:
        code = ord(char)
        if code < 0x80 or 0x3000 <= code <= 0x30FF or 0xFF01 <= code <= 0xFF5E or 0xFF66 <= code <= 0xFF9D:
            pass
        elif code in (0xFF9E, 0xFF9F):  # ﾞ ﾟ belong after a half-width letter
            count += not 0xFF66 <= previous <= 0xFF9D
        elif 0x4E00 <= code <= 0x9FFF:
            count += not _is_level1_kanji(char)
        else:
            count += 1
        previous = code
    return count


def _is_level1_kanji(char: str) -> bool:
    """JIS X 0208 level-1 kanji (rows 16-47, Shift_JIS lead bytes 0x88-0x98)."""
    try:
        lead = char.encode("cp932")[0]
    except UnicodeEncodeError:
        return False
    return 0x88 <= lead <= 0x98


def _refused(data: bytes, label: str, offset: int) -> ImportRejected:
    """A file in an encoding we recognised but cannot read exactly: name it and advise."""
    line = data.count(b"\n", 0, offset) + 1
    message = (
        f"文字コード {label} のファイルですが、読めない文字があります(ファイル先頭から {offset + 1} バイト目)。"
        "文字が変わらないように、Shift_JIS(cp932) または UTF-8 で保存し直して送ってください。"
    )
    return ImportRejected([RowError(message=message, line=line)])


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
