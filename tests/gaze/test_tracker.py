"""The gaze pipeline on real video files of a real face, into a real session file."""
from __future__ import annotations

import time

import numpy as np
import pytest

from ifllm_lab.camera import VideoFileSource
from ifllm_lab.gaze.landmarks import FaceLandmarker
from ifllm_lab.gaze.tracker import GazePipeline, GazeTracker
from ifllm_lab.session import SessionClock, SessionMeta, SessionReader, SessionWriter
from ifllm_lab.synthetic.face import FaceRenderer, write_gaze_video

TARGETS = [(300, 200), (1600, 200), (960, 540), (300, 900), (1600, 900)]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("video") / "face.mp4")
    return write_gaze_video(path, TARGETS, renderer=FaceRenderer(), frames_per_target=12, blink_every=20)


class LeastSquares:
    """A plain linear calibration fitted by least squares (the tracker needs only predict)."""

    def __init__(self, X, Y):
        A = np.c_[X, np.ones(len(X))]
        self.coef, *_ = np.linalg.lstsq(A, Y, rcond=None)

    def predict(self, X):
        return np.c_[X, np.ones(len(X))] @ self.coef


def test_every_frame_becomes_a_sample_in_the_session(video, tmp_path):
    clock = SessionClock()
    writer = SessionWriter(tmp_path / "s.h5", SessionMeta(participant="T"), clock=clock)
    samples = []
    with FaceLandmarker() as lm, VideoFileSource(video.path, clock=clock) as src:
        tracker = GazeTracker(src, GazePipeline(lm), clock, writer=writer, on_sample=samples.append).start()
        assert tracker.wait(60)
        stats = tracker.stop()
    writer.close()
    n = len(video.targets)
    assert stats.frames == n == len(samples) and stats.dropped == 0
    assert stats.faces == n
    # blinks (4 closed frames in every 20): each one is caught (MediaPipe's tracking smooths the
    # lids, so the first closed frame can slip through), open frames are not flagged
    flagged = np.array([s.blink for s in samples])
    episodes = np.split(np.nonzero(video.blink)[0], np.nonzero(np.diff(np.nonzero(video.blink)[0]) > 1)[0] + 1)
    assert len(episodes) == 3 and all(flagged[e].sum() >= 2 for e in episodes)
    assert flagged[~video.blink].sum() <= 1
    with SessionReader(tmp_path / "s.h5") as r:
        gaze = r["gaze"].read()
    assert len(gaze) == n
    assert np.array_equal(gaze["frame"], np.arange(n))
    assert np.allclose(gaze["t"], np.arange(n) / video.fps)
    assert (gaze["valid"] == 0).all()  # no calibration yet: features only
    assert np.isfinite(gaze["left_iris_x"][~video.blink]).all()


def test_calibrated_points_follow_the_targets(video, tmp_path):
    clock = SessionClock()
    with FaceLandmarker() as lm, VideoFileSource(video.path, clock=clock) as src:
        samples = []
        tracker = GazeTracker(src, GazePipeline(lm), clock, on_sample=samples.append).start()
        tracker.wait(60)
        tracker.stop()
    ok = np.array([not s.blink for s in samples])
    X = np.array([s.vector for s in samples])[ok]
    cal = LeastSquares(X[:, :4], video.targets[ok])

    class Cal:
        def predict(self, X):
            return cal.predict(X[:, :4])

    with FaceLandmarker() as lm, VideoFileSource(video.path, clock=clock) as src:
        samples = []
        tracker = GazeTracker(src, GazePipeline(lm, calibration=Cal()), clock, on_sample=samples.append).start()
        tracker.wait(60)
        tracker.stop()
    valid = np.array([s.valid for s in samples])
    assert not (valid & ~ok).any()  # blinks are never valid
    assert valid.sum() >= 0.9 * ok.sum()  # open eyes are (the eye-image search may miss a frame)
    est = np.array([(s.x, s.y) for s in samples])[valid]
    err = np.linalg.norm(est - video.targets[valid], axis=1)
    assert np.median(err) < 250  # px on a 1920x1080 screen: the targets are 600+ px apart


def test_live_source_drops_frames_when_busy_and_logs_them(video, tmp_path):
    clock = SessionClock()
    writer = SessionWriter(tmp_path / "live.h5", SessionMeta(), clock=clock)

    class SlowPipeline(GazePipeline):
        def process(self, image, t, index):
            time.sleep(0.1)  # 10 fps of work against a 30 fps source
            return super().process(image, t, index)

    with FaceLandmarker() as lm, VideoFileSource(video.path, clock=clock, realtime=True) as src:
        tracker = GazeTracker(src, SlowPipeline(lm), clock, writer=writer).start()
        assert tracker.live
        tracker.wait(30)
        time.sleep(0.3)
        stats = tracker.stop()
    writer.close()
    total = stats.frames + stats.dropped + src.frames_dropped
    assert stats.dropped > 0 and stats.frames < len(video.targets)
    assert total >= 0.9 * len(video.targets)
    with SessionReader(tmp_path / "live.h5") as r:
        assert len(r["gaze"]) == stats.frames
        msgs = " ".join(r["log"].column("message"))
    assert "frames dropped" in msgs
    assert stats.p95_latency_ms() < 400


class ScriptedCamera:
    """Stands in for camera hardware (none exists on the test machines): delivers
    real face frames, then fails like an unplugged camera, then comes back after reopen()."""

    realtime = True

    def __init__(self, clock, good=20, gone_reads=5):
        from ifllm_lab.camera import SourceStatus
        from ifllm_lab.synthetic.face import astronaut_face
        self.S = SourceStatus
        self.clock = clock
        self.image = astronaut_face()
        self.good, self.gone_reads = good, gone_reads
        self.n = 0
        self.status, self.status_message = SourceStatus.OK, ""
        self.reopened = 0
        self.frames_dropped = 0

    def read(self):
        from ifllm_lab.camera import Frame
        time.sleep(1 / 30)
        if self.status is self.S.DISCONNECTED:
            return None
        self.n += 1
        if self.n == self.good:
            self.status = self.S.DISCONNECTED
            self.status_message = "The camera stopped sending pictures: check its cable."
            return None
        if self.n > 2 * self.good:
            self.status, self.status_message = self.S.ENDED, "end of test"
            return None
        return Frame(self.image, self.clock.now(), self.n)

    def reopen(self):
        self.reopened += 1
        self.status = self.S.OK
        return True


def test_camera_lost_mid_session_is_logged_marked_and_survived(tmp_path):
    clock = SessionClock()
    writer = SessionWriter(tmp_path / "cam.h5", SessionMeta(), clock=clock)
    statuses = []
    cam = ScriptedCamera(clock)
    with FaceLandmarker() as lm:
        tracker = GazeTracker(cam, GazePipeline(lm), clock, writer=writer, reconnect_s=0.2,
                              on_status=lambda s, m: statuses.append(s)).start()
        assert tracker.wait(30)
        stats = tracker.stop()
    writer.close()
    assert statuses[:2] == ["disconnected", "ok"] and cam.reopened == 1
    assert stats.frames >= 30 and stats.source_failures >= 1
    with SessionReader(tmp_path / "cam.h5") as r:
        gaze = r["gaze"].read()
        log = list(r["log"].column("message"))
    marker = gaze[gaze["frame"] == -1]
    assert len(marker) == 1 and marker["valid"][0] == 0 and np.isnan(marker["x"][0])
    assert any("stopped sending pictures" in m for m in log)
    assert any(m.startswith("ok") for m in log)
