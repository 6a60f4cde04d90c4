"""The live monitor: the researcher's view of a session while it runs (``ifllm-lab app --monitor``).

A :class:`MonitorWindow` sits beside the participant's :class:`~ifllm_lab.ui.study_app.StudyApp`
(on a second screen when there is one). It follows each session the app opens through a
:class:`~ifllm_lab.study.monitor.MonitorFeed` tapped into the session writer (every row the
session writes reaches it as it is queued; the file itself is never read while it is being
recorded) and through the app's camera taps, and shows, refreshed a few times a second:

* the camera picture (mirrored, as people see themselves) with the face landmarks, the eye
  contours, the irises and the eye regions;
* gaze rate, valid share and dropped camera frames over the last seconds, each with a
  sparkline of the last half minute;
* the last validation (accuracy, precision, pass or fail) and the last drift check;
* the participant's screen in miniature: the question and answer boxes of the newest
  layout with their lines, the gaze trail, fixations (circles sized by duration), the gaze
  point and the cursor;
* the turn and phase, the language model's state and tokens/s, the file size and the free
  disk space, recent warnings from the session's log;
* with a study ``monitor_model``: after each rated turn the reward model's predicted
  preference beside the participant's choice.

Controls: **Pause** / **Resume** (the participant sees a calm "paused" page; recorded as
``pause`` / ``resume`` phases), **Recalibrate at next turn** (a calibration instead of the
next question), **End session** (a second click within a few seconds confirms; the session
ends as Ctrl+Shift+E ends it).

Cost to the participant's window: the taps append rows to a queue; the refresh (about
5 Hz) drains it, computes the figures over a few hundred rows and repaints small widgets.
Closing the monitor removes every tap: nothing of it is left in the study.
"""
from __future__ import annotations

import logging
import math
import time

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Slot
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPalette, QPen, QPolygonF
from PySide6.QtWidgets import (
    QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget,
)

from ..gaze.features import LEFT_EYE, LEFT_EYE_CONTOUR, RIGHT_EYE, RIGHT_EYE_CONTOUR
from ..study.monitor import MonitorFeed, MonitorState, TurnPredictor, model_folder
from . import style
from .style import fmt

log = logging.getLogger(__name__)

__all__ = ["MonitorWindow", "open_monitor"]

REFRESH_HZ = 5.0
DASH = "\u2013"
CONFIRM_S = 4.0  # how long "End session" waits for its second click

# MediaPipe face mesh: the outline of the face
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)

ANSWER_COLOURS = {0: QColor("#6fa8dc"), 1: QColor("#6fa8dc"), 2: QColor("#c27ba0")}
GAZE = QColor("#ffd966")
FIXATION = QColor(255, 217, 102, 150)
CURSOR = QColor("#9fe0ff")


def _mb(n: int) -> str:
    return "\u2013" if n is None or n < 0 else f"{n / 1e6:.1f} MB"


def _gb(n: int) -> str:
    return "\u2013" if n is None or n < 0 else f"{n / 1e9:.1f} GB"


def _pct(v: float) -> str:
    return "\u2013" if v is None or not math.isfinite(v) else f"{v * 100:.0f} %"


# ======================================================================================
# Painted parts
# ======================================================================================

class CameraView(QWidget):
    """The newest camera copy, mirrored, with the face landmarks and the eye regions."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.shot = None
        self._image: QImage | None = None
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_shot(self, shot) -> None:
        if shot is self.shot:
            return
        self.shot = shot
        self._image = None
        if shot is not None:
            a = np.ascontiguousarray(shot.image[:, ::-1, :3])
            h, w = a.shape[:2]
            self._image = QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self.update()

    def picture_rect(self) -> QRectF:
        if self._image is None:
            return QRectF(self.rect())
        iw, ih = self._image.width(), self._image.height()
        s = min(self.width() / iw, self.height() / ih)
        w, h = iw * s, ih * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), style.PANEL)
        if self._image is None:
            p.setPen(style.TEXT_DIM)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "waiting for the camera")
            return
        r = self.picture_rect()
        p.drawImage(r, self._image)
        pts = self.shot.points
        if pts is None:
            p.fillRect(QRectF(r.left(), r.bottom() - 28, r.width(), 28), QColor(0, 0, 0, 150))
            p.setPen(style.WARN)
            p.drawText(QRectF(r.left(), r.bottom() - 28, r.width(), 28), Qt.AlignmentFlag.AlignCenter, "no face")
            return
        iw = self._image.width()
        s = r.width() / iw
        xs = r.left() + (iw - pts[:, 0]) * s  # mirrored
        ys = r.top() + pts[:, 1] * s

        def at(i):
            return QPointF(float(xs[i]), float(ys[i]))

        dot = max(1.0, r.width() / 400)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(160, 220, 255, 110))
        for i in range(min(468, len(xs))):
            p.drawEllipse(QPointF(float(xs[i]), float(ys[i])), dot * 0.6, dot * 0.6)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor(160, 220, 255, 170), dot * 0.8))
        p.drawPolygon(QPolygonF([at(i) for i in FACE_OVAL]))
        for contour, eye in ((RIGHT_EYE_CONTOUR, RIGHT_EYE), (LEFT_EYE_CONTOUR, LEFT_EYE)):
            poly = QPolygonF([at(i) for i in contour])
            p.setPen(QPen(style.GOOD, dot * 1.2))
            p.drawPolygon(poly)
            b = poly.boundingRect()
            m = b.width() * 0.25
            p.setPen(QPen(style.WARN, dot, Qt.PenStyle.DashLine))
            p.drawRect(b.adjusted(-m, -m, m, m))  # the eye region the iris search looks in
            if len(xs) > max(eye["iris_ring"]):
                c = at(eye["iris"])
                ring = [at(i) for i in eye["iris_ring"]]
                rad = float(np.mean([math.hypot(q.x() - c.x(), q.y() - c.y()) for q in ring]))
                p.setPen(QPen(GAZE, dot * 1.2))
                p.drawEllipse(c, rad, rad)


class Sparkline(QWidget):
    """A label, a value and the last half minute as a line (newest on the right)."""

    def __init__(self, title: str, parent=None, *, lo: float = 0.0, hi: float | None = None):
        super().__init__(parent)
        self.title, self.value, self.lo, self.hi = title, "\u2013", lo, hi
        self.values = np.zeros(0)
        self.colour = style.TEXT
        self.setMinimumHeight(44)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_data(self, value: str, values: np.ndarray, colour: QColor | None = None) -> None:
        values = np.asarray(values, dtype=np.float64)
        if value == self.value and np.array_equal(values, self.values, equal_nan=True):
            return
        self.value, self.values = value, values
        self.colour = colour or style.TEXT
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), style.PANEL)
        fh = max(11.0, min(h * 0.3, w * 0.07))
        f = style.font_px(fh, 1.0, minimum=11)
        p.setFont(f)
        p.setPen(style.TEXT_DIM)
        pad = fh * 0.4
        p.drawText(QRectF(pad, pad * 0.5, w * 0.6, fh * 1.3), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                   self.title)
        f2 = style.font_px(fh * 1.35, 1.0, minimum=12, bold=True)
        p.setFont(f2)
        p.setPen(self.colour)
        p.drawText(QRectF(w * 0.45, pad * 0.3, w * 0.55 - pad, fh * 1.6),
                   Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, self.value)
        v = self.values
        plot = QRectF(pad, fh * 1.9, w - 2 * pad, h - fh * 1.9 - pad)
        if len(v) < 2 or plot.height() < 6:
            return
        finite = np.isfinite(v)
        hi = self.hi if self.hi is not None else (float(np.nanmax(v)) if finite.any() else 1.0)
        hi = max(hi, self.lo + 1e-9, 1.0 if self.hi is None else hi)
        p.setPen(QPen(style.PANEL_EDGE, 1))
        p.drawLine(plot.bottomLeft(), plot.bottomRight())
        path = QPainterPath()
        started = False
        n = len(v)
        for i, val in enumerate(v):
            if not math.isfinite(val):
                started = False
                continue
            x = plot.left() + plot.width() * i / (n - 1)
            y = plot.bottom() - plot.height() * (min(max(val, self.lo), hi) - self.lo) / (hi - self.lo)
            if started:
                path.lineTo(x, y)
            else:
                path.moveTo(x, y)
                started = True
        p.setPen(QPen(self.colour, max(1.5, h / 40)))
        p.drawPath(path)


class ScreenMiniature(QWidget):
    """The participant's screen, scaled: the question and answer boxes, their lines, the
    gaze trail, fixations, the gaze point and the cursor."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.state: MonitorState | None = None
        self.setMinimumSize(200, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_state(self, state: MonitorState) -> None:
        self.state = state
        self.update()

    def screen_rect(self) -> QRectF:
        st = self.state
        sw, sh = st.screen_px if st is not None and st.screen_px[0] > 0 else (1920, 1080)
        s = min((self.width() - 8) / sw, (self.height() - 8) / sh)
        return QRectF((self.width() - sw * s) / 2, (self.height() - sh * s) / 2, sw * s, sh * s)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), style.BACKGROUND)
        r = self.screen_rect()
        p.fillRect(r, style.PANEL)
        p.setPen(QPen(style.PANEL_EDGE, 1))
        p.drawRect(r)
        st = self.state
        if st is None:
            return
        sw = st.screen_px[0] if st.screen_px[0] > 0 else 1920
        s = r.width() / sw

        def pt(x, y):
            return QPointF(r.left() + x * s, r.top() + y * s)

        def box(x0, y0, x1, y1):
            return QRectF(pt(x0, y0), pt(x1, y1))

        p.setClipRect(r)
        if st.prompt_box is not None:
            p.setPen(QPen(style.TEXT_FAINT, 1))
            p.drawRect(box(*st.prompt_box))
        lines = st.line_boxes
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(200, 200, 200, 60))
        for x0, y0, x1, y1 in lines:
            p.drawRect(box(x0, y0 + (y1 - y0) * 0.2, x1, y1 - (y1 - y0) * 0.2))
        fh = max(11.0, r.height() * 0.035)
        p.setFont(style.font_px(fh, 1.0, minimum=11))
        for resp, x0, y0, x1, y1 in st.answer_boxes:
            c = ANSWER_COLOURS.get(resp, style.TEXT)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.setPen(QPen(c, max(1.5, r.width() / 500)))
            b = box(x0, y0, x1, y1)
            p.drawRect(b)
            p.drawText(b.adjusted(4, 2, -4, -2), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop,
                       "answer" if resp == 0 else f"answer {resp}")
        trail = st.trail
        if len(trail) >= 2:
            p.setPen(QPen(QColor(255, 217, 102, 90), max(1.0, r.width() / 600)))
            p.drawPolyline(QPolygonF([pt(x, y) for x, y in trail]))
        p.setPen(QPen(GAZE, 1))
        p.setBrush(FIXATION)
        for x, y, d in st.fixations:
            rad = max(3.0, r.width() * 0.006 * math.sqrt(max(d, 0.05) / 0.1))
            p.drawEllipse(pt(x, y), rad, rad)
        if st.cursor is not None:
            c = pt(*st.cursor)
            a = max(4.0, r.width() / 120)
            p.setPen(QPen(CURSOR, max(1.5, r.width() / 500)))
            p.drawLine(QPointF(c.x() - a, c.y()), QPointF(c.x() + a, c.y()))
            p.drawLine(QPointF(c.x(), c.y() - a), QPointF(c.x(), c.y() + a))
        if st.gaze_point is not None:
            c = pt(*st.gaze_point)
            rad = max(5.0, r.width() / 90)
            p.setPen(QPen(QColor(0, 0, 0, 180), 2))
            p.setBrush(GAZE)
            p.drawEllipse(c, rad, rad)
        p.setClipping(False)
        legend = QRectF(r.left() + 4, r.bottom() - fh * 1.6, r.width() - 8, fh * 1.5)
        p.setFont(style.font_px(fh * 0.9, 1.0, minimum=11))
        p.setPen(style.TEXT_DIM)
        p.drawText(legend, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                   f"\u25cf gaze   \u25cb fixations of the last seconds   + cursor   "
                   f"({st.screen_px[0]} x {st.screen_px[1]} px)")
        if st.paused:
            p.setPen(style.WARN)
            p.setFont(style.font_px(r.height(), 0.12, bold=True))
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, "PAUSED")


# ======================================================================================
# The window
# ======================================================================================

class MonitorWindow(QWidget):
    """The live monitor of a :class:`~ifllm_lab.ui.study_app.StudyApp` (module docstring).

    Args:
        app: the study window to follow (:meth:`attach` later when None).
        feed: the figures' source (a new :class:`MonitorFeed` when None).
        refresh_hz: refreshes a second.
    """

    def __init__(self, app=None, *, feed: MonitorFeed | None = None, refresh_hz: float = REFRESH_HZ, parent=None):
        super().__init__(parent)
        self.setWindowTitle("IFLLM Lab - live monitor")
        self.setAutoFillBackground(True)
        pal = self.palette()
        pal.setColor(QPalette.ColorRole.Window, style.BACKGROUND)
        pal.setColor(QPalette.ColorRole.WindowText, style.TEXT)
        self.setPalette(pal)
        self.feed = feed or MonitorFeed()
        self.app = None
        self.state = MonitorState()
        self.refreshes = 0
        self.close_with_app = False  # close when the study window closes
        self.refresh_ms_max = 0.0
        self._confirm_until = 0.0
        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(max(20, int(1000 / refresh_hz)))
        self.timer.timeout.connect(self.refresh)
        if app is not None:
            self.attach(app)
        self.timer.start()

    # -- layout -----------------------------------------------------------------------
    def _build(self) -> None:
        self.title = QLabel("No session yet", self)
        self.title.setObjectName("monitor_title")
        self.flow = QLabel("", self)
        self.flow.setObjectName("monitor_flow")
        self.camera = CameraView(self)
        self.rate = Sparkline("gaze rate (Hz)", self)
        self.valid = Sparkline("valid share", self, hi=1.0)
        self.dropped = Sparkline("dropped frames", self, hi=None)
        self.screen_view = ScreenMiniature(self)

        def info(name):
            lab = QLabel("\u2013", self)
            lab.setObjectName(name)
            lab.setWordWrap(True)
            lab.setTextFormat(Qt.TextFormat.RichText)
            lab.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            lab.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
            return lab

        self.calibration_info = info("monitor_calibration")
        self.llm_info = info("monitor_llm")
        self.file_info = info("monitor_file")
        self.prediction_info = info("monitor_predictions")
        self.warnings = info("monitor_warnings")

        self.pause_button = QPushButton("Pause", self)
        self.pause_button.setObjectName("monitor_pause")
        self.recalibrate_button = QPushButton("Recalibrate at next turn", self)
        self.recalibrate_button.setObjectName("monitor_recalibrate")
        self.end_button = QPushButton("End session", self)
        self.end_button.setObjectName("monitor_end")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.recalibrate_button.clicked.connect(self.recalibrate)
        self.end_button.clicked.connect(self.end_session)

        left = QVBoxLayout()
        left.addWidget(self.camera, 5)
        for w in (self.rate, self.valid, self.dropped):
            left.addWidget(w, 2)
        right = QGridLayout()
        right.addWidget(self.calibration_info, 0, 0)
        right.addWidget(self.llm_info, 0, 1)
        right.addWidget(self.file_info, 0, 2)
        right.addWidget(self.prediction_info, 1, 0, 1, 2)
        right.addWidget(self.warnings, 1, 2)
        for c in range(3):
            right.setColumnStretch(c, 1)
        centre = QVBoxLayout()
        centre.addWidget(self.screen_view, 5)
        centre.addLayout(right, 3)
        body = QHBoxLayout()
        body.addLayout(left, 2)
        body.addLayout(centre, 5)
        buttons = QHBoxLayout()
        for b in (self.pause_button, self.recalibrate_button, self.end_button):
            buttons.addWidget(b)
        head = QVBoxLayout()
        head.addWidget(self.title)
        head.addWidget(self.flow)
        outer = QVBoxLayout(self)
        outer.addLayout(head)
        outer.addLayout(body, 1)
        outer.addLayout(buttons)
        self._layouts = (outer, body, centre, left, right, buttons)
        self._sized_for = None
        self._apply_sizes()

    def _apply_sizes(self) -> None:
        """Type and spacing in proportion to the window (a laptop or a 4K monitor)."""
        h = style.type_height(self.width(), self.height())
        key = int(h)
        if key == self._sized_for:
            return
        self._sized_for = key
        base = max(12, int(round(h * 0.021)))
        pad = max(4, int(round(h * 0.01)))
        self.setStyleSheet(
            f"QWidget {{ color: {style.css(style.TEXT)}; font-family: '{style.FONT_FAMILY}'; font-size: {base}px; }}"
            f"QLabel#monitor_title {{ font-size: {int(base * 1.5)}px; font-weight: bold; }}"
            f"QLabel#monitor_flow {{ font-size: {int(base * 1.15)}px; color: {style.css(style.TEXT_DIM)}; }}"
            f"QLabel#monitor_calibration, QLabel#monitor_llm, QLabel#monitor_file, QLabel#monitor_predictions, "
            f"QLabel#monitor_warnings {{ background: {style.css(style.PANEL)}; padding: {pad}px; }}"
            + style.button_stylesheet(h)
            + f" QPushButton:disabled {{ color: {style.css(style.TEXT_FAINT)}; background: #404040;"
              f" border: 1px solid #505050; }}")
        for lay in self._layouts:
            lay.setSpacing(pad)
        self._layouts[0].setContentsMargins(pad, pad, pad, pad)

    def resizeEvent(self, event) -> None:
        self._apply_sizes()
        super().resizeEvent(event)

    # -- following an app -------------------------------------------------------------
    def attach(self, app) -> None:
        """Follow ``app``: its sessions (taps on each session's writer from its first row
        on), its camera frames and its answer pieces. A session already under way is
        followed from now on."""
        self.detach()
        self.app = app
        cfg = getattr(app, "config", None)
        setting = getattr(getattr(cfg, "study", None), "monitor_model", "") if cfg is not None else ""
        if setting and self.feed.predictor is None:
            self.feed.set_predictor(TurnPredictor(model_folder(setting, getattr(cfg, "source", ""))))
        app.session_opened.connect(self._session_opened)
        app._token.connect(self._token)
        app.stage_changed.connect(self._stage_changed)
        app.camera_taps = list(app.camera_taps) + [self.feed.camera]  # replaced whole: read by the tracker thread
        app.installEventFilter(self)
        if app.session is not None:
            self._session_opened(app.session)
        self.refresh()

    def detach(self) -> None:
        """Stop following the app: every tap and connection is removed."""
        app, self.app = self.app, None
        if app is None:
            return
        for sig, slot in ((app.session_opened, self._session_opened), (app._token, self._token),
                          (app.stage_changed, self._stage_changed)):
            try:
                sig.disconnect(slot)
            except (RuntimeError, TypeError):
                pass
        app.camera_taps = [t for t in app.camera_taps if t != self.feed.camera]
        app.removeEventFilter(self)
        self.feed.detach()

    def eventFilter(self, obj, event) -> bool:
        if obj is self.app and event.type() == QEvent.Type.Close and self.close_with_app:
            QTimer.singleShot(0, self.close)
        return False

    @Slot(object)
    def _session_opened(self, session) -> None:
        try:
            self.feed.attach(session.writer, session.meta, questions=len(session.plan))
        except Exception:  # the monitor must never stop a session from starting
            log.exception("the live monitor could not follow the session")

    @Slot(str, str)
    def _token(self, side: str = "", text: str = "") -> None:
        self.feed.token()

    @Slot(str)
    def _stage_changed(self, stage: str) -> None:
        self._update_buttons()

    def closeEvent(self, event) -> None:
        self.timer.stop()
        self.detach()
        self.feed.close()
        super().closeEvent(event)

    # -- controls ---------------------------------------------------------------------
    @Slot()
    def toggle_pause(self) -> bool:
        app = self.app
        if app is None:
            return False
        ok = app.resume_session() if app.stage == "paused" else app.pause_session()
        self.refresh()
        return ok

    @Slot()
    def recalibrate(self) -> bool:
        ok = self.app is not None and self.app.request_recalibration()
        self.refresh()
        return ok

    @Slot()
    def end_session(self) -> bool:
        """First click: asks for a second within ``CONFIRM_S``; the second ends the session."""
        app = self.app
        if app is None or app.session is None:
            return False
        now = time.monotonic()
        if now > self._confirm_until:
            self._confirm_until = now + CONFIRM_S
            self._update_buttons()
            return False
        self._confirm_until = 0.0
        ok = app.end_session_early("ended early by the researcher (live monitor)")
        self.refresh()
        return ok

    def _update_buttons(self) -> None:
        app = self.app
        session = app is not None and app.session is not None
        paused = session and app.stage == "paused"
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_button.setEnabled(bool(paused or (session and app.can_pause)))
        asked = session and app.recalibrate_next
        self.recalibrate_button.setText("Recalibration before the next question" if asked
                                        else "Recalibrate at next turn")
        self.recalibrate_button.setEnabled(bool(session and not asked))
        confirming = time.monotonic() < self._confirm_until
        self.end_button.setText("Click again to end the session" if confirming and session else "End session")
        self.end_button.setEnabled(bool(session))

    # -- refresh ----------------------------------------------------------------------
    @Slot()
    def refresh(self) -> MonitorState:
        t0 = time.perf_counter()
        st = self.feed.update()
        self.state = st
        self._show(st)
        self._update_buttons()
        self.refreshes += 1
        self.refresh_ms_max = max(self.refresh_ms_max, (time.perf_counter() - t0) * 1000)
        return st

    def _show(self, st: MonitorState) -> None:
        app = self.app
        if st.path:
            who = f"{st.participant} \u00b7 {st.study}"
            state = " \u00b7 ENDED" if st.ended else (" \u00b7 PAUSED" if st.paused else "")
            self.title.setText(f"{who}{state}")
        else:
            self.title.setText("No session yet" + (f" \u00b7 {app.config.study.name}" if app is not None else ""))
        turn = f"question {st.turn + 1} of {st.questions}" if st.turn >= 0 else "no question yet"
        stage = (app.stage if app is not None else st.stage) or st.stage
        clock = f"{int(st.t // 60)}:{int(st.t % 60):02d}" if math.isfinite(st.t) and st.attached else "\u2013"
        self.flow.setText(f"{turn} ({st.mode or DASH}) \u00b7 stage {stage or DASH} \u00b7 "
                          f"last phase {st.phase or DASH} \u00b7 {st.turns_done} rated \u00b7 t {clock}")
        self.camera.set_shot(st.camera)
        w = st.window_s
        rate_ok = math.isfinite(st.gaze_rate_hz) and st.gaze_rate_hz >= 20
        self.rate.set_data(f"{fmt(st.gaze_rate_hz, 1)}", st.history_rate, style.GOOD if rate_ok else style.WARN)
        vs = st.valid_share
        self.valid.set_data(_pct(vs), st.history_valid,
                            style.GOOD if math.isfinite(vs) and vs >= 0.8 else style.WARN)
        self.dropped.set_data(f"{st.dropped} / {w:g} s", st.history_dropped,
                              style.GOOD if st.dropped == 0 else style.WARN)
        self.screen_view.set_state(st)
        passed = {True: f"<span style='color:{style.css(style.GOOD)}'>passed</span>",
                  False: f"<span style='color:{style.css(style.BAD)}'>failed</span>", None: ""}[st.validation_passed]
        drift = (f"{fmt(st.drift_deg, 2)}\u00b0 \u2192 {st.drift_action}" if math.isfinite(st.drift_deg)
                 else "none yet")
        self.calibration_info.setText(
            f"<b>Validation</b> {passed}<br>accuracy {fmt(st.validation_deg, 2)}\u00b0, precision "
            f"{fmt(st.validation_precision_deg, 2)}\u00b0<br>runs {st.validations}<br><b>Drift</b> {drift}"
            + ("<br><i>recalibration before the next question</i>" if st.recalibration_requested else ""))
        llm_state = "answering" if st.answering else "idle"
        if app is not None and app._llm_ok is None:
            llm_state = "loading"
        elif app is not None and app._llm_ok is False:
            llm_state = "not usable"
        now = (f"now {fmt(st.live_tokens_per_s, 1)} tokens/s ({st.live_tokens} pieces)" if st.answering
               else f"last answer: {st.live_tokens} pieces shown")
        self.llm_info.setText(
            f"<b>Language model</b> {llm_state}<br>{now}<br>"
            f"last answer {fmt(st.last_tokens_per_s, 1)} tokens/s<br>first piece after "
            f"{fmt(st.last_first_token_s, 2)} s")
        rows = sum(st.counts.values())
        self.file_info.setText(
            f"<b>Session file</b><br>{_mb(st.file_bytes)} \u00b7 {rows} rows<br>free disk {_gb(st.free_bytes)}<br>"
            f"gaze {st.gaze_rows} ({_pct(st.gaze_valid / st.gaze_rows if st.gaze_rows else math.nan)} valid), "
            f"dropped {st.dropped_total}")
        self.prediction_info.setText(self._predictions_html(st))
        if st.warnings:
            self.warnings.setText("<b>Log</b><br>" + "<br>".join(
                f"{t:.0f} s {_escape(m)[:120]}" for t, m in st.warnings[-3:]))
        else:
            self.warnings.setText("<b>Log</b><br>no warnings")

    def _predictions_html(self, st: MonitorState) -> str:
        if not st.model_name and not st.model_error:
            return "<b>Reward model</b><br>none chosen for this study (<i>[study] monitor_model</i>)"
        head = f"<b>Reward model</b> {_escape(st.model_name)}"
        if st.model_error and not st.predictions:
            return f"{head}<br><span style='color:{style.css(style.WARN)}'>{_escape(st.model_error)}</span>"
        if not st.predictions:
            return f"{head}<br>its prediction appears here after each rated question"
        lines = []
        for pr in st.predictions[-4:]:
            if pr.error:
                lines.append(f"Q{pr.turn + 1}: {_escape(pr.error)[:80]}")
                continue
            if pr.mode == "pairwise":
                choice = {1: "answer 1", 2: "answer 2", 0: "tie", -1: "none"}.get(pr.actual, "?")
                text = (f"Q{pr.turn + 1}: P(answer 1) = {pr.p:.2f} \u2192 answer {pr.predicted}; "
                        f"participant: {choice}")
            else:
                text = (f"Q{pr.turn + 1}: P(good) = {pr.p:.2f}; participant rated "
                        f"{pr.actual if pr.actual > 0 else 'none'}")
            ok = pr.agrees
            if ok is not None:
                colour = style.GOOD if ok else style.BAD
                text += f" <span style='color:{style.css(colour)}'>{'agree' if ok else 'differ'}</span>"
            lines.append(text)
        return head + "<br>" + "<br>".join(lines)


def _escape(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def open_monitor(app, *, screen=None, size: tuple[int, int] | None = None) -> MonitorWindow:
    """A monitor window for ``app``, shown on ``screen`` (a QScreen; default: the app's)."""
    win = MonitorWindow(app)
    win.close_with_app = True
    if screen is not None:
        g = screen.availableGeometry()
        win.move(g.topLeft())
        if size is None:
            win.resize(int(g.width() * 0.9), int(g.height() * 0.9))
    if size is not None:
        win.resize(*size)
    elif screen is None:
        win.resize(1280, 800)
    win.show()
    return win
