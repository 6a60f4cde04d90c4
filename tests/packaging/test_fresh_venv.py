"""``pip install`` of the wheel into a fresh virtual environment (not editable) gives a
working ``ifllm-lab app --camera VIDEO --check 30`` and ``ifllm-lab bench gaze``, run from
a folder outside the checkout with nothing pointing at it.

The dependencies (MediaPipe, PySide6, llama.cpp, ...) are not installed again: a ``.pth``
file in the new environment names the site-packages folders of the interpreter running
the tests. A plain folder line of a ``.pth`` file is only added to ``sys.path``; the
``.pth`` files inside that folder are not run, so an editable install of the checkout
there (its import hook) stays out, and the package can only come from the wheel. The
first test checks exactly that.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.repo import PACKAGE, REPO
from tests.support.wheel import pip

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class FreshVenv:
    root: Path
    python: Path
    scripts: Path  # the console scripts: ifllm-lab
    purelib: Path  # its own site-packages, where the wheel went
    home: Path  # HOME of the commands (the app's default data folder is ~/ifllm-data)
    cwd: Path  # where the commands run: outside the checkout

    def env(self) -> dict:
        """The environment of a user who activated the fresh venv: no PYTHONPATH or other
        PYTHON* setting, no pip or IFLLM settings, a HOME of its own, Qt offscreen."""
        drop = ("PYTHON", "PIP_", "IFLLM_", "VIRTUAL_ENV", "CONDA_", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
                "XDG_DATA_HOME")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(HOME=str(self.home), USERPROFILE=str(self.home), VIRTUAL_ENV=str(self.root),
                   PATH=str(self.scripts) + os.pathsep + os.environ.get("PATH", ""), QT_QPA_PLATFORM="offscreen",
                   PYTHONDONTWRITEBYTECODE="1")  # the dependencies' folders are not ours to write in
        return env

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*args], cwd=self.cwd, env=self.env(), capture_output=True, text=True, timeout=timeout)


def _inside(path: str | os.PathLike, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def _of_checkout(path: str | os.PathLike) -> bool:
    """A file of the checkout's package or tests, or the checkout itself (as a sys.path entry).
    The checkout's .venv/ is not: the dependencies may live there."""
    return Path(path).resolve() == REPO.resolve() or _inside(path, PACKAGE) or _inside(path, REPO / "tests")


def _dependency_dirs() -> list[str]:
    """The site-packages folders of the interpreter running the tests (where the
    dependencies are installed)."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d) and not _of_checkout(d)]


def _last_json(out: str) -> dict:
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert lines, f"no JSON line in:\n{out[-3000:]}"
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def fresh(wheel, tmp_path_factory) -> FreshVenv:
    """The wheel installed with pip into a new venv whose dependencies are this interpreter's."""
    for module in ("venv", "ensurepip"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"this Python has no {module!r} module, so no virtual environment with pip can be made "
                        "(Debian and Ubuntu: apt install python3-venv)")
    base = tmp_path_factory.mktemp("fresh-venv")
    assert not _inside(base, REPO), f"the temporary folder {base} is inside the checkout"
    root = base / "venv"
    r = subprocess.run([sys.executable, "-m", "venv", str(root)], cwd=base, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, f"python -m venv failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    home, cwd = base / "home", base / "elsewhere"
    home.mkdir()
    cwd.mkdir()
    probe = subprocess.run([str(python), "-c", "import json, sysconfig; print(json.dumps(sysconfig.get_paths()))"],
                           cwd=cwd, capture_output=True, text=True, timeout=60,
                           env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
    assert probe.returncode == 0, probe.stderr[-2000:]
    paths = json.loads(probe.stdout)
    fresh = FreshVenv(root=root, python=python, scripts=Path(paths["scripts"]), purelib=Path(paths["purelib"]),
                      home=home, cwd=cwd)
    # pip runs before the dependencies are visible: it sees only the new venv
    pip("install", "--no-deps", "--no-index", str(wheel), cwd=cwd, python=python, env=fresh.env())
    deps = _dependency_dirs()
    assert deps, "the interpreter running the tests has no site-packages folder"
    (fresh.purelib / "ifllm-test-dependencies.pth").write_text("".join(d + "\n" for d in deps), encoding="utf-8")
    return fresh


# run in the fresh venv: where the package and every module loaded with it come from
_PROBE = r"""
import importlib.machinery, json, sys
import ifllm_lab, ifllm_lab.cli, ifllm_lab.bench, ifllm_lab.ui.study_app
purelib = sys.argv[1]
others = [p for p in sys.path if p and not p.startswith(purelib)]
spec = importlib.machinery.PathFinder.find_spec("ifllm_lab", others)
print(json.dumps({
    "package": ifllm_lab.__file__,
    "sys_path": sys.path,
    "module_files": sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())} - {""}),
    "package_files": sorted({getattr(m, "__file__", None) or "" for n, m in list(sys.modules.items())
                             if n == "ifllm_lab" or n.startswith("ifllm_lab.")} - {""}),
    "meta_path": [c.__module__ + "." + c.__qualname__ for c in (f if isinstance(f, type) else type(f)
                                                               for f in sys.meta_path)],
    "elsewhere": spec.origin if spec is not None else None,
}))
"""


def test_the_fresh_venv_imports_the_wheel_and_nothing_of_the_checkout(fresh):
    r = fresh.run(str(fresh.python), "-c", _PROBE, str(fresh.purelib), timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    got = _last_json(r.stdout)
    assert _inside(got["package"], fresh.purelib), f"imported {got['package']}, not the wheel in {fresh.purelib}"
    assert [p for p in got["sys_path"] if p and _of_checkout(p)] == [], "the checkout is on sys.path"
    from_checkout = [f for f in got["module_files"] if _of_checkout(f)]
    assert from_checkout == [], f"modules loaded from the checkout: {from_checkout[:5]}"
    not_wheel = [f for f in got["package_files"] if not _inside(f, fresh.purelib)]
    assert len(got["package_files"]) > 10 and not_wheel == [], f"ifllm_lab modules not from the wheel: {not_wheel[:5]}"
    hooks = [f for f in got["meta_path"] if "editable" in f.lower()]
    assert hooks == [], f"an editable install's import hook is active in the fresh venv: {hooks}"
    # outside the venv's own site-packages the package is nowhere (or at least not the checkout)
    assert got["elsewhere"] is None or not _of_checkout(got["elsewhere"]), got["elsewhere"]
    script = fresh.scripts / ("ifllm-lab.exe" if os.name == "nt" else "ifllm-lab")
    assert script.is_file(), f"pip installed no ifllm-lab command in {fresh.scripts}"


def test_app_self_check_from_the_fresh_venv(fresh, face_video):
    r = fresh.run(str(fresh.scripts / "ifllm-lab"), "app", "--camera", face_video, "--check", "30")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    rep = _last_json(r.stdout)
    assert rep["ok"] and rep["camera_ok"] and rep["llm_ok"] and rep["study_ok"], rep
    assert rep["faces_seen"] >= 5 and "SmolLM2" in rep["llm"], rep
    assert rep["platform"] == "offscreen"
    assert not list(fresh.home.rglob("*.h5")), "the self-check recorded a session"


def test_gaze_benchmark_from_the_fresh_venv(fresh, tmp_path):
    folder = tmp_path / "bench"
    folder.mkdir()
    r = fresh.run(str(fresh.scripts / "ifllm-lab"), "bench", "gaze", "--frames", "30", "--json", "--folder",
                  str(folder))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    got = _last_json(r.stdout)
    assert got["video"] == "rendered face, 640x480"  # rendered from the photo shipped in the wheel
    assert 10 <= got["frames"] <= 30, got
    for key in ("landmarker_ms", "pipeline_ms", "fps", "overhead_ratio", "landmarker_mean_ms", "pipeline_mean_ms",
                "p95_latency_ms"):
        assert math.isfinite(got[key]) and got[key] > 0, (key, got)
    assert got["pipeline_ms"] < 5_000 and got["fps"] < 10_000, got
    assert got["live_frames"] > 0 and got["dropped"] >= 0, got
    assert list(folder.iterdir()) == []  # the rendered video and session files are removed
