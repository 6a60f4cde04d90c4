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

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.workbench_shots import finish, grab, open_workbench, parser, run, wait  # noqa: E402

STUDY = "synthetic-study"


def study_session(path: Path, participant: str, *, seed: int, signal: float, turns: int) -> None:
    """One synthetic pairwise session (``make_study_session``)."""
    from ifllm_lab.synthetic.session import make_study_session

    make_study_session(str(path), participant, turns=turns, signal=signal, seed=seed)


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--participants", type=int, default=14)
    ap.add_argument("--signal", type=float, default=0.6,
                    help="how much gaze and cursor give the choice away in one session of each participant (the "
                         "other: not at all)")
    ap.add_argument("--turns", type=int, default=6, help="questions per session")
    return run(shoot, ap.parse_args(argv), prefix="ifllm-reward-shots-")


def shoot(args, out: Path, tmp: Path) -> int:
    data = tmp / "lab-data"
    (data / STUDY).mkdir(parents=True)
    for i in range(args.participants):  # per participant: a session whose eyes tell, and one whose do not
        who = f"P{i + 1:02d}"
        study_session(data / STUDY / f"{who}-a.h5", who, seed=500 + i, signal=args.signal, turns=args.turns)
        study_session(data / STUDY / f"{who}-b.h5", who, seed=900 + i, signal=0.0, turns=args.turns)

    app, wb = open_workbench(data, tmp)
    panel = wb.reward
    wb.tabs.setCurrentWidget(panel)
    kinds = list(panel.kind_boxes)
    for k in kinds[:2]:
        panel.kind_boxes[k].setChecked(True)
    finish(app, panel.train(), "training", panel.status.text, 900)
    grab(app, wb, (1920, 1080), out / "workbench-reward-1920.png")
    grab(app, wb, (1024, 640), out / "workbench-reward-1024.png")

    # the model applied to an open replay: the turn panel shows its prediction
    view = wb.open_replay(str(data / STUDY / "P01-a.h5"))
    wb.tabs.setCurrentWidget(panel)
    finish(app, panel.apply_selected(), "application of the model", panel.status.text, 300)
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
