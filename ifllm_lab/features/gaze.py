"""Gaze features of one answer (and of a pairwise question), from the session's gaze
samples, its fixations and its text layout.

Two views of the same gaze, because webcam gaze is coarse and often slow (imported
WebGazer sessions: ~10 Hz, ~4 degrees): *samples* (each valid sample held until the next,
at most :data:`HOLD_S`) give dwell even where no fixation can be detected, and
*fixations* give the reading measures (:mod:`ifllm_lab.analysis.metrics`). A sample or a
fixation belongs to an answer when it falls inside that answer's visible view
(:meth:`~ifllm_lab.analysis.aoi.LayoutTimeline.map_points`).

The window of a turn runs from the answer's onset (first token shown; the question's
time for imported sessions) to the decision (ratings submitted; the turn's end where
there is none). Units: seconds, counts, shares (0..1); positions are relative to the
answer's text (0 = its first character, 1 = its last).
"""
from __future__ import annotations

import math

import numpy as np

from ..analysis.events import true_runs
from .registry import feature

__all__ = ["HOLD_S", "LAST_S", "GazeTurn", "response_gaze", "comparison_gaze"]

HOLD_S = 0.2  #: a sample's state lasts until the next one, at most this long (s)
LAST_S = 3.0  #: "the last seconds before the choice" (s)

_NEEDS = ("gaze", "layout")
_FIX = ("gaze", "fixations", "layout")

DWELL = feature("gaze_dwell_s", "gaze", "s", "time the valid gaze spent on the answer", needs=_NEEDS)
SHARE = feature("gaze_dwell_share", "gaze", "share", "the answer's part of the gaze time on all answers of the turn",
                needs=_NEEDS)
WINDOW_SHARE = feature("gaze_window_share", "gaze", "share", "the answer's part of the turn's whole gaze time",
                       needs=_NEEDS)
LAST = feature("gaze_last_s", "gaze", "s", f"gaze time on the answer in the last {LAST_S:g} s before the decision",
               needs=_NEEDS)
FIRST_LOOK = feature("gaze_first_look_s", "gaze", "s", "time from the answer's onset to the first gaze on it",
                     needs=_NEEDS)
REACH = feature("gaze_reach", "gaze", "share", "furthest position in the text the gaze reached (0 start, 1 end)",
                needs=_NEEDS)
LINES = feature("gaze_lines_share", "gaze", "share", "share of the answer's lines the gaze fell on", needs=_NEEDS)
FIXES = feature("fix_count", "gaze", "count", "fixations on the answer", needs=_FIX)
FIX_TOTAL = feature("fix_total_s", "gaze", "s", "summed duration of the fixations on the answer", needs=_FIX)
FIX_MEAN = feature("fix_mean_s", "gaze", "s", "mean fixation duration on the answer", needs=_FIX)
TTFF = feature("fix_ttff_s", "gaze", "s", "time to first fixation on the answer, from its onset", needs=_FIX)
VISITS = feature("fix_visits", "gaze", "count", "visits: runs of consecutive fixations on the answer", needs=_FIX)
COVERAGE = feature("fix_word_coverage", "gaze", "share", "share of the answer's words fixated at least once",
                   needs=_FIX + ("words",))
REGRESS = feature("fix_line_regressions", "gaze", "count", "fixations landing on an earlier line within a visit",
                  needs=_FIX)
REGRESS_RATE = feature("fix_regression_rate", "gaze", "share",
                       "word regressions per word-to-word transition within visits", needs=_FIX + ("words",))
PER_LINE = feature("fix_per_line", "gaze", "count",
                   "fixations per line looked at (skimming: below ~2; reading: more)", needs=_FIX)
SPEED = feature("gaze_read_chars_s", "gaze", "chars/s", "reading speed: characters reached per second of dwell",
                needs=_NEEDS)

SWITCHES = feature("gaze_switches", "gaze", "count", "gaze moves from one answer to the other",
                   needs=_NEEDS + ("pairwise",), level="comparison")
LAST_LOOK = feature("gaze_last_look", "gaze", "side", "answer looked at last before the decision: +1 answer 1, "
                    "-1 answer 2", needs=_NEEDS + ("pairwise",), level="comparison")
LAST_LOOK_S = feature("gaze_last_look_s", "gaze", "s", "length of that last look", needs=_NEEDS + ("pairwise",),
                      level="comparison")
FIRST_SIDE = feature("gaze_first_look", "gaze", "side", "answer looked at first: +1 answer 1, -1 answer 2",
                     needs=_NEEDS + ("pairwise",), level="comparison")


class GazeTurn:
    """The gaze of one turn, mapped to answers once: ``t`` (s), ``dt`` (s each sample is
    held), ``response`` (the answer's code per sample, -1 none), ``char`` and ``line``
    (position in that answer, -1 none)."""

    def __init__(self, t: np.ndarray, x: np.ndarray, y: np.ndarray, layout, t0: float, t1: float):
        keep = (t >= t0) & (t < t1) & np.isfinite(x) & np.isfinite(y)
        self.t0, self.t1 = t0, t1
        self.t = t[keep]
        self.dt = np.clip(np.diff(self.t, append=t1), 0.0, HOLD_S) if len(self.t) else np.zeros(0)
        if len(self.t):
            m = layout.map_points(self.t, x[keep], y[keep])
            self.response = np.where(m["prompt"], -1, m["response"])
            self.char, self.line = m["char"], m["line"]
        else:
            self.response = self.char = self.line = np.zeros(0, np.int64)

    def on(self, response: int) -> np.ndarray:
        return self.response == response

    @property
    def on_any(self) -> np.ndarray:
        return self.response >= 0


def response_gaze(g: GazeTurn, response: int, *, n_chars: int, n_lines: int, metrics: dict | None,
                  onset: float) -> dict[str, float]:
    """Gaze features of one answer (see the registry for their meanings). ``metrics`` is the
    answer's row of :func:`~ifllm_lab.analysis.metrics.response_metrics` (None when no
    fixations could be detected: the fixation features are then NaN)."""
    on = g.on(response)
    dwell = float(g.dt[on].sum())
    total_answers = float(g.dt[g.on_any].sum())
    total = float(g.dt.sum())
    last = g.t >= g.t1 - LAST_S
    chars = g.char[on & (g.char >= 0)]
    reach = float(chars.max() / max(n_chars - 1, 1)) if len(chars) and n_chars else math.nan
    lines_seen = np.unique(g.line[on & (g.line >= 0)])
    out = {
        DWELL: dwell,
        SHARE: dwell / total_answers if total_answers > 0 else math.nan,
        WINDOW_SHARE: dwell / total if total > 0 else math.nan,
        LAST: float(g.dt[on & last].sum()),
        FIRST_LOOK: float(g.t[on][0] - onset) if on.any() and math.isfinite(onset) else math.nan,
        REACH: min(1.0, reach) if math.isfinite(reach) else math.nan,
        LINES: len(lines_seen) / n_lines if n_lines else math.nan,
        SPEED: (reach * n_chars / dwell) if dwell > 0 and math.isfinite(reach) else math.nan,
    }
    if metrics is None:
        out.update({k: math.nan for k in (FIXES, FIX_TOTAL, FIX_MEAN, TTFF, VISITS, COVERAGE, REGRESS, REGRESS_RATE,
                                           PER_LINE)})
    else:
        n_fix = float(metrics["fixations"])
        out.update({
            FIXES: n_fix,
            FIX_TOTAL: float(metrics["dwell_s"]),
            FIX_MEAN: float(metrics["mean_fixation_s"]),
            TTFF: float(metrics["ttff_s"]),
            VISITS: float(metrics["visits"]),
            COVERAGE: float(metrics["coverage"]),
            REGRESS: float(metrics["line_regressions"]),
            REGRESS_RATE: float(metrics["regression_rate"]),
            PER_LINE: n_fix / len(lines_seen) if len(lines_seen) else math.nan,
        })
    return out


def comparison_gaze(g: GazeTurn, first: int = 1, second: int = 2) -> dict[str, float]:
    """Comparison-only gaze features of a pairwise turn (answers ``first`` and ``second``)."""
    on_pair = (g.response == first) | (g.response == second)
    seq = g.response[on_pair]
    switches = float(np.count_nonzero(seq[1:] != seq[:-1])) if len(seq) > 1 else 0.0
    if not len(seq):
        return {SWITCHES: switches, LAST_LOOK: math.nan, LAST_LOOK_S: math.nan, FIRST_SIDE: math.nan}
    side = {first: 1.0, second: -1.0}
    last = int(seq[-1])
    starts, stops = true_runs(g.response == last)
    a, b = int(starts[-1]), int(stops[-1])
    return {
        SWITCHES: switches,
        LAST_LOOK: side[last],
        LAST_LOOK_S: float(g.dt[a:b].sum()),
        FIRST_SIDE: side[int(seq[0])],
    }
