"""Shared fixtures: the real IFLLM development data, unpacked and imported once per run, and
a rendered face video to play as the camera."""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.support.repo import RELEASE_ARCHIVE  # noqa: E402


def _need_release() -> Path:
    if not RELEASE_ARCHIVE.is_file():
        # CI checks for the archive before it runs the tests; elsewhere the tests that need it skip
        pytest.skip(f"the IFLLM development data is missing: {RELEASE_ARCHIVE} (shared/ must sit beside the "
                    "checkout)")
    return RELEASE_ARCHIVE


@pytest.fixture(scope="session")
def release_root(tmp_path_factory) -> Path:
    """The release unpacked (the folder holding query_logs_table.csv)."""
    archive = _need_release()
    dest = tmp_path_factory.mktemp("ifllm-release")
    with tarfile.open(archive, "r:xz") as tar:
        tar.extractall(dest, filter="data")
    return dest / "ifllm"


@pytest.fixture(scope="session")
def imported(tmp_path_factory):
    """(report, out_dir): the whole development archive imported with the real importer."""
    from ifllm_lab.importers.ifllm.release import import_release

    out = tmp_path_factory.mktemp("ifllm-sessions")
    report = import_release(str(_need_release()), str(out))
    return report, out


@pytest.fixture(scope="session")
def face_video(tmp_path_factory) -> str:
    """A face looking at six places of a 1280 x 720 screen in turn (3 s), played in a loop as
    the camera."""
    from ifllm_lab.synthetic.face import FaceRenderer, GazeScene, write_gaze_video

    from tests.support.screenshots import H, W

    path = tmp_path_factory.mktemp("camera") / "face.mp4"
    scene = GazeScene(W, H)
    targets = [(200, 150), (1080, 150), (640, 360), (200, 570), (1080, 570), (640, 150)]
    write_gaze_video(str(path), targets, renderer=FaceRenderer(), scene=scene, frames_per_target=15)
    return str(path)
