"""Areas of interest over the rendered text: where every response, paragraph, line and word
was on screen at every moment of a session, and which of them a gaze or mouse point hits.

Plain numpy, no Qt. One class, :class:`LayoutTimeline`, answers both questions for both
kinds of session:

* **recorded sessions** (``meta.source == "ifllm-lab"``) carry the exact geometry: the
  ``layout`` stream (snapshots of every box in global screen px at the scroll state
  ``scroll_y`` of its view) and the ``scroll`` stream (every scroll offset), see
  :mod:`ifllm_lab.ui.response_view`. :meth:`LayoutTimeline.from_reader` reads them.
* **imported sessions** carry no geometry of their own; the importer of their source
  registers how to rebuild it from what that source recorded (:mod:`.sources`), and
  :meth:`LayoutTimeline.reconstruct_imported` runs it. Such a reconstruction hands its
  texts over as :class:`TextGeometry` (:meth:`LayoutTimeline.from_texts`).

:meth:`LayoutTimeline.for_session` picks the right one.

Frames and the model
--------------------
The timeline is a set of *groups*: one rendered text (one response, or the prompt) with a
fixed layout in its own *content frame* (px), active for ``t0 <= t < t1``. A group has a
series of *states*; state ``i``, in effect from ``st_t[i]``, says how the content frame
lies on screen (``screen = content + (dx, dy)``) and which screen rectangle of it is
visible (the viewport; points outside it hit nothing of that group).

* Recorded: a group is one (snapshot, view); the content frame is the snapshot's screen
  frame; a ``scroll`` row of the same turn and view at time ``t`` gives
  ``dy = -(scroll_y(t) - scroll_y_snapshot)``; the viewport is fixed on screen (the
  RESPONSE box's top at scroll 0 and ``box height - max_y`` tall; the whole document
  when ``max_y == 0``), exactly as the response view's docstring prescribes.
* Reconstructed: a group is one (turn, response) text, in the frame its reconstruction
  chose.

Hit testing (:meth:`LayoutTimeline.map_points`) is :class:`~ifllm_lab.analysis.layout.TextHitTest`,
the one the response view uses while recording: LINE bands tile each paragraph (a point
between two lines goes to the nearer one), a point inside a band and inside the line's hit
column (recorded: its paragraph's column) gets that line and paragraph, and a WORD only
when it is inside the word's box (the space between words belongs to no word). ``char``
is the nearest character *boundary* on the line (the caret a click there would give):
points right of a line's end give the line's end, points left of its start its first
character.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

import numpy as np

from ..session.schema import LayoutLevel
from . import sources
from .layout import TextHitTest

__all__ = ["BOX_DTYPE", "LayoutTimeline", "PROMPT", "TextGeometry", "word_spans", "paragraph_spans", "word_of_char"]

PROMPT = -1  #: response code of the prompt view (as in the ``layout`` stream)

#: Fields of the structured arrays :meth:`LayoutTimeline.boxes_at` returns.
BOX_DTYPE = np.dtype([
    ("turn", "i4"), ("response", "i1"), ("level", "u1"), ("index", "i4"), ("paragraph", "i4"), ("line", "i4"),
    ("x0", "f8"), ("y0", "f8"), ("x1", "f8"), ("y1", "f8"), ("char_start", "i4"), ("char_end", "i4"),
    ("text", object), ("visible", "?"), ("style", "u2"),
])

_WORD = re.compile(r"\S+")
_KEY_T = 1.0e6  # s: separates groups in the state key (spans are far shorter)


# ----------------------------------------------------------------------------------------
# text helpers
# ----------------------------------------------------------------------------------------
def word_spans(text: str) -> np.ndarray:
    """``(n, 2)`` int array: ``[start, end)`` of every word (maximal run of non-whitespace
    characters, the words of ``str.split()``), Python ``str`` indices."""
    spans = [m.span() for m in _WORD.finditer(text)]
    return np.array(spans, dtype=np.int64).reshape(-1, 2)


def paragraph_spans(text: str) -> np.ndarray:
    """``(n, 2)`` int array: ``[start, end)`` of every paragraph: the text between line
    breaks (``"\\n"``, ``"\\r\\n"``, ``"\\r"``) that holds at least one word."""
    out = []
    start = 0
    for m in re.finditer(r"\r\n|\r|\n", text + "\n"):
        a, b = start, min(m.start(), len(text))
        if text[a:b].strip():
            out.append((a, b))
        start = m.end()
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def word_of_char(spans: np.ndarray, char: np.ndarray, *, caret: bool = True) -> np.ndarray:
    """Word index holding each character index (-1 none), given :func:`word_spans`.

    With ``caret`` (the default) ``char`` is a caret position, as the IFLLM release's
    ``char_index`` and :meth:`LayoutTimeline.map_points`' ``char`` are: a caret right after
    a word (on the space or line end that follows it) counts for that word."""
    char = np.asarray(char, dtype=np.int64)
    out = np.full(char.shape, -1, dtype=np.int64)
    if len(spans) == 0:
        return out
    starts, ends = spans[:, 0], spans[:, 1]
    i = np.searchsorted(starts, char, "right") - 1
    ok = (i >= 0) & (char >= 0)
    ic = np.clip(i, 0, len(spans) - 1)
    inside = ok & (char < ends[ic])
    if caret:
        inside |= ok & (char == ends[ic])
    out[inside] = ic[inside]
    return out


# ----------------------------------------------------------------------------------------
# one text's geometry, and all of them as flat tables
# ----------------------------------------------------------------------------------------
@dataclass
class TextGeometry:
    """One rendered text (one response, or the prompt) while it was on screen, in its own
    content frame (px): what :meth:`LayoutTimeline.from_texts` builds a timeline from.

    It is active for ``t0 <= t < t1`` (s, session clock).

    * States ``s_*``: from ``s_t[i]`` on (``s_t[0] == t0``), ``screen = content + (s_dx[i],
      s_dy[i])``, and the visible part of its view is the screen rectangle ``s_vx0 ..
      s_vx1`` x ``s_vy0 .. s_vy1`` (NaN: unbounded).
    * Boxes ``b_*`` (content frame): LayoutLevel code, index, paragraph, line, x0, y0, x1,
      y1, characters ``[b_cs, b_ce)`` and text, as :data:`BOX_DTYPE` returns them.
    * Lines ``l_*`` (the LINE boxes a point can be on): band ``l_y0 .. l_y1``, hit column
      ``l_hx0 .. l_hx1``, characters, paragraph and line index; see
      :class:`~ifllm_lab.analysis.layout.TextHitTest` for what each means to a hit.
    * Knots ``k_*`` (x, character boundary) and word fragments ``f_*`` (x range, word) of
      the lines; ``k_line`` and ``f_line`` are positions in the ``l_*`` arrays.
    """

    turn: int
    response: int
    t0: float
    t1: float
    s_t: np.ndarray
    s_dx: np.ndarray
    s_dy: np.ndarray
    s_vx0: np.ndarray
    s_vy0: np.ndarray
    s_vx1: np.ndarray
    s_vy1: np.ndarray
    b_level: np.ndarray
    b_index: np.ndarray
    b_par: np.ndarray
    b_line: np.ndarray
    b_x0: np.ndarray
    b_y0: np.ndarray
    b_x1: np.ndarray
    b_y1: np.ndarray
    b_cs: np.ndarray
    b_ce: np.ndarray
    b_text: list
    l_y0: np.ndarray
    l_y1: np.ndarray
    l_hx0: np.ndarray
    l_hx1: np.ndarray
    l_cs: np.ndarray
    l_ce: np.ndarray
    l_par: np.ndarray
    l_index: np.ndarray
    k_line: np.ndarray
    k_x: np.ndarray
    k_char: np.ndarray
    f_line: np.ndarray
    f_x0: np.ndarray
    f_x1: np.ndarray
    f_word: np.ndarray


@dataclass
class _Tables:
    """All groups, states and boxes as flat arrays, and the hit test of their lines."""

    # groups
    g_turn: np.ndarray
    g_resp: np.ndarray
    g_t0: np.ndarray
    g_t1: np.ndarray
    # states, sorted by (group, t); every group has one at its t0
    s_group: np.ndarray
    s_t: np.ndarray
    s_dx: np.ndarray
    s_dy: np.ndarray
    s_vx0: np.ndarray  # viewport, screen px (NaN = unbounded)
    s_vy0: np.ndarray
    s_vx1: np.ndarray
    s_vy1: np.ndarray
    # boxes (content frame)
    b_group: np.ndarray
    b_level: np.ndarray
    b_index: np.ndarray
    b_par: np.ndarray
    b_line: np.ndarray
    b_x0: np.ndarray
    b_y0: np.ndarray
    b_x1: np.ndarray
    b_y1: np.ndarray
    b_cs: np.ndarray
    b_ce: np.ndarray
    b_text: np.ndarray  # object
    # lines, knots and word fragments (line groups are the group indices above)
    hits: TextHitTest
    b_style: np.ndarray | None = None  # Markdown style bits of each box (None: plain text)

    @classmethod
    def empty(cls) -> "_Tables":
        f = np.zeros(0)
        i = np.zeros(0, np.int64)
        return cls(i, i, f, f, i, f, f, f, f, f, f, f, i, i, i, i, i, f, f, f, f, i, i, np.zeros(0, object),
                   _hit_test(i, f, f, f, f, i, i, i, i, i, f, f, i, i, f, f))


def _hit_test(l_group, l_y0, l_y1, l_hx0, l_hx1, l_par, l_index, l_cs, l_ce,
              k_line, k_x, k_char, f_line, f_x0, f_x1, f_word) -> TextHitTest:
    return TextHitTest(line_group=l_group, line_y0=l_y0, line_y1=l_y1, line_x0=l_hx0, line_x1=l_hx1,
                       line_paragraph=l_par, line_index=l_index, line_char_start=l_cs, line_char_end=l_ce,
                       frag_line=f_line, frag_x0=f_x0, frag_x1=f_x1, frag_word=f_word,
                       knot_line=k_line, knot_x=k_x, knot_char=k_char)


def _concat_tables(texts: list[TextGeometry]) -> _Tables:
    """Tables from per-text geometry (text-local line references are re-based)."""
    if not texts:
        return _Tables.empty()
    names = [f.name for f in fields(TextGeometry)]
    cols: dict[str, list] = {k: [] for k in names}
    groups: dict[str, list] = {k: [] for k in ("s_group", "b_group", "l_group")}
    n_lines = 0
    for g, p in enumerate(texts):
        for k in names:
            v = getattr(p, k)
            cols[k].append([v] if k in ("turn", "response", "t0", "t1") else v)
        groups["s_group"].append(np.full(len(p.s_t), g))
        groups["b_group"].append(np.full(len(p.b_level), g))
        groups["l_group"].append(np.full(len(p.l_y0), g))
        cols["k_line"][-1] = np.asarray(p.k_line, np.int64) + n_lines
        cols["f_line"][-1] = np.asarray(p.f_line, np.int64) + n_lines
        n_lines += len(p.l_y0)
    ints = {"turn", "response", "b_level", "b_index", "b_par", "b_line", "b_cs", "b_ce", "l_cs", "l_ce", "l_par",
            "l_index", "k_line", "f_line", "f_word"}

    def cat(k: str) -> np.ndarray:
        dtype = object if k == "b_text" else np.int64 if k in ints else np.float64
        return np.concatenate([np.asarray(a, dtype=dtype) for a in cols[k]])

    c = {k: cat(k) for k in names}
    gr = {k: np.concatenate(v).astype(np.int64) for k, v in groups.items()}
    tb = _Tables(
        g_turn=c["turn"], g_resp=c["response"], g_t0=c["t0"], g_t1=c["t1"],
        s_group=gr["s_group"], s_t=c["s_t"], s_dx=c["s_dx"], s_dy=c["s_dy"],
        s_vx0=c["s_vx0"], s_vy0=c["s_vy0"], s_vx1=c["s_vx1"], s_vy1=c["s_vy1"],
        b_group=gr["b_group"], b_level=c["b_level"], b_index=c["b_index"], b_par=c["b_par"], b_line=c["b_line"],
        b_x0=c["b_x0"], b_y0=c["b_y0"], b_x1=c["b_x1"], b_y1=c["b_y1"], b_cs=c["b_cs"], b_ce=c["b_ce"],
        b_text=c["b_text"],
        hits=_hit_test(gr["l_group"], c["l_y0"], c["l_y1"], c["l_hx0"], c["l_hx1"], c["l_par"], c["l_index"],
                       c["l_cs"], c["l_ce"], c["k_line"], c["k_x"], c["k_char"], c["f_line"], c["f_x0"],
                       c["f_x1"], c["f_word"]),
    )
    return _sorted_states(tb)


def _sorted_states(tb: _Tables) -> _Tables:
    """Sort states by (group, t) (the hit test keeps its own order)."""
    o = np.lexsort((tb.s_t, tb.s_group))
    for k in ("s_group", "s_t", "s_dx", "s_dy", "s_vx0", "s_vy0", "s_vx1", "s_vy1"):
        setattr(tb, k, getattr(tb, k)[o])
    return tb


# ----------------------------------------------------------------------------------------
# the timeline
# ----------------------------------------------------------------------------------------
class LayoutTimeline:
    """Text geometry of a session over time; see the module docstring.

    Attributes:
        source: ``"layout"`` (recorded geometry) or ``"reconstructed"`` (imported session).
        fit_report: for reconstructed timelines, the fitted figures (font scale, wrap
            widths, line pitch, rows used, inlier rate) and notes; empty otherwise.
    """

    def __init__(self, tables: _Tables, source: str, fit_report: dict | None = None):
        self._tb = tables
        self.source = source
        self.fit_report = fit_report or {}
        self._prep()

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def for_session(cls, reader) -> "LayoutTimeline":
        """Recorded geometry when the session has a ``layout`` stream with rows, else the
        reconstruction its source registered (:meth:`reconstruct_imported`); ValueError
        when neither exists."""
        if "layout" in reader and len(reader["layout"]):
            return cls.from_reader(reader)
        if sources.source_of(reader) is not None or sources.is_foreign(reader):
            return cls.reconstruct_imported(reader)
        raise ValueError(f"{reader.path} has no text layout: no layout stream rows and not an imported session")

    @classmethod
    def from_reader(cls, reader) -> "LayoutTimeline":
        """The recorded ``layout`` + ``scroll`` streams of a session."""
        if "layout" not in reader:
            raise ValueError(f"{reader.path} has no layout stream")
        lay = reader["layout"].read()
        scroll = reader["scroll"].read() if "scroll" in reader and len(reader["scroll"]) else None
        return cls(_recorded_tables(lay, scroll), "layout")

    @classmethod
    def reconstruct_imported(cls, reader, **options) -> "LayoutTimeline":
        """Rebuild the layout of an imported session with the reconstruction its source
        registered (:func:`ifllm_lab.analysis.sources.register`); ``options`` go to it.
        ValueError when no reconstruction is registered for the session's source."""
        source = sources.source_of(reader)
        if source is None or source.reconstruct_layout is None:
            raise ValueError(f"{reader.path} has no recorded layout and no layout reconstruction is registered "
                             f"for its source {reader.meta.source!r}: {sources.missing_hint(reader)}")
        return source.reconstruct_layout(reader, **options)

    @classmethod
    def from_texts(cls, texts: list[TextGeometry], *, source: str = "reconstructed",
                   fit_report: dict | None = None) -> "LayoutTimeline":
        """A timeline of rendered texts given one by one (a reconstruction's result)."""
        return cls(_concat_tables(list(texts)), source, fit_report)

    # -- queries ------------------------------------------------------------------------------
    def turns(self) -> list[int]:
        """Turn indices that have text geometry."""
        return sorted({int(t) for t in self._tb.g_turn.tolist()})

    @property
    def responses(self) -> list[int]:
        """Response codes that occur (-1 = the prompt)."""
        return sorted({int(r) for r in self._tb.g_resp.tolist()})

    def span(self, turn: int, response: int) -> tuple[float, float]:
        """``(t0, t1)``: first and last moment a response of a turn had geometry (NaNs when never)."""
        m = (self._tb.g_turn == turn) & (self._tb.g_resp == response)
        if not m.any():
            return (math.nan, math.nan)
        return float(self._tb.g_t0[m].min()), float(self._tb.g_t1[m].max())

    def words(self, turn: int, response: int) -> np.ndarray:
        """The WORD boxes of one response of a turn in its latest geometry, one row per word
        (fragments of a word broken across lines merged into the first one's row), in the
        content frame; an empty array when the turn has no such response."""
        g = self._latest_group(turn, response)
        if g < 0:
            return np.zeros(0, BOX_DTYPE)
        rows = self._group_boxes(g, int(LayoutLevel.WORD))
        if not len(rows):
            return rows
        _, first = np.unique(rows["index"], return_index=True)
        return rows[np.sort(first)]

    def _latest_group(self, turn: int, response: int) -> int:
        tb = self._tb
        gs = np.flatnonzero((tb.g_turn == turn) & (tb.g_resp == response))
        return int(gs[np.argmax(tb.g_t0[gs])]) if len(gs) else -1

    def lines(self, turn: int, response: int) -> np.ndarray:
        """The LINE boxes of one response of a turn in its latest geometry (content frame),
        in reading order; empty when the turn has no such response."""
        g = self._latest_group(turn, response)
        if g < 0:
            return np.zeros(0, BOX_DTYPE)
        rows = self._group_boxes(g, int(LayoutLevel.LINE))
        return rows[np.argsort(rows["index"], kind="stable")]

    def lines_of_chars(self, turn: int, response: int, chars) -> np.ndarray:
        """LINE index holding each caret position ``chars`` of one response of a turn (its
        latest geometry), -1 where none (blank lines, out of range)."""
        chars = np.asarray(chars, dtype=np.int64)
        out = np.full(chars.shape, -1, np.int64)
        rows = self.lines(turn, response)
        if not len(rows):
            return out
        o = np.argsort(rows["char_start"], kind="stable")
        cs, ce, idx = rows["char_start"][o], rows["char_end"][o], rows["index"][o]
        i = np.searchsorted(cs, chars, "right") - 1
        ic = np.clip(i, 0, len(cs) - 1)
        ok = (i >= 0) & (chars <= ce[ic])
        out[ok] = idx[ic[ok]]
        return out

    def n_lines(self, turn: int, response: int) -> int:
        """Number of LINE boxes of one response of a turn (its latest geometry)."""
        return len(self.lines(turn, response))

    def n_words(self, turn: int, response: int) -> int:
        """Number of words of one response of a turn (from its latest geometry)."""
        return len(self.words(turn, response))

    def boxes_at(self, t: float, level: LayoutLevel | int | None = None) -> np.ndarray:
        """Every box on screen at time ``t`` (structured array, :data:`BOX_DTYPE`): screen px
        with the scroll state at ``t`` applied; ``visible`` says whether the box overlaps its
        view's visible part. ``level`` keeps one level only."""
        tb = self._tb
        active = np.flatnonzero((tb.g_t0 <= t) & (t < tb.g_t1))
        parts = []
        for g in active.tolist():
            rows = self._group_boxes(g, None if level is None else int(level))
            if not len(rows):
                continue
            si = self._state_at(g, t)
            rows["x0"] += tb.s_dx[si]
            rows["x1"] += tb.s_dx[si]
            rows["y0"] += tb.s_dy[si]
            rows["y1"] += tb.s_dy[si]
            vx0, vy0, vx1, vy1 = (np.nan_to_num(v, nan=d) for v, d in (
                (tb.s_vx0[si], -np.inf), (tb.s_vy0[si], -np.inf), (tb.s_vx1[si], np.inf), (tb.s_vy1[si], np.inf)))
            rows["visible"] = (rows["x1"] > vx0) & (rows["x0"] < vx1) & (rows["y1"] > vy0) & (rows["y0"] < vy1)
            parts.append(rows)
        if not parts:
            return np.zeros(0, BOX_DTYPE)
        return np.concatenate(parts)

    def viewports_at(self, t: float) -> list[dict]:
        """The visible rectangle (screen px) of every view at ``t``: dicts with turn,
        response, x0, y0, x1, y1 (infinite where unbounded)."""
        tb = self._tb
        out = []
        for g in np.flatnonzero((tb.g_t0 <= t) & (t < tb.g_t1)).tolist():
            si = self._state_at(g, t)
            out.append({"turn": int(tb.g_turn[g]), "response": int(tb.g_resp[g]),
                        "x0": float(np.nan_to_num(tb.s_vx0[si], nan=-np.inf)),
                        "y0": float(np.nan_to_num(tb.s_vy0[si], nan=-np.inf)),
                        "x1": float(np.nan_to_num(tb.s_vx1[si], nan=np.inf)),
                        "y1": float(np.nan_to_num(tb.s_vy1[si], nan=np.inf))})
        return out

    def map_points(self, t, x, y) -> dict[str, np.ndarray]:
        """AOIs of many points at once (vectorised; any order of ``t``).

        ``t``: s on the session clock; ``x, y``: screen px (page px for imported sessions).
        Returns int arrays, -1 for none: ``turn``, ``response`` (the Response code; -1 also
        for the prompt, see ``prompt``), ``paragraph``, ``line``, ``word`` (indices within
        the response, as in the ``layout`` stream), ``char`` (nearest character boundary on
        the line: a caret position in the response text); and ``prompt`` (bool: the point
        is on the prompt view)."""
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        n = len(t)
        if not (len(x) == len(y) == n):
            raise ValueError(f"map_points: t, x, y differ in length ({n}, {len(x)}, {len(y)})")
        out = {k: np.full(n, -1, dtype=np.int64) for k in ("turn", "response", "paragraph", "line", "word", "char")}
        out["prompt"] = np.zeros(n, dtype=bool)
        done = np.zeros(n, dtype=bool)
        ok_xy = np.isfinite(t) & np.isfinite(x) & np.isfinite(y)
        tb = self._tb
        for code, (gidx, t0s, t1s) in self._by_code.items():
            gi_local = np.searchsorted(t0s, t, "right") - 1
            gl = np.clip(gi_local, 0, max(len(t0s) - 1, 0))
            sel = np.flatnonzero(ok_xy & ~done & (gi_local >= 0) & (t < t1s[gl]))
            if not len(sel):
                continue
            g = gidx[gl[sel]]
            ts, xs, ys = t[sel], x[sel], y[sel]
            si = np.searchsorted(self._s_key, g * _KEY_T + (ts - self._t_min), "right") - 1
            si = np.clip(si, 0, len(tb.s_t) - 1)
            inside = (
                ~(xs < tb.s_vx0[si]) & ~(ys < tb.s_vy0[si]) & ~(xs >= tb.s_vx1[si]) & ~(ys >= tb.s_vy1[si])
            )
            sel, g, si, xs, ys = sel[inside], g[inside], si[inside], xs[inside], ys[inside]
            if not len(sel):
                continue
            done[sel] = True
            out["turn"][sel] = tb.g_turn[g]
            out["response"][sel] = code if code >= 0 else -1
            out["prompt"][sel] = code < 0
            cx = xs - tb.s_dx[si]
            cy = ys - tb.s_dy[si]
            hit = tb.hits.locate(g, cx, cy)
            for k in ("line", "paragraph", "char", "word"):
                out[k][sel] = hit[k]
        return out

    # -- internals ----------------------------------------------------------------------------
    def _prep(self) -> None:
        tb = self._tb
        self._t_min = float(np.min(tb.s_t)) if len(tb.s_t) else 0.0
        self._s_key = tb.s_group * _KEY_T + (tb.s_t - self._t_min)
        self._by_code: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for code in np.unique(tb.g_resp).tolist():
            gidx = np.flatnonzero(tb.g_resp == code)
            gidx = gidx[np.argsort(tb.g_t0[gidx], kind="stable")]
            self._by_code[int(code)] = (gidx, tb.g_t0[gidx], tb.g_t1[gidx])
        order = np.argsort(tb.b_group, kind="stable")
        self._b_order = order
        self._b_start = np.searchsorted(tb.b_group[order], np.arange(len(tb.g_t0) + 1))

    def _state_at(self, g: int, t: float) -> int:
        si = int(np.searchsorted(self._s_key, g * _KEY_T + (t - self._t_min), "right")) - 1
        return max(si, 0)

    def _group_boxes(self, g: int, level: int | None) -> np.ndarray:
        tb = self._tb
        idx = self._b_order[self._b_start[g]:self._b_start[g + 1]]
        if level is not None:
            idx = idx[tb.b_level[idx] == level]
        out = np.zeros(len(idx), BOX_DTYPE)
        out["turn"] = tb.g_turn[g]
        out["response"] = tb.g_resp[g]
        for k, src in (("level", tb.b_level), ("index", tb.b_index), ("paragraph", tb.b_par), ("line", tb.b_line),
                       ("x0", tb.b_x0), ("y0", tb.b_y0), ("x1", tb.b_x1), ("y1", tb.b_y1),
                       ("char_start", tb.b_cs), ("char_end", tb.b_ce), ("text", tb.b_text)):
            out[k] = src[idx]
        if tb.b_style is not None:
            out["style"] = tb.b_style[idx]
        out["visible"] = True
        return out


# ----------------------------------------------------------------------------------------
# recorded sessions
# ----------------------------------------------------------------------------------------
def _recorded_tables(lay: np.ndarray, scroll: np.ndarray | None) -> _Tables:
    if len(lay) == 0:
        return _Tables.empty()
    snap = lay["snapshot"].astype(np.int64)
    resp = lay["response"].astype(np.int64)
    level = lay["level"].astype(np.int64)
    # snapshot order by time: each snapshot replaces every view
    snaps, first = np.unique(snap, return_index=True)
    snap_t = lay["t"][first].astype(np.float64)
    o = np.lexsort((snaps, snap_t))
    snaps, snap_t = snaps[o], snap_t[o]
    snap_t1 = np.append(snap_t[1:], np.inf)
    rank_of_snap = np.empty(len(snaps), np.int64)
    rank_of_snap[np.argsort(snaps)] = np.arange(len(snaps))
    # groups: (snapshot, response)
    gkey = snap * 8 + (resp + 2)
    ukeys, gid = np.unique(gkey, return_inverse=True)
    ng = len(ukeys)
    g_first = np.zeros(ng, np.int64)
    g_first[gid[::-1]] = np.arange(len(gid))[::-1]
    g_snap = snap[g_first]
    g_resp = resp[g_first]
    g_turn = lay["turn"][g_first].astype(np.int64)
    g_rank = rank_of_snap[np.searchsorted(np.sort(snaps), g_snap)]
    g_t0 = snap_t[g_rank]
    g_t1 = snap_t1[g_rank]
    x0 = lay["x0"].astype(np.float64)
    y0 = lay["y0"].astype(np.float64)
    x1 = lay["x1"].astype(np.float64)
    y1 = lay["y1"].astype(np.float64)
    cs = lay["char_start"].astype(np.int64)
    ce = lay["char_end"].astype(np.int64)
    scroll_y = lay["scroll_y"].astype(np.float64)
    # the RESPONSE / PROMPT row of every group
    top = (level == int(LayoutLevel.RESPONSE)) | (level == int(LayoutLevel.PROMPT))
    g_box = np.full(ng, -1, np.int64)
    g_box[gid[top]] = np.flatnonzero(top)
    g_sy = np.zeros(ng)
    g_sy[gid] = scroll_y  # every row of a group shares it

    # -- states: the snapshot itself, then every scroll row of the group's turn and view
    s_group, s_t, s_dy, s_maxy = [], [], [], []
    if scroll is not None and len(scroll):
        sc_turn = scroll["turn"].astype(np.int64)
        sc_view = scroll["view"].astype(np.int64)
        sc_t = scroll["t"].astype(np.float64)
        so = np.lexsort((sc_t, sc_view, sc_turn))
        sc_turn, sc_view, sc_t = sc_turn[so], sc_view[so], sc_t[so]
        sc_y = scroll["y"].astype(np.float64)[so]
        sc_max = scroll["max_y"].astype(np.float64)[so]
        sc_key = ((sc_turn + 1) * 8 + (sc_view + 2)).astype(np.float64)
        # key = (turn, view) block, then time: every time queried lies within [0, span)
        tmin = float(min(sc_t.min(), snap_t.min()))
        span = float(max(sc_t.max(), snap_t.max()) - tmin) + 1.0
        sk = sc_key * span * 4 + (sc_t - tmin)
    else:
        sk = None
    for g in range(ng):
        key_g = float(((g_turn[g] + 1) * 8 + (g_resp[g] + 2)))
        if sk is None:
            s_group.append([g])
            s_t.append([g_t0[g]])
            s_dy.append([0.0])
            s_maxy.append([np.nan])
            continue
        lo = key_g * span * 4 + (g_t0[g] - tmin)
        hi = key_g * span * 4 + ((g_t1[g] - tmin) if math.isfinite(g_t1[g]) else span * 2)
        a = int(np.searchsorted(sk, lo, "right"))  # rows after t0
        b = int(np.searchsorted(sk, hi, "left"))
        prev = a - 1
        if prev >= 0 and sc_key[prev] == key_g:
            dy0, max0 = -(sc_y[prev] - g_sy[g]), sc_max[prev]
        else:
            dy0, max0 = 0.0, np.nan
        ts = [g_t0[g]] + sc_t[a:b].tolist()
        dys = [dy0] + (-(sc_y[a:b] - g_sy[g])).tolist()
        mys = [max0] + sc_max[a:b].tolist()
        s_group.append([g] * len(ts))
        s_t.append(ts)
        s_dy.append(dys)
        s_maxy.append(mys)
    s_group = np.concatenate([np.asarray(a, np.int64) for a in s_group])
    s_t = np.concatenate([np.asarray(a, float) for a in s_t])
    s_dy = np.concatenate([np.asarray(a, float) for a in s_dy])
    s_maxy = np.concatenate([np.asarray(a, float) for a in s_maxy])
    # viewport: fixed on screen (see the response view's docstring)
    bi = g_box[s_group]
    has = bi >= 0
    bic = np.clip(bi, 0, None)
    vx0 = np.where(has, x0[bic], np.nan)
    vx1 = np.where(has, x1[bic], np.nan)
    top_screen = y0[bic] + g_sy[s_group]
    doc_h = y1[bic] - y0[bic]
    vy0 = np.where(has, np.where(s_maxy > 0, top_screen, y0[bic] + s_dy), np.nan)
    vy1 = np.where(has, np.where(s_maxy > 0, top_screen + doc_h - s_maxy, y1[bic] + s_dy), np.nan)

    # -- paragraphs, lines, words
    par_rows = np.flatnonzero(level == int(LayoutLevel.PARAGRAPH))
    line_rows = np.flatnonzero(level == int(LayoutLevel.LINE))
    word_rows = np.flatnonzero(level == int(LayoutLevel.WORD))
    big_c = float(max(int(ce.max()) if len(ce) else 0, 1) + 10)

    def par_of(rows_g, rows_c):
        if not len(par_rows):
            return np.full(len(rows_g), -1, np.int64), np.full(len(rows_g), -1, np.int64)
        pk = gid[par_rows] * big_c + cs[par_rows]
        po = np.argsort(pk, kind="stable")
        pk_s = pk[po]
        i = np.searchsorted(pk_s, rows_g * big_c + rows_c, "right") - 1
        ic = np.clip(i, 0, len(pk_s) - 1)
        pr = par_rows[po[ic]]
        ok = (i >= 0) & (gid[pr] == rows_g) & (rows_c < np.maximum(ce[pr], cs[pr] + 1))
        return np.where(ok, lay["index"][pr].astype(np.int64), -1), np.where(ok, pr, -1)

    b_par = np.full(len(lay), -1, np.int64)
    b_par[par_rows] = lay["index"][par_rows]
    lp, lpr = par_of(gid[line_rows], cs[line_rows])
    b_par[line_rows] = lp
    wp, _ = par_of(gid[word_rows], cs[word_rows])
    b_par[word_rows] = wp
    # word fragment -> line
    b_line = np.full(len(lay), -1, np.int64)
    b_line[line_rows] = lay["index"][line_rows]
    lk = gid[line_rows] * big_c + cs[line_rows]
    lo_ = np.argsort(lk, kind="stable")
    f_line_row = np.full(len(word_rows), -1, np.int64)
    if len(line_rows):
        i = np.searchsorted(lk[lo_], gid[word_rows] * big_c + cs[word_rows], "right") - 1
        ic = np.clip(i, 0, len(lo_) - 1)
        lr = line_rows[lo_[ic]]
        ok = (i >= 0) & (gid[lr] == gid[word_rows]) & (cs[word_rows] < np.maximum(ce[lr], cs[lr] + 1))
        f_line_row = np.where(ok, lo_[ic], -1)  # position in line_rows
        b_line[word_rows] = np.where(ok, lay["index"][lr], -1)
    # line hit range: its paragraph's column (the line's own box when it has none)
    l_hx0 = np.where(lpr >= 0, x0[np.clip(lpr, 0, None)], x0[line_rows])
    l_hx1 = np.where(lpr >= 0, x1[np.clip(lpr, 0, None)], x1[line_rows])
    # knots: line start / end plus every fragment's ends
    wf = f_line_row >= 0
    k_line = np.concatenate([np.arange(len(line_rows)), np.arange(len(line_rows)), f_line_row[wf], f_line_row[wf]])
    k_x = np.concatenate([x0[line_rows], x1[line_rows], x0[word_rows][wf], x1[word_rows][wf]])
    k_char = np.concatenate([cs[line_rows], ce[line_rows], cs[word_rows][wf], ce[word_rows][wf]]).astype(float)
    text = lay["text"] if "text" in lay.dtype.names else np.full(len(lay), "", object)
    b_style = lay["style"].astype(np.int64) if "style" in lay.dtype.names else None
    tb = _Tables(
        g_turn=g_turn, g_resp=g_resp, g_t0=g_t0, g_t1=g_t1,
        s_group=s_group, s_t=s_t, s_dx=np.zeros(len(s_t)), s_dy=s_dy, s_vx0=vx0, s_vy0=vy0, s_vx1=vx1, s_vy1=vy1,
        b_group=gid.astype(np.int64), b_level=level, b_index=lay["index"].astype(np.int64), b_par=b_par, b_line=b_line,
        b_x0=x0, b_y0=y0, b_x1=x1, b_y1=y1, b_cs=cs, b_ce=ce, b_text=np.asarray(text, object),
        hits=_hit_test(gid[line_rows].astype(np.int64), y0[line_rows], y1[line_rows], l_hx0, l_hx1, lp,
                       lay["index"][line_rows].astype(np.int64), cs[line_rows], ce[line_rows],
                       k_line.astype(np.int64), k_x, k_char,
                       f_line_row[wf].astype(np.int64), x0[word_rows][wf], x1[word_rows][wf],
                       lay["index"][word_rows][wf].astype(np.int64)),
        b_style=b_style,
    )
    return _sorted_states(tb)
