"""Calibrate and validate on rendered videos of a real face with known gaze, end to end:
video file -> tracker -> calibration run -> fit -> validation run -> report -> session file."""
from __future__ import annotations

import numpy as np
import pytest

from ifllm_lab.camera import VideoFileSource
from ifllm_lab.gaze.geometry import ScreenGeometry
from ifllm_lab.gaze.landmarks import FaceLandmarker
from ifllm_lab.gaze.procedure import CalibrationFlow
from ifllm_lab.gaze.tracker import FeatureExtractor, GazePipeline, GazeTracker
from ifllm_lab.session import SessionClock, SessionMeta, SessionReader, SessionWriter
from ifllm_lab.synthetic.face import FaceRenderer, GazeScene, render_runs

SCREEN = ScreenGeometry(1920, 1080, 531.0, 299.0, 600.0)  # 24" 16:9 at 60 cm


def true_deg(p, q):
    """Independent angle formula: eye on the perpendicular through the screen centre."""
    def ray(v):
        x_mm = (v[..., 0] - 960) * 531.0 / 1920
        y_mm = (v[..., 1] - 540) * 299.0 / 1080
        return np.stack([x_mm, y_mm, np.full_like(x_mm, 600.0)], -1)
    a, b = ray(np.asarray(p, float)), ray(np.asarray(q, float))
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("truth")
    extractor = FeatureExtractor()
    clock = SessionClock()
    writer = SessionWriter(tmp / "session.h5", SessionMeta(participant="truth"), clock=clock)
    flow = CalibrationFlow(SCREEN, writer=writer, feature_names=extractor.names, seed=1)
    cal = flow.calibration_run(0.0)
    val = flow.validation_run(cal.end_t + 0.5)
    video = render_runs(str(tmp / "face.mp4"), [cal, val], renderer=FaceRenderer(), scene=GazeScene())
    samples = []
    with FaceLandmarker() as lm, VideoFileSource(video.path) as src:
        tracker = GazeTracker(src, GazePipeline(lm, extractor=extractor), clock, on_sample=samples.append).start()
        assert tracker.wait(300)
        tracker.stop()
    for s in samples:
        (cal if s.t < cal.end_t else val).add_sample(s)
    flow.fit(cal, cal.end_t)
    result = flow.evaluate(val, val.end_t)
    writer.close()
    return flow, result, val, video, samples, tmp / "session.h5"


def test_reported_error_matches_the_truth(calibrated):
    flow, result, val, video, samples, _ = calibrated
    report = result.report
    t = np.array([s.t for s in samples])
    X = np.array([s.vector for s in samples])
    est = flow.model.predict(X)
    true_acc = []
    for i in range(val.pattern.n_targets):
        onset = val.collector.onset(i)
        # frames where the eyes rest on target i (the test's own timing: 0.3 s after onset)
        m = (t >= onset + 0.3) & (t < onset + val.dwell_s) & (video.target_index[: len(t)] == i)
        m &= ~np.array([s.blink for s in samples]) & np.isfinite(est).all(1)
        truth = video.targets[: len(t)][m]
        assert np.allclose(truth, truth[0])  # one true point per target
        true_acc.append(true_deg(est[m].mean(0), truth[0]))
    true_mean = float(np.mean(true_acc))
    print(f"reported {report.mean_accuracy_deg:.3f} deg, true {true_mean:.3f} deg, "
          f"precision {report.mean_precision_deg:.3f} deg, model {flow.model!r}")
    assert report.mean_accuracy_deg == pytest.approx(true_mean, rel=0.10)
    assert [p.n_samples for p in report.points] == [int(x) for x in
                                                    [len(val.collector.features_for(i)) for i in range(9)]]


def test_calibrated_error_under_one_degree(calibrated):
    _, result, *_ = calibrated
    assert result.report.mean_accuracy_deg < 1.0, result.message


def test_calibration_is_recorded_in_the_session(calibrated):
    flow, result, val, *_, path = calibrated
    with SessionReader(path) as r:
        points = r["calibration/points"].read()
        models = r["calibration/models"].read()
        samples = r["calibration/samples"].read()
        log = " ".join(r["log"].column("message"))
    assert len(points) == 9 and (points["phase"] == 1).all()
    assert np.allclose(np.nanmean(points["accuracy_deg"]), result.report.mean_accuracy_deg)
    assert len(models) == 1 and models["kind"][0] == flow.model.kind
    assert set(samples["phase"]) == {0, 1} and samples["used"].sum() > 200
    assert "validation run 1: accuracy" in log
