"""What a person types into a list field (addresses, aliases): one text, or a list of texts, split.

Pure: imports nothing of the app.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator


def typed_parts(value: str | Iterable[str] | None, separators: re.Pattern) -> Iterator[str]:
    """The parts of `value` between `separators`, each NFKC-normalised first (full-width ，、 and ＠ typed
    with a Japanese IME count as their ASCII forms); untrimmed, empty parts included."""
    if value is None:
        return
    for item in [value] if isinstance(value, str) else value:
        yield from separators.split(unicodedata.normalize("NFKC", str(item or "")))
