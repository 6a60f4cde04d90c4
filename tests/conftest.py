"""Shared fixtures: the real IFLLM development data, unpacked and imported once per run."""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RELEASE_ARCHIVE = SHARED / "data" / "ifllm-dev.tar.xz"


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
