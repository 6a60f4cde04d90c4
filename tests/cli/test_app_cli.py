"""``ifllm-lab app`` as a user starts it: the self-check on the offscreen platform and in a
real X11 window (Xvfb), and clear refusals of bad input."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.support.child_process import child_env

CLI = [sys.executable, "-m", "ifllm_lab"]


def _run(args, env=None, timeout=180):
    return subprocess.run(CLI + args, capture_output=True, text=True, env=env or child_env(), timeout=timeout)


def _report(out: str) -> dict:
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert lines, out
    return json.loads(lines[-1])


def test_app_self_check_offscreen(tmp_path, face_video):
    shot = tmp_path / "app.png"
    p = _run(["app", "--camera", face_video, "--data", str(tmp_path / "data"), "--size", "1280x720",
              "--check", "90", "--screenshot", str(shot)])
    assert p.returncode == 0, p.stdout + p.stderr[-2000:]
    rep = _report(p.stdout)
    assert rep["ok"] and rep["camera_ok"] and rep["llm_ok"] and rep["faces_seen"] >= 5
    assert rep["window"] == [1280, 720] and "SmolLM2" in rep["llm"]
    assert shot.stat().st_size > 10_000
    assert not list((tmp_path / "data").rglob("*.h5"))  # nothing recorded without a participant


@pytest.mark.skipif(shutil.which("xvfb-run") is None,
                    reason="xvfb-run is not installed (apt install xvfb libxcb-icccm4 libxcb-keysyms1)")
def test_app_in_a_real_x11_window_full_screen(tmp_path, face_video):
    env = child_env()
    env.pop("QT_QPA_PLATFORM", None)  # the real xcb platform
    shot = tmp_path / "xcb.png"
    p = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1600x900x24"] + CLI
                       + ["app", "--camera", face_video, "--data", str(tmp_path / "data"), "--check", "90",
                          "--screenshot", str(shot)], capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    rep = _report(p.stdout)
    assert rep["platform"] == "xcb" and rep["ok"]
    assert rep["window"] == [1600, 900]  # full screen on the X screen
    assert shot.stat().st_size > 10_000


def test_app_refuses_bad_input_clearly(tmp_path):
    p = _run(["app", "--camera", str(tmp_path / "missing.mp4"), "--check", "5"])
    assert p.returncode == 2 and "no such video file" in p.stderr and "Traceback" not in p.stderr
    bad = tmp_path / "study.toml"
    bad.write_text('[study]\nmode = "sometimes"\n')
    p = _run(["app", "--study", str(bad), "--check", "5"])
    assert p.returncode == 2 and "study.mode" in p.stderr and "Traceback" not in p.stderr
    p = _run(["app", "--size", "big", "--check", "5"])
    assert p.returncode == 2 and "--size" in p.stderr


def test_app_check_reports_a_study_that_cannot_run(tmp_path, face_video):
    bad = tmp_path / "study.toml"
    bad.write_text('[study]\ndata_folder = "/proc/nope"\n[calibration]\npattern = "7-point"\n')
    p = _run(["app", "--study", str(bad), "--camera", face_video, "--check", "30"])
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    rep = _report(p.stdout)
    assert not rep["ok"] and not rep["study_ok"]
    assert [s.split(":")[0] for s in rep["study_problems"]] == ["calibration.pattern", "study.data_folder"]
    assert "the study cannot run: calibration.pattern: no calibration pattern '7-point'" in p.stderr
