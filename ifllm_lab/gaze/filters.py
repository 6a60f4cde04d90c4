"""Online smoothing of 2-D gaze points: One Euro filter and a constant-velocity Kalman filter.

Both filters take a timestamp in **seconds** with every sample, so irregular frame
intervals (dropped camera frames, variable exposure) are handled exactly; they are called
as ``x_s, y_s = f(t, x, y)`` (positions in any unit, normally screen px) and return the
smoothed point at once (no look-ahead, so they can run live).

Missing samples: a NaN ``x`` or ``y`` returns ``(nan, nan)`` and leaves the state as it
was; the next valid sample is filtered with the time step measured from the last valid
one, exactly as if the NaN sample had never been given. After a gap longer than
``max_gap_s`` (default 1 s: a look-away, a long blink) the filter restarts from the next
valid sample instead of smoothing across the gap. A timestamp that does not increase
(duplicate frame) returns the previous output and changes nothing.

Lag and smoothing with the defaults (asserted by ``tests/gaze/test_filters.py``)
-------------------------------------------------------------------------------
Noise-free steps at 30 Hz; "90 % after" counts from the frame that shows the step, so
0 ms means that frame's output already covers 90 % of the step. Jitter: variance of a
fixation with 25 px Gaussian noise per axis divided by the variance after filtering.

======================  =====================  =====================  ============  ==================
filter                  300 px step: 90 %      80 px step: 90 %       jitter        500 px/s ramp
                        after (overshoot)      after (overshoot)      variance      trails by
======================  =====================  =====================  ============  ==================
``OneEuroFilter()``     <= 33 ms (none)        <= 100 ms (none)       / 4.2 (>3.8)  <= 13 px (~25 ms)
``KalmanFilter2D()``    0 ms (none: gated)     <= 133 ms (~18 %)      / 4.4 (>4)    < 1 px
``gate=None``           <= 133 ms (~18 %)      <= 133 ms (~18 %)      / 4.4         < 1 px
======================  =====================  =====================  ============  ==================

One Euro's smoothing depends on the noise level (its speed estimate sees the noise):
/ 3.2 at 40 px noise, / 5.5 at 15 px. The Kalman filter's does not (it is linear), but
its gate assumes ``measurement_noise`` is right: with noise well above it, noise spikes
trip the gate and pass unsmoothed. At 60 Hz both filters keep the same lag in ms and
smooth more (One Euro / 6, Kalman / 8 at 25 px).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["OneEuroFilter", "KalmanFilter2D"]


def _smoothing_factor(dt: float, cutoff_hz: float) -> float:
    """Exponential smoothing factor of a first-order low-pass at ``cutoff_hz`` for step ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class _PointFilter:
    """What both filters share: NaN input gives NaN (state kept), a gap longer than
    ``max_gap_s`` restarts, the first sample after a (re)start passes unchanged, a repeated
    timestamp returns the last output. Subclasses give ``_start``, ``_step`` and ``_last``."""

    max_gap_s: float | None
    _t: float | None

    def __call__(self, t: float, x: float, y: float) -> tuple[float, float]:
        """Filter one sample taken at ``t`` seconds; returns the filtered ``(x, y)``."""
        t = float(t)
        if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(t)):
            return math.nan, math.nan
        p = np.array([x, y], dtype=np.float64)
        if self._t is not None and self.max_gap_s is not None and t - self._t > self.max_gap_s:
            self.reset()
        if self._t is None:
            self._start(t, p)
            return float(x), float(y)
        dt = t - self._t
        if dt <= 0:
            return self._last()
        return self._step(t, dt, p)


class OneEuroFilter(_PointFilter):
    """The One Euro filter (Casiez, Roussel & Vogel, CHI 2012) for 2-D points.

    A first-order low-pass whose cutoff rises with speed: ``cutoff = min_cutoff + beta *
    speed``, so fixations are smoothed strongly (little jitter) and saccades pass quickly
    (little lag). The speed is the magnitude of the 2-D velocity (units/s), itself
    low-passed at ``d_cutoff``; one cutoff is shared by x and y so that a diagonal
    saccade is treated like a horizontal one.

    Parameters
    ----------
    min_cutoff:
        Cutoff at rest, **Hz**. Lower = less jitter on fixations, more lag on slow motion.
    beta:
        Speed coefficient, **Hz per (unit/s)** (with px input: Hz per px/s). Higher = less
        lag on fast motion.
    d_cutoff:
        Cutoff of the speed estimate, **Hz**.
    max_gap_s:
        Restart after a gap in valid samples longer than this, seconds (``None``: never).

    The defaults (0.5 Hz, 0.007 Hz/(px/s), 1 Hz) suit webcam gaze in screen px at 25-60 Hz
    with 0.5-1 deg (20-40 px) of noise; see the module docstring for the lag they add.
    """

    def __init__(self, min_cutoff: float = 0.5, beta: float = 0.007, d_cutoff: float = 1.0,
                 max_gap_s: float | None = 1.0):
        if not (min_cutoff > 0 and d_cutoff > 0 and beta >= 0):
            raise ValueError("OneEuroFilter needs min_cutoff > 0, d_cutoff > 0 and beta >= 0")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.max_gap_s = max_gap_s
        self.reset()

    def reset(self) -> None:
        """Forget all state; the next valid sample passes through unchanged."""
        self._t: float | None = None
        self._x = np.zeros(2)
        self._dx = np.zeros(2)

    @property
    def state(self) -> tuple[float, float] | None:
        """The last output (x, y), or None before the first valid sample."""
        return None if self._t is None else (float(self._x[0]), float(self._x[1]))

    def _start(self, t: float, p: np.ndarray) -> None:
        self._t = t
        self._x = p
        self._dx = np.zeros(2)

    def _last(self) -> tuple[float, float]:
        return float(self._x[0]), float(self._x[1])

    def _step(self, t: float, dt: float, p: np.ndarray) -> tuple[float, float]:
        dx = (p - self._x) / dt
        a_d = _smoothing_factor(dt, self.d_cutoff)
        self._dx = self._dx + a_d * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * float(np.hypot(self._dx[0], self._dx[1]))
        a = _smoothing_factor(dt, cutoff)
        self._x = self._x + a * (p - self._x)
        self._t = t
        return float(self._x[0]), float(self._x[1])


class KalmanFilter2D(_PointFilter):
    """Constant-velocity Kalman filter for a 2-D point, with an optional jump gate.

    State ``[x, y, vx, vy]``; the motion model is constant velocity driven by white
    acceleration noise (the discrete white-noise-acceleration model), so with a time step
    ``dt`` the process noise per axis is ``process_noise**2 * [[dt^4/4, dt^3/2], [dt^3/2,
    dt^2]]``. Each axis is independent, so it is run as two 2-state filters (same result
    as the 4-state filter, cheaper).

    Parameters
    ----------
    process_noise:
        Standard deviation of the unmodelled acceleration, **units/s^2** (px/s^2).
        Higher = follows changes faster, smooths less.
    measurement_noise:
        Standard deviation of one measurement, **units** (px).
    gate:
        Jump gate in standard deviations of the innovation (``None`` or 0: off). When a
        measurement lies further than ``gate`` sigmas from the prediction (the 2-D
        Mahalanobis distance), the filter treats it as a saccade and restarts at the
        measurement with zero velocity: steps pass at once instead of being smoothed
        over several frames. A single outlier frame beyond the gate passes through
        unsmoothed too (the next sample then restarts again).
    max_gap_s:
        Restart after a gap in valid samples longer than this, seconds (``None``: never).

    The defaults (1500 px/s^2, 30 px, gate 5) suit webcam gaze in screen px at 25-60 Hz;
    see the module docstring for their lag and jitter reduction.
    """

    def __init__(self, process_noise: float = 1500.0, measurement_noise: float = 30.0,
                 gate: float | None = 5.0, max_gap_s: float | None = 1.0):
        if not (process_noise > 0 and measurement_noise > 0):
            raise ValueError("KalmanFilter2D needs process_noise > 0 and measurement_noise > 0")
        self.process_noise = float(process_noise)
        self.measurement_noise = float(measurement_noise)
        self.gate = float(gate) if gate else None
        self.max_gap_s = max_gap_s
        self.reset()

    def reset(self) -> None:
        """Forget all state; the next valid sample passes through unchanged."""
        self._t: float | None = None
        self._s = np.zeros((2, 2))  # rows: axis x, y; columns: position, velocity
        self._P = np.zeros((2, 2))  # shared 2x2 covariance (same for both axes: same noise)

    @property
    def state(self) -> tuple[float, float, float, float] | None:
        """``(x, y, vx, vy)`` after the last valid sample, or None before it."""
        if self._t is None:
            return None
        return float(self._s[0, 0]), float(self._s[1, 0]), float(self._s[0, 1]), float(self._s[1, 1])

    def _start(self, t: float, p: np.ndarray) -> None:
        self._t = t
        self._s = np.array([[p[0], 0.0], [p[1], 0.0]])
        r2 = self.measurement_noise ** 2
        # position known to measurement accuracy; velocity ~0 (a restart follows a jump, after
        # which the eye fixates) with the spread 0.1 s of process acceleration gives
        self._P = np.array([[r2, 0.0], [0.0, (0.1 * self.process_noise) ** 2]])

    def _last(self) -> tuple[float, float]:
        return float(self._s[0, 0]), float(self._s[1, 0])

    def _step(self, t: float, dt: float, p: np.ndarray) -> tuple[float, float]:
        # predict
        F = np.array([[1.0, dt], [0.0, 1.0]])
        q = self.process_noise ** 2
        Q = q * np.array([[dt ** 4 / 4.0, dt ** 3 / 2.0], [dt ** 3 / 2.0, dt ** 2]])
        s = self._s @ F.T  # each row [pos, vel] -> [pos + vel*dt, vel]
        P = F @ self._P @ F.T + Q
        # update (H = [1, 0] per axis)
        S = P[0, 0] + self.measurement_noise ** 2
        innov = p - s[:, 0]
        if self.gate is not None and float(innov @ innov) / S > self.gate ** 2:
            self._start(t, p)
            return float(p[0]), float(p[1])
        K = P[:, 0] / S  # (2,) gain for [pos, vel]
        s = s + np.outer(innov, K)
        P = P - np.outer(K, P[0, :])
        self._s, self._P, self._t = s, 0.5 * (P + P.T), t
        return float(s[0, 0]), float(s[1, 0])
