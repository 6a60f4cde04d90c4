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
- ``mouse_speed_max_px_s``: the largest speed, each speed the straight-line distance
  from a sample to the first sample at least :data:`MIN_INTERVAL_S` (5 ms) later, over
  that time. With ~10 Hz sampling these are the sample-to-sample speeds; with ~1 kHz
  events (or an event and a poll 0.1 ms apart) short intervals are spanned rather than
  divided by, so timer jitter cannot blow a speed up. (The mean speed is path-based, so
  on a jittery path it can exceed this maximum.)
- ``mouse_accel_max_px_s2``: the largest absolute change between such a speed and the
  speed of the next interval (the one starting where it ends), per second between their
  midpoints.
- ``mouse_moving_share``: the share of the span in sample-to-sample intervals during which
  the cursor moved faster than :data:`MOVING_PX_S` (20 px/s), weighted by the intervals'
  lengths. An interval's speed is judged over at least :data:`MOTION_SPAN_S` (0.1 s =
  2 px / 20 px/s): the smaller of the straight-line speeds from its start to the first
  sample 0.1 s later and from the last sample 0.1 s before its end to its end. At ~10 Hz
  (and across a sampling gap) that is the interval itself; at ~1 kHz it keeps a 1 px
  nudge within 1 ms from counting as 1000 px/s, so recorded and imported sessions measure
  the same thing, and motion starts and ends where it did (within 2 px of it).
- ``mouse_pauses`` / ``mouse_pause_s``: still periods of at least :data:`PAUSE_S`
  (0.5 s) and their summed time. An interval is still when consecutive samples are within
  :data:`STILL_PX` (2 px) and it is not moving by the rule above -- so a sampling gap
  without movement is still, and a hand resting with +-1 px of jitter is; a period is a
  run of still intervals.
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

from ..analysis.events import true_runs
from .registry import feature

__all__ = [
    "FLIP_PX",
    "MAX_HOLD_S",
    "MIN_INTERVAL_S",
    "MOTION_SPAN_S",
    "MOVING_PX_S",
    "PAUSE_S",
    "STILL_PX",
    "hover_measures",
    "trajectory_measures",
]

PAUSE_S = 0.5  #: shortest still period that counts as a pause (s)
STILL_PX = 2.0  #: most a still interval may move (px)
FLIP_PX = 2.0  #: dead band of the flips: a reversal must come back more than this (px)
MOVING_PX_S = 20.0  #: an interval faster than this is moving (px/s)
MIN_INTERVAL_S = 0.005  #: shortest interval a speed is measured over (s)
MOTION_SPAN_S = STILL_PX / MOVING_PX_S  #: span moving / still is judged over: 0.1 s (2 px in it = 20 px/s)
MAX_HOLD_S = 1.0  #: a hover sample's state lasts at most this long; a longer gap is unknown (s)

_EPS_S = 1e-9  # float slack on the spans and durations, so that 5 ticks of a 1 kHz clock make 5 ms

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


def _clamp_scan(lo: np.ndarray, hi: np.ndarray) -> None:
    """In place, along the last axis: the clamps [lo_i, hi_i] composed from the first to
    each i (clamp(clamp(q, a1, b1), a2, b2) is the clamp to [clamp(a1, a2, b2),
    clamp(b1, a2, b2)]), by log2 doubling passes."""
    m, step = lo.shape[-1], 1
    while step < m:
        a_cur, b_cur = lo[..., step:], hi[..., step:]
        new_lo = np.maximum(lo[..., :-step], a_cur)
        np.minimum(new_lo, b_cur, out=new_lo)
        new_hi = np.maximum(hi[..., :-step], a_cur)
        np.minimum(new_hi, b_cur, out=new_hi)
        lo[..., step:] = new_lo
        hi[..., step:] = new_hi
        step *= 2


_BLOCK = 1024


def _play(e: np.ndarray, h: float) -> np.ndarray:
    """The play (backlash) operator of half-width ``h`` on ``e``: q_0 = e_0, q_i =
    clamp(q_{i-1}, e_i - h, e_i + h). Long inputs are scanned in blocks, then across the
    blocks' composed clamps, so the passes number log2(1024) + log2(blocks)."""
    m = len(e)
    lo, hi = e - h, e + h
    if m <= _BLOCK:
        _clamp_scan(lo, hi)
        return np.minimum(np.maximum(e[0], lo), hi)
    nb = -(-m // _BLOCK)
    pad = nb * _BLOCK - m  # identity clamps at the end
    lo = np.concatenate((lo, np.full(pad, -np.inf))).reshape(nb, _BLOCK)
    hi = np.concatenate((hi, np.full(pad, np.inf))).reshape(nb, _BLOCK)
    _clamp_scan(lo, hi)
    blo, bhi = lo[:, -1].copy(), hi[:, -1].copy()  # each block's composed clamp
    _clamp_scan(blo, bhi)  # ... and up to the end of each block
    q_in = np.empty(nb)
    q_in[0] = e[0]
    q_in[1:] = np.minimum(np.maximum(e[0], blo[:-1]), bhi[:-1])  # the state entering each block
    q = np.maximum(q_in[:, None], lo)
    np.minimum(q, hi, out=q)
    return q.ravel()[:m]


def _flips(v: np.ndarray, band: float) -> int:
    """Reversals of direction of ``v`` (zero moves ignored) once it came back more than
    ``band`` from its furthest point in the previous direction.

    These are the reversals of the play operator of half-width band/2 on ``v``, which
    follows ``v`` with that dead band. It runs on the turning points of ``v`` only (a
    monotone stretch acts on the play operator through its end alone), which for a
    smooth trajectory are few."""
    d = np.diff(v)
    k = np.flatnonzero(d)
    if len(k) < 2:
        return 0
    up = d[k] > 0
    turn = np.flatnonzero(up[1:] != up[:-1])
    if not len(turn) or band <= 0:
        return len(turn)
    e = np.concatenate((v[:1], v[k[turn + 1]], v[-1:]))  # start, turning points, end
    dq = np.diff(_play(e, band / 2.0))
    dq = dq[dq != 0]
    return int(np.count_nonzero((dq[1:] > 0) != (dq[:-1] > 0)))


def _later(t: np.ndarray, span: float) -> np.ndarray:
    """For each sample i, the index of the first sample at least ``span`` later (``n``
    when there is none): i + 1 or more, never decreasing."""
    return np.searchsorted(t, t + (span - _EPS_S), side="left")


def _faster(t, x, y, a, b, speed: float) -> np.ndarray:
    """Whether the straight-line speed from samples ``a`` to samples ``b`` (index arrays or
    slices of equal length) exceeds ``speed``; compared without dividing, so a move in no
    time is faster and no move in no time is not."""
    ddx = x[b] - x[a]
    ddy = y[b] - y[a]
    ddt = t[b] - t[a]
    ddx *= ddx
    ddy *= ddy
    ddx += ddy
    ddt *= ddt
    ddt *= speed * speed
    return ddx > ddt


def _motion(t, x, y, step) -> tuple[np.ndarray, np.ndarray]:
    """(still, moving) masks of the sample-to-sample intervals.

    An interval's speed is measured over a span of at least MOTION_SPAN_S: the smaller of
    the speeds from its start to the first sample MOTION_SPAN_S later (the last sample if
    none) and from the last sample MOTION_SPAN_S before its end (the first if none) to its
    end, so a motion's onset and end are placed where they happened, not a span early or
    late. Moving: faster than MOVING_PX_S (both spans are). Still: not moving, and no more
    than STILL_PX from one sample to the next."""
    n = len(t)
    later = _later(t, MOTION_SPAN_S)
    # the last sample a span before sample m is the last i whose `later` is <= m: as
    # `later` never decreases, that is (how many `later` values are <= m) - 1
    back = np.cumsum(np.bincount(later, minlength=n + 1))[1:n] - 1
    np.maximum(back, 0, out=back)
    fwd = np.minimum(later[:-1], n - 1)
    moving = _faster(t, x, y, slice(None, -1), fwd, MOVING_PX_S)  # from each interval's start a span on
    moving &= _faster(t, x, y, back, slice(1, None), MOVING_PX_S)  # to its end from a span before
    return (step <= STILL_PX) & ~moving, moving


def _pauses(dt: np.ndarray, still: np.ndarray) -> tuple[int, float]:
    """Runs of still intervals lasting PAUSE_S or more: their number and summed time."""
    if not still.any():
        return 0, 0.0
    starts, stops = true_runs(still)
    c = np.concatenate(([0.0], np.cumsum(dt)))
    lengths = c[stops] - c[starts]
    long = lengths >= PAUSE_S - _EPS_S
    return int(long.sum()), float(lengths[long].sum())


def _speeds(t: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Highest speed and highest change of speed per second, each speed the straight-line
    distance from a sample to the first one at least MIN_INTERVAL_S later over that time."""
    n = len(t)
    j = _later(t, MIN_INTERVAL_S)
    m = int(np.searchsorted(j, n))  # `j` never decreases: samples 0 .. m-1 have an interval
    if not m:
        return math.nan, math.nan
    j = j[:m]
    tj = np.take(t, j)
    ddx = np.take(x, j)
    ddx -= x[:m]
    ddy = np.take(y, j)
    ddy -= y[:m]
    ddx *= ddx
    ddy *= ddy
    ddx += ddy
    v = np.sqrt(ddx, out=ddx)
    v /= tj - t[:m]
    vmax = float(v.max())
    # the next interval starts where interval i ends (at j[i]); it exists for i < m2
    m2 = int(np.searchsorted(j, m))
    if not m2:
        return vmax, math.nan
    jn = j[:m2]
    dv = np.take(v, jn)
    dv -= v[:m2]
    np.abs(dv, out=dv)
    # midpoints (t_i + t_j) / 2 and (t_j + t_jj) / 2 lie (t_jj - t_i) / 2 >= 5 ms apart
    dv /= np.take(tj, jn) - t[:m2]
    return vmax, 2.0 * float(dv.max())


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
    step = np.sqrt(dx * dx + dy * dy)
    path = float(step.sum())
    span = float(t[-1] - t[0])
    out: dict[str, float] = {PATH: path, SPEED: path / span if span > 0 else math.nan}
    out[SPEED_MAX], out[ACCEL_MAX] = _speeds(t, x, y)
    still, moving = _motion(t, x, y, step)
    out[MOVING] = float(dt[moving].sum() / span) if span > 0 else math.nan
    pauses, pause_s = _pauses(dt, still)
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
    starts, stops = true_runs(ins)
    last = float(dur[starts[-1]:stops[-1]].sum()) if len(starts) else math.nan
    return {HOVER: hover, HOVER_SHARE: hover / total, ENTRIES: float(len(starts)), LAST_VISIT: last}
