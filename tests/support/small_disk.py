"""A real small (and so soon full) disk for the tests: a tmpfs mounted in the test's folder."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(tmp_path: Path, size: str, name: str = "small-disk"):
    """A tmpfs of ``size`` (``"2m"``) mounted at ``tmp_path/name``, unmounted (and checked) after.

    Skips the test where mounting is not possible (not root, no ``mount``)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full disk needs root to mount a tmpfs")
    mnt = tmp_path / name
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)], check=False)
    assert not os.path.ismount(mnt)
