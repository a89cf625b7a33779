"""Unpacking .zip and .gz with the limits against zip bombs (app/importer/archive.py), no app.

Archives are made here with Python's zipfile and, where installed, with the real `zip` and
`gzip` commands (Debian packages zip and gzip), the way an office PC or a script makes them.
"""
from __future__ import annotations

import io
import subprocess
import zipfile

import pytest

from app.importer import archive
from app.importer.archive import ArchiveRefused, unpack
from tests.fixtures.importer import needs_zip

CAP = 10 * 1024 * 1024
FILES = {"20180516.csv": b"No.,sales\r\n1,100\r\n", "20180517.csv": b"No.,sales\r\n1,200\r\n",
         "20180500.csv": b"No.,sales\r\n1,300\r\n"}


def make_zip(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as out:
        for name, data in files.items():
            out.writestr(name, data)
    return buffer.getvalue()


def zip_command(tmp_path, files: dict[str, bytes], *options: str) -> bytes:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    subprocess.run(["zip", "-q", *options, "out.zip", *files], cwd=tmp_path, check=True)
    return (tmp_path / "out.zip").read_bytes()


def names(unpacked) -> list[tuple[str, bytes | None, str | None]]:
    return [(e.name, e.data, e.error) for e in unpacked.entries]


def test_a_zip_of_three_files_gives_them_in_archive_order():
    unpacked = unpack("data.zip", make_zip(FILES), max_total=CAP)
    assert names(unpacked) == [(n, d, None) for n, d in FILES.items()]
    assert unpacked.ignored == []


@needs_zip
def test_a_zip_made_by_the_zip_command(tmp_path):
    data = zip_command(tmp_path, FILES)
    assert names(unpack("data.zip", data, max_total=CAP)) == [(n, d, None) for n, d in FILES.items()]


def test_a_gzip_made_by_the_gzip_command(tmp_path):
    (tmp_path / "20180516.csv").write_bytes(FILES["20180516.csv"])
    subprocess.run(["gzip", "20180516.csv"], cwd=tmp_path, check=True)
    data = (tmp_path / "20180516.csv.gz").read_bytes()
    assert names(unpack("20180516.csv.gz", data, max_total=CAP)) == [("20180516.csv", FILES["20180516.csv"], None)]


def test_a_gzip_over_the_cap_is_refused():
    import gzip
    data = gzip.compress(b"1,100\r\n" * 300_000)  # 2.1 MB of text in a few kB
    with pytest.raises(ArchiveRefused, match="上限"):
        unpack("20180516.csv.gz", data, max_total=1024 * 1024)


@needs_zip
@pytest.mark.parametrize(("password", "outcome"), [
    ([b"himitsu"], "ok"), (None, archive.NO_PASSWORD_MESSAGE), ([b"wrong!"], archive.WRONG_PASSWORD_MESSAGE),
    ([b"wrong!", b"himitsu"], "ok"),
])
def test_an_encrypted_zip_made_with_zip_P(tmp_path, password, outcome):
    data = zip_command(tmp_path, FILES, "-P", "himitsu")
    if outcome == "ok":
        assert names(unpack("data.zip", data, max_total=CAP, password=password)) == [
            (n, d, None) for n, d in FILES.items()]
    else:
        with pytest.raises(ArchiveRefused) as refused:
            unpack("data.zip", data, max_total=CAP, password=password)
        assert refused.value.message == outcome


def test_an_aes_zip_is_refused_with_the_advice_to_use_zipcrypto():
    data = bytearray(make_zip({"20180516.csv": b"x"}, zipfile.ZIP_STORED))
    central = data.index(b"PK\x01\x02")
    data[central + 10:central + 12] = (99).to_bytes(2, "little")  # the method WinZip AES writes
    with pytest.raises(ArchiveRefused) as refused:
        unpack("data.zip", bytes(data), max_total=CAP)
    assert "AES" in refused.value.message and "従来のZIP暗号化" in refused.value.message


def test_a_zip_bomb_over_the_cap_is_refused_without_reading_it_all():
    bomb = make_zip({"20180516.csv": b"0" * (50 * 1024 * 1024)})
    assert len(bomb) < 100_000
    with pytest.raises(ArchiveRefused, match="圧縮率|上限"):
        unpack("bomb.zip", bomb, max_total=CAP)
    with pytest.raises(ArchiveRefused, match="上限"):
        unpack("bomb.zip", bomb, max_total=CAP, max_ratio=10**9)


def test_a_highly_compressed_entry_under_the_cap_is_refused_by_its_ratio():
    bomb = make_zip({"20180516.csv": b"0" * (5 * 1024 * 1024)})
    with pytest.raises(ArchiveRefused, match="圧縮率が100倍"):
        unpack("bomb.zip", bomb, max_total=CAP)


def test_the_header_sizes_are_not_trusted():
    data = bytearray(make_zip({"20180516.csv": b"0" * (3 * 1024 * 1024)}))
    central = data.index(b"PK\x01\x02")
    data[central + 24:central + 28] = (10).to_bytes(4, "little")  # claims 10 bytes uncompressed
    with pytest.raises(ArchiveRefused):
        unpack("liar.zip", bytes(data), max_total=1024 * 1024, max_ratio=10**9)


def test_too_many_entries_are_refused():
    with pytest.raises(ArchiveRefused, match="101個"):
        unpack("many.zip", make_zip({f"{20180101 + i}.csv": b"" for i in range(101)}), max_total=CAP)


def test_names_are_reduced_to_their_base_name_and_folders_skipped():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        out.writestr("../../x/", b"")
        out.writestr("../../x/20180516.csv", b"a")
        out.writestr("C:\\tmp\\20180517.csv", b"b")
    assert names(unpack("t.zip", buffer.getvalue(), max_total=CAP)) == [("20180516.csv", b"a", None),
                                                                         ("20180517.csv", b"b", None)]


def test_duplicate_base_names_refuse_the_archive_naming_them():
    data = make_zip({"a/20180516.csv": b"1", "b/20180516.csv": b"2"})
    with pytest.raises(ArchiveRefused, match="「20180516.csv」"):
        unpack("d.zip", data, max_total=CAP)


def test_a_nested_archive_is_an_entry_error_and_other_files_are_listed():
    data = make_zip({"20180516.csv": b"1", "inner.zip": make_zip(FILES), "readme.txt": b"hi",
                     "__MACOSX/._20180516.csv": b"junk"})
    unpacked = unpack("n.zip", data, max_total=CAP)
    assert names(unpacked) == [("20180516.csv", b"1", None), ("inner.zip", None, archive.NESTED_MESSAGE)]
    assert unpacked.ignored == ["readme.txt", "._20180516.csv"]


def test_a_cp932_entry_name_from_japanese_windows_is_read():
    data = bytearray(make_zip({"AAAA.txt": b"x"}))
    # zipfile writes ASCII names without the UTF-8 flag; put cp932 bytes of the same length there.
    raw = "売上.txt".encode("cp932")
    assert len(raw) == 8
    data = bytes(data).replace(b"AAAA.txt", raw)
    assert unpack("j.zip", data, max_total=CAP).ignored == ["売上.txt"]


def test_not_an_archive_is_refused_as_broken():
    with pytest.raises(ArchiveRefused, match="壊れて"):
        unpack("x.zip", b"No.,sales\r\n", max_total=CAP)
    with pytest.raises(ArchiveRefused, match="壊れて"):
        unpack("x.csv.gz", b"No.,sales\r\n", max_total=CAP)
