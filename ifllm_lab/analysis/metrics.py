"""Reading measures per response (and per word) from fixations and the text layout.

Plain numpy, no Qt. Input is fixations as arrays -- ``onset`` and ``duration`` in s on the
session clock, ``x``, ``y`` in screen px (page px for imported sessions) -- from any
detector (:class:`ifllm_lab.analysis.events.Events` works as it is) and a
:class:`~ifllm_lab.analysis.aoi.LayoutTimeline`.

Assignment
----------
Each fixation is placed at the midpoint of its onset and offset (``onset + duration / 2``)
and mapped with :meth:`LayoutTimeline.map_points`: it is *in a response* when it falls
inside that response's visible view (margins and the space between words count), and *on
a word* when it falls inside the word's box.

Measures per (turn, response) -- :func:`response_metrics`
---------------------------------------------------------
``dwell_s``
    summed duration of the fixations in the response, s.
``fixations``
    their number.
``ttff_s``
    time to first fixation: onset of the first fixation in the response minus the turn's
    answer onset -- ``turns.t_first_token`` (the first streamed token was shown) for
    recorded sessions; imported IFLLM sessions have no such time and use the turn's own
    ``t`` (when the question was logged; the answer appeared seconds later, so their TTFF
    includes the generation time). NaN when never fixated.
``visits`` / ``revisits``
    a visit is a maximal run of consecutive fixations of the turn (in onset order, all
    fixations of the turn's time span counted, wherever they are) that are in the
    response; revisits = visits - 1 (0 when never visited).
``coverage``
    fraction of the response's words fixated at least once (``words_fixated / n_words``).
``regressions``
    word regressions: fixations on a word with a smaller index than the word of the
    previous word-fixation *of the same visit*; ``line_regressions`` the same for lines
    (a fixation on an earlier line). ``regression_rate`` = regressions / word-to-word
    transitions within visits. Returns to an earlier part after reading elsewhere are
    revisits, not regressions.
``first_fixation_s`` / ``mean_fixation_s``
    onset of the first fixation (session clock) and the mean fixation duration.

Measures per word -- :func:`word_metrics`
------------------------------------------
``total_fixation_s`` (summed duration), ``first_fixation_s`` (duration of the first
fixation on the word), ``fixation_count``, ``first_onset_s`` (onset of that first
fixation, session clock; NaN when never fixated), ``regression_in`` (fixations that
landed on the word by a word regression), plus the word's text, line and paragraph.

With webcam gaze (1-2 degrees of error, see DESIGN) per-word figures are estimates: they
say where the assigned fixation centroids fell, not what was certainly read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .aoi import LayoutTimeline

__all__ = [
    "WORD_DTYPE", "Fixations", "fixations_of", "map_fixations", "response_metrics", "turn_metrics",
    "turn_onsets", "word_metrics",
]

#: Fields of :func:`word_metrics`' structured array.
WORD_DTYPE = np.dtype([
    ("word", "i4"), ("text", object), ("line", "i4"), ("paragraph", "i4"), ("total_fixation_s", "f8"),
    ("first_fixation_s", "f8"), ("fixation_count", "i4"), ("first_onset_s", "f8"), ("regression_in", "i4"),
])

_NAMES = {0: "response", 1: "response 1", 2: "response 2"}


@dataclass
class Fixations:
    """Fixations as arrays (s, s, px, px), sorted by onset."""

    onset: np.ndarray
    duration: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        self.onset = np.asarray(self.onset, dtype=np.float64).reshape(-1)
        self.duration = np.asarray(self.duration, dtype=np.float64).reshape(-1)
        self.x = np.asarray(self.x, dtype=np.float64).reshape(-1)
        self.y = np.asarray(self.y, dtype=np.float64).reshape(-1)
        n = len(self.onset)
        if not (len(self.duration) == len(self.x) == len(self.y) == n):
            raise ValueError("fixation arrays differ in length")
        o = np.argsort(self.onset, kind="stable")
        if not np.array_equal(o, np.arange(n)):
            self.onset, self.duration, self.x, self.y = self.onset[o], self.duration[o], self.x[o], self.y[o]

    def __len__(self) -> int:
        return len(self.onset)

    def between(self, t0: float, t1: float) -> "Fixations":
        """Fixations with ``t0 <= onset < t1``."""
        m = (self.onset >= t0) & (self.onset < t1)
        return Fixations(self.onset[m], self.duration[m], self.x[m], self.y[m])


def fixations_of(source) -> Fixations:
    """:class:`Fixations` from an ``Events`` (only its FIXATION rows), a ``Fixations``, a
    mapping / structured array with onset (or t), duration, x, y, or a 4-tuple of arrays."""
    if isinstance(source, Fixations):
        return source
    if hasattr(source, "fixations") and callable(source.fixations) and hasattr(source, "onset"):
        ev = source.fixations()
        return Fixations(ev.onset, ev.duration, ev.x, ev.y)
    if hasattr(source, "onset") and hasattr(source, "duration"):
        return Fixations(source.onset, source.duration, source.x, source.y)
    if isinstance(source, tuple) and len(source) == 4:
        return Fixations(*source)
    names = source.dtype.names if isinstance(source, np.ndarray) else tuple(source)
    onset = source["onset"] if "onset" in names else source["t"]
    return Fixations(onset, source["duration"], source["x"], source["y"])


def map_fixations(fix, layout: LayoutTimeline) -> dict[str, np.ndarray]:
    """:meth:`LayoutTimeline.map_points` of every fixation at its midpoint time, plus its
    ``onset``, ``duration`` and ``mid``."""
    fix = fixations_of(fix)
    mid = fix.onset + fix.duration / 2.0
    m = layout.map_points(mid, fix.x, fix.y)
    m.update(onset=fix.onset, duration=fix.duration, mid=mid)
    return m


def turn_onsets(reader) -> dict[int, tuple[float, float, float]]:
    """Per turn ``(answer_onset, t, t_end)``: the answer onset is ``t_first_token`` where the
    session has it, else the turn's ``t`` (imported sessions); ``t_end`` is the next turn's
    ``t`` where the row has none."""
    if reader is None or "turns" not in reader or not len(reader["turns"]):
        return {}
    rows = reader["turns"].read(columns=["t", "turn", "t_first_token", "t_end"])
    out = {}
    for i, r in enumerate(rows):
        t = float(r["t"])
        first = float(r["t_first_token"])
        onset = first if math.isfinite(first) else t
        t_end = float(r["t_end"])
        if not math.isfinite(t_end) or t_end <= t:
            t_end = float(rows["t"][i + 1]) if i + 1 < len(rows) else math.inf
        out[int(r["turn"])] = (onset, t, t_end)
    return out


def _visits(in_resp: np.ndarray) -> np.ndarray:
    """Visit number (0, 1, ...) of every fixation of a sequence in the response, -1 others."""
    start = in_resp & ~np.concatenate(([False], in_resp[:-1]))
    return np.where(in_resp, np.cumsum(start) - 1, -1)


def _regressions(visit: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, int]:
    """Flags of fixations whose ``value`` (word or line, >= 0) is smaller than the previous
    valued fixation's of the same visit, and the number of comparable transitions."""
    idx = np.flatnonzero((visit >= 0) & (value >= 0))
    flags = np.zeros(len(value), dtype=bool)
    if len(idx) < 2:
        return flags, 0
    same = visit[idx[1:]] == visit[idx[:-1]]
    back = same & (value[idx[1:]] < value[idx[:-1]])
    flags[idx[1:][back]] = True
    return flags, int(same.sum())


def response_metrics(fixations, layout: LayoutTimeline, reader=None, *, turns=None,
                     onsets: dict | None = None) -> list[dict]:
    """Measures per (turn, response) with geometry (see the module docstring).

    ``reader`` (a SessionReader) gives the turns' answer onsets and time spans (without
    one, the layout's spans are used and TTFF counts from the text's first geometry);
    ``turns`` keeps some turn indices only; ``onsets`` overrides with
    ``{turn: (answer_onset, t0, t1)}``. Returns one dict per (turn, response): ``turn``,
    ``response``, ``aoi`` (a name), ``dwell_s``, ``fixations``, ``ttff_s``,
    ``first_fixation_s``, ``visits``, ``revisits``, ``n_words``, ``words_fixated``,
    ``coverage``, ``regressions``, ``line_regressions``, ``regression_rate``,
    ``mean_fixation_s``."""
    fix = fixations_of(fixations)
    m = map_fixations(fix, layout)
    onsets = dict(onsets) if onsets is not None else turn_onsets(reader)
    wanted = layout.turns() if turns is None else [int(t) for t in turns]
    out = []
    for turn in wanted:
        responses = [r for r in layout.responses if r >= 0 and not math.isnan(layout.span(turn, r)[0])]
        if turn in onsets:
            onset, t0, t1 = onsets[turn]
        else:
            spans = [layout.span(turn, r) for r in responses]
            t0 = min((s[0] for s in spans), default=math.nan)
            t1 = max((s[1] for s in spans), default=math.nan)
            onset = t0
        for r in responses:
            out.append(_one_response(m, layout, turn, r, onset, t0, t1))
    return out


def _one_response(m: dict, layout: LayoutTimeline, turn: int, response: int, onset: float,
                  t0: float, t1: float) -> dict:
    in_turn = (m["onset"] >= t0) & (m["onset"] < t1) if math.isfinite(t0) else np.ones(len(m["onset"]), bool)
    seq = np.flatnonzero(in_turn)
    hit = (m["turn"][seq] == turn) & (m["response"][seq] == response) & ~m["prompt"][seq]
    visit = _visits(hit)
    dur = m["duration"][seq]
    on = m["onset"][seq]
    words = m["word"][seq]
    lines = m["line"][seq]
    word_flags, transitions = _regressions(visit, np.where(hit, words, -1))
    line_flags, _ = _regressions(visit, np.where(hit, lines, -1))
    n_words = layout.n_words(turn, response)
    fixated = np.unique(words[hit & (words >= 0)])
    n_fix = int(hit.sum())
    first = float(on[hit][0]) if n_fix else math.nan
    n_visits = int(visit.max() + 1) if n_fix else 0
    return {
        "turn": int(turn), "response": int(response), "aoi": _NAMES.get(int(response), f"response {response}"),
        "dwell_s": float(dur[hit].sum()),
        "fixations": n_fix,
        "ttff_s": first - onset if n_fix and math.isfinite(onset) else math.nan,
        "first_fixation_s": first,
        "visits": n_visits,
        "revisits": max(0, n_visits - 1),
        "n_words": int(n_words),
        "words_fixated": int(len(fixated)),
        "coverage": float(len(fixated) / n_words) if n_words else math.nan,
        "regressions": int(word_flags.sum()),
        "line_regressions": int(line_flags.sum()),
        "regression_rate": float(word_flags.sum() / transitions) if transitions else math.nan,
        "mean_fixation_s": float(dur[hit].mean()) if n_fix else math.nan,
    }


def word_metrics(fixations, layout: LayoutTimeline, turn: int, response: int, *, t0: float = -math.inf,
                 t1: float = math.inf) -> np.ndarray:
    """Per-word measures of one response of a turn (:data:`WORD_DTYPE`, one row per word
    in word order), from the fixations with ``t0 <= onset < t1`` (see the module docstring)."""
    fix = fixations_of(fixations)
    words = layout.words(turn, response)
    out = np.zeros(len(words), WORD_DTYPE)
    if not len(words):
        return out
    out["word"] = words["index"]
    out["text"] = words["text"]
    out["line"] = words["line"]
    out["paragraph"] = words["paragraph"]
    out["first_fixation_s"] = np.nan
    out["first_onset_s"] = np.nan
    m = map_fixations(fix, layout)
    seq = np.flatnonzero((m["onset"] >= t0) & (m["onset"] < t1))
    hit = (m["turn"][seq] == turn) & (m["response"][seq] == response) & ~m["prompt"][seq]
    visit = _visits(hit)
    w = np.where(hit, m["word"][seq], -1)
    reg, _ = _regressions(visit, w)
    pos = {int(v): i for i, v in enumerate(out["word"].tolist())}
    for j in np.flatnonzero(w >= 0).tolist():
        i = pos.get(int(w[j]))
        if i is None:
            continue
        d = float(m["duration"][seq][j])
        out["total_fixation_s"][i] += d
        out["fixation_count"][i] += 1
        if out["fixation_count"][i] == 1:
            out["first_fixation_s"][i] = d
            out["first_onset_s"][i] = float(m["onset"][seq][j])
        if reg[j]:
            out["regression_in"][i] += 1
    return out


def turn_metrics(fixations, layout: LayoutTimeline, source=None, turn=None) -> list[dict]:
    """Rows for a table of one turn: :func:`response_metrics` of that turn only.

    ``source`` is a SessionReader or anything with a ``reader`` attribute (the replay's
    data); ``turn`` a turn index or an object with a ``turn`` attribute (None: all turns)."""
    reader = getattr(source, "reader", source)
    turns = None
    if turn is not None:
        turns = [int(getattr(turn, "turn", turn))]
    return response_metrics(fixations, layout, reader, turns=turns)
