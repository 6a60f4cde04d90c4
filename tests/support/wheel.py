"""Building and installing the package's wheel in tests, without network."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .repo import PACKAGE, REPO


def pip(*args: str, cwd: Path, python: str | os.PathLike = sys.executable, env: dict | None = None) -> str:
    """``python -m pip ARGS`` in ``cwd``; its output, or an assertion naming what pip said."""
    env = {**(os.environ if env is None else env), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    r = subprocess.run([str(python), "-m", "pip", *args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, f"pip {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def build_wheel(src: Path, out: Path) -> Path:
    """The wheel of a copy (in ``src``) of the checkout's pyproject.toml, README.md and
    ifllm_lab/, built into ``out`` without network (``--no-build-isolation --no-index``), so
    that the checkout is left as it is."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(PACKAGE, src / "ifllm_lab", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), str(src), cwd=src)
    (whl,) = out.glob("ifllm_lab-*.whl")
    return whl
