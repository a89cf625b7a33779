"""Physical lines of a decoded file (app/importer/layout.physical_lines): what the csv module and line numbers see."""
from __future__ import annotations

import pytest

from app.importer import layout
from app.importer.layout import parse_all, physical_lines
from tests.fixtures.importer import COLUMNS, MEMBERS_BY_NO


def reference_lines(text: str) -> list[str]:
    """Lines ending at \\n, \\r\\n or a lone \\r, endings kept: the rule, written the slow way."""
    lines, current, index = [], "", 0
    while index < len(text):
        char = text[index]
        current += char
        if char == "\n" or (char == "\r" and text[index + 1:index + 2] != "\n"):
            lines.append(current)
            current = ""
        index += 1
    return lines + ([current] if current else [])


TEXTS = [
    "No.,売上\r\n1,2\r\n2,3\r\n", "No.,売上\n1,2\n2,3", "No.,売上\r1,2\r2,3\r", "a\r\n\r\nb\rc\n\u2028d\x0ce\r\n",
    '"x\r\ny",1\r\n"\n",2\n', "", "\r\n", "\n\n\n", "長い行" * 40 + "\r\n" + "①\r\n" * 30,
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
@pytest.mark.parametrize("text", TEXTS)
def test_lines_are_the_same_whatever_the_chunk_size(text: str, chunk: int, monkeypatch) -> None:
    monkeypatch.setattr(layout, "LINE_CHUNK", chunk)
    assert list(physical_lines(text)) == reference_lines(text)


def test_line_numbers_across_chunk_boundaries(monkeypatch) -> None:
    monkeypatch.setattr(layout, "LINE_CHUNK", 5)
    text = "No.,売上,備考\r\n" + "".join(f'{n % 2 + 1},{n},"メモ\r\n{n}"\r\n' for n in range(50)) + "1,x,\r\n"
    rows, errors = parse_all(text, columns=COLUMNS, member_key="no", members=MEMBERS_BY_NO)
    assert [(row.line, row.values[1], row.note) for row in rows] == [(2 + 2 * n, float(n), f"メモ\r\n{n}")
                                                                     for n in range(50)]
    assert [(error.line, error.value) for error in errors] == [(102, "x")]
