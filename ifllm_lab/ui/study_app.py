"""The participant study app: one window that runs a whole session.

::

    setup (researcher: participant code, camera preview, interrupted sessions)
      -> consent ("I agree" creates the session file; "I do not agree" records nothing)
      -> calibration wizard (face guide, calibration, validation, report)
      -> turns: question -> answer(s) stream in -> ratings [-> drift check] ...
      -> questionnaire -> thank you (-> next participant: back to setup)

Threads: the camera and gaze tracker run in their own threads (samples reach the
calibration screens through a :class:`GazeBridge`); the LLM answers in a worker thread
whose pieces reach the answer views through queued signals, so the window never waits
for the model; the LLM is loaded as a job (:class:`~ifllm_lab.ui.jobs.JobRunner`) when the
window opens. The session file is written by the :class:`SessionWriter`'s thread.

Researcher keys: F12 on the face guide continues whatever the face position;
Escape during calibration stops it (then "Calibrate again"); Ctrl+Shift+E ends the
session early (after a confirmation); Ctrl+Shift+Q quits from the setup page.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path

from PySide6.QtCore import QEventLoop, Qt, Signal, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication, QLayout, QMessageBox, QStackedWidget

from ..camera.sources import CameraError, open_source
from ..camera.video_log import VideoLog
from ..config import StudyConfig
from ..console import report_problem
from ..gaze.calibration import ValidationThresholds
from ..gaze.filters import OneEuroFilter
from ..gaze.geometry import ScreenGeometry
from ..gaze.landmarks import FaceLandmarker, LandmarkerError
from ..gaze.procedure import CalibrationFlow
from ..gaze.tracker import FeatureExtractor, GazePipeline, GazeTracker
from ..jobs import Job
from ..session.recovery import RecoveryError, close_interrupted, find_interrupted, resume_info
from ..session.schema import LogLevel, Response
from ..session.writer import SessionClock
from ..study.participant import ParticipantCodeError, normalise_code, pseudonym, pseudonym_key
from ..study.readiness import SESSION_ROOM_MB, StudyReadiness, check_study
from ..study.session import Backends, StudySession, Turn, session_path, study_folder
from .calibration_screens import FacePositionTargets, GazeBridge
from .calibration_wizard import CalibrationWizard
from .jobs import JobRunner
from .recording import InputRecorder
from .style import application
from .response_view import LayoutTracker
from .study_pages import ChatPage, ConsentPage, MessagePage, QuestionnairePage, SetupPage

log = logging.getLogger(__name__)

__all__ = ["StudyApp"]

PREVIEW_HZ = 12.0  # camera pictures shown on the setup page / face guide per second


def participant_step(method):
    """A step between "I agree" and the end of the session: an unexpected fault ends
    the session (its file closed, the reason in its log) and the participant sees a
    calm message instead of a window that no longer answers."""

    @functools.wraps(method)
    def step(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            log.exception("%s failed", method.__name__)
            self._session_failed(f"{type(exc).__name__}: {exc}")
            return None

    return step


class StudyApp(QStackedWidget):
    """The study window (see the module docstring).

    Args:
        config: the study.
        camera: overrides ``config.camera.source`` (camera index, video file, image folder).
        participant: a participant code to fill in on the setup page.
        screen_px: (width, height) of the participant's screen in px; default: the
            study's ``screen.width_px/height_px``, else the screen the window is on.
        countdown_s: countdown before calibration / validation targets.
        loop_video: play a video file / image folder camera in a loop.
        preload: load the LLM(s) in the background at once.
    """

    # worker threads -> GUI thread
    _token = Signal(str, str)
    _generated = Signal(object)
    _camera_status = Signal(str, str)
    _writer_failed = Signal(str)

    #: what the app is showing: setup, consent, calibration, chat, drift, questionnaire, done
    stage_changed = Signal(str)
    #: a session file was just created (the StudySession), before its first row: the live monitor taps it
    session_opened = Signal(object)

    def __init__(self, config: StudyConfig, *, camera: str | None = None, participant: str | None = None,
                 screen_px: tuple[int, int] | None = None, countdown_s: float = 3.0, loop_video: bool = True,
                 preload: bool = True, face_targets: FacePositionTargets | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"IFLLM Lab - {config.study.name}")
        self.config = config
        self.camera_spec = str(camera) if camera is not None else config.camera.source
        self.screen_px_override = screen_px
        self.countdown_s = float(countdown_s)
        self.loop_video = loop_video
        self.face_targets = face_targets
        self.stage = ""
        self.session: StudySession | None = None
        self.turn: Turn | None = None
        self.clock = SessionClock()
        self.source = None
        self.landmarker: FaceLandmarker | None = None
        self.pipeline: GazePipeline | None = None
        self.tracker: GazeTracker | None = None
        self.recorder: InputRecorder | None = None
        self.layout_tracker: LayoutTracker | None = None
        self.wizard: CalibrationWizard | None = None
        self.video_log: VideoLog | None = None
        self.flow: CalibrationFlow | None = None
        self._cancel = threading.Event()
        self._worker: threading.Thread | None = None
        self._pseudonym = ""
        self._resume = None
        self._last_preview = 0.0
        self._after_calibration = "chat"
        self._scroll_taps = {}
        self._llm_ok: bool | None = None
        self.min_free_mb = SESSION_ROOM_MB
        self.readiness: StudyReadiness = check_study(config, min_free_mb=self.min_free_mb)
        self.consent_text, self.consent_source = self.readiness.consent_text, self.readiness.consent_source
        self.last_failure = ""
        self.last_session_path = ""
        #: a simulated participant drives the app (``--pilot``): its files say so
        self.pilot = False
        #: called in the tracker thread with (frame, sample) of every processed frame (the live
        #: monitor's camera picture); each must return at once
        self.camera_taps: list = []
        self._last_sample = None
        self._paused_at = None  # (stage, page) the session was paused on
        self.recalibrate_next = False  # the researcher asked for a calibration before the next question

        # the window is the screen: pages fit it, never the other way round
        self.layout().setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        self.bridge = GazeBridge(self)
        self.setup_page = SetupPage(face_targets)
        self.consent_page = ConsentPage()
        self.chat_page = ChatPage()
        self.chat_page.set_markdown(config.study.answers == "markdown")
        self.questionnaire_page = QuestionnairePage()
        self.message_page = MessagePage()
        for p in (self.setup_page, self.consent_page, self.chat_page, self.questionnaire_page, self.message_page):
            self.addWidget(p)
        self.bridge.attach(self.setup_page.preview)
        self.consent_page.set_text(self.consent_text, markdown=self.consent_source.endswith(".md"))
        self.questionnaire_page.set_items(list(config.study.questionnaire))
        if participant:
            self.setup_page.code.setText(participant)

        self.setup_page.start_requested.connect(self._start_participant)
        self.setup_page.resume_requested.connect(self._resume_session)
        self.setup_page.close_requested.connect(self._close_interrupted)
        self.setup_page.retry_camera.connect(self._restart_camera)
        self.setup_page.quit_requested.connect(self.close)
        self.consent_page.agreed.connect(self._consent_given)
        self.consent_page.declined.connect(self._consent_declined)
        self.chat_page.send_requested.connect(self._send)
        self.chat_page.stop_requested.connect(self._stop_answer)
        self.chat_page.next_requested.connect(self._next)
        self.questionnaire_page.done.connect(self._questionnaire_done)
        self.message_page.button_clicked.connect(self._message_button)
        self._token.connect(self.chat_page.append, Qt.ConnectionType.QueuedConnection)
        self._generated.connect(self._answers_done, Qt.ConnectionType.QueuedConnection)
        self._camera_status.connect(self._camera_changed, Qt.ConnectionType.QueuedConnection)
        self._writer_failed.connect(self._recording_stopped, Qt.ConnectionType.QueuedConnection)
        self._message_action = None
        QShortcut(QKeySequence("Ctrl+Shift+E"), self, activated=self._end_early)
        QShortcut(QKeySequence("Ctrl+Shift+Q"), self, activated=self._quit_from_setup)

        self.backends = Backends(config, clock=self.clock.now)
        self.setup_page.summary.setText(self._summary())
        self.setup_page.set_study_problems([str(p) for p in self.readiness.problems])
        for p in self.readiness.problems:
            log.error("study %s: %s", config.source or "<defaults>", p)
        self._set_stage("setup", self.setup_page)
        self._refresh_interrupted()
        self._start_camera()
        self.preload_job: JobRunner | None = None
        if preload:
            self.preload_job = JobRunner(Job(self._preload, name="llm-preload"), self)
            self.preload_job.succeeded.connect(self._llm_loaded)
            self.preload_job.failed.connect(self._llm_failed)
            self.preload_job.start()
        else:
            self._llm_loaded([])

    # ==================================================================================
    # helpers
    # ==================================================================================
    def _set_stage(self, stage: str, page) -> None:
        if page is not None:
            self.setCurrentWidget(page)
        if stage != self.stage:
            self.stage = stage
            if self.session is not None:
                self.session.phase("stage", stage=stage)
            self.stage_changed.emit(stage)

    def _summary(self) -> str:
        c = self.config
        llms = ", ".join(f"{m.name} ({m.backend})" for m in c.llm)
        return (f"Study {c.study.name!r}: {c.study.mode}, {c.study.questions} questions. LLM: {llms}. "
                f"Calibration {c.calibration.pattern}. Camera: {self.camera_spec}. "
                f"Data: {study_folder(c)}" + (f"  (settings: {c.source})" if c.source else ""))

    def screen_px(self) -> tuple[int, int]:
        if self.screen_px_override:
            return tuple(int(v) for v in self.screen_px_override)
        s = self.config.screen
        if s.width_px and s.height_px:
            return s.width_px, s.height_px
        scr = self.screen() or QApplication.primaryScreen()
        g = scr.geometry()
        return g.width(), g.height()

    def screen_geometry(self) -> ScreenGeometry:
        w, h = self.screen_px()
        s = self.config.screen
        return ScreenGeometry(w, h, s.width_mm, s.height_mm, s.viewing_distance_mm)

    # ==================================================================================
    # camera and gaze
    # ==================================================================================
    def _start_camera(self) -> None:
        self._stop_camera()
        self.clock = SessionClock()  # one clock per participant: camera, tracker, file, LLM times
        spec = self.camera_spec
        try:
            kw = {} if spec.strip().isdigit() else {"loop": self.loop_video}
            source = open_source(spec, clock=self.clock, **kw)
            source.open()
        except (CameraError, OSError, ValueError) as exc:
            self.setup_page.set_camera(False, f"Camera: {exc}")
            return
        try:
            if self.landmarker is None:
                self.landmarker = FaceLandmarker()
        except LandmarkerError as exc:
            source.close()
            self.setup_page.set_camera(False, f"Face model: {exc}")
            return
        self.source = source
        self.pipeline = GazePipeline(self.landmarker, extractor=FeatureExtractor())
        self.tracker = GazeTracker(source, self.pipeline, self.clock, on_sample=self._sample_from_tracker,
                                   on_status=lambda s, m: self._camera_status.emit(s, m),
                                   on_frame=self._frame_from_tracker)
        self.tracker.start()
        self.setup_page.set_camera(True, f"Camera: {spec} ({getattr(source, 'description', '') or 'open'})")

    def _stop_camera(self) -> None:
        if self.tracker is not None:
            self.tracker.stop()
            self.tracker = None
        if self.source is not None:
            try:
                self.source.close()
            except Exception:
                log.exception("closing the camera")
            self.source = None

    @Slot()
    def _restart_camera(self) -> None:
        self.setup_page.set_camera(True, "Camera: starting...")
        self._start_camera()

    def _sample_from_tracker(self, sample) -> None:  # tracker thread
        self._last_sample = sample
        self.bridge.post_sample(sample)

    def _frame_from_tracker(self, frame) -> None:  # tracker thread
        for tap in self.camera_taps:
            tap(frame, self._last_sample)
        vl = self.video_log
        if vl is not None:
            vl.put(frame)
        if self.stage not in ("setup", "calibration"):
            return
        t = frame.t
        if t - self._last_preview >= 1.0 / PREVIEW_HZ or t < self._last_preview:
            self._last_preview = t
            self.bridge.post_frame(frame.image)

    @Slot(str, str)
    def _camera_changed(self, status: str, message: str) -> None:
        ok = status == "ok"
        text = "Camera: frames arrive" if ok else f"Camera {status}: {message}"
        if self.stage == "setup":
            self.setup_page.set_camera(ok, text)
        elif not ok:
            log.warning("camera %s during %s: %s", status, self.stage, message)

    # ==================================================================================
    # LLM
    # ==================================================================================
    def _preload(self, ctx) -> list[str]:  # worker thread (a job): what is wrong with the LLM(s)
        ctx.progress(None, "checking the language model")
        problems = self.backends.check()
        if not problems:
            ctx.progress(None, "loading the language model")
            self.backends.warm_up()
            problems = self.backends.check()
        return problems

    @Slot(str)
    def _llm_failed(self, message: str) -> None:
        log.error("loading the language model failed: %s\n%s", message, self.preload_job.job.traceback)
        self._llm_loaded([message])

    @Slot(object)
    def _llm_loaded(self, problems) -> None:
        self._llm_ok = not problems
        if problems:
            self.setup_page.set_llm(False, "Language model: " + "; ".join(problems))
        else:
            names = ", ".join(sorted({b.name for b in self.backends.backends}))
            self.setup_page.set_llm(True, f"Language model ready: {names}")

    # ==================================================================================
    # setup: interrupted sessions
    # ==================================================================================
    def _refresh_interrupted(self) -> None:
        folder = study_folder(self.config)
        items = []
        found = []
        try:
            if folder.is_dir():
                found = find_interrupted(folder, depth=1)
        except OSError as exc:
            self.setup_page.folder_status.setText(f"Cannot read {folder}: {exc.strerror or exc}")
        for it in found:
            items.append((it.path, it.summary, it.readable and not it.in_use))
        self.setup_page.set_interrupted(items)
        if not self.setup_page.folder_status.text():
            bad = any(p.key == "study.data_folder" for p in self.readiness.problems)
            self.setup_page.folder_status.setText(f"Sessions cannot be saved in {folder} (see above)" if bad
                                                  else f"Sessions are saved in {folder}")

    @Slot(str)
    def _close_interrupted(self, path: str) -> None:
        try:
            report = close_interrupted(path)
            self.setup_page.folder_status.setText(report.summary)
        except (RecoveryError, OSError) as exc:
            self.setup_page.folder_status.setText(f"Could not close {os.path.basename(path)}: {exc}")
        self._refresh_interrupted()

    @Slot(str)
    def _resume_session(self, path: str) -> None:
        """Go on with an interrupted session in a new part file (the participant has
        consented already; the camera position changed, so calibrate again)."""
        try:
            close_interrupted(path)
            info = resume_info(path)
        except (RecoveryError, OSError) as exc:
            self.setup_page.folder_status.setText(f"Cannot resume {os.path.basename(path)}: {exc}")
            self._refresh_interrupted()
            return
        if info.next_turn >= self.config.study.questions:
            self.setup_page.folder_status.setText(
                f"{os.path.basename(path)} had all {info.next_turn} questions; it was closed.")
            self._refresh_interrupted()
            return
        self._resume = info
        self._pseudonym = info.participant
        self._open_session(continued_from=path)

    # ==================================================================================
    # participant: code and consent
    # ==================================================================================
    @Slot(str)
    def _start_participant(self, code: str) -> None:
        if self.tracker is None:
            self.setup_page.set_code_error("The camera is not running: check it, then press Retry camera.")
            return
        # checked again now: a disk fills, a folder or file goes away between participants
        self.readiness = check_study(self.config, min_free_mb=self.min_free_mb)
        self.setup_page.set_study_problems([str(p) for p in self.readiness.problems])
        if not self.readiness.ok:
            self.setup_page.set_code_error("Fix the study's settings above, then start again.")
            return
        self.consent_text, self.consent_source = self.readiness.consent_text, self.readiness.consent_source
        self.consent_page.set_text(self.consent_text, markdown=self.consent_source.endswith(".md"))
        try:
            code = normalise_code(code)
            key = pseudonym_key(self.config.data_folder)
            self._pseudonym = pseudonym(code, key)
        except (ParticipantCodeError, OSError) as exc:
            self.setup_page.set_code_error(str(exc))
            return
        self.setup_page.set_code_error("")
        self.setup_page.code.clear()  # the code itself is kept nowhere
        self._resume = None
        self._set_stage("consent", self.consent_page)

    @Slot()
    def _consent_declined(self) -> None:
        self._pseudonym = ""
        self._show_message("Thank you.", "You chose not to take part. Nothing was recorded.", "Back",
                           self._back_to_setup, stage="declined")

    @Slot()
    def _consent_given(self) -> None:
        if self.stage != "consent" or self.session is not None:
            return  # a second click while the session opens
        self._open_session()

    @participant_step
    def _open_session(self, continued_from: str = "") -> None:
        if self.session is not None:
            return
        info = self._resume
        path = info.next_path if info is not None else session_path(self.config, self._pseudonym)
        try:
            self.session = StudySession(
                self.config, path, self._pseudonym, self.clock, self.screen_px(), self.backends, resume=info,
                on_error=self._writer_failed.emit,
                extra={"camera_spec": self.camera_spec, "window_px": [self.width(), self.height()],
                       **({"pilot": True} if self.pilot else {})})
        except (OSError, ValueError) as exc:
            self._session_failed(f"the session file could not be created: {exc}")
            return
        s = self.session
        self.recalibrate_next, self._paused_at = False, None
        self.session_opened.emit(s)
        s.consent(self.consent_text, self.consent_source, continued_from=continued_from)
        if self.config.study.keep_video:
            video = Path(s.path).with_suffix(".camera.avi")
            try:
                self.video_log = VideoLog(video, fps=self.config.camera.fps)
                s.phase("video", file=video.name, frames_csv=Path(self.video_log.csv_path).name)
            except OSError as exc:
                s.log(LogLevel.ERROR, "video", f"the camera video cannot be kept: {exc}")
        self.tracker.writer = s.writer
        self.recorder = InputRecorder(s.writer, self, fields={"question"}, parent=self)
        self.layout_tracker = LayoutTracker(s.writer, clock=self.clock, parent=self)
        self.recorder.aoi_at = self.layout_tracker.aoi_at
        self._scroll_taps = {}
        for side, panel in self.chat_page.panels.items():
            self.layout_tracker.add_view(panel.view)
            self._scroll_taps[side] = self.recorder.record_scroll(panel.view.response, panel.view.verticalScrollBar())
        self.layout_tracker.add_view(self.chat_page.prompt_view)
        self.recorder.start()
        c = self.config.calibration
        pats = self.readiness.patterns
        self.flow = CalibrationFlow(
            self.screen_geometry(), writer=s.writer, calibration=pats.get("pattern", c.pattern),
            validation=pats.get("validation", c.validation), drift=pats.get("drift", c.drift),
            thresholds=ValidationThresholds(max_mean_deg=c.max_mean_deg, max_point_deg=c.max_point_deg),
            feature_names=self.pipeline.extractor.names, seed=s.seed, drift_small_deg=c.drift_small_deg,
            drift_large_deg=c.drift_large_deg)
        if self.wizard is not None:
            self.bridge.detach(self.wizard)
            self.removeWidget(self.wizard)
            self.wizard.deleteLater()
        self.wizard = CalibrationWizard(self.flow, self.clock, self.bridge, countdown_s=self.countdown_s,
                                        face_targets=self.face_targets)
        self.addWidget(self.wizard)
        self.wizard.completed.connect(self._calibrated)
        self.wizard.drift_done.connect(self._drift_done)
        self.wizard.aborted.connect(self._calibration_aborted)
        self.wizard.stage_changed.connect(self._wizard_stage)
        self._after_calibration = "chat"
        self._set_stage("calibration", self.wizard)
        self.wizard.start()

    # ==================================================================================
    # calibration
    # ==================================================================================
    @Slot(object)
    @participant_step
    def _calibrated(self, result) -> None:
        s = self.session
        if s is None:
            return
        model = self.wizard.model
        self._use_model(model)
        rep = result.report.summary() if result is not None and result.report is not None else {}
        s.phase("calibration_done", passed=bool(result is not None and result.passed), run=getattr(result, "run", -1),
                model=repr(model) if model is not None else None, report=rep)
        if model is None:
            s.log(LogLevel.WARNING, "calibration", "continuing without a calibration: gaze will be invalid")
        self._next_turn()

    @Slot(str)
    @participant_step
    def _wizard_stage(self, stage: str) -> None:
        if self.session is not None:
            self.session.phase("calibration_stage", stage=stage)
        if stage == "validation" and self.wizard is not None:
            self._use_model(self.wizard.model)  # gaze is recorded calibrated from the fit on

    def _use_model(self, model) -> None:
        if self.pipeline is None:
            return
        self.pipeline.smoother = OneEuroFilter() if model is not None else None
        self.pipeline.calibration = model

    @Slot(object)
    @participant_step
    def _drift_done(self, result) -> None:
        if self.session is None:
            return
        self._use_model(self.wizard.model)
        self.session.phase("drift_done", action=getattr(result, "action", None),
                           offset_deg=getattr(result, "offset_deg", None))
        self._next_turn()

    @Slot()
    @participant_step
    def _calibration_aborted(self) -> None:
        self._show_message("Calibration stopped.", "Press the button to calibrate again.", "Calibrate again",
                           self._recalibrate, stage="calibration_stopped")

    @participant_step
    def _recalibrate(self) -> None:
        self._set_stage("calibration", self.wizard)
        self.wizard.start()

    # ==================================================================================
    # turns
    # ==================================================================================
    @participant_step
    def _next_turn(self) -> None:
        s = self.session
        if s.questions_left <= 0:
            self._start_questionnaire()
            return
        if self.recalibrate_next and self.wizard is not None:  # asked for on the live monitor
            self.recalibrate_next = False
            s.phase("recalibration", turn=s.next_index, requested_by="researcher")
            self._set_stage("calibration", self.wizard)
            self.wizard.start()
            return
        idx = s.next_index
        pairwise = s.mode_of(idx) == "pairwise"
        self.chat_page.new_turn(idx + 1, len(s.plan), pairwise=pairwise, last=s.questions_left == 1)
        if self.config.study.instructions:
            self.chat_page.instructions.setText(self.config.study.instructions)
        self.recorder.set_turn(idx)
        self.layout_tracker.set_turn(idx)
        self._set_stage("chat", self.chat_page)
        self.chat_page.question.setFocus()

    @Slot(str)
    @participant_step
    def _send(self, text: str) -> None:
        s = self.session
        if s is None or self.turn is not None:
            return
        turn = s.begin_turn(text)
        self.turn = turn
        for side, response in turn.display_order():
            side_key = "left" if side in ("left", "single") else "right"
            view = self.chat_page.panels[side_key].view
            view.response = response
            self._scroll_taps[side_key].view = response
        if not turn.pairwise:
            self.chat_page.panels["right"].view.response = int(Response.SECOND)
        self.chat_page.start_answering(text)
        self._cancel = threading.Event()
        cancel = self._cancel

        def on_token(side: str, response: int, ev) -> None:  # worker thread
            self._token.emit("left" if side in ("left", "single") else "right", ev.text)

        def work() -> None:
            try:
                s.generate(turn, on_token, cancel)
            finally:
                self._generated.emit(turn)

        self._worker = threading.Thread(target=work, name="llm-turn", daemon=True)
        self._worker.start()

    @Slot()
    def _stop_answer(self) -> None:
        self._cancel.set()
        if self.session is not None and self.turn is not None:
            self.session.phase("stop_pressed", turn=self.turn.index)

    @Slot(object)
    @participant_step
    def _answers_done(self, turn: Turn) -> None:
        if turn is not self.turn:
            return
        self.chat_page.finish_answers()
        for side, response in turn.display_order():
            res = turn.results.get(response)
            side_key = "left" if side in ("left", "single") else "right"
            if res is None:
                self.chat_page.show_error(side_key, "No answer.")
            elif not res.ok:
                if res.finish_reason == "cancelled":
                    self.chat_page.show_error(side_key, "Stopped.")
                else:  # the precise reason is in the log and the turn's settings, for the researcher
                    self.chat_page.show_error(side_key, "Sorry, this answer could not be written.")
        self.layout_tracker.snapshot("answers complete")
        can_rate = bool(turn.results) and all(r.text.strip() for r in turn.results.values()) and (
            len(turn.results) == (2 if turn.pairwise else 1))
        msg = "" if can_rate else "Sorry, there is no answer to rate this time. Please go on."
        self.chat_page.start_rating(can_rate, msg)

    @Slot()
    @participant_step
    def _next(self) -> None:
        s, turn = self.session, self.turn
        if s is None or turn is None:
            return
        t_rated = self.clock.now()
        ratings = self.chat_page.ratings()
        likert = {turn.response_on(side if turn.pairwise else "single"): v for side, v in ratings.items()}
        pref = self.chat_page.preference()
        preference = -1
        if turn.pairwise and pref is not None:
            preference = 0 if pref == "tie" else turn.response_on(pref)
        s.finish_turn(turn, likert=likert, preference=preference, t_rated=t_rated)
        self.turn = None
        every = self.config.calibration.drift_check_every
        if (s.questions_left > 0 and every > 0 and s.turns_done % every == 0 and not self.recalibrate_next
                and self.wizard is not None and self.wizard.model is not None):
            self._set_stage("drift", self.wizard)
            self.wizard.start_drift_check()
            return
        self._next_turn()

    # ==================================================================================
    # end
    # ==================================================================================
    def _start_questionnaire(self) -> None:
        if not self.config.study.questionnaire:
            self._finish_session()
            return
        self.questionnaire_page.set_items(list(self.config.study.questionnaire))
        self._set_stage("questionnaire", self.questionnaire_page)

    @Slot(list)
    @participant_step
    def _questionnaire_done(self, answers: list) -> None:
        s = self.session
        for i, (q, a) in enumerate(zip(self.config.study.questionnaire, answers)):
            s.questionnaire(i, q, int(a))
        self._finish_session()

    def _finish_session(self, complete: bool = True, reason: str = "finished") -> None:
        self._close_session(complete, reason)
        self._show_message("Thank you!", "You have finished. Please let the researcher know.",
                           "Next participant", self._back_to_setup, stage="done")

    def _close_session(self, complete: bool = True, reason: str = "") -> dict:
        """Stop everything that writes into the session, then close its file. The file is
        closed whatever fails on the way (each failure is logged)."""
        s = self.session
        if s is None:
            return {}
        self.session = None  # once: a fault below must not close it twice
        self.turn = None
        self._cancel.set()
        steps = [
            ("answer worker", lambda: self._worker is not None and self._worker.join(timeout=30)),
            ("calibration", lambda: self.wizard is not None and self.wizard.stop()),
            ("input recorder", lambda: self.recorder is not None and self.recorder.stop()),
            ("layout tracker", lambda: self.layout_tracker is not None and self.layout_tracker.clear_views()),
            ("gaze tracker", lambda: self.tracker is not None and setattr(self.tracker, "writer", None)),
            ("camera video", lambda: self._close_video(s)),
        ]
        for what, step in steps:
            try:
                step()
            except Exception as exc:
                log.exception("stopping the %s", what)
                try:
                    s.log(LogLevel.ERROR, "app", f"stopping the {what} failed: {exc}")
                except Exception:
                    pass
        stats = s.close(complete=complete, reason=reason)
        self.last_session_path = s.path
        self.last_session_stats = stats
        return stats

    def _close_video(self, s: StudySession) -> None:
        if self.video_log is not None:
            vl, self.video_log = self.video_log, None
            s.phase("video_closed", **vl.close())

    def _session_failed(self, reason: str) -> None:
        """A fault the session cannot go on from: close the file (everything so far is
        kept, the reason in its log), tell the participant calmly to call the researcher
        and show the researcher why."""
        s = self.session
        path = ""
        if s is not None:
            path = s.path
            try:
                s.log(LogLevel.ERROR, "app", f"the session could not go on: {reason}")
            except Exception:
                pass
            try:
                self._close_session(False, f"could not go on: {reason}")
            except Exception:
                log.exception("closing the session after a fault")
        where = f" The session file {os.path.basename(path)} is kept and closed." if path else ""
        self.last_failure = f"The last session stopped: {reason}.{where}"
        self._show_message("Please call the researcher.",
                           "The session cannot go on. This is not your fault: the researcher will take it "
                           "from here.", "Back to setup", self._back_to_setup, stage="error",
                           detail=reason + (f" ({path})" if path else ""))

    @Slot()
    def _end_early(self) -> None:
        if self.session is None:
            return
        answer = QMessageBox.question(self, "End the session?",
                                      "End this session now? Everything so far is kept.")
        if answer == QMessageBox.StandardButton.Yes:
            self.end_session_early()

    # ==================================================================================
    # the researcher's controls (the live monitor: ifllm_lab/ui/monitor.py)
    # ==================================================================================
    def end_session_early(self, reason: str = "ended early by the researcher") -> bool:
        """End the session now, as Ctrl+Shift+E does once confirmed; False when none runs."""
        if self.session is None:
            return False
        self._paused_at = None
        self._finish_session(True, reason)
        return True

    def request_recalibration(self) -> bool:
        """Calibrate again before the next question: a ``recalibration_requested`` phase now,
        a ``recalibration`` phase and the calibration when the next turn would start."""
        if self.session is None or self.recalibrate_next:
            return False
        self.recalibrate_next = True
        self.session.phase("recalibration_requested", turn=self.session.next_index)
        return True

    @property
    def can_pause(self) -> bool:
        """A session pauses while the participant asks, reads, rates or fills in the
        questionnaire (never in the middle of a calibration)."""
        return self.session is not None and self._paused_at is None and self.stage in ("chat", "questionnaire")

    def pause_session(self) -> bool:
        """Cover the participant's page with a calm "paused" message (a ``pause`` phase);
        recording goes on (an answer being written goes on too)."""
        if not self.can_pause:
            return False
        self._paused_at = (self.stage, self.currentWidget())
        self.session.phase("pause", stage=self.stage)
        self._message_action = None
        self.message_page.show_message("A short break", "The researcher has paused the session. Please wait.")
        self._set_stage("paused", self.message_page)
        return True

    def resume_session(self) -> bool:
        """Back to the page the pause covered (a ``resume`` phase)."""
        if self.session is None or self._paused_at is None or self.stage != "paused":
            return False
        stage, page = self._paused_at
        self._paused_at = None
        self.session.phase("resume", stage=stage)
        self._set_stage(stage, page)
        return True

    @Slot()
    def _quit_from_setup(self) -> None:
        if self.stage in ("setup", "done", "declined"):
            self.close()

    @Slot(str)
    def _recording_stopped(self, message: str) -> None:
        log.error("recording stopped: %s", message)
        self._show_message("Please call the researcher.", f"Recording stopped: {message}", "End session",
                           lambda: self._finish_session(False, f"recording stopped: {message}"), stage="error")

    def _show_message(self, title: str, body: str, button: str, action, *, stage: str, detail: str = "") -> None:
        self.message_page.show_message(title, body, button, detail)
        self._message_action = action
        self._set_stage(stage, self.message_page)

    @Slot()
    def _message_button(self) -> None:
        action, self._message_action = self._message_action, None
        if action is not None:
            action()

    def _back_to_setup(self) -> None:
        self._pseudonym = ""
        self._resume = None
        self._refresh_interrupted()
        if self.last_failure:
            self.setup_page.folder_status.setText(self.last_failure)
            self.last_failure = ""
        self._set_stage("setup", self.setup_page)
        self._start_camera()  # a new clock for the next participant

    # ==================================================================================
    def shutdown(self) -> None:
        """Close the session (if any) cleanly, stop the camera and free the models."""
        if self.session is not None:
            self._close_session(True, "app closed")
        self._stop_camera()
        if self.landmarker is not None:
            self.landmarker.close()
            self.landmarker = None
        self.backends.close()

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)


def run_app(config: StudyConfig, *, camera: str | None = None, participant: str | None = None,
            windowed: bool = False, size: tuple[int, int] | None = None, check_s: float = 0.0,
            screenshot: str | None = None, argv: list[str] | None = None, screen_index: int | None = None,
            pilot: bool = False, pilot_timeout_s: float = 900.0, monitor: bool = False,
            monitor_screen: int | None = None) -> int:
    """Start the study window (full screen unless ``windowed``) and run Qt's event loop.

    With ``check_s`` > 0 the app checks itself instead of waiting for people: the study's
    settings (:func:`~ifllm_lab.study.readiness.check_study`), then it waits up to
    ``check_s`` seconds for camera frames with a face and a loaded LLM, saves
    ``screenshot`` (if given), prints one JSON line and exits (0: all good, 1: not).
    With ``pilot`` a simulated participant (:mod:`~ifllm_lab.ui.pilot`) runs one whole
    session; its report is printed as one JSON line when it ends (0: the session was
    completed, 1: not, with the reason).
    ``screen_index``: the screen to use (Qt's order; default the primary one; an index
    past the last screen is the last one). ``monitor``: the live monitor (:mod:`~ifllm_lab.ui.monitor`)
    beside the study, on screen ``monitor_screen`` (default: another screen than the study's
    when there is one, else a window on the same screen)."""
    import json
    import time

    app = application(argv)
    w = StudyApp(config, camera=camera, participant=participant)
    screens = app.screens()
    screen = screens[min(screen_index, len(screens) - 1)] if screens and screen_index is not None \
        else app.primaryScreen()
    if size:
        w.resize(*size)
    if screen is not None:
        w.move(screen.geometry().topLeft())
    if windowed or size:
        w.show()
    else:
        # the screen's size first: without a window manager (a kiosk X session, Xvfb)
        # "full screen" alone leaves the window at its default size
        if screen is not None:
            w.setGeometry(screen.geometry())
        w.showFullScreen()
    monitor_window = None
    if monitor:
        from .monitor import open_monitor

        others = [s for s in screens if s is not screen]
        where = screens[min(monitor_screen, len(screens) - 1)] if screens and monitor_screen is not None \
            else (others[0] if others else None)
        monitor_window = open_monitor(w, screen=where)  # noqa: F841 (kept open while the study runs)
    if pilot:
        from .pilot import PilotParticipant

        result: dict = {}
        driver = PilotParticipant(w, timeout_s=pilot_timeout_s)
        # a loop of its own, not the application's: quitting that would stop every later
        # event loop of a process that goes on (an embedding program, a test run)
        loop = QEventLoop()

        def ended(report: dict) -> None:
            result.update(report)
            if screenshot:
                result["screenshot"] = screenshot if w.grab().save(screenshot) else None
            loop.quit()

        driver.finished.connect(ended)
        w.destroyed.connect(loop.quit)
        quit_on_close = app.quitOnLastWindowClosed()
        app.setQuitOnLastWindowClosed(False)
        try:
            driver.start()
            loop.exec()
        finally:
            driver.timer.stop()
            w.close()
            app.setQuitOnLastWindowClosed(quit_on_close)
        if not result:  # the window was closed by hand before the pilot ended
            result = {"ok": False, "problem": "the window was closed before the pilot ended"}
        print(json.dumps(result))
        if not result["ok"]:
            report_problem(f"the pilot session did not complete: {result['problem']}")
        return 0 if result["ok"] else 1
    if check_s <= 0:
        return app.exec()
    faces = {"n": 0}
    w.bridge.sample_posted.connect(lambda s: faces.__setitem__("n", faces["n"] + (s.features is not None)))
    t0 = time.monotonic()

    def done() -> bool:
        return faces["n"] >= 5 and w._llm_ok is not None

    while time.monotonic() - t0 < check_s and not done():
        app.processEvents()
        time.sleep(0.02)
    for _ in range(20):  # let the last frame reach the preview
        app.processEvents()
        time.sleep(0.01)
    report = {
        "window": [w.width(), w.height()],
        "platform": QApplication.platformName(),
        "camera": w.setup_page.camera_status.text(),
        "camera_ok": w.tracker is not None,
        "faces_seen": faces["n"],
        "llm": w.setup_page.llm_status.text(),
        "llm_ok": bool(w._llm_ok),
        "seconds": round(time.monotonic() - t0, 2),
        "study_ok": w.readiness.ok,
        "study_problems": [str(p) for p in w.readiness.problems],
    }
    if screenshot:
        report["screenshot"] = screenshot if w.grab().save(screenshot) else None
    ok = report["study_ok"] and report["camera_ok"] and report["faces_seen"] >= 5 and report["llm_ok"]
    report["ok"] = bool(ok)
    print(json.dumps(report))
    for problem in report["study_problems"]:
        report_problem(f"the study cannot run: {problem}")
    w.close()
    return 0 if ok else 1
