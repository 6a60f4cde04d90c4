"""Frame sources on real files: a short video made from a real face photo (the
astronaut of scikit-image), written with OpenCV's own VideoWriter, PNG folders, damaged
files and a camera index that does not exist. No mocks."""
from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from ifllm_lab.camera import (
    CameraError,
    CameraSource,
    Frame,
    FrameSource,
    ImageFolderSource,
    SourceStatus,
    VideoFileSource,
    open_source,
)
from ifllm_lab.session import SessionClock

W, H, FPS, N = 640, 480, 30.0, 30
SHIFT = 4  # px per frame
# (fourcc, extension): mp4v/.mp4 is the main test video (small, inter-frame coded);
# MJPG/.avi has independent frames, so a truncated one still plays its first half.
CODECS = [("mp4v", ".mp4"), ("MJPG", ".avi")]


def source_frame(i: int) -> np.ndarray:
    """The i-th frame as written: the astronaut at 640x480, RGB, shifted right."""
    base = cv2.resize(skdata.astronaut(), (W, H), interpolation=cv2.INTER_AREA)
    return np.roll(base, SHIFT * i, axis=1)


def write_video(path: Path, fourcc: str, n: int = N, fps: float = FPS) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (W, H))
    assert writer.isOpened(), f"this OpenCV cannot write {fourcc} into {path.suffix}"
    for i in range(n):
        writer.write(cv2.cvtColor(source_frame(i), cv2.COLOR_RGB2BGR))
    writer.release()
    assert path.stat().st_size > 10_000
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {fourcc: write_video(d / f"astronaut_{fourcc}{ext}", fourcc) for fourcc, ext in CODECS}


@pytest.fixture(scope="module")
def video(videos) -> Path:
    return videos["mp4v"]


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# ---------------------------------------------------------------------------------------
# video files
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fourcc", [c for c, _ in CODECS])
def test_video_frames_size_rgb_and_times(videos, fourcc):
    with VideoFileSource(videos[fourcc]) as src:
        assert isinstance(src, FrameSource)
        assert src.status is SourceStatus.OK
        assert src.size == (W, H)
        assert src.fps == pytest.approx(FPS)
        frames = list(src)
        assert src.status is SourceStatus.ENDED
        assert src.read() is None  # stays ended, no exception
    assert len(frames) == N == src.frames_read
    assert src.frames_failed == 0
    assert [f.index for f in frames] == list(range(N))
    for f in frames:
        assert isinstance(f, Frame)
        assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
        assert f.size == (W, H)
        assert f.t == pytest.approx(f.index / FPS)  # non-realtime: t = index / fps
        assert f.source_t == pytest.approx(f.index / FPS, abs=1e-3)  # the video's position
    # RGB order: each decoded frame is close to the RGB original, far from its BGR twin.
    for f in (frames[0], frames[N // 2], frames[-1]):
        want = source_frame(f.index)
        assert mean_abs(f.image, want) < 8
        assert mean_abs(f.image, want[..., ::-1]) > 25
    # and a region with a known colour: the astronaut's orange suit (lower left) is red-heavy
    r, g, b = frames[0].image[260:400, 80:160].reshape(-1, 3).mean(axis=0)
    assert r > b + 80 and r > g + 50
    # consecutive frames differ (the picture moves SHIFT px per frame)
    assert mean_abs(frames[0].image, frames[1].image) > 1


def test_video_status_after_close(video):
    src = VideoFileSource(video)
    assert src.status is SourceStatus.CLOSED and src.read() is None
    src.open()
    assert src.read().index == 0
    src.close()
    src.close()  # twice is fine
    assert src.status is SourceStatus.CLOSED
    assert src.read() is None


def test_video_fps_override(video):
    with VideoFileSource(video, fps=10) as src:
        frames = list(src)
    assert src.fps == 10
    assert frames[5].t == pytest.approx(0.5)


def test_video_realtime_is_paced_against_the_clock(video):
    clock = SessionClock()
    n = 12
    with VideoFileSource(video, clock=clock, realtime=True) as src:
        start = clock.now()
        frames = [src.read() for _ in range(n)]
        elapsed = clock.now() - start
    assert all(f is not None for f in frames)
    assert [f.index for f in frames] == list(range(n))  # a reader that keeps up loses nothing
    assert src.frames_dropped == 0
    # frame 0 comes at once, the 11 others one frame period apart
    assert elapsed >= 0.8 * (n - 1) / FPS
    assert elapsed < 5 * n / FPS
    ts = np.array([f.t for f in frames])
    assert ts[0] >= start and ts[-1] <= clock.now()  # t is session-clock time
    assert np.median(np.diff(ts)) == pytest.approx(1 / FPS, abs=0.01)


def test_video_realtime_drops_late_frames_like_a_camera(video):
    clock = SessionClock()
    with VideoFileSource(video, clock=clock, realtime=True) as src:
        first = src.read()
        time.sleep(0.25)  # a slow consumer: about 7 frame periods
        second = src.read()
    assert first.index == 0
    assert second.index >= 5  # the stale ones were skipped
    assert src.frames_dropped == second.index - 1
    assert second.t - first.t >= 0.25


def test_video_loop(video):
    n = 2 * N + 15
    with VideoFileSource(video, loop=True) as src:
        frames = [src.read() for _ in range(n)]
        assert src.status is SourceStatus.OK
    assert all(f is not None for f in frames)
    assert [f.index for f in frames] == list(range(n))
    ts = [f.t for f in frames]
    assert ts == sorted(ts) and ts[-1] == pytest.approx((n - 1) / FPS)
    assert frames[N].source_t == pytest.approx(0.0)  # the video's own time restarts
    assert frames[N + 3].source_t == pytest.approx(3 / FPS, abs=1e-3)
    assert mean_abs(frames[N].image, frames[0].image) < 1  # the same picture again
    assert mean_abs(frames[N + 7].image, source_frame(7)) < 8
    assert src.loops_done == 2


@pytest.mark.parametrize("fourcc", [c for c, _ in CODECS])
def test_truncated_video_fails_cleanly(videos, fourcc, tmp_path):
    whole = videos[fourcc].read_bytes()
    cut = tmp_path / f"half{videos[fourcc].suffix}"
    cut.write_bytes(whole[: len(whole) // 2])
    src = VideoFileSource(cut)
    try:
        src.open()
    except CameraError as err:  # mp4: the index (moov) sits at the end and is gone
        assert str(cut) in str(err)
        assert err.status is SourceStatus.ERROR and src.status is SourceStatus.ERROR
        assert src.read() is None
        return
    frames = list(src)  # avi: the first half plays, the rest is counted as failed
    assert src.status is SourceStatus.ENDED
    assert 5 <= len(frames) < N
    assert src.frames_failed == N - len(frames)
    assert "could not be decoded" in src.status_message
    assert mean_abs(frames[3].image, source_frame(3)) < 8


def test_video_damaged_in_the_middle_plays_on(videos, tmp_path):
    raw = bytearray(videos["MJPG"].read_bytes())
    rng = np.random.default_rng(7)
    mid = len(raw) // 2
    raw[mid: mid + len(raw) // 20] = rng.integers(0, 256, len(raw) // 20, dtype=np.uint8).tobytes()
    bad = tmp_path / "damaged.avi"
    bad.write_bytes(bytes(raw))
    with VideoFileSource(bad) as src:
        frames = list(src)
    assert src.status is SourceStatus.ENDED
    assert len(frames) >= N // 2 + 1  # frames after the damage were read too
    assert src.frames_failed >= 1
    assert src.frames_read + src.frames_failed == N


@pytest.mark.parametrize(
    "content, what",
    [(None, "does not exist"), (b"", "empty"), ("random", "could not be opened as a video"),
     (b"this is not a video\n" * 100, "could not be opened as a video")],
)
def test_bad_video_files_raise_camera_error(tmp_path, content, what):
    path = tmp_path / "clip.mp4"
    if content == "random":
        content = np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    if content is not None:
        path.write_bytes(content)
    src = VideoFileSource(path)
    with pytest.raises(CameraError) as info:
        src.open()
    assert str(path) in str(info.value) and what in str(info.value)
    want = SourceStatus.MISSING if content is None else SourceStatus.ERROR
    assert info.value.status is want and src.status is want
    assert src.status_message == str(info.value)
    assert src.read() is None  # never raises


def test_folder_given_as_video_file(tmp_path):
    with pytest.raises(CameraError, match="folder, not a video"):
        VideoFileSource(tmp_path).open()


# ---------------------------------------------------------------------------------------
# image folders
# ---------------------------------------------------------------------------------------
def write_png(path: Path, rgb: np.ndarray) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture
def image_folder(tmp_path) -> Path:
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(6):
        if i == 3:
            (d / "img3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(500))  # corrupt
        else:
            write_png(d / f"img{i}.png", source_frame(i))
    write_png(d / "img10.PNG", source_frame(10))  # natural order: after img5; any case
    (d / "notes.txt").write_text("not an image")
    (d / "sub").mkdir()
    write_png(d / "sub" / "img1.png", source_frame(99))  # sub-folders are not read
    return d


def test_image_folder(image_folder):
    with ImageFolderSource(image_folder, fps=10) as src:
        assert src.size == (W, H) and src.fps == 10
        frames = list(src)
        assert src.status is SourceStatus.ENDED
    assert len(src.files) == 7
    assert [p.name for p in src.files][-2:] == ["img5.png", "img10.PNG"]
    assert len(frames) == 6 == src.frames_read
    assert src.frames_failed == 1
    assert [f.index for f in frames] == [0, 1, 2, 4, 5, 6]  # the bad file leaves a gap
    for f, k in zip(frames, [0, 1, 2, 4, 5, 10]):
        assert np.array_equal(f.image, source_frame(k))  # PNG is lossless: exact RGB
        assert f.t == pytest.approx(f.index / 10)
        assert f.source_t == pytest.approx(f.index / 10)


def test_image_folder_loop_counts_bad_file_once(image_folder):
    with ImageFolderSource(image_folder, loop=True) as src:
        frames = [src.read() for _ in range(15)]
    assert [f.index for f in frames[:8]] == [0, 1, 2, 4, 5, 6, 7, 8]
    assert np.array_equal(frames[6].image, frames[0].image)
    assert src.frames_failed == 1


def test_image_folder_gray_and_realtime(tmp_path):
    for i in range(4):
        gray = cv2.cvtColor(source_frame(i), cv2.COLOR_RGB2GRAY)
        assert cv2.imwrite(str(tmp_path / f"g{i}.jpg"), gray)
    clock = SessionClock()
    with ImageFolderSource(tmp_path, fps=20, clock=clock, realtime=True) as src:
        start = clock.now()
        frames = list(src)
        elapsed = clock.now() - start
    assert len(frames) == 4
    assert frames[0].image.shape == (H, W, 3)
    im = frames[0].image.astype(int)
    assert np.array_equal(im[..., 0], im[..., 1]) and np.array_equal(im[..., 1], im[..., 2])
    assert elapsed >= 0.8 * 3 / 20


@pytest.mark.parametrize("case", ["missing", "empty", "no_images", "all_bad"])
def test_image_folder_errors(tmp_path, case):
    d = tmp_path / "imgs"
    if case != "missing":
        d.mkdir()
    if case == "no_images":
        (d / "readme.txt").write_text("x")
    if case == "all_bad":
        (d / "a.png").write_bytes(b"nope")
        (d / "b.jpg").write_bytes(b"")
    src = ImageFolderSource(d)
    with pytest.raises(CameraError) as info:
        src.open()
    assert str(d) in str(info.value)
    assert info.value.status is (SourceStatus.MISSING if case == "missing" else SourceStatus.ERROR)
    assert src.read() is None
    if case == "all_bad":
        assert src.frames_failed == 2


# ---------------------------------------------------------------------------------------
# cameras (this machine has none)
# ---------------------------------------------------------------------------------------
def test_missing_camera_is_reported_fast_and_clearly():
    clock = SessionClock()
    src = CameraSource(7, clock)
    assert src.status is SourceStatus.CLOSED
    assert src.read() is None
    start = time.monotonic()
    with pytest.raises(CameraError) as info:
        src.open()
    assert time.monotonic() - start < 3.0
    msg = str(info.value)
    assert "camera" in msg.lower() and "7" in msg
    assert info.value.status is SourceStatus.MISSING
    assert src.status is SourceStatus.MISSING and src.status_message == msg
    assert src.read() is None  # no exception after a failed open
    assert src.reopen() is False and src.status is SourceStatus.MISSING
    src.close()
    assert src.status is SourceStatus.MISSING  # the reason stays readable


def test_missing_camera_through_the_context_manager():
    with pytest.raises(CameraError, match="No camera at index 7"):
        with open_source("7"):
            pass


# ---------------------------------------------------------------------------------------
# open_source
# ---------------------------------------------------------------------------------------
def test_open_source_dispatch(video, image_folder, tmp_path):
    clock = SessionClock()
    assert isinstance(open_source(0, clock), CameraSource)
    cam = open_source(" 3 ", clock)
    assert isinstance(cam, CameraSource) and cam.index == 3 and cam.clock is clock
    folder = open_source(str(image_folder), clock, realtime=False, fps=12)
    assert isinstance(folder, ImageFolderSource) and folder.fps == 12 and not folder.realtime
    vid = open_source(video, clock)  # a Path works too
    assert isinstance(vid, VideoFileSource) and vid.realtime and vid.clock is clock
    assert vid.status is SourceStatus.CLOSED  # not opened yet
    missing = open_source(tmp_path / "nope.mp4")
    assert isinstance(missing, VideoFileSource)
    with pytest.raises(CameraError) as info:
        missing.open()
    assert info.value.status is SourceStatus.MISSING
    with open_source(str(video), realtime=False) as src:
        assert src.read().image.shape == (H, W, 3)


def test_missing_camera_through_opencv_backends():
    """With an explicit backend the source asks OpenCV itself (no /dev shortcut)."""
    src = CameraSource(7, SessionClock(), backend=cv2.CAP_ANY)
    start = time.monotonic()
    with pytest.raises(CameraError, match="No camera at index 7") as info:
        src.open()
    assert time.monotonic() - start < 3.0
    assert info.value.status is SourceStatus.MISSING and not src.is_open


def test_video_realtime_long_pause_restarts_pacing(video):
    clock = SessionClock()
    with VideoFileSource(video, clock=clock, realtime=True) as src:
        src.read()
        time.sleep(1.3)  # longer than the 1 s catch-up limit: no dropping spree
        late = src.read()
        t_late = clock.now()
        nxt = src.read()
    assert late.index == 1 and src.frames_dropped == 0
    assert nxt.index == 2 and nxt.t - t_late >= 0.8 / FPS  # paced again from there
