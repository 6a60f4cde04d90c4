"""Mouse features of one answer's window: the cursor's trajectory (the measures of the
mousetrap R package, ``mt_measures``) and its hover over the answer.

Frame and units
---------------
Positions are px with y growing *downwards*: screen px for recorded sessions (cursor
events as they happened, up to ~1 kHz, plus a timer poll), page px for imported IFLLM
sessions (the cursor sampled ~10 Hz inside the gaze callback: no clicks, no scrolls).
Times are s on the session clock. Units: s, px, px/s, px/s^2, px^2, count, share (0..1).
Counts are returned as floats so that a missing value can be NaN.

Trajectory (:func:`trajectory_measures`)
----------------------------------------
Over the window's samples in time order; a sample with a NaN time or position is dropped.
The window's time *span* runs from its first to its last valid sample (time before the
first or after the last sample of the window is not seen).

- ``mouse_path_px``: summed distance between consecutive positions.
- ``mouse_speed_mean_px_s``: path / span.
- ``mouse_speed_max_px_s``: the largest speed, each speed measured from a sample to the
  first sample at least :data:`MIN_INTERVAL_S` (5 ms) later, as path travelled over that
  time. With ~10 Hz sampling these are the sample-to-sample speeds; with ~1 kHz events
  (or an event and a poll 0.1 ms apart) short intervals are spanned rather than divided
  by, so timer jitter cannot blow a speed up.
- ``mouse_accel_max_px_s2``: the largest absolute change between a speed and the speed
  of the next interval (the one starting where it ends), per second between their
  midpoints.
- ``mouse_moving_share``: the share of the span in sample-to-sample intervals faster
  than :data:`MOVING_PX_S` (20 px/s), weighted by the intervals' lengths.
- ``mouse_pauses`` / ``mouse_pause_s``: still periods of at least :data:`PAUSE_S`
  (0.5 s) and their summed time. An interval between consecutive samples is still when
  the cursor moved at most :data:`STILL_PX` (2 px) in it and no faster than 20 px/s -- so
  a sampling gap without movement is still; a period is a run of still intervals.
- ``mouse_x_flips`` / ``mouse_y_flips``: mousetrap's flips, the reversals of direction
  along x / y (moves of zero ignored), with a dead band of :data:`FLIP_PX` (2 px): a
  reversal counts once the cursor has come back *more than* 2 px from the furthest point
  it reached in the previous direction (mousetrap's ``flip_threshold``), so jitter of
  +-1 px is no flip while a slow reversal made of 1 px steps is one. Computed as the
  reversals of the play (backlash) operator of half-width 1 px on x / y, which a prefix
  scan of clamp functions evaluates without a loop over samples.
- ``mouse_mad_px``, ``mouse_ad_px``, ``mouse_auc_px2``: against the straight line from
  the first to the last valid position -- MAD the signed deviation of largest magnitude
  (its sign kept), AD the mean of the samples' signed deviations (a mean over samples,
  as in mousetrap, so it weights the places where samples are dense), AUC the signed
  area between path and line, from the shoelace formula on the polygon of the path closed
  back along the line (the same number as mousetrap's trapezoids on the trajectory
  rotated onto the line; areas on the two sides of the line cancel).

**Sign convention** (MAD, AD and AUC alike): positive when the path lies to the *left*
of the line as seen on screen by someone looking in the direction of travel (start to
end), negative to the right. With y down: a path from (0, 0) to (100, 0) through
(50, -30) -- above the line on screen -- has MAD +30, AD +10 (the mean over the three
samples) and AUC +1500 px^2; the mirror image (through (50, 30)) has -30, -10, -1500. The
sign does not change when the whole picture is moved or rotated; it flips when the path is
traversed backwards or mirrored.

NaN: every trajectory measure when the window has fewer than two valid samples;
``mouse_speed_mean_px_s`` and ``mouse_moving_share`` when the span is 0;
``mouse_speed_max_px_s`` when no two samples are 5 ms apart, ``mouse_accel_max_px_s2``
when there are not two successive such intervals; ``mouse_mad_px``, ``mouse_ad_px``,
``mouse_auc_px2`` when the first and last positions coincide (no straight line). The
others are then defined (0 where nothing happened).

Hover (:func:`hover_measures`)
------------------------------
``inside[i]`` says whether sample ``i`` lies over this answer. Sample-and-hold: a sample's
state lasts from it until the next sample (the window's end ``t1`` after the last one),
clipped to ``[t0, t1]``; the last sample before ``t0`` contributes the part of its hold
that reaches into the window. A hold longer than :data:`MAX_HOLD_S` (1 s) -- a gap in the
samples -- is unknown and not attributed to either state. A *visit* is a run of
consecutive samples over the answer (an unknown gap inside such a run does not split it
but adds no time); one already going on at ``t0`` counts.

- ``mouse_hover_s``: the time over the answer.
- ``mouse_hover_share``: that time / the known (attributed) time of the window.
- ``mouse_hover_entries``: the number of visits.
- ``mouse_last_hover_s``: the attributed time of the last visit -- the one that ended
  last before ``t1`` or is still going on at ``t1`` (clipped there).

NaN: every hover measure when no sample falls in ``[t0, t1]`` or none of the window's
time can be attributed (all gaps); ``mouse_last_hover_s`` also when the cursor never was
over the answer (its hover time and entries are then 0).

All of it is vectorised numpy: no Python loop runs over samples.
"""
from __future__ import annotations

import math

import numpy as np

from .registry import feature

__all__ = ["trajectory_measures", "hover_measures", "PAUSE_S", "STILL_PX", "FLIP_PX", "MOVING_PX_S",
           "MIN_INTERVAL_S", "MAX_HOLD_S"]

PAUSE_S = 0.5  #: shortest still period that counts as a pause (s)
STILL_PX = 2.0  #: most a still interval may move (px)
FLIP_PX = 2.0  #: dead band of the flips: a reversal must come back more than this (px)
MOVING_PX_S = 20.0  #: an interval faster than this is moving (px/s)
MIN_INTERVAL_S = 0.005  #: shortest interval a speed is measured over (s)
MAX_HOLD_S = 1.0  #: a hover sample's state lasts at most this long; a longer gap is unknown (s)

_EPS_S = 1e-9  # float slack on MIN_INTERVAL_S, so a 1 kHz clock spans exactly 5 samples

_N = ("mouse",)
PATH = feature("mouse_path_px", "mouse", "px", "distance the cursor travelled", needs=_N)
SPEED = feature("mouse_speed_mean_px_s", "mouse", "px/s", "mean cursor speed", needs=_N)
SPEED_MAX = feature("mouse_speed_max_px_s", "mouse", "px/s", "highest cursor speed", needs=_N)
ACCEL_MAX = feature("mouse_accel_max_px_s2", "mouse", "px/s^2", "largest change of cursor speed per second", needs=_N)
MOVING = feature("mouse_moving_share", "mouse", "share", f"share of the time the cursor moved (> {MOVING_PX_S:g} px/s)",
                 needs=_N)
PAUSES = feature("mouse_pauses", "mouse", "count", f"still periods of at least {PAUSE_S:g} s", needs=_N)
PAUSE_TIME = feature("mouse_pause_s", "mouse", "s", "time in those still periods", needs=_N)
XFLIPS = feature("mouse_x_flips", "mouse", "count", "reversals of horizontal direction (mousetrap x-flips)", needs=_N)
YFLIPS = feature("mouse_y_flips", "mouse", "count", "reversals of vertical direction (mousetrap y-flips)", needs=_N)
MAD = feature("mouse_mad_px", "mouse", "px", "signed maximum deviation from the straight start-end line (MAD)",
              needs=_N)
AD = feature("mouse_ad_px", "mouse", "px", "mean signed deviation from the straight start-end line (AD)", needs=_N)
AUC = feature("mouse_auc_px2", "mouse", "px^2", "signed area between the path and the straight start-end line (AUC)",
              needs=_N)
# hover needs the answer's area on screen as well as the cursor
HOVER = feature("mouse_hover_s", "mouse", "s", "time the cursor was over the answer", needs=_N + ("layout",))
HOVER_SHARE = feature("mouse_hover_share", "mouse", "share", "share of the turn's time the cursor was over the answer",
                      needs=_N + ("layout",))
ENTRIES = feature("mouse_hover_entries", "mouse", "count", "times the cursor came onto the answer",
                  needs=_N + ("layout",))
LAST_VISIT = feature("mouse_last_hover_s", "mouse", "s", "length of the cursor's last visit to the answer",
                     needs=_N + ("layout",))

_TRAJECTORY = (PATH, SPEED, SPEED_MAX, ACCEL_MAX, MOVING, PAUSES, PAUSE_TIME, XFLIPS, YFLIPS, MAD, AD, AUC)
_HOVER = (HOVER, HOVER_SHARE, ENTRIES, LAST_VISIT)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop (exclusive) indices of the runs of True in ``mask``."""
    d = np.diff(np.concatenate(([0], mask.view(np.int8) if mask.dtype == bool else mask.astype(np.int8), [0])))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _flips(v: np.ndarray, band: float) -> int:
    """Reversals of direction of ``v`` (zero moves ignored) once it came back more than
    ``band`` from its furthest point in the previous direction.

    The play operator q_i = clip(q_{i-1}, v_i - band/2, v_i + band/2) (q_0 = v_0) follows
    ``v`` with that dead band; its reversals are the flips. Each step is a clamp, clamps
    compose into clamps, so an inclusive prefix scan (log2 n vectorised passes) gives
    every q_i. It runs on the turning points of ``v`` only (a monotone stretch acts on the
    play operator through its end alone), which for a smooth trajectory are few."""
    d = np.diff(v)
    k = np.flatnonzero(d)
    if len(k) < 2:
        return 0
    up = d[k] > 0
    turn = np.flatnonzero(up[1:] != up[:-1])
    if not len(turn) or band <= 0:
        return int(len(turn))
    e = np.concatenate((v[:1], v[k[turn + 1]], v[-1:]))  # start, turning points, end
    h = band / 2.0
    lo, hi = e - h, e + h  # the clamp of each step; after the scan: the composed clamp up to it
    m, step = len(e), 1
    while step < m:
        a_cur, b_cur = lo[step:], hi[step:]
        new_lo = np.minimum(np.maximum(lo[:-step], a_cur), b_cur)  # (later clamp) of (earlier bounds)
        new_hi = np.minimum(np.maximum(hi[:-step], a_cur), b_cur)
        lo[step:], hi[step:] = new_lo, new_hi
        step *= 2
    q = np.minimum(np.maximum(e[0], lo), hi)
    dq = np.diff(q)
    dq = dq[dq != 0]
    return int(np.count_nonzero((dq[1:] > 0) != (dq[:-1] > 0)))


def _pauses(dt: np.ndarray, step: np.ndarray) -> tuple[int, float]:
    """Runs of still intervals (moved <= STILL_PX, no faster than MOVING_PX_S) lasting
    PAUSE_S or more: their number and summed time."""
    still = (step <= STILL_PX) & (step <= MOVING_PX_S * dt)
    if not still.any():
        return 0, 0.0
    starts, stops = _runs(still)
    c = np.concatenate(([0.0], np.cumsum(dt)))
    lengths = c[stops] - c[starts]
    long = lengths >= PAUSE_S - _EPS_S
    return int(long.sum()), float(lengths[long].sum())


def _speeds(t: np.ndarray, cum: np.ndarray) -> tuple[float, float]:
    """Highest speed and highest change of speed per second, speeds over intervals from
    each sample to the first one at least MIN_INTERVAL_S later (``cum``: path so far)."""
    n = len(t)
    j = np.searchsorted(t, t + (MIN_INTERVAL_S - _EPS_S), side="left")
    i = np.flatnonzero(j < n)
    if not len(i):
        return math.nan, math.nan
    jj = j[i]
    v = np.full(n, np.nan)
    mid = np.full(n, np.nan)
    v[i] = (cum[jj] - cum[i]) / (t[jj] - t[i])
    mid[i] = (t[jj] + t[i]) / 2
    vmax = float(np.nanmax(v[i]))
    # the next interval starts where interval i ends (index jj); midpoints >= 5 ms apart
    acc = np.abs(v[jj] - v[i]) / (mid[jj] - mid[i])
    acc = acc[np.isfinite(acc)]
    return vmax, float(acc.max()) if len(acc) else math.nan


def trajectory_measures(t, x, y) -> dict[str, float]:
    """The trajectory measures of one window: ``t`` (s, increasing), ``x``, ``y`` (px,
    y down), equal lengths; rows with a NaN are dropped.

    Returns the twelve ``mouse_*`` trajectory features (see the module docstring for the
    definitions). Fewer than two valid samples: all NaN. First and last positions equal:
    ``mouse_mad_px``, ``mouse_ad_px``, ``mouse_auc_px2`` NaN, the rest defined.
    MAD / AD / AUC are positive when the path lies to the left of the straight start-end
    line as seen on screen facing the direction of travel (y grows downwards)."""
    t = np.asarray(t, np.float64).ravel()
    x = np.asarray(x, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    if not len(t) == len(x) == len(y):
        raise ValueError(f"t, x and y differ in length: {len(t)}, {len(x)}, {len(y)}")
    ok = np.isfinite(t) & np.isfinite(x) & np.isfinite(y)
    if not ok.all():
        t, x, y = t[ok], x[ok], y[ok]
    n = len(t)
    if n < 2:
        return {k: math.nan for k in _TRAJECTORY}
    dt = np.diff(t)
    if (dt < 0).any():
        order = np.argsort(t, kind="stable")
        t, x, y = t[order], x[order], y[order]
        dt = np.diff(t)
    dx, dy = np.diff(x), np.diff(y)
    step = np.hypot(dx, dy)
    cum = np.concatenate(([0.0], np.cumsum(step)))
    path = float(cum[-1])
    span = float(t[-1] - t[0])
    out: dict[str, float] = {PATH: path, SPEED: path / span if span > 0 else math.nan}
    out[SPEED_MAX], out[ACCEL_MAX] = _speeds(t, cum)
    fast = step > MOVING_PX_S * dt  # speed > MOVING_PX_S without dividing (dt may be 0)
    out[MOVING] = float(dt[fast].sum() / span) if span > 0 else math.nan
    pauses, pause_s = _pauses(dt, step)
    out[PAUSES], out[PAUSE_TIME] = float(pauses), pause_s
    out[XFLIPS], out[YFLIPS] = float(_flips(x, FLIP_PX)), float(_flips(y, FLIP_PX))
    # deviations from the straight line, in coordinates relative to the start
    X, Y = x - x[0], y - y[0]
    lx, ly = float(X[-1]), float(Y[-1])
    length = math.hypot(lx, ly)
    if length == 0:
        out[MAD] = out[AD] = out[AUC] = math.nan
    else:
        # cross(point, line) / |line|: > 0 left of the direction of travel on a y-down screen
        dev = (ly * X - lx * Y) / length
        out[MAD] = float(dev[np.argmax(np.abs(dev))])
        out[AD] = float(dev.mean())
        # shoelace over start -> path -> end -> back to start; the closing edge ends at the
        # origin and adds nothing. With y down, a path left of the line gives a positive sum
        out[AUC] = 0.5 * float(np.dot(X[:-1], Y[1:]) - np.dot(X[1:], Y[:-1]))
    return out


def hover_measures(t, inside, t0: float, t1: float) -> dict[str, float]:
    """The hover measures of one answer in the window ``[t0, t1]``: ``t`` sample times (s,
    increasing; NaN times dropped), ``inside`` whether each sample is over the answer.

    Sample-and-hold (a state lasts until the next sample, clipped to the window, a gap over
    :data:`MAX_HOLD_S` unknown); see the module docstring. NaN for every key when no
    sample falls in ``[t0, t1]`` or no time of the window is known; ``mouse_last_hover_s``
    NaN when the cursor never was over the answer."""
    t = np.asarray(t, np.float64).ravel()
    inside = np.asarray(inside).astype(bool, copy=False).ravel()
    if len(t) != len(inside):
        raise ValueError(f"t and inside differ in length: {len(t)}, {len(inside)}")
    ok = np.isfinite(t)
    if not ok.all():
        t, inside = t[ok], inside[ok]
    if len(t) > 1 and (np.diff(t) < 0).any():
        order = np.argsort(t, kind="stable")
        t, inside = t[order], inside[order]
    nan = {k: math.nan for k in _HOVER}
    n = len(t)
    i0 = int(np.searchsorted(t, t0, side="left"))
    i1 = int(np.searchsorted(t, t1, side="right"))  # samples in [t0, t1]: i0 .. i1-1
    if i1 <= i0:
        return nan
    # the window's states: the samples in [t0, t1) and the last one before t0
    a = i0 - 1 if i0 > 0 else i0
    b = int(np.searchsorted(t, t1, side="left"))  # a sample at t1 only ends the hold before it
    if b <= a:
        return nan
    ts, ins = t[a:b], inside[a:b]
    nxt = t[a + 1:b + 1] if b < n else np.append(t[a + 1:b], t1)
    known = (nxt - ts) <= MAX_HOLD_S
    dur = np.where(known, np.clip(np.minimum(nxt, t1) - np.maximum(ts, t0), 0.0, None), 0.0)
    if a < i0 and dur[0] <= 0:  # the sample before t0 holds nothing into the window
        ts, ins, dur = ts[1:], ins[1:], dur[1:]
    total = float(dur.sum())
    if not len(ts) or total <= 0:
        return nan
    hover = float(dur[ins].sum())
    starts, stops = _runs(ins)
    last = float(dur[starts[-1]:stops[-1]].sum()) if len(starts) else math.nan
    return {HOVER: hover, HOVER_SHARE: hover / total, ENTRIES: float(len(starts)), LAST_VISIT: last}
