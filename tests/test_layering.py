"""Only ``ifllm_lab/ui/`` may import Qt or pyqtgraph (anywhere in a file, also inside
functions): everything else stays plain Python and numpy, usable without a display."""
from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ifllm_lab"
QT_IMPORT = re.compile(r"^\s*(from|import)\s+(PySide6|PyQt[56]|pyqtgraph|shiboken6)\b", re.MULTILINE)


def test_only_the_ui_package_imports_qt():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "ui":
            continue
        for m in QT_IMPORT.finditer(path.read_text(encoding="utf-8")):
            line = path.read_text(encoding="utf-8")[: m.start()].count("\n") + 1
            offenders.append(f"ifllm_lab/{rel}:{line}: {m.group(0).strip()}")
    assert offenders == [], "Qt imported outside ifllm_lab/ui/:\n" + "\n".join(offenders)
