"""A simulated participant for piloting a study on the lab machine (``ifllm-lab app --pilot``).

It goes through the study as a participant and the researcher would, through the app's own
widgets and with real Qt input events (mouse moves, presses, key strokes), so the file it
leaves is a full session recorded by the real pipeline: setup with a participant code,
consent, the face guide, calibration and validation, every question typed and answered by
the study's LLM(s), the answers "read" with the mouse, rated, drift checks, the
questionnaire and the end. Camera frames come from whatever camera the study uses (a video
file makes it run anywhere).

What it is for: a dry run of a study before participants come (does everything start, is
the file complete, how long does a session take), and the end-to-end check of an installed
bundle. The file is marked ``pilot`` in its metadata so it is never mistaken for a
participant's."""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

from PySide6.QtCore import QEvent, QObject, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QCursor, QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QApplication, QPushButton, QWidget

from .calibration_wizard import FORCE_CONTINUE_KEY

log = logging.getLogger(__name__)

#: what the simulated participant asks, in turn (the first two ask for the Markdown that
#: answers are rendered from: a list with bold words, a table)
QUESTIONS = (
    "Give me three steps to cook rice, as a numbered list with the key word of each step in bold.",
    "Write a Markdown table of three fruits and their colours.",
    "What is a good way to learn to cook?",
    "How do I keep houseplants alive in winter?",
    "Why is the sky blue?",
    "What should I pack for a weekend hike?",
    "How can I sleep better?",
    "What is the difference between a virus and a bacterium?",
    "How do I start running as a beginner?",
    "What makes bread rise?",
)


@dataclass
class PilotReport:
    """What the pilot did and found (``to_dict`` for JSON)."""

    ok: bool = False
    session: str = ""
    problem: str = ""
    turns: int = 0
    seconds: float = 0.0
    stages_s: dict = field(default_factory=dict)  # time spent in each stage of the app
    validation_deg: float | None = None  # mean validation error of the last calibration
    calibration_passed: bool | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "session": self.session, "problem": self.problem, "turns": self.turns,
                "seconds": round(self.seconds, 2), "stages_s": {k: round(v, 2) for k, v in self.stages_s.items()},
                "validation_deg": None if self.validation_deg is None else round(self.validation_deg, 3),
                "calibration_passed": self.calibration_passed, "notes": list(self.notes)}


class PilotParticipant(QObject):
    """Drives a :class:`~ifllm_lab.ui.study_app.StudyApp` through one session.

    ``finished(dict)`` is emitted once, with :meth:`PilotReport.to_dict`, when the session
    ended (the thank-you page), when the app shows an error or a declined consent, or when
    ``timeout_s`` passed. Pacing: keys ``key_s`` apart, a short reading pause before each
    rating; everything else as fast as the app allows."""

    finished = Signal(dict)

    def __init__(self, app, *, code: str = "pilot", questions: tuple[str, ...] = QUESTIONS, seed: int = 0,
                 timeout_s: float = 900.0, key_s: float = 0.03, read_s: float = 1.5, face_wait_s: float = 5.0,
                 parent=None):
        super().__init__(parent)
        self.app = app
        self.code = code
        self.questions = tuple(questions) or QUESTIONS
        self.rng = random.Random(seed)
        self.timeout_s = float(timeout_s)
        self.key_s = float(key_s)
        self.read_s = float(read_s)
        self.face_wait_s = float(face_wait_s)
        self.report = PilotReport()
        self._t0 = 0.0
        self._stage = ""
        self._stage_t = 0.0
        self._asked = 0
        self._typing: list[str] = []
        self._next_key = 0.0
        self._rating_since = 0.0
        self._waiting_since = 0.0
        self._moves = 0
        self._faces = 0
        self._done = False
        app.bridge.sample_posted.connect(self._sample)
        self.timer = QTimer(self)
        self.timer.setInterval(20)
        self.timer.timeout.connect(self._tick)

    # ------------------------------------------------------------------ public
    def start(self) -> None:
        self.app.pilot = True
        self._t0 = time.monotonic()
        self.timer.start()

    def _sample(self, sample) -> None:
        self._faces += sample.features is not None

    # ------------------------------------------------------------------ input, as the platform delivers it
    def _center(self, w: QWidget) -> tuple[QPointF, QPointF]:
        local = QPointF(w.width() / 2.0, w.height() / 2.0)
        return local, QPointF(w.mapToGlobal(local.toPoint()))

    def _move(self, w: QWidget, local: QPointF) -> None:
        glob = QPointF(w.mapToGlobal(local.toPoint()))
        QCursor.setPos(glob.toPoint())
        QApplication.sendEvent(w, QMouseEvent(QEvent.Type.MouseMove, local, glob, Qt.MouseButton.NoButton,
                                              Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))

    def _click(self, button: QWidget) -> bool:
        if not (button.isVisible() and button.isEnabled()):
            return False
        local, glob = self._center(button)
        self._move(button, local)
        left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
        QApplication.sendEvent(button, QMouseEvent(QEvent.Type.MouseButtonPress, local, glob, left, left, none))
        QApplication.sendEvent(button, QMouseEvent(QEvent.Type.MouseButtonRelease, local, glob, left,
                                                   Qt.MouseButton.NoButton, none))
        return True

    def _key(self, w: QWidget, key: Qt.Key, text: str = "") -> None:
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            QApplication.sendEvent(w, QKeyEvent(kind, int(key), Qt.KeyboardModifier.NoModifier, text))

    def _read_with_mouse(self, views: list[QWidget]) -> None:
        """The pointer wanders over the answers as a reading hand does: along the lines,
        down the text, now and then across to the other answer."""
        views = [v for v in views if v.isVisible() and v.width() > 20 and v.height() > 20]
        if not views:
            return
        self._moves += 1
        v = views[(self._moves // 120) % len(views)]
        port = getattr(v, "viewport", lambda: v)()
        step = self._moves % 120
        x = 10 + (step % 30) / 30.0 * max(1, port.width() - 20)
        y = 10 + (step // 30) / 4.0 * max(1, port.height() - 20)
        self._move(port, QPointF(x + self.rng.uniform(-3, 3), y + self.rng.uniform(-2, 2)))

    # ------------------------------------------------------------------ the flow
    def _finish(self, ok: bool, problem: str = "") -> None:
        if self._done:
            return
        self._done = True
        self.timer.stop()
        self._enter("")  # close the last stage's time
        r = self.report
        r.ok, r.problem = ok, problem
        r.seconds = time.monotonic() - self._t0
        r.session = str(getattr(self.app, "last_session_path", "") or r.session)
        self.finished.emit(r.to_dict())

    def _enter(self, stage: str) -> None:
        now = time.monotonic()
        if self._stage:
            self.report.stages_s[self._stage] = self.report.stages_s.get(self._stage, 0.0) + now - self._stage_t
        self._stage, self._stage_t = stage, now
        self._waiting_since = now

    def _stuck(self, seconds: float) -> bool:
        return time.monotonic() - self._waiting_since > seconds

    def _tick(self) -> None:
        try:
            self._step()
        except Exception as exc:  # a bug in the pilot must end it with a report, not hang it
            log.exception("pilot participant")
            self._finish(False, f"the pilot stopped at stage {self.app.stage!r}: {exc}")

    def _step(self) -> None:
        app = self.app
        if time.monotonic() - self._t0 > self.timeout_s:
            self._finish(False, f"timed out after {self.timeout_s:.0f} s at stage {app.stage!r}"
                                + (f" ({app.wizard.stage})" if app.stage in ("calibration", "drift") else ""))
            return
        stage = app.stage
        if stage != self._stage:
            self._enter(stage)
        if app.session is not None:
            self.report.session = app.session.path
        handler = getattr(self, f"_on_{stage}", None)
        if handler is not None:
            handler()

    def _on_setup(self) -> None:
        app, page = self.app, self.app.setup_page
        if app._llm_ok is None or self._faces < 5:
            if self._stuck(120):
                why = "the LLM did not load" if app._llm_ok is None else \
                    f"no face in the camera picture ({page.camera_status.text()})"
                self._finish(False, f"setup: {why} within 120 s")
            return
        if not app._llm_ok:
            self._finish(False, f"setup: {page.llm_status.text()}")
            return
        if not app.readiness.ok:
            self._finish(False, "setup: " + "; ".join(str(p) for p in app.readiness.problems))
            return
        if not page.code.text():
            page.code.setText(self.code)
        self._click(page.start_button)
        if app.stage == "setup" and page.code_error.text():
            self._finish(False, f"setup: {page.code_error.text()}")

    def _on_consent(self) -> None:
        self._click(self.app.consent_page.agree_button)

    def _on_calibration(self) -> None:
        wiz = self.app.wizard
        if wiz is None:
            return
        if wiz.stage == "face":
            if wiz.face_guide.status.good:
                self._key(wiz.face_guide, Qt.Key.Key_Space, " ")
            elif self._stuck(self.face_wait_s):  # as the researcher does: F12 goes on whatever the position
                self.report.notes.append(f"the face position was not good within {self.face_wait_s:g} s "
                                         f"({wiz.face_guide.status.message}); the researcher's F12 went on")
                self._key(wiz.face_page, FORCE_CONTINUE_KEY)
        elif wiz.stage == "report":
            result = wiz.result
            if result is not None and result.report is not None:
                self.report.validation_deg = float(result.report.mean_accuracy_deg)
                self.report.calibration_passed = bool(result.report.passed)
                if not result.report.passed:
                    self.report.notes.append("validation failed: " + "; ".join(result.report.reasons))
            self._click(wiz.report_view.continue_button)
        elif wiz.stage == "failed":
            self.report.calibration_passed = False
            self.report.notes.append(f"calibration failed: {wiz.failure_message}; went on without it")
            self._click(wiz.report_view.continue_button)

    def _on_drift(self) -> None:
        wiz = self.app.wizard
        if wiz is not None and wiz.stage == "drift_result":
            self._click(wiz.drift_view.continue_button)

    def _on_chat(self) -> None:
        page = self.app.chat_page
        state = page.state
        if state == page.ASKING:
            self._ask(page)
        elif state == page.ANSWERING:
            self._read_with_mouse([p.view for p in page.panels.values()])
        elif state == page.RATING:
            self._rate(page)

    def _ask(self, page) -> None:
        box = page.question
        now = time.monotonic()
        if not self._typing and not box.toPlainText():
            self._typing = list(self.questions[self._asked % len(self.questions)])
            self._rating_since = 0.0
        if now < self._next_key:
            return
        if self._typing:
            ch = self._typing.pop(0)
            key = Qt.Key(ord(ch.upper())) if 32 <= ord(ch) < 127 else Qt.Key.Key_unknown
            self._key(box, key, ch)
            self._next_key = now + self.key_s * self.rng.uniform(0.5, 1.5)
            return
        self._asked += 1
        self._key(box, Qt.Key.Key_Return, "\r")

    def _rate(self, page) -> None:
        now = time.monotonic()
        if not self._rating_since:
            self._rating_since = now
        if now - self._rating_since < self.read_s:  # the answers are read before they are rated
            self._read_with_mouse([p.view for p in page.panels.values()])
            return
        if page.next_button.isEnabled():
            self.report.turns += 1
            self._typing = []
            self._click(page.next_button)
            return
        scores = {}
        for side in ("left", "right"):
            buttons = [b for b in page.findChildren(QPushButton)
                       if b.objectName().startswith(f"likert_{side}_") and b.isVisible()]
            if buttons and not any(b.isChecked() for b in buttons):
                b = self.rng.choice(buttons)
                scores[side] = int(b.objectName().rsplit("_", 1)[1])
                self._click(b)
        prefs = {n: b for n, b in page.preference_buttons.items() if b.isVisible()}
        if prefs and not any(b.isChecked() for b in prefs.values()):
            self._click(prefs[self.rng.choice(sorted(prefs))])
        if not page.next_button.isEnabled() and self._stuck(60):
            self._finish(False, "rating: the Next button never became available")

    def _on_questionnaire(self) -> None:
        page = self.app.questionnaire_page
        for item in page.items:
            if not any(b.isChecked() for b in item.buttons):
                self._click(self.rng.choice(item.buttons))
        self._click(page.done_button)

    def _on_done(self) -> None:
        self._finish(True)

    def _on_declined(self) -> None:
        self._finish(False, "the consent was declined")

    def _on_error(self) -> None:
        self._finish(False, self.app.last_failure or "the session could not go on")

