"""The ifllm-lab command line as a user runs it: real processes, real files."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ifllm_lab import __version__

COMMANDS = ["import-ifllm", "inspect", "export", "recover", "bench"]


def run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "ifllm_lab", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_version_and_help():
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"ifllm-lab {__version__}"
    proc = run("--help")
    assert proc.returncode == 0
    for cmd in COMMANDS:
        assert cmd in proc.stdout


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_subcommand_has_help(cmd):
    proc = run(cmd, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: ifllm-lab {cmd}")


def test_console_script_installed():
    import shutil
    exe = shutil.which("ifllm-lab") or str(__import__("pathlib").Path(sys.executable).with_name("ifllm-lab"))
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_inspect_bad_files_exit_2_without_traceback(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00\x01 random bytes" * 50)
    proc = run("inspect", str(junk), str(tmp_path / "missing.h5"))
    assert proc.returncode == 2
    assert "not HDF5" in proc.stderr and "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bench_record_loses_nothing(tmp_path):
    proc = run("bench", "record", "--seconds", "3", "--mouse-hz", "1000", "--gaze-hz", "60",
               "--flood-rows", "100000", "--folder", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in ("mouse_sent", "mouse_written", "gaze_sent", "gaze_written", "lost", "rows_per_s",
                "max_enqueue_ms", "file_mb_per_hour"):
        assert key in out
    assert out["mouse_sent"] == out["mouse_written"] == 3000
    assert out["gaze_sent"] == out["gaze_written"] == 180
    assert out["lost"] == 0 and out["flood_lost"] == 0
    assert out["rows_per_s"] > 0 and out["file_mb_per_hour"] > 0
    assert list(tmp_path.iterdir()) == []  # temporary files cleaned up
