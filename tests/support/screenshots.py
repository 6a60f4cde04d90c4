"""Screenshots of widgets in tests: 1280 x 720 PNGs to ``$IFLLM_SCREENSHOTS`` (or the test's tmp folder)."""
from __future__ import annotations

import os
from pathlib import Path

W, H = 1280, 720


def shots_folder(tmp_path: Path) -> Path:
    d = Path(os.environ.get("IFLLM_SCREENSHOTS") or tmp_path / "screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def save(widget, shots: Path, name: str) -> Path:
    img = widget.grab().toImage()
    assert (img.width(), img.height()) == (W, H), (widget.size(), widget.minimumSizeHint())
    path = shots / f"{name}.png"
    assert img.save(str(path)), path
    return path
