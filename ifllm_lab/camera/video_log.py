"""The raw camera video of a session, kept only when a study asks for it (``keep_video``).

Frames are written by a thread of their own (MJPG in an ``.avi``: every OpenCV build can
write it, and each frame is a separate JPEG, so a killed app leaves a playable file up to
its last frame). Beside it, ``<name>.frames.csv`` gives each written frame's camera index
and capture time on the session clock, so the video lines up with the gaze stream
(``gaze/frame``). A full queue (the disk cannot keep up) drops frames: counted, listed
nowhere in the CSV, reported by :attr:`VideoLog.dropped`.
"""
from __future__ import annotations

import collections
import logging
import os
import threading

import cv2
import numpy as np

log = logging.getLogger(__name__)


class VideoLog:
    def __init__(self, path: str | os.PathLike, fps: float = 30.0, max_queue: int = 60, quality: int = 90):
        self.path = os.fspath(path)
        self.csv_path = os.path.splitext(self.path)[0] + ".frames.csv"
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.quality = int(quality)
        self.max_queue = int(max_queue)
        self.written = 0
        self.dropped = 0
        self.error: str | None = None
        self._queue: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        self._writer = None
        self._csv = open(self.csv_path, "w", encoding="utf-8")
        self._csv.write("frame,t\n")
        self._thread = threading.Thread(target=self._run, name="video-log", daemon=True)
        self._thread.start()

    def put(self, frame) -> bool:
        """Queue a camera :class:`~ifllm_lab.camera.sources.Frame` (any thread; never blocks)."""
        with self._cv:
            if self._closed or self.error is not None:
                return False
            if len(self._queue) >= self.max_queue:
                self.dropped += 1
                return False
            self._queue.append((frame.index, frame.t, frame.image))
            self._cv.notify()
        return True

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait(0.5)
                if not self._queue and self._closed:
                    break
                index, t, rgb = self._queue.popleft()
            try:
                self._write(index, t, rgb)
            except Exception as exc:  # full disk, bad frame: stop the video, never the session
                self.error = f"the camera video stopped: {exc}"
                log.error(self.error)
                with self._cv:
                    self._queue.clear()
                break

    def _write(self, index: int, t: float, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        if self._writer is None:
            self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"MJPG"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise OSError(f"cannot write {self.path}")
            self._writer.set(cv2.VIDEOWRITER_PROP_QUALITY, self.quality)
            self._size = (w, h)
        if (w, h) != self._size:
            rgb = cv2.resize(rgb, self._size)
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self._csv.write(f"{index},{t:.6f}\n")
        self.written += 1
        if self.written % 30 == 0:
            self._csv.flush()

    def close(self) -> dict:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join()
        if self._writer is not None:
            self._writer.release()
        self._csv.close()
        return {"path": self.path, "frames": self.written, "dropped": self.dropped, "error": self.error}
