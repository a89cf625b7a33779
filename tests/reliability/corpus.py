"""Builders of bad input for the reliability tests: malformed CSV files and hostile mails.

Everything is written by code at import time (no binary blobs in the repository), and every
builder is deterministic (fixed seeds), so a failing case can be rebuilt byte for byte.

The CSV cases are meant for the account made by `corpus_account()`: members No. 1-3 (and an
inactive No. 4), graph columns 売上・粗利・件数, member key No., an error report address.
"""
from __future__ import annotations

import base64
import codecs
import csv
import gzip
import io
import random
import zipfile
from dataclasses import dataclass

# ---------------------------------------------------------------------------------------
# The account every CSV case is written for

MEMBERS = ((1, "E001", "髙橋 一郎"), (2, "E002", "佐藤 花子"), (3, "E003", "鈴木 次郎"))
INACTIVE_MEMBER = (4, "E004", "退職 太郎")
COLUMNS = (("売上", "円"), ("粗利", "円"), ("件数", "件"))
ERROR_TO = "errors@acme.example"
GOOD_NAME = "20180516.csv"


def csv_bytes(rows: list[list[str]], encoding: str = "cp932", newline: str = "\r\n") -> bytes:
    """Rows as Excel writes them (quoting only where needed), in `encoding`."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    return buffer.getvalue().encode(encoding)


GOOD_ROWS = [["No.", "売上", "粗利", "件数", "備考"], ["1", "120,000", "30000", "2", "髙橋様"],
             ["2", "50000", "12000", "1", "Ａ社 新規"]]
GOOD_CSV = csv_bytes(GOOD_ROWS)


def zip_bomb(member_bytes: int = 32 * 1024 * 1024, name: str = GOOD_NAME) -> bytes:
    """A small ZIP archive whose one member inflates to `member_bytes` of zeros (built in memory)."""
    buffer = io.BytesIO()
    chunk = b"0" * (1024 * 1024)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open(name, "w", force_zip64=True) as member:
            for _ in range(member_bytes // len(chunk)):
                member.write(chunk)
    return buffer.getvalue()


def random_bytes(size: int, seed: int, *, without: bytes = b"") -> bytes:
    """Deterministic noise, optionally without some byte values (e.g. NUL)."""
    generator = random.Random(seed)
    data = generator.randbytes(size * 2)
    if without:
        data = data.translate(None, without)
    return data[:size]


# ---------------------------------------------------------------------------------------
# The CSV corpus


@dataclass(frozen=True)
class CsvCase:
    """One malformed (or legitimately valid) CSV file and what must come of it.

    For a failure: at least one error must carry `line` / `column` / `value` when they are
    given, and one message must contain `message` when given. For a valid file: `rows` rows.
    """

    id: str
    filename: str
    data: bytes
    ok: bool = False
    rows: int = 0
    line: int | None = None
    column: str | None = None
    value: str | None = None
    message: str | None = None
    min_errors: int = 1

    @property
    def stored_name(self) -> str:
        """The base name the import record keeps (any directory part stripped)."""
        return self.filename.replace("\\", "/").rsplit("/", 1)[-1].strip()


def _text(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


def _value_case(id: str, cell: str, message: str | None = "数値ではありません") -> CsvCase:
    """A file whose line 2 has `cell` in the 売上 column: always a value error there."""
    return CsvCase(id, GOOD_NAME, csv_bytes([["No.", "売上", "備考"], ["1", cell, "x"]], "utf-8"),
                   line=2, column="売上", value=cell, message=message)


FORMULAS = ("=1+2", "+81", "-cmd|' /C calc'!A0", "@SUM(A1)")
FILENAME_MESSAGE = "ファイル名は"


def csv_cases() -> list[CsvCase]:
    """Every CSV case, in a stable order (>= 40 malformed ones)."""
    good = GOOD_CSV
    header = "No.,売上,粗利,件数,備考\r\n"
    cases = [
        # -- file names --------------------------------------------------------------
        CsvCase("name-no-extension", "20180516", good, value="20180516", message=FILENAME_MESSAGE),
        CsvCase("name-txt", "20180516.txt", good, value="20180516.txt", message=FILENAME_MESSAGE),
        CsvCase("name-feb-30", "20180230.csv", good, value="20180230.csv", message=FILENAME_MESSAGE),
        CsvCase("name-month-13", "20181300.csv", good, value="20181300.csv", message=FILENAME_MESSAGE),
        CsvCase("name-full-width-digits", "２０１８０５１６.csv", good, message=FILENAME_MESSAGE),
        CsvCase("name-seven-digits", "2018051.csv", good, message=FILENAME_MESSAGE),
        CsvCase("name-empty", "", good, message=FILENAME_MESSAGE),
        CsvCase("name-dot-csv-only", ".csv", good, message=FILENAME_MESSAGE),
        CsvCase("name-double-extension", "20180516.csv.exe", good, message=FILENAME_MESSAGE),
        CsvCase("name-traversal-bad-base", "../../etc/passwd.csv", good, value="passwd.csv",
                message=FILENAME_MESSAGE),
        CsvCase("name-yyyyhhmm-typo", "20182530.csv", good, message=FILENAME_MESSAGE),
        # A directory part is stripped first (docs/spec.md section 2): these are valid files.
        CsvCase("name-traversal-valid-base", "../../../20180517.csv", good, ok=True, rows=2),
        CsvCase("name-windows-path-valid-base", "C:\\evil\\20180518.csv", good, ok=True, rows=2),
        CsvCase("name-upper-case-extension", "20180519.CSV", good, ok=True, rows=2),
        # -- not text at all ------------------------------------------------------------
        CsvCase("empty-file", GOOD_NAME, b"", message="データ行がありません"),
        CsvCase("header-only", GOOD_NAME, _text(header, "cp932"), message="データ行がありません"),
        CsvCase("bom-only", GOOD_NAME, codecs.BOM_UTF8, message="データ行がありません"),
        CsvCase("utf16-with-bom", GOOD_NAME, GOOD_CSV.decode("cp932").encode("utf-16"), message="UTF-16"),
        CsvCase("utf16le-without-bom", GOOD_NAME, GOOD_CSV.decode("cp932").encode("utf-16-le"),
                message="NULバイト"),
        CsvCase("random-binary", GOOD_NAME, random_bytes(4096, seed=8), message="NULバイト"),
        CsvCase("random-binary-without-nul", GOOD_NAME, random_bytes(4096, seed=9, without=b"\x00")),
        CsvCase("zip-bomb-named-csv", GOOD_NAME, zip_bomb(), message="ZIP形式"),
        CsvCase("gzip-named-csv", GOOD_NAME, gzip.compress(GOOD_CSV * 1000, mtime=0)),
        CsvCase("xls-named-csv", GOOD_NAME, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), message="Excel"),
        CsvCase("nul-in-cell", GOOD_NAME, GOOD_CSV.replace(b"120,000", b"120\x00000"), message="NULバイト"),
        # -- size and shape -------------------------------------------------------------
        CsvCase("one-megabyte-single-line", GOOD_NAME, _text("No.,売上\r\n1," + "9" * (1 << 20)), line=2,
                message="長すぎます"),
        CsvCase("one-megabyte-no-newline", GOOD_NAME, _text("No.," + "売" * (1 << 19))),
        CsvCase("ten-thousand-header-columns", GOOD_NAME,
                _text("No.,売上," + ",".join(f"列{i}" for i in range(10_000)) + "\r\n1,100\r\n"),
                line=1, column="列999", message="グラフ列にない見出し", min_errors=10_000),  # the 1,000th is stored
        CsvCase("ten-thousand-data-columns", GOOD_NAME, _text("No.,売上\r\n1,100," + ",".join(["7"] * 10_000)),
                line=2, column="3列目", value="7", message="見出しのない列に値があります"),
        CsvCase("more-cells-than-header", GOOD_NAME, _text("No.,売上\r\n1,100,200\r\n"), line=2, column="3列目",
                value="200", message="見出しのない列に値があります"),
        # -- CSV syntax -----------------------------------------------------------------
        CsvCase("unclosed-quote-at-eof", GOOD_NAME, _text('No.,売上,備考\r\n1,100,"閉じない\r\n2,200,x\r\n'),
                line=2, message="閉じられないまま"),
        CsvCase("quote-in-unquoted-field", GOOD_NAME, _text('No.,売上\r\n1,10"0\r\n'), line=2, column="売上",
                value='10"0', message="数値ではありません"),
        CsvCase("text-after-closing-quote", GOOD_NAME, _text('No.,売上\r\n1,"100"x\r\n'), line=2,
                message="引用符"),
        CsvCase("deeply-nested-quotes", GOOD_NAME,
                _text('No.,売上\r\n1,"' + '""' * 500 + "100" + '""' * 500 + '"\r\n'), line=2, column="売上",
                message="数値ではありません"),
        CsvCase("quoted-newline-in-value", GOOD_NAME, _text('No.,売上\r\n1,"1\r\n00"\r\n2,5\r\n'), line=2,
                column="売上", value="1\r\n00"),
        CsvCase("cr-only-line-endings-bad-value", GOOD_NAME, _text("No.,売上\r1,100\r2,abc\r"), line=3,
                column="売上", value="abc"),
        CsvCase("cr-only-line-endings-valid", "20180520.csv", _text("No.,売上\r1,100\r2,200\r"), ok=True, rows=2),
        CsvCase("blank-lines-and-excel-commas-only", GOOD_NAME, _text("No.,売上,粗利\r\n\r\n,,\r\n  , ,\r\n"),
                message="データ行がありません"),
        # -- encodings ------------------------------------------------------------------
        # Line 2 is cp932, line 3 UTF-8: neither strict decoder reads the whole file.
        CsvCase("mixed-cp932-and-utf8-lines", GOOD_NAME,
                "No.,売上,備考\r\n1,100,髙橋\r\n".encode("cp932") + "2,200,①新規\r\n".encode("utf-8"),
                message="文字コード"),
        CsvCase("utf8-encoded-surrogates", GOOD_NAME, b"No.,\xe5\xa3\xb2\xe4\xb8\x8a\r\n1,\xed\xa0\x80100\r\n"),
        CsvCase("utf8-bom-then-cp932", GOOD_NAME, codecs.BOM_UTF8 + GOOD_CSV, line=1, message="BOM"),
        CsvCase("broken-iso2022jp-escape", GOOD_NAME, b"No.,\x1b$B Gd>e\r\n1,100\r\n"),
        # -- header rules ---------------------------------------------------------------
        CsvCase("duplicate-header", GOOD_NAME, _text("No.,売上,売上\r\n1,1,2\r\n"), line=1, column="売上",
                message="重複"),
        CsvCase("duplicate-header-after-nfkc", GOOD_NAME, _text("No.,件数,件数　\r\n1,1,2\r\n"), line=1,
                message="重複"),
        CsvCase("unknown-header", GOOD_NAME, _text("No.,売上,氏名\r\n1,1,髙橋\r\n"), line=1, column="氏名",
                message="使える見出し"),
        CsvCase("formula-header", GOOD_NAME, _text('No.,"=HYPERLINK(""http://evil.example"")"\r\n1,1\r\n'),
                line=1, message="グラフ列にない見出し"),
        CsvCase("other-keys-header", GOOD_NAME, _text("社員ID,売上\r\nE001,100\r\n"), line=1, column="社員ID",
                message="メンバー設定のNo."),
        CsvCase("no-key-header", GOOD_NAME, _text("売上,粗利\r\n100,200\r\n"), line=1,
                message="1列目の見出しは「No.」"),
        CsvCase("empty-header-cell", GOOD_NAME, _text("No.,,売上\r\n1,,100\r\n"), line=1, column="2列目",
                message="見出しが空"),
        CsvCase("key-header-only", GOOD_NAME, _text("No.\r\n1\r\n"), line=1, message="グラフ列の見出しが1つもありません"),
        # -- member keys ----------------------------------------------------------------
        CsvCase("empty-key-cell", GOOD_NAME, _text("No.,売上\r\n,100\r\n"), line=2, column="No.", value="",
                message="No.が空です"),
        CsvCase("unknown-member", GOOD_NAME, _text("No.,売上\r\n99,100\r\n"), line=2, column="No.", value="99",
                message="存在しないNo."),
        CsvCase("inactive-member", GOOD_NAME, _text("No.,売上\r\n4,100\r\n"), line=2, column="No.", value="4",
                message="存在しないNo."),
        CsvCase("key-zero", GOOD_NAME, _text("No.,売上\r\n0,100\r\n"), line=2, value="0", message="1以上の整数"),
        CsvCase("key-five-thousand-digits", GOOD_NAME, _text("No.,売上\r\n" + "1" * 5000 + ",100\r\n"), line=2,
                column="No.", message="存在しないNo."),
        CsvCase("key-formula", GOOD_NAME, _text("No.,売上\r\n=1+0,100\r\n"), line=2, value="=1+0",
                message="1以上の整数"),
        # -- values ---------------------------------------------------------------------
        *(_value_case(f"formula-in-value-{i}", formula) for i, formula in enumerate(FORMULAS, start=1)),
        _value_case("four-hundred-digits", "1" + "0" * 399, message="大きすぎます"),
        _value_case("exponent-1e400", "1e400"),
        _value_case("nan-word", "NaN"),
        _value_case("infinity-word", "Infinity"),
        _value_case("full-width-garbage", "１２３ａｂｃ"),
        _value_case("circled-digit", "①"),
        _value_case("misplaced-thousands-separator", "1,00", message="桁区切り"),
        _value_case("two-decimal-points", "12.3.4"),
        _value_case("underscore-digits", "1_000"),
        _value_case("minus-sign-only", "▲"),
        _value_case("control-characters", "\x1b[31m100"),
        CsvCase("every-line-wrong", GOOD_NAME,
                _text("No.,売上\r\n" + "".join(f"1,x{n}\r\n" for n in range(1, 5001))), line=1001,
                column="売上", value="x1000", min_errors=5000),  # 5,000 counted, the first 1,000 stored
        # -- legitimately valid: formula-looking notes are text, stored as written ----------
        CsvCase("formula-looking-notes", "20180521.csv",
                csv_bytes([["No.", "売上", "備考"], *([str(no), "-100", formula] for no, formula in
                                                    zip((1, 2, 3, 1), FORMULAS))]), ok=True, rows=4),
    ]
    ids = [case.id for case in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return cases


CSV_CASES = csv_cases()


# ---------------------------------------------------------------------------------------
# Mail builders (raw bytes, exactly what goes over the socket)


def b64_lines(data: bytes) -> bytes:
    """Base64 in 76-character CRLF lines."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def mail_head(sender: bytes | None, to: str, message_id: str, *, extra: bytes = b"") -> bytes:
    """Top-level headers without Content-Type (the caller adds it); `sender=None` leaves out From:."""
    lines = [b"To: " + to.encode(), b"Subject: reliability", b"Date: Wed, 16 May 2018 09:00:00 +0900",
             b"MIME-Version: 1.0", b"Message-ID: " + message_id.encode()]
    if sender is not None:
        lines.insert(0, b"From: " + sender)
    return b"\r\n".join(lines) + b"\r\n" + extra


def csv_part(name_headers: bytes, data: bytes, *, content_type: bytes = b"text/csv",
             encoding: bytes = b"base64") -> bytes:
    """One attachment part (headers, blank line, body) without its boundary line."""
    body = b64_lines(data) if encoding == b"base64" else data
    return (b"Content-Type: " + content_type + b"\r\n" + name_headers + b"\r\n"
            b"Content-Transfer-Encoding: " + encoding + b"\r\n\r\n" + body)


def disposition(name: bytes) -> bytes:
    return b'Content-Disposition: attachment; filename="' + name + b'"'


def multipart(parts: list[bytes], boundary: bytes = b"b0und", *, close: bool = True) -> bytes:
    """A multipart body: each part after its boundary line, then (optionally) the closing boundary."""
    out = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return out + (b"--" + boundary + b"--\r\n" if close else b"")


def simple_mail(sender: bytes | None, to: str, message_id: str, parts: list[bytes], *,
                extra: bytes = b"", boundary: bytes = b"b0und", close: bool = True) -> bytes:
    """multipart/mixed with a text body and the given parts."""
    text = b"Content-Type: text/plain; charset=UTF-8\r\n\r\n" + "本文".encode() + b"\r\n"
    return (mail_head(sender, to, message_id, extra=extra)
            + b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
            + multipart([text, *parts], boundary, close=close))


def nested_mail(sender: bytes, to: str, message_id: str, depth: int, leaf: bytes) -> bytes:
    """`depth` multiparts, each inside the previous one, with `leaf` as the innermost part."""
    body = leaf
    for level in reversed(range(depth)):
        boundary = f"nest{level}".encode()
        body = (b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
                + multipart([body], boundary))
    return mail_head(sender, to, message_id) + body
