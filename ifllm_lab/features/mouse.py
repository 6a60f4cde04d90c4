"""Mouse features of one answer's window: the cursor's trajectory (mousetrap's measures)
and its hover over the answer.

Positions are screen px (page px for imported IFLLM sessions, whose cursor was sampled
~10 Hz inside the gaze callback rather than recorded per event); times are s on the
session clock. NaN positions are dropped.

Trajectory (:func:`trajectory_measures`), over the window's samples in time order:

- ``mouse_path_px``: summed distance between consecutive positions.
- ``mouse_speed_mean_px_s``: path / time from the first to the last sample.
- ``mouse_speed_max_px_s``: the largest speed between consecutive samples, over intervals
  of at least 5 ms (shorter ones are merged into the next, so timer jitter cannot divide
  by almost nothing).
- ``mouse_accel_max_px_s2``: the largest change of that speed per second.
- ``mouse_moving_share``: share of the time in intervals faster than 20 px/s.
- ``mouse_pauses`` / ``mouse_pause_s``: still periods of at least 0.5 s (consecutive
  intervals in which the cursor moved at most 2 px and no faster than 20 px/s; a sampling
  gap without movement counts as still) and their summed time.
- ``mouse_x_flips`` / ``mouse_y_flips``: reversals of direction along x / y, counting only
  moves of more than 2 px (a dead band against jitter).
- ``mouse_mad_px``, ``mouse_ad_px``, ``mouse_auc_px2``: against the straight line from the
  first to the last position: the signed deviation of largest magnitude, the mean signed
  deviation, and the signed area between the path and the line (shoelace formula on the
  path closed by the line). Sign: positive when the path bows to the *left* of the line
  seen in the direction of travel on screen (y grows downwards), e.g. a path from (0, 0)
  to (100, 0) through (50, -30) -- above the line on screen -- has MAD +30. NaN when the
  first and last positions coincide.

Fewer than two valid samples: every trajectory measure is NaN.

Hover (:func:`hover_measures`): each sample's inside/outside state lasts until the next
sample (clipped to the window); a gap longer than 1 s between samples counts as unknown.
``mouse_hover_s`` (time over the answer), ``mouse_hover_share`` (of the known time),
``mouse_hover_entries`` (times the cursor came onto it), ``mouse_last_hover_s`` (length of
the last visit before the window's end; NaN when never over it). No samples in the
window: every hover measure is NaN.
"""
from __future__ import annotations

import math

import numpy as np

from .registry import feature

__all__ = ["trajectory_measures", "hover_measures", "PAUSE_S", "STILL_PX", "FLIP_PX", "MOVING_PX_S", "MAX_HOLD_S"]

PAUSE_S = 0.5
STILL_PX = 2.0
FLIP_PX = 2.0
MOVING_PX_S = 20.0
MIN_INTERVAL_S = 0.005
MAX_HOLD_S = 1.0

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
HOVER = feature("mouse_hover_s", "mouse", "s", "time the cursor was over the answer", needs=_N + ("layout",))
HOVER_SHARE = feature("mouse_hover_share", "mouse", "share", "share of the turn's time the cursor was over the answer",
                      needs=_N + ("layout",))
ENTRIES = feature("mouse_hover_entries", "mouse", "count", "times the cursor came onto the answer",
                  needs=_N + ("layout",))
LAST_VISIT = feature("mouse_last_hover_s", "mouse", "s", "length of the cursor's last visit to the answer",
                     needs=_N + ("layout",))

_TRAJECTORY = (PATH, SPEED, SPEED_MAX, ACCEL_MAX, MOVING, PAUSES, PAUSE_TIME, XFLIPS, YFLIPS, MAD, AD, AUC)
_HOVER = (HOVER, HOVER_SHARE, ENTRIES, LAST_VISIT)


def _flips(d: np.ndarray) -> int:
    """Sign changes of the moves ``d`` larger than the dead band."""
    s = np.sign(d[np.abs(d) > FLIP_PX])
    return int(np.count_nonzero(s[1:] != s[:-1])) if len(s) > 1 else 0


def _pauses(dt: np.ndarray, step: np.ndarray) -> tuple[int, float]:
    """Still periods: runs of intervals in which the cursor moved at most STILL_PX and no
    faster than MOVING_PX_S, lasting PAUSE_S or more."""
    still = (step <= STILL_PX) & (step <= MOVING_PX_S * dt)
    if not still.any():
        return 0, 0.0
    d = np.diff(np.concatenate(([0], still.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    c = np.concatenate(([0.0], np.cumsum(dt)))
    lengths = c[stops] - c[starts]
    long = lengths >= PAUSE_S
    return int(long.sum()), float(lengths[long].sum())


def trajectory_measures(t, x, y) -> dict[str, float]:
    """The trajectory measures of one window (see the module docstring)."""
    t = np.asarray(t, np.float64)
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    ok = np.isfinite(t) & np.isfinite(x) & np.isfinite(y)
    t, x, y = t[ok], x[ok], y[ok]
    if len(t) < 2:
        return {k: math.nan for k in _TRAJECTORY}
    order = np.argsort(t, kind="stable")
    t, x, y = t[order], x[order], y[order]
    dx, dy, dt = np.diff(x), np.diff(y), np.diff(t)
    step = np.hypot(dx, dy)
    span = float(t[-1] - t[0])
    out = {PATH: float(step.sum()), SPEED: float(step.sum() / span) if span > 0 else math.nan}
    # speeds over intervals of at least MIN_INTERVAL_S: merge shorter ones forward
    keep = np.concatenate(([0], np.flatnonzero(np.diff(np.floor((t - t[0]) / MIN_INTERVAL_S)) > 0) + 1))
    if keep[-1] != len(t) - 1:
        keep = np.append(keep, len(t) - 1)
    tk, xk, yk = t[keep], x[keep], y[keep]
    dtk = np.diff(tk)
    good = dtk > 0
    v = np.hypot(np.diff(xk), np.diff(yk))[good] / dtk[good]
    tv = ((tk[1:] + tk[:-1]) / 2)[good]
    out[SPEED_MAX] = float(v.max()) if len(v) else math.nan
    if len(v) > 1:
        dtv = np.diff(tv)
        acc = np.abs(np.diff(v))[dtv > 0] / dtv[dtv > 0]
        out[ACCEL_MAX] = float(acc.max()) if len(acc) else math.nan
    else:
        out[ACCEL_MAX] = math.nan
    moving = (step / np.where(dt > 0, dt, np.inf)) > MOVING_PX_S
    out[MOVING] = float(dt[moving].sum() / span) if span > 0 else math.nan
    out[PAUSES], out[PAUSE_TIME] = _pauses(dt, step)
    out[PAUSES] = float(out[PAUSES])
    out[XFLIPS], out[YFLIPS] = float(_flips(dx)), float(_flips(dy))
    lx, ly = x[-1] - x[0], y[-1] - y[0]
    length = math.hypot(lx, ly)
    if length == 0:
        out[MAD] = out[AD] = out[AUC] = math.nan
    else:
        # signed distance to the line; positive to the left of the direction of travel on
        # screen (y down): the cross product of (line) x (point - start) is negative there
        dev = -(lx * (y - y[0]) - ly * (x - x[0])) / length
        out[MAD] = float(dev[np.argmax(np.abs(dev))])
        out[AD] = float(dev.mean())
        # shoelace over the path closed back along the line: with y down, a path bowing
        # left of the line (as seen on screen) gives a positive sum
        out[AUC] = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    return out


def hover_measures(t, inside, t0: float, t1: float) -> dict[str, float]:
    """The hover measures of one answer in the window [t0, t1] (see the module docstring)."""
    t = np.asarray(t, np.float64)
    inside = np.asarray(inside, bool)
    sel = (t >= t0) & (t <= t1)
    t, inside = t[sel], inside[sel]
    if not len(t):
        return {k: math.nan for k in _HOVER}
    nxt = np.append(t[1:], t1)
    held = nxt - t
    known = held <= MAX_HOLD_S
    dur = np.where(known, held, 0.0)
    total = float(dur.sum())
    hover = float(dur[inside].sum())
    entries = int(np.count_nonzero(inside & ~np.concatenate(([False], inside[:-1]))))
    if inside.any():
        d = np.diff(np.concatenate(([0], inside.astype(np.int8), [0])))
        a, b = np.flatnonzero(d == 1)[-1], np.flatnonzero(d == -1)[-1]
        last = float(dur[a:b].sum())
    else:
        last = math.nan
    return {HOVER: hover, HOVER_SHARE: hover / total if total > 0 else math.nan, ENTRIES: float(entries),
            LAST_VISIT: last}
