"""Screenshots of the workbench's Reward models tab for the README (no display needed).

Writes synthetic recorded pairwise sessions (two per participant: in one their gaze and
cursor give the choice away, in the other not), opens the workbench on them, trains from the tab (two model
kinds, every feature set, participant-grouped CV), and saves::

    docs/workbench-reward-1024.png    the tab at 1024 x 640
    docs/workbench-reward-1920.png    the tab at 1920 x 1080
    docs/workbench-reward-replay.png  a replay whose turn panel shows the model's prediction
    docs/workbench-reward-turn.png    that turn panel alone

Run from the repository root: ``python tools/screenshots_reward.py [--out docs]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUDY = "synthetic-study"


def study_session(path: Path, participant: str, *, seed: int, signal: float, turns: int) -> None:
    """One synthetic pairwise session (``make_study_session``)."""
    from ifllm_lab.synthetic.session import make_study_session

    make_study_session(str(path), participant, turns=turns, signal=signal, seed=seed)


def wait(app, until, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > end:
            raise TimeoutError("timed out")
        app.processEvents()
        time.sleep(0.02)


def grab(app, wb, size: tuple[int, int], path: Path) -> None:
    # the folder's rescan after the model was written shows in the status line: it ends first
    wait(app, lambda: not any(r.running for r, _shown in wb.runners), 120)
    wb.resize(*size)
    for _ in range(8):
        app.processEvents()
        time.sleep(0.02)
    wb.repaint()
    app.processEvents()
    if not wb.grab().save(str(path)):
        raise OSError(f"{path} could not be written")
    print(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs"), help="folder for the PNGs (default docs/)")
    ap.add_argument("--participants", type=int, default=14)
    ap.add_argument("--signal", type=float, default=0.6,
                    help="how much gaze and cursor give the choice away in one session of each participant (the "
                         "other: not at all)")
    ap.add_argument("--turns", type=int, default=6, help="questions per session")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="ifllm-reward-shots-"))
    try:
        return shoot(args, out, tmp)
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def shoot(args, out: Path, tmp: Path) -> int:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from ifllm_lab.ui.style import apply_dark_palette
    from ifllm_lab.ui.workbench import Workbench

    data = tmp / "lab-data"
    (data / STUDY).mkdir(parents=True)
    for i in range(args.participants):  # per participant: a session whose eyes tell, and one whose do not
        who = f"P{i + 1:02d}"
        study_session(data / STUDY / f"{who}-a.h5", who, seed=500 + i, signal=args.signal, turns=args.turns)
        study_session(data / STUDY / f"{who}-b.h5", who, seed=900 + i, signal=0.0, turns=args.turns)

    app = QApplication.instance() or QApplication(["ifllm-lab"])
    apply_dark_palette(app)
    settings = QSettings(str(tmp / "wb.ini"), QSettings.Format.IniFormat)
    wb = Workbench(str(data), settings=settings, cache_dir=str(tmp / "cache"))
    wb.resize(1920, 1080)
    wb.show()
    wait(app, lambda: wb.sessions.scans >= 1, 120)
    panel = wb.reward
    wb.tabs.setCurrentWidget(panel)
    kinds = list(panel.kind_boxes)
    for k in kinds[:2]:
        panel.kind_boxes[k].setChecked(True)
    runner = panel.train()
    if runner is None:
        raise SystemExit(f"nothing to train: {panel.status.text()}")
    wait(app, lambda: not runner.running, 900)
    if runner.state != "done":
        raise SystemExit(f"training {runner.state}: {panel.status.text()}")
    grab(app, wb, (1920, 1080), out / "workbench-reward-1920.png")
    grab(app, wb, (1024, 640), out / "workbench-reward-1024.png")

    # the model applied to an open replay: the turn panel shows its prediction
    view = wb.open_replay(str(data / STUDY / "P01-a.h5"))
    wb.tabs.setCurrentWidget(panel)
    apply = panel.apply_selected()
    if apply is None:
        raise SystemExit("the model could not be applied")
    wait(app, lambda: not apply.running, 300)
    wb.tabs.setCurrentWidget(view)
    wait(app, lambda: view.background is None or not view.background.running, 300)
    view.seek(view.data.turns[min(3, len(view.data.turns) - 1)].t + 12.0)
    wait(app, lambda: "Reward model" in view.turn_panel.toPlainText(), 10)
    grab(app, wb, (1920, 1080), out / "workbench-reward-replay.png")
    turn = out / "workbench-reward-turn.png"
    if not view.tabs.grab().save(str(turn)):  # the replay's side panel alone, at its size in the window
        raise OSError(f"{turn} could not be written")
    print(turn)
    wb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
