"""The files the app reads at run time are package data: a wheel built from this checkout
holds every file of ``ifllm_lab/data/`` (face model and its notice, consent text,
calibration patterns, example studies, the synthetic face), and a plain (not editable)
install of it finds them with :func:`ifllm_lab.paths.data_file` inside the installed
package, with the real MediaPipe face landmarker loading its model from there.

The wheel (the ``wheel`` fixture of this folder's conftest) is built without network from
a copy of the package, so the checkout is left as it is.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ifllm_lab import paths

from tests.support.repo import PACKAGE
from tests.support.wheel import pip

DATA = PACKAGE / "data"

#: Files the app cannot run without, as ``data_file`` parts.
NEEDED = [
    ("models", "face_landmarker.task"),
    ("models", "NOTICE"),
    ("consent", "consent.md"),
    ("calibration", "9-point.json"),
    ("calibration", "validation-9.json"),
    ("calibration", "README.md"),
    ("studies", "pairwise.toml"),
    ("synthetic", "face.png"),
    ("icons", "ifllm-lab.png"),
]


def _data_files() -> dict[str, int]:
    """Every file of the checkout's package data: path inside the wheel -> size in bytes."""
    return {f"ifllm_lab/data/{p.relative_to(DATA).as_posix()}": p.stat().st_size
            for p in DATA.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel installed (no dependencies) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    pip("install", "--no-deps", "--no-index", "--target", str(target), str(wheel), cwd=target)
    return target


def test_wheel_holds_every_bundled_file(wheel):
    expected = _data_files()
    for parts in NEEDED:
        assert "ifllm_lab/data/" + "/".join(parts) in expected, f"{parts} is missing from ifllm_lab/data/"
    with zipfile.ZipFile(wheel) as z:
        sizes = {i.filename: i.file_size for i in z.infolist()}
    missing = sorted(set(expected) - set(sizes))
    assert not missing, f"package data missing from {wheel.name}: {missing}"
    assert {k: sizes[k] for k in expected} == expected
    assert sizes["ifllm_lab/data/models/face_landmarker.task"] == 3_758_596


# run in a fresh interpreter against the installed wheel, from a folder outside the checkout
_PROBE = r"""
import json, sys
import ifllm_lab
from ifllm_lab.paths import data_dir, data_file, default_consent_path
from ifllm_lab.config import load_config
from ifllm_lab.gaze.calibration import PATTERN_DIR, list_patterns, load_pattern
from ifllm_lab.gaze.landmarks import FaceLandmarker, default_model_path
from ifllm_lab.synthetic.face import astronaut_face

needed = json.loads(sys.argv[1])
with FaceLandmarker(video=False) as lm:
    face = lm.detect(astronaut_face())
print(json.dumps({
    "package": ifllm_lab.__file__,
    "data_dir": str(data_dir()),
    "files": {"/".join(p): [str(data_file(*p)), data_file(*p).is_file()] for p in needed},
    "model": str(default_model_path()),
    "consent": str(default_consent_path()),
    "pattern_dir": str(PATTERN_DIR),
    "patterns": list_patterns(),
    "pattern_source": load_pattern("9-point").source,
    "study_mode": load_config(str(data_file("studies", "pairwise.toml"))).study.mode,
    "landmarker_model": str(lm.model_path),
    "face_found": face is not None,
}))
"""


def test_installed_wheel_finds_its_files_and_loads_the_face_model(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("IFLLM_LAB_PATTERNS", "PYTHONPATH", "PYTHONSAFEPATH")}
    env["PYTHONPATH"] = str(installed)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    r = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(NEEDED)], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    root = installed.resolve()

    def inside(p: str) -> bool:
        return Path(p).resolve().is_relative_to(root)

    assert inside(got["package"]), f"imported {got['package']}, not the installed wheel in {root}"
    assert Path(got["data_dir"]).resolve() == root / "ifllm_lab" / "data"
    for name, (path, is_file) in got["files"].items():
        assert inside(path) and is_file, f"{name}: {path} is not a file of the installed package"
    for key in ("model", "consent", "pattern_dir", "pattern_source", "landmarker_model"):
        assert inside(got[key]), (key, got[key])
    assert Path(got["model"]).name == "face_landmarker.task" and got["landmarker_model"] == got["model"]
    assert {"5-point", "9-point", "13-point", "validation-9", "drift-centre", "pursuit-lissajous"} <= set(got["patterns"])
    assert got["study_mode"] == "pairwise"
    assert got["face_found"], "the face landmarker loaded from the installed package found no face"


def test_data_file_in_a_pyinstaller_bundle(tmp_path, monkeypatch):
    bundle = tmp_path / "bundle"
    (bundle / "ifllm_lab" / "data" / "models").mkdir(parents=True)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    assert paths.data_dir() == bundle / "ifllm_lab" / "data"
    assert paths.data_file("models", "face_landmarker.task") == bundle / "ifllm_lab" / "data" / "models" / \
        "face_landmarker.task"
    # a bundle without the data folder: the package's own (where the modules were found)
    shutil.rmtree(bundle / "ifllm_lab")
    assert paths.data_dir().resolve() == DATA


def test_checkout_finds_the_package_data():
    assert paths.data_dir().resolve() == DATA
    for parts in NEEDED:
        assert paths.data_file(*parts).is_file(), parts
    assert paths.default_consent_path() == DATA / "consent" / "consent.md"
