"""Write this folder's text exports from results.fods with LibreOffice, as an office would save them.

    python tests/data/text/make_text_exports.py      (needs soffice: Debian libreoffice-calc-nogui)

LibreOffice's text filter options are separator, quote, character set (as code points / rtl
encoding numbers): 9 = tab, 44 = comma, 34 = '"'; 65535 = UTF-16LE with a BOM (Excel's
「Unicode テキスト」), 76 = UTF-8, 60 = Windows cp932. Cells are written as shown, so the
number formats of results.fods (￥#,##0, △#,##0, #,##0"円", (#,##0) ...) reach the files as text.
tests/importer/test_text_exports.py reads them (and regenerates one when soffice is installed).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "results.fods"
# output name -> (LibreOffice target format, filter options)
EXPORTS = {
    "results-utf16.txt": ("txt", "9,34,65535"),
    "results-utf8.txt": ("txt", "9,34,76"),
    "results-cp932.txt": ("txt", "9,34,60"),
    "results-cp932.csv": ("csv", "44,34,60"),
}


def export(name: str, folder: Path) -> bytes:
    """Convert results.fods with soffice into `name`'s format; return the bytes written."""
    target, options = EXPORTS[name]
    profile = folder / "profile"  # a private profile: another soffice running does not interfere
    out = folder / name
    out.mkdir()
    subprocess.run(
        ["soffice", f"-env:UserInstallation={profile.as_uri()}", "--headless",
         "--convert-to", f"{target}:Text - txt - csv (StarCalc):{options}", "--outdir", str(out), str(SOURCE)],
        check=True, capture_output=True, timeout=300)
    return (out / f"{SOURCE.stem}.{target}").read_bytes()


def main() -> None:
    if shutil.which("soffice") is None:
        sys.exit("soffice is not installed (Debian package libreoffice-calc-nogui)")
    with tempfile.TemporaryDirectory() as folder:
        for name in EXPORTS:
            (HERE / name).write_bytes(export(name, Path(folder)))
            print(name)


if __name__ == "__main__":
    main()
