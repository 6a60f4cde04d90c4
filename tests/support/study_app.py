"""Driving the participant study app (Qt offscreen) as a participant and researcher would:
a study settings dict for a video camera, the app made and shown, clicks, questions asked,
answers rated, the questionnaire, mouse moves posted at a platform's rate."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QPushButton

from ifllm_lab.config import config_from_dict
from ifllm_lab.ui.calibration_screens import FacePositionTargets
from ifllm_lab.ui.study_app import StudyApp

from .screenshots import H, W, save

# the rendered photo is a close-up (~20 cm from the camera by its landmarks)
CLOSE_FACE_OK = FacePositionTargets(min_distance_mm=150.0)


def _pattern(folder: Path, name: str, purpose: str, points, dwell: float, shuffle: bool = False) -> str:
    p = folder / f"{name}.json"
    p.write_text(json.dumps({"name": name, "kind": "points", "purpose": purpose, "points": points,
                             "dwell_s": dwell, "settle_s": 0.25, "shuffle": shuffle}))
    return str(p)


def study(tmp_path: Path, video: str, **study) -> dict:
    pats = tmp_path / "patterns"
    pats.mkdir(exist_ok=True)
    corners = [[0.5, 0.5], [0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9]]
    return {
        "study": {"name": "e2e", "data_folder": str(tmp_path / "data"),
                  "questionnaire": ["How natural did the conversation feel? (1-5)", "How much did you trust the "
                                    "answers? (1-5)"], **study},
        "screen": {"width_px": W, "height_px": H},
        "camera": {"source": video},
        "calibration": {"pattern": _pattern(pats, "cal", "calibration", corners, 0.9),
                        "validation": _pattern(pats, "val", "validation", corners[::-1], 0.7),
                        "drift": _pattern(pats, "drift", "drift", [[0.5, 0.5]], 0.7)},
        "llm": [{"name": "small", "max_tokens": 24, "seed": 11}],
    }


def make_app(qtbot, cfg: dict, **kw) -> StudyApp:
    app = StudyApp(config_from_dict(cfg, "<test>"), countdown_s=0.4, face_targets=CLOSE_FACE_OK, **kw)
    qtbot.addWidget(app)
    app.resize(W, H)
    app.show()
    qtbot.waitExposed(app)
    return app


def click(qtbot, button: QPushButton) -> None:
    assert button.isVisible() and button.isEnabled(), button.objectName() or button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def named(app, cls, name):
    w = app.findChild(cls, name)
    assert w is not None, name
    return w


def wait_setup_ready(qtbot, app) -> None:
    qtbot.waitUntil(lambda: app._llm_ok is not None, timeout=60_000)
    qtbot.waitUntil(lambda: app.setup_page.preview.status.good, timeout=20_000)


def calibrate(qtbot, app, shots: Path | None = None) -> None:
    """Face guide -> calibration -> validation -> the researcher continues on the report."""
    wiz = app.wizard
    assert app.stage == "calibration" and wiz.stage == "face"
    qtbot.waitUntil(lambda: wiz.face_guide.status.good, timeout=20_000)
    if shots:
        save(app, shots, "app-3-face-guide")
    QTest.keyClick(wiz.face_guide, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: wiz.stage == "calibration", timeout=5_000)
    if shots:
        qtbot.waitUntil(lambda: wiz.target_screen.state.stage == "target", timeout=5_000)
        save(app, shots, "app-4-calibration-target")
    qtbot.waitUntil(lambda: wiz.stage in ("report", "failed"), timeout=60_000)
    if shots:
        save(app, shots, "app-5-validation-report")
    click(qtbot, wiz.report_view.continue_button)
    qtbot.waitUntil(lambda: app.stage == "chat", timeout=5_000)


class StallMeter:
    """The longest gap between runs of a 2 ms timer: how long the GUI thread was busy."""

    def __init__(self):
        self.timer = QTimer()
        self.timer.setInterval(2)
        self.timer.timeout.connect(self._tick)
        self.last = None
        self.max_gap = 0.0
        self.ticks = 0

    def _tick(self):
        now = time.perf_counter()
        if self.last is not None:
            self.max_gap = max(self.max_gap, now - self.last)
        self.last = now
        self.ticks += 1

    def start(self):
        self.last = None
        self.timer.start()

    def stop(self):
        self.timer.stop()


def ask(qtbot, app, text: str, stall: StallMeter | None = None, shots: Path | None = None, shot_name: str = ""):
    page = app.chat_page
    assert page.state == "asking"
    box = named(app, type(page.question), "question")
    QTest.keyClicks(box, text)
    if stall is not None:
        stall.start()
    QTest.keyClick(box, Qt.Key.Key_Return)
    assert page.state == "answering"
    if shots:
        qtbot.waitUntil(lambda: len(page.panels["left"].view.text()) > 20, timeout=30_000)
        if stall is not None:
            stall.stop()  # a screenshot blocks the GUI thread itself: not counted
        save(app, shots, shot_name)
        if stall is not None:
            stall.start()
    qtbot.waitUntil(lambda: page.state == "rating", timeout=90_000)
    if stall is not None:
        stall.stop()


def rate(qtbot, app, left: int, right: int | None = None, prefer: str | None = None) -> None:
    page = app.chat_page
    assert not page.next_button.isEnabled()
    click(qtbot, named(app, QPushButton, f"likert_left_{left}"))
    if right is not None:
        assert not page.next_button.isEnabled()  # both answers and the preference are needed
        click(qtbot, named(app, QPushButton, f"likert_right_{right}"))
        assert not page.next_button.isEnabled()
        click(qtbot, named(app, QPushButton, f"prefer_{prefer}"))
    assert page.next_button.isEnabled()


def finish(qtbot, app, shots: Path | None = None) -> None:
    qtbot.waitUntil(lambda: app.stage == "questionnaire", timeout=5_000)
    page = app.questionnaire_page
    for i, item in enumerate(page.items):
        assert not page.done_button.isEnabled()
        click(qtbot, item.buttons[(i + 2) % 5])
    if shots:
        save(app, shots, "app-9-questionnaire")
    click(qtbot, page.done_button)
    qtbot.waitUntil(lambda: app.stage == "done", timeout=30_000)
    if shots:
        save(app, shots, "app-10-thank-you")


def inject_moves(app, widget, seconds: float, rate_hz: float = 1000.0) -> dict:
    """Post ``rate_hz`` mouse moves a second to ``widget`` (as the platform delivers them)
    for ``seconds``, under a real event loop, and wait until the recorder has them all."""
    from PySide6.QtCore import QEvent, QEventLoop, QPointF
    from PySide6.QtGui import QMouseEvent

    clock, rec = app.clock, app.recorder
    n_total = int(rate_hz * seconds)
    idx = np.arange(n_total)
    lx = 4 + idx % max(8, widget.width() - 8)
    ly = 4 + (idx * 7) % max(8, widget.height() - 8)
    origin = widget.mapToGlobal(QPoint(0, 0))
    gx, gy = lx + origin.x(), ly + origin.y()
    before = rec.stats.recorded["mouse.move"]
    state = {"posted": 0, "t0": clock.now()}
    move, none, nomod = QEvent.Type.MouseMove, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier

    def inject():
        due = min(n_total, int((clock.now() - state["t0"]) * rate_hz) + 1)
        for i in range(state["posted"], due):
            QApplication.postEvent(widget, QMouseEvent(move, QPointF(float(lx[i]), float(ly[i])),
                                                       QPointF(float(gx[i]), float(gy[i])), none, none, nomod))
        state["posted"] = due
        if due >= n_total:
            timer.stop()

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(inject)
    timer.start(10)
    loop = QEventLoop()
    checker = QTimer()
    checker.timeout.connect(lambda: loop.quit() if rec.stats.recorded["mouse.move"] - before >= n_total else None)
    checker.start(20)
    QTimer.singleShot(int(seconds * 1000) + 10_000, loop.quit)
    loop.exec()
    checker.stop()
    timer.stop()
    return {"sent": n_total, "posted": state["posted"], "recorded": rec.stats.recorded["mouse.move"] - before,
            "t0": state["t0"], "x": gx.astype(np.float32), "y": gy.astype(np.float32)}


def phases(r) -> list[tuple[float, str, dict]]:
    ph = r["phases"]
    return [(float(t), n, json.loads(d)) for t, n, d in zip(ph.column("t"), ph.column("name"), ph.column("detail"))]
