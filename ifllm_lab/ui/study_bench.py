"""``ifllm-lab bench study``: how smooth the participant's window stays through a whole
session, with and without the live monitor beside it.

A simulated participant (:mod:`~ifllm_lab.ui.pilot`) runs the same pairwise study on a
rendered face video with the bundled LLM, once with the participant window alone and once
with the monitor window open in the same process, alternating the order run by run. A
2 ms timer on the GUI thread measures every gap while the participant asks, reads and
rates (the chat and questionnaire stages): the longest, the 99th and 99.9th percentiles.
A stall is a moment the window cannot follow the mouse, paint a streamed token or take a
click."""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np


def _face_video(path: str, size: tuple[int, int]) -> None:
    from ..synthetic.face import FaceRenderer, GazeScene, write_gaze_video

    w, h = size
    targets = [(w * 0.15, h * 0.2), (w * 0.85, h * 0.2), (w * 0.5, h * 0.5), (w * 0.15, h * 0.8), (w * 0.85, h * 0.8)]
    write_gaze_video(path, targets, renderer=FaceRenderer(), scene=GazeScene(w, h), frames_per_target=15)


def _short_calibration(folder: str) -> dict:
    """Five-point calibration and validation patterns with short dwells, and a one-point
    drift check (files in ``folder``)."""
    import json

    corners = [[0.5, 0.5], [0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9]]
    out = {}
    for key, purpose, points, dwell in (("pattern", "calibration", corners, 0.8),
                                        ("validation", "validation", corners[::-1], 0.6),
                                        ("drift", "drift", [[0.5, 0.5]], 0.6)):
        path = os.path.join(folder, f"{purpose}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"name": purpose, "kind": "points", "purpose": purpose, "points": points, "dwell_s": dwell,
                       "settle_s": 0.25, "shuffle": False}, f)
        out[key] = path
    return out


def _one_session(folder: str, video: str, size: tuple[int, int], questions: int, monitor: bool) -> dict:
    from PySide6.QtCore import QEventLoop, QTimer

    from ..config import config_from_dict
    from ..gaze.face_position import FacePositionTargets
    from .pilot import PilotParticipant
    from .study_app import StudyApp

    cfg = config_from_dict({
        "study": {"name": "bench", "mode": "pairwise", "questions": questions, "data_folder": folder,
                  "questionnaire": ["How natural did the conversation feel? (1-5)"]},
        "screen": {"width_px": size[0], "height_px": size[1]},
        "camera": {"source": video},
        "calibration": _short_calibration(os.path.dirname(video)),  # not what is measured: kept short
        "llm": [{"name": "small", "max_tokens": 48, "seed": 7}],
    }, "<bench>")
    # the rendered face is a close-up: let the face guide accept it as a participant at 60 cm
    app = StudyApp(cfg, countdown_s=0.4, face_targets=FacePositionTargets(min_distance_mm=150.0))
    app.resize(*size)
    app.show()
    mon = None
    if monitor:
        from .monitor import MonitorWindow

        mon = MonitorWindow(app)
        mon.resize(1280, 800)
        mon.show()
    gaps: list[float] = []
    last = [None]

    def tick() -> None:
        now = time.perf_counter()
        if last[0] is not None and app.stage in ("chat", "questionnaire"):
            gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(2)
    timer.timeout.connect(tick)
    report: dict = {}
    loop = QEventLoop()
    pilot = PilotParticipant(app, timeout_s=600)
    pilot.finished.connect(lambda r: (report.update(r), loop.quit()))
    timer.start()
    pilot.start()
    loop.exec()
    timer.stop()
    out = {"ok": bool(report.get("ok")), "problem": report.get("problem", ""), "seconds": report.get("seconds"),
           "gaps": np.array(gaps) * 1000.0}
    if mon is not None:
        out["monitor_refreshes"] = mon.refreshes
        out["monitor_refresh_ms_max"] = round(mon.refresh_ms_max, 1)
        mon.close()
        mon.deleteLater()
    app.close()
    app.deleteLater()
    return out


def bench_study(runs: int = 1, questions: int = 2, folder: str | None = None) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from .style import application

    qapp = application()
    size = (1280, 720)
    res: dict = {"runs": runs, "questions": questions}
    stats: dict[str, dict[str, list]] = {m: {"max": [], "p99": [], "p999": [], "seconds": []}
                                         for m in ("alone", "monitor")}
    with tempfile.TemporaryDirectory(prefix="ifllm-bench-study-", dir=folder) as tmp:
        video = os.path.join(tmp, "face.mp4")
        _face_video(video, size)
        for r in range(runs):
            for mode in ("alone", "monitor") if r % 2 == 0 else ("monitor", "alone"):
                one = _one_session(os.path.join(tmp, f"data-{r}-{mode}"), video, size, questions, mode == "monitor")
                qapp.processEvents()
                if not one["ok"]:
                    raise RuntimeError(f"the piloted session did not complete: {one['problem']}")
                g = one["gaps"]
                stats[mode]["max"].append(round(float(g.max()), 1))
                stats[mode]["p99"].append(round(float(np.percentile(g, 99)), 2))
                stats[mode]["p999"].append(round(float(np.percentile(g, 99.9)), 2))
                stats[mode]["seconds"].append(round(float(one["seconds"]), 1))
                if mode == "monitor":
                    res["monitor_refresh_ms_max"] = max(res.get("monitor_refresh_ms_max", 0.0),
                                                        one["monitor_refresh_ms_max"])
    for mode, s in stats.items():
        res[f"{mode}_stall_ms_max"] = s["max"]
        res[f"{mode}_stall_ms_p99"] = s["p99"]
        res[f"{mode}_stall_ms_p999"] = s["p999"]
        res[f"{mode}_session_s"] = s["seconds"]
    return res
