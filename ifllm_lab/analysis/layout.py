"""Text geometry without Qt: the boxes of one response view, and the one hit test.

:class:`LayoutBoxes`
    The boxes of one view (RESPONSE or PROMPT, PARAGRAPHs, LINEs, WORDs) in global screen
    px at one scroll state: what the response view measures and writes as rows of the
    ``layout`` stream (see :mod:`ifllm_lab.ui.response_view` for what each box is).
:class:`TextHitTest`
    Which paragraph, line, word and caret position of laid-out text a point is on. The
    response view asks it for the participant's mouse while recording (one point at a
    time, :meth:`TextHitTest.at`); :class:`~ifllm_lab.analysis.aoi.LayoutTimeline` asks it
    for whole gaze streams afterwards (vectorised, :meth:`TextHitTest.locate`). Both give
    the same answer for the same boxes.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from ..session.schema import LayoutLevel

__all__ = ["LayoutBoxes", "TextHitTest"]

_KEY_P = 1.0e7  # px: separates groups (lines) in the line (fragment, knot) search keys
_OFF_P = 1.0e6  # px: keeps content coordinates positive inside the keys


@dataclass
class LayoutBoxes:
    """The boxes of one view, one row per box, in global screen px at one scroll state.

    Rows come in the order RESPONSE (or PROMPT), PARAGRAPHs, LINEs, WORDs (the prompt
    view: PROMPT, WORDs), each level in reading order. ``paragraph`` is the paragraph
    index of each row (its own for PARAGRAPH rows, -1 for RESPONSE / PROMPT)."""

    response: int
    level: np.ndarray  # uint8 LayoutLevel codes
    index: np.ndarray  # int32
    paragraph: np.ndarray  # int32
    x0: np.ndarray  # float64, global screen px
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    char_start: np.ndarray  # int32, str indices into the view's text()
    char_end: np.ndarray
    text: list  # the word for WORD rows as shown, "" for the others
    scroll_x: float
    scroll_y: float
    style: np.ndarray | None = None  # uint16 markdown style bits (analysis.markdown); None: plain text

    def __len__(self) -> int:
        return len(self.level)

    def at(self, level: LayoutLevel | int) -> "LayoutBoxes":
        """The rows of one level."""
        keep = np.flatnonzero(self.level == int(level))
        return LayoutBoxes(
            self.response, self.level[keep], self.index[keep], self.paragraph[keep], self.x0[keep], self.y0[keep],
            self.x1[keep], self.y1[keep], self.char_start[keep], self.char_end[keep],
            [self.text[i] for i in keep.tolist()], self.scroll_x, self.scroll_y,
            None if self.style is None else self.style[keep],
        )

    def rows(self, *, t: float, snapshot: int, turn: int) -> dict:
        """Columns of the ``layout`` stream for these boxes."""
        n = len(self)
        return {
            "t": np.full(n, t, dtype=np.float64),
            "snapshot": np.full(n, snapshot, dtype=np.int32),
            "turn": np.full(n, turn, dtype=np.int32),
            "response": np.full(n, self.response, dtype=np.int8),
            "level": self.level,
            "index": self.index,
            "x0": self.x0.astype(np.float32),
            "y0": self.y0.astype(np.float32),
            "x1": self.x1.astype(np.float32),
            "y1": self.y1.astype(np.float32),
            "scroll_y": np.full(n, self.scroll_y, dtype=np.float32),
            "char_start": self.char_start,
            "char_end": self.char_end,
            "text": self.text,
            "style": np.zeros(n, np.uint16) if self.style is None else self.style.astype(np.uint16),
        }


def _ints(a) -> np.ndarray:
    return np.asarray(a, dtype=np.int64).reshape(-1)


def _floats(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(-1)


class TextHitTest:
    """Which paragraph, line, word and caret position of laid-out text a point is on.

    Holds the lines and word fragments of any number of texts, each (a *group*: one view
    in one snapshot, one reconstructed answer) in its own content frame (px, y down).
    Points are given in the frame of their group. The rules:

    * **Lines.** A line's *band* ``y0 <= y < y1`` spans the line and its share of the line
      spacing; the bands of a paragraph tile it, so a point between two lines goes to the
      nearer one. A point is on a line when it is inside the line's band and inside its
      hit column ``x0 <= x < x1`` (recorded text: its paragraph's column; reconstructed
      text: the whole box). It then has that line's paragraph and line index. The band
      tried is the last one of the group (top to bottom) that starts at or above the point.
    * **Words.** A point on a line is on a word only when it is inside one of the word's
      fragments on that line, ``x0 <= x < x1``: the space between two words belongs to
      neither. (A word broken across lines has one fragment per line.)
    * **Caret.** ``char`` is the nearest character boundary on the line (the caret a click
      there would give): x is interpolated between the line's *knots* (x, character
      boundary), then rounded; points left of the first knot give its character, points
      right of the last knot the last one's; without knots, the line's first character.

    Args (arrays of one length per kind; ``*_line`` are positions in the line arrays):
        line_group, line_y0, line_y1, line_x0, line_x1: the lines' groups, bands and hit
            columns.
        line_paragraph, line_index, line_char_start, line_char_end: what a point on the
            line is on: paragraph and line indices, the line's characters (carets are
            clipped to them).
        frag_line, frag_x0, frag_x1, frag_word: the word fragments: line, x range, word.
        knot_line, knot_x, knot_char: the knots of the caret interpolation.
    """

    def __init__(self, *, line_group, line_y0, line_y1, line_x0, line_x1, line_paragraph, line_index,
                 line_char_start, line_char_end, frag_line, frag_x0, frag_x1, frag_word,
                 knot_line=(), knot_x=(), knot_char=()):
        group, y0, y1 = _ints(line_group), _floats(line_y0), _floats(line_y1)
        n = len(group)
        # lines by (group, y0); fragments and knots follow their lines
        order = np.lexsort((y0, group))
        inv = np.empty(n, np.int64)
        inv[order] = np.arange(n)
        self.group = group[order]
        self.y0, self.y1 = y0[order], y1[order]
        self.x0, self.x1 = _floats(line_x0)[order], _floats(line_x1)[order]
        self.paragraph = _ints(line_paragraph)[order]
        self.index = _ints(line_index)[order]
        self.char_start = _ints(line_char_start)[order]
        self.char_end = _ints(line_char_end)[order]
        f_line = inv[_ints(frag_line)]
        f_x0, f_x1, f_word = _floats(frag_x0), _floats(frag_x1), _ints(frag_word)
        o = np.lexsort((f_x0, f_line))
        self.frag_line, self.frag_x0, self.frag_x1, self.frag_word = f_line[o], f_x0[o], f_x1[o], f_word[o]
        k_line = inv[_ints(knot_line)]
        k_x, k_char = _floats(knot_x), _floats(knot_char)
        o = np.lexsort((k_char, k_x, k_line))
        self.knot_line, self.knot_x, self.knot_char = k_line[o], k_x[o], k_char[o]
        # search keys: one sorted array per kind, the group (line) as the major part
        self._line_key = self.group * _KEY_P + (self.y0 + _OFF_P)
        self._frag_key = self.frag_line * _KEY_P + (self.frag_x0 + _OFF_P)
        self._knot_key = self.knot_line * _KEY_P + (self.knot_x + _OFF_P)
        self._knot_first = np.searchsorted(self.knot_line, np.arange(n), "left")
        self._knot_last = np.searchsorted(self.knot_line, np.arange(n), "right") - 1
        # the same tables as plain lists for one point at a time: bisect on a list is far
        # cheaper than a numpy call per point
        self._l_key, self._l_group = self._line_key.tolist(), self.group.tolist()
        self._l_y0, self._l_y1 = self.y0.tolist(), self.y1.tolist()
        self._l_x0, self._l_x1, self._l_par = self.x0.tolist(), self.x1.tolist(), self.paragraph.tolist()
        self._f_key, self._f_line = self._frag_key.tolist(), self.frag_line.tolist()
        self._f_x0, self._f_x1, self._f_word = self.frag_x0.tolist(), self.frag_x1.tolist(), self.frag_word.tolist()

    def __len__(self) -> int:
        """Number of lines."""
        return len(self.group)

    # -- one point ----------------------------------------------------------------------------
    def at(self, x: float, y: float, group: int = 0) -> tuple[int, int]:
        """``(paragraph, word)`` at content point ``(x, y)`` of ``group``; -1 for none.

        The rules of :meth:`locate` for a single point, in about a microsecond (the live
        mouse asks for every move)."""
        i = bisect.bisect_right(self._l_key, group * _KEY_P + (y + _OFF_P)) - 1
        if i >= 0 and self._l_y0[i] > y:  # a key rounded onto the next line's start
            i -= 1
        if i >= 0 and self._l_group[i] == group and y < self._l_y1[i] and not self._l_x0[i] <= x < self._l_x1[i]:
            # lines side by side (the cells of a table row): the one whose column holds x
            k = i - 1
            while k >= 0 and i - k <= 64 and self._l_group[k] == group and self._l_y1[k] > y:
                if self._l_y0[k] <= y and self._l_x0[k] <= x < self._l_x1[k]:
                    i = k
                    break
                k -= 1
        if i < 0 or self._l_group[i] != group or not y < self._l_y1[i] or not self._l_x0[i] <= x < self._l_x1[i]:
            return -1, -1
        p = self._l_par[i]
        j = bisect.bisect_right(self._f_key, i * _KEY_P + (x + _OFF_P)) - 1
        if j >= 0 and self._f_x0[j] > x:
            j -= 1
        if j >= 0 and self._f_line[j] == i and self._f_x0[j] <= x < self._f_x1[j]:
            return p, self._f_word[j]
        return p, -1

    # -- many points --------------------------------------------------------------------------
    def locate(self, group, x, y, *, chars: bool = True) -> dict[str, np.ndarray]:
        """Many points at once: ``group`` (int array, or one int for all), content ``x``,
        ``y`` (px). Returns int arrays, -1 for none: ``paragraph``, ``line`` (the line
        index), ``word``, ``char`` (the caret; -1 everywhere unless ``chars``) and ``row``
        (the line's position in this table)."""
        x = _floats(x)
        y = _floats(y)
        g = np.broadcast_to(_ints(group) if np.ndim(group) else np.int64(group), x.shape)
        out = {k: np.full(len(x), -1, np.int64) for k in ("paragraph", "line", "word", "char", "row")}
        if not len(self.group) or not len(x):
            return out
        li = np.searchsorted(self._line_key, g * _KEY_P + (y + _OFF_P), "right") - 1
        li -= (li >= 0) & (self.y0[np.clip(li, 0, None)] > y)  # a key rounded onto the next line's start
        lc = np.clip(li, 0, len(self.group) - 1)
        on = (li >= 0) & (self.group[lc] == g) & (y < self.y1[lc]) & (x >= self.x0[lc]) & (x < self.x1[lc])
        # lines side by side (the cells of a table row): the one before whose column holds x
        miss = np.flatnonzero((li >= 0) & ~on & (self.group[lc] == g) & (y < self.y1[lc]))
        for back in range(1, 65):
            if not len(miss):
                break
            k = lc[miss] - back
            ok = k >= 0
            kc = np.clip(k, 0, None)
            same = ok & (self.group[kc] == g[miss]) & (self.y1[kc] > y[miss])
            hit = same & (self.y0[kc] <= y[miss]) & (x[miss] >= self.x0[kc]) & (x[miss] < self.x1[kc])
            lc[miss[hit]] = kc[hit]
            on[miss[hit]] = True
            miss = miss[same & ~hit]
        sel = np.flatnonzero(on)
        li, xs = lc[sel], x[sel]
        out["row"][sel] = li
        out["line"][sel] = self.index[li]
        out["paragraph"][sel] = self.paragraph[li]
        if chars:
            out["char"][sel] = self.chars(li, xs)
        if len(self.frag_line):
            fi = np.searchsorted(self._frag_key, li * _KEY_P + (xs + _OFF_P), "right") - 1
            fi -= (fi >= 0) & (self.frag_x0[np.clip(fi, 0, None)] > xs)
            fc = np.clip(fi, 0, len(self.frag_line) - 1)
            hit = (fi >= 0) & (self.frag_line[fc] == li) & (xs >= self.frag_x0[fc]) & (xs < self.frag_x1[fc])
            out["word"][sel[hit]] = self.frag_word[fc[hit]]
        return out

    def chars(self, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The caret (nearest character boundary) at content x ``x`` on the lines at
        positions ``rows`` of this table."""
        rows = _ints(rows)
        x = _floats(x)
        out = self.char_start[rows].astype(np.float64)
        if not len(self.knot_line):
            return out.astype(np.int64)
        ki = np.searchsorted(self._knot_key, rows * _KEY_P + (x + _OFF_P), "right") - 1
        first, last = self._knot_first[rows], self._knot_last[rows]
        has = last >= first
        before = has & (ki < first)
        after = has & (ki >= last)
        mid = has & ~before & ~after
        out[before] = self.knot_char[first[before]]
        out[after] = self.knot_char[last[after]]
        k = ki[mid]
        x0, x1 = self.knot_x[k], self.knot_x[k + 1]
        c0, c1 = self.knot_char[k], self.knot_char[k + 1]
        frac = np.where(x1 > x0, (x[mid] - x0) / np.where(x1 > x0, x1 - x0, 1.0), 0.0)
        out[mid] = c0 + frac * (c1 - c0)
        return np.clip(np.floor(out + 0.5), self.char_start[rows], self.char_end[rows]).astype(np.int64)
