"""Per-participant gaze calibration: target patterns, sample collection, regression,
validation reports and drift checks. Plain Python + numpy; no Qt.

Units and frames
----------------
Screen positions are **px**, origin top left, x right, y down. Patterns store positions in
**normalised screen units** (0..1 of the width / height, origin top left) so one file fits
any screen; :meth:`Pattern.targets_px` turns them into px. Angles are **degrees of visual
angle**, computed exactly by :meth:`ScreenGeometry.deg_between` (eye on the perpendicular
through the screen centre). Times are **seconds** on the session clock.

Flow
----
1. ``pattern = load_pattern("9-point")``; show ``pattern.targets_px(screen)`` one by one
   (``pattern.presentation_order()``), or the moving target ``pattern.position_px_at(t)``
   of a pursuit pattern.
2. ``collector = CalibrationCollector(pattern, screen)``; per camera frame
   ``collector.add(t, features, blink, valid, target_index, onset_t)``. Samples in the
   first ``settle_s`` after a target appears (the saccade to it and the correction) and
   blink / invalid frames are dropped and counted.
3. ``model = fit_calibration(*collector.training_data(), feature_names=names, screen=screen)``
   chooses the regression kind and its regularisation by leave-one-target-out
   cross-validation and records every kind's CV error (``model.cv``).
4. Validation on *other* targets (``validation-9``): ``report = validate(model,
   val_collector, screen)``; ``report.passed`` against :class:`ValidationThresholds`;
   ``report.to_rows()`` for the session's ``calibration/points`` stream.
5. Between trials: ``drift_check(features_near_target, target, model, screen)`` returns
   ``"none"``, ``"correct"`` (use ``model.with_offset(*result.offset_px)``) or
   ``"recalibrate"``.

Regression kinds
----------------
All kinds standardise the features (z-scores over the calibration samples; unsupervised,
so it is done once on all samples) and fit both screen coordinates with an unpenalised
intercept and a ridge penalty ``alpha * |beta|^2`` on the mean squared error (so ``alpha``
does not depend on the number of samples).

``ridge``               linear in all features (iris positions, lids, head pose, ...).
``poly2-ridge``         adds squares and pairwise products of the iris features (names
                        containing ``iris``; all features when there are no names),
                        standardised again after expansion.
``huber``               linear, robust: iteratively reweighted least squares with Huber
                        weights on each sample's 2-D residual (``w = min(1, c*s/r)``,
                        ``c = 2``, ``s`` the residual scale from the median residual), so
                        a few samples where the participant looked elsewhere or the face
                        tracker glitched barely move the fit.
``poly2-huber``         both.
``per-eye-ridge``       one linear model per eye (that eye's features + the shared ones,
                        i.e. those not starting with ``left_``/``right_``); the two
                        predictions are averaged. Needs feature names.
``per-eye-poly2-ridge`` the same with degree-2 iris terms per eye.
(``per-eye-huber`` and ``per-eye-poly2-huber`` exist too but are not tried by default.)

Target space: with a screen geometry the models predict the gaze *direction*
``(atan(x_mm/D), atan(y_mm/D))`` in degrees (``D`` the viewing distance, x/y from the screen
centre) and map it back to px exactly. Iris offsets are close to linear in the eye's
rotation, not in flat-screen px (``tan`` stretches the edges by ~6 % at 25 deg), so this
takes a known nonlinearity out of the regression; without a screen they predict px.

Model selection: for every kind and every ``alpha`` of the grid, the calibration samples
of one target are predicted by a model fitted on the other targets (leave-one-target-out;
for pursuit data contiguous time segments take the place of targets); a held-out
target's error is the mean distance (px) of its samples' predictions from it, and a
kind's CV error is the mean over targets at its best ``alpha``. The simplest kind whose CV
error is within 5 % of the lowest wins (:data:`CHOICE_RULE`; near-ties go to the simpler
model, as CV over 9-13 targets is itself noisy) and is refitted on all samples. Holding
out an edge or corner target means extrapolating, so CV errors are larger than the
errors on validation targets inside the calibrated area; report accuracy from a
validation run on separate targets (``validation-9``), never from the CV figures.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..paths import data_file
from ..session.schema import CalibrationPhase
from .geometry import ScreenGeometry

__all__ = [
    "PATTERN_DIR", "LissajousPath", "Pattern", "load_pattern", "list_patterns",
    "CalibrationCollector", "DropCounts",
    "KINDS", "DEFAULT_KINDS", "DEFAULT_ALPHAS", "CalibrationModel", "fit_calibration",
    "ValidationThresholds", "PointResult", "GRADES", "point_grade", "ValidationReport", "validate",
    "DriftResult", "drift_check", "precision_rms_s2s",
]

#: Folder of the bundled pattern files (``calibration/`` in the package data, see
#: :func:`ifllm_lab.paths.data_file`); the environment variable ``IFLLM_LAB_PATTERNS``
#: overrides it.
PATTERN_DIR = data_file("calibration")

MODEL_FORMAT = "ifllm-lab-calibration-model"
MODEL_VERSION = 1


def _pattern_dir(directory: str | os.PathLike | None = None) -> Path:
    if directory is not None:
        return Path(directory)
    env = os.environ.get("IFLLM_LAB_PATTERNS")
    return Path(env) if env else PATTERN_DIR


# ======================================================================================
# Patterns
# ======================================================================================

@dataclass(frozen=True)
class LissajousPath:
    """``x = cx + ax*sin(2*pi*fx*t + phase_x)``, ``y = cy + ay*sin(2*pi*fy*t + phase_y)``.

    Positions in normalised screen units, ``t`` in seconds since the path started,
    frequencies in Hz, phases in radians.
    """

    cx: float = 0.5
    cy: float = 0.5
    ax: float = 0.4
    ay: float = 0.4
    fx: float = 0.1
    fy: float = 0.15
    phase_x: float = 0.0
    phase_y: float = 0.0

    def position(self, t):
        """Normalised ``(x, y)`` at ``t`` s: shape (2,) for a scalar ``t``, else (n, 2)."""
        t = np.asarray(t, dtype=np.float64)
        x = self.cx + self.ax * np.sin(2 * np.pi * self.fx * t + self.phase_x)
        y = self.cy + self.ay * np.sin(2 * np.pi * self.fy * t + self.phase_y)
        return np.stack([x, y], axis=-1)

    def to_dict(self) -> dict:
        return {"type": "lissajous", "cx": self.cx, "cy": self.cy, "ax": self.ax, "ay": self.ay,
                "fx": self.fx, "fy": self.fy, "phase_x": self.phase_x, "phase_y": self.phase_y}


@dataclass(frozen=True, eq=False)
class Pattern:
    """A calibration / validation target pattern (see ``calibration/README.md``).

    ``points``: (n, 2) normalised positions (empty for pursuit). ``dwell_s``: seconds each
    point is shown. ``settle_s``: samples in the first ``settle_s`` seconds after a target
    appears are not used. Pursuit patterns have ``path``, ``duration_s``, ``lag_s`` (the
    eye is assumed to be where the target was ``lag_s`` earlier) and ``cv_segments``
    (contiguous time segments used as cross-validation folds).
    """

    name: str
    kind: str  # "points" | "pursuit"
    points: np.ndarray
    dwell_s: float = 1.5
    settle_s: float = 0.3
    purpose: str = "calibration"  # "calibration" | "validation" | "drift"
    description: str = ""
    shuffle: bool = False
    path: LissajousPath | None = None
    duration_s: float = 0.0
    lag_s: float = 0.0
    cv_segments: int = 8
    source: str = ""

    @property
    def is_pursuit(self) -> bool:
        return self.kind == "pursuit"

    @property
    def n_targets(self) -> int:
        """Number of targets (points), or of CV segments for a pursuit."""
        return self.cv_segments if self.is_pursuit else len(self.points)

    @property
    def total_duration_s(self) -> float:
        """Seconds the pattern takes when shown as specified."""
        return self.duration_s if self.is_pursuit else self.dwell_s * len(self.points)

    def targets_px(self, screen: ScreenGeometry) -> np.ndarray:
        """(n, 2) target positions in screen px (points patterns only)."""
        if self.is_pursuit:
            raise ValueError(f"pattern {self.name!r} is a pursuit: it has no fixed targets; "
                             "use position_px_at(t)")
        return self.points * np.array([screen.width_px, screen.height_px], dtype=np.float64)

    def position_at(self, t):
        """Normalised target position ``t`` seconds after the pattern started.

        Pursuit: the path position. Points: the point shown at ``t`` when the points are
        shown in file order for ``dwell_s`` each (clipped to the last point).
        Shape (2,) for a scalar ``t``, else (n, 2).
        """
        if self.is_pursuit:
            return self.path.position(t)
        i = np.clip(np.floor(np.asarray(t, dtype=np.float64) / self.dwell_s), 0, len(self.points) - 1)
        return self.points[i.astype(int)]

    def position_px_at(self, t, screen: ScreenGeometry):
        """:meth:`position_at` in screen px."""
        return self.position_at(t) * np.array([screen.width_px, screen.height_px], dtype=np.float64)

    def presentation_order(self, seed: int | None = None) -> list[int]:
        """Order to show the points in: file order, or a random permutation when ``shuffle``."""
        n = len(self.points)
        if not self.shuffle:
            return list(range(n))
        return [int(i) for i in np.random.default_rng(seed).permutation(n)]

    def to_dict(self) -> dict:
        d = {"name": self.name, "kind": self.kind, "purpose": self.purpose, "description": self.description,
             "settle_s": self.settle_s}
        if self.is_pursuit:
            d.update(path=self.path.to_dict(), duration_s=self.duration_s, lag_s=self.lag_s,
                     cv_segments=self.cv_segments)
        else:
            d.update(points=self.points.tolist(), dwell_s=self.dwell_s, shuffle=self.shuffle)
        return d


_COMMON_KEYS = {"name", "kind", "purpose", "description", "settle_s", "notes"}
_POINTS_KEYS = _COMMON_KEYS | {"points", "dwell_s", "shuffle"}
_PURSUIT_KEYS = _COMMON_KEYS | {"path", "duration_s", "lag_s", "cv_segments"}
_PATH_KEYS = {"type", "cx", "cy", "ax", "ay", "fx", "fy", "phase_x", "phase_y"}


def _num(d: dict, key: str, where: str, default=None, *, lo=None, hi=None, lo_open=False) -> float:
    v = d.get(key, default)
    if v is None:
        raise ValueError(f"{where}: missing {key!r}")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{where}: {key!r} must be a finite number, got {v!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValueError(f"{where}: {key!r} must be {'>' if lo_open else '>='} {lo}, got {v!r}")
    if hi is not None and v > hi:
        raise ValueError(f"{where}: {key!r} must be <= {hi}, got {v!r}")
    return float(v)


def pattern_from_dict(d: dict, source: str = "<dict>") -> Pattern:
    """Build and check a :class:`Pattern` from its JSON object; ValueError naming ``source``."""
    where = f"calibration pattern {source}"
    if not isinstance(d, dict):
        raise ValueError(f"{where}: the top level must be a JSON object")
    keys = {k for k in d if not str(k).startswith("_")}  # "_comment" etc. are allowed
    kind = d.get("kind")
    if kind not in ("points", "pursuit"):
        raise ValueError(f"{where}: 'kind' must be \"points\" or \"pursuit\", got {kind!r}")
    unknown = keys - (_POINTS_KEYS if kind == "points" else _PURSUIT_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) for a {kind} pattern: {sorted(unknown)}")
    name = d.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: 'name' must be a non-empty string")
    purpose = d.get("purpose", "calibration")
    if purpose not in ("calibration", "validation", "drift"):
        raise ValueError(f"{where}: 'purpose' must be calibration, validation or drift, got {purpose!r}")
    description = d.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"{where}: 'description' must be a string")
    settle = _num(d, "settle_s", where, 0.3, lo=0.0)
    if kind == "points":
        pts = d.get("points")
        if not isinstance(pts, list) or not pts:
            raise ValueError(f"{where}: 'points' must be a non-empty list of [x, y] pairs")
        arr = []
        for i, p in enumerate(pts):
            if (not isinstance(p, (list, tuple)) or len(p) != 2
                    or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
                               for c in p)):
                raise ValueError(f"{where}: point {i} must be [x, y] numbers, got {p!r}")
            if not (0.0 <= p[0] <= 1.0 and 0.0 <= p[1] <= 1.0):
                raise ValueError(f"{where}: point {i} {p!r} is outside the screen (normalised 0..1)")
            arr.append([float(p[0]), float(p[1])])
        dwell = _num(d, "dwell_s", where, lo=0.0, lo_open=True)
        if settle >= dwell:
            raise ValueError(f"{where}: settle_s ({settle}) must be shorter than dwell_s ({dwell})")
        shuffle = d.get("shuffle", False)
        if not isinstance(shuffle, bool):
            raise ValueError(f"{where}: 'shuffle' must be true or false")
        return Pattern(name, "points", np.array(arr, dtype=np.float64), dwell, settle, purpose, description,
                       shuffle, source=source)
    path = d.get("path")
    if not isinstance(path, dict):
        raise ValueError(f"{where}: a pursuit pattern needs a 'path' object")
    if path.get("type", "lissajous") != "lissajous":
        raise ValueError(f"{where}: path type {path.get('type')!r} is not supported (only \"lissajous\")")
    unknown = set(path) - _PATH_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown path key(s): {sorted(unknown)}")
    pw = where + " path"
    lp = LissajousPath(
        cx=_num(path, "cx", pw, 0.5, lo=0, hi=1), cy=_num(path, "cy", pw, 0.5, lo=0, hi=1),
        ax=_num(path, "ax", pw, lo=0), ay=_num(path, "ay", pw, lo=0),
        fx=_num(path, "fx", pw, lo=0, lo_open=True), fy=_num(path, "fy", pw, lo=0, lo_open=True),
        phase_x=_num(path, "phase_x", pw, 0.0), phase_y=_num(path, "phase_y", pw, 0.0))
    if lp.cx - lp.ax < 0 or lp.cx + lp.ax > 1 or lp.cy - lp.ay < 0 or lp.cy + lp.ay > 1:
        raise ValueError(f"{where}: the path leaves the screen (cx +- ax and cy +- ay must lie in 0..1)")
    duration = _num(d, "duration_s", where, lo=0.0, lo_open=True)
    if settle >= duration:
        raise ValueError(f"{where}: settle_s ({settle}) must be shorter than duration_s ({duration})")
    lag = _num(d, "lag_s", where, 0.05, lo=0.0, hi=1.0)
    seg = d.get("cv_segments", 8)
    if isinstance(seg, bool) or not isinstance(seg, int) or seg < 3:
        raise ValueError(f"{where}: 'cv_segments' must be an integer >= 3, got {seg!r}")
    return Pattern(name, "pursuit", np.zeros((0, 2)), 0.0, settle, purpose, description, False, lp,
                   duration, lag, seg, source=source)


def list_patterns(directory: str | os.PathLike | None = None) -> list[str]:
    """Names (file stems) of the pattern files in ``directory`` (default: bundled ones), sorted."""
    d = _pattern_dir(directory)
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def load_pattern(name_or_path: str | os.PathLike, directory: str | os.PathLike | None = None) -> Pattern:
    """Load a pattern by name (``"9-point"``, looked up in ``directory``) or by file path.

    Raises FileNotFoundError for an unknown name (listing the known ones) and ValueError
    naming the file for invalid JSON or an invalid pattern.
    """
    s = os.fspath(name_or_path)
    p = Path(s)
    if not (p.suffix == ".json" or os.sep in s or "/" in s):
        p = _pattern_dir(directory) / f"{s}.json"
    if not p.is_file():
        raise FileNotFoundError(f"no calibration pattern {s!r} ({p}); known: {', '.join(list_patterns(directory))}")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"calibration pattern {p}: not valid JSON: {e}") from None
    return pattern_from_dict(d, str(p))


# ======================================================================================
# Sample collection
# ======================================================================================

@dataclass
class DropCounts:
    """Samples seen and why some were not used. Each dropped sample is counted once,
    under the first reason in the order settle, outside, blink, invalid."""

    seen: int = 0
    kept: int = 0
    settle: int = 0  # within settle_s of the target's onset (or before it)
    outside: int = 0  # pursuit: after the path ended
    blink: int = 0
    invalid: int = 0  # not valid, or a non-finite feature

    def as_dict(self) -> dict:
        return dict(self.__dict__)


_REASONS = ("", "settle", "outside", "blink", "invalid")


class CalibrationCollector:
    """Collects feature samples while calibration or validation targets are shown.

    ``add(t, features, blink, valid, target_index, onset_t)`` once per camera frame:
    ``t`` the frame time (s), ``features`` the feature vector, ``blink``/``valid`` flags of
    the face tracker, ``target_index`` the index of the target shown (into
    ``pattern.points``; ignored for a pursuit), ``onset_t`` when that target appeared (for
    a pursuit: when the path started). Samples are kept when ``t >= onset_t + settle_s``
    and the frame is valid, not a blink and all features are finite. For a pursuit the
    sample's target is the path position at ``t - onset_t - lag_s`` and its CV group the
    time segment it falls in.
    """

    def __init__(self, pattern: Pattern, screen: ScreenGeometry, *, settle_s: float | None = None,
                 lag_s: float | None = None):
        self.pattern = pattern
        self.screen = screen
        self.settle_s = pattern.settle_s if settle_s is None else float(settle_s)
        self.lag_s = pattern.lag_s if lag_s is None else float(lag_s)
        self._targets_px = None if pattern.is_pursuit else pattern.targets_px(screen)
        self._t: list[float] = []
        self._x: list[np.ndarray] = []
        self._target: list[tuple[float, float]] = []
        self._group: list[int] = []
        self._reason: list[int] = []
        self._onsets: dict[int, float] = {}
        self.counts = DropCounts()
        self._n_features: int | None = None
        self._cache = None

    # --- feeding -------------------------------------------------------------------------
    def add(self, t: float, features, blink: bool, valid: bool, target_index: int = 0,
            onset_t: float = 0.0) -> bool:
        """Record one frame; returns True when the sample is used."""
        x = np.asarray(features, dtype=np.float64).reshape(-1)
        if self._n_features is None:
            self._n_features = x.size
        elif x.size != self._n_features:
            raise ValueError(f"feature vector has {x.size} values, earlier ones had {self._n_features}")
        t = float(t)
        since = t - float(onset_t)
        if self.pattern.is_pursuit:
            pos = self.pattern.position_px_at(since - self.lag_s, self.screen)
            target = (float(pos[0]), float(pos[1]))
            seg = int(np.clip(math.floor(since / self.pattern.duration_s * self.pattern.cv_segments),
                              0, self.pattern.cv_segments - 1))
            group = seg
            outside = since > self.pattern.duration_s
        else:
            target_index = int(target_index)
            if not 0 <= target_index < len(self._targets_px):
                raise ValueError(f"target_index {target_index} is out of range for pattern "
                                 f"{self.pattern.name!r} ({len(self._targets_px)} points)")
            target = tuple(float(v) for v in self._targets_px[target_index])
            group = target_index
            outside = False
        self._onsets.setdefault(group, float(onset_t) if not self.pattern.is_pursuit
                                else float(onset_t) + group * self.pattern.duration_s / self.pattern.cv_segments)
        if since < self.settle_s:
            reason = 1
        elif outside:
            reason = 2
        elif blink:
            reason = 3
        elif not valid or not np.all(np.isfinite(x)):
            reason = 4
        else:
            reason = 0
        self._t.append(t)
        self._x.append(x)
        self._target.append(target)
        self._group.append(group)
        self._reason.append(reason)
        c = self.counts
        c.seen += 1
        if reason == 0:
            c.kept += 1
        else:
            setattr(c, _REASONS[reason], getattr(c, _REASONS[reason]) + 1)
        self._cache = None
        return reason == 0

    # --- reading -------------------------------------------------------------------------
    def _arrays(self):
        if self._cache is None:
            nf = self._n_features or 0
            self._cache = (np.array(self._t, dtype=np.float64),
                           np.array(self._x, dtype=np.float64).reshape(len(self._t), nf),
                           np.array(self._target, dtype=np.float64).reshape(len(self._t), 2),
                           np.array(self._group, dtype=np.int64),
                           np.array(self._reason, dtype=np.int8))
        return self._cache

    def __len__(self) -> int:
        return self.counts.kept

    @property
    def n_features(self) -> int | None:
        """Length of the feature vectors added so far (None before the first)."""
        return self._n_features

    @property
    def groups(self) -> list[int]:
        """Target indices (pursuit: segments) that have at least one used sample, sorted."""
        _, _, _, g, r = self._arrays()
        return sorted(int(v) for v in np.unique(g[r == 0]))

    def training_data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, groups)`` of the used samples: features (n, f), targets (n, 2) px, group ids (n,)."""
        t, x, y, g, r = self._arrays()
        m = r == 0
        return x[m], y[m], g[m]

    def times(self) -> np.ndarray:
        """Times (s) of the used samples, in the order of :meth:`training_data`."""
        t, _, _, _, r = self._arrays()
        return t[r == 0]

    def features_for(self, index: int) -> np.ndarray:
        """(n, f) used feature vectors of one target (pursuit: segment), in time order."""
        t, x, _, g, r = self._arrays()
        m = (r == 0) & (g == index)
        return x[m][np.argsort(t[m], kind="stable")]

    def target_px(self, index: int) -> tuple[float, float]:
        """Screen position (px) of target ``index`` (points patterns)."""
        if self._targets_px is None:
            raise ValueError("a pursuit has no fixed targets")
        return float(self._targets_px[index, 0]), float(self._targets_px[index, 1])

    def onset(self, index: int) -> float:
        """Onset time (s) of target ``index`` as given to :meth:`add` (NaN if never shown)."""
        return self._onsets.get(index, math.nan)

    def per_target(self) -> list[tuple[int, tuple[float, float], np.ndarray]]:
        """``[(index, target_px, features (n, f)), ...]`` for every point target with used samples."""
        return [(i, self.target_px(i), self.features_for(i)) for i in self.groups]

    def sample_rows(self, phase: int = CalibrationPhase.CALIBRATION, run: int = 0,
                    model: "CalibrationModel | None" = None) -> list[dict]:
        """Every sample seen (used or not) as rows of the ``calibration/samples`` stream.

        ``x``/``y`` are the model's estimates when ``model`` is given, else NaN.
        """
        t, x, y, g, r = self._arrays()
        if model is not None and len(t):
            est = model.predict(x)
        else:
            est = np.full((len(t), 2), np.nan)
        return [{"t": float(t[i]), "phase": int(phase), "run": int(run), "point": int(g[i]),
                 "target_x": float(y[i, 0]), "target_y": float(y[i, 1]),
                 "x": float(est[i, 0]), "y": float(est[i, 1]), "used": int(r[i] == 0)}
                for i in range(len(t))]


# ======================================================================================
# Regression
# ======================================================================================

KINDS = ("ridge", "poly2-ridge", "huber", "poly2-huber", "per-eye-ridge", "per-eye-poly2-ridge",
         "per-eye-huber", "per-eye-poly2-huber")
#: Kinds tried by :func:`fit_calibration` unless told otherwise.
DEFAULT_KINDS = ("ridge", "poly2-ridge", "huber", "poly2-huber", "per-eye-ridge", "per-eye-poly2-ridge")
#: Ridge penalties tried (on the mean squared error of standardised features).
DEFAULT_ALPHAS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
HUBER_C = 2.0  # residuals beyond HUBER_C * scale get weight HUBER_C * scale / r
_RAYLEIGH_MEDIAN = math.sqrt(2.0 * math.log(2.0))  # median of |N(0, I_2)|


def _parse_kind(kind: str) -> tuple[bool, bool, bool]:
    """(per_eye, poly2, robust) of a kind name."""
    if kind not in KINDS:
        raise ValueError(f"unknown calibration kind {kind!r}; known: {', '.join(KINDS)}")
    return kind.startswith("per-eye-"), "poly2" in kind, kind.endswith("huber")


@dataclass
class _Map:
    """One linear map: standardise chosen columns, optional degree-2 terms, standardise
    again, then ``Z @ coef + intercept``."""

    idx: np.ndarray  # (k,) columns of X
    mean: np.ndarray  # (k,)
    scale: np.ndarray  # (k,)
    pairs: np.ndarray  # (m, 2) positions within idx for products (i == j: square)
    mean2: np.ndarray  # (k + m,)
    scale2: np.ndarray  # (k + m,)
    coef: np.ndarray | None = None  # (k + m, 2)
    intercept: np.ndarray | None = None  # (2,)

    def design(self, X: np.ndarray) -> np.ndarray:
        z = (X[:, self.idx] - self.mean) / self.scale
        if len(self.pairs):
            z = np.hstack([z, z[:, self.pairs[:, 0]] * z[:, self.pairs[:, 1]]])
        return (z - self.mean2) / self.scale2

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.design(X) @ self.coef + self.intercept

    def to_dict(self) -> dict:
        return {"idx": self.idx.tolist(), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "pairs": self.pairs.tolist(), "mean2": self.mean2.tolist(), "scale2": self.scale2.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "_Map":
        f = lambda k: np.asarray(d[k], dtype=np.float64)  # noqa: E731
        return cls(np.asarray(d["idx"], dtype=np.int64), f("mean"), f("scale"),
                   np.asarray(d["pairs"], dtype=np.int64).reshape(-1, 2), f("mean2"), f("scale2"),
                   f("coef").reshape(-1, 2), f("intercept"))


def _safe_scale(s: np.ndarray) -> np.ndarray:
    s = np.asarray(s, dtype=np.float64).copy()
    s[~(s > 1e-12)] = 1.0
    return s


def _make_map(X: np.ndarray, idx: Sequence[int], quad: Sequence[int]) -> _Map:
    """A map over columns ``idx`` with products of the columns ``quad`` (subset of idx)."""
    idx = np.asarray(list(idx), dtype=np.int64)
    pos = [int(np.nonzero(idx == q)[0][0]) for q in quad]
    pairs = np.array([(a, b) for i, a in enumerate(pos) for b in pos[i:]], dtype=np.int64).reshape(-1, 2)
    sub = X[:, idx]
    m = _Map(idx, sub.mean(0), _safe_scale(sub.std(0)), pairs, np.zeros(0), np.ones(0))
    m.mean2 = np.zeros(len(idx) + len(pairs))
    m.scale2 = np.ones(len(idx) + len(pairs))
    z = m.design(X)  # with identity second stage
    m.mean2 = z.mean(0)
    m.scale2 = _safe_scale(z.std(0))
    return m


def _feature_roles(names: Sequence[str] | None, usable: np.ndarray):
    """(left, right, shared, iris) column index lists among the usable columns."""
    cols = [int(i) for i in np.nonzero(usable)[0]]
    if names is None:
        return [], [], cols, cols
    low = [n.lower() for n in names]
    left = [i for i in cols if low[i].startswith("left_") or low[i].startswith("l_")]
    right = [i for i in cols if low[i].startswith("right_") or low[i].startswith("r_")]
    shared = [i for i in cols if i not in left and i not in right]
    iris = [i for i in cols if "iris" in low[i]] or [i for i in cols if i in left or i in right] or cols
    return left, right, shared, iris


def _maps_for(kind: str, X: np.ndarray, names, usable) -> list[_Map]:
    per_eye, poly, _ = _parse_kind(kind)
    left, right, shared, iris = _feature_roles(names, usable)
    if per_eye:
        if not left or not right:
            raise ValueError(f"kind {kind!r} needs feature names with left_/right_ eye features")
        return [_make_map(X, sorted(eye + shared), [i for i in iris if i in eye] if poly else [])
                for eye in (left, right)]
    cols = sorted(left + right + shared)
    return [_make_map(X, cols, iris if poly else [])]


def _median(r: np.ndarray) -> float:
    """Median of a 1-D array (np.partition; np.median's overhead matters in the IRLS loop)."""
    h = len(r) // 2
    if len(r) % 2:
        return float(np.partition(r, h)[h])
    p = np.partition(r, (h - 1, h))
    return 0.5 * float(p[h - 1] + p[h])


def _solve(G: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(G, b)
    except np.linalg.LinAlgError:  # singular despite the penalty (alpha 0 and collinear features)
        return np.linalg.lstsq(G, b, rcond=None)[0]


def _wridge(Z: np.ndarray, Y: np.ndarray, w: np.ndarray | None, alpha: float):
    """Weighted ridge with unpenalised intercept: minimise sum w|y - Zb - c|^2 / sum w + alpha |b|^2."""
    if w is None:
        zm, ym = Z.mean(0), Y.mean(0)
        Zc, Yc = Z - zm, Y - ym
        G = Zc.T @ Zc / len(Z)
        b = Zc.T @ Yc / len(Z)
    else:
        sw = w.sum()
        zm, ym = (w @ Z) / sw, (w @ Y) / sw
        Zc, Yc = Z - zm, Y - ym
        Zw = Zc * w[:, None]
        G = Zw.T @ Zc / sw
        b = Zw.T @ Yc / sw
    G.flat[::G.shape[0] + 1] += alpha
    coef = _solve(G, b)
    return coef, ym - zm @ coef


class _Fitter:
    """Fits one kind on a design (list of per-map design matrices) for any alpha."""

    def __init__(self, designs: list[np.ndarray], robust: bool):
        self.designs = designs
        self.robust = robust

    def fit(self, rows: np.ndarray, Y: np.ndarray, alpha: float, w0: np.ndarray | None = None,
            max_iter: int = 50):
        """Returns ([(coef, intercept) per map], weights or None).

        Robust fits iterate from the weights ``w0`` (default: all 1). The Huber loss is
        convex, so a warm start changes the number of iterations, not the result.
        """
        Zs = [Z[rows] for Z in self.designs]
        params = [_wridge(Z, Y, w0, alpha) for Z in Zs]
        if not self.robust:
            return params, None
        w = np.ones(len(Y)) if w0 is None else w0
        for _ in range(max_iter):
            pred = np.mean([Z @ c + i for Z, (c, i) in zip(Zs, params)], axis=0)
            d = Y - pred
            r = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])
            s = max(_median(r) / _RAYLEIGH_MEDIAN, 1e-9)
            lim = HUBER_C * s
            w_new = np.where(r <= lim, 1.0, lim / np.maximum(r, 1e-300))
            params = [_wridge(Z, Y, w_new, alpha) for Z in Zs]
            if np.max(np.abs(w_new - w)) < 1e-3:
                w = w_new
                break
            w = w_new
        return params, w

    def predict(self, rows: np.ndarray, params) -> np.ndarray:
        return np.mean([Z[rows] @ c + i for Z, (c, i) in zip(self.designs, params)], axis=0)


def _fast_ridge_cv(designs, Y, folds, alphas):
    """CV predictions of non-robust kinds for all alphas: (n_alpha, n, 2).

    The Gram matrix of each training fold is formed once and solved per alpha (a
    Cholesky-based solve of a <= ~40 x 40 system; cheaper and steadier than an
    eigendecomposition, which multi-threaded BLAS can make very slow at this size).
    """
    n = len(Y)
    out = np.zeros((len(alphas), n, 2))
    for test in folds:
        train = ~test
        acc = np.zeros((len(alphas), int(test.sum()), 2))
        Yt = Y[train]
        ym = Yt.mean(0)
        Yc = Yt - ym
        for Z in designs:
            Zt = Z[train]
            zm = Zt.mean(0)
            Zc = Zt - zm
            G = Zc.T @ Zc / len(Zt)
            b = Zc.T @ Yc / len(Zt)
            Zh = Z[test] - zm
            diag = np.arange(G.shape[0])
            for k, a in enumerate(alphas):
                Ga = G.copy()
                Ga[diag, diag] += a
                acc[k] += Zh @ _solve(Ga, b) + ym
        out[:, test] = acc / len(designs)
    return out


def _cv_scores(pred: np.ndarray, Y: np.ndarray, folds: list[np.ndarray]):
    """(error_px, accuracy_px, per-fold errors): mean over folds of the mean sample error /
    of the error of the mean estimate."""
    err = np.hypot(*(pred - Y).T)
    e = np.array([err[m].mean() for m in folds])
    a = [float(np.hypot(*(pred[m].mean(0) - Y[m].mean(0)))) for m in folds]
    return float(e.mean()), float(np.mean(a)), e


def _px_to_angle(Y: np.ndarray, screen: ScreenGeometry) -> np.ndarray:
    """Screen px -> (atan(x_mm / D), atan(y_mm / D)) in degrees, x_mm/y_mm from the screen centre."""
    cx, cy = screen.centre_px
    d = screen.viewing_distance_mm
    return np.degrees(np.arctan(np.stack([(Y[:, 0] - cx) * screen.mm_per_px_x / d,
                                          (Y[:, 1] - cy) * screen.mm_per_px_y / d], axis=1)))


def _angle_to_px(A: np.ndarray, screen: ScreenGeometry) -> np.ndarray:
    """Inverse of :func:`_px_to_angle` (angles beyond +-89.9 deg are clipped)."""
    cx, cy = screen.centre_px
    d = screen.viewing_distance_mm
    t = np.tan(np.radians(np.clip(A, -89.9, 89.9)))
    return np.stack([cx + t[:, 0] * d / screen.mm_per_px_x, cy + t[:, 1] * d / screen.mm_per_px_y], axis=1)


class CalibrationModel:
    """A fitted calibration: feature vectors -> screen px.

    Attributes: ``kind``, ``alpha``, ``feature_names`` (or None), ``n_features``,
    ``space`` (``"angle"``: the maps predict the gaze direction ``(atan(x_mm/D),
    atan(y_mm/D))`` in deg, turned into px with ``screen``; ``"px"``: they predict px),
    ``offset`` (px added to every prediction; drift corrections), ``cv`` (per kind tried:
    ``{"alpha", "cv_error_px", "cv_accuracy_px"}`` and, with a screen, the same in deg),
    ``info`` (samples, targets, features not used, robust weights summary).
    """

    def __init__(self, kind: str, alpha: float, maps: list[_Map], n_features: int,
                 feature_names: Sequence[str] | None = None, offset=(0.0, 0.0), cv: dict | None = None,
                 info: dict | None = None, space: str = "px", screen: ScreenGeometry | None = None):
        _parse_kind(kind)
        if space not in ("px", "angle"):
            raise ValueError(f"calibration target space must be 'px' or 'angle', got {space!r}")
        if space == "angle" and screen is None:
            raise ValueError("an angle-space calibration model needs the screen geometry")
        self.space = space
        self.screen = screen
        self.kind = kind
        self.alpha = float(alpha)
        self.maps = maps
        self.n_features = int(n_features)
        self.feature_names = None if feature_names is None else [str(n) for n in feature_names]
        self.offset = np.asarray(offset, dtype=np.float64).reshape(2)
        self.cv = cv or {}
        self.info = info or {}
        self._used: np.ndarray | None = None  # feature columns any map reads (cached)

    def predict(self, X, feature_names: Sequence[str] | None = None) -> np.ndarray:
        """(n, 2) screen px for feature rows ``X`` (n, f) (or one vector (f,) -> (1, 2)).

        With ``feature_names`` the columns are matched to the model's by name. Rows with a
        non-finite value in a used feature give NaN.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if feature_names is not None and self.feature_names is not None:
            pos = {n: i for i, n in enumerate(feature_names)}
            missing = [n for n in self.feature_names if n not in pos]
            if missing:
                raise ValueError(f"features missing for the calibration model: {missing}")
            X = X[:, [pos[n] for n in self.feature_names]]
        if X.shape[1] != self.n_features:
            raise ValueError(f"the calibration model expects {self.n_features} features, got {X.shape[1]}")
        if self._used is None:
            self._used = np.unique(np.concatenate([m.idx for m in self.maps]))
        ok = np.all(np.isfinite(X[:, self._used]), axis=1)
        out = np.full((len(X), 2), np.nan)
        if ok.any():
            Xo = X[ok]
            raw = np.mean([m.predict(Xo) for m in self.maps], axis=0)
            if self.space == "angle":
                raw = _angle_to_px(raw, self.screen)
            out[ok] = raw + self.offset
        return out

    def predict_one(self, features) -> tuple[float, float]:
        """One feature vector -> ``(x, y)`` px (NaN when a used feature is not finite)."""
        p = self.predict(features)[0]
        return float(p[0]), float(p[1])

    def with_offset(self, dx: float, dy: float) -> "CalibrationModel":
        """A copy whose predictions are shifted by ``(dx, dy)`` px more (drift correction)."""
        info = dict(self.info)
        info["corrections"] = list(info.get("corrections", [])) + [[float(dx), float(dy)]]
        return CalibrationModel(self.kind, self.alpha, self.maps, self.n_features, self.feature_names,
                                self.offset + np.array([dx, dy], dtype=np.float64), self.cv, info,
                                self.space, self.screen)

    # --- serialisation (plain JSON, no pickle) -------------------------------------------
    def to_dict(self) -> dict:
        return {"format": MODEL_FORMAT, "version": MODEL_VERSION, "kind": self.kind, "alpha": self.alpha,
                "n_features": self.n_features, "feature_names": self.feature_names,
                "offset": self.offset.tolist(), "space": self.space,
                "screen": None if self.screen is None else self.screen.to_dict(),
                "maps": [m.to_dict() for m in self.maps],
                "cv": self.cv, "info": self.info}

    def to_json(self) -> str:
        """The model as a JSON string (floats round-trip exactly)."""
        return json.dumps(self.to_dict(), allow_nan=True)

    @classmethod
    def from_dict(cls, d: dict) -> "CalibrationModel":
        if not isinstance(d, dict) or d.get("format") != MODEL_FORMAT:
            raise ValueError("not an IFLLM Lab calibration model (format field missing or wrong)")
        if d.get("version") != MODEL_VERSION:
            raise ValueError(f"calibration model version {d.get('version')!r} is not supported")
        return cls(d["kind"], d["alpha"], [_Map.from_dict(m) for m in d["maps"]], d["n_features"],
                   d.get("feature_names"), d.get("offset", (0.0, 0.0)), d.get("cv"), d.get("info"),
                   d.get("space", "px"), None if d.get("screen") is None else ScreenGeometry.from_dict(d["screen"]))

    @classmethod
    def from_json(cls, s: str) -> "CalibrationModel":
        try:
            d = json.loads(s)
        except json.JSONDecodeError as e:
            raise ValueError(f"calibration model: not valid JSON: {e}") from None
        return cls.from_dict(d)

    def to_row(self, t: float, run: int = 0) -> dict:
        """A row of the session's ``calibration/models`` stream."""
        return {"t": float(t), "run": int(run), "kind": self.kind, "params": self.to_json()}

    def __repr__(self) -> str:
        cv = self.cv.get(self.kind, {}).get("cv_error_px", math.nan)
        return (f"CalibrationModel(kind={self.kind!r}, space={self.space!r}, alpha={self.alpha:g}, "
                f"cv_error_px={cv:.1f}, "
                f"offset=({self.offset[0]:.1f}, {self.offset[1]:.1f}))")


#: Simplest first: the order in which near-ties are broken.
COMPLEXITY_ORDER = ("ridge", "huber", "per-eye-ridge", "per-eye-huber", "poly2-ridge", "poly2-huber",
                    "per-eye-poly2-ridge", "per-eye-poly2-huber")
SIMPLICITY_TOLERANCE = 0.05
CHOICE_RULE = ("leave-one-target-out CV: the simplest kind (order " + " < ".join(COMPLEXITY_ORDER)
               + ") whose CV error (mean over targets of the mean sample error, px) is within "
               f"{SIMPLICITY_TOLERANCE:.0%} of the lowest; alpha: the best of the grid for that kind")


def _select_kind(cv: dict, tolerance: float = SIMPLICITY_TOLERANCE) -> str:
    """Apply :data:`CHOICE_RULE` to the fitted kinds in ``cv``; marks ``chosen`` and ``lowest_cv_error``."""
    fitted = [k for k in cv if "cv_error_px" in cv[k]]
    best = min(fitted, key=lambda k: cv[k]["cv_error_px"])
    limit = cv[best]["cv_error_px"] * (1.0 + tolerance)
    chosen = next(k for k in sorted(fitted, key=COMPLEXITY_ORDER.index) if cv[k]["cv_error_px"] <= limit)
    for k in fitted:
        cv[k]["chosen"] = k == chosen
        cv[k]["lowest_cv_error"] = k == best
    return chosen


def _default_groups(Y: np.ndarray, n_blocks: int = 8) -> np.ndarray:
    uniq, inv = np.unique(np.round(Y, 6), axis=0, return_inverse=True)
    if len(uniq) <= 50:
        return inv.reshape(-1)
    return (np.arange(len(Y)) * n_blocks // len(Y)).astype(np.int64)


def _single_threaded_blas():
    """Context limiting BLAS to one thread (threadpoolctl, a scikit-learn dependency).

    The fit does thousands of products and solves of matrices of a few hundred x ~30:
    a multi-threaded BLAS gains nothing there and, when the cores are busy (camera,
    UI), its spinning threads made single calls 100-1000x slower in tests.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def fit_calibration(X, Y, kinds: Iterable[str] = DEFAULT_KINDS, *, feature_names: Sequence[str] | None = None,
                    groups=None, alphas: Sequence[float] = DEFAULT_ALPHAS,
                    screen: ScreenGeometry | None = None, space: str = "auto") -> CalibrationModel:
    """Fit a calibration, choosing the kind and ``alpha`` by leave-one-target-out CV.

    ``X`` (n, f) features of the used calibration samples, ``Y`` (n, 2) their targets in px,
    ``groups`` (n,) the target (fold) of each sample: default the distinct rows of ``Y``
    (or 8 contiguous blocks when there are more than 50, as for pursuit data).
    ``feature_names`` (f,) enables per-eye kinds and selects the iris features for the
    degree-2 terms. Kinds that cannot be used with these features (per-eye without
    left_/right_ names) are recorded as skipped. Columns that are non-finite in more than
    half of the samples are left out (``info["unused_features"]``); remaining rows with
    non-finite values are dropped. With ``screen`` the CV errors are also given in deg.

    ``space``: ``"angle"`` fits the gaze direction ``(atan(x_mm/D), atan(y_mm/D))`` (deg)
    instead of px and maps predictions back through the screen geometry, so the
    tangent nonlinearity of a flat screen is not left to the regression (iris offsets are
    close to linear in the eye's rotation, not in screen px); ``"px"`` fits px directly;
    ``"auto"`` (default) = ``"angle"`` when ``screen`` is given, else ``"px"``. CV errors are
    always measured in px.

    Every kind's best CV error is in ``model.cv``; ``model.info["chosen_by"]`` says how.
    Takes ~10-50 ms for 9 targets x 30 samples (BLAS limited to one thread meanwhile).
    """
    with _single_threaded_blas():
        return _fit_calibration(X, Y, kinds, feature_names, groups, alphas, screen, space)


def _fit_calibration(X, Y, kinds, feature_names, groups, alphas, screen, space) -> CalibrationModel:
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.shape != (len(X), 2):
        raise ValueError(f"X must be (n, f) and Y (n, 2); got {X.shape} and {Y.shape}")
    if feature_names is not None and len(feature_names) != X.shape[1]:
        raise ValueError(f"{len(feature_names)} feature names for {X.shape[1]} features")
    kinds = list(dict.fromkeys(kinds))
    if not kinds:
        raise ValueError("no calibration kinds to try")
    for k in kinds:
        _parse_kind(k)
    alphas = [float(a) for a in alphas]
    if space == "auto":
        space = "angle" if screen is not None else "px"
    if space not in ("px", "angle"):
        raise ValueError(f"space must be 'auto', 'px' or 'angle', got {space!r}")
    if space == "angle" and screen is None:
        raise ValueError("space='angle' needs the screen geometry")
    finite = np.isfinite(X)
    usable = finite.mean(0) > 0.5 if len(X) else np.zeros(X.shape[1], bool)
    rows = np.all(finite[:, usable], axis=1) & np.all(np.isfinite(Y), axis=1)
    groups = _default_groups(Y) if groups is None else np.asarray(groups).reshape(-1)
    if len(groups) != len(X):
        raise ValueError(f"{len(groups)} group labels for {len(X)} samples")
    Xf, Yf, gf = X[rows], Y[rows], groups[rows]
    uniq = np.unique(gf)
    if len(uniq) < 3:
        raise ValueError(f"calibration needs samples of at least 3 targets, got {len(uniq)}")
    n_feat_used = int(usable.sum())
    if n_feat_used == 0:
        raise ValueError("no usable features (all non-finite)")
    folds = [gf == g for g in uniq]
    Tf = _px_to_angle(Yf, screen) if space == "angle" else Yf  # regression targets
    to_px = (lambda A: _angle_to_px(A, screen)) if space == "angle" else (lambda A: A)  # noqa: E731

    cv: dict[str, dict] = {}
    fitted_maps: dict[str, list[_Map]] = {}
    # plain kinds first: a robust kind reuses the alpha of its plain counterpart
    for kind in sorted(kinds, key=lambda k: _parse_kind(k)[2]):
        try:
            maps = _maps_for(kind, Xf, feature_names, usable)
        except ValueError as e:
            cv[kind] = {"skipped": str(e)}
            continue
        designs = [m.design(Xf) for m in maps]
        robust = _parse_kind(kind)[2]
        kind_alphas = alphas
        if not robust:
            preds = _fast_ridge_cv(designs, Tf, folds, alphas)
        else:
            # IRLS is ~50x dearer than a ridge solve: when the same design without the
            # robust weights has been cross-validated, try only its best alpha and the
            # grid values next to it.
            plain = kind[: -len("huber")] + "ridge"
            if plain in cv and "alpha" in cv[plain]:
                j = alphas.index(cv[plain]["alpha"])
                kind_alphas = alphas[max(0, j - 1): j + 2]
            fitter = _Fitter(designs, robust=True)
            preds = np.zeros((len(kind_alphas), len(Yf), 2))
            all_idx = np.arange(len(Yf))
            for k, a in enumerate(kind_alphas):
                _, w_all = fitter.fit(all_idx, Tf, a)  # warm start for the folds
                for test in folds:
                    train_idx, test_idx = all_idx[~test], all_idx[test]
                    params, _ = fitter.fit(train_idx, Tf[train_idx], a, w0=w_all[train_idx])
                    preds[k, test_idx] = fitter.predict(test_idx, params)
        preds = np.stack([to_px(p) for p in preds])
        scores = [_cv_scores(p, Yf, folds) for p in preds]
        k_best = int(np.argmin([s[0] for s in scores]))
        rec = {"alpha": kind_alphas[k_best], "cv_error_px": scores[k_best][0], "cv_accuracy_px": scores[k_best][1],
               "cv_error_px_by_alpha": dict(zip(map(repr, kind_alphas), (s[0] for s in scores)))}
        if screen is not None:
            p = preds[k_best]
            derr = screen.deg_between(p, Yf)
            rec["cv_error_deg"] = float(np.mean([derr[gf == g].mean() for g in uniq]))
            rec["cv_accuracy_deg"] = float(np.mean([screen.deg_between(p[gf == g].mean(0), Yf[gf == g].mean(0))
                                                    for g in uniq]))
        cv[kind] = rec
        fitted_maps[kind] = maps
    if not fitted_maps:
        raise ValueError(f"none of the calibration kinds could be fitted: {cv}")
    kind = _select_kind(cv)
    alpha = cv[kind]["alpha"]
    maps = fitted_maps[kind]
    fitter = _Fitter([m.design(Xf) for m in maps], robust=_parse_kind(kind)[2])
    params, w = fitter.fit(np.arange(len(Yf)), Tf, alpha)
    for m, (c, i) in zip(maps, params):
        m.coef, m.intercept = c, i
    info = {"n_samples": int(len(Yf)), "n_targets": int(len(uniq)), "n_rows_dropped": int((~rows).sum()),
            "unused_features": [int(i) if feature_names is None else feature_names[i]
                                for i in np.nonzero(~usable)[0]],
            "chosen_by": CHOICE_RULE,
            "alphas": alphas}
    if w is not None:
        info["robust_weights"] = {"n_downweighted": int((w < 1.0).sum()), "n_below_half": int((w < 0.5).sum()),
                                  "min": float(w.min())}
    return CalibrationModel(kind, alpha, maps, X.shape[1], feature_names, (0.0, 0.0), cv, info, space, screen)


# ======================================================================================
# Validation
# ======================================================================================

@dataclass(frozen=True)
class ValidationThresholds:
    """Pass criteria of a validation: mean accuracy over points <= ``max_mean_deg``, every
    point's accuracy <= ``max_point_deg``, and every point has >= ``min_samples`` samples."""

    max_mean_deg: float = 1.5
    max_point_deg: float = 2.5
    min_samples: int = 5


def precision_rms_s2s(points) -> float:
    """RMS of successive sample-to-sample distances: ``sqrt(mean(|p[i+1] - p[i]|^2))`` (px).

    NaN for fewer than 2 points. (Tobii / ISO 15007 "precision RMS-S2S".)
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(p) < 2:
        return math.nan
    d = np.diff(p, axis=0)
    return float(np.sqrt(np.mean(np.sum(d * d, axis=1))))


@dataclass
class PointResult:
    """Result for one validation target. Accuracy: distance of the mean estimate from the
    target; precision: RMS of sample-to-sample distances (RMS-S2S) of the estimates in
    time order. ``*_px`` in px, ``*_deg`` in degrees of visual angle (exact)."""

    point: int
    target: tuple[float, float]
    mean: tuple[float, float]
    accuracy_px: float
    precision_px: float
    accuracy_deg: float
    precision_deg: float
    n_samples: int
    onset_t: float = math.nan


GRADES = ("good", "warn", "bad")  #: the grades of a validation target, best first


def point_grade(point: PointResult, thresholds: ValidationThresholds) -> str:
    """"good" (accuracy within the mean criterion), "warn" (within the per-point limit)
    or "bad" (over it, or too few samples): how one validation target did, in the grades
    the researcher's report colours by."""
    acc = point.accuracy_deg
    measured = isinstance(acc, (int, float, np.floating)) and math.isfinite(acc)
    if point.n_samples < thresholds.min_samples or not measured:
        return "bad"
    if acc > thresholds.max_point_deg:
        return "bad"
    if acc > thresholds.max_mean_deg:
        return "warn"
    return "good"


@dataclass
class ValidationReport:
    points: list[PointResult]
    thresholds: ValidationThresholds
    mean_accuracy_px: float
    mean_precision_px: float
    mean_accuracy_deg: float
    mean_precision_deg: float
    worst_point: int  # index of the point with the largest accuracy_deg (-1 none)
    worst_accuracy_deg: float
    passed: bool
    reasons: list[str] = field(default_factory=list)  # why it failed (empty when passed)

    def to_rows(self, phase: int = CalibrationPhase.VALIDATION, run: int = 0) -> list[dict]:
        """Rows for the session's ``calibration/points`` stream (``t`` = target onset), in
        the order the targets were shown (a shuffled pattern shows its points out of index
        order; a stream's rows go forward in time)."""
        points = sorted(self.points, key=lambda p: (not np.isfinite(p.onset_t), p.onset_t))
        return [{"t": p.onset_t, "phase": int(phase), "run": int(run), "point": p.point,
                 "target_x": p.target[0], "target_y": p.target[1], "mean_x": p.mean[0], "mean_y": p.mean[1],
                 "accuracy_px": p.accuracy_px, "precision_px": p.precision_px,
                 "accuracy_deg": p.accuracy_deg, "precision_deg": p.precision_deg, "n_samples": p.n_samples}
                for p in points]

    def summary(self) -> dict:
        """Overall figures as a JSON-ready dict (for logs and session metadata)."""
        return {"mean_accuracy_px": self.mean_accuracy_px, "mean_precision_px": self.mean_precision_px,
                "mean_accuracy_deg": self.mean_accuracy_deg, "mean_precision_deg": self.mean_precision_deg,
                "worst_point": self.worst_point, "worst_accuracy_deg": self.worst_accuracy_deg,
                "passed": self.passed, "reasons": list(self.reasons),
                "thresholds": {"max_mean_deg": self.thresholds.max_mean_deg,
                               "max_point_deg": self.thresholds.max_point_deg,
                               "min_samples": self.thresholds.min_samples},
                "n_points": len(self.points)}


def _point_result(i: int, target, est: np.ndarray, screen: ScreenGeometry, onset: float) -> PointResult:
    est = np.asarray(est, dtype=np.float64).reshape(-1, 2)
    est = est[np.all(np.isfinite(est), axis=1)]
    tgt = (float(target[0]), float(target[1]))
    if len(est) == 0:
        nan = math.nan
        return PointResult(i, tgt, (nan, nan), nan, nan, nan, nan, 0, onset)
    mean = est.mean(0)
    acc_px = float(np.hypot(*(mean - np.asarray(tgt))))
    acc_deg = float(screen.deg_between(mean, tgt))
    prec_px = precision_rms_s2s(est)
    prec_deg = float(np.sqrt(np.mean(np.square(screen.deg_between(est[1:], est[:-1]))))) if len(est) > 1 \
        else math.nan
    return PointResult(i, tgt, (float(mean[0]), float(mean[1])), acc_px, prec_px, acc_deg, prec_deg,
                       int(len(est)), onset)


def validate(model_or_predictions, samples, screen: ScreenGeometry, *, targets=None,
             thresholds: ValidationThresholds | None = None, onsets=None) -> ValidationReport:
    """Accuracy and precision per validation target, overall means, worst point, pass/fail.

    - ``validate(model, collector, screen)``: a :class:`CalibrationModel` and the
      :class:`CalibrationCollector` of the validation pattern (targets and onsets come
      from it);
    - ``validate(model, [features_0, features_1, ...], screen, targets=...)``: per target
      the (n_i, f) feature rows in time order;
    - ``validate([est_0, est_1, ...], None, screen, targets=...)``: per target the
      (n_i, 2) gaze estimates (px) in time order, e.g. from the live tracker.

    Non-finite estimates are skipped. Means over points skip points without samples
    (those fail the report).
    """
    thresholds = thresholds or ValidationThresholds()
    if isinstance(samples, CalibrationCollector):
        coll = samples
        if coll.pattern.is_pursuit:
            raise ValueError("validate() needs a points pattern, not a pursuit")
        idx = list(range(coll.pattern.n_targets))
        targets = [coll.target_px(i) for i in idx]
        onsets = [coll.onset(i) for i in idx]
        feats = [coll.features_for(i) for i in idx]
    else:
        feats = None if samples is None else list(samples)
    if isinstance(model_or_predictions, CalibrationModel):
        if feats is None:
            raise ValueError("validate(model, samples, ...) needs the feature samples per target")
        ests = [model_or_predictions.predict(f) if len(f) else np.zeros((0, 2)) for f in feats]
    else:
        if feats is not None:
            raise ValueError("validate(predictions, ...): pass samples=None when giving gaze estimates")
        ests = [np.asarray(e, dtype=np.float64).reshape(-1, 2) for e in model_or_predictions]
    if targets is None:
        raise ValueError("validate() needs the target positions (targets=...)")
    targets = np.asarray(targets, dtype=np.float64).reshape(-1, 2)
    if len(targets) != len(ests):
        raise ValueError(f"{len(ests)} sample sets for {len(targets)} targets")
    onsets = [math.nan] * len(ests) if onsets is None else [float(o) for o in onsets]
    pts = [_point_result(i, targets[i], ests[i], screen, onsets[i]) for i in range(len(ests))]
    have = [p for p in pts if p.n_samples > 0]
    nanmean = lambda v: float(np.mean(v)) if len(v) else math.nan  # noqa: E731
    mean_acc_px = nanmean([p.accuracy_px for p in have])
    mean_acc_deg = nanmean([p.accuracy_deg for p in have])
    mean_prec_px = nanmean([p.precision_px for p in have if math.isfinite(p.precision_px)])
    mean_prec_deg = nanmean([p.precision_deg for p in have if math.isfinite(p.precision_deg)])
    worst = max(have, key=lambda p: p.accuracy_deg) if have else None
    reasons = []
    for p in pts:
        if p.n_samples < thresholds.min_samples:
            reasons.append(f"point {p.point}: {p.n_samples} samples (< {thresholds.min_samples})")
        elif p.accuracy_deg > thresholds.max_point_deg:
            reasons.append(f"point {p.point}: accuracy {p.accuracy_deg:.2f} deg > {thresholds.max_point_deg} deg")
    if not have:
        reasons.append("no samples")
    elif mean_acc_deg > thresholds.max_mean_deg:
        reasons.append(f"mean accuracy {mean_acc_deg:.2f} deg > {thresholds.max_mean_deg} deg")
    return ValidationReport(pts, thresholds, mean_acc_px, mean_prec_px, mean_acc_deg, mean_prec_deg,
                            worst.point if worst else -1, worst.accuracy_deg if worst else math.nan,
                            not reasons, reasons)


# ======================================================================================
# Drift check
# ======================================================================================

@dataclass(frozen=True)
class DriftResult:
    """``offset_px``: (dx, dy) px to add to the model's output to put the mean estimate on
    the target; ``offset_deg``: visual angle between the mean estimate and the target;
    ``action``: ``"none"`` (< small_deg), ``"correct"`` (small_deg <= offset < large_deg:
    apply ``model.with_offset(*offset_px)``) or ``"recalibrate"`` (>= large_deg)."""

    offset_px: tuple[float, float]
    offset_deg: float
    action: str
    n_samples: int
    mean: tuple[float, float]
    target: tuple[float, float]

    @property
    def distance_px(self) -> float:
        return float(math.hypot(*self.offset_px))

    def apply(self, model: CalibrationModel) -> CalibrationModel:
        """The model to use next: shifted for ``"correct"``, unchanged otherwise."""
        return model.with_offset(*self.offset_px) if self.action == "correct" else model


def drift_check(samples, target, model: CalibrationModel | None, screen: ScreenGeometry,
                small_deg: float = 1.0, large_deg: float = 2.0, min_samples: int = 3) -> DriftResult:
    """Compare the mean gaze estimate near one target with the target.

    ``samples``: (n, f) feature rows when ``model`` is given, else (n, 2) gaze estimates
    in px; ``target`` (x, y) px. Raises ValueError with fewer than ``min_samples`` valid
    samples (show the target again).
    """
    if not 0 <= small_deg <= large_deg:
        raise ValueError("drift_check needs 0 <= small_deg <= large_deg")
    est = model.predict(samples) if model is not None else np.asarray(samples, dtype=np.float64).reshape(-1, 2)
    est = est[np.all(np.isfinite(est), axis=1)]
    if len(est) < min_samples:
        raise ValueError(f"drift check: {len(est)} valid samples, need at least {min_samples}")
    mean = est.mean(0)
    tgt = np.asarray(target, dtype=np.float64).reshape(2)
    off = tgt - mean
    deg = float(screen.deg_between(mean, tgt))
    action = "none" if deg < small_deg else ("correct" if deg < large_deg else "recalibrate")
    return DriftResult((float(off[0]), float(off[1])), deg, action, int(len(est)),
                       (float(mean[0]), float(mean[1])), (float(tgt[0]), float(tgt[1])))
