"""Calibration screens (Qt, offscreen): real widgets driven by real TargetRun /
CalibrationFlow / ValidationReport / DriftResult objects, checked on their pixels.

Screenshots (1280 x 720 PNG) of every screen go to ``$IFLLM_SCREENSHOTS`` when set,
else to the test's tmp_path.
"""
from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest


from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402

from ifllm_lab.gaze.calibration import (  # noqa: E402
    DriftResult, ValidationThresholds, drift_check, load_pattern, validate,
)
from ifllm_lab.gaze.face_position import MESSAGES, FacePositionTargets, face_status  # noqa: E402
from ifllm_lab.gaze.features import EyeFeatures  # noqa: E402
from ifllm_lab.gaze.geometry import ScreenGeometry  # noqa: E402
from ifllm_lab.gaze.procedure import CalibrationFlow, TargetRun  # noqa: E402
from ifllm_lab.gaze.tracker import GazeSample  # noqa: E402
from ifllm_lab.gaze.calibration import point_grade  # noqa: E402
from ifllm_lab.ui import style  # noqa: E402
from ifllm_lab.ui.calibration_screens import (  # noqa: E402
    DriftResultView, FaceGuide, GazeBridge, TargetScreen, ValidationReportView,
)

from tests.support.screenshots import H, W, save, shots_folder  # noqa: E402
SCREEN = ScreenGeometry(1920, 1080, 527.0, 297.0, 600.0)  # 24" at 60 cm


class ManualClock:
    """A session clock whose time the test sets (``now()`` like SessionClock)."""

    def __init__(self, t: float = 0.0):
        self.t = float(t)

    def now(self) -> float:
        return self.t


@pytest.fixture()
def shots(tmp_path) -> Path:
    return shots_folder(tmp_path)


def show(qtbot, widget):
    qtbot.addWidget(widget)
    widget.resize(W, H)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def rgb(img, x, y) -> tuple[int, int, int]:
    c = img.pixelColor(int(round(x)), int(round(y)))
    return c.red(), c.green(), c.blue()


def near(c, colour: QColor, tol: int = 12) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(c, (colour.red(), colour.green(), colour.blue())))


def count_colour(img, colour: QColor, rect=None, tol: int = 30, step: int = 2) -> int:
    x0, y0, x1, y1 = rect or (0, 0, img.width(), img.height())
    n = 0
    for y in range(int(y0), int(y1), step):
        for x in range(int(x0), int(x1), step):
            if near(rgb(img, x, y), colour, tol):
                n += 1
    return n


def widget_pos(x, y):
    return x * W / SCREEN.width_px, y * H / SCREEN.height_px


def assert_target_at(img, x, y, r_disc, r_centre):
    """Dark fixation point in the middle, light disc around it, background just outside."""
    assert near(rgb(img, x, y), style.TARGET_CENTRE, 40), (x, y, rgb(img, x, y))
    ring = 0.5 * (r_centre + r_disc)
    for ang in (0, 90, 180, 270):
        px = x + ring * math.cos(math.radians(ang))
        py = y + ring * math.sin(math.radians(ang))
        assert near(rgb(img, px, py), style.TARGET), (ang, rgb(img, px, py))
    for ang in (45, 135, 225, 315):
        px = x + (r_disc + 5) * math.cos(math.radians(ang))
        py = y + (r_disc + 5) * math.sin(math.radians(ang))
        assert near(rgb(img, px, py), style.BACKGROUND), (ang, rgb(img, px, py))


def measured_radius(img, x, y) -> int:
    """Distance from the centre to the right until the background shows."""
    r = 1
    while r < 200 and not near(rgb(img, x + r, y), style.BACKGROUND, 20):
        r += 1
    return r


# ======================================================================================
# Target screen
# ======================================================================================

def test_target_screen_countdown_then_each_target_in_its_place(qtbot, shots):
    clock = ManualClock(10.0)
    flow = CalibrationFlow(SCREEN, seed=7)
    run = flow.calibration_run(start_t=10.0)
    ts = show(qtbot, TargetScreen(clock))
    done = []
    shown = []
    ts.finished.connect(lambda: done.append(clock.t))
    ts.target_changed.connect(lambda s: shown.append(s.index))
    ts.set_run(run)
    assert ts.title == "Calibration" and ts.running
    targets = run.pattern.targets_px(SCREEN)

    # countdown: the text, and the first target already where it will appear
    clock.t = 10.0 + 0.3 * run.countdown_s
    ts.tick()
    assert ts.state.stage == "countdown"
    img = ts.grab().toImage()
    first = widget_pos(*targets[run.order[0]])
    r0, rc = ts.target_radii(0.0)
    assert_target_at(img, *first, r0, rc)
    headline = (W * 0.3, H * 0.17, W * 0.7, H * 0.27)
    assert count_colour(img, style.TEXT, headline, tol=40) > 50  # "Look at the dot"
    for i in run.order[1:]:
        assert near(rgb(img, *widget_pos(*targets[i])), style.BACKGROUND)
    save(ts, shots, "target-countdown")

    # every target in turn, shrinking over its dwell, nothing at the others' places
    for k, idx in enumerate(run.order):
        onset = run.first_onset + k * run.dwell_s
        radii = []
        for frac in (0.05, 0.5, 0.95):
            clock.t = onset + frac * run.dwell_s
            ts.tick()
            st = ts.state
            assert (st.stage, st.index, st.number, st.total) == ("target", idx, k + 1, len(run.order))
            img = ts.grab().toImage()
            x, y = widget_pos(*targets[idx])
            r, rc = ts.target_radii(frac)
            assert_target_at(img, x, y, r, rc)
            radii.append(measured_radius(img, x, y))
            assert abs(radii[-1] - r) <= 2, (radii[-1], r)
            for j in range(len(targets)):
                if j != idx:
                    assert near(rgb(img, *widget_pos(*targets[j])), style.BACKGROUND), (k, j)
            if k == 3 and frac == 0.5:
                save(ts, shots, "target-mid-shrink")
        assert radii[0] > radii[1] > radii[2]
    assert shown == run.order

    # target sizes follow the visual angles: 1 deg = 38 px on this screen, 2/3 of it here
    deg1 = SCREEN.deg_to_px(1.0) * W / SCREEN.width_px
    assert ts.target_radii(0.0)[0] == pytest.approx(deg1, rel=0.01)
    assert 2 * ts.target_radii(1.0)[1] == pytest.approx(0.2 * deg1, rel=0.05)

    assert not done
    clock.t = run.end_t + 0.01
    with qtbot.waitSignal(ts.finished, timeout=1000):
        ts.tick()
    ts.tick()
    assert done == [run.end_t + 0.01] and not ts.running  # emitted once
    img = ts.grab().toImage()
    assert count_colour(img, style.TARGET_CENTRE, tol=10) == 0  # no target left, only "Thank you"
    assert count_colour(img, style.TARGET, tol=10) == 0


def test_timer_drives_the_screen_and_finishes_on_its_own(qtbot):
    clock = ManualClock(0.0)
    run = CalibrationFlow(SCREEN).drift_run(start_t=0.0)  # no countdown: the target is up at once
    ts = show(qtbot, TargetScreen(clock))
    ts.set_run(run)
    assert ts.title == "Drift check"
    clock.t = 0.5
    qtbot.waitUntil(lambda: ts.state.progress > 0.4, timeout=1000)  # the timer read the clock
    img = ts.grab().toImage()
    assert_target_at(img, W / 2, H / 2, *ts.target_radii(ts.state.progress))
    clock.t = run.end_t + 0.2
    with qtbot.waitSignal(ts.finished, timeout=1000):
        pass
    assert ts.state.stage == "done"


def test_pursuit_target_follows_the_path(qtbot, shots):
    clock = ManualClock(100.0)
    pattern = load_pattern("pursuit-lissajous")
    run = TargetRun(pattern, SCREEN, start_t=100.0)
    ts = show(qtbot, TargetScreen(clock))
    ts.set_run(run, "Follow the dot")
    positions = []
    for since in (0.5, 3.3, 7.9, 12.0, 18.6):
        clock.t = run.first_onset + since
        ts.tick()
        assert ts.state.stage == "target"
        x, y = widget_pos(*pattern.position_px_at(since, SCREEN))
        img = ts.grab().toImage()
        assert_target_at(img, x, y, *ts.target_radii(0.0, pursuit=True))
        positions.append((x, y))
        if since == 7.9:
            save(ts, shots, "target-pursuit")
    # it really moves: the places differ by more than the target's size
    r = ts.target_radii(0.0, pursuit=True)[0]
    assert min(math.dist(a, b) for a in positions for b in positions if a != b) > 2 * r


def test_target_screen_errors_are_calm_text(qtbot):
    class BrokenClock:
        def now(self):
            raise RuntimeError("clock gone")

    run = CalibrationFlow(SCREEN).calibration_run(0.0)
    ts = show(qtbot, TargetScreen(BrokenClock()))
    ts.set_run(run)
    assert "stopped" in ts.message and "clock gone" in ts.message and not ts.running
    img = ts.grab().toImage()
    assert count_colour(img, style.TEXT, (0, H * 0.35, W, H * 0.65), tol=40) > 50
    assert count_colour(img, style.TARGET_CENTRE, tol=10) == 0  # no targets


def test_escape_aborts(qtbot):
    ts = show(qtbot, TargetScreen(ManualClock()))
    ts.set_run(CalibrationFlow(SCREEN).calibration_run(0.0))
    with qtbot.waitSignal(ts.aborted, timeout=500):
        qtbot.keyClick(ts, Qt.Key.Key_Escape)


# ======================================================================================
# Face guide
# ======================================================================================

def feats(face_x=0.5, face_y=0.45, distance=600.0, yaw=0.0) -> EyeFeatures:
    return EyeFeatures(0.45, -0.04, 0.45, -0.04, 0.5, 0.5, 0.3, 0.3, yaw, 5.0, 0.0,
                       face_x, face_y, distance, 60.0, 60.0)


@pytest.mark.parametrize("kw, code, message", [
    (dict(), "good", "Good \u2014 keep still"),
    (dict(distance=350.0), "too_close", "Move back a little"),
    (dict(distance=900.0), "too_far", "Move a little closer"),
    (dict(face_x=0.25), "move_left", "Move a little to your left"),  # image left = their right
    (dict(face_x=0.78), "move_right", "Move a little to your right"),
    (dict(face_y=0.15), "move_down", "Move down a little"),
    (dict(face_y=0.75), "move_up", "Move up a little"),
    (dict(yaw=35.0), "turn", "Turn your face towards the screen"),
    (dict(face_x=math.nan, face_y=math.nan), "no_face", "Face not found \u2014 sit in front of the camera"),
])
def test_face_guide_hints(qtbot, kw, code, message):
    guide = show(qtbot, FaceGuide())
    assert guide.status.code == "waiting"
    with qtbot.waitSignal(guide.status_changed, timeout=500):
        guide.update_sample(GazeSample(t=1.0, frame=1, features=feats(**kw)))
    assert guide.status.code == code and guide.hint_text() == message
    assert guide.accessibleDescription() == message
    img = guide.grab().toImage()
    fr = guide.frame_rect()
    frame = (fr.left(), fr.top(), fr.right(), fr.bottom())
    hint_band = (0, H * 0.79, W, H * 0.88)
    if code == "good":
        assert count_colour(img, style.GOOD, frame, tol=25) > 100  # the green oval
        assert count_colour(img, style.GOOD, hint_band, tol=25) > 30  # the green hint
        assert count_colour(img, style.WARN, frame, tol=25) == 0
    else:
        assert count_colour(img, style.GOOD, img.rect().getCoords(), tol=25) == 0
        if code != "no_face":
            assert count_colour(img, style.WARN, frame, tol=25) > 50  # where the face is now


def test_face_status_without_a_face_and_with_several_problems():
    assert face_status(None).code == "no_face"
    assert face_status(GazeSample(t=0.0, frame=0)).code == "no_face"  # tracker: no face found
    st = face_status(feats(face_x=0.2, face_y=0.8, distance=300.0))
    assert st.codes == ("too_close", "move_left", "move_up") and st.message == MESSAGES["too_close"]
    assert not st.good
    # distance unknown: judged on position only
    assert face_status(feats(distance=math.nan)).good
    # the range is configurable
    near_ok = FacePositionTargets(min_distance_mm=300.0)
    assert face_status(feats(distance=350.0), near_ok).good


def test_face_guide_via_bridge_from_another_thread(qtbot):
    guide = show(qtbot, FaceGuide())
    bridge = GazeBridge().attach(guide)
    th = threading.Thread(target=lambda: bridge.post_sample(GazeSample(t=0.0, frame=0, features=feats(distance=300))))
    th.start()
    th.join()
    assert guide.status.code == "waiting"  # queued to the GUI thread, not run in the tracker's
    qtbot.waitUntil(lambda: guide.status.code == "too_close", timeout=1000)
    # frames too: left half red, right half blue, shown mirrored
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[:, :80, 0] = 255
    frame[:, 80:, 2] = 255
    th = threading.Thread(target=lambda: bridge.post_frame(frame))
    th.start()
    th.join()
    frame[:] = 0  # the source reusing its buffer must not change what was posted
    qtbot.waitUntil(lambda: guide._image is not None, timeout=1000)
    img = guide.grab().toImage()
    fr = guide.frame_rect()
    left = rgb(img, fr.left() + fr.width() * 0.1, fr.top() + fr.height() * 0.3)
    right = rgb(img, fr.right() - fr.width() * 0.1, fr.top() + fr.height() * 0.3)
    assert left[2] > 100 and left[0] < 30, left  # blue on the left: mirrored
    assert right[0] > 100 and right[2] < 30, right


def test_face_guide_goes_back_to_waiting_without_samples(qtbot):
    guide = show(qtbot, FaceGuide(stale_after_s=0.1))
    guide.update_sample(feats())
    assert guide.status.good
    qtbot.waitUntil(lambda: guide.status.code == "waiting", timeout=2000)


def test_space_continues_only_when_the_position_is_good(qtbot):
    guide = show(qtbot, FaceGuide())
    got = []
    guide.continue_requested.connect(lambda: got.append(1))
    guide.update_sample(feats(distance=300.0))
    qtbot.keyClick(guide, Qt.Key.Key_Space)
    assert got == []
    guide.update_sample(feats())
    with qtbot.waitSignal(guide.continue_requested, timeout=500):
        qtbot.keyClick(guide, Qt.Key.Key_Space)


@pytest.fixture(scope="module")
def astronaut():
    """A real camera-like frame and the real landmarker's features of it."""
    from ifllm_lab.gaze.features import eye_features
    from ifllm_lab.gaze.landmarks import FaceLandmarker
    from ifllm_lab.synthetic.face import astronaut_face

    img = astronaut_face()
    with FaceLandmarker(video=False) as lm:
        face = lm.detect(img)
    assert face is not None
    return img, eye_features(face)


def test_face_guide_with_a_real_frame(qtbot, shots, astronaut):
    img, f = astronaut
    guide = show(qtbot, FaceGuide())
    guide.set_frame(img)
    guide.update_sample(GazeSample(t=0.0, frame=0, features=f))
    assert guide.status == face_status(f)
    # the photo is a close-up (the face fills half the frame): it is too close
    assert f.face_distance_mm < 450 and guide.status.code == "too_close"
    shot = guide.grab().toImage()
    fr = guide.frame_rect()
    inside = [rgb(shot, fr.left() + fr.width() * a, fr.top() + fr.height() * b) for a in (0.3, 0.5, 0.7)
              for b in (0.3, 0.6)]
    assert len(set(inside)) > 3  # a picture, not the plain panel
    save(guide, shots, "face-guide-camera")
    guide.set_frame(None)
    guide.update_sample(feats())
    save(guide, shots, "face-guide-good")
    guide.update_sample(feats(face_x=0.72, face_y=0.3, distance=800))
    assert guide.status.codes == ("too_far", "move_right", "move_down")
    save(guide, shots, "face-guide-off-centre")
    guide.update_sample(None)
    save(guide, shots, "face-guide-no-face")


def test_countdown_shows_the_face_guide_when_samples_arrive(qtbot, shots, astronaut):
    clock = ManualClock(0.0)
    run = TargetRun(load_pattern("9-point"), SCREEN, 0.0, countdown_s=3.0, seed=1)
    ts = show(qtbot, TargetScreen(clock))
    ts.set_run(run)
    clock.t = 0.4
    ts.tick()
    band = (W * 0.35, H * 0.58, W * 0.65, H * 0.82)
    before = ts.grab().toImage()
    assert count_colour(before, style.WARN, band) == 0
    ts.update_sample(GazeSample(t=0.4, frame=1, features=astronaut[1]))
    ts.update()
    img = ts.grab().toImage()
    assert count_colour(img, style.WARN, band) > 20  # "Move back a little", in amber
    assert ts.state.remaining_s == pytest.approx(2.6)
    save(ts, shots, "target-countdown-face")


# ======================================================================================
# Validation report
# ======================================================================================

def make_report(fail: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    targets = load_pattern("validation-9").targets_px(SCREEN)
    est = []
    for i, t in enumerate(targets):
        bias = rng.normal(0, 12, 2)
        n = 40
        if fail and i == 2:
            bias = np.array([-110.0, 70.0])  # ~3.5 deg off
        if fail and i == 7:
            n = 3  # too few samples
        if fail and i == 4:
            bias = np.array([62.0, 0.0])  # ~1.6 deg: within the point limit, over the mean one
        est.append(t + bias + rng.normal(0, 10, (n, 2)))  # webcam-like noise: ~0.5 deg RMS-S2S
    return validate(est, None, SCREEN, targets=targets, thresholds=ValidationThresholds())


def test_validation_view_pass(qtbot, shots):
    report = make_report(fail=False)
    assert report.passed
    view = show(qtbot, ValidationReportView())
    view.set_report(report, SCREEN)
    assert view.verdict == "PASS" and view.verdict_label.text() == "PASS"
    assert view.verdict_label.accessibleName() == "PASS"
    assert f"{report.mean_accuracy_deg:.2f}\u00b0" in view.summary_label.text()
    assert f"{report.mean_precision_deg:.2f}\u00b0" in view.summary_label.text()
    assert "Failed" not in view.reasons_label.text()
    assert view.continue_button.isDefault() and not view.recalibrate_button.isDefault()
    m = view.map.grab().toImage()
    for p in report.points:
        assert point_grade(p, report.thresholds) == "good"
        assert near(rgb(m, *_xy(view.map.to_map(*p.mean))), style.GOOD, 30)
        c, arm = view.map.to_map(*p.target), 0.8 * view.map.cross_px()
        mc = view.map.to_map(*p.mean)
        for dx, dy in ((-arm, 0), (arm, 0), (0, -arm), (0, arm)):  # the target's cross
            if math.hypot(c.x() + dx - mc.x(), c.y() + dy - mc.y()) < 8:
                continue  # under the mean estimate's dot
            assert any(near(rgb(m, c.x() + dx + ex, c.y() + dy + ey), style.TEXT, 40)
                       for ex in (-1, 0, 1) for ey in (-1, 0, 1)), (p.point, dx, dy)  # anti-aliased
    save(view, shots, "validation-pass")
    got = []
    view.recalibrate_requested.connect(lambda: got.append("recalibrate"))
    view.accepted.connect(lambda: got.append("continue"))
    with qtbot.waitSignal(view.accepted, timeout=500):
        qtbot.mouseClick(view.continue_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(view.recalibrate_requested, timeout=500):
        qtbot.mouseClick(view.recalibrate_button, Qt.MouseButton.LeftButton)
    assert got == ["continue", "recalibrate"]


def _xy(pt):
    return pt.x(), pt.y()


def test_validation_view_fail(qtbot, shots):
    report = make_report(fail=True)
    assert not report.passed
    view = show(qtbot, ValidationReportView())
    view.set_report(report, SCREEN)
    assert view.verdict == "FAIL" and view.verdict_label.text() == "FAIL"
    for reason in report.reasons:
        assert reason in view.reasons_label.text()
    assert view.recalibrate_button.isDefault()
    assert "failed" in view.note_label.text().lower()
    grades = {p.point: point_grade(p, report.thresholds) for p in report.points}
    assert grades[2] == "bad" and grades[7] == "bad" and grades[4] == "warn" and grades[0] == "good"
    assert report.worst_point == 2 and f"worst point 2: {report.worst_accuracy_deg:.2f}" in view.summary_label.text()
    m = view.map.grab().toImage()
    for i, colour in ((2, style.BAD), (4, style.WARN), (0, style.GOOD)):
        assert near(rgb(m, *_xy(view.map.to_map(*report.points[i].mean))), colour, 30), i
    save(view, shots, "validation-fail")
    # Continue is allowed after a failure
    with qtbot.waitSignal(view.accepted, timeout=500):
        qtbot.mouseClick(view.continue_button, Qt.MouseButton.LeftButton)


def feature_vector(x_px, y_px, rng):
    """Made-up eye features: linear in the gaze point plus noise (what a tracker gives)."""
    u, v = x_px / SCREEN.width_px, y_px / SCREEN.height_px
    return np.array([0.3 + 0.2 * u, -0.05 + 0.1 * v, 0.35 + 0.2 * u, -0.04 + 0.1 * v]) + rng.normal(0, 0.002, 4)


def feed(run, rng, offset=(0.0, 0.0), hz=30.0):
    t = run.start_t
    while t < run.end_t:
        st = run.state_at(t)
        if st.stage == "target":
            run.add(t, feature_vector(st.x + offset[0], st.y + offset[1], rng), False, True)
        t += 1.0 / hz


def test_validation_view_from_a_real_calibration_flow(qtbot):
    rng = np.random.default_rng(1)
    flow = CalibrationFlow(SCREEN, seed=2)
    cal = flow.calibration_run(0.0)
    feed(cal, rng)
    flow.fit(cal, cal.end_t)
    val = flow.validation_run(cal.end_t)
    feed(val, rng)
    result = flow.evaluate(val, val.end_t)
    view = show(qtbot, ValidationReportView())
    view.set_result(result, SCREEN)
    assert view.verdict == ("PASS" if result.passed else "FAIL")
    assert view.title_label.text() == "Validation (run 1)"
    # drift check with the participant now looking 50 px to the right: ~1.3 deg, corrected
    drift = flow.drift_run(val.end_t)
    feed(drift, rng, offset=(50.0, 0.0))
    res = flow.check_drift(drift, drift.end_t)
    assert res.action == "correct"
    dv = show(qtbot, DriftResultView())
    dv.set_result(res)
    assert dv.outcome == "correct" and "corrected" in dv.outcome_text()
    assert f"{res.offset_deg:.2f}\u00b0" in dv.summary_label.text()


def test_validation_view_without_a_report(qtbot):
    view = show(qtbot, ValidationReportView())
    view.show_error("only 3 of 9 targets had usable samples; recalibrate with the face in view")
    for lab in (view.title_label, view.summary_label):  # laid out at once, not squeezed
        assert lab.height() >= lab.heightForWidth(lab.width()) > 0
    assert view.verdict == "" and not view.verdict_label.isVisible()
    assert "only 3 of 9" in view.summary_label.text()
    assert view.recalibrate_button.isDefault()
    with qtbot.waitSignal(view.recalibrate_requested, timeout=500):
        qtbot.mouseClick(view.recalibrate_button, Qt.MouseButton.LeftButton)


# ======================================================================================
# Drift check
# ======================================================================================

@pytest.mark.parametrize("dx, action, words", [
    (10.0, "none", "no correction"),
    (55.0, "correct", "corrected"),
    (160.0, "recalibrate", "recalibration recommended"),
])
def test_drift_view(qtbot, shots, dx, action, words):
    target = SCREEN.centre_px
    rng = np.random.default_rng(0)
    est = np.array(target) + np.array([dx, -0.3 * dx]) + rng.normal(0, 3, (20, 2))
    res = drift_check(est, target, None, SCREEN)
    assert isinstance(res, DriftResult) and res.action == action
    view = show(qtbot, DriftResultView())
    view.set_result(res)
    assert view.outcome == action and words in view.outcome_text().lower()
    assert f"{res.offset_deg:.2f}\u00b0" in view.summary_label.text()
    for lab in (view.summary_label, view.reasons_label, view.criteria_label):  # laid out, not squeezed
        assert lab.height() >= lab.heightForWidth(lab.width()) > 0, lab.text()
    colour = {"none": style.GOOD, "correct": style.WARN, "recalibrate": style.BAD}[action]
    d = view.diagram.grab().toImage()
    assert count_colour(d, colour, tol=25) > 10  # the mean estimate's dot
    assert (view.recalibrate_button if action == "recalibrate" else view.continue_button).isDefault()
    save(view, shots, f"drift-{action}")
    signal = view.recalibrate_requested if action == "recalibrate" else view.accepted
    button = view.recalibrate_button if action == "recalibrate" else view.continue_button
    with qtbot.waitSignal(signal, timeout=500):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_drift_view_error_offers_a_retry(qtbot, shots):
    with pytest.raises(ValueError) as err:
        drift_check(np.zeros((1, 2)), SCREEN.centre_px, None, SCREEN)
    view = show(qtbot, DriftResultView())
    view.show_error(str(err.value))
    assert view.outcome == "error" and "need at least" in view.summary_label.text()
    save(view, shots, "drift-error")
    assert view.retry_button.isDefault()
    with qtbot.waitSignal(view.retry_requested, timeout=500):
        qtbot.mouseClick(view.retry_button, Qt.MouseButton.LeftButton)
