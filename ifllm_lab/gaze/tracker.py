"""The gaze pipeline in a worker thread.

frame (camera / video / images) -> landmarks -> eye features -> calibrated point
-> smoothing filter -> :class:`GazeSample` -> session writer (+ a callback).

Times are seconds on the session clock. A sample's ``t`` is the capture time of
its frame; ``latency`` is the time from capture until the sample was handed on.

With a live source (a camera, or a file played in real time) the worker always
processes the newest frame: frames that arrive while it is busy are dropped,
counted and logged, never silently lost. A file read as fast as possible (tests,
benchmarks) is processed frame by frame with nothing dropped.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..session.schema import LogLevel
from .features import FEATURE_NAMES, BlinkDetector, EyeFeatures, eye_features
from .landmarks import FaceLandmarker

log = logging.getLogger(__name__)

DROP_LOG_INTERVAL_S = 1.0


@dataclass
class GazeSample:
    """One frame's result.

    ``x``, ``y``: filtered gaze point, screen px (NaN when invalid or uncalibrated);
    ``raw_x``, ``raw_y``: before filtering; ``valid``: face found, eyes open and a
    calibration present; ``confidence`` 0..1; ``features``: None when no face.
    """

    t: float
    frame: int
    x: float = np.nan
    y: float = np.nan
    raw_x: float = np.nan
    raw_y: float = np.nan
    valid: bool = False
    confidence: float = 0.0
    features: EyeFeatures | None = None
    vector: np.ndarray | None = None
    blink: bool = False
    latency: float = 0.0
    face: object = None  # the frame's FaceResult (landmarks), None without a face; not recorded

    def row(self) -> tuple:
        """The sample as a row of the session's ``gaze`` stream (column order of the schema)."""
        f = self.features
        if f is None:
            extra = (np.nan,) * 10
        else:
            extra = (f.left_iris_u, f.left_iris_v, f.right_iris_u, f.right_iris_v, f.left_openness,
                     f.right_openness, f.yaw, f.pitch, f.roll, f.face_distance_mm)
        return (self.t, self.x, self.y, int(self.valid), self.confidence, self.frame, self.raw_x, self.raw_y) + extra


@dataclass
class TrackerStats:
    frames: int = 0  # frames processed
    faces: int = 0  # frames with a face
    blinks: int = 0
    dropped: int = 0  # frames skipped because the worker was busy
    source_failures: int = 0
    latencies: list = field(default_factory=list)  # seconds, last 10,000

    def p95_latency_ms(self) -> float:
        return float(np.percentile(self.latencies, 95) * 1000) if self.latencies else float("nan")


class FeatureExtractor:
    """Frame + landmarks -> the feature vector the calibration regresses on.

    The vector is the landmark features (:data:`~ifllm_lab.gaze.features.FEATURE_NAMES`)
    followed, with ``appearance=True``, by the iris positions that
    :class:`~ifllm_lab.gaze.appearance.EyeAppearance` finds in the head-aligned eye
    images (NaN when it cannot, e.g. during a blink). The appearance template is the
    first open-eyed face seen: keep one extractor per participant for calibration and
    recording, and :meth:`reset` it only to recalibrate from scratch.

    Head pose and position from single frames jitter far more than heads move, and
    that jitter goes straight into the gaze estimate through the regression. So the
    pose features (yaw, pitch, roll, face position and distance) are smoothed with
    an exponential filter of time constant ``pose_tau_s``; the iris features are not
    (eye movements are fast). ``pose_tau_s = 0`` turns smoothing off.
    """

    POSE = ("yaw", "pitch", "roll", "face_x", "face_y", "face_distance_mm")

    def __init__(self, pose_tau_s: float = 0.25, appearance: bool = True):
        self.pose_tau_s = pose_tau_s
        self._pose_idx = np.array([FEATURE_NAMES.index(n) for n in self.POSE])
        self._state: np.ndarray | None = None
        self._t_last = None
        self.appearance = None
        if appearance:
            import cv2

            from .appearance import EyeAppearance

            # The eye images are small: waking OpenCV's worker threads for each warp costs more
            # than it saves (measured: ~40 % of the warp time), so OpenCV runs on one thread.
            cv2.setNumThreads(1)
            self.appearance = EyeAppearance()
        self.names = FEATURE_NAMES + (tuple(self.appearance.names) if self.appearance else ())

    def __call__(self, image: np.ndarray, face, t: float | None = None) -> tuple[EyeFeatures, np.ndarray]:
        f = eye_features(face)
        v = f.vector()
        if self.pose_tau_s > 0 and t is not None:
            pose = v[self._pose_idx]
            if self._state is None or not np.all(np.isfinite(self._state)) or t - self._t_last > 1.0 \
                    or t <= self._t_last:
                self._state = pose.copy()
            else:
                a = 1.0 - np.exp(-(t - self._t_last) / self.pose_tau_s)
                self._state += a * (pose - self._state)
            self._t_last = t
            v[self._pose_idx] = self._state
        if self.appearance is not None:
            iris = self.appearance.extract(image, face)
            if iris is None:
                iris = np.full(len(self.appearance.names), np.nan)
            v = np.concatenate([v, iris])
        return f, v

    def reset(self) -> None:
        self._state = None
        self._t_last = None
        if self.appearance is not None:
            self.appearance.reset()


class GazePipeline:
    """The per-frame work, without threads (used by the tracker and the benchmark).

    Args:
        landmarker: an open :class:`FaceLandmarker` (VIDEO mode).
        calibration: an object with ``predict(X (n, k)) -> (n, 2)`` screen px, or None.
        smoother: a callable ``(t, x, y) -> (x, y)`` with ``reset()``, or None.
    """

    def __init__(self, landmarker: FaceLandmarker, calibration=None, smoother=None,
                 extractor: FeatureExtractor | None = None):
        self.landmarker = landmarker
        self.calibration = calibration
        self.smoother = smoother
        self.extractor = extractor or FeatureExtractor()
        self.blinks = BlinkDetector()

    def process(self, image: np.ndarray, t: float, index: int) -> GazeSample:
        face = self.landmarker.detect(image, t)
        sample = GazeSample(t=t, frame=index, face=face)
        if face is None:
            return sample
        features, vector = self.extractor(image, face, t)
        sample.features = features
        sample.vector = vector
        sample.blink = self.blinks(features.openness)
        if sample.blink or self.calibration is None or not np.all(np.isfinite(vector)):
            return sample
        x, y = self.calibration.predict(vector[None, :])[0]
        sample.raw_x, sample.raw_y = float(x), float(y)
        if self.smoother is not None:
            x, y = self.smoother(t, x, y)
        sample.x, sample.y = float(x), float(y)
        sample.valid = True
        sample.confidence = float(np.clip((features.openness - 0.1) / 0.15, 0.0, 1.0))
        return sample


class GazeTracker:
    """Runs a :class:`GazePipeline` on a frame source in a worker thread.

    Args:
        source: an opened frame source (``read() -> Frame | None``, ``status``,
            ``status_message``; ``realtime`` True for cameras and paced files).
        pipeline: the per-frame work.
        clock: the session clock (``now()``).
        writer: a :class:`~ifllm_lab.session.writer.SessionWriter` or None.
        on_sample: called from the worker thread with every :class:`GazeSample`.
        on_status: called with (status_name, message) when the source's status changes.
        on_frame: called from the worker thread with every processed :class:`Frame`
            (after its sample), e.g. for a camera preview or a video log; keep it quick.
    """

    def __init__(self, source, pipeline: GazePipeline, clock, *, writer=None,
                 on_sample: Callable[[GazeSample], None] | None = None,
                 on_status: Callable[[str, str], None] | None = None,
                 on_frame: Callable[[object], None] | None = None,
                 live: bool | None = None, reconnect_s: float = 2.0):
        self.source = source
        self.pipeline = pipeline
        self.clock = clock
        self.writer = writer
        self.on_sample = on_sample
        self.on_status = on_status
        self.on_frame = on_frame
        self.live = getattr(source, "realtime", False) if live is None else live
        self.reconnect_s = reconnect_s
        self.stats = TrackerStats()
        self._stop = threading.Event()
        self._latest = None  # newest frame not yet processed (live mode)
        self._latest_lock = threading.Condition()
        self._ended = threading.Event()
        self._threads: list[threading.Thread] = []
        self.status = "ok"
        self.status_message = ""

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> "GazeTracker":
        if self.live:
            self._threads = [threading.Thread(target=self._capture_loop, name="gaze-capture", daemon=True),
                             threading.Thread(target=self._process_loop, name="gaze-process", daemon=True)]
        else:
            self._threads = [threading.Thread(target=self._sequential_loop, name="gaze-tracker", daemon=True)]
        for th in self._threads:
            th.start()
        return self

    def stop(self) -> TrackerStats:
        self._stop.set()
        with self._latest_lock:
            self._latest_lock.notify_all()
        for th in self._threads:
            th.join()
        return self.stats

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the source has ended (files); True when it has."""
        return self._ended.wait(timeout)

    @property
    def running(self) -> bool:
        return any(th.is_alive() for th in self._threads)

    # -- status -----------------------------------------------------------------------
    def _set_status(self, status: str, message: str) -> None:
        if status == self.status:
            return
        self.status, self.status_message = status, message
        level = LogLevel.INFO if status in ("ok", "ended") else LogLevel.WARNING
        if self.writer is not None:
            self.writer.log(level, "camera", f"{status}: {message}" if message else status)
            if level >= LogLevel.WARNING:  # an explicit invalid sample marks where gaze stops
                self.writer.put("gaze", GazeSample(t=self.clock.now(), frame=-1).row())
        else:
            log.log(int(level), "camera %s: %s", status, message)
        if self.on_status is not None:
            self.on_status(status, message)

    def _read(self):
        frame = self.source.read()
        if frame is not None:
            if self.status != "ok":
                self._set_status("ok", "camera frames arrive again")
            return frame
        status = getattr(self.source, "status", None)
        name = getattr(status, "name", str(status)).lower() if status is not None else "ended"
        message = getattr(self.source, "status_message", "")
        self._set_status(name, message)
        if name == "ended":
            self._ended.set()
            return None
        self.stats.source_failures += 1
        # camera gone: try to get it back now and then, without busy-waiting
        if self._stop.wait(self.reconnect_s):
            return None
        reopen = getattr(self.source, "reopen", None)
        if reopen is not None:
            try:
                reopen()
            except Exception as exc:  # the status message already tells people what is wrong
                log.debug("camera reopen failed: %s", exc)
        return None

    # -- work -------------------------------------------------------------------------
    def _emit(self, frame) -> None:
        sample = self.pipeline.process(frame.image, frame.t, frame.index)
        st = self.stats
        st.frames += 1
        st.faces += sample.features is not None
        st.blinks += sample.blink
        sample.latency = self.clock.now() - frame.t
        if len(st.latencies) >= 10_000:
            del st.latencies[:5_000]
        st.latencies.append(sample.latency)
        if self.writer is not None:
            self.writer.put("gaze", sample.row())
        if self.on_sample is not None:
            self.on_sample(sample)
        if self.on_frame is not None:
            self.on_frame(frame)

    def _sequential_loop(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self._read()
                if frame is None:
                    if self._ended.is_set():
                        return
                    continue
                self._emit(frame)
        except Exception as exc:  # report, never die silently
            self._set_status("error", f"gaze tracking stopped: {exc!r}")
            log.exception("gaze tracker failed")
        finally:
            self._ended.set()

    def _capture_loop(self) -> None:
        last_report = time.monotonic()
        reported = 0
        try:
            while not self._stop.is_set():
                frame = self._read()
                if frame is None:
                    if self._ended.is_set():
                        break
                    continue
                with self._latest_lock:
                    if self._latest is not None:
                        self.stats.dropped += 1
                    self._latest = frame
                    self._latest_lock.notify()
                now = time.monotonic()
                if now - last_report >= DROP_LOG_INTERVAL_S and self.stats.dropped > reported:
                    msg = f"{self.stats.dropped - reported} frames dropped (processing slower than the camera)"
                    if self.writer is not None:
                        self.writer.log(LogLevel.WARNING, "gaze", msg)
                    reported = self.stats.dropped
                    last_report = now
        finally:
            self._ended.set()
            with self._latest_lock:
                self._latest_lock.notify_all()

    def _process_loop(self) -> None:
        try:
            while True:
                with self._latest_lock:
                    while self._latest is None and not self._stop.is_set() and not self._ended.is_set():
                        self._latest_lock.wait(0.5)
                    frame, self._latest = self._latest, None
                if frame is None:
                    if self._stop.is_set() or self._ended.is_set():
                        return
                    continue
                self._emit(frame)
        except Exception as exc:
            self._set_status("error", f"gaze tracking stopped: {exc!r}")
            log.exception("gaze tracker failed")
