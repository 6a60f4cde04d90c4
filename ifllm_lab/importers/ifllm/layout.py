"""The text layout of sessions imported from the IFLLM release, rebuilt from what the
release recorded per sample.

The release records no geometry: :func:`reconstruct_layout` fits it to the samples and
returns a :class:`~ifllm_lab.analysis.aoi.LayoutTimeline` (``source == "reconstructed"``)
like any other, so AOIs, metrics and the replay treat imported sessions as recorded ones.
Each (turn, response) text is one group whose content frame is the response box in page
px, with the text's first line band starting at ``y = 0``. Importing
:mod:`ifllm_lab.importers.ifllm` registers it, so
:meth:`~ifllm_lab.analysis.aoi.LayoutTimeline.for_session` finds it.

What the release shows about its site (from its own rows): each answer is raw text
(markdown is not rendered: ``**`` and ``###`` appear in the snippets) in a box with
``white-space: pre-wrap`` behaviour -- every ``"\n"`` starts a line, runs of spaces are kept
(indentation shows), long lines wrap at spaces (and after hyphens, around dashes) --, one
font, a uniform line pitch (about 70 page px in every session where it can be measured),
and boxes that either grow with their text (the page scrolls) or have a fixed height and
scroll inside (the pairwise boxes, ~400 px). Per sample the release gives the point
relative to each response box (``gaze_rel`` / ``mouse_rel``: ``x, y`` in box px or -1
outside, ``char_index`` = the caret position a click there would give, ``snippet`` = the
text within 10 characters of it *on its rendered line*) and the absolute point in page px
(``gaze`` / ``mouse``, same ``page_ms``). Gaze and mouse rows both count below.

1. **Box position over time.** ``abs - rel`` of rows with the same ``page_ms`` is the box's
   top left in page px at that moment. It is piecewise constant (it moves when the page
   scrolls or what is above it changes); a change takes effect halfway between the last
   row at the old and the first at the new position. The box's size is the 99.5th
   percentile of the rows' ``x`` (at least the text column) by the largest ``y`` seen.
2. **Which text was shown.** A row counts only when its snippet occurs in its turn's answer
   within 12 characters of ``char_index`` (or, in the first 30 s of a turn, in the previous
   turn's answer: it was still on screen). Rows over the site's "please wait" placeholder,
   over page elements inside the box's rectangle (buttons, rating labels: the caret then
   indexes *their* text) or before the first question are left out. A turn's text counts
   as shown from its question (``turns.t``) -- or from halfway between the last row on
   something else and its first row -- to the next question (or halfway to the next row
   on something else when its rows go on past that).
3. **Line breaks from the snippets.** A snippet that stops short of its 10 characters, with
   more non-whitespace text beyond, shows a rendered line ending there; one that starts
   late shows a line starting there (a caret at a soft line start is drawn at the end of
   the line above: its snippet is that line's); no line starts inside a snippet.
4. **Character widths and wrapping.** Widths start from Helvetica/Arial advance widths
   (Liberation Sans is metric-compatible; the default sans-serif of most browsers) and
   are fitted per session: a font scale (px per em) and the text's left inset by a robust
   line fit over rows whose line start is known (first visual line of a hard line, or
   shown by the row's own snippet; failing that, the scale for which most rows' x matches
   a possible line start), then the wrap width (grid search: the width whose greedy wrap
   -- anchored to the line breaks of step 3 -- predicts the rows' caret x best and
   contradicts the fewest snippet line breaks; side-by-side pairwise boxes share it),
   then per-character widths (ridge regression towards the scaled table on the rows that
   fit), then the wrap width again. A word no row ever landed on is placed by these
   widths along its line; a line no row ever landed on by the wrap alone.
5. **Line pitch and the box's own scrolling.** With the wrap known, every row's line ``k``
   is known, and its vertical offset ``u`` (the box's scroll minus the text's top inset)
   must satisfy ``k * pitch <= y + u < (k + 1) * pitch`` -- one-sided for rows on a
   text's first or last line, since the browser gives those carets for any point above or
   below the text. The pitch is the value that the most stretches of rows within 1.5 s
   allow (:func:`_fit_pitch`); ``u(t)`` is the piecewise-constant path that best satisfies
   all rows (Viterbi on a 1 px grid; a change costs as much as a row a quarter pitch
   outside its band, so the path follows the rows closely: scrolls are frequent and
   unlogged), each stretch then set to the centre of what its rows allow. A change
   between two rows takes effect halfway between them.
6. **Boxes.** Words (maximal non-whitespace runs, Python ``str`` indices; a word broken
   across lines gives one WORD row per line) span from the x of their first character to
   the x after their last, lines their band; paragraphs (text between line breaks holding
   a word) the text column x their lines' bands; the RESPONSE box the box's width x the
   text's extent. The content frame's ``y = 0`` is the top of the first line's band; a
   line's hit band spans the whole box width (a point left of the text gives the line's
   first caret, as in the browser).

Limits, stated plainly: the font is modelled by per-character advance widths (no kerning);
the line pitch is assumed uniform; characters no row constrains keep the scaled table
width (CJK: 1 em); astral characters (emoji) count as one character, as in Python, while
the browser's ``char_index`` counts UTF-16 units, so rows after an emoji drift by one and
soon fail step 2; the box's scroll between two rows is unknown (taken to change halfway);
a text no row ever landed on is placed at the offset its box most often started a turn
with; a box whose width changed within a session (a resized window) is fitted with one
width; a few early sessions whose ``char_index`` scatters widely against their own ``x``
fit poorly. How well it works is measured in ``tests/importers/test_ifllm_layout.py`` against the
release's own ``char_index``: over all 288 development sessions, 95.8 % of the gaze rows
with a caret inside a word (not on a text's first or last line) map to that word and
98.2 % to its line; on the test's 14 sessions 97.8 %, and 95.6 % for rows left out of the
fit. :attr:`~ifllm_lab.analysis.aoi.LayoutTimeline.fit_report` holds the fitted figures per session.
"""
from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from ...analysis.aoi import LayoutTimeline, TextGeometry, paragraph_spans, word_spans
from ...session.schema import LayoutLevel, Response

__all__ = ["reconstruct_layout"]


def reconstruct_layout(reader, *, exclude_page_ms=None) -> LayoutTimeline:
    """Rebuild the layout of an imported IFLLM session (see the module docstring).

    ``exclude_page_ms``: ``page_ms`` values of gaze samples to leave out of the fit
    entirely (their ``gaze_rel`` rows are not used for the box position, the widths, the
    wrap or the scroll track): for held-out evaluation."""
    texts, report = _reconstruct(reader, exclude_page_ms)
    return LayoutTimeline.from_texts(texts, source="reconstructed", fit_report=report)


#: Advance widths of Helvetica / Arial (1/1000 em; Liberation Sans has the same metrics).
_HELVETICA = {
    " ": 278, "!": 278, '"': 355, "#": 556, "$": 556, "%": 889, "&": 667, "'": 191, "(": 333, ")": 333,
    "*": 389, "+": 584, ",": 278, "-": 333, ".": 278, "/": 278, ":": 278, ";": 278, "<": 584, "=": 584,
    ">": 584, "?": 556, "@": 1015, "[": 278, "\\": 278, "]": 278, "^": 469, "_": 556, "`": 333, "{": 334,
    "|": 260, "}": 334, "~": 584, "A": 667, "B": 667, "C": 722, "D": 722, "E": 667, "F": 611, "G": 778,
    "H": 722, "I": 278, "J": 500, "K": 667, "L": 556, "M": 833, "N": 722, "O": 778, "P": 667, "Q": 778,
    "R": 722, "S": 667, "T": 611, "U": 722, "V": 667, "W": 944, "X": 667, "Y": 667, "Z": 611, "a": 556,
    "b": 556, "c": 500, "d": 556, "e": 556, "f": 278, "g": 556, "h": 556, "i": 222, "j": 222, "k": 500,
    "l": 222, "m": 833, "n": 556, "o": 556, "p": 556, "q": 556, "r": 333, "s": 500, "t": 278, "u": 556,
    "v": 500, "w": 722, "x": 500, "y": 500, "z": 500, "\u2018": 222, "\u2019": 222, "\u201c": 333,
    "\u201d": 333, "\u2014": 1000, "\u2013": 556, "\u2022": 350, "\u2026": 1000, "\u00a0": 278, "\t": 1112,
    "\n": 0, "\r": 0,
}
_HELVETICA.update({d: 556 for d in "0123456789"})

#: Rows whose snippet is found within this many characters of their char_index count.
_SNIPPET_WINDOW = 12
_MIN_FIT_ROWS = 8
_STALE_S = 30.0  # s: how long into a turn rows may still be on the previous turn's answer
_PITCH_EM = 2.8  # line pitch / font scale where the pitch can be measured in the release (~70 px / ~25 px)
_STRETCH_S = 1.5  # s: stretches of rows this long are taken to share the box's scroll state (pitch)
_CONFLICT_ROWS = 3.0  # wrap fit: a conflict with a snippet's line break weighs as much as this many rows
_JUMP_COST = 0.25  # Viterbi: a scroll costs as much as a row a quarter pitch outside its band


def _em(ch: str) -> float:
    w = _HELVETICA.get(ch)
    if w is not None:
        return w / 1000.0
    if unicodedata.combining(ch):
        return 0.0
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return 1.0
    return 0.556


class _Text:
    """One answer text prepared for greedy pre-wrap line breaking."""

    def __init__(self, text: str, vocab: dict[str, int]):
        self.text = text
        n = self.n = len(text)
        self.codes = np.array([vocab[c] for c in text], dtype=np.int64)
        self.is_nl = np.array([c == "\n" for c in text] + [False], dtype=bool)
        # where a line may start: after a space run, after a hyphen inside a word, around
        # dashes, after a slash before a letter; hard starts after "\n"
        starts = [0]
        hard = set()
        for i in range(1, n):
            a, b = text[i - 1], text[i]
            if a == "\n" or a == "\r" and b != "\n":
                starts.append(i)
                hard.add(i)
            elif b.isspace():
                continue
            elif a.isspace():
                starts.append(i)
            elif a in "-\u2010" and b.isalpha() and i >= 2 and not text[i - 2].isspace():
                starts.append(i)
            elif a in "\u2013\u2014" or (b == "\u2014" and not a.isspace()):
                starts.append(i)
            elif a == "/" and b.isalpha() and i >= 2 and not text[i - 2].isspace():
                starts.append(i)
        if n and text[-1] == "\n":
            hard.add(n)
        self.seg_a = starts
        self.seg_e = starts[1:] + [n]
        self.seg_v = []  # end of the visible part (trailing whitespace hangs)
        for a, e in zip(self.seg_a, self.seg_e):
            v = e
            while v > a and text[v - 1].isspace():
                v -= 1
            self.seg_v.append(v)
        self.seg_hard = [e in hard for e in self.seg_e]

        self.known = [False] * (n + 1)  # line starts the snippets show
        self.nobreak = [False] * (n + 1)  # break opportunities inside a snippet's line

    def add_evidence(self, ci: np.ndarray, s0: np.ndarray, s1: np.ndarray) -> None:
        """Line starts and non-starts shown by snippets (see :func:`_snippet_evidence`)."""
        known, nob = _snippet_evidence(self.text, self.seg_a, ci, s0, s1)
        both = known & nob
        for q in known - both:
            self.known[q] = True
        for q in nob - both:
            self.nobreak[q] = True

    def wrap(self, cum: list, width: float) -> np.ndarray:
        """Line start indices for wrap width ``width`` (px) given cumulative widths ``cum``:
        greedy, except that a line starts wherever a snippet showed one and never where a
        snippet showed the text going on on the same line."""
        return self.wrap_conflicts(cum, width)[0]

    def wrap_conflicts(self, cum: list, width: float) -> tuple[np.ndarray, int]:
        """:meth:`wrap` and the number of places where the width alone would have wrapped
        otherwise than the snippets showed (a shown line start where the next word still
        fits, or a break the width needs inside a shown line)."""
        starts = [0]
        cur = 0.0
        lim = width + 0.01
        known, nob = self.known, self.nobreak
        conflicts = 0
        for a, v, e, hard in zip(self.seg_a, self.seg_v, self.seg_e, self.seg_hard):
            vis = cum[v] - cum[a]
            over = cur + vis > lim
            if cur > 0.0:
                if known[a] and not over:
                    conflicts += 1
                elif over and nob[a]:
                    conflicts += 1
            if cur > 0.0 and (known[a] or (over and not nob[a])):
                starts.append(a)
                cur = 0.0
            if cur + vis > lim and v > a and not nob[a]:  # a word longer than the line: broken where it overflows
                s = a if cur == 0.0 else starts[-1]
                base = cum[s] if cur == 0.0 else cum[starts[-1]]
                k = a
                while cum[v] - base > lim:
                    k = max(k + 1, _last_fit(cum, base + lim, k, v))
                    if k >= v:
                        break
                    starts.append(k)
                    base = cum[k]
                cur = cum[e] - base
            else:
                cur += cum[e] - cum[a]
            if hard:
                starts.append(e)
                cur = 0.0
        return np.unique(np.asarray(starts, dtype=np.int64)), conflicts


def _snippet_evidence(text: str, seg_a: list, ci: np.ndarray, s0: np.ndarray, s1: np.ndarray):
    """Line starts (set) and positions that are no line start (set) shown by snippets.

    The release's snippet is the text within 10 characters of the caret that is on the
    caret's rendered line, with surrounding whitespace trimmed (a caret at a soft line
    start belongs to the line above: that is where the browser draws it). A snippet that
    stops short of its window on the right, before more non-whitespace text, shows that
    the next line starts at the next non-whitespace character; one that starts late, after
    cut-off non-whitespace text, shows a line starting where it starts. No line starts
    inside a snippet."""
    n = len(text)
    opp = set(seg_a)
    known, nob = set(), set()
    for c, a, b in zip(ci.tolist(), s0.tolist(), s1.tolist()):
        if a < 0:
            continue
        lo, hi = max(0, c - 10), min(n, c + 10)
        if a > lo and text[lo:a].strip() and "\n" not in text[lo:a] and a in opp:
            known.add(a)
        if b < hi and text[b:hi].strip():
            q = b
            while q < n and text[q].isspace():
                q += 1
            if "\n" not in text[b:q] and q in opp:
                known.add(q)
        for q in range(a + 1, b):
            if q in opp and text[q - 1] != "\n":
                nob.add(q)
    return known, nob


def _last_fit(cum: list, limit: float, lo: int, hi: int) -> int:
    """Largest k in (lo, hi] with cum[k] <= limit (lo + 1 when none)."""
    a, b = lo + 1, hi
    best = lo + 1
    while a <= b:
        m = (a + b) // 2
        if cum[m] <= limit:
            best = m
            a = m + 1
        else:
            b = m - 1
    return best


@dataclass
class _Rows:
    """Rows of one (turn, response) that are on its answer text."""

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    ci: np.ndarray
    s0: np.ndarray  # snippet span in the text
    s1: np.ndarray


@dataclass
class _Group:
    turn: int
    response: int
    text: _Text
    rows: _Rows
    t0: float = 0.0
    t1: float = 0.0
    starts: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    line: np.ndarray | None = None  # per row
    u_t: np.ndarray | None = None  # scroll track: change times
    u_v: np.ndarray | None = None


def _pair_rows(abs_pm, abs_t, rel_pm, rel_t) -> np.ndarray:
    """Index into the absolute rows of the row with the same page_ms (nearest in t), -1 none."""
    o = np.lexsort((abs_t, abs_pm))
    pm = abs_pm[o]
    lo = np.searchsorted(pm, rel_pm, "left")
    hi = np.searchsorted(pm, rel_pm, "right")
    out = np.where(hi > lo, o[np.clip(lo, 0, max(len(o) - 1, 0))], -1) if len(o) else np.full(len(rel_pm), -1)
    multi = np.flatnonzero(hi - lo > 1)
    for i in multi.tolist():
        cand = o[lo[i]:hi[i]]
        out[i] = cand[np.argmin(np.abs(abs_t[cand] - rel_t[i]))]
    if len(out):
        far = (out >= 0) & (np.abs(abs_t[np.clip(out, 0, None)] - rel_t) > 1.0)
        out[far] = -1
    return out


def _steps(t: np.ndarray, v: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-constant track from time-sorted observations: (change times, values); a
    change takes effect halfway between the last observation of the old value and the
    first of the new one; the first value holds from -inf."""
    if not len(t):
        return np.zeros(0), np.zeros((0,) + v.shape[1:])
    vv = v.reshape(len(v), -1)
    change = np.ones(len(t), bool)
    change[1:] = np.any(np.abs(np.diff(vv, axis=0)) > tol, axis=1)
    idx = np.flatnonzero(change)
    times = np.empty(len(idx))
    times[0] = -np.inf
    times[1:] = (t[idx[1:] - 1] + t[idx[1:]]) / 2.0
    return times, v[idx]


def _track_at(times: np.ndarray, values: np.ndarray, t: np.ndarray):
    i = np.clip(np.searchsorted(times, t, "right") - 1, 0, len(times) - 1)
    return values[i]


def _viterbi_offsets(lo: np.ndarray, hi: np.ndarray, pitch: float) -> np.ndarray:
    """Piecewise-constant offset u per row that best satisfies ``lo <= u < hi`` (rows in
    time order); see the module docstring (step 5)."""
    n = len(lo)
    if n == 0:
        return np.zeros(0)
    fin = np.concatenate((lo[np.isfinite(lo)], hi[np.isfinite(hi)]))
    if not len(fin):
        return np.zeros(n)
    g0 = math.floor(float(fin.min()) - pitch)
    g1 = math.ceil(float(fin.max()) + pitch)
    step = max(1.0, (g1 - g0) / 6000.0)
    grid = np.arange(g0, g1 + step, step)
    def emit(i):
        d = np.maximum(lo[i] - grid, 0.0) + np.maximum(grid - (hi[i] - 1e-6), 0.0)
        return np.minimum(d / pitch, 1.0)
    cost = emit(0)
    jumped = np.zeros((n, len(grid)), dtype=bool)
    best_prev = np.zeros(n, dtype=np.int64)
    for i in range(1, n):
        b = int(np.argmin(cost))
        best_prev[i] = b
        jump = cost[b] + _JUMP_COST
        jumped[i] = jump < cost
        cost = np.where(jumped[i], jump, cost) + emit(i)
    state = np.empty(n, dtype=np.int64)
    g = int(np.argmin(cost))
    for i in range(n - 1, -1, -1):
        state[i] = g
        if i > 0 and jumped[i, g]:
            g = int(best_prev[i])
    u = grid[state].astype(np.float64)
    # each segment: the centre of what its agreeing rows allow
    seg = np.concatenate(([0], np.flatnonzero(np.diff(state)) + 1, [n]))
    for a, b in zip(seg[:-1], seg[1:]):
        v = u[a]
        ok = (lo[a:b] <= v + step) & (hi[a:b] >= v - step)
        if ok.any():
            l, h = float(lo[a:b][ok].max()), float(hi[a:b][ok].min())
            if math.isfinite(l) and math.isfinite(h):
                u[a:b] = (l + h) / 2.0 if l <= h else v
            elif math.isfinite(l):  # only rows on the last line: the least scroll they allow
                u[a:b] = l + pitch / 2.0
            elif math.isfinite(h):  # only rows on the first line
                u[a:b] = h - pitch / 2.0
    return u


def _snippet_spans(texts: list, ci: np.ndarray, snippets) -> tuple[np.ndarray, np.ndarray]:
    """Where each row's snippet lies in its text: ``(s0, s1)`` (-1 where the snippet does
    not occur within ``_SNIPPET_WINDOW`` characters of ``char_index``: the row is not on
    this text). Of several occurrences the one nearest ``char_index - 10`` counts."""
    s0 = np.full(len(ci), -1, dtype=np.int64)
    s1 = np.full(len(ci), -1, dtype=np.int64)
    for i, (text, c, sn) in enumerate(zip(texts, ci.tolist(), snippets)):
        if text is None or c < 0 or c > len(text):
            continue
        sub = str(sn).strip()
        if not sub:
            continue
        lo = max(0, c - _SNIPPET_WINDOW)
        hi = c + _SNIPPET_WINDOW
        p = text.find(sub, lo)
        best = -1
        while 0 <= p and p + len(sub) <= hi:
            if best < 0 or abs(p - (c - 10)) < abs(best - (c - 10)):
                best = p
            p = text.find(sub, p + 1)
        if best >= 0:
            s0[i], s1[i] = best, best + len(sub)
    return s0, s1


def _reconstruct(reader, exclude_page_ms=None) -> tuple[list[TextGeometry], dict]:
    report: dict = {"notes": []}
    if "turns" not in reader or not len(reader["turns"]):
        report["notes"].append("no turns")
        return [], report
    turns = reader["turns"].read()
    n_turns = len(turns)
    t_turn = turns["t"].astype(np.float64)
    t_end = turns["t_end"].astype(np.float64)
    t_end = np.where(np.isfinite(t_end) & (t_end > t_turn), t_end, np.append(t_turn[1:], np.inf))
    t_end[-1] = max(t_end[-1], reader.duration() + 1.0) if n_turns else 0.0
    pairwise = turns["mode"].astype(int) == 1
    codes = [int(Response.FIRST), int(Response.SECOND)] if pairwise.any() else [int(Response.SINGLE)]

    def text_of(k: int, code: int) -> str:
        return str(turns["response_2"][k] if code == int(Response.SECOND) else turns["response_1"][k])

    # -- all relative rows with their absolute partners
    rel_parts = []
    for stream, abs_name, is_gaze in (("gaze_rel", "gaze", True), ("mouse_rel", "mouse", False)):
        if stream not in reader or not len(reader[stream]) or abs_name not in reader:
            continue
        rel = reader[stream].read(columns=["t", "response", "x", "y", "char_index", "snippet", "page_ms"])
        ab = reader[abs_name].read(columns=["t", "x", "y", "page_ms"])
        if is_gaze and exclude_page_ms is not None:
            keep = ~np.isin(rel["page_ms"], np.asarray(exclude_page_ms, dtype=np.float64))
            rel = rel[keep]
        pair = _pair_rows(ab["page_ms"].astype(np.float64), ab["t"].astype(np.float64),
                          rel["page_ms"].astype(np.float64), rel["t"].astype(np.float64))
        ok = pair >= 0
        axy = np.full((len(rel), 2), np.nan)
        axy[ok, 0] = ab["x"][pair[ok]]
        axy[ok, 1] = ab["y"][pair[ok]]
        rel_parts.append((rel, axy, is_gaze))
    if not rel_parts:
        report["notes"].append("no gaze_rel / mouse_rel rows: nothing to reconstruct from")
        return [], report

    vocab: dict[str, int] = {}
    for k in range(n_turns):
        for code in codes:
            for ch in text_of(k, code):
                vocab.setdefault(ch, len(vocab))
    chars = list(vocab)
    prior_em = np.array([_em(c) for c in chars]) if chars else np.zeros(0)

    groups: dict[tuple[int, int], _Group] = {}
    origin: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    box_w: dict[int, float] = {}
    box_h_rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    identity_rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    n_rows = {"rows_with_char": 0, "rows_on_text": 0}
    for code in codes:
        ts, xs, ys, cis, ids, obs_t, obs_o, in_t, in_y = [], [], [], [], [], [], [], [], []
        s0s, s1s = [], []
        for rel, axy, _ in rel_parts:
            m = rel["response"].astype(int) == code
            r, a = rel[m], axy[m]
            inside = (r["x"] >= 0) & (r["y"] >= 0)
            has = inside & np.isfinite(a[:, 0])
            obs_t.append(r["t"][has].astype(np.float64))
            obs_o.append(np.c_[a[has, 0] - r["x"][has], a[has, 1] - r["y"][has]])
            in_t.append(r["t"][inside].astype(np.float64))
            in_y.append(r["y"][inside].astype(np.float64))
            c = r["char_index"].astype(np.int64)
            sel = inside & (c >= 0)
            r = r[sel]
            c = c[sel]
            n_rows["rows_with_char"] += len(r)
            k = np.searchsorted(t_turn, r["t"], "right") - 1
            since = r["t"] - t_turn[np.clip(k, 0, None)]
            # which turn's text the row is on: its own turn's, else -- early in a turn, while
            # the next answer loads -- the previous one's; rows before the first question
            # are on no answer
            ident = np.full(len(r), -1, np.int64)
            sp0 = np.full(len(r), -1, np.int64)
            sp1 = np.full(len(r), -1, np.int64)
            for shift in (0, -1):
                kk = k + shift
                valid = (ident < 0) & (k >= 0) & (kk >= 0) & (kk < n_turns) & ((shift == 0) | (since < _STALE_S))
                idx = np.flatnonzero(valid)
                if not len(idx):
                    continue
                a0, a1 = _snippet_spans([text_of(int(q), code) for q in kk[idx]], c[idx], r["snippet"][idx])
                ok = a0 >= 0
                ident[idx[ok]] = kk[idx[ok]]
                sp0[idx[ok]], sp1[idx[ok]] = a0[ok], a1[ok]
            s0s.append(sp0)
            s1s.append(sp1)
            ts.append(r["t"].astype(np.float64))
            xs.append(r["x"].astype(np.float64))
            ys.append(r["y"].astype(np.float64))
            cis.append(c)
            ids.append(ident)
        t_all = np.concatenate(ts)
        o = np.argsort(t_all, kind="stable")
        t_all = t_all[o]
        x_all, y_all, c_all, id_all, s0_all, s1_all = (np.concatenate(a)[o] for a in (xs, ys, cis, ids, s0s, s1s))
        n_rows["rows_on_text"] += int((id_all >= 0).sum())
        identity_rows[code] = (t_all, id_all)
        ot = np.concatenate(obs_t)
        oo = np.concatenate(obs_o).reshape(-1, 2)
        oo_order = np.argsort(ot, kind="stable")
        origin[code] = _steps(ot[oo_order], np.round(oo[oo_order], 1), 0.5)
        xv = x_all[id_all >= 0]
        box_w[code] = float(np.quantile(xv, 0.995)) + 1.0 if len(xv) else math.nan
        it = np.concatenate(in_t)
        iy = np.concatenate(in_y)
        io = np.argsort(it, kind="stable")
        box_h_rows[code] = (it[io], iy[io])
        for k in range(n_turns):
            text = text_of(k, code)
            if not text:
                continue
            m = id_all == k
            tx = _Text(text, vocab)
            tx.add_evidence(c_all[m], s0_all[m], s1_all[m])
            groups[(k, code)] = _Group(k, code, tx, _Rows(t_all[m], x_all[m], y_all[m], c_all[m], s0_all[m], s1_all[m]))
    report.update(n_rows)
    report["box_width_px"] = {int(c): box_w[c] for c in codes}

    # -- when each text was on screen: from its question (or from halfway between the last
    # row on something else -- the placeholder, the previous answer -- and its first row)
    # to the next question (or, when its rows go on past that, halfway to the next row on
    # something else)
    for (k, code), g in groups.items():
        t_ids, ids = identity_rows[code]
        t0, t1 = float(t_turn[k]), float(t_end[k])
        if len(g.rows.t):
            first, last = float(g.rows.t[0]), float(g.rows.t[-1])
            before = (t_ids >= t0) & (t_ids < first) & (ids != k)
            if before.any():
                t0 = (float(t_ids[before].max()) + first) / 2.0
            if last >= t1:
                after = (t_ids > last) & (ids != k)
                t1 = (last + float(t_ids[after].min())) / 2.0 if after.any() else last + 0.5
        g.t0, g.t1 = t0, max(t1, t0 + 1e-3)
    for code in codes:
        gs = sorted((g for g in groups.values() if g.response == code), key=lambda g: g.turn)
        for a, b in zip(gs[:-1], gs[1:]):
            if a.t1 > b.t0:  # the previous answer stayed until (before) this one's first row
                b.t0 = a.t1
                b.t1 = max(b.t1, b.t0 + 1e-3)

    fit = _fit_widths(groups, codes, box_w, prior_em, report)
    if fit is None:
        report["notes"].append("too few rows on the answer texts to fit the layout")
        return [], report
    w_px, pad, wrap_w = fit
    cums = {key: np.concatenate(([0.0], np.cumsum(w_px[g.text.codes]))) for key, g in groups.items()}
    for key, g in groups.items():
        g.starts = g.text.wrap(cums[key].tolist(), wrap_w[g.response])
        g.line = _row_lines(g, cums[key], pad, float(np.median(w_px)) if len(w_px) else 10.0)
    pitch = _fit_pitch(groups, report["font_px_per_em"], report)
    # scroll tracks
    first_u: dict[int, list[float]] = {c: [] for c in codes}
    for g in groups.values():
        if len(g.rows.t):
            # the browser puts the caret on the first line for any point above it and on
            # the last line for any point below it: those rows bound the offset one way only
            lo = g.line * pitch - g.rows.y
            hi = lo + pitch
            lo = np.where(g.line == 0, -np.inf, lo)
            hi = np.where(g.line == len(g.starts) - 1, np.inf, hi)
            u = _viterbi_offsets(lo, hi, pitch)
            g.u_t, g.u_v = _steps(g.rows.t, u, 0.5)
            first_u[g.response].append(float(g.u_v[0]))
    all_first = [u for v in first_u.values() for u in v]
    for g in groups.values():
        if g.u_t is None:
            cand = first_u[g.response] or all_first or [0.0]
            g.u_t, g.u_v = np.array([-np.inf]), np.array([float(np.median(cand))])
    report["pitch_px"] = pitch
    report["agreement_in_fit"] = _self_check(groups, cums, pad, pitch)
    parts = [_text_geometry(g, cums[key], pad, wrap_w[g.response], pitch, origin[g.response],
                           box_w[g.response], box_h_rows[g.response])
             for key, g in sorted(groups.items()) if len(origin[g.response][0])]
    if len(parts) < len(groups):
        report["notes"].append("responses never looked at or pointed to (no box position) have no geometry")
    return parts, report


def _pred_x(g: _Group, cum: np.ndarray, pad: float, ci: np.ndarray, starts: np.ndarray):
    """Predicted caret x of char ``ci`` on its line, the line, and end-of-line flags."""
    line = np.searchsorted(starts, ci, "right") - 1
    pred = pad + cum[ci] - cum[starts[line]]
    hard_end = g.text.is_nl[ci] | (ci >= g.text.n)
    soft = (ci == starts[line]) & (line > 0) & ~g.text.is_nl[np.clip(ci - 1, 0, None)]
    prev = np.clip(line - 1, 0, None)
    pred_prev = pad + cum[ci] - cum[starts[prev]]
    return line, pred, hard_end, soft, pred_prev


def _row_cost(g, cum, pad, starts, tol, cap):
    ci, x = g.rows.ci, g.rows.x
    line, pred, hard_end, soft, pred_prev = _pred_x(g, cum, pad, ci, starts)
    r = x - pred
    r = np.where(hard_end, np.minimum(r + tol, 0.0), r)
    at_start = (ci == starts[line]) & ~soft  # points left of a line give its first caret
    r = np.where(at_start, np.maximum(r - tol, 0.0), r)
    c = np.minimum(r * r, cap * cap)
    end_prev = np.minimum(x - pred_prev + 2 * tol, 0.0)
    c = np.where(soft, np.minimum(c, np.minimum(end_prev * end_prev, cap * cap)), c)
    return c


def _wrap_cost(g, cum, cum_list, pad, width, tol, cap) -> float:
    """Cost of a wrap width for one text: rows' caret x residuals (truncated squares) plus
    ``_CONFLICT_ROWS`` fully wrong rows per conflict with the snippets' line breaks."""
    starts, conflicts = g.text.wrap_conflicts(cum_list, width)
    return float(_row_cost(g, cum, pad, starts, tol, cap).sum()) + _CONFLICT_ROWS * conflicts * cap * cap


def _row_lines(g: _Group, cum: np.ndarray, pad: float, char_px: float) -> np.ndarray:
    """Line of every row; a caret at a soft line start belongs to the line above when the
    point is right of that line's end."""
    if not len(g.rows.ci):
        return np.zeros(0, np.int64)
    line, pred, hard_end, soft, pred_prev = _pred_x(g, cum, pad, g.rows.ci, g.starts)
    up = soft & (g.rows.x >= pred_prev - 2 * char_px)
    return np.where(up, line - 1, line)


def _fit_widths(groups, codes, box_w, prior_em, report):
    """Font scale, left inset, per-character widths and wrap width per response box."""
    have = [g for g in groups.values() if len(g.rows.t)]
    if sum(len(g.rows.t) for g in have) < _MIN_FIT_ROWS:
        return None
    # 1. scale and inset from rows on the first visual line of a hard line
    ems, xs = [], []
    for g in have:
        ci = g.rows.ci
        text = g.text.text
        cum_em = np.concatenate(([0.0], np.cumsum(prior_em[g.text.codes])))
        hard = np.array(sorted({0} | {i + 1 for i in np.flatnonzero(g.text.is_nl[:-1]).tolist()}))
        ls = hard[np.searchsorted(hard, ci, "right") - 1]
        e = cum_em[ci] - cum_em[ls]
        ok = (e < 10.0) & ~g.text.is_nl[ci] & (ci < g.text.n)
        # rows whose own snippet shows where their line starts
        for i, (c, a) in enumerate(zip(ci.tolist(), g.rows.s0.tolist())):
            lo = max(0, c - 10)
            if ok[i] or a <= lo or c >= g.text.n or g.text.is_nl[c] or not text[lo:a].strip():
                continue
            nl = text.rfind("\n", lo, a)
            start = nl + 1 if nl >= 0 else a
            if text[start:a].strip():
                continue
            e[i] = cum_em[c] - cum_em[start]
            ok[i] = True
        ems.append(e[ok])
        xs.append(g.rows.x[ok])
    e, x = np.concatenate(ems), np.concatenate(xs)
    fitted = _robust_line(e, x) if len(e) >= _MIN_FIT_ROWS else None
    if fitted is not None:
        scale, pad = fitted
    else:
        scale, pad = _scale_by_starts(have, prior_em)
        report["notes"].append(f"font scale from line-start matching ({scale:.1f} px/em): few rows near "
                               "known line starts")
    if not (6.0 <= scale <= 80.0):
        report["notes"].append(f"implausible font scale {scale:.1f} px/em from first-line rows; 24 assumed")
        scale, pad = 24.0, 4.0
    w_px = scale * prior_em
    wrap_w: dict[int, float] = {}
    # side-by-side boxes of a pairwise study have one width: fitted together
    code_sets = [tuple(codes)] if len(codes) > 1 else [(c,) for c in codes]
    for it in range(3):
        tol = 0.3 * scale
        cap = 0.7 * scale
        for cset in code_sets:
            code = cset[0]
            gs = [g for g in have if g.response in cset]
            bws = [box_w.get(c, math.nan) for c in cset]
            bw = max((b for b in bws if math.isfinite(b)), default=math.nan)
            if not gs:
                continue
            cums = [np.concatenate(([0.0], np.cumsum(w_px[g.text.codes]))) for g in gs]
            cum_lists = [c.tolist() for c in cums]
            if it == 0:
                hi = (bw if math.isfinite(bw) else 2000.0) + scale
                cand = np.arange(max(4 * scale, 0.35 * hi), hi, 3.0)
            else:
                cand = np.arange(wrap_w[code] - 2 * scale, wrap_w[code] + 2 * scale, 1.0)
            scores = np.array([sum(_wrap_cost(g, c, cl, pad, w, tol, cap) for g, c, cl in zip(gs, cums, cum_lists))
                               for w in cand])
            best = np.flatnonzero(scores <= scores.min() + 1e-9)
            run = best[best - best[0] == np.arange(len(best))]  # first plateau
            w0 = float(cand[run].mean())
            fine = np.arange(w0 - 3.0, w0 + 3.01, 0.5)
            fs = np.array([sum(_wrap_cost(g, c, cl, pad, w, tol, cap) for g, c, cl in zip(gs, cums, cum_lists))
                           for w in fine])
            fb = np.flatnonzero(fs <= fs.min() + 1e-9)
            for c in cset:
                wrap_w[c] = float(fine[fb].mean())
        if it == 2:
            break
        # 2. per-character widths (ridge towards the scaled table) on the rows that fit
        rows_a, rows_x = [], []
        for g in have:
            code = g.response
            cum = np.concatenate(([0.0], np.cumsum(w_px[g.text.codes])))
            starts = g.text.wrap(cum.tolist(), wrap_w[code])
            line, pred, hard_end, soft, _ = _pred_x(g, cum, pad, g.rows.ci, starts)
            good = ~hard_end & ~soft & (np.abs(g.rows.x - pred) < 0.7 * scale)
            for ci, ls, xx in zip(g.rows.ci[good].tolist(), starts[line[good]].tolist(), g.rows.x[good].tolist()):
                rows_a.append(g.text.codes[ls:ci])
                rows_x.append(xx)
        if len(rows_x) < _MIN_FIT_ROWS:
            break
        w_px, pad = _ridge_widths(rows_a, np.array(rows_x), scale * prior_em, pad)
    report["font_px_per_em"] = scale
    report["inset_px"] = pad
    report["wrap_width_px"] = {int(k): v for k, v in wrap_w.items()}
    for code in codes:  # a box never read: the other box's width, else its own width
        if code not in wrap_w:
            others = [v for v in wrap_w.values()]
            bw = box_w.get(code, math.nan)
            wrap_w[code] = others[0] if others else (bw - 2 * pad if math.isfinite(bw) else 600.0)
    return w_px, pad, wrap_w


def _scale_by_starts(have, prior_em) -> tuple[float, float]:
    """Font scale when few rows lie near a known line start: the scale for which the most
    rows have a possible line start (a break opportunity after the last hard break) at
    the em distance their x implies, within 0.3 em."""
    pad = 4.0
    scales = np.arange(12.0, 40.0, 0.1)
    score = np.zeros(len(scales))
    for g in have:
        cum_em = np.concatenate(([0.0], np.cumsum(prior_em[g.text.codes])))
        opp = np.asarray(g.text.seg_a, dtype=np.int64)
        ci = g.rows.ci
        keep = (ci < g.text.n) & ~g.text.is_nl[ci]
        ci, x = ci[keep], g.rows.x[keep]
        if not len(ci):
            continue
        hard = np.array(sorted({0} | {i + 1 for i in np.flatnonzero(g.text.is_nl[:-1]).tolist()}))
        hs = hard[np.searchsorted(hard, ci, "right") - 1]
        for j, sc in enumerate(scales):
            target = cum_em[ci] - (x - pad) / sc  # cum_em at the implied line start
            k = np.searchsorted(cum_em[opp], target)
            best = np.full(len(ci), np.inf)
            for kk in (k - 1, k):
                kc = np.clip(kk, 0, len(opp) - 1)
                ok = (opp[kc] <= ci) & (opp[kc] >= hs)
                d = np.abs(cum_em[opp[kc]] - target)
                best = np.where(ok, np.minimum(best, d), best)
            score[j] += float((best < 0.3).sum())
    if not score.any():
        return 24.0, pad
    return float(scales[int(np.argmax(score))]), pad


def _robust_line(e: np.ndarray, x: np.ndarray) -> tuple[float, float] | None:
    """``x ~ pad + scale * e`` fitted robustly: the scale (8 .. 60 px/em) whose median
    intercept explains the most rows within a quarter em, the inset kept plausible
    (-20 .. 80 px), then least squares on those rows. Repeated rows (a resting mouse)
    count once. None when no scale explains at least a third of the rows."""
    ex = np.unique(np.c_[e, x], axis=0)
    e, x = ex[:, 0], ex[:, 1]
    best = None
    for sc in np.arange(8.0, 60.0, 0.1):
        r = x - sc * e
        pad = float(np.median(r))
        if not -20.0 <= pad <= 80.0:
            continue
        inl = np.abs(r - pad) < max(4.0, 0.25 * sc)
        score = int(inl.sum())
        if best is None or score > best[0]:
            best = (score, sc, pad, inl)
    if best is None or best[0] < max(3, len(e) / 3):
        return None
    _, sc, pad, inl = best
    A = np.c_[e[inl], np.ones(int(inl.sum()))]
    coef = np.linalg.lstsq(A, x[inl], rcond=None)[0]
    return float(coef[0]), float(coef[1])


def _ridge_widths(rows_a: list, x: np.ndarray, prior: np.ndarray, pad0: float, lam: float = 4.0):
    v = len(prior)
    A = np.zeros((len(rows_a), v + 1))
    for i, codes in enumerate(rows_a):
        if len(codes):
            np.add.at(A[i], codes, 1.0)
    A[:, v] = 1.0
    reg = np.full(v + 1, lam)
    reg[v] = 1e-6
    target = np.append(prior, pad0)
    M = A.T @ A + np.diag(reg)
    b = A.T @ x + reg * target
    sol = np.linalg.solve(M, b)
    w = np.clip(sol[:v], 0.3 * prior, 2.5 * prior + 1e-9)
    return w, float(sol[v])


def _fit_pitch(groups, scale: float, report) -> float:
    """Line pitch: the value most short stretches of rows allow.

    Within one scroll state every row satisfies ``k * pitch <= y + u < (k + 1) * pitch``;
    rows on a text's first line only ``y + u < pitch`` and rows on its last line only
    ``y + u >= k * pitch`` (the browser gives the first / last line's caret for any point
    above / below the text). For every stretch of rows within ``_STRETCH_S`` (the box
    rarely scrolls that fast) that spans at least two lines, the pitches for which some
    ``u`` satisfies all its rows form a range; the pitch is the middle of the range that
    most stretches (weighted by the lines they span) allow. Stretches across a scroll
    allow nothing sensible and lose the vote. (Likelihood methods that treat rows as
    independent fail here: consecutive WebGazer samples are strongly correlated.) With
    too few stretches, ``_PITCH_EM`` em is assumed."""
    grid = np.arange(1.0 * scale, 6.0 * scale, 0.25)
    votes = np.zeros(len(grid))
    n_stretch = 0
    for g in groups.values():
        t, y, k = g.rows.t, g.rows.y, g.line.astype(np.float64)
        if len(t) < 2:
            continue
        first = g.line == 0
        last = g.line == len(g.starts) - 1
        ends = np.searchsorted(t, t + _STRETCH_S, "left")
        for i in range(len(t)):
            j = ends[i]
            if j - i < 2:
                continue
            kk = k[i:j]
            span = kk.max() - kk.min()
            if span < 1:
                continue
            lo = kk[:, None] * grid[None, :] - y[i:j, None]
            hi = lo + grid[None, :]
            lo = np.where(first[i:j, None], -np.inf, lo)
            hi = np.where(last[i:j, None], np.inf, hi)
            ok = lo.max(axis=0) < hi.min(axis=0) + 2.0
            votes += span * ok
            n_stretch += 1
    if n_stretch < 3 or votes.max() <= 0:
        report["notes"].append(f"too few stretches of rows over several lines for the line pitch: "
                               f"{_PITCH_EM} em assumed")
        return _PITCH_EM * scale
    best = np.flatnonzero(votes >= votes.max() - 1e-9)
    run = best[best - best[0] == np.arange(len(best))]  # the contiguous run holding the first maximum
    report["pitch_stretches"] = n_stretch
    return float(grid[run].mean())


def _self_check(groups, cums, pad, pitch) -> float:
    """Fraction of the fitted rows whose own line and x the layout reproduces."""
    hit = tot = 0
    for key, g in groups.items():
        if not len(g.rows.t):
            continue
        u = _track_at(g.u_t, g.u_v, g.rows.t)
        k = np.floor((g.rows.y + u) / pitch).astype(np.int64)
        hit += int((k == g.line).sum())
        tot += len(k)
    return hit / tot if tot else math.nan


def _text_geometry(g: _Group, cum: np.ndarray, pad: float, wrap_w: float, pitch: float,
                  origin: tuple[np.ndarray, np.ndarray], box_w: float, box_h_rows) -> TextGeometry:
    text = g.text.text
    n = g.text.n
    starts = g.starts
    n_lines = len(starts)
    ends_raw = np.append(starts[1:], n)
    # a line's content ends before its "\n" (hard) or at the next line's start (soft)
    l_ce = ends_raw.copy()
    nl_end = (ends_raw > starts) & g.text.is_nl[np.clip(ends_raw - 1, 0, None)]
    l_ce[nl_end] -= 1
    l_ce = np.maximum(l_ce, starts)
    pars = paragraph_spans(text)
    words = word_spans(text)
    # lines that belong to a paragraph (hold a non-space character)
    par_of_line = np.full(n_lines, -1, np.int64)
    if len(pars):
        i = np.searchsorted(pars[:, 0], starts, "right") - 1
        ic = np.clip(i, 0, len(pars) - 1)
        inside = (i >= 0) & (starts < pars[ic, 1])
        has_text = np.array([bool(text[a:b].strip()) for a, b in zip(starts.tolist(), l_ce.tolist())], dtype=bool)
        par_of_line = np.where(inside & has_text, ic, -1)
    keep_line = np.flatnonzero(par_of_line >= 0)
    line_index = np.full(n_lines, -1, np.int64)
    line_index[keep_line] = np.arange(len(keep_line))
    # line boxes: natural width (content without trailing spaces)
    x_of = lambda c, line: pad + cum[c] - cum[starts[line]]  # noqa: E731
    l_vis = np.array([len(text[a:b].rstrip()) + a for a, b in zip(starts.tolist(), l_ce.tolist())], dtype=np.int64)
    ln = np.arange(n_lines)
    lx1 = x_of(l_vis, ln)
    ly0 = ln * pitch
    ly1 = ly0 + pitch
    # word fragments
    f_line, f_x0, f_x1, f_word, f_cs, f_ce = [], [], [], [], [], []
    if len(words):
        for w_i, (a, b) in enumerate(words.tolist()):
            la = int(np.searchsorted(starts, a, "right") - 1)
            lb = int(np.searchsorted(starts, b - 1, "right") - 1)
            for line in range(la, lb + 1):
                ca = max(a, int(starts[line]))
                cb = min(b, int(l_ce[line]) if line < lb else b)
                if cb <= ca:
                    continue
                f_line.append(line)
                f_x0.append(x_of(ca, line))
                f_x1.append(x_of(cb, line))
                f_word.append(w_i)
                f_cs.append(ca)
                f_ce.append(cb)
    f_line = np.asarray(f_line, np.int64)
    f_word = np.asarray(f_word, np.int64)
    keep_f = np.flatnonzero(line_index[f_line] >= 0) if len(f_line) else np.zeros(0, np.int64)
    # box geometry
    bw = max(box_w, pad * 2 + wrap_w) if math.isfinite(box_w) else pad * 2 + wrap_w
    u_min = float(np.min(g.u_v))
    t_rows, y_rows = box_h_rows
    m = (t_rows >= g.t0) & (t_rows < g.t1)
    bh = float(y_rows[m].max()) + 1.0 if m.any() else (float(y_rows.max()) + 1.0 if len(y_rows) else n_lines * pitch)
    resp_y0 = min(u_min, 0.0)
    resp_y1 = max(n_lines * pitch - resp_y0, resp_y0 + bh)
    # boxes
    b = {k: [] for k in ("level", "index", "par", "line", "x0", "y0", "x1", "y1", "cs", "ce", "text")}

    def add(level, index, par, line, x0, y0, x1, y1, cs, ce, txt):
        for k, v in zip(b, (level, index, par, line, x0, y0, x1, y1, cs, ce, txt)):
            b[k].append(v)

    add(int(LayoutLevel.RESPONSE), 0, -1, -1, 0.0, resp_y0, bw, resp_y1, 0, n, "")
    for p_i, (a, e) in enumerate(pars.tolist()):
        ls = np.flatnonzero(par_of_line == p_i)
        if not len(ls):
            continue
        add(int(LayoutLevel.PARAGRAPH), p_i, p_i, -1, pad, ly0[ls[0]], pad + wrap_w, ly1[ls[-1]], a, e, "")
    for line in keep_line.tolist():
        add(int(LayoutLevel.LINE), int(line_index[line]), int(par_of_line[line]), int(line_index[line]),
            pad, ly0[line], max(lx1[line], pad), ly1[line], int(starts[line]), int(l_ce[line]), "")
    for j in keep_f.tolist():
        line = f_line[j]
        add(int(LayoutLevel.WORD), int(f_word[j]), int(par_of_line[line]), int(line_index[line]),
            f_x0[j], ly0[line], f_x1[j], ly1[line], f_cs[j], f_ce[j], text[f_cs[j]:f_ce[j]])
    # knots: every character boundary of the kept lines
    k_line, k_x, k_char = [], [], []
    local = {int(line): i for i, line in enumerate(keep_line.tolist())}
    for line in keep_line.tolist():
        cs_, ce_ = int(starts[line]), int(l_ce[line])
        cc = np.arange(cs_, ce_ + 1)
        k_line.append(np.full(len(cc), local[line]))
        k_x.append(x_of(cc, line))
        k_char.append(cc.astype(float))
    # states: box origin changes and scroll changes
    o_t, o_v = origin
    inside = lambda v: v[(v > g.t0) & (v < g.t1)]  # noqa: E731
    times = np.unique(np.concatenate(([g.t0], inside(o_t), inside(g.u_t))))
    ov = _track_at(o_t, o_v, times)
    uv = _track_at(g.u_t, g.u_v, times)
    return TextGeometry(
        turn=g.turn, response=g.response, t0=g.t0, t1=g.t1,
        s_t=times, s_dx=ov[:, 0], s_dy=ov[:, 1] - uv,
        s_vx0=ov[:, 0], s_vy0=ov[:, 1], s_vx1=ov[:, 0] + bw, s_vy1=ov[:, 1] + bh,
        b_level=b["level"], b_index=b["index"], b_par=b["par"], b_line=b["line"],
        b_x0=b["x0"], b_y0=b["y0"], b_x1=b["x1"], b_y1=b["y1"], b_cs=b["cs"], b_ce=b["ce"],
        b_text=b["text"],
        l_y0=ly0[keep_line], l_y1=ly1[keep_line], l_hx0=np.zeros(len(keep_line)),
        l_hx1=np.full(len(keep_line), bw), l_cs=starts[keep_line], l_ce=l_ce[keep_line],
        l_par=par_of_line[keep_line], l_index=line_index[keep_line],
        k_line=np.concatenate(k_line) if k_line else np.zeros(0, np.int64),
        k_x=np.concatenate(k_x) if k_x else np.zeros(0),
        k_char=np.concatenate(k_char) if k_char else np.zeros(0),
        f_line=np.array([local[int(f_line[j])] for j in keep_f.tolist()], dtype=np.int64),
        f_x0=np.asarray(f_x0, float)[keep_f] if len(keep_f) else np.zeros(0),
        f_x1=np.asarray(f_x1, float)[keep_f] if len(keep_f) else np.zeros(0),
        f_word=f_word[keep_f] if len(keep_f) else np.zeros(0, np.int64),
    )
