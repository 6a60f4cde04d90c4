"""The calibration part of a participant session, as one widget.

:class:`CalibrationWizard` (a ``QStackedWidget``) strings the calibration screens of
:mod:`ifllm_lab.ui.calibration_screens` together around a
:class:`~ifllm_lab.gaze.procedure.CalibrationFlow`::

    face guide --Space/Enter/Continue (position good) or F12 (researcher)-->
    calibration targets --fit--> validation targets --evaluate--> validation report
        report "Recalibrate" -> calibration again (the flow's run number goes up)
        report "Continue"    -> completed(CalibrationResult)
        fit failed (too few targets with samples) -> "Let's try that again" for the
        participant, then calibration again; after ``max_fit_failures`` failures in a
        row the researcher gets the report page with the reason instead.

    start_drift_check(): one drift target --check_drift--> drift result
        "Check again" -> drift target again; "Recalibrate" -> calibration (ends with
        ``completed`` as above); "Continue" -> drift_done(DriftResult | None).

Keys
----
Face guide: Space / Enter continue when the position is good (the participant); **F12
continues whatever the position (the researcher)**, logged as such. Escape on the face
guide or on a target screen ends the calibration: ``aborted`` is emitted (the researcher
decides what comes next; the wizard does nothing more until started again).

Time
----
Everything is timed on the session clock (``clock.now()``): the runs start at
``clock.now()``, the pause after a failed fit, and the grace period after a run ends
(``grace_s``: samples captured before the end of a run can still be in the tracker when
the last target goes away; they are filed as long as the run has not been closed). A
timer (``tick_ms``) and the target screen's own timer read the clock; tests with a
clock they set themselves call :meth:`tick` after moving it.

Threads
-------
Gaze samples are made on the tracker thread. **All run, collector, flow and widget state
is touched only in the GUI thread**: samples and camera frames reach
:meth:`update_sample` / :meth:`set_frame` through a :class:`GazeBridge` (pass it to the
constructor, or ``bridge.attach(wizard)``: queued Qt signals), or through the thread-safe
:meth:`post_sample` / :meth:`post_frame`. :meth:`update_sample` and :meth:`set_frame`
called from another thread re-post themselves to the GUI thread instead of running
there. The fit and the validation run in the GUI thread too (a fraction of a second,
while the participant's screen says "Thank you").

Samples go into the current run (``run.add_sample``) only while a run is open: from
:meth:`TargetRun <ifllm_lab.gaze.procedure.TargetRun>` start until it is closed
``grace_s`` after its end; the run itself keeps only the samples captured while a target
was shown.

After ``completed`` the model to track with is ``result.model``; after a drift check
that corrected the calibration (action "correct") it is :attr:`model` (the flow's
corrected model).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QThread, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from ..gaze.procedure import CalibrationFlow, CalibrationResult, TargetRun
from ..session.schema import LogLevel
from . import style
from .calibration_screens import (
    DriftResultView, FaceGuide, FacePositionTargets, FaceStatus, GazeBridge, TargetScreen,
    ValidationReportView,
)

log = logging.getLogger(__name__)

__all__ = ["CalibrationWizard", "RETRY_MESSAGE", "FORCE_CONTINUE_KEY"]

#: What the participant reads after a calibration that could not be used.
RETRY_MESSAGE = ("Let's try that again.\n"
                 "Keep your face in view of the camera and follow each dot with your eyes.")
#: The researcher's key to leave the face guide whatever the face position.
FORCE_CONTINUE_KEY = Qt.Key.Key_F12

# stages (``CalibrationWizard.stage``)
IDLE = "idle"  # nothing started yet
FACE = "face"  # face-position guide
CALIBRATION = "calibration"  # calibration targets (run open, or closing)
RETRY = "retry"  # "Let's try that again", before the next calibration run
VALIDATION = "validation"  # validation targets
REPORT = "report"  # validation report (researcher)
FAILED = "failed"  # the fit failed max_fit_failures times in a row (researcher)
DRIFT = "drift"  # drift-check target
DRIFT_RESULT = "drift_result"  # drift-check outcome (researcher)
DONE = "done"  # completed / drift_done emitted
ABORTED = "aborted"  # aborted emitted

_RUN_STAGES = (CALIBRATION, VALIDATION, DRIFT)


class _FacePage(QWidget):
    """The face guide with a Continue button under it (enabled when the position is good).

    Keys the guide does not use come here: F12 (researcher: continue anyway), Escape."""

    force_continue = Signal()
    abort_requested = Signal()

    def __init__(self, targets: FacePositionTargets | None, parent=None):
        super().__init__(parent)
        self.setAutoFillBackground(True)
        pal = self.palette()
        pal.setColor(self.backgroundRole(), style.BACKGROUND)
        self.setPalette(pal)
        self.guide = FaceGuide(self, targets=targets)
        self.continue_button = QPushButton("Continue", self)
        self.continue_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the guide
        self.continue_button.setEnabled(False)
        self.guide.status_changed.connect(self._status_changed)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.continue_button)
        row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.guide, 1)
        lay.addLayout(row)
        self._apply_sizes()

    @Slot(object)
    def _status_changed(self, status: FaceStatus) -> None:
        self.continue_button.setEnabled(status.good)

    def _apply_sizes(self) -> None:
        h = max(240, self.height())
        m = int(h * 0.03)
        self.layout().setContentsMargins(0, 0, 0, m)
        self.continue_button.setStyleSheet(
            style.button_stylesheet(h)
            + f" QPushButton:disabled {{ color: {style.TEXT_FAINT.name()}; background: #404040;"
              " border: 1px solid #4e4e4e; }")

    def resizeEvent(self, event) -> None:
        self._apply_sizes()
        super().resizeEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == FORCE_CONTINUE_KEY:
            self.force_continue.emit()
            return
        if event.key() == Qt.Key.Key_Escape:
            self.abort_requested.emit()
            return
        super().keyPressEvent(event)


class CalibrationWizard(QStackedWidget):
    """Face guide -> calibration -> validation -> report, and drift checks (see the module
    docstring for the pages, keys, timing and threads).

    Args:
        flow: the session's :class:`~ifllm_lab.gaze.procedure.CalibrationFlow` (its
            writer records samples, points, models and the log).
        clock: the session clock (``now()`` -> seconds).
        bridge: a :class:`GazeBridge` whose samples and frames this wizard receives
            (optional: feed :meth:`update_sample` / :meth:`post_sample` otherwise).
        countdown_s: countdown before the first calibration target.
        validation_countdown_s: countdown before the first validation target
            (default: ``countdown_s``).
        drift_countdown_s: countdown before the drift target (default 0: it appears at once).
        max_fit_failures: failed fits in a row before the researcher is asked.
        retry_pause_s: how long "Let's try that again" stays before the next run.
        grace_s: how long after its end a run still takes samples (tracker latency).
        face_targets: where the face should be (face guide and countdown guide).

    Signals:
        completed(CalibrationResult): the researcher pressed Continue on the report (also
            after a failed validation, or, after repeated failed fits, with the previous
            calibration or ``model=None``).
        drift_done(DriftResult | None): Continue after a drift check (None when the check
            gave no result).
        aborted(): Escape on the face guide or a target screen.
        stage_changed(str): the stage (:attr:`stage`) changed.
    """

    completed = Signal(object)
    drift_done = Signal(object)
    aborted = Signal()
    stage_changed = Signal(str)

    _sample_relay = Signal(object)  # update_sample / set_frame called off the GUI thread
    _frame_relay = Signal(object)

    def __init__(self, flow: CalibrationFlow, clock, bridge: GazeBridge | None = None, parent=None, *,
                 countdown_s: float = 3.0, validation_countdown_s: float | None = None,
                 drift_countdown_s: float = 0.0, max_fit_failures: int = 3, retry_pause_s: float = 2.0,
                 grace_s: float = 0.25, face_targets: FacePositionTargets | None = None, tick_ms: int = 20):
        super().__init__(parent)
        self.flow = flow
        self.clock = clock
        self.countdown_s = float(countdown_s)
        self.validation_countdown_s = float(countdown_s if validation_countdown_s is None
                                            else validation_countdown_s)
        self.drift_countdown_s = float(drift_countdown_s)
        self.max_fit_failures = max(1, int(max_fit_failures))
        self.retry_pause_s = float(retry_pause_s)
        self.grace_s = float(grace_s)

        self._stage = IDLE
        self._run: TargetRun | None = None  # the run shown last
        self._open = False  # the run takes samples
        self._pending: tuple[float, Callable[[], None]] | None = None  # (due on the clock, action)
        self._fit_failures = 0
        self._result: CalibrationResult | None = None  # the last validation's result
        self._drift_result = None
        self._failure_message = ""
        self._bad_samples = 0

        self.face_page = _FacePage(face_targets)
        self.face_guide = self.face_page.guide
        self.target_screen = TargetScreen(clock, face_targets=face_targets)
        self.report_view = ValidationReportView()
        self.drift_view = DriftResultView()
        for w in (self.face_page, self.target_screen, self.report_view, self.drift_view):
            self.addWidget(w)

        self.face_guide.continue_requested.connect(self._face_continue)
        self.face_page.continue_button.clicked.connect(self._face_continue)
        self.face_page.force_continue.connect(self._face_force)
        self.face_page.abort_requested.connect(self.abort)
        self.target_screen.finished.connect(self._run_finished)
        self.target_screen.aborted.connect(self.abort)
        self.report_view.recalibrate_requested.connect(self._recalibrate)
        self.report_view.accepted.connect(self._accept_calibration)
        self.drift_view.retry_requested.connect(self._drift_retry)
        self.drift_view.recalibrate_requested.connect(self._recalibrate)
        self.drift_view.accepted.connect(self._accept_drift)

        self._sample_relay.connect(self.update_sample, Qt.ConnectionType.QueuedConnection)
        self._frame_relay.connect(self.set_frame, Qt.ConnectionType.QueuedConnection)

        self._timer = QTimer(self)
        self._timer.setInterval(int(tick_ms))
        self._timer.timeout.connect(self.tick)

        self.bridge = bridge
        if bridge is not None:
            bridge.attach(self)

    # ==================================================================================
    # State
    # ==================================================================================
    @property
    def stage(self) -> str:
        """"idle", "face", "calibration", "retry", "validation", "report", "failed",
        "drift", "drift_result", "done" or "aborted"."""
        return self._stage

    @property
    def current_run(self) -> TargetRun | None:
        """The run on (or last on) the target screen."""
        return self._run

    @property
    def run_open(self) -> bool:
        """Whether samples are being filed into :attr:`current_run`."""
        return self._open

    @property
    def result(self) -> CalibrationResult | None:
        """The result of the last validation (None before the first)."""
        return self._result

    @property
    def drift_result(self):
        """The last drift check's DriftResult (None before one, or when it gave none)."""
        return self._drift_result

    @property
    def model(self):
        """The calibration to track with now (the flow's; drift corrections included)."""
        return self.flow.model

    @property
    def fit_failures(self) -> int:
        """Failed fits in a row so far."""
        return self._fit_failures

    @property
    def failure_message(self) -> str:
        """The researcher's message after repeated failed fits ("" otherwise)."""
        return self._failure_message

    def _set_stage(self, stage: str, page: QWidget | None = None) -> None:
        if page is not None:
            self.setCurrentWidget(page)
            self._focus(page)
        if stage != self._stage:
            self._stage = stage
            self.stage_changed.emit(stage)

    def _focus(self, page: QWidget) -> None:
        """Keys to where they are used: the face guide, the target screen, or the
        suggested (default) button of a researcher view."""
        if page is self.face_page:
            self.face_guide.setFocus()
            return
        for b in page.findChildren(QPushButton):
            if b.isDefault() and not b.isHidden():
                b.setFocus()
                return
        page.setFocus()

    # ==================================================================================
    # Starting
    # ==================================================================================
    def start(self, face_guide: bool = True) -> None:
        """Begin the calibration part of a session: the face guide (or, with
        ``face_guide=False``, the calibration straight away)."""
        self._cancel()
        self._fit_failures = 0
        if not face_guide:
            self.start_calibration()
            return
        self._set_stage(FACE, self.face_page)
        self.face_page.continue_button.setEnabled(self.face_guide.status.good)

    def start_calibration(self) -> None:
        """Calibration (then validation and the report) now, without the face guide."""
        self._cancel()
        self._fit_failures = 0
        self._begin_calibration()

    def start_drift_check(self) -> None:
        """One drift-check target now, then the drift result for the researcher."""
        self._cancel()
        if self.flow.model is None:
            self._drift_result = None
            self.drift_view.show_error("There is no calibration to check yet: calibrate first.")
            self._set_stage(DRIFT_RESULT, self.drift_view)
            return
        self._start_run(self.flow.drift_run(self.clock.now(), countdown_s=self.drift_countdown_s), DRIFT)

    def abort(self) -> None:
        """End whatever is going on and emit ``aborted`` (Escape does this)."""
        stage = self._stage
        self._cancel()
        self._note(LogLevel.WARNING, f"calibration aborted (Escape) during {stage}")
        self._set_stage(ABORTED)
        self.aborted.emit()

    def stop(self) -> None:
        """Stop runs and timers without emitting anything (e.g. the session is closing)."""
        self._cancel()
        self._set_stage(IDLE)

    def _cancel(self) -> None:
        self._open = False
        self._pending = None
        self._timer.stop()
        self.target_screen.stop()

    def _begin_calibration(self) -> None:
        run = self.flow.calibration_run(self.clock.now(), countdown_s=self.countdown_s)
        self._start_run(run, CALIBRATION)

    def _start_run(self, run: TargetRun, stage: str) -> None:
        self._pending = None
        self._run = run
        self._open = True
        self.target_screen.set_run(run)
        self._set_stage(stage, self.target_screen)

    # ==================================================================================
    # Input (GUI thread; see the module docstring)
    # ==================================================================================
    def post_sample(self, sample) -> None:
        """Thread-safe: hand a GazeSample to the GUI thread."""
        self._sample_relay.emit(sample)

    def post_frame(self, rgb) -> None:
        """Thread-safe: hand a camera frame (RGB array, copied by the caller or a
        :class:`GazeBridge`) to the GUI thread."""
        self._frame_relay.emit(rgb)

    @Slot(object)
    def update_sample(self, sample) -> None:
        """One tracker sample: the face guides see it, the open run files it."""
        if QThread.currentThread() is not self.thread():
            self._sample_relay.emit(sample)
            return
        try:
            self.face_guide.update_sample(sample)
            self.target_screen.update_sample(sample)
            if self._open and self._run is not None and sample is not None:
                self._run.add_sample(sample)
        except Exception:  # a malformed sample must not break the session
            self._bad_samples += 1
            if self._bad_samples == 1 or self._bad_samples % 1000 == 0:
                log.exception("calibration wizard: sample not used (%d so far)", self._bad_samples)

    @Slot(object)
    def set_frame(self, rgb) -> None:
        """The camera picture for the face guide (shown only on the face-guide page)."""
        if QThread.currentThread() is not self.thread():
            self._frame_relay.emit(rgb)
            return
        if self._stage == FACE:
            self.face_guide.set_frame(rgb)

    # ==================================================================================
    # Time
    # ==================================================================================
    @Slot()
    def tick(self) -> None:
        """Read the clock: move the target screen on and do what is due (the timers call
        this; tests with their own clock call it after moving the clock)."""
        try:
            if self.target_screen.running:
                self.target_screen.tick()
            if self._pending is not None and float(self.clock.now()) >= self._pending[0]:
                _, action = self._pending
                self._pending = None
                self._timer.stop()
                action()
        except Exception as e:
            log.exception("calibration wizard: tick failed")
            self._show_failure(f"The calibration stopped because of an internal error ({e!r}).")

    def _at(self, due_t: float, action: Callable[[], None]) -> None:
        self._pending = (float(due_t), action)
        self._timer.start()

    # ==================================================================================
    # Face guide
    # ==================================================================================
    @Slot()
    def _face_continue(self) -> None:
        if self._stage != FACE or not self.face_guide.status.good:
            return
        self._fit_failures = 0
        self._begin_calibration()

    @Slot()
    def _face_force(self) -> None:
        if self._stage != FACE:
            return
        st = self.face_guide.status
        if not st.good:
            self._note(LogLevel.INFO, f"face guide: the researcher continued (F12) with the hint "
                                      f"'{st.message}'")
        self._fit_failures = 0
        self._begin_calibration()

    # ==================================================================================
    # Runs
    # ==================================================================================
    @Slot()
    def _run_finished(self) -> None:
        run = self._run
        if run is None or self._stage not in _RUN_STAGES:
            return
        close = {CALIBRATION: self._close_calibration, VALIDATION: self._close_validation,
                 DRIFT: self._close_drift}[self._stage]
        self._at(run.end_t + self.grace_s, lambda: close(run))

    def _close_calibration(self, run: TargetRun) -> None:
        if run is not self._run:
            return
        self._open = False
        try:
            self.flow.fit(run, self.clock.now())
        except ValueError as e:
            self._fit_failed(run, str(e))
            return
        self._fit_failures = 0
        self._start_run(self.flow.validation_run(self.clock.now(), countdown_s=self.validation_countdown_s),
                        VALIDATION)

    def _fit_failed(self, run: TargetRun, reason: str) -> None:
        self._fit_failures += 1
        if self._fit_failures < self.max_fit_failures:
            self.target_screen.show_message(RETRY_MESSAGE)
            self._set_stage(RETRY, self.target_screen)
            self._at(self.clock.now() + self.retry_pause_s, self._retry_calibration)
            return
        n = self._fit_failures
        self._show_failure(
            f"The calibration could not be used {n} times in a row (runs {run.run - n + 1}\u2013{run.run}): "
            "too few targets had usable gaze samples. Check that the participant's face is well lit and "
            "inside the camera picture, then press Recalibrate.\n"
            f"Last run: {reason}.")

    def _retry_calibration(self) -> None:
        if self._stage == RETRY:
            self._begin_calibration()

    def _show_failure(self, message: str) -> None:
        """The researcher's page when calibrating does not work (Recalibrate / Continue)."""
        self._cancel()
        self._failure_message = message
        self.report_view.show_error(message, title="Calibration failed")
        if self.flow.model is not None:
            self.report_view.note_label.setText("Continue keeps the previous calibration.")
        else:
            self.report_view.note_label.setText("Continue goes on without a gaze calibration.")
        self._note(LogLevel.WARNING, message)
        self._set_stage(FAILED, self.report_view)

    def _close_validation(self, run: TargetRun) -> None:
        if run is not self._run:
            return
        self._open = False
        try:
            result = self.flow.evaluate(run, self.clock.now())
        except Exception as e:
            log.exception("calibration wizard: validation failed")
            result = CalibrationResult(self.flow.model, None, run.run, f"validation run {run.run} failed: {e}")
        self._result = result
        self.report_view.set_result(result, self.flow.screen)
        self._set_stage(REPORT, self.report_view)

    def _close_drift(self, run: TargetRun) -> None:
        if run is not self._run:
            return
        self._open = False
        try:
            res = self.flow.check_drift(run, self.clock.now())
        except Exception as e:  # too few samples, usually
            self._drift_result = None
            self.drift_view.show_error(f"The drift check gave no result: {e}.")
            self._note(LogLevel.WARNING, f"drift check: no result ({e})")
        else:
            self._drift_result = res
            self.drift_view.set_result(res)
        self._set_stage(DRIFT_RESULT, self.drift_view)

    # ==================================================================================
    # Researcher's buttons
    # ==================================================================================
    @Slot()
    def _recalibrate(self) -> None:
        if self._stage not in (REPORT, FAILED, DRIFT_RESULT):
            return
        self._note(LogLevel.INFO, f"recalibration requested by the researcher (after {self._stage})")
        self._fit_failures = 0
        self._failure_message = ""
        self._begin_calibration()

    @Slot()
    def _accept_calibration(self) -> None:
        if self._stage == REPORT:
            result = self._result
        elif self._stage == FAILED:
            prev = self._result
            result = CalibrationResult(self.flow.model, self.flow.report if self.flow.model is not None else None,
                                       prev.run if prev is not None and self.flow.model is not None
                                       else self.flow.run_number, self._failure_message)
            self._note(LogLevel.WARNING, "the researcher continued after failed calibrations "
                                         + ("with the previous calibration" if result.model is not None
                                            else "without a gaze calibration"))
        else:
            return
        if self._stage == REPORT:
            self._note(LogLevel.INFO, f"calibration run {result.run} accepted by the researcher "
                                      f"({'passed' if result.passed else 'validation not passed'})")
        self._set_stage(DONE)
        self.completed.emit(result)

    @Slot()
    def _drift_retry(self) -> None:
        if self._stage == DRIFT_RESULT:
            self.start_drift_check()

    @Slot()
    def _accept_drift(self) -> None:
        if self._stage != DRIFT_RESULT:
            return
        self._set_stage(DONE)
        self.drift_done.emit(self._drift_result)

    # ==================================================================================
    def _note(self, level: LogLevel, message: str) -> None:
        """A line in the session's log (and the Python log)."""
        log.log(int(level), "calibration: %s", message)
        writer = self.flow.writer
        if writer is not None:
            try:
                writer.put("log", (float(self.clock.now()), int(level), "calibration", message))
            except Exception:
                log.exception("calibration wizard: cannot log to the session")
