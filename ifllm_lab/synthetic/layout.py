"""Recorded-layout rows of a monospace text view, as the response view writes them, for AOI
tests and benchmarks: every character ``CHAR_W`` px wide, every line band ``LINE_H`` px."""
from __future__ import annotations

import re

import numpy as np

from ..analysis.aoi import paragraph_spans, word_spans
from ..session import SessionClock, SessionMeta, SessionWriter
from ..session.schema import LayoutLevel

CHAR_W = 10.0  # px per character
LINE_H = 30.0  # px per line band
PAD = 8.0  # px between the view's left edge and the text column

SAMPLE_TEXT = ("Plants turn light into sugar. Leaves hold chlorophyll which absorbs red and blue light.\n"
               "Water comes up from the roots and carbon dioxide comes in through small pores.")


def monospace_layout_rows(text: str, *, t: float, snapshot: int, turn: int, response: int, left: float,
                          top: float, scroll_y: float, cols: int) -> dict:
    """Layout rows (columns of the ``layout`` stream, as lists) of ``text`` wrapped greedily
    at ``cols`` characters (one line per ``"\\n"`` block at least), in screen px at scroll
    state ``scroll_y`` (the document's top is ``top - scroll_y`` on screen; the view's
    left edge is ``left``): one response box, then paragraph, line and word boxes."""
    doc_top = top - scroll_y
    rows = {k: [] for k in ("level", "index", "x0", "y0", "x1", "y1", "char_start", "char_end", "text")}

    def add(level, index, x0, y0, x1, y1, cs, ce, txt=""):
        for k, v in zip(rows, (int(level), index, x0, y0, x1, y1, cs, ce, txt)):
            rows[k].append(v)

    # lines: greedy wrap per paragraph
    lines = []  # (start, end) char ranges
    for a, b in paragraph_spans(text).tolist():
        start = a
        col = 0
        for m in re.finditer(r"\S+\s*", text[a:b]):
            w0, w1 = a + m.start(), a + m.end()
            word_len = len(m.group().rstrip())
            if col and col + word_len > cols:
                lines.append((start, w0))
                start, col = w0, 0
            col += w1 - w0
        lines.append((start, b))
    n_lines = len(lines)
    add(LayoutLevel.RESPONSE, 0, left, doc_top, left + PAD * 2 + cols * CHAR_W, doc_top + n_lines * LINE_H + 2 * PAD,
        0, len(text))
    line_top = [doc_top + PAD + i * LINE_H for i in range(n_lines)]
    for p, (a, b) in enumerate(paragraph_spans(text).tolist()):
        ls = [i for i, (s, _) in enumerate(lines) if a <= s < b]
        add(LayoutLevel.PARAGRAPH, p, left + PAD, line_top[ls[0]], left + PAD + cols * CHAR_W,
            line_top[ls[-1]] + LINE_H, a, b)
    for i, (s, e) in enumerate(lines):
        vis = len(text[s:e].rstrip())
        add(LayoutLevel.LINE, i, left + PAD, line_top[i], left + PAD + vis * CHAR_W, line_top[i] + LINE_H, s,
            s + vis)
    for w, (a, b) in enumerate(word_spans(text).tolist()):
        i = next(i for i, (s, e) in enumerate(lines) if s <= a < e)
        s = lines[i][0]
        add(LayoutLevel.WORD, w, left + PAD + (a - s) * CHAR_W, line_top[i], left + PAD + (b - s) * CHAR_W,
            line_top[i] + LINE_H, a, b, text[a:b])
    n = len(rows["level"])
    rows.update(t=[t] * n, snapshot=[snapshot] * n, turn=[turn] * n, response=[response] * n,
                scroll_y=[scroll_y] * n)
    return rows


def write_recorded_layout(path, text: str | None = None, *, snapshots: int = 600, every_s: float = 6.0,
                          cols: int = 40, snapshots_per_turn: int = 20) -> dict:
    """Write a session file with a long recorded layout: ``snapshots`` snapshots, one every
    ``every_s`` s, each of two side-by-side views (responses 1 and 2, 600 px apart, top
    at 200 px) showing a growing prefix of ``text`` (default: :data:`SAMPLE_TEXT` six
    times over, one paragraph) wrapped at ``cols`` characters, a new turn every
    ``snapshots_per_turn`` snapshots; and scroll rows of view 1 every ``every_s / 2`` s
    alternating between 0 and 30 px. Returns ``{"file", "seconds", "snapshots",
    "layout_rows"}``."""
    text = " ".join(SAMPLE_TEXT.split() * 6) if text is None else text
    w = SessionWriter(path, SessionMeta(participant="synthetic-layout"), clock=SessionClock(), flush_interval=0.2)
    n_rows = 0
    try:
        for s in range(snapshots):
            parts = [monospace_layout_rows(text[: 80 + (s * 7) % len(text)], t=every_s * s, snapshot=s,
                                           turn=s // snapshots_per_turn, response=r, left=100 + 600 * (r - 1),
                                           top=200, scroll_y=0, cols=cols)
                     for r in (1, 2)]
            rows = {k: parts[0][k] + parts[1][k] for k in parts[0]}
            w.put_rows("layout", rows)
            n_rows += len(rows["level"])
        ts = np.arange(2 * snapshots) * (every_s / 2)
        w.put_rows("scroll", {"t": ts, "turn": (ts // (every_s * snapshots_per_turn)).astype(int),
                              "view": np.ones(len(ts), int), "x": np.zeros(len(ts)),
                              "y": np.tile([0.0, 30.0], snapshots), "max_y": np.full(len(ts), 400.0)})
    finally:
        w.close()
    return {"file": str(path), "seconds": snapshots * every_s, "snapshots": snapshots, "layout_rows": n_rows}
