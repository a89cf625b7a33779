"""Decoding received bytes (SPEC section 2, "Encoding")."""
from __future__ import annotations

import random
from unittest import mock

import pytest

from app.errors import ImportRejected
from app.importer import encoding
from app.importer.encoding import decode

# Characters Excel writes in cp932 that Python's shift_jis codec cannot handle or maps differently.
CP932_TEXT = (
    "社員ID,売上,備考\r\n"
    "E001,100,①～㈱髙﨑Ⅰ№\r\n"
    "E002,200,ｱｲｳ ﾃｽﾄ(半角カナ)\r\n"
    "E003,300,～－∥￢\r\n"
)
UTF8_TEXT = "社員ID,売上,備考\r\nE001,100,①～㈱髙﨑Ⅰ№ 😀\r\n"
PLAIN_JAPANESE = "社員ID,売上,備考\n高橋,100,東京都千代田区の新規案件\n山田,200,大阪支店で受注しました\n" * 5


def test_cp932_text_really_needs_cp932() -> None:
    # Guards the fixture: if shift_jis could encode it, the cp932 test would prove nothing.
    with pytest.raises(UnicodeEncodeError):
        CP932_TEXT.encode("shift_jis")


@pytest.mark.parametrize(
    ("data", "text", "name"),
    [
        (UTF8_TEXT.encode("utf-8"), UTF8_TEXT, "utf-8"),
        (b"\xef\xbb\xbf" + UTF8_TEXT.encode("utf-8"), UTF8_TEXT, "utf-8-sig"),
        (CP932_TEXT.encode("cp932"), CP932_TEXT, "cp932"),
        (b"No.,a\r\n1,2\r\n", "No.,a\r\n1,2\r\n", "utf-8"),  # ASCII is UTF-8
        (b"", "", "utf-8"),
        (b"\xef\xbb\xbf", "", "utf-8-sig"),
        (PLAIN_JAPANESE.encode("euc_jp"), PLAIN_JAPANESE, "euc_jp"),
        (PLAIN_JAPANESE.encode("iso2022_jp"), PLAIN_JAPANESE, "iso2022_jp"),
    ],
    ids=["utf-8", "utf-8-bom", "cp932", "ascii", "empty", "bom-only", "euc-jp", "iso-2022-jp"],
)
def test_auto_decodes(data: bytes, text: str, name: str) -> None:
    assert decode(data) == (text, name)
    assert decode(data, "auto") == (text, name)


@pytest.mark.parametrize("data", [CP932_TEXT.encode("cp932"), UTF8_TEXT.encode("utf-8"),
                                  b"\xef\xbb\xbf" + UTF8_TEXT.encode("utf-8")])
def test_detector_not_run_when_utf8_or_cp932_decodes(data: bytes) -> None:
    with mock.patch.object(encoding.chardet, "detect", side_effect=AssertionError("chardet was run")):
        decode(data)


def _random_invalid_bytes() -> bytes:
    """Bytes that are neither UTF-8 nor cp932 nor any Japanese encoding."""
    generator = random.Random(932)
    noise = bytes(generator.randrange(1, 256) for _ in range(2000))  # no NUL: that has its own message
    # A cp932 lead byte before 0xFF or a space is invalid in UTF-8, cp932 and EUC-JP alike.
    return b"No.,a\r\n" + noise + b"\x82\xff\x81 " * 20


@pytest.mark.parametrize(
    "data",
    [_random_invalid_bytes(), b"No.,a\r\n1,\x82\xff\r\n", b"\x88\x7f,\x81\r\n", bytes(range(0x80, 0x100)) * 3],
    ids=["random", "lead-ff", "lead-7f", "high-bytes"],
)
def test_neither_encoding_is_rejected(data: bytes) -> None:
    with pytest.raises(ImportRejected) as caught:
        decode(data)
    (error,) = caught.value.errors
    assert "文字コード" in error.message
    assert "Shift_JIS(cp932)" in error.message and "UTF-8" in error.message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"No.,a\r\n1,2\x00\r\n", "NULバイト"),
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 30, "ZIP"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 30, ".xls"),
        ("No.\t売上\r\n".encode("utf-16"), "UTF-16"),
        ("No.,売上\r\n".encode("utf-16-be"), "NULバイト"),
    ],
    ids=["nul", "zip", "xls", "utf-16-bom", "utf-16-no-bom"],
)
@pytest.mark.parametrize("pinned", [None, "cp932", "utf-8"])
def test_binary_files_are_rejected(data: bytes, expected: str, pinned: str | None) -> None:
    with pytest.raises(ImportRejected) as caught:
        decode(data, pinned)
    (error,) = caught.value.errors
    assert expected in error.message
    assert "CSV" in error.message


@pytest.mark.parametrize(
    ("data", "pinned", "text", "name"),
    [
        (CP932_TEXT.encode("cp932"), "cp932", CP932_TEXT, "cp932"),
        (UTF8_TEXT.encode("utf-8"), "utf-8", UTF8_TEXT, "utf-8"),
        (b"\xef\xbb\xbf" + UTF8_TEXT.encode("utf-8"), "utf-8", UTF8_TEXT, "utf-8-sig"),
        # ASCII is valid in both; the pin decides the reported name.
        (b"No.,a\r\n", "cp932", "No.,a\r\n", "cp932"),
        (b"No.,a\r\n", "utf-8", "No.,a\r\n", "utf-8"),
        # Valid UTF-8 that also decodes as cp932: the pin wins, even though auto would say utf-8.
        ("件数".encode("utf-8"), "cp932", "莉ｶ謨ｰ", "cp932"),
        (CP932_TEXT.encode("cp932"), "Shift_JIS", CP932_TEXT, "cp932"),  # never Python's shift_jis codec
        (CP932_TEXT.encode("cp932"), " CP932 ", CP932_TEXT, "cp932"),
    ],
)
def test_pinned_decodes(data: bytes, pinned: str, text: str, name: str) -> None:
    assert decode(data, pinned) == (text, name)


@pytest.mark.parametrize(
    ("data", "pinned", "line", "label"),
    [
        # A cp932 file read as UTF-8 fails on its first Japanese byte: line 1 (the header).
        (CP932_TEXT.encode("cp932"), "utf-8", 1, "UTF-8"),
        # ASCII header, Japanese only from line 3 on.
        (("No.,a\r\n1,2\r\n3,髙橋\r\n").encode("cp932"), "utf-8", 3, "UTF-8"),
        (b"\xef\xbb\xbfNo.,a\r\n1,2\r\n3,4\r\n5,\xff\r\n", "utf-8", 4, "UTF-8"),
        # LF-only line ends count the same.
        (b"No.,a\n1,2\n3,4\n5,6\n7,\x82\xff\n", "cp932", 5, "Shift_JIS(cp932)"),
        (b"No.,a\r\n1,\x81\r\n", "cp932", 2, "Shift_JIS(cp932)"),  # a lead byte cut off by the line end
        (("No.,a\r\n1,2\r\n3,😀\r\n").encode("utf-8"), "cp932", 3, "Shift_JIS(cp932)"),
    ],
)
def test_pinned_failure_names_encoding_and_line(data: bytes, pinned: str, line: int, label: str) -> None:
    with pytest.raises(ImportRejected) as caught:
        decode(data, pinned)
    (error,) = caught.value.errors
    assert error.line == line
    assert label in error.message
    assert f"{line}行目" in caught.value.message


def test_bom_with_invalid_utf8_is_rejected_with_line() -> None:
    with pytest.raises(ImportRejected) as caught:
        decode(b"\xef\xbb\xbfNo.,a\r\n1,\x82\xa0\r\n")
    (error,) = caught.value.errors
    assert error.line == 2
    assert "UTF-8" in error.message


def test_unknown_pin_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        decode(b"No.\r\n", "latin-1")
