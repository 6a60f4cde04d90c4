"""What the workbench screenshot tools share (no display needed): their command line and
temporary folder, the workbench opened on synthetic data, waiting for its jobs and saving
the window at a size."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parser(doc: str) -> argparse.ArgumentParser:
    """The tool's options, ``--out`` (the folder for the PNGs) among them; ``doc``: the
    tool's docstring, whose first line describes it."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs"), help="folder for the PNGs (default docs/)")
    return ap


def run(shoot, args, *, prefix: str) -> int:
    """``shoot(args, out, tmp)`` with the folder ``args.out`` made and a temporary folder,
    removed afterwards."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return shoot(args, out, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def open_workbench(data: Path, tmp: Path):
    """The workbench on the data folder ``data`` (its settings and feature cache in ``tmp``),
    shown at 1920 x 1080 once the folder is scanned; returns (app, workbench)."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from ifllm_lab.ui.style import apply_dark_palette
    from ifllm_lab.ui.workbench import Workbench

    app = QApplication.instance() or QApplication(["ifllm-lab"])
    apply_dark_palette(app)
    settings = QSettings(str(tmp / "wb.ini"), QSettings.Format.IniFormat)
    wb = Workbench(str(data), settings=settings, cache_dir=str(tmp / "cache"))
    wb.resize(1920, 1080)
    wb.show()
    wait(app, lambda: wb.sessions.scans >= 1, 120)
    return app, wb


def wait(app, until, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > end:
            raise TimeoutError("timed out")
        app.processEvents()
        time.sleep(0.02)


def finish(app, runner, what: str, why, timeout_s: float) -> None:
    """Wait for a job started from the window; exit naming ``what`` and ``why()`` (what the
    tab says) when it could not start or did not end done."""
    if runner is None:
        raise SystemExit(f"no {what}: {why()}")
    wait(app, lambda: not runner.running, timeout_s)
    if runner.state != "done":
        raise SystemExit(f"{what} {runner.state}: {why()}")


def grab(app, wb, size: tuple[int, int], path: Path) -> None:
    """Save the window at ``size`` as ``path`` once its jobs have ended (a folder's rescan
    shows in the status line: it ends first)."""
    wait(app, lambda: not any(r.running for r, _shown in wb.runners), 120)
    wb.resize(*size)
    for _ in range(8):
        app.processEvents()
        time.sleep(0.02)
    wb.repaint()
    app.processEvents()
    img = wb.grab()
    if (img.width(), img.height()) != size:
        raise SystemExit(f"{path.name}: the window is {img.width()} x {img.height()}, not {size[0]} x {size[1]}")
    if not img.save(str(path)):
        raise OSError(f"{path} could not be written")
    print(path)
