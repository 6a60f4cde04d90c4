"""The calibration wizard (Qt, offscreen) end to end, with a rendered real face.

A real face photo is rendered looking wherever the wizard's current run shows a target
(the eyes follow each new target after a 0.15 s saccade latency, the head jitters a
little), every frame goes through the real MediaPipe landmarker and feature extractor,
and the sample reaches the wizard through a GazeBridge. The session clock is a clock the
test moves itself, one camera frame (1/30 s) at a time, so the runs see the same times
on every machine. Everything is recorded by a real SessionWriter.

Screenshots go to ``$IFLLM_SCREENSHOTS`` when set, else the test's tmp folder.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from ifllm_lab.gaze.calibration import load_pattern  # noqa: E402
from ifllm_lab.gaze.geometry import ScreenGeometry  # noqa: E402
from ifllm_lab.gaze.landmarks import FaceLandmarker  # noqa: E402
from ifllm_lab.gaze.procedure import CalibrationFlow, CalibrationResult  # noqa: E402
from ifllm_lab.gaze.tracker import FeatureExtractor, GazePipeline  # noqa: E402
from ifllm_lab.session import SessionMeta, SessionReader, SessionWriter  # noqa: E402
from ifllm_lab.synthetic.face import FaceRenderer, GazeScene  # noqa: E402
from ifllm_lab.ui.calibration_screens import FacePositionTargets, GazeBridge  # noqa: E402
from ifllm_lab.ui.calibration_wizard import RETRY_MESSAGE, CalibrationWizard  # noqa: E402


from tests.support.screenshots import H, W, save, shots_folder  # noqa: E402
SCREEN = ScreenGeometry(1920, 1080, 527.0, 297.0, 600.0)  # 24" at 60 cm
FPS = 30.0
SACCADE_S = 0.15
RUN_STAGES = ("calibration", "validation", "drift")
# The rendered photo is a close-up (~20 cm from the camera by its landmarks): let the
# face guide accept it so the participant's own Space key can be used.
CLOSE_FACE_OK = FacePositionTargets(min_distance_mm=150.0)


class ManualClock:
    """The session clock, moved by the test (``now()`` and ``unix_start`` like SessionClock)."""

    def __init__(self, t: float = 0.0):
        self.t = float(t)
        self.unix_start = time.time()

    def now(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def renderer():
    return FaceRenderer()


@pytest.fixture()
def shots(tmp_path) -> Path:
    return shots_folder(tmp_path)


class Participant:
    """A face in front of the camera, tracked for real, looking where the wizard shows targets.

    Each :meth:`step` is one camera frame: the eyes go to the target the current run showed
    ``SACCADE_S`` earlier (plus ``offset`` px, to fake drift), the face is rendered (or a
    blank grey picture when ``face_visible(t)`` is False), the real pipeline makes the
    sample, the bridge delivers it; then the clock moves on one frame and Qt runs.
    While no target is on screen (countdown, messages, researcher pages) only every third
    frame is processed, to keep the test fast.
    """

    def __init__(self, wizard: CalibrationWizard, clock: ManualClock, bridge: GazeBridge,
                 renderer: FaceRenderer, seed: int = 0):
        self.wizard, self.clock, self.bridge, self.renderer = wizard, clock, bridge, renderer
        self.scene = GazeScene(SCREEN.width_px, SCREEN.height_px)
        self.landmarker = FaceLandmarker()
        self.extractor = FeatureExtractor()
        self.pipeline = GazePipeline(self.landmarker, extractor=self.extractor)
        self.rng = np.random.default_rng(seed)
        self.gaze = tuple(SCREEN.centre_px)
        self.offset = (0.0, 0.0)
        self.face_visible = lambda t: True
        self.grey = np.full((renderer.size[1], renderer.size[0], 3), 128, np.uint8)
        self.n = 0  # frames so far (the clock is n / FPS)
        self.processed = 0

    def close(self) -> None:
        self.landmarker.close()

    def _target_on(self, t: float) -> bool:
        run = self.wizard.current_run
        return self.wizard.stage in RUN_STAGES and run is not None and run.state_at(t).stage == "target"

    def frame(self) -> None:
        t = self.clock.now()
        run = self.wizard.current_run
        if self.wizard.stage in RUN_STAGES and run is not None:
            st = run.state_at(t - SACCADE_S)
            if st.stage == "target":
                self.gaze = (st.x, st.y)
            elif st.stage == "countdown":  # reading the countdown in the middle of the screen
                self.gaze = tuple(SCREEN.centre_px)
        if self.face_visible(t):
            x, y = self.gaze[0] + self.offset[0], self.gaze[1] + self.offset[1]
            img = self.renderer.render(*self.scene.shift_for(x, y), head_dx=self.rng.normal(0, 1.5),
                                       head_dy=self.rng.normal(0, 1.5), head_rot_deg=self.rng.normal(0, 0.5))
        else:
            img = self.grey
        sample = self.pipeline.process(img, t, self.n)
        self.bridge.post_sample(sample)  # same thread here: delivered at once
        if self.wizard.stage == "face":
            self.bridge.post_frame(img)
        self.processed += 1

    def step(self) -> None:
        if self._target_on(self.clock.now()) or self.n % 3 == 0:
            self.frame()
        self.n += 1
        self.clock.t = self.n / FPS
        self.wizard.tick()
        QApplication.processEvents()

    def until(self, cond, max_s: float, what: str = "") -> None:
        end = self.clock.t + max_s
        while not cond():
            assert self.clock.t < end, f"{what or cond} not reached in {max_s} s (stage {self.wizard.stage})"
            self.step()


def make_wizard(qtbot, flow, clock, **kw):
    bridge = GazeBridge()
    wizard = CalibrationWizard(flow, clock, bridge, **kw)
    qtbot.addWidget(wizard)
    wizard.resize(W, H)
    wizard.show()
    qtbot.waitExposed(wizard)
    return wizard, bridge


def read_session(path):
    with SessionReader(path) as r:
        return (r["calibration/points"].read(), r["calibration/models"].read(),
                r["calibration/samples"].read(), list(r["log"].column("message")))


# ======================================================================================

def test_face_guide_calibration_validation_report_and_drift_checks(qtbot, tmp_path, renderer, shots):
    clock = ManualClock()
    extractor_names = FeatureExtractor().names
    writer = SessionWriter(tmp_path / "session.h5", SessionMeta(participant="wizard"), clock=clock)
    flow = CalibrationFlow(SCREEN, writer=writer, feature_names=extractor_names, seed=3)
    wizard, bridge = make_wizard(qtbot, flow, clock, face_targets=CLOSE_FACE_OK)  # 3 s countdowns
    who = Participant(wizard, clock, bridge, renderer)
    stages = []
    wizard.stage_changed.connect(stages.append)
    t_wall = time.perf_counter()
    try:
        # -- face guide: the participant continues with Space once the position is good
        wizard.start()
        assert wizard.stage == "face" and wizard.currentWidget() is wizard.face_page
        who.until(lambda: wizard.face_guide.status.good, 2.0, "a good face position")
        assert wizard.face_page.continue_button.isEnabled()
        assert wizard.face_guide._image is not None  # the camera picture arrived through the bridge
        save(wizard, shots, "wizard-face-guide")
        qtbot.keyClick(wizard.face_guide, Qt.Key.Key_Space)
        assert wizard.stage == "calibration" and wizard.currentWidget() is wizard.target_screen
        cal = wizard.current_run
        assert cal.run == 1 and cal.countdown_s == 3.0 and cal.start_t == pytest.approx(clock.now())
        who.until(lambda: clock.now() > cal.start_t + 1.2, 2.0)
        assert wizard.target_screen.state.stage == "countdown"
        save(wizard, shots, "wizard-calibration-countdown")

        # -- calibration: a target mid-run
        who.until(lambda: (wizard.target_screen.state.stage == "target" and wizard.target_screen.state.number == 4
                           and wizard.target_screen.state.progress > 0.4), 12.0, "target 4 of 9")
        save(wizard, shots, "wizard-calibration-target")
        who.until(lambda: wizard.stage == "validation", 15.0, "the validation")
        assert flow.model is not None and wizard.fit_failures == 0
        val = wizard.current_run
        assert val.phase == 1 and val.run == 1 and val.countdown_s == 3.0
        # every sample captured during a target was filed (the run was open until end + grace)
        assert cal.collector.counts.seen >= int(cal.pattern.total_duration_s * FPS) - 2

        # -- validation -> the researcher's report
        who.until(lambda: wizard.stage == "report", 20.0, "the report")
        result = wizard.result
        rep = result.report
        s = rep.summary()
        print(f"\nvalidation: accuracy {s['mean_accuracy_deg']:.3f} deg, precision {s['mean_precision_deg']:.3f} deg, "
              f"worst {s['worst_accuracy_deg']:.3f} deg, model {flow.model!r}, "
              f"{who.processed} frames in {time.perf_counter() - t_wall:.1f} s")
        assert result.passed, result.message
        assert rep.mean_accuracy_deg < 1.0
        assert len(rep.points) == 9 and all(p.n_samples >= 20 for p in rep.points)
        assert wizard.currentWidget() is wizard.report_view and wizard.report_view.verdict == "PASS"
        assert wizard.report_view.title_label.text() == "Validation (run 1)"
        save(wizard, shots, "wizard-report")
        with qtbot.waitSignal(wizard.completed, timeout=1000) as done:
            qtbot.mouseClick(wizard.report_view.continue_button, Qt.MouseButton.LeftButton)
        assert done.args[0] is result and isinstance(result, CalibrationResult)
        assert wizard.stage == "done"
        assert stages == ["face", "calibration", "validation", "report", "done"]

        # -- drift check with the participant looking 3 deg to the right: recalibrate
        model_before = flow.model
        who.offset = (float(SCREEN.deg_to_px(3.0)), 0.0)
        wizard.start_drift_check()
        assert wizard.stage == "drift" and wizard.current_run.phase == 2
        who.until(lambda: wizard.stage == "drift_result", 3.0, "the drift result")
        big = wizard.drift_result
        print(f"drift 3 deg: offset {big.offset_deg:.2f} deg -> {big.action}")
        assert big.action == "recalibrate" and 2.4 < big.offset_deg < 3.6
        assert flow.model is model_before  # not corrected
        assert wizard.drift_view.outcome == "recalibrate" and wizard.drift_view.recalibrate_button.isDefault()
        save(wizard, shots, "wizard-drift-recalibrate")

        # -- "Check again", now 1.3 deg off: corrected
        who.offset = (float(SCREEN.deg_to_px(1.3)), 0.0)
        qtbot.mouseClick(wizard.drift_view.retry_button, Qt.MouseButton.LeftButton)
        assert wizard.stage == "drift"
        who.until(lambda: wizard.stage == "drift_result", 3.0, "the second drift result")
        small = wizard.drift_result
        print(f"drift 1.3 deg: offset {small.offset_deg:.2f} deg -> {small.action}")
        assert small.action == "correct" and 1.0 < small.offset_deg < 1.7
        assert flow.model is not model_before and wizard.model is flow.model
        save(wizard, shots, "wizard-drift-correct")
        with qtbot.waitSignal(wizard.drift_done, timeout=1000) as done:
            qtbot.mouseClick(wizard.drift_view.continue_button, Qt.MouseButton.LeftButton)
        assert done.args[0] is small and wizard.stage == "done"
    finally:
        who.close()
        writer.close()

    points, models, samples, log = read_session(tmp_path / "session.h5")
    assert len(points) == 9 and (points["phase"] == 1).all() and (points["run"] == 1).all()
    assert np.allclose(np.nanmean(points["accuracy_deg"]), rep.mean_accuracy_deg)
    assert len(models) == 1
    assert set(samples["phase"]) == {0, 1, 2} and samples["used"].sum() > 400
    text = "\n".join(log)
    assert "calibration run 1:" in text and "validation run 1: accuracy" in text
    assert "calibration run 1 accepted by the researcher (passed)" in text
    assert "-> recalibrate" in text and "-> correct" in text


def test_failed_calibrations_retry_then_researcher_then_recalibrate(qtbot, tmp_path, renderer, shots):
    """Face hidden: "Let's try that again" twice, then the researcher's message; Recalibrate
    with the face back (found only 0.25 s into the first target) works; the run number
    goes up on every attempt; Escape aborts."""
    clock = ManualClock()
    writer = SessionWriter(tmp_path / "session.h5", SessionMeta(participant="retry"), clock=clock)
    v9 = load_pattern("validation-9")
    validation5 = dataclasses.replace(v9, name="validation-5", points=v9.points[[0, 2, 4, 6, 8]])
    # no feature_names: the runs learn the vector length from the first face they see
    flow = CalibrationFlow(SCREEN, writer=writer, calibration="5-point", validation=validation5, seed=1)
    wizard, bridge = make_wizard(qtbot, flow, clock, countdown_s=1.0, retry_pause_s=1.0)
    who = Participant(wizard, clock, bridge, renderer, seed=1)
    who.face_visible = lambda t: False
    try:
        wizard.start()
        who.until(lambda: wizard.face_guide.status.code == "no_face", 1.0)
        assert not wizard.face_page.continue_button.isEnabled()
        qtbot.keyClick(wizard.face_guide, Qt.Key.Key_Space)
        assert wizard.stage == "face"  # the participant cannot go on without a face
        qtbot.keyClick(wizard.face_guide, Qt.Key.Key_F12)  # the researcher can
        assert wizard.stage == "calibration" and flow.run_number == 1

        for attempt in (1, 2):
            who.until(lambda: wizard.stage == "retry", 12.0, f"retry {attempt}")
            assert wizard.fit_failures == attempt and flow.model is None
            assert wizard.target_screen.message == RETRY_MESSAGE
            if attempt == 1:
                save(wizard, shots, "wizard-retry-message")
            who.until(lambda: wizard.stage == "calibration", 2.0, "the next attempt")
            assert wizard.current_run.run == attempt + 1
        who.until(lambda: wizard.stage == "failed", 12.0, "the researcher's message")
        assert wizard.fit_failures == 3 and flow.run_number == 3
        assert wizard.currentWidget() is wizard.report_view
        assert "3 times in a row" in wizard.report_view.summary_label.text()
        assert "without a gaze calibration" in wizard.report_view.note_label.text()
        assert wizard.report_view.recalibrate_button.isDefault()
        save(wizard, shots, "wizard-failed")

        # -- the face is back (from 0.25 s into the first target): run 4 calibrates
        qtbot.mouseClick(wizard.report_view.recalibrate_button, Qt.MouseButton.LeftButton)
        run4 = wizard.current_run
        assert wizard.stage == "calibration" and run4.run == 4 and wizard.fit_failures == 0
        who.face_visible = lambda t: not (run4.first_onset <= t < run4.first_onset + 0.25)
        who.until(lambda: wizard.stage == "validation", 12.0, "the validation")
        # the frames without a face (before the vector length was known) were filed too
        assert run4.collector.counts.seen >= int(run4.pattern.total_duration_s * FPS) - 2
        assert len(run4.collector.groups) == 5
        who.until(lambda: wizard.stage == "report", 12.0, "the report")
        result = wizard.result
        print(f"\nrun 4 (5-point): {result.message}")
        assert result.run == 4 and result.report is not None and len(result.report.points) == 5
        assert result.report.mean_accuracy_deg < 1.5

        # -- Recalibrate from the report: run 5; then Escape aborts
        qtbot.mouseClick(wizard.report_view.recalibrate_button, Qt.MouseButton.LeftButton)
        assert wizard.stage == "calibration" and wizard.current_run.run == 5 and flow.run_number == 5
        who.until(lambda: wizard.target_screen.state.stage == "target", 2.0)
        with qtbot.waitSignal(wizard.aborted, timeout=1000):
            qtbot.keyClick(wizard.target_screen, Qt.Key.Key_Escape)
        assert wizard.stage == "aborted" and not wizard.run_open and not wizard.target_screen.running
    finally:
        who.close()
        writer.close()
    points, models, samples, log = read_session(tmp_path / "session.h5")
    assert len(models) == 1 and len(points) == 5 and (points["run"] == 4).all()
    assert set(samples["run"]) == {1, 2, 3, 4}
    assert not samples["used"][samples["run"] < 4].any()
    text = "\n".join(log)
    assert "researcher continued (F12)" in text
    assert sum(m.startswith("calibration run") and "only 0 of 5 targets" in m for m in log) == 3
    assert "could not be used 3 times in a row" in text
    assert "recalibration requested by the researcher (after failed)" in text
    assert "recalibration requested by the researcher (after report)" in text
    assert "aborted (Escape) during calibration" in text


def test_samples_from_the_tracker_thread_are_filed_in_the_gui_thread(qtbot, renderer):
    clock = ManualClock()
    flow = CalibrationFlow(SCREEN, calibration="5-point")
    wizard, bridge = make_wizard(qtbot, flow, clock, countdown_s=0.5)
    with FaceLandmarker() as lm:
        real = GazePipeline(lm, extractor=FeatureExtractor()).process(renderer.render(), 0.0, 0)
    assert real.vector is not None
    img = renderer.render()

    wizard.start()
    th = threading.Thread(target=lambda: bridge.post_frame(img))
    th.start()
    th.join()
    qtbot.waitUntil(lambda: wizard.face_guide._image is not None, timeout=1000)

    wizard.start_calibration()
    run = wizard.current_run
    clock.t = run.first_onset + 0.5  # target 1 is on, past its settle time
    wizard.tick()
    gui_thread = threading.current_thread()
    seen_in = []
    wizard.stage_changed.connect(lambda s: seen_in.append(threading.current_thread()))

    def produce():
        for i in range(10):
            s = dataclasses.replace(real, t=clock.t + i / FPS, frame=i + 1)
            if i % 2:
                bridge.post_sample(s)  # the usual way: a GazeBridge
            else:
                wizard.update_sample(s)  # called directly from the wrong thread: re-posted

    th = threading.Thread(target=produce)
    th.start()
    th.join()
    assert run.collector.counts.seen == 0  # nothing touched from the tracker thread
    qtbot.waitUntil(lambda: run.collector.counts.seen == 10, timeout=1000)
    assert run.collector.counts.kept == 10

    # after the run is closed, late samples are not filed
    clock.t = run.end_t + 1.0
    wizard.tick()  # finished: closes at end + grace
    wizard.tick()
    assert not wizard.run_open and wizard.stage == "retry"  # one target with samples: too few
    wizard.post_sample(dataclasses.replace(real, t=run.first_onset + 0.6))
    QApplication.processEvents()
    assert run.collector.counts.seen == 10
    assert all(t is gui_thread for t in seen_in)
