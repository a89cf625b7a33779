"""EUC-JP (eucJP-ms and CP51932) and ISO-2022-JP with the Microsoft extensions: the decoders
Python's codecs lack (its euc_jp and iso2022_jp read neither ①, ㈱, 髙 nor ～ as cp932 does).
Pure; encoding.py decides when a file is read with them.
"""
from __future__ import annotations

import codecs
import functools
import re


class Unreadable(Exception):
    """Bytes the extended EUC-JP / ISO-2022-JP decoder cannot read, at `offset`.

    `structural` is true when the bytes are not laid out as that encoding at all (so the
    file is probably something else); false when the layout fits and only this code has no
    character (so the file is in that encoding and the message can name it).
    """

    def __init__(self, offset: int, *, structural: bool) -> None:
        super().__init__(offset)
        self.offset = offset
        self.structural = structural


# -- EUC-JP: eucJP-ms and CP51932 in one table ----------------------------------------------
# Code set 1 (two bytes A1-FE) is JIS X 0208 read with the Windows (cp932) mapping (～ is
# U+FF5E), plus NEC row 13 (①, ㈱, №) and, at rows 89-92, the NEC-selected IBM extensions
# (髙, 﨑) where CP51932 and `nkf -e` put them. Code set 2 (8E xx) is half-width katakana.
# Code set 3 (8F xx xx) is JIS X 0212 plus eucJP-ms's IBM extensions at rows 83-84
# (`iconv -t EUCJP-MS` writes 髙 as 8F F4 FB). Rows 85-94 of both sets are eucJP-ms's
# user-defined characters (U+E000-U+E757, as cp932's F040-F9FC). Code set 1 rows 89-92 are
# where the two disagree: CP51932 puts the NEC-selected IBM extensions there, eucJP-ms
# user-defined characters. A file with any code set 3 byte (8F) is eucJP-ms (CP51932 has no
# code set 3); any other file is read as CP51932, which is what nkf -e writes.
_EUC_TOKEN = re.compile(
    rb"[\x00-\x7f]+|[\xa1-\xfe][\xa1-\xfe]|\x8e[\xa1-\xdf]|\x8f[\xa1-\xfe][\xa1-\xfe]|[\x80-\xff]"
)
_NEC_SELECTED_IBM_ROWS = range(89, 93)
_USER_DEFINED_ROWS = range(85, 95)
# The two JIS X 0212 codes where eucJP-ms (like cp932) differs from Python's euc_jp codec.
_JISX0212_MS = {b"\x8f\xa2\xb7": "\uff5e", b"\x8f\xa2\xc3": "\uffe4"}
_IBM_ONLY_START = (83 - 1) * 94 + (83 - 1)  # code set 3, row 83 cell 83 (8F F3 F3)


def _sjis_bytes(row: int, cell: int) -> bytes:
    """The Shift_JIS bytes of JIS row/cell (both 1-94)."""
    lead = (row - 1) // 2 + (0x81 if row <= 62 else 0xC1)
    if row % 2:
        trail = cell + (0x3F if cell <= 63 else 0x40)
    else:
        trail = cell + 0x9E
    return bytes((lead, trail))


def _in_euc_jp(char: str) -> bool:
    try:
        char.encode("euc_jp")
    except UnicodeEncodeError:
        return False
    return True


@functools.cache
def _euc_table(eucjp_ms: bool) -> dict[bytes, str]:
    """Every multi-byte eucJP-ms (or CP51932) code mapped to its character (built once each)."""
    table: dict[bytes, str] = {bytes((0x8E, byte)): chr(0xFF61 + byte - 0xA1) for byte in range(0xA1, 0xE0)}
    # The IBM extensions (cp932 FA40-FC4B) that are in neither JIS X 0208 nor JIS X 0212
    # follow each other in cp932 order from 8F F3 F3 on; № is listed there too, although
    # JIS X 0212 has it (8F A2 F1), and ￢ ￤ are not (A2 CC, 8F A2 C3).
    ibm = [bytes((lead, trail)).decode("cp932") for lead in (0xFA, 0xFB, 0xFC) for trail in range(0x40, 0xFD)
           if trail != 0x7F and (lead, trail) <= (0xFC, 0x4B)]
    only_ibm = [char for char in ibm if char == "\u2116" or char not in "\uffe2\uffe4" and not _in_euc_jp(char)]
    for index, char in enumerate(only_ibm, start=_IBM_ONLY_START):
        table[bytes((0x8F, 0xA1 + index // 94, 0xA1 + index % 94))] = char
    for row in range(1, 95):
        for cell in range(1, 95):
            code = bytes((0xA0 + row, 0xA0 + cell))
            user = (row - 85) * 94 + cell - 1
            try:
                if row in _USER_DEFINED_ROWS and (eucjp_ms or row not in _NEC_SELECTED_IBM_ROWS):
                    raise UnicodeDecodeError("cp932", b"", 0, 0, "user-defined")
                table[code] = _sjis_bytes(row, cell).decode("cp932")
            except UnicodeDecodeError:
                if row in _USER_DEFINED_ROWS:
                    table[code] = chr(0xE000 + user)
            extra = b"\x8f" + code
            if row in _USER_DEFINED_ROWS:
                table[extra] = chr(0xE3AC + user)
            elif extra in _JISX0212_MS:
                table[extra] = _JISX0212_MS[extra]
            elif extra not in table:
                try:
                    table[extra] = extra.decode("euc_jp")
                except UnicodeDecodeError:
                    pass
    return table


# Bytes 80-A0 other than the code set prefixes 8E/8F occur nowhere in EUC-JP, but in nearly
# every cp932 file (the lead bytes of kana and kanji).
_NOT_EUC = re.compile(rb"[\x80-\x8d\x90-\xa0]")


def decode_eucjp_ms(data: bytes) -> str:
    """Decode EUC-JP with the Microsoft/NEC/IBM extensions (eucJP-ms and CP51932)."""
    # One scan instead of a full decode attempt (a text buffer of the file's size) on cp932 files.
    found = _NOT_EUC.search(data)
    if found:
        raise Unreadable(found.start(), structural=True)
    return decode_euc(data, eucjp_ms=b"\x8f" in data)


# Python's euc_jp codec reads all but these codes as eucJP-ms does (and fails on the codes it
# lacks, which the error handlers below take from the table): the fast path for big files.
_PYTHON_EUC_TO_MS = (
    ("\u301c", "\uff5e"), ("\u2016", "\u2225"), ("\u2212", "\uff0d"), ("\u00a2", "\uffe0"),
    ("\u00a3", "\uffe1"), ("\u00ac", "\uffe2"), ("\u00a6", "\uffe4"),
)
_PYTHON_EUC_AMBIGUOUS = b"\x8f\xa2\xb7"  # Python reads it as ASCII "~", eucJP-ms as "～"


def _euc_error_handler(eucjp_ms: bool):
    def handle(error: UnicodeError) -> tuple[str, int]:
        assert isinstance(error, UnicodeDecodeError)
        match = _EUC_TOKEN.match(error.object, error.start)
        assert match is not None  # every byte starts a token
        char = _euc_table(eucjp_ms).get(match.group())
        if char is None:
            raise Unreadable(error.start, structural=len(match.group()) == 1)
        return char, match.end()
    return handle


codecs.register_error("renkei-eucjp-ms", _euc_error_handler(True))
codecs.register_error("renkei-cp51932", _euc_error_handler(False))


def decode_euc(data: bytes, *, eucjp_ms: bool, fast: bool = True) -> str:
    """Decode EUC-JP bytes with the eucJP-ms table (or the CP51932 one)."""
    if fast and _PYTHON_EUC_AMBIGUOUS not in data:
        text = data.decode("euc_jp", "renkei-eucjp-ms" if eucjp_ms else "renkei-cp51932")
        for python, ms in _PYTHON_EUC_TO_MS:  # str.replace is much faster than str.translate
            if python in text:
                text = text.replace(python, ms)
        return text
    table = _euc_table(eucjp_ms)
    parts = []
    for match in _EUC_TOKEN.finditer(data):
        token = match.group()
        if token[0] < 0x80:
            parts.append(token.decode("ascii"))
            continue
        char = table.get(token)
        if char is None:
            raise Unreadable(match.start(), structural=len(token) == 1)
        parts.append(char)
    return "".join(parts)


# -- ISO-2022-JP: CP50220 / CP50221 / CP50222 and ISO-2022-JP-MS ------------------------------
# ESC $ B and ESC $ @ select JIS X 0208 (with NEC row 13 and rows 89-92, as above), ESC $ ( D
# JIS X 0212 (with eucJP-ms's IBM extensions), ESC ( I half-width katakana (SO ... SI too),
# ESC ( B ASCII and ESC ( J JIS-Roman. A line feed returns to ASCII (RFC 1468 has the
# sender do that before the line end; a sender that forgets is read the same way). A file
# with a designation is read as ISO-2022-JP even with 8-bit bytes, which then refuse it
# (CP50221 writes user-defined characters so): cp932 would read it "successfully".
ISO2022_DESIGNATION = re.compile(rb"\x1b(?:\$[@B]|\$\(D|\([BJI])")
_ISO2022_TOKEN = re.compile(
    rb"\x1b(?:\$[@B]|\$\(D|\([BJI])|[\x0e\x0f\n\r\x1b]|(?:[\x21-\x7e][\x21-\x7e])+|[\x00-\xff]"
)
_ASCII, _ROMAN, _KANA, _JISX0208, _JISX0212 = range(5)
_DESIGNATIONS = {b"\x1b$@": _JISX0208, b"\x1b$B": _JISX0208, b"\x1b$(D": _JISX0212,
                 b"\x1b(B": _ASCII, b"\x1b(J": _ROMAN, b"\x1b(I": _KANA}
_HIGH_BIT = bytes(byte | 0x80 for byte in range(256))
_TWO_BYTES = re.compile(rb"..", re.DOTALL)
_KANA_CHARS = {byte: chr(0xFF61 + byte - 0x21) for byte in range(0x21, 0x60)}
_ROMAN_CHARS = str.maketrans({"\\": "\u00a5", "~": "\u203e"})


def decode_iso2022jp_ms(data: bytes) -> str:
    """Decode 7-bit ISO-2022-JP with the Microsoft/NEC/IBM extensions."""
    eucjp_ms = b"\x1b$(D" in data  # JIS X 0212 in use: ISO-2022-JP-MS, as for EUC-JP above
    parts = []
    mode = shift = _ASCII
    for match in _ISO2022_TOKEN.finditer(data):
        token = match.group()
        current = shift or mode
        if token in _DESIGNATIONS:
            mode = _DESIGNATIONS[token]
        elif token == b"\x0e":
            shift = _KANA
        elif token == b"\x0f":
            shift = _ASCII
        elif token == b"\x1b" or token[0] >= 0x80:
            raise Unreadable(match.start(), structural=True)
        elif token in (b"\n", b"\r"):
            parts.append(chr(token[0]))
            if token == b"\n":
                mode = shift = _ASCII
        elif current in (_JISX0208, _JISX0212):
            if len(token) == 1:  # a lone byte, a space or a control character between pairs
                raise Unreadable(match.start(), structural=True)
            euc = token.translate(_HIGH_BIT)
            if current == _JISX0212:
                euc = _TWO_BYTES.sub(lambda pair: b"\x8f" + pair.group(), euc)
            try:
                parts.append(decode_euc(euc, eucjp_ms=eucjp_ms))
            except Unreadable as error:
                offset = error.offset if current == _JISX0208 else error.offset // 3 * 2
                raise Unreadable(match.start() + offset, structural=False) from None
        elif current == _KANA:
            for offset, byte in enumerate(token, start=match.start()):
                if byte < 0x21:
                    parts.append(chr(byte))
                    continue
                if byte not in _KANA_CHARS:
                    raise Unreadable(offset, structural=False)
                parts.append(_KANA_CHARS[byte])
        elif current == _ROMAN:
            parts.append(token.decode("ascii").translate(_ROMAN_CHARS))
        else:
            parts.append(token.decode("ascii"))
    return "".join(parts)
