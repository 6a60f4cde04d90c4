"""The pages of a participant session (widgets only; :mod:`.study_app` drives them).

``SetupPage`` (researcher): the study, the participant code, the camera preview with the
face position, the LLM's state, interrupted sessions to resume or close.
``ConsentPage``: the study's consent text, "I agree" / "I do not agree".
``ChatPage``: the question box, the answer(s) streaming in, Likert ratings (and the
preference in pairwise turns), "Next".
``QuestionnairePage``: the study's closing questions, each on a 1-5 scale.
``MessagePage``: a calm full-screen message (thank you, please wait, no consent).

Participant pages use large type on the calm mid-grey of the calibration screens.
Every control a participant uses has an ``objectName`` (tests and the input recorder
refer to them by name).
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QGuiApplication, QKeyEvent, QTextBlockFormat, QTextCursor
from PySide6.QtWidgets import (
    QButtonGroup, QFrame, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton, QScrollArea,
    QSizePolicy, QTextBrowser, QVBoxLayout, QWidget,
)

from . import style
from .calibration_screens import FaceGuide, FacePositionTargets
from .response_view import ResponseView

LIKERT_LABELS = ("very poor", "poor", "fair", "good", "very good")


def page_stylesheet(h: int) -> str:
    """Stylesheet of the participant pages for a window ``h`` px high."""
    body = max(15, int(round(h * 0.024)))
    small = max(12, int(round(h * 0.018)))
    pad_v = max(6, int(round(h * 0.011)))
    pad_h = max(14, int(round(h * 0.026)))
    fg, dim, faint = style.TEXT.name(), style.TEXT_DIM.name(), style.TEXT_FAINT.name()
    return (
        f"QWidget#page {{ background: {style.BACKGROUND.name()}; }}"
        f" QLabel {{ color: {fg}; font-family: '{style.FONT_FAMILY}'; font-size: {body}px; }}"
        f" QLabel[role='title'] {{ font-size: {int(body * 1.45)}px; font-weight: bold; }}"
        f" QLabel[role='dim'] {{ color: {dim}; font-size: {small}px; }}"
        f" QLabel[role='error'] {{ color: {style.BAD.name()}; font-size: {small}px; }}"
        f" QLabel[role='ok'] {{ color: {style.GOOD.name()}; font-size: {small}px; }}"
        f" QPlainTextEdit, QLineEdit {{ color: {fg}; background: #2c2c2c; border: 1px solid #5a5a5a;"
        f" border-radius: 6px; padding: {pad_v}px; font-family: '{style.FONT_FAMILY}'; font-size: {body}px;"
        f" selection-background-color: #5a6e8c; }}"
        f" QPlainTextEdit:focus, QLineEdit:focus {{ border: 1px solid #9a9a9a; }}"
        f" QTextBrowser#consent_text {{ color: {fg}; background: #333333; border: none;"
        f" font-family: '{style.FONT_FAMILY}'; font-size: {body}px; padding: {pad_h}px; }}"
        f" QPushButton {{ font-family: '{style.FONT_FAMILY}'; font-size: {body}px; color: {fg};"
        f" background: #4a4a4a; border: 1px solid #6a6a6a; border-radius: 6px;"
        f" padding: {pad_v}px {pad_h}px; }}"
        f" QPushButton:hover {{ background: #555555; }}"
        f" QPushButton:pressed {{ background: #404040; }}"
        f" QPushButton:checked {{ background: #6b7f9e; border: 2px solid #c8d4e6; color: #ffffff; }}"
        f" QPushButton:disabled {{ color: {faint}; background: #404040; border: 1px solid #4e4e4e; }}"
        f" QPushButton:default {{ border: 2px solid #d0d0d0; }}"
        f" QScrollArea {{ background: transparent; border: none; }}"
    )


class Page(QWidget):
    """A page: the calm background and the shared stylesheet, re-sized with the window."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("page")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._styled_h = 0
        self._restyle(_screen_height())

    def _restyle(self, h: int) -> None:
        h = max(360, int(h))
        if abs(h - self._styled_h) > 8:
            self._styled_h = h
            self.setStyleSheet(page_stylesheet(h))
            if self.layout() is not None:
                self.layout().invalidate()

    def resizeEvent(self, event) -> None:
        self._restyle(self.height())
        super().resizeEvent(event)

    def showEvent(self, event) -> None:
        # a page resized while hidden gets its sizes right when it appears
        for w in self.findChildren(QWidget):
            w.updateGeometry()
        if self.layout() is not None:
            self.layout().invalidate()
            self.layout().activate()
        super().showEvent(event)


def _screen_height() -> int:
    screen = QGuiApplication.primaryScreen()
    return screen.geometry().height() if screen is not None else 720


def _clear_layout(layout) -> None:
    """Remove and delete every item of ``layout`` (widgets hidden at once: a deferred
    delete alone would leave them drawn until the event loop runs)."""
    while layout.count():
        item = layout.takeAt(0)
        w = item.widget()
        if w is not None:
            w.hide()
            w.setParent(None)
            w.deleteLater()


def _label(text: str = "", role: str = "", parent=None, *, wrap: bool = True, name: str = "") -> QLabel:
    lab = QLabel(text, parent)
    if role:
        lab.setProperty("role", role)
    lab.setWordWrap(wrap)
    if name:
        lab.setObjectName(name)
    return lab


# ======================================================================================
# Researcher setup
# ======================================================================================

class InterruptedRow(QFrame):
    """One interrupted session: what it is, and Resume / Close."""

    resume_requested = Signal(str)
    close_requested = Signal(str)

    def __init__(self, path: str, summary: str, *, can_resume: bool, parent=None):
        super().__init__(parent)
        self.path = path
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.label = _label(summary, "dim", self)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.resume_button = QPushButton("Resume", self)
        self.resume_button.setObjectName("resume")
        self.resume_button.setEnabled(can_resume)
        self.close_button = QPushButton("Close it", self)
        self.close_button.setObjectName("close_interrupted")
        lay.addWidget(self.label, 1)
        lay.addWidget(self.resume_button)
        lay.addWidget(self.close_button)
        self.resume_button.clicked.connect(lambda: self.resume_requested.emit(self.path))
        self.close_button.clicked.connect(lambda: self.close_requested.emit(self.path))


class SetupPage(Page):
    """The researcher's page: study summary, participant code, camera preview, Start.

    Signals: ``start_requested(code)``; ``resume_requested(path)``;
    ``close_requested(path)``; ``retry_camera()``; ``quit_requested()``.
    """

    start_requested = Signal(str)
    resume_requested = Signal(str)
    close_requested = Signal(str)
    retry_camera = Signal()
    quit_requested = Signal()

    def __init__(self, face_targets: FacePositionTargets | None = None, parent=None):
        super().__init__(parent)
        self.title = _label("IFLLM Lab", "title", self)
        self.summary = _label("", "dim", self, name="study_summary")
        self.study_status = _label("", "error", self, name="study_status")
        self.study_status.hide()
        self.code = QLineEdit(self)
        self.code.setObjectName("participant_code")
        self.code.setPlaceholderText("participant code")
        self.code_error = _label("", "error", self, name="code_error")
        self.camera_status = _label("Camera: starting...", "dim", self, name="camera_status")
        self.llm_status = _label("Language model: loading...", "dim", self, name="llm_status")
        self.folder_status = _label("", "dim", self, name="folder_status")
        self.preview = FaceGuide(self, targets=face_targets)
        self.preview.setMinimumSize(240, 240)
        self.retry_button = QPushButton("Retry camera", self)
        self.retry_button.setObjectName("retry_camera")
        self.retry_button.hide()
        self.start_button = QPushButton("Start session", self)
        self.start_button.setObjectName("start")
        self.start_button.setDefault(True)
        self.quit_button = QPushButton("Quit", self)
        self.quit_button.setObjectName("quit")
        self.interrupted_title = _label("Interrupted sessions", "", self)
        self.interrupted_box = QVBoxLayout()
        self.rows: list[InterruptedRow] = []

        # what the researcher reads scrolls when it is taller than the window; the buttons stay in sight
        info = QWidget(self)
        info.setObjectName("page")
        left = QVBoxLayout(info)
        left.setContentsMargins(0, 0, 0, 0)
        left.setSpacing(8)
        left.addWidget(self.title)
        left.addWidget(self.summary)
        left.addWidget(self.study_status)
        left.addSpacing(12)
        left.addWidget(_label("Participant code (stored only as a pseudonym)", "", self))
        left.addWidget(self.code)
        left.addWidget(self.code_error)
        left.addSpacing(8)
        left.addWidget(self.camera_status)
        left.addWidget(self.llm_status)
        left.addWidget(self.folder_status)
        left.addSpacing(8)
        left.addWidget(self.interrupted_title)
        left.addLayout(self.interrupted_box)
        left.addStretch(1)
        self.info_scroll = QScrollArea(self)
        self.info_scroll.setWidgetResizable(True)
        self.info_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.info_scroll.setWidget(info)
        buttons = QHBoxLayout()
        buttons.addWidget(self.quit_button)
        buttons.addStretch(1)
        buttons.addWidget(self.retry_button)
        buttons.addWidget(self.start_button)
        column = QVBoxLayout()
        column.setSpacing(12)
        column.addWidget(self.info_scroll, 1)
        column.addLayout(buttons)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(40, 30, 40, 30)
        lay.setSpacing(30)
        lay.addLayout(column, 5)
        lay.addWidget(self.preview, 4)

        self.start_button.clicked.connect(self._start)
        self.code.returnPressed.connect(self._start)
        self.retry_button.clicked.connect(self.retry_camera.emit)
        self.quit_button.clicked.connect(self.quit_requested.emit)
        self.set_interrupted([])

    @Slot()
    def _start(self) -> None:
        if self.start_button.isEnabled():
            self.start_requested.emit(self.code.text())

    def set_code_error(self, message: str) -> None:
        self.code_error.setText(message)

    def set_study_problems(self, problems: list[str]) -> None:
        """What stops this study from running (each a setting and why); none: hidden."""
        self.study_status.setText("This study cannot start:\n" + "\n".join(f"- {p}" for p in problems)
                                  if problems else "")
        self.study_status.setVisible(bool(problems))

    def set_camera(self, ok: bool, message: str) -> None:
        self.camera_status.setText(message)
        self.camera_status.setProperty("role", "ok" if ok else "error")
        self.camera_status.style().polish(self.camera_status)
        self.retry_button.setVisible(not ok)

    def set_llm(self, ok: bool | None, message: str) -> None:
        self.llm_status.setText(message)
        self.llm_status.setProperty("role", "dim" if ok is None else ("ok" if ok else "error"))
        self.llm_status.style().polish(self.llm_status)

    def set_interrupted(self, items: list[tuple[str, str, bool]]) -> None:
        """[(path, summary, can_resume)]"""
        _clear_layout(self.interrupted_box)
        self.rows = []
        for path, summary, can_resume in items:
            row = InterruptedRow(path, summary, can_resume=can_resume, parent=self)
            row.resume_requested.connect(self.resume_requested.emit)
            row.close_requested.connect(self.close_requested.emit)
            self.interrupted_box.addWidget(row)
            self.rows.append(row)
        self.interrupted_title.setVisible(bool(items))


# ======================================================================================
# Consent
# ======================================================================================

class ConsentPage(Page):
    """The consent text and the two answers. Signals ``agreed()`` and ``declined()``."""

    agreed = Signal()
    declined = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.text = QTextBrowser(self)
        self.text.setObjectName("consent_text")
        self.text.setOpenExternalLinks(False)
        self.decline_button = QPushButton("I do not agree", self)
        self.decline_button.setObjectName("decline")
        self.agree_button = QPushButton("I agree", self)
        self.agree_button.setObjectName("agree")
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.decline_button)
        row.addSpacing(24)
        row.addWidget(self.agree_button)
        row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(120, 40, 120, 40)
        lay.addWidget(self.text, 1)
        lay.addSpacing(16)
        lay.addLayout(row)
        self.agree_button.clicked.connect(self.agreed.emit)
        self.decline_button.clicked.connect(self.declined.emit)

    def set_text(self, text: str, markdown: bool = True) -> None:
        if markdown:
            self.text.setMarkdown(text)
        else:
            self.text.setPlainText(text)
        # space between paragraphs, and a comfortable line height, whatever the source
        cursor = QTextCursor(self.text.document())
        cursor.select(QTextCursor.SelectionType.Document)
        fmt = QTextBlockFormat()
        fmt.setBottomMargin(14)
        fmt.setLineHeight(125.0, QTextBlockFormat.LineHeightTypes.ProportionalHeight.value)
        cursor.mergeBlockFormat(fmt)


# ======================================================================================
# Likert scale
# ======================================================================================

class LikertScale(QWidget):
    """Five exclusive buttons 1..5 with the ends labelled; ``changed(value)``."""

    changed = Signal(int)

    def __init__(self, question: str, name: str, parent=None, *, labels=LIKERT_LABELS):
        super().__init__(parent)
        self.setObjectName(name)
        self.question = _label(question, "", self)
        self.question.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        self.buttons: list[QPushButton] = []
        for i in range(5):
            b = QPushButton(str(i + 1), self)
            b.setObjectName(f"{name}_{i + 1}")
            b.setCheckable(True)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.group.addButton(b, i + 1)
            grid.addWidget(b, 0, i)
            lab = _label(labels[i], "dim", self)
            lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(lab, 1, i)
            self.buttons.append(b)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.question)
        lay.addLayout(grid)
        self.group.idClicked.connect(self.changed.emit)

    def value(self) -> int:
        v = self.group.checkedId()
        return v if v > 0 else -1

    def reset(self) -> None:
        self.group.setExclusive(False)
        for b in self.buttons:
            b.setChecked(False)
        self.group.setExclusive(True)

    def set_enabled(self, on: bool) -> None:
        for b in self.buttons:
            b.setEnabled(on)


# ======================================================================================
# Chat
# ======================================================================================

class QuestionBox(QPlainTextEdit):
    """The question field: Enter sends, Shift+Enter starts a new line."""

    submit = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
                event.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            self.submit.emit()
            return
        super().keyPressEvent(event)


class AnswerPanel(QWidget):
    """One answer on screen: a heading, the streaming text, its Likert scale."""

    def __init__(self, side: str, heading: str, parent=None):
        super().__init__(parent)
        self.side = side
        self.heading = _label(heading, "dim", self, name=f"heading_{side}")
        self.view = ResponseView(-1, self, object_name=f"answer_{side}")
        self.status = _label("", "dim", self, name=f"status_{side}")
        self.likert = LikertScale("How good is this answer?", f"likert_{side}", self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.heading)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.status)
        lay.addWidget(self.likert)


class ChatPage(Page):
    """Question -> streamed answer(s) -> ratings -> Next.

    The page has two answer panels; a pointwise turn shows only the left one, full width.
    Signals: ``send_requested(text)``, ``stop_requested()``, ``next_requested()``.
    """

    send_requested = Signal(str)
    stop_requested = Signal()
    next_requested = Signal()

    ASKING, ANSWERING, RATING = "asking", "answering", "rating"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.state = self.ASKING
        self.pairwise = False
        self.progress = _label("", "dim", self, name="progress")
        self.instructions = _label("Type a question you would like an answer to, then press Enter.", "", self,
                                   name="instructions")
        self.prompt_view = ResponseView(-1, self, object_name="prompt_view", max_line_chars=None)
        self.prompt_view.setMaximumHeight(96)
        self.panels = {"left": AnswerPanel("left", "Answer A", self), "right": AnswerPanel("right", "Answer B", self)}
        answers = QHBoxLayout()
        answers.setSpacing(36)
        answers.addWidget(self.panels["left"], 1)
        answers.addWidget(self.panels["right"], 1)
        self.preference_label = _label("Which answer is better?", "", self, name="preference_label")
        self.preference_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preference_group = QButtonGroup(self)
        pref_row = QHBoxLayout()
        pref_row.addStretch(1)
        self.preference_buttons = {}
        for code, text, name in ((1, "Answer A is better", "prefer_left"), (0, "About the same", "prefer_tie"),
                                 (2, "Answer B is better", "prefer_right")):
            b = QPushButton(text, self)
            b.setObjectName(name)
            b.setCheckable(True)
            self.preference_group.addButton(b, {1: 1, 0: 3, 2: 2}[code])
            self.preference_buttons[name] = b
            pref_row.addWidget(b)
        pref_row.addStretch(1)
        self.question = QuestionBox(self)
        self.question.setObjectName("question")
        self.question.setPlaceholderText("Your question...")
        self.question.setMaximumHeight(120)
        self.send_button = QPushButton("Send", self)
        self.send_button.setObjectName("send")
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName("stop")
        self.next_button = QPushButton("Next question", self)
        self.next_button.setObjectName("next")
        self.hint = _label("", "dim", self, name="hint")
        ask_row = QHBoxLayout()
        ask_row.addWidget(self.question, 1)
        ask_row.addWidget(self.send_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.hint, 1)
        bottom.addWidget(self.stop_button)
        bottom.addWidget(self.next_button)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(48, 24, 48, 24)
        lay.setSpacing(12)
        lay.addWidget(self.progress)
        lay.addWidget(self.instructions)
        lay.addWidget(self.prompt_view)
        lay.addLayout(answers, 1)
        lay.addWidget(self.preference_label)
        lay.addLayout(pref_row)
        lay.addLayout(ask_row)
        lay.addLayout(bottom)

        self.send_button.clicked.connect(self._send)
        self.question.submit.connect(self._send)
        self.stop_button.clicked.connect(self.stop_requested.emit)
        self.next_button.clicked.connect(self._next)
        for p in self.panels.values():
            p.likert.changed.connect(self._rating_changed)
        self.preference_group.idClicked.connect(self._rating_changed)
        self.new_turn(1, 1, pairwise=False)

    def _restyle(self, h: int) -> None:
        super()._restyle(h)
        if hasattr(self, "question"):  # the question and its box grow with the type (96 / 120 px at 720)
            h = max(360, int(h))
            self.prompt_view.setMaximumHeight(max(96, int(h * 0.134)))
            self.question.setMaximumHeight(max(120, int(h * 0.167)))

    # -- state ------------------------------------------------------------------------------
    def new_turn(self, number: int, total: int, *, pairwise: bool, last: bool = False) -> None:
        """Reset for question ``number`` of ``total``."""
        self.state = self.ASKING
        self.pairwise = pairwise
        self.progress.setText(f"Question {number} of {total}")
        self.instructions.show()
        self.prompt_view.clear_text()
        self.prompt_view.hide()
        for side, p in self.panels.items():
            p.view.clear_text()
            p.status.setText("")
            p.likert.reset()
            p.likert.hide()
            p.heading.setVisible(pairwise)
            p.setVisible(side == "left" or pairwise)
            p.view.hide()
        self._reset_preference()
        for w in (self.preference_label, *self.preference_buttons.values()):
            w.hide()
        self.question.clear()
        self.question.setEnabled(True)
        self.question.show()
        self.send_button.show()
        self.send_button.setEnabled(True)
        self.stop_button.hide()
        self.next_button.hide()
        self.next_button.setText("Finish" if last else "Next question")
        self.hint.setText("")
        self.question.setFocus()

    def _reset_preference(self) -> None:
        self.preference_group.setExclusive(False)
        for b in self.preference_buttons.values():
            b.setChecked(False)
        self.preference_group.setExclusive(True)

    def start_answering(self, prompt: str) -> None:
        self.state = self.ANSWERING
        self.instructions.hide()
        self.prompt_view.set_text(prompt)
        self.prompt_view.show()
        self.question.hide()
        self.send_button.hide()
        for side, p in self.panels.items():
            if p.isVisible():
                p.view.show()
                p.status.setText("")
        self.stop_button.show()
        self.stop_button.setEnabled(True)
        self.hint.setText("The answer is being written...")

    def append(self, side: str, text: str) -> None:
        self.panels[side].view.append_text(text)

    def set_markdown(self, on: bool) -> None:
        """Answers rendered as Markdown (the study's ``answers = "markdown"``) or as written."""
        for p in self.panels.values():
            p.view.set_markdown(on)

    def finish_answers(self) -> None:
        """The answers are complete (Markdown: a marker left open is shown as written)."""
        for p in self.panels.values():
            p.view.finish_text()

    def show_error(self, side: str, message: str) -> None:
        self.panels[side].status.setText(message)

    def start_rating(self, can_rate: bool, message: str = "") -> None:
        """The answers are complete: ask for ratings (or, when they could not be
        generated, just let the participant go on)."""
        self.state = self.RATING
        self.stop_button.hide()
        self.next_button.show()
        if can_rate:
            for p in self.panels.values():
                if p.isVisible():
                    p.likert.show()
            if self.pairwise:
                for w in (self.preference_label, *self.preference_buttons.values()):
                    w.show()
            self.hint.setText("Please rate the answer." if not self.pairwise else
                              "Please rate both answers and say which one is better.")
        else:
            self.hint.setText(message or "Sorry, no answer this time. Please go on.")
        self._rating_changed()

    # -- ratings ---------------------------------------------------------------------------
    def ratings(self) -> dict[str, int]:
        return {side: p.likert.value() for side, p in self.panels.items() if p.isVisible() and p.likert.isVisible()}

    def preference(self) -> str | None:
        """"left", "right", "tie" or None."""
        v = self.preference_group.checkedId()
        return {1: "left", 2: "right", 3: "tie"}.get(v)

    def rated(self) -> bool:
        if self.state != self.RATING:
            return False
        r = self.ratings()
        if any(v < 1 for v in r.values()):
            return False
        if self.pairwise and r and self.preference() is None:
            return False
        return True

    @Slot()
    def _rating_changed(self, *_):
        self.next_button.setEnabled(self.state == self.RATING and self.rated())

    @Slot()
    def _send(self) -> None:
        if self.state != self.ASKING:
            return
        text = self.question.toPlainText().strip()
        if not text:
            self.hint.setText("Please type a question first.")
            return
        self.send_requested.emit(text)

    @Slot()
    def _next(self) -> None:
        if self.rated():
            self.next_requested.emit()


# ======================================================================================
# Questionnaire and messages
# ======================================================================================

class QuestionnairePage(Page):
    """The study's closing items, each on a 1-5 scale; ``done(list of answers)``."""

    done = Signal(list)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = _label("A few last questions", "title", self)
        self.items: list[LikertScale] = []
        self.holder = QWidget(self)
        self.holder.setObjectName("page")
        self.holder_layout = QVBoxLayout(self.holder)
        self.holder_layout.setSpacing(28)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.holder)
        self.done_button = QPushButton("Done", self)
        self.done_button.setObjectName("questionnaire_done")
        self.done_button.setEnabled(False)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.done_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(120, 40, 120, 40)
        lay.addWidget(self.title)
        lay.addWidget(scroll, 1)
        lay.addLayout(row)
        self.done_button.clicked.connect(self._done)

    def set_items(self, questions: list[str]) -> None:
        _clear_layout(self.holder_layout)
        self.items = []
        for i, q in enumerate(questions):
            scale = LikertScale(q, f"item_{i + 1}", self.holder,
                                labels=("not at all", "", "", "", "very much"))
            scale.changed.connect(self._changed)
            self.holder_layout.addWidget(scale)
            self.items.append(scale)
        self.holder_layout.addStretch(1)
        self.done_button.setEnabled(not questions)

    @Slot()
    def _changed(self, *_):
        self.done_button.setEnabled(all(it.value() > 0 for it in self.items))

    @Slot()
    def _done(self) -> None:
        if all(it.value() > 0 for it in self.items):
            self.done.emit([it.value() for it in self.items])


class MessagePage(Page):
    """A calm message in the middle of the screen, with an optional button."""

    button_clicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = _label("", "title", self, name="message_title")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.body = _label("", "", self, name="message_body")
        self.body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # what went wrong, in the researcher's terms (small, below the participant's message)
        self.detail = _label("", "dim", self, name="message_detail")
        self.detail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.detail.hide()
        self.button = QPushButton("", self)
        self.button.setObjectName("message_button")
        self.button.hide()
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.button)
        row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(120, 40, 120, 40)
        lay.addStretch(2)
        lay.addWidget(self.title)
        lay.addSpacing(16)
        lay.addWidget(self.body)
        lay.addStretch(3)
        lay.addWidget(self.detail)
        lay.addSpacing(16)
        lay.addLayout(row)
        self.button.clicked.connect(self.button_clicked.emit)

    def show_message(self, title: str, body: str = "", button: str = "", detail: str = "") -> None:
        """``detail``: for the researcher (why), shown small under the participant's message."""
        self.title.setText(title)
        self.body.setText(body)
        self.detail.setText(f"For the researcher: {detail}" if detail else "")
        self.detail.setVisible(bool(detail))
        self.button.setText(button)
        self.button.setVisible(bool(button))
