"""Feature rows of a session: one per answer of each turn and one per pairwise question.

:func:`session_features` opens a session file (recorded by the app or imported), finds what
it has (gaze, fixations, layout, word-level accuracy, mouse, clicks, scrolls, validation,
timing) and computes every registered feature it can. A feature whose data the session
lacks is NaN, and :attr:`SessionFeatures.undefined` says why (an imported WebGazer
session has no clicks: its click features are "not recorded", never 0).

Rows carry their ids and labels beside the features: ``session``, ``participant``,
``study``, ``source``, ``turn``, ``mode``; per answer ``response``, ``model``,
``shown_left``, ``likert`` (1-5, -1 none), ``vs_previous``; per comparison ``model_1``,
``model_2``, ``preference`` (1 answer 1, 2 answer 2, 0 tie, -1 none).

Comparison features are answer 1 minus answer 2 (``d_`` + the answer feature's name) for
the gaze, mouse and text features, and for those never negative also the log ratio of
answer 1 to answer 2 (``r_`` + name; scale-free, so a slow and a fast reader's "twice as
long on answer 1" read alike), the comparison-only gaze and mouse features, and the
turn's context and quality (``c_`` + name).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..session import SessionReader
from ..session.schema import MouseKind
from . import gaze as G
from .mouse import hover_measures, trajectory_measures
from .registry import FEATURES, check_values, feature, features_of
from .text import text_features

__all__ = ["SessionFeatures", "session_features", "WORD_LEVEL_MAX_DEG", "ID_COLUMNS_RESPONSE",
           "ID_COLUMNS_COMPARISON"]

WORD_LEVEL_MAX_DEG = 1.5  #: word-level gaze features only for sessions validated at least this well (deg)

ID_COLUMNS_RESPONSE = ("session", "participant", "study", "source", "turn", "mode", "response", "model",
                       "shown_left", "likert", "vs_previous")
ID_COLUMNS_COMPARISON = ("session", "participant", "study", "source", "turn", "mode", "model_1", "model_2",
                         "preference")

# -- context and quality (per answer; copied to comparisons as c_ + name) ----------------------
QUESTION = feature("ctx_question_chars", "context", "chars", "length of the question")
TURN_INDEX = feature("ctx_turn_index", "context", "count", "the question's place in the session (0 first)")
DECISION = feature("ctx_decision_s", "context", "s", "time from the answer's onset to the ratings",
                   needs=("timing",))
SHOWN_LEFT = feature("ctx_shown_left", "context", "0/1", "1 when the answer was shown on the left (or alone)")
VALID = feature("q_gaze_valid_share", "quality", "share", "share of the turn's gaze samples marked valid",
                needs=("gaze",))
RATE = feature("q_gaze_hz", "quality", "Hz", "gaze samples per second during the turn", needs=("gaze",))
COVERED = feature("q_gaze_covered", "quality", "share", f"share of the turn's time within {G.HOLD_S:g} s of a "
                  "valid gaze sample", needs=("gaze",))
VALIDATION = feature("q_validation_deg", "quality", "deg", "mean accuracy of the session's last gaze validation",
                     needs=("validation",))
PRECISION = feature("q_calibration_precision", "quality", "share",
                    "the tracker's own calibration score (imported WebGazer sessions: the site's precision)")
CLICKS = feature("mouse_clicks", "mouse", "count", "button presses during the turn", needs=("clicks",))
SCROLLS = feature("mouse_scrolls", "mouse", "count", "scroll steps during the turn", needs=("scroll",))
SIDE_1 = feature("ctx_answer1_side", "context", "side", "+1 when answer 1 was shown on the left, -1 on the right",
                 needs=("pairwise",), level="comparison")
HOVER_LAST = feature("mouse_last_hover", "mouse", "side", "answer the cursor was over last: +1 answer 1, "
                     "-1 answer 2", needs=("mouse", "layout", "pairwise"), level="comparison")

_CONTEXT = (QUESTION, TURN_INDEX, DECISION, VALID, RATE, COVERED, VALIDATION, PRECISION)
_DIFF_GROUPS = ("gaze", "mouse", "text")
# units of values that are never negative, with the offset their log ratio adds to both
# answers (so that 0 against 0 is 0 and 0 against a little stays finite)
RATIO_OFFSET = {"s": 0.1, "count": 1.0, "chars": 1.0, "words": 1.0, "share": 0.01, "chars/s": 1.0, "px/s": 1.0,
                "px/s^2": 1.0}


def _register_comparisons() -> None:
    for f in features_of(level="response"):
        if f.group in _DIFF_GROUPS:
            feature(f"d_{f.name}", f.group, f.unit, f"answer 1 minus answer 2: {f.meaning}",
                    needs=f.needs + ("pairwise",), level="comparison")
            if f.unit in RATIO_OFFSET:
                feature(f"r_{f.name}", f.group, "log ratio", f"log((answer 1 + {RATIO_OFFSET[f.unit]:g}) / (answer 2 "
                        f"+ {RATIO_OFFSET[f.unit]:g})): {f.meaning}", needs=f.needs + ("pairwise",), level="comparison")
        elif f.name in _CONTEXT:
            feature(f"c_{f.name}", f.group, f.unit, f.meaning, needs=f.needs + ("pairwise",), level="comparison")


@dataclass
class SessionFeatures:
    """What :func:`session_features` found: ``responses`` and ``comparisons`` (lists of
    row dicts), ``undefined`` (``{need: why}`` for every kind of data the session lacks)
    and ``notes`` (anything else worth knowing, e.g. a fixation detector that failed)."""

    path: str
    responses: list[dict] = field(default_factory=list)
    comparisons: list[dict] = field(default_factory=list)
    undefined: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def undefined_features(self, level: str = "response") -> dict[str, str]:
        """Features of ``level`` left NaN for want of data, with the reason."""
        out = {}
        for f in features_of(level=level):
            why = next((self.undefined[n] for n in f.needs if n in self.undefined), None)
            if why is not None:
                out[f.name] = why
        return out


def _blank(level: str, out: dict, missing: dict[str, str]) -> None:
    for f in features_of(level=level):
        if any(n in missing for n in f.needs):
            out[f.name] = math.nan


def session_features(path: str | os.PathLike, *, fixation_method: str = "idt") -> SessionFeatures:
    """Every feature of every turn of the session at ``path`` (see the module docstring).
    Raises :class:`~ifllm_lab.session.SessionFileError` for a file that cannot be read."""
    from ..analysis import events as E
    from ..analysis.aoi import LayoutTimeline
    from ..analysis.metrics import response_metrics, turn_onsets
    from ..analysis.sources import is_foreign
    from ..session.catalog import last_validation_deg

    path = os.fspath(path)
    res = SessionFeatures(path)
    missing = res.undefined
    with SessionReader(path) as r:
        meta = r.meta
        ids = {"session": meta.session_id or os.path.splitext(os.path.basename(path))[0],
               "participant": meta.participant, "study": meta.study, "source": meta.source}
        if "turns" not in r or not len(r["turns"]):
            missing["turns"] = "the session has no questions"
            return res
        turns = r["turns"].read()
        onsets = turn_onsets(r)
        foreign = is_foreign(r)  # imported from elsewhere (no clicks, scrolls or per-event cursor)
        # -- what the session has
        gaze = E.load_gaze(r) if "gaze" in r and len(r["gaze"]) else None
        if gaze is None or not int(np.count_nonzero(gaze.valid)):
            missing["gaze"] = "no valid gaze samples"
            gaze = None
        layout = None
        try:
            layout = LayoutTimeline.for_session(r)
        except Exception as exc:  # an imported source without a registered reconstruction, a broken layout
            missing["layout"] = f"no text layout ({exc})"
        if layout is None and "layout" not in missing:
            missing["layout"] = "no text layout"
        fix_rows: dict[tuple[int, int], dict] = {}
        if gaze is not None and layout is not None:
            try:
                ev = E.detect(r, fixation_method)
                fix_rows = {(m["turn"], m["response"]): m for m in response_metrics(ev, layout, r)}
            except Exception as exc:
                missing["fixations"] = f"fixation detection failed: {exc}"
                res.notes.append(missing["fixations"])
        else:
            missing["fixations"] = "needs gaze and a layout"
        deg = last_validation_deg(r)
        if not math.isfinite(deg):
            missing["validation"] = "no gaze validation in degrees"
        if not math.isfinite(deg) or deg > WORD_LEVEL_MAX_DEG:
            missing["words"] = (f"word-level gaze needs a validation error <= {WORD_LEVEL_MAX_DEG:g} deg "
                                f"({'none' if not math.isfinite(deg) else f'{deg:.2f} deg'})")
        mouse = r["mouse"].read(columns=["t", "kind", "x", "y"]) if "mouse" in r and len(r["mouse"]) else None
        if mouse is None:
            missing["mouse"] = "no cursor data"
        if foreign:
            missing["mouse_events"] = "imported: the cursor was sampled, not recorded per event"
            missing["clicks"] = "imported: button presses were not recorded"
            missing["scroll"] = "imported: scrolling was not recorded"
        scroll_t = r["scroll"].column("t") if "scroll" in r and len(r["scroll"]) else np.zeros(0)
        precision = math.nan
        task = (meta.extra or {}).get("task") or {}
        try:
            precision = float(task.get("accuracy", "nan")) / 100.0
        except (TypeError, ValueError):
            pass
        ends = [gaze.t[-1] if gaze is not None else -math.inf, mouse["t"][-1] if mouse is not None else -math.inf]
        session_end = float(max(ends)) if max(ends) > -math.inf else math.nan
        if not np.isfinite(turns["t_rated"].astype(np.float64)).any():
            missing["timing"] = "no rating times recorded" + (" (imported)" if foreign else "")

        for i, tr in enumerate(turns):
            turn = int(tr["turn"])
            onset, t0, t1 = onsets.get(turn, (float(tr["t"]), float(tr["t"]), math.inf))
            rated = float(tr["t_rated"])
            decision = rated if math.isfinite(rated) else t1
            if not math.isfinite(decision):  # the last question of a session that stopped: its data's end
                decision = max(session_end, onset)
            pairwise = bool(tr["response_2"])
            codes = (1, 2) if pairwise else (0,)
            swapped = int(tr["swapped"]) == 1
            g = G.GazeTurn(gaze.t, np.where(gaze.valid, gaze.x, np.nan), np.where(gaze.valid, gaze.y, np.nan),
                           layout, onset, decision) if gaze is not None and layout is not None else None
            window_gaze = None
            if gaze is not None:
                sel = (gaze.t >= onset) & (gaze.t < decision)
                window_gaze = (gaze.t[sel], gaze.valid[sel])
            ctx = _context(tr, i, onset, decision, window_gaze, deg, precision)
            if mouse is not None:
                msel = (mouse["t"] >= onset) & (mouse["t"] < decision)
                mt, mx, my = (mouse[c][msel].astype(np.float64) for c in ("t", "x", "y"))
                traj = trajectory_measures(mt, mx, my)
                presses = int(np.count_nonzero(mouse["kind"][msel] == int(MouseKind.PRESS))) if not foreign else None
                m_resp = None
                if layout is not None and len(mt):
                    mm = layout.map_points(mt, mx, my)
                    m_resp = np.where(mm["prompt"], -1, mm["response"])
            base = {**ids, "turn": turn, "mode": "pairwise" if pairwise else "pointwise"}
            per_answer = {}
            for k, code in enumerate(codes):
                text = str(tr[f"response_{k + 1}"])
                values: dict[str, float] = dict(ctx)
                values[SHOWN_LEFT] = float((code == 1 and not swapped) or (code == 2 and swapped) or code == 0)
                values.update(text_features(text))
                if g is not None:
                    lines = layout.n_lines(turn, code)
                    values.update(G.response_gaze(g, code, n_chars=len(text), n_lines=lines,
                                                  metrics=fix_rows.get((turn, code)), onset=onset))
                if mouse is not None:
                    values.update(traj)
                    if m_resp is not None:
                        values.update(hover_measures(mt, m_resp == code, onset, decision))
                    values[CLICKS] = float(presses) if presses is not None else math.nan
                    values[SCROLLS] = float(np.count_nonzero((scroll_t >= onset) & (scroll_t < decision)))
                _blank("response", values, missing)
                for f in features_of(level="response"):
                    values.setdefault(f.name, math.nan)
                check_values(values, "response")
                per_answer[code] = values
                res.responses.append({
                    **base, "response": code, "model": str(tr[f"model_{k + 1}"]),
                    "shown_left": int(values[SHOWN_LEFT]), "likert": int(tr[f"likert_{k + 1}"]),
                    "vs_previous": int(tr["vs_previous"]), **values,
                })
            if pairwise:
                res.comparisons.append({**base, "model_1": str(tr["model_1"]), "model_2": str(tr["model_2"]),
                                        "preference": int(tr["preference"]),
                                        **_comparison(per_answer[1], per_answer[2], g, m_resp if mouse is not None
                                                      else None, missing)})
    return res


def _context(tr, index: int, onset: float, decision: float, window_gaze, deg: float, precision: float) -> dict:
    out = {
        QUESTION: float(len(str(tr["prompt"]))),
        TURN_INDEX: float(index),
        DECISION: decision - onset if math.isfinite(float(tr["t_rated"])) else math.nan,
        VALIDATION: deg,
        PRECISION: precision,
    }
    if window_gaze is not None:
        t, valid = window_gaze
        span = decision - onset
        out[VALID] = float(valid.mean()) if len(valid) else math.nan
        out[RATE] = len(t) / span if span > 0 else math.nan
        tv = t[valid.astype(bool)]
        held = np.clip(np.diff(tv, append=decision), 0, G.HOLD_S).sum() if len(tv) else 0.0
        out[COVERED] = float(held / span) if span > 0 else math.nan
    return out


def _difference(f, a: float, b: float) -> dict[str, float]:
    """Answer 1 against answer 2 on feature ``f``: ``d_`` their difference, ``r_`` their log
    ratio (units that have one; NaN stays NaN)."""
    out = {f"d_{f.name}": a - b}
    if f.unit in RATIO_OFFSET:
        off = RATIO_OFFSET[f.unit]
        out[f"r_{f.name}"] = math.log((a + off) / (b + off)) if a >= 0 and b >= 0 else math.nan
    return out


def text_comparison(text_1: str, text_2: str) -> dict[str, float]:
    """The comparison features of two answers that their texts alone give (``d_text_*`` and
    ``r_text_*``), for answers nobody has read yet."""
    a, b = text_features(text_1), text_features(text_2)
    out: dict[str, float] = {}
    for f in features_of(level="response", group="text"):
        out.update(_difference(f, a[f.name], b[f.name]))
    return out


def _comparison(a: dict, b: dict, g, m_resp, missing: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for f in features_of(level="response"):
        if f.group in _DIFF_GROUPS:
            out.update(_difference(f, a[f.name], b[f.name]))
        elif f.name in _CONTEXT:
            out[f"c_{f.name}"] = a[f.name]
    out[SIDE_1] = 1.0 if a[SHOWN_LEFT] else -1.0
    if g is not None:
        out.update(G.comparison_gaze(g))
    if m_resp is not None:
        seq = m_resp[(m_resp == 1) | (m_resp == 2)]
        out[HOVER_LAST] = (1.0 if seq[-1] == 1 else -1.0) if len(seq) else math.nan
    _blank("comparison", out, missing)
    for f in features_of(level="comparison"):
        out.setdefault(f.name, math.nan)
    return check_values(out, "comparison")


_register_comparisons()
assert all(f.name in FEATURES for f in features_of())
