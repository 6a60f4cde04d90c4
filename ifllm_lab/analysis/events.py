"""Eye-movement events from the ``gaze`` stream: fixations, saccades, blinks and gaps.

Plain numpy, no Qt. Thresholds are in **degrees of visual angle** through the session's
:class:`~ifllm_lab.gaze.geometry.ScreenGeometry`, never in pixels.

Pipeline (what :func:`detect` does)
-----------------------------------
1. :func:`load_gaze`: the ``gaze`` stream as :class:`GazeSamples` (t, x, y, valid).
2. :func:`session_geometry`: px <-> degrees for this session (a documented default when
   the file has no physical screen size, as for imported IFLLM sessions).
3. :func:`resample`: webcam samples arrive irregularly (15-30 Hz with jitter and dropped
   frames; WebGazer in the IFLLM release at ~5-25 Hz), so the detectors work on a uniform
   grid (60 Hz by default) made by linear interpolation *only* across short holes; longer
   holes stay invalid, so no event ever spans missing data.
4. :func:`idt` (dispersion threshold) or :func:`ivt` (velocity threshold).
5. :func:`gaps_and_blinks`: the invalid stretches themselves, as BLINK or GAP events.

Algorithms and defaults (facts from the literature; the code here is written from them)
-------------------------------------------------------------------------------------
- **I-DT** (Salvucci & Goldberg 2000, "Identifying fixations and saccades in eye-tracking
  protocols", ETRA): a window covering the minimum duration is a fixation when its
  dispersion ``D = (max x - min x) + (max y - min y)`` is at most the threshold; it then
  grows until ``D`` exceeds the threshold, its points form the fixation and the search
  restarts at the first point after it; otherwise the window start moves one point on.
  They suggest 0.5-1 deg and 100-200 ms; Pupil Player's dispersion detector uses 1.5 deg
  (maximum angle between gaze directions) and 80-220 ms. Defaults here: 1.0 deg, 100 ms.
  ``x`` and ``y`` are per-axis visual angles from the screen centre, ``atan(offset_mm /
  viewing_distance_mm)`` on each axis (the convention of pymovements' ``pix2deg``), so the
  threshold means the same in the centre and at the edges. Two additions for webcam noise,
  both switchable off (``smooth=None, merge_gap_s=None`` is the plain algorithm): the
  positions are smoothed as for I-VT, and adjacent fixations are merged as in Olsen 2012.
- **I-VT** (Salvucci & Goldberg 2000; Olsen 2012, "The Tobii I-VT fixation filter",
  Tobii Technology): a sample whose angular velocity is below the threshold belongs to a
  fixation, above it to a saccade. Olsen's defaults: 30 deg/s, adjacent fixations merged
  when at most 75 ms and 0.5 deg apart, fixations shorter than 60 ms discarded. The velocity
  is the exact angle between the two gaze directions (rays from the eye through the screen
  points, :meth:`ScreenGeometry.deg_between`) divided by the time between them. Webcam gaze
  is far noisier than a lab tracker's, so positions are smoothed first (Savitzky-Golay,
  order 2, ~100 ms; the filter Nyström & Holmqvist 2010 use before computing velocity).
- **Blinks and gaps**: see :func:`gaps_and_blinks`.

Durations and onsets
--------------------
Every sample stands for one sample interval ``dt`` (``1/resample_hz``, or the median
interval when not resampling): an event made of samples ``i..j`` starts at ``t[i]`` and
lasts ``t[j] - t[i] + dt``, so consecutive fixations and saccades tile the time line and a
minimum duration of 100 ms at 60 Hz means 6 samples.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from ..gaze.geometry import ScreenGeometry
from ..session.schema import EventKind, stream_spec
from . import sources

__all__ = [
    "BLINK_MAX_S", "DEFAULT_GEOMETRY", "MIN_GAP_S", "Events", "GazeSamples", "detect",
    "gaps_and_blinks", "idt", "ivt", "load_gaze", "read_events", "resample", "sample_interval",
    "session_geometry", "true_runs", "visual_angles",
]

#: Geometry assumed when a session file has no physical screen size (imported IFLLM
#: sessions): a 24" 16:9 monitor, 1920 x 1080 px, 527 x 297 mm, seen from 600 mm.
DEFAULT_GEOMETRY = ScreenGeometry(1920.0, 1080.0, 527.0, 297.0, 600.0)

#: Shortest invalid stretch reported as an event, s: the default longest hole the Tobii
#: I-VT filter's gap fill-in interpolates over as data loss rather than a blink (Olsen 2012).
MIN_GAP_S = 0.075
#: Longest invalid stretch called a blink, s: blinks last about 50-500 ms (Nyström et al.
#: 2024, the bounds pymovements' blink detector uses). Longer ones are GAPs.
BLINK_MAX_S = 0.5

_EPS_T = 1e-6  # s: tolerance when comparing times built from sums of intervals


# ----------------------------------------------------------------------------------------
# samples
# ----------------------------------------------------------------------------------------
@dataclass
class GazeSamples:
    """Gaze samples as float64 arrays of equal length.

    ``t``: seconds on the session clock, non-decreasing; ``x``, ``y``: screen px (NaN
    where invalid); ``valid``: bool. Construction coerces the arrays and sets ``x`` and
    ``y`` to NaN wherever ``valid`` is False or a coordinate is not finite (and ``valid``
    to False wherever a coordinate is not finite).
    """

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        self.t = np.asarray(self.t, dtype=np.float64).reshape(-1)
        self.x = np.array(self.x, dtype=np.float64).reshape(-1)
        self.y = np.array(self.y, dtype=np.float64).reshape(-1)
        self.valid = np.asarray(self.valid).reshape(-1).astype(bool)
        n = len(self.t)
        if not (len(self.x) == len(self.y) == len(self.valid) == n):
            raise ValueError(f"GazeSamples arrays differ in length: t {n}, x {len(self.x)}, "
                             f"y {len(self.y)}, valid {len(self.valid)}")
        self.valid = self.valid & np.isfinite(self.x) & np.isfinite(self.y)
        self.x[~self.valid] = np.nan
        self.y[~self.valid] = np.nan

    def __len__(self) -> int:
        return len(self.t)

    def __repr__(self) -> str:
        if not len(self):
            return "<GazeSamples: empty>"
        return (f"<GazeSamples: {len(self)} samples, {self.t[0]:.3f}..{self.t[-1]:.3f} s, "
                f"{self.valid.mean():.0%} valid>")

    def between(self, t0: float, t1: float) -> "GazeSamples":
        """Samples with ``t0 <= t < t1``."""
        i0, i1 = np.searchsorted(self.t, [t0, t1], "left")
        return self._slice(slice(int(i0), int(i1)))

    def _slice(self, sl) -> "GazeSamples":
        return GazeSamples(self.t[sl], self.x[sl], self.y[sl], self.valid[sl])

    @classmethod
    def empty(cls) -> "GazeSamples":
        z = np.zeros(0)
        return cls(z, z, z, np.zeros(0, bool))


def load_gaze(reader, t0: float | None = None, t1: float | None = None) -> GazeSamples:
    """The session's ``gaze`` stream as :class:`GazeSamples` (rows with ``t0 <= t < t1``).

    A sample is valid when its ``valid`` column is non-zero and ``x``, ``y`` are finite.
    Recorded sessions store 1 (usable) or 0. Imported IFLLM sessions (``meta.source ==
    "ifllm-release"``) hold WebGazer gaze in *page* px with validity 1/0/-1 from the
    release (-1 = unknown, stored as 255 in the unsigned column): unknown counts as valid,
    as the release gives no reason to drop those samples. Rows out of time order (never
    written by this app, but possible in a hand-made file) are sorted.
    """
    if "gaze" not in reader:
        return GazeSamples.empty()
    g = reader["gaze"]
    n = len(g)
    i0 = 0 if t0 is None else int(np.searchsorted(g.t, t0, "left"))
    i1 = n if t1 is None else int(np.searchsorted(g.t, t1, "left"))
    i1 = max(i0, i1)
    t = np.asarray(g.column("t", i0, i1), dtype=np.float64)
    x = np.asarray(g.column("x", i0, i1), dtype=np.float64)
    y = np.asarray(g.column("y", i0, i1), dtype=np.float64)
    v = np.asarray(g.column("valid", i0, i1)).astype(np.int64) != 0  # 1 or 255/-1 (unknown)
    if len(t) > 1 and np.any(np.diff(t) < 0):
        order = np.argsort(t, kind="stable")
        t, x, y, v = t[order], x[order], y[order], v[order]
    return GazeSamples(t, x, y, v & np.isfinite(t))


def session_geometry(reader) -> tuple[ScreenGeometry, bool]:
    """The session's screen geometry and whether it came from the file.

    Recorded sessions store the screen's resolution, physical size and the viewing
    distance in their metadata. When any of them is missing or zero, as in sessions
    imported from the IFLLM release (a browser study: neither the monitor nor the viewing
    distance is known, and gaze is in page px), this returns :data:`DEFAULT_GEOMETRY`
    (1920 x 1080 px, 527 x 297 mm, 600 mm: a 24" monitor at a typical distance) and
    ``False``, so degrees for such sessions are nominal.
    """
    m = reader.meta
    vals = (m.screen_width_px, m.screen_height_px, m.screen_width_mm, m.screen_height_mm,
            m.viewing_distance_mm)
    try:
        vals = tuple(float(v) for v in vals)
    except (TypeError, ValueError):
        return DEFAULT_GEOMETRY, False
    if all(math.isfinite(v) and v > 0 for v in vals):
        return ScreenGeometry(*vals), True
    return DEFAULT_GEOMETRY, False


def sample_interval(s: GazeSamples) -> float:
    """Nominal sample interval, s: the median of the positive intervals between rows
    (valid or not); NaN with fewer than two distinct times."""
    d = np.diff(s.t)
    d = d[d > 0]
    return float(np.median(d)) if len(d) else float("nan")


def _valid_unique(s: GazeSamples) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid samples with duplicate times averaged: (t, x, y), t strictly increasing."""
    t, x, y = s.t[s.valid], s.x[s.valid], s.y[s.valid]
    if len(t) > 1 and np.any(np.diff(t) <= 0):
        if np.any(np.diff(t) < 0):
            o = np.argsort(t, kind="stable")
            t, x, y = t[o], x[o], y[o]
        tu, first, counts = np.unique(t, return_index=True, return_counts=True)
        x = np.add.reduceat(x, first) / counts
        y = np.add.reduceat(y, first) / counts
        t = tu
    return t, x, y


def resample(s: GazeSamples, hz: float = 60.0, max_gap_s: float = 0.1) -> GazeSamples:
    """Samples on a uniform grid of ``hz`` from ``s.t[0]`` to ``s.t[-1]``.

    Each grid time gets the linear interpolation of the valid samples just before and
    just after it, but only when those two are at most ``max_gap_s`` apart (the hole
    between them is short: a dropped frame, a sample flagged invalid); grid times inside a
    longer hole, before the first or after the last valid sample are invalid (NaN). A grid
    time that coincides with a valid sample takes its value. Valid samples with the same
    time are averaged first.
    """
    if not hz > 0:
        raise ValueError(f"resample: hz must be positive, got {hz!r}")
    if not len(s):
        return GazeSamples.empty()
    start, stop = float(s.t[0]), float(s.t[-1])
    n = int(math.floor((stop - start) * hz + 1e-9)) + 1
    tg = start + np.arange(n) / hz
    tv, xv, yv = _valid_unique(s)
    if not len(tv):
        nan = np.full(n, np.nan)
        return GazeSamples(tg, nan, nan.copy(), np.zeros(n, bool))
    j = np.searchsorted(tv, tg, "right") - 1  # last valid sample at or before the grid time
    k = j + 1
    exact = (j >= 0) & (tv[np.clip(j, 0, None)] == tg)
    inside = (j >= 0) & (k < len(tv))
    jj, kk = np.clip(j, 0, len(tv) - 1), np.clip(k, 0, len(tv) - 1)
    span = tv[kk] - tv[jj]
    ok = exact | (inside & (span <= max_gap_s))
    w = np.zeros(n)
    np.divide(tg - tv[jj], span, out=w, where=inside & (span > 0))
    w = np.where(exact, 0.0, w)
    x = np.where(ok, xv[jj] + w * (xv[kk] - xv[jj]), np.nan)
    y = np.where(ok, yv[jj] + w * (yv[kk] - yv[jj]), np.nan)
    return GazeSamples(tg, x, y, ok)


def _break_long_intervals(s: GazeSamples, max_gap_s: float, dt: float) -> GazeSamples:
    """Irregular samples with an invalid row inserted after every valid sample whose next
    valid sample is more than ``max_gap_s`` later, so that no window spans the hole."""
    tv, xv, yv = _valid_unique(s)
    if len(tv) < 2:
        return GazeSamples(tv, xv, yv, np.ones(len(tv), bool))
    holes = np.flatnonzero(np.diff(tv) > max_gap_s)
    t = np.insert(tv, holes + 1, tv[holes] + min(dt, max_gap_s) * 0.5)
    x = np.insert(xv, holes + 1, np.nan)
    y = np.insert(yv, holes + 1, np.nan)
    return GazeSamples(t, x, y, np.isfinite(x))


def visual_angles(geometry: ScreenGeometry, x, y) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis visual angle (deg) of screen points ``x, y`` (px) from the screen centre:
    ``atan(offset_mm / viewing_distance_mm)`` on each axis (pymovements' ``pix2deg``
    convention, there with the centre at ``(size - 1) / 2``; here ``size / 2``, as screen
    px are continuous coordinates). Used for dispersion; velocities use exact ray angles."""
    cx, cy = geometry.centre_px
    d = geometry.viewing_distance_mm
    ax = np.degrees(np.arctan((np.asarray(x, np.float64) - cx) * geometry.mm_per_px_x / d))
    ay = np.degrees(np.arctan((np.asarray(y, np.float64) - cy) * geometry.mm_per_px_y / d))
    return ax, ay


# ----------------------------------------------------------------------------------------
# events
# ----------------------------------------------------------------------------------------
_FLOAT_FIELDS = ("onset", "duration", "x", "y", "x_end", "y_end")


@dataclass
class Events:
    """Eye-movement events, one row per event; all arrays have equal length.

    ``kind``: :class:`~ifllm_lab.session.schema.EventKind` codes (uint8); ``onset``,
    ``duration``: s on the session clock; ``x``, ``y``: fixation centroid or saccade start,
    screen px; ``x_end``, ``y_end``: saccade end (NaN for other kinds); ``detector``: the
    algorithm and its thresholds, e.g. ``"I-DT dispersion=1deg min=0.1s resample=60Hz ..."``.
    """

    kind: np.ndarray
    onset: np.ndarray
    duration: np.ndarray
    x: np.ndarray
    y: np.ndarray
    x_end: np.ndarray
    y_end: np.ndarray
    detector: str = ""

    def __post_init__(self) -> None:
        self.kind = np.asarray(self.kind).reshape(-1).astype(np.uint8)
        for name in _FLOAT_FIELDS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64).reshape(-1))
        n = len(self.kind)
        bad = {name: len(getattr(self, name)) for name in _FLOAT_FIELDS if len(getattr(self, name)) != n}
        if bad:
            raise ValueError(f"Events arrays differ in length: kind {n}, {bad}")
        self.detector = str(self.detector)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def empty(cls, detector: str = "") -> "Events":
        z = np.zeros(0)
        return cls(np.zeros(0, np.uint8), z, z, z, z, z, z, detector)

    @classmethod
    def concat(cls, parts, detector: str | None = None) -> "Events":
        """Rows of all ``parts`` sorted by onset (stable); ``detector`` defaults to the
        parts' distinct non-empty detector strings joined by ``"; "``."""
        parts = list(parts)
        if detector is None:
            detector = "; ".join(dict.fromkeys(p.detector for p in parts if p.detector))
        if not parts:
            return cls.empty(detector)
        ev = cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("kind",) + _FLOAT_FIELDS),
                 detector=detector)
        return ev.sorted()

    @classmethod
    def from_rows(cls, rows) -> "Events":
        """From the ``events`` stream's columns (a mapping or a structured array, as
        :meth:`rows` returns or ``reader["events"].read()`` gives)."""
        get = (lambda k: rows[k])
        det = [str(d) for d in get("detector")] if len(get("t")) else []
        return cls(get("kind"), get("t"), get("duration"), get("x"), get("y"), get("x_end"), get("y_end"),
                   "; ".join(dict.fromkeys(d for d in det if d)))

    # -- access -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.kind)

    def __repr__(self) -> str:
        names = {int(k): k.name.lower() for k in EventKind}
        counts = ", ".join(f"{names.get(int(k), int(k))} {int((self.kind == k).sum())}"
                           for k in np.unique(self.kind))
        return f"<Events: {len(self)} ({counts or 'none'}) by {self.detector!r}>"

    @property
    def offset(self) -> np.ndarray:
        """End time of every event, s (``onset + duration``)."""
        return self.onset + self.duration

    def take(self, index) -> "Events":
        """Rows selected by a boolean mask, an index array or a slice."""
        return Events(*(getattr(self, f)[index] for f in ("kind",) + _FLOAT_FIELDS), detector=self.detector)

    def sorted(self) -> "Events":
        """Rows in onset order (stable)."""
        return self.take(np.argsort(self.onset, kind="stable"))

    def of_kind(self, kind) -> "Events":
        """Rows of one :class:`EventKind` (or several, given a sequence)."""
        kinds = [int(k) for k in kind] if isinstance(kind, (list, tuple, set, np.ndarray)) else [int(kind)]
        return self.take(np.isin(self.kind, kinds))

    def fixations(self) -> "Events":
        return self.of_kind(EventKind.FIXATION)

    def saccades(self) -> "Events":
        return self.of_kind(EventKind.SACCADE)

    def blinks(self) -> "Events":
        return self.of_kind(EventKind.BLINK)

    def gaps(self) -> "Events":
        return self.of_kind(EventKind.GAP)

    def between(self, t0: float, t1: float, *, overlap: bool = False) -> "Events":
        """Events with ``t0 <= onset < t1``; with ``overlap=True`` every event that overlaps
        ``[t0, t1)`` at all (``onset < t1`` and ``onset + duration > t0``)."""
        if overlap:
            return self.take((self.onset < t1) & (self.offset > t0))
        return self.take((self.onset >= t0) & (self.onset < t1))

    def rows(self) -> dict[str, np.ndarray | list]:
        """The rows as the ``events`` stream's columns, in the schema's dtypes (``t`` is
        the onset; ``detector`` a list of str), ready for ``put_rows("events", ...)``."""
        spec = stream_spec("events")
        src = {"t": self.onset, "kind": self.kind, "duration": self.duration, "x": self.x, "y": self.y,
               "x_end": self.x_end, "y_end": self.y_end}
        out: dict[str, np.ndarray | list] = {}
        for c in spec.columns:
            if c.is_text:
                out[c.name] = [self.detector] * len(self)
            else:
                out[c.name] = np.asarray(src[c.name]).astype(c.dtype)
        return out


def read_events(reader) -> Events:
    """The session's stored ``events`` stream (empty :class:`Events` when it has none)."""
    if "events" not in reader or not len(reader["events"]):
        return Events.empty()
    return Events.from_rows(reader["events"].read())


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def true_runs(mask) -> tuple[np.ndarray, np.ndarray]:
    """Start and (exclusive) stop indices of the runs of True in ``mask``."""
    m = np.concatenate(([False], np.asarray(mask, bool), [False]))
    d = np.diff(m.astype(np.int8))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _fmt(v: float) -> str:
    return f"{float(v):g}"


def _savgol_coeffs(window: int, order: int) -> np.ndarray:
    """Least-squares polynomial fit matrix: row ``i`` gives the fitted value at sample ``i``
    of a window of ``window`` samples (Savitzky & Golay 1964)."""
    pos = np.arange(window, dtype=np.float64) - (window - 1) / 2
    a = np.vander(pos, order + 1, increasing=True)
    return a @ np.linalg.pinv(a)


def _smooth(x: np.ndarray, valid: np.ndarray, window: int, order: int = 2) -> np.ndarray:
    """Savitzky-Golay smoothing of each run of valid samples separately (so nothing leaks
    across holes); the first and last half-window of a run take the values of the
    polynomial fitted to the run's first and last window. Runs shorter than the window
    are left as they are."""
    out = x.copy()
    if window < order + 2:
        return out
    fit = _savgol_coeffs(window, order)
    centre = fit[window // 2]
    h = window // 2
    starts, stops = true_runs(valid)
    for a, b in zip(starts.tolist(), stops.tolist()):
        if b - a < window:
            continue
        seg = x[a:b]
        out[a + h:b - h] = np.convolve(seg, centre[::-1], "valid")
        out[a:a + h] = (fit @ seg[:window])[:h]
        out[b - h:b] = (fit @ seg[-window:])[-h:]
    return out


def _angular_velocity(t: np.ndarray, x: np.ndarray, y: np.ndarray, geometry: ScreenGeometry,
                      method: str = "central") -> np.ndarray:
    """Angular speed (deg/s) of every sample: the exact angle between the gaze directions of
    two samples over the time between them. ``"central"``: the samples before and after
    (one-sided at the ends of a run of valid samples); ``"preceding"``: this sample and the
    one before (the next one for the first sample of a run). NaN for invalid samples and
    isolated valid ones."""
    n = len(t)
    v = np.full(n, np.nan)
    if n < 2:
        return v
    p = np.stack([x, y], axis=-1)
    step = geometry.deg_between(p[:-1], p[1:]) / np.diff(t)  # between i and i+1; NaN over holes
    step = np.atleast_1d(step)
    before = np.concatenate(([np.nan], step))  # sample i and i-1
    after = np.concatenate((step, [np.nan]))   # sample i and i+1
    if method == "central":
        if n >= 3:
            v[1:-1] = geometry.deg_between(p[:-2], p[2:]) / (t[2:] - t[:-2])
        v = np.where(np.isfinite(v), v, np.where(np.isfinite(before), before, after))
    elif method == "preceding":
        v = np.where(np.isfinite(before), before, after)
    else:
        raise ValueError(f"unknown velocity method {method!r}: use 'central' or 'preceding'")
    v[~(np.isfinite(x) & np.isfinite(y))] = np.nan
    return v


def _auto_max_gap(dt: float, min_gap_s: float) -> float:
    """Longest hole interpolated over: one sample interval + ``min_gap_s``, a hair less so
    that a hole is either interpolated or reported by :func:`gaps_and_blinks`, never both
    (timestamps in whole ms make exact ties common)."""
    return (dt if math.isfinite(dt) else 0.0) + min_gap_s - 2 * _EPS_T


def _prepare(s: GazeSamples, resample_hz: float | None, max_gap_s: float | None,
             min_gap_s: float = MIN_GAP_S) -> tuple[GazeSamples, float, float, str]:
    """Samples the detectors work on, their sample interval, the max hole interpolated
    over, and a description for the detector string."""
    raw_dt = sample_interval(s)
    if max_gap_s is None:
        max_gap_s = _auto_max_gap(raw_dt, min_gap_s)
    if resample_hz:
        g = resample(s, resample_hz, max_gap_s)
        return g, 1.0 / resample_hz, max_gap_s, f"resample={_fmt(resample_hz)}Hz max_gap={max_gap_s:.3f}s"
    dt = raw_dt if math.isfinite(raw_dt) else 0.0
    return _break_long_intervals(s, max_gap_s, dt), dt, max_gap_s, f"raw max_gap={max_gap_s:.3f}s"


def _means(g: GazeSamples, starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean x and y of the samples ``starts[i]:stops[i]`` (all valid)."""
    csx = np.concatenate(([0.0], np.cumsum(np.nan_to_num(g.x))))
    csy = np.concatenate(([0.0], np.cumsum(np.nan_to_num(g.y))))
    k = stops - starts
    return (csx[stops] - csx[starts]) / k, (csy[stops] - csy[starts]) / k


def _fixation_events(g: GazeSamples, starts: np.ndarray, stops: np.ndarray, dt: float, detector: str) -> Events:
    n = len(starts)
    if not n:
        return Events.empty(detector)
    cx, cy = _means(g, starts, stops)
    onset = g.t[starts]
    duration = g.t[stops - 1] - onset + dt
    nan = np.full(n, np.nan)
    return Events(np.full(n, int(EventKind.FIXATION), np.uint8), onset, duration, cx, cy, nan, nan.copy(), detector)


# ----------------------------------------------------------------------------------------
# I-DT
# ----------------------------------------------------------------------------------------
class _RangeTable:
    """Sparse table for O(1) max / min over index ranges of one array (NaN propagates, so a
    range containing NaN gives NaN). Levels up to ``2**k <= max_len`` only."""

    def __init__(self, a: np.ndarray, max_len: int):
        self.mx = [a]
        self.mn = [a]
        k = 1
        while (1 << k) <= max_len:
            h = 1 << (k - 1)
            pad = np.full(h, np.nan)
            self.mx.append(np.concatenate((np.maximum(self.mx[-1][:-h], self.mx[-1][h:]), pad)))
            self.mn.append(np.concatenate((np.minimum(self.mn[-1][:-h], self.mn[-1][h:]), pad)))
            k += 1

    def query(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Max and min over ``[a, b]`` (inclusive), element-wise; ``b >= a``."""
        length = b - a + 1
        k = np.floor(np.log2(np.maximum(length, 1))).astype(np.int64)
        mx = np.stack(self.mx)
        mn = np.stack(self.mn)
        b2 = b - (1 << k) + 1
        return np.maximum(mx[k, a], mx[k, b2]), np.minimum(mn[k, a], mn[k, b2])


def _dispersion(xr, yr, metric: str):
    if metric == "range_sum":
        return xr + yr
    return np.hypot(xr, yr)


_DISPERSION_METRICS = ("range_sum", "bbox_diagonal")


def _idt_windows(t: np.ndarray, ax: np.ndarray, ay: np.ndarray, dt: float, threshold: float,
                 min_duration_s: float, metric: str, skip_breaking_sample: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Salvucci & Goldberg's I-DT over samples ``t`` with angles ``ax, ay`` (NaN = invalid):
    (start, stop) index arrays of the fixations. Amortised O(n): the first window of every
    start is checked at once with a sparse table; each accepted window then grows in
    vectorised chunks and the search resumes after it.

    The search resumes at the sample that ended the fixation (Salvucci & Goldberg: the
    fixation's points are removed, the rest stay). ``skip_breaking_sample`` resumes one
    sample later instead, as pymovements 0.28's ``idt`` does (there the sample that ended a
    fixation is reported as its offset and never starts the next window); only the tests'
    cross-check uses it."""
    n = len(t)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # smallest window [ws, we0) lasting min_duration_s: t[we0 - 1] - t[ws] + dt >= min
    last = np.searchsorted(t, t + (min_duration_s - dt) - _EPS_T, "left")
    last = np.maximum(last, np.arange(n))
    fits = last < n
    if not fits.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ws_all = np.flatnonzero(fits)
    we_all = last[fits]
    max_len = int((we_all - ws_all).max()) + 1
    tx, ty = _RangeTable(ax, max_len), _RangeTable(ay, max_len)
    mxx, mnx = tx.query(ws_all, we_all)
    mxy, mny = ty.query(ws_all, we_all)
    d0 = _dispersion(mxx - mnx, mxy - mny, metric)
    ok = d0 <= threshold  # NaN (a hole in the window) is never ok
    cand = ws_all[ok].tolist()
    cand_end = (we_all[ok] + 1).tolist()  # exclusive
    # running extremes as maxima: (max x, -min x, max y, -min y)
    ext0 = np.stack([mxx[ok], -mnx[ok], mxy[ok], -mny[ok]], axis=1)
    signed = np.stack([ax, -ax, ay, -ay])
    diagonal = metric != "range_sum"

    starts: list[int] = []
    stops: list[int] = []
    i = 0
    nc = len(cand)
    while i < nc:
        ws = cand[i]
        we = cand_end[i]
        cur = ext0[i]
        chunk = 32
        while we < n:  # grow until the dispersion exceeds the threshold (or a hole)
            r = np.maximum.accumulate(signed[:, we:we + chunk], axis=1)
            np.maximum(r, cur[:, None], out=r)
            if diagonal:
                disp = np.hypot(r[0] + r[1], r[2] + r[3])
            else:
                disp = (r[0] + r[1]) + (r[2] + r[3])
            stop = ~(disp <= threshold)
            k = int(stop.argmax())
            if stop[k]:
                we += k
                break
            we += r.shape[1]
            cur = r[:, -1]
            chunk *= 2
        starts.append(ws)
        stops.append(we)
        resume = we + 1 if (skip_breaking_sample and we < n) else we
        i = bisect.bisect_left(cand, resume)  # restart at the first point after it
    return np.asarray(starts, np.int64), np.asarray(stops, np.int64)


def idt(s: GazeSamples, geometry: ScreenGeometry, dispersion_deg: float = 1.0, min_duration_s: float = 0.1, *,
        resample_hz: float | None = 60.0, max_gap_s: float | None = None, dispersion: str = "range_sum",
        smooth: str | None = "savgol", smooth_window_s: float = 0.1, merge_gap_s: float | None = 0.075,
        merge_deg: float = 0.5) -> Events:
    """Fixations by dispersion threshold (I-DT; Salvucci & Goldberg 2000).

    Args:
        s: gaze samples (screen px).
        geometry: the screen, for degrees of visual angle.
        dispersion_deg: largest dispersion of a fixation's points, degrees (Salvucci &
            Goldberg suggest 0.5-1 deg; Pupil Player uses 1.5 deg).
        min_duration_s: shortest fixation, s (Salvucci & Goldberg: 100-200 ms).
        resample_hz: work on a uniform grid of this rate (:func:`resample`); None works on
            the samples as they are (a hole longer than ``max_gap_s`` still ends a window).
        max_gap_s: longest hole between valid samples interpolated over; None: the median
            sample interval + 75 ms (the hole :func:`gaps_and_blinks` starts reporting at).
        dispersion: ``"range_sum"``: ``(max x - min x) + (max y - min y)`` over per-axis
            visual angles (Salvucci & Goldberg's definition, also pymovements'); or
            ``"bbox_diagonal"``: the diagonal of that bounding box.
        smooth: ``"savgol"`` (default): Savitzky-Golay smoothing (order 2) of the positions
            of each run of valid samples before measuring dispersion, as in :func:`ivt`;
            None: the positions as they are (Salvucci & Goldberg's I-DT). The range of n
            noisy samples grows with n, so at 60 Hz and 0.4 deg RMS sample-to-sample noise
            a 1 deg window breaks inside most fixations unless smoothed.
        smooth_window_s: smoothing window, s (0.1 s: 7 samples at 60 Hz).
        merge_gap_s, merge_deg: adjacent fixations at most this far apart in time and in
            visual angle (between centroids), with no invalid sample between them, are
            merged (Olsen 2012's step, 75 ms and 0.5 deg). With webcam noise a single
            outlying sample ends an I-DT window in the middle of a fixation and the next
            window starts right after it at the same place; merging rejoins the halves.
            None turns merging off (plain Salvucci & Goldberg I-DT).

    Returns fixations only (I-DT does not characterise saccades); a fixation never spans an
    invalid sample. ``x``, ``y`` are the mean position of its samples (px, unsmoothed).
    """
    if not dispersion_deg > 0:
        raise ValueError(f"idt: dispersion_deg must be positive, got {dispersion_deg!r}")
    if not min_duration_s > 0:
        raise ValueError(f"idt: min_duration_s must be positive, got {min_duration_s!r}")
    if dispersion not in _DISPERSION_METRICS:
        raise ValueError(f"idt: dispersion must be one of {_DISPERSION_METRICS}, got {dispersion!r}")
    g, dt, max_gap_s, how = _prepare(s, resample_hz, max_gap_s)
    detector = (f"I-DT dispersion={_fmt(dispersion_deg)}deg"
                + ("" if dispersion == "range_sum" else f"({dispersion})")
                + f" min={_fmt(min_duration_s)}s {how}"
                + (f" smooth={smooth}:{_fmt(smooth_window_s)}s" if smooth else "")
                + (f" merge={_fmt(merge_gap_s)}s/{_fmt(merge_deg)}deg" if merge_gap_s else ""))
    if len(g) == 0 or not g.valid.any():
        return Events.empty(detector)
    x, y = _smoothed(g, dt, smooth, smooth_window_s)
    ax, ay = visual_angles(geometry, x, y)
    starts, stops = _idt_windows(g.t, ax, ay, dt, float(dispersion_deg), float(min_duration_s), dispersion)
    if len(starts) and merge_gap_s:
        starts, stops = _merge(g, starts, stops, dt, float(merge_gap_s), float(merge_deg), geometry)
    return _fixation_events(g, starts, stops, dt, detector)


def _smoothed(g: GazeSamples, dt: float, smooth: str | None, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    if smooth is None or smooth is False:
        return g.x, g.y
    if smooth != "savgol":
        raise ValueError(f"unknown smoothing {smooth!r}: use 'savgol' or None")
    if not dt > 0:
        return g.x, g.y
    w = int(round(window_s / dt))
    w = max(3, w + (1 - w % 2))  # odd, at least 3
    if w < 5:  # order 2 over 3 points would not smooth at all
        return g.x, g.y
    return _smooth(g.x, g.valid, w), _smooth(g.y, g.valid, w)


# ----------------------------------------------------------------------------------------
# I-VT
# ----------------------------------------------------------------------------------------
def ivt(s: GazeSamples, geometry: ScreenGeometry, velocity_deg_s: float = 30.0, min_fixation_s: float = 0.06, *,
        resample_hz: float | None = 60.0, max_gap_s: float | None = None, smooth: str | None = "savgol",
        smooth_window_s: float = 0.1, velocity: str = "central", merge_gap_s: float | None = 0.075,
        merge_deg: float = 0.5) -> Events:
    """Fixations and saccades by velocity threshold (I-VT; Salvucci & Goldberg 2000, with
    the merge and discard steps of Olsen 2012's Tobii I-VT filter).

    Args:
        s: gaze samples (screen px).
        geometry: the screen, for degrees of visual angle.
        velocity_deg_s: samples slower than this are fixation samples, the others saccade
            samples (30 deg/s: Olsen 2012; Salvucci & Goldberg's example threshold).
        min_fixation_s: fixations shorter than this (after merging) are discarded (60 ms:
            Olsen 2012); their samples belong to no event.
        resample_hz: work on a uniform grid of this rate (:func:`resample`); None: the
            samples as they are.
        max_gap_s: longest hole interpolated over; None: median sample interval + 75 ms.
        smooth: ``"savgol"`` (default): Savitzky-Golay smoothing (order 2) of the positions
            of each run of valid samples before the velocity, needed for webcam noise (at
            0.4 deg RMS sample-to-sample and 60 Hz, noise alone moves at ~24 deg/s); None:
            raw positions.
        smooth_window_s: smoothing window, s (0.1 s: 7 samples at 60 Hz).
        velocity: ``"central"`` (the samples before and after) or ``"preceding"`` (this
            sample and the one before), both as exact angles between gaze directions.
        merge_gap_s, merge_deg: adjacent fixations at most this far apart in time and in
            visual angle (between centroids) are merged, unless invalid samples lie between
            them (Olsen 2012: 75 ms, 0.5 deg); None turns merging off.

    Saccades are the runs of saccade samples left between fixations: onset at the first
    saccade sample, ``x, y`` the last sample before the run and ``x_end, y_end`` the first
    after it (the run's own ends where those are invalid).
    """
    if not velocity_deg_s > 0:
        raise ValueError(f"ivt: velocity_deg_s must be positive, got {velocity_deg_s!r}")
    g, dt, max_gap_s, how = _prepare(s, resample_hz, max_gap_s)
    detector = (f"I-VT velocity={_fmt(velocity_deg_s)}deg/s min={_fmt(min_fixation_s)}s {how}"
                + (f" smooth={smooth}:{_fmt(smooth_window_s)}s" if smooth else "")
                + ("" if velocity == "central" else f" velocity={velocity}")
                + (f" merge={_fmt(merge_gap_s)}s/{_fmt(merge_deg)}deg" if merge_gap_s else ""))
    n = len(g)
    if n == 0 or not g.valid.any():
        return Events.empty(detector)
    x, y = _smoothed(g, dt, smooth, smooth_window_s)
    v = _angular_velocity(g.t, x, y, geometry, velocity)
    ok = np.isfinite(v)
    fix = ok & (v < velocity_deg_s)
    sac = ok & ~fix
    starts, stops = true_runs(fix)
    if len(starts) and merge_gap_s:
        starts, stops = _merge(g, starts, stops, dt, float(merge_gap_s), float(merge_deg), geometry)
    if len(starts):
        dur = g.t[stops - 1] - g.t[starts] + dt
        keep = dur >= min_fixation_s - _EPS_T
        starts, stops = starts[keep], stops[keep]
    fixations = _fixation_events(g, starts, stops, dt, detector)
    # saccade samples inside merged fixations are not saccades
    inside = np.zeros(n + 1, np.int64)
    np.add.at(inside, starts, 1)
    np.add.at(inside, stops, -1)
    sac &= np.cumsum(inside)[:n] == 0
    a, b = true_runs(sac)
    if len(a):
        before = np.maximum(a - 1, 0)
        use_b = (a > 0) & g.valid[before]
        sx = np.where(use_b, g.x[before], g.x[a])
        sy = np.where(use_b, g.y[before], g.y[a])
        after = np.minimum(b, n - 1)
        use_a = (b < n) & g.valid[after]
        ex = np.where(use_a, g.x[after], g.x[b - 1])
        ey = np.where(use_a, g.y[after], g.y[b - 1])
        saccades = Events(np.full(len(a), int(EventKind.SACCADE), np.uint8), g.t[a], g.t[b - 1] - g.t[a] + dt,
                          sx, sy, ex, ey, detector)
    else:
        saccades = Events.empty(detector)
    return Events.concat([fixations, saccades], detector=detector)


def _merge(g: GazeSamples, starts: np.ndarray, stops: np.ndarray, dt: float, gap_s: float, deg: float,
           geometry: ScreenGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Merge adjacent fixation runs (Olsen 2012): the time between them at most ``gap_s``,
    their centroids at most ``deg`` apart (exact angle between the gaze directions), and
    no invalid sample between them. Sequential: a merged fixation's centroid is that of
    all its samples. Scalar Python (one pass, no per-pair numpy calls) for speed."""
    csx = np.concatenate(([0.0], np.cumsum(np.nan_to_num(g.x)))).tolist()
    csy = np.concatenate(([0.0], np.cumsum(np.nan_to_num(g.y)))).tolist()
    csi = np.concatenate(([0], np.cumsum(~g.valid))).tolist()
    t = g.t.tolist()
    cx0, cy0 = geometry.centre_px
    kx, ky, d = geometry.mm_per_px_x, geometry.mm_per_px_y, geometry.viewing_distance_mm
    max_rad = math.radians(deg)
    starts_l, stops_l = starts.tolist(), stops.tolist()
    out_a = [starts_l[0]]
    out_b = [stops_l[0]]
    for a, b in zip(starts_l[1:], stops_l[1:]):
        pa, pb = out_a[-1], out_b[-1]
        if t[a] - (t[pb - 1] + dt) <= gap_s + _EPS_T and csi[a] == csi[pb]:
            n1, n2 = pb - pa, b - a
            x1 = ((csx[pb] - csx[pa]) / n1 - cx0) * kx
            y1 = ((csy[pb] - csy[pa]) / n1 - cy0) * ky
            x2 = ((csx[b] - csx[a]) / n2 - cx0) * kx
            y2 = ((csy[b] - csy[a]) / n2 - cy0) * ky
            cross = math.sqrt((y1 * d - d * y2) ** 2 + (d * x2 - x1 * d) ** 2 + (x1 * y2 - y1 * x2) ** 2)
            if math.atan2(cross, x1 * x2 + y1 * y2 + d * d) <= max_rad:
                out_b[-1] = b
                continue
        out_a.append(a)
        out_b.append(b)
    return np.asarray(out_a, np.int64), np.asarray(out_b, np.int64)


# ----------------------------------------------------------------------------------------
# blinks and gaps
# ----------------------------------------------------------------------------------------
def gaps_and_blinks(s: GazeSamples, min_gap_s: float = MIN_GAP_S, blink_max_s: float = BLINK_MAX_S, *,
                    sample_interval_s: float | None = None) -> Events:
    """Stretches without valid gaze, as BLINK or GAP events.

    Between two consecutive valid samples ``a`` and ``b`` the data missing is ``t[b] - t[a]
    - dt`` (``dt``: ``sample_interval_s``, by default :func:`sample_interval`, so regular
    sampling misses nothing and one lost frame misses one ``dt``); it starts at ``t[a] +
    dt`` and ends at ``t[b]``. Invalid samples before the first valid one count from the
    first sample, after the last valid one up to the last sample's end. A stretch of at
    least ``min_gap_s`` is an event:

    - ``min_gap_s`` (75 ms) .. ``blink_max_s`` (500 ms): **BLINK**. Blinks last about
      50-500 ms (Nyström et al. 2024, the bounds pymovements' blink detector uses); 75 ms is
      the longest hole the Tobii I-VT filter interpolates over as noise (Olsen 2012), and
      :func:`idt` / :func:`ivt` interpolate over exactly the shorter holes by default, so a
      fixation never spans a reported event. A webcam tracker cannot tell a blink from a
      lost face or a glance away of the same length: BLINK means "missing for a blink's
      length", not a verified eyelid closure.
    - longer than ``blink_max_s``: **GAP** (looking away, face lost, tracking stalled).

    ``x``, ``y`` are the last valid position before the stretch and ``x_end``, ``y_end``
    the first after it (NaN where there is none).
    """
    n = len(s)
    det = f"gaps min={_fmt(min_gap_s)}s blink<={_fmt(blink_max_s)}s"
    if n == 0:
        return Events.empty(det)
    dt = sample_interval(s) if sample_interval_s is None else float(sample_interval_s)
    if not math.isfinite(dt):
        dt = 0.0
    vi = np.flatnonzero(s.valid)
    if not len(vi):
        on = np.array([s.t[0]])
        end = np.array([s.t[-1] + dt])
        px = py = qx = qy = np.array([np.nan])
    else:
        ta, tb = s.t[vi[:-1]], s.t[vi[1:]]
        on = np.concatenate(([s.t[0]], ta + dt, [s.t[vi[-1]] + dt]))
        end = np.concatenate(([s.t[vi[0]]], tb, [s.t[-1] + dt]))
        px = np.concatenate(([np.nan], s.x[vi]))
        py = np.concatenate(([np.nan], s.y[vi]))
        qx = np.concatenate((s.x[vi], [np.nan]))
        qy = np.concatenate((s.y[vi], [np.nan]))
    dur = end - on
    keep = dur >= min_gap_s - _EPS_T
    on, dur, px, py, qx, qy = on[keep], dur[keep], px[keep], py[keep], qx[keep], qy[keep]
    kind = np.where(dur <= blink_max_s + _EPS_T, int(EventKind.BLINK), int(EventKind.GAP)).astype(np.uint8)
    return Events(kind, on, dur, px, py, qx, qy, det).sorted()


# ----------------------------------------------------------------------------------------
# whole sessions
# ----------------------------------------------------------------------------------------
_DETECTORS = {"idt": idt, "ivt": ivt}

def detect(reader, method: str = "idt", *, t0: float | None = None, t1: float | None = None,
           geometry: ScreenGeometry | None = None, blinks: bool = True, min_gap_s: float = MIN_GAP_S,
           blink_max_s: float = BLINK_MAX_S, source_defaults: bool = True, **params) -> Events:
    """All events of a session (or of ``t0 <= t < t1``), sorted by onset.

    Loads the gaze (:func:`load_gaze`), takes the session's geometry
    (:func:`session_geometry`, unless ``geometry`` is given), runs ``method`` (``"idt"``
    or ``"ivt"``, with ``params`` passed on, e.g. ``dispersion_deg=1.5``) and, with
    ``blinks``, adds :func:`gaps_and_blinks`.

    - Unless ``max_gap_s`` is given, the detector interpolates over holes shorter than the
      session's sample interval + ``min_gap_s``: exactly the holes *not* reported as blinks
      or gaps, so no fixation spans a reported blink or gap.
    - For sessions imported from elsewhere, with ``source_defaults``, the detector
      defaults registered for their ``meta.source``
      (:class:`~ifllm_lab.analysis.sources.SessionSource`) fill in the thresholds the
      caller did not give; the detector string says so, or that none are registered.
    - The detector string names the detector with its thresholds, the blink/gap rule and
      "nominal geometry" when the file had no screen size.
    """
    try:
        fn = _DETECTORS[method.lower()]
    except KeyError:
        raise ValueError(f"unknown event detector {method!r}: use one of {sorted(_DETECTORS)}") from None
    s = load_gaze(reader, t0, t1)
    if geometry is None:
        geometry, known = session_geometry(reader)
    else:
        known = True
    note = "" if known else "; nominal geometry"
    if source_defaults and sources.is_foreign(reader):
        source = sources.registered().get(reader.meta.source)
        if source is None:
            note += f"; no defaults registered for {reader.meta.source!r}"
        elif source.detector_defaults.get(method.lower()):
            params = {**source.detector_defaults[method.lower()], **params}
            note += f"; {source.label or source.name} defaults"
    dt = sample_interval(s)
    if "max_gap_s" not in params:
        params["max_gap_s"] = _auto_max_gap(dt, min_gap_s)
    parts = [fn(s, geometry, **params)]
    if blinks:
        parts.append(gaps_and_blinks(s, min_gap_s, blink_max_s, sample_interval_s=dt if math.isfinite(dt) else None))
    detector = "; ".join(p.detector for p in parts) + note
    return Events.concat(parts, detector=detector)
