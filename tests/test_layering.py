"""The package's layers, checked on every import statement of every module: at the top
of a file or inside a function, relative or absolute, and ``importlib.import_module`` /
``__import__`` with a literal name.

- Qt (PySide6, pyqtgraph, superqt, ...) only in ``ifllm_lab/ui/``: everything else stays
  plain Python and numpy, usable without a display.
- torch and the training libraries only in the DPO worker module, which runs in its own
  process: the window and the recorder never load them.
- A package imports only from its own layer or the layers below it (``LAYERS``).
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.repo import PACKAGE

QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph", "superqt", "qtpy")
TRAINING = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "submitit")
QT_HOME = ("ifllm_lab.ui",)
TRAINING_HOME = ("ifllm_lab.dpo.worker",)  # the one module that trains (its own process)

# top to bottom: a part of the package may import its own layer and those below it
LAYERS: list[set[str]] = [
    {"__main__", "cli"},  # the command line
    {"ui"},  # Qt: windows, widgets, the Qt side of commands and benchmarks
    {"study", "bench"},  # the study flow, Qt-free benchmarks
    {"dpo"},  # preference pairs and DPO jobs (the worker module alone trains)
    {"reward"},  # reward models trained on the features
    {"importers", "features"},  # data from elsewhere, implicit features
    {"synthetic"},  # generated faces, videos and sessions (benchmarks and tests)
    {"analysis", "llm"},  # events, layout and AOIs, metrics, replay data; chat backends
    {"gaze", "camera", "jobs"},  # webcam gaze, frame sources, long work
    {"session"},  # the session file
    {"config", "console", "paths", "workers", ""},  # settings, exit statuses, bundled files, worker processes, the version
]


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. ifllm_lab.gaze.tracker
    target: str  # the imported module, e.g. ifllm_lab.session.writer or numpy
    line: int

    def __str__(self) -> str:
        path = self.module.replace(".", "/") + ".py"
        return f"{path}:{self.line}: imports {self.target}"


def _module_name(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts.pop()
    return ".".join(parts), is_pkg


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def imports_of(path: Path) -> list[Import]:
    module, is_pkg = _module_name(path)
    package = module if is_pkg else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [Import(module, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append(Import(module, target, node.lineno))
            for a in node.names:  # from . import a, b: a name may be a module of its own
                sub = f"{target}.{a.name}"
                where = PACKAGE.parent.joinpath(*sub.split("."))
                if where.is_dir() or where.with_suffix(".py").is_file():
                    out.append(Import(module, sub, node.lineno))
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in ("import_module", "__import__") and node.args and _literal(node.args[0]):
                target = _literal(node.args[0])
                if target.startswith("."):
                    target = package + target if target != "." else package
                out.append(Import(module, target, node.lineno))
    return out


def all_imports() -> list[Import]:
    return [imp for path in sorted(PACKAGE.rglob("*.py")) for imp in imports_of(path)]


def _under(name: str, roots) -> bool:
    return any(name == r or name.startswith(r + ".") for r in roots)


def _part(module: str) -> str:
    """The package part of ``ifllm_lab.X.Y``: ``X`` ('' for the package's own __init__)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(part: str) -> int:
    for i, names in enumerate(LAYERS):
        if part in names:
            return i
    raise AssertionError(f"ifllm_lab.{part} is in no layer: add it to LAYERS in tests/test_layering.py")


def test_only_the_ui_package_imports_qt():
    offenders = [str(i) for i in all_imports() if _under(i.target, QT) and not _under(i.module, QT_HOME)]
    assert offenders == [], "Qt imported outside ifllm_lab/ui/:\n" + "\n".join(offenders)


def test_only_the_dpo_worker_imports_the_training_libraries():
    offenders = [str(i) for i in all_imports() if _under(i.target, TRAINING) and not _under(i.module, TRAINING_HOME)]
    assert offenders == [], "training libraries imported outside the DPO worker:\n" + "\n".join(offenders)


def test_every_part_of_the_package_has_a_layer():
    parts = {_part(_module_name(p)[0]) for p in PACKAGE.rglob("*.py")}
    for part in parts:
        _layer(part)


def test_no_part_imports_a_layer_above_it():
    offenders = []
    for imp in all_imports():
        if not _under(imp.target, ("ifllm_lab",)):
            continue
        src, dst = _part(imp.module), _part(imp.target)
        if _layer(dst) < _layer(src):
            offenders.append(f"{imp} (layer {sorted(LAYERS[_layer(src)])} may not import "
                             f"{sorted(LAYERS[_layer(dst)])})")
    assert offenders == [], "imports against the layers:\n" + "\n".join(offenders)


@pytest.mark.parametrize("source, expected", [
    ("import PySide6.QtCore\n", "PySide6.QtCore"),
    ("def f():\n    from pyqtgraph import PlotWidget\n", "pyqtgraph"),
    ("import importlib\nm = importlib.import_module('torch')\n", "torch"),
    ("m = __import__('trl')\n", "trl"),
    ("from ..ui import window\n", "ifllm_lab.ui"),
    ("from .. import cli\n", "ifllm_lab.cli"),
])
def test_the_checker_sees_every_kind_of_import(tmp_path, monkeypatch, source, expected):
    """The rules above are only as good as the import finder: it must see lazy, relative
    and by-name imports."""
    pkg = tmp_path / "ifllm_lab" / "session"
    pkg.mkdir(parents=True)
    (tmp_path / "ifllm_lab" / "cli").mkdir()
    f = pkg / "probe.py"
    f.write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "ifllm_lab")
    targets = {i.target for i in imports_of(f)}
    assert expected in targets, targets
