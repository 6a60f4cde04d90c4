"""Benchmarks (``ifllm_lab.bench``) on a plain install: the gaze benchmark renders its face
from the shipped photo without scikit-image, no benchmark here loads Qt, and the analysis
benchmark reports every figure. No speed is asserted: the figures are for people to read."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from ifllm_lab.bench import bench_analysis

from tests.support.child_process import child_env
from tests.support.repo import PACKAGE

# Run in a child where ``import skimage`` fails as on a plain install: a meta-path finder
# refuses it (and anything under it), and a stale entry in sys.modules cannot satisfy it.
_PLAIN_GAZE = r"""
import importlib.abc, json, sys

class NoScikitImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "skimage" or name.startswith("skimage."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoScikitImage())
sys.modules["skimage"] = None
try:
    import skimage  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("scikit-image could still be imported")

from ifllm_lab.bench import bench_gaze

result = bench_gaze(max_frames=30, folder=sys.argv[1])
loaded = sorted(m for m in sys.modules if m.startswith(("PySide6", "ifllm_lab.ui", "skimage"))
                and sys.modules[m] is not None)
print(json.dumps({"result": result, "loaded": loaded}))
"""


def test_bench_gaze_runs_without_scikit_image(tmp_path):
    p = subprocess.run([sys.executable, "-c", _PLAIN_GAZE, str(tmp_path)], capture_output=True, text=True,
                       env=child_env(), timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["loaded"] == [], "the gaze benchmark loaded Qt or scikit-image"
    r = out["result"]
    assert r["video"] == "rendered face, 640x480"
    assert 10 <= r["frames"] <= 30
    for key in ("landmarker_ms", "pipeline_ms", "fps", "overhead_ratio", "landmarker_mean_ms",
                "pipeline_mean_ms", "p95_latency_ms"):
        assert np.isfinite(r[key]) and r[key] > 0, (key, r)
    assert r["live_frames"] > 0 and r["dropped"] >= 0
    assert list(tmp_path.iterdir()) == []  # the rendered video and session files are removed


def test_no_module_of_the_package_imports_scikit_image():
    pattern = re.compile(r"^\s*(from|import)\s+skimage\b", re.MULTILINE)
    offenders = [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob("*.py"))
                 if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_benchmarks_outside_ui_do_not_import_qt():
    code = ("import sys, ifllm_lab.bench; "
            "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'ifllm_lab.ui'))))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "[]"


def test_bench_analysis_reports_every_figure(tmp_path):
    r = bench_analysis(samples=3000, snapshots=12, repeats=2, folder=str(tmp_path))
    timed = {"fit_calibration": "ms", "idt": "s", "ivt": "s", "map_points": "ms", "heatmap": "ms", "hit_one_point": "us"}
    expected = {f"{name}_{stat}_{unit}" for name, unit in timed.items() for stat in ("min", "median")}
    expected |= {"samples", "snapshots", "repeats", "fit_calibration_samples", "fit_calibration_kinds",
                 "gaze_samples", "true_fixations", "idt_fixations", "ivt_fixations", "layout_build_s",
                 "map_points_on_words"}
    assert set(r) == expected
    for name, unit in timed.items():
        lo, med = r[f"{name}_min_{unit}"], r[f"{name}_median_{unit}"]
        assert 0 < lo <= med, (name, r)
    assert r["fit_calibration_samples"] == 9 * 30 and r["fit_calibration_kinds"] >= 1
    assert r["gaze_samples"] == 3000
    # a 50 s scanpath at 60 Hz: both detectors find about the true fixations
    for name in ("idt", "ivt"):
        assert abs(r[f"{name}_fixations"] - r["true_fixations"]) <= max(3, 0.05 * r["true_fixations"]), r
    assert 0 < r["map_points_on_words"] < 1
    assert json.loads(json.dumps(r)) == r  # plain JSON
    assert list(tmp_path.iterdir()) == []  # the layout file is removed


def test_bench_analysis_refuses_sizes_it_cannot_measure():
    with pytest.raises(ValueError, match="samples"):
        bench_analysis(samples=10)
    with pytest.raises(ValueError, match="calibration_points"):
        bench_analysis(samples=1000, calibration_points=7)
