"""Calibration, validation and drift-check runs as time-driven procedures (no Qt).

A :class:`TargetRun` says, for any time on the session clock, which target is on
screen (after a short countdown), and files every gaze sample that arrives into
a :class:`~ifllm_lab.gaze.calibration.CalibrationCollector` under the target that was
shown when its frame was captured. The UI only draws :meth:`TargetRun.state_at`
and forwards the tracker's samples; tests drive the same object with rendered
videos, so what the participant sees and what is computed cannot drift apart.

:class:`CalibrationFlow` strings the runs together the way a session needs them:
calibration -> fit -> validation -> report (pass, or offer recalibration), and
writes everything to the session file (``calibration/samples``, ``/points``,
``/models`` and the ``log``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from ..session.schema import CalibrationPhase, LogLevel
from .calibration import (
    CalibrationCollector,
    CalibrationModel,
    DriftResult,
    Pattern,
    ValidationReport,
    ValidationThresholds,
    drift_check,
    fit_calibration,
    load_pattern,
    validate,
)
from .geometry import ScreenGeometry

COUNTDOWN_S = 1.0  # the first target is announced this long before it counts


@dataclass
class TargetState:
    """What the screen shows at one moment.

    ``stage``: "countdown" (before the first target; ``remaining_s`` counts down),
    "target" (``index`` shown at ``x``, ``y`` px since ``onset``; ``progress`` 0..1 of
    its dwell), or "done".
    """

    stage: str
    index: int = -1
    x: float = math.nan
    y: float = math.nan
    onset: float = math.nan
    progress: float = 0.0
    remaining_s: float = 0.0
    number: int = 0  # 1-based position in the presentation order
    total: int = 0


class TargetRun:
    """One pass over a pattern's targets, starting at ``start_t`` (session seconds).

    ``n_features``: length of the tracker's feature vector, when known in advance. Frames
    without a face (no vector) that arrive before the length is known are held back and
    filed, as invalid, once the first real vector arrives (or by :meth:`file_unfiled`,
    which the :class:`CalibrationFlow` calls before using a run), so a face that appears
    in the middle of a target never meets placeholders of the wrong length.
    """

    def __init__(self, pattern: Pattern, screen: ScreenGeometry, start_t: float, *,
                 phase: CalibrationPhase = CalibrationPhase.CALIBRATION, run: int = 0,
                 countdown_s: float = COUNTDOWN_S, seed: int | None = None, n_features: int | None = None):
        self.pattern = pattern
        self.screen = screen
        self.phase = phase
        self.run = run
        self.countdown_s = countdown_s
        self.start_t = float(start_t)
        self.collector = CalibrationCollector(pattern, screen)
        self.order = [0] if pattern.is_pursuit else pattern.presentation_order(seed)
        self._targets = None if pattern.is_pursuit else pattern.targets_px(screen)
        self.first_onset = self.start_t + countdown_s
        self.dwell_s = pattern.duration_s if pattern.is_pursuit else pattern.dwell_s
        self.end_t = self.first_onset + self.dwell_s * len(self.order)
        self.n_features = n_features
        self._unfiled: list[tuple] = []  # no-face frames seen before the feature length was known

    def state_at(self, t: float) -> TargetState:
        total = len(self.order)
        if t < self.first_onset:
            return TargetState("countdown", remaining_s=self.first_onset - t, total=total)
        k = int((t - self.first_onset) // self.dwell_s)
        if k >= total:
            return TargetState("done", total=total)
        onset = self.first_onset + k * self.dwell_s
        if self.pattern.is_pursuit:
            x, y = self.pattern.position_px_at(t - onset, self.screen)
            index = 0
        else:
            index = self.order[k]
            x, y = self._targets[index]
        return TargetState("target", index, float(x), float(y), onset, (t - onset) / self.dwell_s,
                           number=k + 1, total=total)

    def done(self, t: float) -> bool:
        return t >= self.end_t

    def add(self, t: float, vector, blink: bool, valid: bool) -> bool:
        """File one frame's features; returns True when the sample is used."""
        state = self.state_at(t)
        if state.stage != "target":
            return False
        if vector is None:
            n = self.collector.n_features or self.n_features
            if n is None:  # length not known yet: file it when it is
                self._unfiled.append((t, blink, state.index, state.onset))
                return False
            vector = np.full(n, np.nan)
        elif self._unfiled:
            self.file_unfiled(np.size(vector))
        return self.collector.add(t, vector, blink, valid, state.index, state.onset)

    def file_unfiled(self, n_features: int | None = None) -> None:
        """File the held-back no-face frames (as invalid) with NaN vectors of length
        ``n_features`` (default: the known length, else 1)."""
        if not self._unfiled:
            return
        n = n_features or self.collector.n_features or self.n_features or 1
        frames, self._unfiled = self._unfiled, []
        for t, blink, index, onset in frames:
            self.collector.add(t, np.full(n, np.nan), blink, False, index, onset)

    def add_sample(self, sample) -> bool:
        """File a tracker :class:`~ifllm_lab.gaze.tracker.GazeSample`."""
        return self.add(sample.t, sample.vector, sample.blink, sample.features is not None)


@dataclass
class CalibrationResult:
    model: CalibrationModel | None
    report: ValidationReport | None
    run: int
    message: str  # for the researcher

    @property
    def passed(self) -> bool:
        return self.report is not None and self.report.passed


class CalibrationFlow:
    """Calibration -> validation for a session, recorded into its file.

    Args:
        screen: the screen geometry (px, mm, viewing distance).
        writer: a :class:`~ifllm_lab.session.writer.SessionWriter` or None.
        calibration / validation / drift: pattern names or :class:`Pattern` objects.
        thresholds: pass/fail of the validation (from the study config).
        feature_names: names of the tracker's feature vector.
        drift_small_deg / drift_large_deg: drift checks correct offsets from the first
            and ask to recalibrate from the second (the study's limits).
    """

    def __init__(self, screen: ScreenGeometry, *, writer=None, calibration="9-point",
                 validation="validation-9", drift="drift-centre",
                 thresholds: ValidationThresholds | None = None, feature_names=None, seed: int | None = None,
                 drift_small_deg: float = 1.0, drift_large_deg: float = 2.0):
        self.screen = screen
        self.writer = writer
        self.calibration_pattern = load_pattern(calibration) if isinstance(calibration, str) else calibration
        self.validation_pattern = load_pattern(validation) if isinstance(validation, str) else validation
        self.drift_pattern = load_pattern(drift) if isinstance(drift, str) else drift
        self.thresholds = thresholds or ValidationThresholds()
        self.feature_names = feature_names
        self.seed = seed
        if not 0 <= drift_small_deg <= drift_large_deg:
            raise ValueError("CalibrationFlow needs 0 <= drift_small_deg <= drift_large_deg")
        self.drift_small_deg = float(drift_small_deg)
        self.drift_large_deg = float(drift_large_deg)
        self.run_number = 0
        self.model: CalibrationModel | None = None
        self.report: ValidationReport | None = None

    # -- runs ---------------------------------------------------------------------------
    # ``countdown_s``: how long before the first target the run starts (the screen counts down).
    def _n_features(self) -> int | None:
        return len(self.feature_names) if self.feature_names else None

    def calibration_run(self, start_t: float, countdown_s: float = COUNTDOWN_S) -> TargetRun:
        self.run_number += 1
        return TargetRun(self.calibration_pattern, self.screen, start_t, phase=CalibrationPhase.CALIBRATION,
                         run=self.run_number, seed=self.seed, countdown_s=countdown_s,
                         n_features=self._n_features())

    def validation_run(self, start_t: float, countdown_s: float = COUNTDOWN_S) -> TargetRun:
        return TargetRun(self.validation_pattern, self.screen, start_t, phase=CalibrationPhase.VALIDATION,
                         run=self.run_number, seed=self.seed, countdown_s=countdown_s,
                         n_features=self._n_features())

    def drift_run(self, start_t: float, countdown_s: float = 0.0) -> TargetRun:
        return TargetRun(self.drift_pattern, self.screen, start_t, phase=CalibrationPhase.DRIFT_CHECK,
                         run=self.run_number, countdown_s=countdown_s, n_features=self._n_features())

    # -- results ------------------------------------------------------------------------
    def fit(self, run: TargetRun, t: float) -> CalibrationModel:
        """Fit the model from a finished calibration run (raises ValueError when too
        few targets have samples: the participant should recalibrate)."""
        run.file_unfiled()
        X, Y, groups = run.collector.training_data()
        n_targets = len(run.collector.groups)
        self._put_samples(run, None)
        if n_targets < min(5, run.pattern.n_targets):
            msg = (f"calibration run {run.run}: only {n_targets} of {run.pattern.n_targets} targets had usable "
                   f"samples ({run.collector.counts.as_dict()}); recalibrate with the face in view")
            self._log(t, LogLevel.WARNING, msg)
            raise ValueError(msg)
        self.model = fit_calibration(X, Y, feature_names=self.feature_names, groups=groups, screen=self.screen)
        if self.writer is not None:
            row = self.model.to_row(t, run.run)
            self.writer.put_rows("calibration/models", {k: [v] for k, v in row.items()})
        self._log(t, LogLevel.INFO, f"calibration run {run.run}: {self.model!r}, samples "
                                    f"{json.dumps(run.collector.counts.as_dict())}")
        return self.model

    def evaluate(self, run: TargetRun, t: float) -> CalibrationResult:
        """Validation report of a finished validation run (or drift run) against the model."""
        if self.model is None:
            raise ValueError("no calibration to validate: run a calibration first")
        run.file_unfiled()
        self.report = validate(self.model, run.collector, self.screen, thresholds=self.thresholds)
        self._put_samples(run, self.model)
        if self.writer is not None:
            rows = self.report.to_rows(phase=run.phase, run=run.run)
            self.writer.put_rows("calibration/points", {k: [r[k] for r in rows] for k in rows[0]})
        s = self.report.summary()
        verdict = "passed" if self.report.passed else "FAILED: " + "; ".join(self.report.reasons)
        message = (f"validation run {run.run}: accuracy {s['mean_accuracy_deg']:.2f} deg "
                   f"({s['mean_accuracy_px']:.0f} px), precision {s['mean_precision_deg']:.2f} deg, worst point "
                   f"{s['worst_accuracy_deg']:.2f} deg - {verdict}")
        self._log(t, LogLevel.INFO if self.report.passed else LogLevel.WARNING, message)
        return CalibrationResult(self.model, self.report, run.run, message)

    def check_drift(self, run: TargetRun, t: float) -> DriftResult:
        """One-point drift check: apply a small correction, or say to recalibrate."""
        run.file_unfiled()
        feats = run.collector.features_for(0)
        target = run.collector.target_px(0)
        result = drift_check(feats, target, self.model, self.screen, small_deg=self.drift_small_deg,
                             large_deg=self.drift_large_deg)
        self._put_samples(run, self.model)
        if result.action == "correct" and self.model is not None:
            self.model = result.apply(self.model)
        self._log(t, LogLevel.INFO if result.action != "recalibrate" else LogLevel.WARNING,
                  f"drift check: offset {result.offset_deg:.2f} deg -> {result.action}")
        return result

    # -- recording ----------------------------------------------------------------------
    def _put_samples(self, run: TargetRun, model) -> None:
        if self.writer is None:
            return
        rows = run.collector.sample_rows(phase=run.phase, run=run.run, model=model)
        if rows:
            self.writer.put_rows("calibration/samples", {k: [r[k] for r in rows] for k in rows[0]})

    def _log(self, t: float, level: LogLevel, message: str) -> None:
        if self.writer is not None:
            self.writer.put("log", (t, int(level), "calibration", message))
