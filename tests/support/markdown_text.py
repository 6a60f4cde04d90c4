"""An oracle for Markdown word boxes, independent of the app's parser: the characters
Markdown shows from a raw slice of an answer."""
from __future__ import annotations

import re


def strip_markup(raw: str) -> str:
    """The characters Markdown shows from a raw slice (independent of the parser): escapes
    resolved, link destinations, emphasis, code and strike markers, brackets and list /
    heading / quote markers removed."""
    s = re.sub(r"\]\([^)\s]*(\([^)]*\))?[^)\s]*\)", "", raw)  # "](destination)"
    s = re.sub(r"\\([!-/:-@\[-`{-~])", lambda m: chr(0xE000 + ord(m.group(1))), s)  # escapes, kept below
    if re.fullmatch(r"[*_~]+", s):
        return s  # a marker run standing alone is shown as written
    s = re.sub(r"(?<!\w)[*_~`\[\]<>]+|[*_~`\[\]<>]+(?!\w)|(?<=\w)\*+(?=\w)|`", "", s)
    s = re.sub(r"!(?=\S)", "", s)
    return "".join(chr(ord(c) - 0xE000) if 0xE000 <= ord(c) < 0xE080 else c for c in s)


def shown_word(raw: str, a: int, b: int) -> str:
    """What a word box with characters ``[a, b)`` of ``raw`` should show (a word that starts
    with an escaped character starts after its backslash)."""
    escaped = a > 0 and raw[a - 1] == "\\"
    return strip_markup(raw[a - escaped:b])
