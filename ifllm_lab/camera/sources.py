"""Frame sources: a webcam, a video file or a folder of images, behind one interface.

Every source hands out :class:`Frame` objects whose ``image`` is an (H, W, 3) uint8
array in **RGB** order (OpenCV's BGR is converted once, here) and whose ``t`` is a
time in **seconds on the session clock** (:class:`ifllm_lab.session.SessionClock`).
Sizes are in pixels, given as ``(width, height)``.

Use::

    clock = SessionClock()
    with open_source(0, clock=clock) as src:          # camera 0; "video.mp4"; "frames/"
        while (frame := src.read()) is not None:
            ...
        if src.status is not SourceStatus.ENDED:
            show(src.status_message)

``read()`` never raises for a missing frame: it returns ``None`` and
:attr:`FrameSource.status` / :attr:`FrameSource.status_message` say why (ended,
camera unplugged, ...). ``open()`` raises :class:`CameraError` (with a sentence for
people) when the source cannot be used at all.

Threading: call ``read()`` from one thread (the camera thread). ``close()`` may be
called from another thread; it waits for a ``read()`` in progress (at most about a
frame period, or the V4L2 select timeout for a stalled camera).

No Qt here: plain Python, numpy and OpenCV.
"""
from __future__ import annotations

import enum
import errno
import logging
import os
import re
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if sys.platform.startswith("linux"):
    # OpenCV's V4L2 backend waits up to 10 s (its default) for each frame of a stalled
    # camera. OpenCV reads this variable on the first capture, so setting it when this
    # module is imported is early enough. A value set by the user wins.
    os.environ.setdefault("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

if TYPE_CHECKING:
    from ifllm_lab.session.writer import SessionClock

log = logging.getLogger(__name__)

#: Extensions (lower case, with the dot) that :class:`ImageFolderSource` reads.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_DEFAULT_FILE_FPS = 30.0
_MAX_CATCH_UP = 1.0  # s: a realtime reader further behind restarts pacing instead of dropping


def _new_clock() -> "SessionClock":
    from ifllm_lab.session.writer import SessionClock

    return SessionClock()


# ---------------------------------------------------------------------------------------
# Data types
# ---------------------------------------------------------------------------------------
@dataclass(eq=False, slots=True)
class Frame:
    """One picture from a source.

    Attributes:
        image: (H, W, 3) uint8 array, **RGB** channel order.
        t: capture time in seconds on the session clock. For a camera (and for file
            sources in realtime mode) the clock reading right after the frame was
            grabbed; for file sources in non-realtime mode ``index / fps``.
        index: 0-based frame number from the source. Cameras: frames delivered since
            the source was created (it keeps counting across ``reopen()``). Files: the
            frame's number in the playback, continuing across loops (frames dropped in
            realtime mode leave gaps). Image folders: the image's position in the sorted
            file list (+ one list length per loop), so an unreadable image leaves a gap.
        source_t: seconds in the source's own time base: the frame's position in the
            video (restarts at 0 on each loop), ``position / fps`` for an image folder,
            ``None`` for a camera.
    """

    image: np.ndarray
    t: float
    index: int
    source_t: float | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in px."""
        return int(self.image.shape[1]), int(self.image.shape[0])


class SourceStatus(enum.Enum):
    """Where a source stands. ``CLOSED`` before ``open()`` and after ``close()`` of a
    source that was ``OK``; other states (why it ended or failed) survive ``close()``."""

    CLOSED = "closed"
    OK = "ok"
    ENDED = "ended"  # a file or folder has no more frames
    MISSING = "missing"  # no such camera / file / folder
    BUSY = "busy"  # the camera exists but cannot be used (another program holds it)
    DISCONNECTED = "disconnected"  # a camera stopped delivering frames
    ERROR = "error"  # anything else (not a video, corrupt, no permission, ...)


class CameraError(Exception):
    """A source cannot be used. ``str(err)`` is a sentence to show to people;
    ``err.status`` is the :class:`SourceStatus` that says why."""

    def __init__(self, message: str, status: SourceStatus = SourceStatus.ERROR):
        super().__init__(message)
        self.message = message
        self.status = status


def _to_rgb(img: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or gray / BGRA / 16-bit) picture as (H, W, 3) uint8 RGB."""
    if img.dtype != np.uint8:
        if img.dtype == np.uint16:
            img = (img >> 8).astype(np.uint8)
        else:
            img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------------------
class FrameSource:
    """Base class of every frame source (camera, video file, image folder).

    Attributes (read-only for callers):
        frames_read: frames returned by :meth:`read`.
        frames_failed: frames that could not be had: failed camera reads, frames of a
            file that did not decode (or that the container announced but were missing,
            e.g. a truncated file), unreadable images.
        frames_dropped: frames skipped because the reader fell behind (realtime file
            playback only; a camera drops them in the driver, unseen).
    """

    #: Short description for messages, e.g. ``"camera 0"`` or ``"video file 'a.mp4'"``.
    label: str = "frame source"

    def __init__(self) -> None:
        self.frames_read = 0
        self.frames_failed = 0
        self.frames_dropped = 0
        self._status = SourceStatus.CLOSED
        self._message = f"The {self.label} is not open."
        self._fps: float | None = None
        self._size: tuple[int, int] | None = None
        self._lock = threading.RLock()

    # -- state ----------------------------------------------------------------------
    @property
    def status(self) -> SourceStatus:
        return self._status

    @property
    def status_message(self) -> str:
        """A sentence for people saying where the source stands (and what to do)."""
        return self._message

    @property
    def is_open(self) -> bool:
        return self._is_open()

    @property
    def fps(self) -> float | None:
        """Nominal frames per second (``None`` until known, i.e. until opened for files)."""
        return self._fps

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) in px of the frames, ``None`` until opened."""
        return self._size

    def _set_status(self, status: SourceStatus, message: str) -> None:
        if status is not self._status or message != self._message:
            if status in (SourceStatus.OK, SourceStatus.CLOSED, SourceStatus.ENDED):
                log.info("%s: %s", self.label, message)
            else:
                log.warning("%s: %s", self.label, message)
        self._status = status
        self._message = message

    def _fail(self, status: SourceStatus, message: str) -> CameraError:
        """Set the status and return the error to raise."""
        self._set_status(status, message)
        return CameraError(message, status)

    # -- API ------------------------------------------------------------------------
    def open(self) -> "FrameSource":
        """Open the source; returns ``self``. Raises :class:`CameraError` (status set)
        when it cannot be used. Opening an open source does nothing."""
        with self._lock:
            if self._is_open():
                return self
            self._open()
            return self

    def read(self) -> Frame | None:
        """The next frame, or ``None`` when there is none (ended, camera failed, closed).

        Never raises for those: :attr:`status` and :attr:`status_message` say why."""
        with self._lock:
            if not self._is_open():
                return None
            try:
                return self._read()
            except Exception as exc:  # an OpenCV surprise must not kill the camera thread
                self.frames_failed += 1
                self._set_status(SourceStatus.ERROR, f"Reading from the {self.label} failed: {exc}")
                log.exception("%s: read failed", self.label)
                return None

    def close(self) -> None:
        """Release the device or file. Safe to call twice, or on a source never opened."""
        with self._lock:
            self._close()
            # why a source ended or failed (ENDED, DISCONNECTED, MISSING, ...) stays
            # readable after close(); use is_open to know whether it is open
            if self._status is SourceStatus.OK:
                self._set_status(SourceStatus.CLOSED, f"The {self.label} is closed.")

    def __enter__(self) -> "FrameSource":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        """Frames until :meth:`read` returns ``None`` (opens the source if needed)."""
        self.open()
        while (frame := self.read()) is not None:
            yield frame

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} {self._status.name}>"

    # -- for subclasses -------------------------------------------------------------
    def _is_open(self) -> bool:
        raise NotImplementedError

    def _open(self) -> None:
        raise NotImplementedError

    def _read(self) -> Frame | None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------
# Cameras
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraInfo:
    """A camera device found by :func:`list_cameras` (Linux)."""

    index: int
    name: str
    path: str


_VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability), 104 bytes
_V4L2_CAP_VIDEO_CAPTURE = 0x00000001
_V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
_V4L2_CAP_DEVICE_CAPS = 0x80000000


@dataclass
class _V4l2Probe:
    exists: bool
    name: str = ""
    capture: bool | None = None  # None: could not ask
    error: int | None = None  # errno of opening the device node


def _v4l2_probe(index: int) -> _V4l2Probe:
    """What /dev/video<index> is, without OpenCV (Linux only)."""
    dev = f"/dev/video{index}"
    if not os.path.exists(dev):
        return _V4l2Probe(exists=False)
    name = ""
    try:
        name = Path(f"/sys/class/video4linux/video{index}/name").read_text().strip()
    except OSError:
        pass
    try:
        fd = os.open(dev, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        return _V4l2Probe(exists=True, name=name, error=exc.errno)
    try:
        import fcntl

        buf = bytearray(104)
        fcntl.ioctl(fd, _VIDIOC_QUERYCAP, buf, True)
        card = bytes(buf[16:48]).split(b"\0", 1)[0].decode("utf-8", "replace")
        caps, device_caps = struct.unpack_from("<II", buf, 84)
        if caps & _V4L2_CAP_DEVICE_CAPS:
            caps = device_caps
        capture = bool(caps & (_V4L2_CAP_VIDEO_CAPTURE | _V4L2_CAP_VIDEO_CAPTURE_MPLANE))
        return _V4l2Probe(exists=True, name=name or card, capture=capture)
    except OSError:
        return _V4l2Probe(exists=True, name=name)
    finally:
        os.close(fd)


def list_cameras() -> list[CameraInfo] | None:
    """Video capture devices on this machine (Linux: from /dev/video*, without opening
    them with OpenCV). ``None`` where this cannot be known cheaply (other systems)."""
    if not sys.platform.startswith("linux"):
        return None
    found = []
    for dev in Path("/dev").glob("video*"):
        m = re.fullmatch(r"video(\d+)", dev.name)
        if not m:
            continue
        index = int(m.group(1))
        probe = _v4l2_probe(index)
        if probe.exists and probe.capture is not False:
            found.append(CameraInfo(index, probe.name or f"camera {index}", str(dev)))
    return sorted(found, key=lambda c: c.index)


def _cameras_hint() -> str:
    cams = list_cameras()
    if cams is None:
        return ""
    if not cams:
        return " No camera was found on this computer."
    names = ", ".join(f"{c.index} ({c.name})" for c in cams)
    return f" Cameras found: {names}."


class CameraSource(FrameSource):
    """A webcam through OpenCV (V4L2 on Linux, the default backend elsewhere).

    Args:
        index: the camera number (``/dev/video<index>`` on Linux).
        clock: the session clock; frame times ``t`` are read from it right after each
            grab. When omitted, a new clock starts when the source is created.
        width, height: requested frame size in px (the camera may pick another one;
            :attr:`size` is the real one once open).
        fps: requested frames per second (:attr:`fps` is what the driver reports).
        backend: an OpenCV ``cv2.CAP_*`` backend to use instead of the default.
        max_failures: failed reads in a row after which the camera counts as
            ``DISCONNECTED``.
        stall_timeout: seconds without a frame after which it counts as
            ``DISCONNECTED`` (whichever comes first).
        open_timeout: seconds ``open()`` waits for the first frame.

    ``open()`` raises :class:`CameraError` with status MISSING (no such camera), BUSY
    (it exists but cannot be opened or gives no picture: usually another program uses
    it) or ERROR (no permission, not a capture device). After ``DISCONNECTED``,
    ``read()`` returns ``None`` at once until :meth:`reopen` succeeds.
    """

    realtime = True  # frames come at the camera's pace: a slow reader must drop, not queue

    def __init__(
        self,
        index: int,
        clock: "SessionClock | None" = None,
        width: int = 640,
        height: int = 480,
        fps: float = 30,
        *,
        backend: int | None = None,
        max_failures: int = 15,
        stall_timeout: float = 3.0,
        open_timeout: float = 5.0,
    ):
        self.index = int(index)
        self.label = f"camera {self.index}"
        super().__init__()
        self.clock = clock if clock is not None else _new_clock()
        self.requested_size = (int(width), int(height))
        self.requested_fps = float(fps)
        self._fps = float(fps)
        self.backend = backend
        self.max_failures = int(max_failures)
        self.stall_timeout = float(stall_timeout)
        self.open_timeout = float(open_timeout)
        self._cap: cv2.VideoCapture | None = None
        self._next_index = 0
        self._fails_in_row = 0
        self._last_frame_mono = 0.0

    def _is_open(self) -> bool:
        return self._cap is not None

    def _backends(self) -> list[int]:
        if self.backend is not None:
            return [self.backend]
        if sys.platform.startswith("linux"):
            return [cv2.CAP_V4L2, cv2.CAP_ANY]
        return [cv2.CAP_ANY]

    def _open(self) -> None:
        self._release()
        probe = _v4l2_probe(self.index) if sys.platform.startswith("linux") else None
        if probe is not None and self.backend is None:
            # Linux knows its cameras: explain what is wrong without asking OpenCV.
            dev = f"/dev/video{self.index}"
            if not probe.exists:
                raise self._fail(
                    SourceStatus.MISSING,
                    f"No camera at index {self.index}: check that it is plugged in and "
                    f"not used by another program.{_cameras_hint()}",
                )
            if probe.error in (errno.EACCES, errno.EPERM):
                raise self._fail(
                    SourceStatus.ERROR,
                    f"No permission to use camera {self.index} ({dev}): add your user to "
                    "the 'video' group (then log in again).",
                )
            if probe.capture is False:
                raise self._fail(
                    SourceStatus.MISSING,
                    f"{dev} ({probe.name or 'unnamed'}) is not a camera that gives "
                    "pictures (webcams often add a second, metadata-only device)."
                    f"{_cameras_hint()}",
                )
        cap = None
        for backend in self._backends():
            cap = cv2.VideoCapture(self.index, backend)
            if cap.isOpened():
                break
            cap.release()
            cap = None
        if cap is None:
            name = f" ({probe.name})" if probe is not None and probe.name else ""
            if probe is not None and probe.exists:
                raise self._fail(
                    SourceStatus.BUSY,
                    f"Camera {self.index}{name} exists but could not be opened: it is "
                    "probably used by another program (close video calls and other "
                    "camera apps, then try again).",
                )
            raise self._fail(
                SourceStatus.MISSING,
                f"No camera at index {self.index}: check that it is plugged in and not "
                "used by another program.",
            )
        w, h = self.requested_size
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
        cap.set(cv2.CAP_PROP_FPS, self.requested_fps)
        # The first frame proves the camera works (and gives the real size).
        deadline = time.monotonic() + self.open_timeout
        first = None
        while time.monotonic() < deadline:
            ok, img = cap.read()
            if ok and img is not None:
                first = img
                break
            time.sleep(0.02)
        if first is None:
            cap.release()
            raise self._fail(
                SourceStatus.BUSY,
                f"Camera {self.index} opened but sent no picture within "
                f"{self.open_timeout:g} s: it may be used by another program, or be "
                "unplugged; try again or choose another camera.",
            )
        self._cap = cap
        self._size = (int(first.shape[1]), int(first.shape[0]))
        reported = cap.get(cv2.CAP_PROP_FPS)
        self._fps = float(reported) if 0 < reported < 1000 else self.requested_fps
        self._fails_in_row = 0
        self._last_frame_mono = time.monotonic()
        try:
            backend_name = cap.getBackendName()
        except cv2.error:
            backend_name = "?"
        self._set_status(
            SourceStatus.OK,
            f"Camera {self.index} is on: {self._size[0]}x{self._size[1]} px at "
            f"{self._fps:g} fps ({backend_name}).",
        )

    def _read(self) -> Frame | None:
        if self._status is SourceStatus.DISCONNECTED:
            return None
        cap = self._cap
        ok = cap.grab()
        mono = time.monotonic()
        img = None
        if ok:
            ok, img = cap.retrieve()
        if not ok or img is None:
            self.frames_failed += 1
            self._fails_in_row += 1
            silent = mono - self._last_frame_mono
            if self._fails_in_row >= self.max_failures or silent >= self.stall_timeout:
                self._set_status(
                    SourceStatus.DISCONNECTED,
                    f"Camera {self.index} stopped sending pictures ({self._fails_in_row} "
                    f"failed reads, none for {silent:.1f} s): check its cable, then "
                    "reconnect it.",
                )
            return None
        self._fails_in_row = 0
        self._last_frame_mono = mono
        frame = Frame(_to_rgb(img), self.clock.from_monotonic(mono), self._next_index, None)
        self._next_index += 1
        self.frames_read += 1
        return frame

    def reopen(self) -> bool:
        """Close and open the camera again (e.g. after ``DISCONNECTED``). Returns
        ``True`` when it delivers pictures again; never raises (status says why not)."""
        with self._lock:
            try:
                self._open()
                return True
            except CameraError:
                return False
            except Exception as exc:  # pragma: no cover - OpenCV surprises
                self._set_status(SourceStatus.ERROR, f"Camera {self.index} could not be reopened: {exc}")
                return False

    def _release(self) -> None:
        if self._cap is not None:
            try:
                self._cap.release()
            finally:
                self._cap = None

    def _close(self) -> None:
        self._release()


# ---------------------------------------------------------------------------------------
# Files: common playback (pacing, loop, drop)
# ---------------------------------------------------------------------------------------
class _PlaybackSource(FrameSource):
    """Frames from storage, either as fast as asked (``t = index / fps``) or paced to
    ``fps`` against the clock like a camera (``t`` = clock time)."""

    def __init__(self, clock, realtime: bool, loop: bool, drop_late: bool):
        super().__init__()
        self.clock = clock
        self.realtime = bool(realtime)
        self.loop = bool(loop)
        self.drop_late = bool(drop_late)
        self.loops_done = 0
        self._opened = False
        self._pass_offset = 0  # index of the first frame of the current pass
        self._t0: float | None = None  # clock time of index 0 in realtime mode

    def _is_open(self) -> bool:
        return self._opened

    def _start(self) -> None:
        """Bookkeeping once the media is open (subclasses call it at the end of _open)."""
        if self.realtime and self.clock is None:
            self.clock = _new_clock()
        self._opened = True
        self._pass_offset = 0
        self._t0 = None
        self.loops_done = 0

    # subclasses: the next picture of the current pass, or None at its end
    def _next_media(self) -> tuple[np.ndarray, int, float | None] | None:
        """(rgb image, position in the pass, source_t) or None when the pass ended."""
        raise NotImplementedError

    def _rewind(self) -> bool:
        """Go back to the first frame; False if that is not possible."""
        raise NotImplementedError

    def _end_message(self) -> str:
        return f"The {self.label} has no more frames."

    def _read(self) -> Frame | None:
        if self._status is SourceStatus.ENDED:
            return None
        while True:
            item = self._next_media()
            if item is None:
                pass_len = self._pass_length()
                if self.loop and pass_len > 0 and self._rewind():
                    self.loops_done += 1
                    self._pass_offset += pass_len
                    continue
                self._set_status(SourceStatus.ENDED, self._end_message())
                return None
            rgb, pos, source_t = item
            index = self._pass_offset + pos
            if not self.realtime:
                self.frames_read += 1
                return Frame(rgb, index / self._fps, index, source_t)
            now = self.clock.now()
            if self._t0 is None:
                self._t0 = now - index / self._fps
            due = self._t0 + index / self._fps
            if now - due > _MAX_CATCH_UP:
                # the reader paused for long (or the clock jumped): start pacing afresh
                # from here rather than decoding everything it missed
                self._t0 += now - due
                due = now
            if self.drop_late and now >= due + 1.0 / self._fps:
                self.frames_dropped += 1  # the next one is due already: skip, as a camera would
                continue
            if now < due:
                time.sleep(due - now)
            self.frames_read += 1
            return Frame(rgb, self.clock.now(), index, source_t)

    def _pass_length(self) -> int:
        """Index span of one pass (positions 0 .. n-1)."""
        raise NotImplementedError


def _check_path(path: Path, label: str, want_dir: bool) -> None:
    if not path.exists():
        kind = "folder" if want_dir else "video file"
        raise CameraError(f"The {kind} {str(path)!r} does not exist.", SourceStatus.MISSING)
    if want_dir and not path.is_dir():
        raise CameraError(f"{str(path)!r} is a file, not a folder of images.", SourceStatus.ERROR)
    if not want_dir and path.is_dir():
        raise CameraError(f"{str(path)!r} is a folder, not a video file.", SourceStatus.ERROR)
    if not os.access(path, os.R_OK):
        raise CameraError(f"No permission to read {label} {str(path)!r}.", SourceStatus.ERROR)


class VideoFileSource(_PlaybackSource):
    """A video file, read with OpenCV (FFmpeg).

    Args:
        path: the file.
        clock: the session clock (used in realtime mode; a new one if omitted).
        realtime: pace reads to the file's fps against the clock, like a camera:
            ``t`` is the clock time when the frame is handed out; when the reader falls
            a whole frame behind, late frames are skipped (``frames_dropped``) unless
            ``drop_late=False`` (more than 1 s behind, pacing restarts from the next
            frame instead). Otherwise frames come as fast as asked with
            ``t = index / fps`` (deterministic: tests, benchmarks).
        loop: start again at the end (``index`` keeps counting, ``source_t`` restarts).
        fps: override the file's frame rate (frames per second).

    ``open()`` raises :class:`CameraError` naming the path when the file is missing
    (MISSING), empty, not a video, corrupt, or no frame decodes (ERROR). Frames that do
    not decode later on are counted in ``frames_failed`` (including frames the
    container announced but that never came, e.g. a truncated file), then ENDED.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        clock: "SessionClock | None" = None,
        realtime: bool = False,
        loop: bool = False,
        fps: float | None = None,
        *,
        drop_late: bool = True,
        max_failures: int = 8,
    ):
        self.path = Path(path)
        self.label = f"video file {str(self.path)!r}"
        super().__init__(clock, realtime, loop, drop_late)
        self.fps_override = float(fps) if fps else None
        self._fps = self.fps_override
        self.max_failures = int(max_failures)
        self.frame_count: int | None = None  # as the container announces it
        self._cap: cv2.VideoCapture | None = None
        self._pending: np.ndarray | None = None  # first frame, decoded by open()
        self._pending_t: float | None = None
        self._pass_decoded = 0
        self._pass_failed = 0

    def _capture(self) -> cv2.VideoCapture | None:
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_ANY)
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _open(self) -> None:
        try:
            _check_path(self.path, "the video file", want_dir=False)
        except CameraError as err:
            raise self._fail(err.status, err.message) from None
        if self.path.stat().st_size == 0:
            raise self._fail(SourceStatus.ERROR, f"The video file {str(self.path)!r} is empty (0 bytes).")
        cap = self._capture()
        if cap is None:
            raise self._fail(
                SourceStatus.ERROR,
                f"The file {str(self.path)!r} could not be opened as a video: it is not a "
                "video file, it is corrupt or incomplete, or its format is not supported.",
            )
        ok, img = cap.read()
        if not ok or img is None:
            cap.release()
            raise self._fail(
                SourceStatus.ERROR,
                f"The video file {str(self.path)!r} opened but no frame could be decoded: "
                "it is corrupt or uses a codec this OpenCV cannot decode.",
            )
        self._cap = cap
        file_fps = cap.get(cv2.CAP_PROP_FPS)
        if self.fps_override:
            self._fps = self.fps_override
        elif 0 < file_fps < 1000:
            self._fps = float(file_fps)
        else:
            self._fps = _DEFAULT_FILE_FPS
            log.warning("%s: no usable frame rate in the file, using %g fps", self.label, self._fps)
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if count and count > 0 else None
        self._size = (int(img.shape[1]), int(img.shape[0]))
        self._pending = img
        self._pending_t = self._pos_seconds(cap, 0)
        self._pass_decoded = 0
        self._pass_failed = 0
        self._start()
        n = f"{self.frame_count} frames, " if self.frame_count else ""
        self._set_status(
            SourceStatus.OK,
            f"Playing {self.path.name}: {n}{self._size[0]}x{self._size[1]} px at {self._fps:g} fps.",
        )

    def _pos_seconds(self, cap: cv2.VideoCapture, pos: int) -> float:
        ms = cap.get(cv2.CAP_PROP_POS_MSEC)
        if ms is None or not np.isfinite(ms) or ms < 0 or (ms == 0 and pos > 0):
            return pos / self._fps if self._fps else 0.0
        return ms / 1000.0

    def _next_media(self):
        if self._pending is not None:
            img, st = self._pending, self._pending_t
            self._pending = None
            pos = self._pass_decoded
            self._pass_decoded += 1
            return _to_rgb(img), pos, st
        fails = 0
        while True:
            ok, img = self._cap.read()
            if ok and img is not None:
                break
            fails += 1
            expected = self.frame_count
            # Only insist while the container says more frames are due.
            if expected is None or self._pass_decoded + self._pass_failed + fails >= expected \
                    or fails > self.max_failures:
                self._end_pass(fails)
                return None
        if fails:  # frames lost in the middle, then decoding went on
            self.frames_failed += fails
            self._pass_failed += fails
        pos = self._pass_decoded + self._pass_failed
        self._pass_decoded += 1
        return _to_rgb(img), pos, self._pos_seconds(self._cap, pos)

    def _end_pass(self, fails: int) -> None:
        expected = self.frame_count or 0
        missing = expected - self._pass_decoded - self._pass_failed
        if missing > 0:
            self.frames_failed += missing
            self._pass_failed += missing
            log.warning(
                "%s: ended after %d of %d frames (%d could not be decoded)",
                self.label, self._pass_decoded, expected, self._pass_failed,
            )

    def _pass_length(self) -> int:
        return self._pass_decoded + self._pass_failed

    def _end_message(self) -> str:
        msg = f"The video {self.path.name} ended after {self.frames_read} frames"
        if self.frames_failed:
            n = self.frames_failed
            msg += f"; {n} frame{'s' if n != 1 else ''} could not be decoded (the file is damaged or incomplete)"
        return msg + "."

    def _rewind(self) -> bool:
        if self._pass_decoded == 0:
            return False
        if self._cap is not None:
            self._cap.release()
        self._cap = self._capture()  # reopening is more robust than seeking
        if self._cap is None:
            return False
        self._pass_decoded = 0
        self._pass_failed = 0
        return True

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._pending = None
        self._opened = False


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class ImageFolderSource(_PlaybackSource):
    """The image files of a folder (png, jpg, jpeg, bmp, tif, tiff; not sub-folders) in
    natural name order (``img2`` before ``img10``), played as a video at ``fps``.

    Same timing semantics as :class:`VideoFileSource` (``realtime``, ``loop``,
    ``drop_late``). Unreadable images are counted in ``frames_failed`` and skipped
    (their index is left out). Images keep their own size; :attr:`size` is that of the
    first readable one. ``open()`` raises :class:`CameraError` for a missing folder
    (MISSING), a folder without image files or with no readable image (ERROR).
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        fps: float = 30,
        clock: "SessionClock | None" = None,
        realtime: bool = False,
        loop: bool = False,
        *,
        drop_late: bool = True,
    ):
        self.folder = Path(folder)
        self.label = f"image folder {str(self.folder)!r}"
        super().__init__(clock, realtime, loop, drop_late)
        if not fps or fps <= 0:
            raise ValueError("fps must be positive")
        self._fps = float(fps)
        self.files: list[Path] = []
        self._pos = 0  # position of the next file in the list
        self._pending: tuple[np.ndarray, int] | None = None
        self._bad: set[int] = set()  # positions known to be unreadable (counted once)
        self._last_pos: int | None = None
        self._decoded_in_pass = 0

    @staticmethod
    def _load(path: Path) -> np.ndarray | None:
        try:
            data = np.fromfile(path, dtype=np.uint8)  # works with any path (imread does not on Windows)
        except OSError:
            return None
        if data.size == 0:
            return None
        try:
            img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        except cv2.error:
            return None
        if img is None or img.size == 0:
            return None
        return _to_rgb(img)

    def _open(self) -> None:
        try:
            _check_path(self.folder, "the folder", want_dir=True)
            files = sorted(
                (p for p in self.folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                key=_natural_key,
            )
        except CameraError as err:
            raise self._fail(err.status, err.message) from None
        except OSError as exc:
            raise self._fail(SourceStatus.ERROR, f"The folder {str(self.folder)!r} cannot be read: {exc}.") from None
        if not files:
            raise self._fail(
                SourceStatus.ERROR,
                f"The folder {str(self.folder)!r} holds no image files "
                f"({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}).",
            )
        self.files = files
        self._pos = 0
        self._bad = set()
        first = self._scan()
        if first is None:
            raise self._fail(
                SourceStatus.ERROR,
                f"None of the {len(files)} image files in {str(self.folder)!r} could be read.",
            )
        self._pending = first
        self._size = (int(first[0].shape[1]), int(first[0].shape[0]))
        self._decoded_in_pass = 0
        self._start()
        self._set_status(
            SourceStatus.OK,
            f"Playing {len(files)} images from {self.folder.name or str(self.folder)} at {self._fps:g} fps.",
        )

    def _scan(self) -> tuple[np.ndarray, int] | None:
        """The next readable image from the current position on, as (rgb, position)."""
        while self._pos < len(self.files):
            pos = self._pos
            self._pos += 1
            img = self._load(self.files[pos])
            if img is not None:
                return img, pos
            if pos not in self._bad:  # count each bad file once, also when looping
                self._bad.add(pos)
                self.frames_failed += 1
                log.warning("%s: cannot read %s, skipped", self.label, self.files[pos].name)
        return None

    @property
    def current_path(self) -> Path | None:
        """The file of the last frame handed out."""
        return self.files[self._last_pos] if self._last_pos is not None else None

    def _next_media(self):
        item = self._pending if self._pending is not None else self._scan()
        self._pending = None
        if item is None:
            return None
        img, pos = item
        self._last_pos = pos
        self._decoded_in_pass += 1
        return img, pos, pos / self._fps

    def _pass_length(self) -> int:
        return len(self.files)

    def _rewind(self) -> bool:
        if self._decoded_in_pass == 0:
            return False
        self._pos = 0
        self._decoded_in_pass = 0
        return True

    def _end_message(self) -> str:
        msg = f"All images of {self.folder.name or str(self.folder)} were shown ({self.frames_read} frames"
        if self.frames_failed:
            n = self.frames_failed
            msg += f", {n} unreadable file{'s' if n != 1 else ''} skipped"
        return msg + ")."

    def _close(self) -> None:
        self._opened = False
        self._pending = None


# ---------------------------------------------------------------------------------------
def open_source(
    spec: int | str | os.PathLike,
    clock: "SessionClock | None" = None,
    realtime: bool = True,
    **kw,
) -> FrameSource:
    """A frame source for ``spec``, not yet opened (``with`` or ``.open()`` opens it).

    ``spec``: an int or a digit string (``"0"``) is a camera index; an existing folder
    is an :class:`ImageFolderSource`; anything else a :class:`VideoFileSource` path
    (a missing one fails at ``open()``). ``realtime`` (default True: files behave like
    a camera) applies to files and folders; cameras are always realtime. Other keyword
    arguments go to the source's constructor.
    """
    if isinstance(spec, bool):
        raise TypeError("spec must be a camera index or a path")
    if isinstance(spec, (int, np.integer)):
        return CameraSource(int(spec), clock, **kw)
    if isinstance(spec, str) and spec.strip().isdigit():
        return CameraSource(int(spec.strip()), clock, **kw)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path, clock=clock, realtime=realtime, **kw)
    return VideoFileSource(path, clock=clock, realtime=realtime, **kw)
