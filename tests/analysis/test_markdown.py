"""The Markdown parser of answers (plain Python): what is shown, its style, and the raw
character behind every shown one, on a corpus of what LLM answers contain."""
from __future__ import annotations

import pytest

from ifllm_lab.analysis import markdown as md


def shown(raw, partial=False):
    out = []
    for b in md.parse(raw, partial=partial):
        for r in b.runs:
            # every shown character comes from one raw character (a soft break's space from the break)
            assert len(r.text) == len(r.raw)
            assert all(raw[i] == c or (c == " " and raw[i] in "\r\n") for c, i in zip(r.text, r.raw)), (r.text, raw)
        out.append(b)
    return out


def runs(b):
    return [(r.text, r.style) for r in b.runs]


def test_blocks_headings_paragraphs_lists_code_tables_quotes_rules():
    raw = ("# Title\n\nSome *text*\nthat wraps.\n\nSetext\n===\n\n1. one\n2. two\n   - nested **bold\n     across** lines\n"
           "3. three\n\n```py\nx = 1  # `not code`\n```\n\n| a | b |\n|:--|--:|\n| 1 | x \\| y |\n\n> quoted\n\n---\n")
    blocks = shown(raw)
    kinds = [(b.kind, b.level) for b in blocks]
    assert kinds == [("heading", 1), ("paragraph", 0), ("heading", 1), ("item", 0), ("item", 0), ("item", 1),
                     ("item", 0), ("code", 0), ("table", 0), ("paragraph", 0), ("rule", 0)]
    assert runs(blocks[1]) == [("Some ", 0), ("text", md.ITALIC), (" that wraps.", 0)]
    assert [b.number for b in blocks[3:5]] == [1, 2] and blocks[3].ordered and not blocks[5].ordered
    assert runs(blocks[5]) == [("nested ", 0), ("bold across", md.BOLD), (" lines", 0)]
    assert runs(blocks[7]) == [("x = 1  # `not code`", 0)]
    t = blocks[8]
    assert [["".join(r.text for r in c) for c in row] for row in t.rows] == [["a", "b"], ["1", "x | y"]]
    assert t.align == ["left", "right"]
    assert blocks[9].quote == 1 and runs(blocks[9]) == [("quoted", 0)]


@pytest.mark.parametrize("raw, expect", [
    ("**a** and __b__", [("a", md.BOLD), (" and ", 0), ("b", md.BOLD)]),
    ("***both***", [("both", md.BOLD | md.ITALIC)]),
    ("snake_case_name stays", [("snake_case_name stays", 0)]),
    ("2 * 3 * 4", [("2 * 3 * 4", 0)]),
    ("use `a*b*c` here", [("use ", 0), ("a*b*c", md.CODE), (" here", 0)]),
    ("a [link](http://x.org/a_(b)) end", [("a ", 0), ("link", md.LINK), (" end", 0)]),
    ("![alt text](img.png)", [("alt text", md.LINK)]),
    ("<https://example.org>", [("https://example.org", md.LINK)]),
    ("\\*not em\\*", [("*not em*", 0)]),
    ("~~gone~~ 😀 مرحبا", [("gone", md.STRIKE), (" 😀 مرحبا", 0)]),
    ("unclosed **bold", [("unclosed **bold", 0)]),
])
def test_inline(raw, expect):
    (b,) = shown(raw)
    assert runs(b) == expect


def test_streaming_hides_markers_that_have_no_closer_yet():
    # an unfinished "**" never bolds the rest, and is not shown to vanish a moment later
    assert runs(shown("Some **bold te", partial=True)[0]) == [("Some bold te", 0)]
    assert runs(shown("Some **bold text**", partial=True)[0]) == [("Some ", 0), ("bold text", md.BOLD)]
    assert runs(shown("Some **bold text*", partial=True)[0]) == [("Some bold text", 0)]
    assert runs(shown("Use `co", partial=True)[0]) == [("Use co", 0)]
    assert runs(shown("See [the docs](http://exa", partial=True)[0]) == [("See ", 0), ("the docs", md.LINK)]
    # only the last block is still streaming: an earlier one is complete
    blocks = shown("An *open\n\nnext **par", partial=True)
    assert runs(blocks[0]) == [("An *open", 0)] and runs(blocks[1]) == [("next par", 0)]
    # complete: the marker is shown as written
    assert runs(shown("Some **bold te")[0]) == [("Some **bold te", 0)]


def test_every_prefix_of_an_answer_parses():
    raw = ("## Steps\n\n1. **Rinse** the rice\n2. Boil `2:1` water\n   - salt\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
           "```\ncode\n```\nDone.")
    for n in range(len(raw) + 1):
        shown(raw[:n], partial=True)
        shown(raw[:n])
