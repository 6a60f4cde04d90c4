"""Calibration screens: what the participant sees while being calibrated, and what the
researcher sees afterwards.

Participant
-----------
:class:`FaceGuide`
    Before calibration: a stylised camera frame (optionally the mirrored camera picture)
    with an oval where the face should be, an outline where it is, and one plain-language
    hint ("Move back a little", "Good \u2014 keep still", ...). Fed with the tracker's
    :class:`~ifllm_lab.gaze.tracker.GazeSample` objects through a :class:`GazeBridge`, so
    the tracker thread never touches a widget.
:class:`TargetScreen`
    Full-screen target display for calibration, validation and drift checks. It is
    driven by a :class:`~ifllm_lab.gaze.procedure.TargetRun` and the session clock: a
    ~60 Hz timer reads ``clock.now()``, asks ``run.state_at(t)`` and repaints, so what is
    drawn is exactly what the run files the gaze samples under. ``finished`` is emitted
    once when the run is done.

Researcher
----------
:class:`ValidationReportView`
    A map of the screen with each validation target, the mean gaze estimate, the error
    line, a precision circle and the accuracy in degrees, colour-coded against the
    thresholds; the overall figures, PASS / FAIL and why; "Recalibrate" and "Continue".
:class:`DriftResultView`
    The outcome of a one-point drift check (offset, corrected / recalibration
    recommended), with "Check again", "Recalibrate" and "Continue".

Coordinates
-----------
A run's target positions are in the px of the screen described by ``run.screen`` (origin
top left). :class:`TargetScreen` maps them into the widget by scaling x by
``widget width / screen.width_px`` and y by ``widget height / screen.height_px``: when
the widget is shown full screen on that screen (the intended use) this is the identity
(also on high-DPI screens, where Qt's logical px differ from the device px the geometry
counts, because the widget then spans the whole screen either way); when the widget is
smaller (a preview, an offscreen test) the targets keep their place relative to the
widget, and the target's size (given in degrees of visual angle) shrinks by the same
factor.

Nothing here raises into Qt's event loop: errors end up as calm text on the screen and in
the log.
"""
from __future__ import annotations

import logging
import math
import time
import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QKeyEvent, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ..gaze.face_position import MESSAGES, FacePositionTargets, FaceStatus, face_features, face_status
from ..gaze.calibration import point_grade
from . import style
from .style import fmt

log = logging.getLogger(__name__)

__all__ = [
    "TargetScreen", "FaceGuide", "GazeBridge", "ValidationReportView", "DriftResultView",
    "FacePositionTargets", "FaceStatus", "face_status", "point_grade",
    "TARGET_OUTER_DEG", "TARGET_INNER_DEG", "TARGET_CENTRE_DEG", "PURSUIT_DEG",
]

# Target sizes, degrees of visual angle (radii, except the centre dot's diameter)
TARGET_OUTER_DEG = 1.0  # radius of the disc when a target appears
TARGET_INNER_DEG = 0.3  # radius it has shrunk to at the end of the dwell
TARGET_CENTRE_DEG = 0.2  # diameter of the dark fixation point in the middle
PURSUIT_DEG = 0.5  # radius of the moving smooth-pursuit target

FRAME_MS = 16  # ~60 Hz repaint
DEG = "\u00b0"


# ======================================================================================
# Painting helpers
# ======================================================================================

def _text(p: QPainter, rect: QRectF, text: str, font, color: QColor,
          flags=Qt.AlignmentFlag.AlignCenter, *, record: list | None = None) -> None:
    """``text`` in ``rect``, wrapped at words; a font too large for it is made smaller
    (:func:`~ifllm_lab.ui.style.fit_font`). ``record``: a widget's list of what it painted
    (its ``painted_texts()``)."""
    flags = int(flags) | int(Qt.TextFlag.TextWordWrap)
    font = style.fit_font(font, text, rect, flags)
    p.setFont(font)
    p.setPen(color)
    p.drawText(rect, flags, text)
    if record is not None:
        record.append((QRectF(rect), text, font, flags))


def _line_rect(w: float, y_centre: float, height: float, margin: float = 0.05) -> QRectF:
    """A full-width text band centred on ``y_centre``."""
    return QRectF(w * margin, y_centre - height / 2, w * (1 - 2 * margin), height)


def _draw_target(p: QPainter, c: QPointF, r_disc: float, r_centre: float) -> None:
    """Light disc of radius ``r_disc`` with a dark fixation point of radius ``r_centre``."""
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(style.TARGET)
    p.drawEllipse(c, r_disc, r_disc)
    p.setBrush(style.TARGET_CENTRE)
    p.drawEllipse(c, r_centre, r_centre)


def _cross(p: QPainter, c: QPointF, r: float) -> None:
    p.drawLine(QPointF(c.x() - r, c.y()), QPointF(c.x() + r, c.y()))
    p.drawLine(QPointF(c.x(), c.y() - r), QPointF(c.x(), c.y() + r))


def _arrow(p: QPainter, a: QPointF, b: QPointF, head: float) -> None:
    p.drawLine(a, b)
    d = b - a
    n = math.hypot(d.x(), d.y())
    if n < 1e-6:
        return
    ux, uy = d.x() / n, d.y() / n
    left = QPointF(b.x() - head * (ux * 0.9 - uy * 0.5), b.y() - head * (uy * 0.9 + ux * 0.5))
    right = QPointF(b.x() - head * (ux * 0.9 + uy * 0.5), b.y() - head * (uy * 0.9 - ux * 0.5))
    p.save()
    p.setBrush(p.pen().color())
    p.drawPolygon(QPolygonF([b, left, right]))
    p.restore()


def _finite(*v) -> bool:
    return all(x is not None and isinstance(x, (int, float, np.floating)) and math.isfinite(x) for x in v)


# ======================================================================================
# Face guide (what the hint says: ifllm_lab.gaze.face_position)
# ======================================================================================

def _mirrored_qimage(rgb) -> QImage | None:
    a = np.asarray(rgb)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] < 2 or a.shape[1] < 2:
        raise ValueError(f"a camera frame must be an (h, w, 3) RGB array, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    a = np.ascontiguousarray(a[:, ::-1, :3])  # mirror, as people expect to see themselves
    h, w = a.shape[:2]
    return QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


# Face oval: centre below the eye line and size at the nominal distance, as fractions
# of the camera frame (a face at ~60 cm fills about a third of a webcam's width).
OVAL_DY = 0.08
OVAL_W = 0.30
OVAL_H = 0.50


def _paint_face_guide(p: QPainter, frame: QRectF, status: FaceStatus, features, image: QImage | None,
                      targets: FacePositionTargets, *, compact: bool = False, record: list | None = None) -> None:
    """The camera frame with the target oval, the face's oval and an arrow between them."""
    radius = frame.height() * 0.04
    path = QPainterPath()
    path.addRoundedRect(frame, radius, radius)
    p.save()
    p.setClipPath(path)
    p.fillRect(frame, style.PANEL)
    if image is not None and not image.isNull():
        p.drawImage(frame, image)
        p.fillRect(frame, QColor(0, 0, 0, 110))  # dim it: the guide is what matters
    p.setClipping(False)
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.setPen(QPen(style.PANEL_EDGE, max(1.0, frame.height() * 0.006)))
    p.drawPath(path)

    def at(fx, fy):  # unmirrored image fractions -> the mirrored picture
        return QPointF(frame.left() + (1.0 - fx) * frame.width(), frame.top() + fy * frame.height())

    good = status.good
    colour = style.GOOD if good else (style.WARN if status.code not in ("no_face", "waiting") else style.TEXT_DIM)
    line_w = max(2.0, frame.height() * 0.012)
    ow, oh = OVAL_W * frame.width(), OVAL_H * frame.height()
    tc = at(targets.centre_x, targets.centre_y + OVAL_DY)
    pen = QPen(style.GOOD if good else QColor(230, 230, 230, 200), line_w)
    if not good:
        pen.setStyle(Qt.PenStyle.DashLine)
    p.setPen(pen)
    p.drawEllipse(tc, ow / 2, oh / 2)

    f = face_features(features)
    if f is not None and _finite(f.face_x, f.face_y) and status.code != "waiting":
        scale = 1.0
        if _finite(f.face_distance_mm) and f.face_distance_mm > 0:
            scale = float(np.clip(targets.nominal_distance_mm / f.face_distance_mm, 0.4, 2.2))
        fc = at(f.face_x, f.face_y + OVAL_DY * scale)
        eye = at(f.face_x, f.face_y)
        p.setClipPath(path)
        if not good:
            p.setPen(QPen(colour, line_w))
            p.drawEllipse(fc, ow / 2 * scale, oh / 2 * scale)
            if any(c.startswith("move_") for c in status.codes):
                p.setPen(QPen(colour, line_w * 0.8, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
                _arrow(p, fc, tc, frame.height() * 0.05)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colour)
        p.drawEllipse(eye, line_w * 1.4, line_w * 1.4)
    p.restore()
    if compact:  # the hint on a band at the bottom of the frame
        band = QRectF(frame.left(), frame.bottom() - frame.height() * 0.2, frame.width(), frame.height() * 0.2)
        p.save()
        p.setClipPath(path)
        p.fillRect(band, QColor(0, 0, 0, 150))
        p.restore()
        _text(p, band.adjusted(band.width() * 0.03, 0, -band.width() * 0.03, 0), status.message,
              style.font_px(frame.height(), 0.1), style.GOOD if good else style.TEXT, record=record)


# ======================================================================================
# Bridge from the tracker thread
# ======================================================================================

class GazeBridge(QObject):
    """Posts tracker samples and camera frames from any thread to widgets in the GUI thread.

    Create it in the GUI thread, ``attach()`` the widgets, and call :meth:`post_sample` /
    :meth:`post_frame` from the tracker thread (e.g. as the tracker's ``on_sample``).
    The signals are delivered through Qt's queued connections, so the widgets' slots run
    in the GUI thread. Frames are copied on posting (the source may reuse its buffer).
    """

    sample_posted = Signal(object)
    frame_posted = Signal(object)

    def post_sample(self, sample) -> None:
        self.sample_posted.emit(sample)

    def post_frame(self, rgb) -> None:
        self.frame_posted.emit(np.array(rgb, copy=True))

    def attach(self, *widgets) -> "GazeBridge":
        """Connect ``update_sample`` / ``set_frame`` of each widget that has them."""
        for w in widgets:
            if hasattr(w, "update_sample"):
                self.sample_posted.connect(w.update_sample)
            if hasattr(w, "set_frame"):
                self.frame_posted.connect(w.set_frame)
        return self

    def detach(self, *widgets) -> None:
        for w in widgets:
            for sig, slot in ((self.sample_posted, "update_sample"), (self.frame_posted, "set_frame")):
                if hasattr(w, slot):
                    try:
                        sig.disconnect(getattr(w, slot))
                    except (RuntimeError, TypeError):
                        pass


# ======================================================================================
# Face guide
# ======================================================================================

class FaceGuide(QWidget):
    """Face-position guide shown before calibration.

    Feed it with :meth:`update_sample` (a GazeSample, or None for "no face") and
    optionally :meth:`set_frame` (an RGB camera frame, drawn mirrored behind the guide),
    directly from the GUI thread or through a :class:`GazeBridge` from the tracker thread.
    Without a sample for ``stale_after_s`` seconds it says it is waiting for the camera.

    Signals: ``status_changed(FaceStatus)`` when the hint changes; ``continue_requested``
    when the participant presses Space or Enter while the position is good (the prompt
    is shown when ``show_continue_prompt`` is on).
    """

    status_changed = Signal(object)
    continue_requested = Signal()

    def __init__(self, parent=None, *, targets: FacePositionTargets | None = None,
                 stale_after_s: float | None = 2.0, show_continue_prompt: bool = True,
                 title: str = "Position your face in the oval"):
        super().__init__(parent)
        self.targets = targets or FacePositionTargets()
        self.stale_after_s = stale_after_s
        self.show_continue_prompt = show_continue_prompt
        self.title = title
        self._status = FaceStatus("waiting", MESSAGES["waiting"], (MESSAGES["waiting"],), ("waiting",))
        self._features = None
        self._image: QImage | None = None
        self._last_update = None
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(320, 240)
        self._painted: list = []
        self._stale_timer = QTimer(self)
        self._stale_timer.setInterval(250)
        self._stale_timer.timeout.connect(self._check_stale)
        self._stale_timer.start()

    # -- input --------------------------------------------------------------------------
    @Slot(object)
    def update_sample(self, sample) -> None:
        """The latest tracker sample (GazeSample / EyeFeatures / None). GUI thread only;
        from other threads go through :class:`GazeBridge`."""
        try:
            self._features = face_features(sample)
            self._last_update = time.monotonic()
            self._set_status(face_status(self._features, self.targets))
        except Exception as e:  # a malformed sample must not break the screen
            log.exception("face guide: bad sample")
            self._set_status(FaceStatus("no_face", MESSAGES["no_face"], (MESSAGES["no_face"], str(e)),
                                        ("no_face",)))

    @Slot(object)
    def set_frame(self, rgb) -> None:
        """The camera picture (``(h, w, 3)`` RGB uint8, unmirrored); None removes it."""
        try:
            self._image = None if rgb is None else _mirrored_qimage(rgb)
        except Exception:
            log.exception("face guide: bad camera frame")
            self._image = None
        self.update()

    # -- state --------------------------------------------------------------------------
    @property
    def status(self) -> FaceStatus:
        return self._status

    def hint_text(self) -> str:
        return self._status.message

    def _set_status(self, status: FaceStatus) -> None:
        changed = status != self._status
        self._status = status
        self.setAccessibleDescription(status.message)
        self.update()
        if changed:
            self.status_changed.emit(status)

    def _check_stale(self) -> None:
        if self.stale_after_s is None or self._status.code == "waiting":
            return
        if self._last_update is None or time.monotonic() - self._last_update > self.stale_after_s:
            self._features = None
            self._set_status(FaceStatus("waiting", MESSAGES["waiting"], (MESSAGES["waiting"],), ("waiting",)))

    # -- events -------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter) and self._status.good:
            self.continue_requested.emit()
            return
        super().keyPressEvent(event)

    def frame_rect(self) -> QRectF:
        """Where the camera frame is drawn (widget px)."""
        w, h = self.width(), self.height()
        aspect = 4 / 3 if self._image is None else self._image.width() / max(1, self._image.height())
        fh = h * 0.60
        fw = min(fh * aspect, w * 0.9)
        fh = fw / aspect
        return QRectF((w - fw) / 2, h * 0.15 + (h * 0.60 - fh) / 2, fw, fh)

    def painted_texts(self) -> list:
        """What the last paint wrote: [(rect, text, font, flags)] in widget px."""
        return list(self._painted)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        painted = self._painted = []
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.fillRect(self.rect(), style.BACKGROUND)
            w, h = self.width(), self.height()
            _text(p, _line_rect(w, h * 0.075, h * 0.09), self.title, style.font_px(h, 0.045), style.TEXT,
                  record=painted)
            _paint_face_guide(p, self.frame_rect(), self._status, self._features, self._image, self.targets)
            st = self._status
            _text(p, _line_rect(w, h * 0.835, h * 0.08), st.message, style.font_px(h, 0.05, bold=True),
                  style.GOOD if st.good else style.TEXT, record=painted)
            extra = list(st.hints[1:])
            f = self._features
            if f is not None and _finite(f.face_distance_mm) and st.code not in ("waiting", "no_face"):
                t = self.targets
                extra.append(f"distance about {f.face_distance_mm / 10:.0f} cm "
                             f"(best {t.min_distance_mm / 10:.0f}\u2013{t.max_distance_mm / 10:.0f} cm)")
            if st.good and self.show_continue_prompt:
                extra = ["When you are ready, press the space bar"]
            if extra:
                _text(p, _line_rect(w, h * 0.915, h * 0.06), "  \u00b7  ".join(extra),
                      style.font_px(h, 0.028), style.TEXT_DIM, record=painted)
        except Exception:
            log.exception("face guide: paint failed")
        finally:
            p.end()


# ======================================================================================
# Target screen
# ======================================================================================

_DEFAULT_TITLES = {0: "Calibration", 1: "Validation", 2: "Drift check"}


class TargetScreen(QWidget):
    """Full-screen target display driven by a :class:`~ifllm_lab.gaze.procedure.TargetRun`.

    Args:
        clock: anything with ``now() -> float`` session seconds (the
            :class:`~ifllm_lab.session.writer.SessionClock`).

    :meth:`set_run` starts a run (calibration, validation or drift check); a timer
    (``FRAME_MS``, ~60 Hz) then reads the clock, asks the run what is on screen and
    repaints: a countdown ("Look at the dot", seconds left) with the first target already
    in place, then each target as a light disc that shrinks from ``TARGET_OUTER_DEG`` to
    ``TARGET_INNER_DEG`` over its dwell around a dark ``TARGET_CENTRE_DEG`` fixation point
    (a moving disc for smooth pursuit), and a small "4 / 9" in the bottom right corner.
    Run px are mapped to the widget as described in the module docstring
    (:meth:`to_widget`).

    While the countdown runs, a small face-position guide is drawn when samples arrive
    through :meth:`update_sample` (e.g. attached to a :class:`GazeBridge`).

    Signals: ``finished`` once per run when it is done; ``target_changed(TargetState)``
    when a new target appears; ``aborted`` on Escape (for the researcher).
    """

    finished = Signal()
    aborted = Signal()
    target_changed = Signal(object)

    def __init__(self, clock, parent=None, *, frame_ms: int = FRAME_MS,
                 face_targets: FacePositionTargets | None = None):
        super().__init__(parent)
        self.clock = clock
        self.face_targets = face_targets or FacePositionTargets()
        self.show_face_guide = True
        self._run = None
        self._title = ""
        self._state = None
        self._message: str | None = None
        self._finished_emitted = False
        self._last_number = 0
        self._face_status: FaceStatus | None = None
        self._face_features = None
        self._painted: list = []
        self.setCursor(Qt.CursorShape.BlankCursor)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(int(frame_ms))
        self._timer.timeout.connect(self.tick)

    # -- control ------------------------------------------------------------------------
    def set_run(self, run, title: str | None = None) -> None:
        """Show ``run`` (a TargetRun) from now on; ``title`` defaults from its phase."""
        self._run = run
        phase = getattr(run, "phase", 0)
        self._title = title if title is not None else _DEFAULT_TITLES.get(int(phase), "Calibration")
        self._state = None
        self._message = None
        self._finished_emitted = False
        self._last_number = 0
        self.tick()
        if not self._finished_emitted and self._message is None:
            self._timer.start()

    def stop(self) -> None:
        """Stop updating (the run is kept; ``finished`` is not emitted)."""
        self._timer.stop()

    def show_message(self, text: str) -> None:
        """Replace the targets by a calm message (and stop the run's display)."""
        self._message = text
        self._timer.stop()
        self.update()

    @property
    def run(self):
        return self._run

    @property
    def title(self) -> str:
        return self._title

    @property
    def state(self):
        """The last :class:`~ifllm_lab.gaze.procedure.TargetState` drawn (None before a run)."""
        return self._state

    @property
    def message(self) -> str | None:
        return self._message

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    @Slot()
    def tick(self) -> None:
        """Read the clock, update the state and repaint (the timer calls this)."""
        run = self._run
        if run is None:
            return
        try:
            t = float(self.clock.now())
            state = run.state_at(t)
        except Exception as e:
            log.exception("target screen: the run failed")
            self.show_message(f"The target display stopped ({e}). Please tell the researcher.")
            return
        self._state = state
        if state.stage == "target" and state.number != self._last_number:
            self._last_number = state.number
            self.target_changed.emit(state)
        self.update()
        if state.stage == "done" and not self._finished_emitted:
            self._finished_emitted = True
            self._timer.stop()
            self.finished.emit()

    @Slot(object)
    def update_sample(self, sample) -> None:
        """Latest tracker sample, for the face guide drawn during the countdown."""
        try:
            self._face_features = face_features(sample)
            self._face_status = face_status(self._face_features, self.face_targets)
        except Exception:
            log.exception("target screen: bad sample")

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.aborted.emit()
            return
        super().keyPressEvent(event)

    # -- geometry -----------------------------------------------------------------------
    def _scale(self) -> tuple[float, float]:
        sc = self._run.screen
        return self.width() / float(sc.width_px), self.height() / float(sc.height_px)

    def to_widget(self, x: float, y: float) -> QPointF:
        """Run (screen) px -> widget px."""
        sx, sy = self._scale()
        return QPointF(x * sx, y * sy)

    def deg_to_widget_px(self, deg: float) -> float:
        """Size in widget px of ``deg`` degrees of visual angle (at the screen centre)."""
        sx, sy = self._scale()
        return float(self._run.screen.deg_to_px(deg)) * 0.5 * (sx + sy)

    def target_radii(self, progress: float, pursuit: bool = False) -> tuple[float, float]:
        """(disc radius, centre-dot radius) in widget px at ``progress`` 0..1 of the dwell.

        The disc shrinks with an ease-out curve, fast at first and settling towards the
        end: ``inner + (outer - inner) * (1 - progress)**2``.
        """
        centre = max(1.5, self.deg_to_widget_px(TARGET_CENTRE_DEG) / 2)
        if pursuit:
            return max(6.0, self.deg_to_widget_px(PURSUIT_DEG)), centre
        outer = max(10.0, self.deg_to_widget_px(TARGET_OUTER_DEG))
        inner = max(centre + 3.0, self.deg_to_widget_px(TARGET_INNER_DEG))
        q = 1.0 - float(np.clip(progress, 0.0, 1.0))
        return inner + (outer - inner) * q * q, centre

    def first_target_px(self) -> tuple[float, float] | None:
        """Where the first target will appear (run px), shown during the countdown."""
        run = self._run
        try:
            if run.pattern.is_pursuit:
                x, y = run.pattern.position_px_at(0.0, run.screen)
            else:
                x, y = run.pattern.targets_px(run.screen)[run.order[0]]
            return float(x), float(y)
        except Exception:
            return None

    # -- painting -----------------------------------------------------------------------
    def painted_texts(self) -> list:
        """What the last paint wrote: [(rect, text, font, flags)] in widget px."""
        return list(self._painted)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        self._painted = []
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.fillRect(self.rect(), style.BACKGROUND)
            w, h = self.width(), self.height()
            if self._message is not None:
                _text(p, _line_rect(w, h * 0.5, h * 0.3), self._message, style.font_px(h, 0.04), style.TEXT,
                      record=self._painted)
                return
            st = self._state
            if self._run is None or st is None:
                return
            if st.stage == "countdown":
                self._paint_countdown(p, st)
            elif st.stage == "target":
                pursuit = self._run.pattern.is_pursuit
                r, rc = self.target_radii(st.progress, pursuit)
                _draw_target(p, self.to_widget(st.x, st.y), r, rc)
                self._paint_progress(p, st, pursuit)
            else:
                _text(p, _line_rect(w, h * 0.5, h * 0.1), "Thank you", style.font_px(h, 0.045), style.TEXT_DIM,
                      record=self._painted)
        except Exception:
            log.exception("target screen: paint failed")
        finally:
            p.end()

    def _paint_countdown(self, p: QPainter, st) -> None:
        w, h = self.width(), self.height()
        pursuit = self._run.pattern.is_pursuit
        painted = self._painted
        if self._title:
            _text(p, _line_rect(w, h * 0.035, h * 0.05), self._title, style.font_px(h, 0.024), style.TEXT_FAINT,
                  record=painted)
        _text(p, _line_rect(w, h * 0.22, h * 0.1), "Look at the dot", style.font_px(h, 0.065), style.TEXT,
              record=painted)
        hint = ("Follow it with your eyes and keep your head still" if pursuit
                else "Keep looking at each dot until it jumps to the next place")
        _text(p, _line_rect(w, h * 0.30, h * 0.06), hint, style.font_px(h, 0.03), style.TEXT_DIM, record=painted)
        secs = max(1, math.ceil(st.remaining_s - 1e-9))
        _text(p, _line_rect(w, h * 0.395, h * 0.11), str(secs), style.font_px(h, 0.085, bold=True), style.TEXT,
              record=painted)
        first = self.first_target_px()
        if first is not None:
            r, rc = self.target_radii(0.0, pursuit)
            _draw_target(p, self.to_widget(*first), r, rc)
        if self.show_face_guide and self._face_status is not None:
            fh = h * 0.22
            frame = QRectF((w - fh * 4 / 3) / 2, h * 0.57, fh * 4 / 3, fh)
            _paint_face_guide(p, frame, self._face_status, self._face_features, None, self.face_targets,
                              compact=True, record=painted)

    def _paint_progress(self, p: QPainter, st, pursuit: bool) -> None:
        w, h = self.width(), self.height()
        m = h * 0.02
        if pursuit:
            bw, bh = w * 0.08, max(2.0, h * 0.004)
            r = QRectF(w - m - bw, h - m - bh, bw, bh)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(255, 255, 255, 40))
            p.drawRect(r)
            p.setBrush(style.TEXT_FAINT)
            p.drawRect(QRectF(r.left(), r.top(), bw * float(np.clip(st.progress, 0, 1)), bh))
        else:
            font = style.font_px(h, 0.022, minimum=style.MIN_FONT_PX)
            _text(p, QRectF(w * 0.7, h - m - h * 0.04, w * 0.3 - m, h * 0.04), f"{st.number} / {st.total}",
                  font, style.TEXT_FAINT, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                  record=self._painted)


# ======================================================================================
# Researcher views
# ======================================================================================

_GRADE_COLOUR = {"good": style.GOOD, "warn": style.WARN, "bad": style.BAD}


def _label(parent, *, wrap=False, color=style.TEXT) -> QLabel:
    lab = QLabel(parent)
    lab.setWordWrap(wrap)
    lab.setStyleSheet(f"color: {color.name()}; background: transparent;")
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    lab.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)  # never squeezed
    return lab


class _ResearcherView(QWidget):
    """Shared layout: title + badge, summary, details, a painted panel, a button row."""

    recalibrate_requested = Signal()
    accepted = Signal()

    def __init__(self, panel: QWidget, parent=None):
        super().__init__(parent)
        self.setAutoFillBackground(True)
        pal = self.palette()
        pal.setColor(self.backgroundRole(), style.BACKGROUND)
        self.setPalette(pal)
        self.title_label = _label(self)
        self.verdict_label = _label(self)
        self.verdict_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.summary_label = _label(self, wrap=True)
        self.reasons_label = _label(self, wrap=True)
        self.criteria_label = _label(self, wrap=True, color=style.TEXT_DIM)
        self.panel = panel
        panel.setParent(self)
        panel.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.note_label = _label(self, wrap=True)
        self.recalibrate_button = QPushButton("Recalibrate", self)
        self.continue_button = QPushButton("Continue", self)
        self.recalibrate_button.clicked.connect(self.recalibrate_requested)
        self.continue_button.clicked.connect(self.accepted)

        top = QHBoxLayout()
        top.addWidget(self.title_label)
        top.addSpacing(16)
        top.addWidget(self.verdict_label)
        top.addStretch(1)
        self.buttons = QHBoxLayout()
        self.buttons.addWidget(self.note_label, 1)
        self.buttons.addWidget(self.recalibrate_button)
        self.buttons.addWidget(self.continue_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.summary_label)
        lay.addWidget(self.reasons_label)
        lay.addWidget(self.criteria_label)
        lay.addWidget(panel, 1)
        lay.addLayout(self.buttons)
        self._verdict_colour = style.TEXT_DIM
        self._apply_sizes()

    def _set_verdict(self, text: str, colour: QColor) -> None:
        self._verdict_colour = colour
        self.verdict_label.setText(text)
        self.verdict_label.setAccessibleName(text)
        self.verdict_label.setVisible(bool(text))
        self._apply_sizes()

    def _set_default(self, button: QPushButton) -> None:
        for b in (self.recalibrate_button, self.continue_button):
            b.setDefault(b is button)
        button.setFocus()

    def _apply_sizes(self) -> None:
        h = max(240, style.type_height(self.width(), self.height()))
        m = int(h * 0.035)
        self.layout().setContentsMargins(m, m, m, m)
        self.layout().setSpacing(int(h * 0.012))
        self.title_label.setFont(style.font_px(h, 0.05, bold=True))
        self.verdict_label.setFont(style.font_px(h, 0.045, bold=True))
        pad_v, pad_h = int(h * 0.004), int(h * 0.02)
        self.verdict_label.setStyleSheet(
            f"color: #1e1e1e; background: {self._verdict_colour.name()}; border-radius: {int(h * 0.01)}px;"
            f" padding: {pad_v}px {pad_h}px;")
        self.summary_label.setFont(style.font_px(h, 0.032))
        self.reasons_label.setFont(style.font_px(h, 0.026))
        self.criteria_label.setFont(style.font_px(h, 0.022))
        self.note_label.setFont(style.font_px(h, 0.024))
        sheet = style.button_stylesheet(h)
        for b in self.findChildren(QPushButton):
            b.setStyleSheet(sheet)

    def resizeEvent(self, event) -> None:
        self._apply_sizes()
        super().resizeEvent(event)

    def _relayout(self) -> None:
        """Lay out the new texts now (so a grab() right after a set_* call is right too)."""
        self.layout().invalidate()
        self.layout().activate()
        self.update()


class _ScreenMap(QWidget):
    """The validation map: the screen scaled into the widget, one glyph per target."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.report = None
        self.screen = None
        self._painted: list = []
        self.setMinimumSize(200, 120)

    def set_data(self, report, screen) -> None:
        self.report, self.screen = report, screen
        self.update()

    def _extent(self) -> tuple[float, float]:
        if self.screen is not None:
            return float(self.screen.width_px), float(self.screen.height_px)
        xs = [1.0]
        ys = [1.0]
        for pt in (self.report.points if self.report else []):
            for x, y in (pt.target, pt.mean):
                if _finite(x, y):
                    xs.append(x)
                    ys.append(y)
        return max(xs) * 1.1, max(ys) * 1.1

    def map_rect(self) -> QRectF:
        """The screen's outline in widget px (aspect kept)."""
        sw, sh = self._extent()
        w, h = self.width(), self.height()
        legend = h * 0.08
        avail_w, avail_h = w - 4, h - legend - 4
        s = min(avail_w / sw, avail_h / sh)
        return QRectF((w - sw * s) / 2, 2 + (avail_h - sh * s) / 2, sw * s, sh * s)

    def to_map(self, x: float, y: float) -> QPointF:
        r = self.map_rect()
        sw, sh = self._extent()
        return QPointF(r.left() + x / sw * r.width(), r.top() + y / sh * r.height())

    def dot_px(self) -> float:
        """Radius of a mean estimate's dot (widget px)."""
        return max(2.5, self.height() * 0.0065)

    def cross_px(self) -> float:
        """Half the length of a target's cross (widget px)."""
        return max(5.0, self.height() * 0.025)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        self._painted = []
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            r = self.map_rect()
            p.setPen(QPen(style.PANEL_EDGE, 1.5))
            p.setBrush(style.PANEL)
            p.drawRoundedRect(r, 4, 4)
            rep = self.report
            if rep is None:
                return
            sw, _ = self._extent()
            k = r.width() / sw  # map px per screen px
            h = self.height()
            font = style.font_px(h, 0.045, minimum=10)
            bold = style.font_px(h, 0.045, minimum=10, bold=True)
            cross = self.cross_px()
            for pt in rep.points:
                grade = point_grade(pt, rep.thresholds)
                col = _GRADE_COLOUR[grade]
                tc = self.to_map(*pt.target)
                has_mean = pt.n_samples > 0 and _finite(*pt.mean)
                mc = self.to_map(*pt.mean) if has_mean else None
                if has_mean:
                    p.setPen(QPen(col, 1.5))
                    p.drawLine(tc, mc)
                    if _finite(pt.precision_px):
                        rr = max(2.0, pt.precision_px * k)
                        p.setPen(QPen(QColor(col.red(), col.green(), col.blue(), 170), 1.2))
                        p.setBrush(QColor(col.red(), col.green(), col.blue(), 40))
                        p.drawEllipse(mc, rr, rr)
                p.setPen(QPen(style.TEXT, 2))
                _cross(p, tc, cross)
                if has_mean:  # the estimate on top of the target's cross
                    p.setPen(Qt.PenStyle.NoPen)
                    p.setBrush(col)
                    p.drawEllipse(mc, self.dot_px(), self.dot_px())
                label = fmt(pt.accuracy_deg, 2, DEG) if has_mean else "no data"
                if 0 < pt.n_samples < rep.thresholds.min_samples:
                    label += f" (n={pt.n_samples})"
                p.setFont(bold if pt.point == rep.worst_point else font)
                p.setPen(col)
                fm = p.fontMetrics()
                tw, th = fm.horizontalAdvance(label), fm.height()
                x = tc.x() + cross + 4
                if x + tw > r.right() - 2:
                    x = tc.x() - cross - 4 - tw
                y = tc.y() - cross - 2
                if y - th < r.top():
                    y = tc.y() + cross + th
                p.drawText(QPointF(x, y), label)
            self._paint_legend(p, r)
        except Exception:
            log.exception("validation map: paint failed")
        finally:
            p.end()

    def _paint_legend(self, p: QPainter, r: QRectF) -> None:
        h = self.height()
        text = "mean estimate; circle: precision (RMS sample-to-sample)"
        font = style.font_px(h, 0.04, minimum=style.MIN_FONT_PX)
        y = r.bottom() + h * 0.055
        x = r.left()
        gap = h * 0.04
        one = float(self.screen.deg_to_px(1.0)) * r.width() / float(self.screen.width_px) \
            if self.screen is not None else 0.0
        lab = "1\u00b0"
        while True:  # the legend on one line, across the map: smaller type where it is narrow
            fm = QFontMetricsF(font)
            need = 22 + fm.horizontalAdvance("target") + gap + 24 + fm.horizontalAdvance(text) + 12 \
                + (fm.horizontalAdvance(lab) + 6 + one if one else 0)
            if need <= r.width() or font.pixelSize() <= style.MIN_FONT_PX:
                break
            font.setPixelSize(font.pixelSize() - 1)
        p.setFont(font)
        mid = y - p.fontMetrics().ascent() * 0.35
        p.setPen(QPen(style.TEXT, 1.5))
        _cross(p, QPointF(x + 7, mid), 7)
        x += 22
        p.setPen(style.TEXT_DIM)
        p.drawText(QPointF(x, y), "target")
        x += p.fontMetrics().horizontalAdvance("target") + gap
        p.setPen(QPen(style.TEXT_DIM, 1.2))
        p.setBrush(QColor(255, 255, 255, 30))
        p.drawEllipse(QPointF(x + 8, mid), 8, 8)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(style.TEXT_DIM)
        p.drawEllipse(QPointF(x + 8, mid), self.dot_px(), self.dot_px())
        x += 24
        p.setPen(style.TEXT_DIM)
        p.drawText(QPointF(x, y), text)
        fm = QFontMetricsF(font)
        room = (r.right() - one - 6 - fm.horizontalAdvance(lab) - 6 if one else r.right()) - x
        self._painted = [(QRectF(x, y - fm.ascent(), room, fm.height()), text, QFont(font),
                          int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop))]
        if one:  # 1 degree scale bar
            xe = r.right()
            p.setPen(QPen(style.TEXT_DIM, 2))
            p.drawLine(QPointF(xe - one, mid), QPointF(xe, mid))
            p.drawLine(QPointF(xe - one, mid - 4), QPointF(xe - one, mid + 4))
            p.drawLine(QPointF(xe, mid - 4), QPointF(xe, mid + 4))
            p.drawText(QPointF(xe - one - 6 - p.fontMetrics().horizontalAdvance(lab), y), lab)

    def painted_texts(self) -> list:
        """The legend's text as last painted: [(rect, text, font, flags)] in widget px."""
        return list(self._painted)


class ValidationReportView(_ResearcherView):
    """The validation report for the researcher.

    :meth:`set_report` (a :class:`~ifllm_lab.gaze.calibration.ValidationReport` and the
    :class:`~ifllm_lab.gaze.geometry.ScreenGeometry` it was measured on) or
    :meth:`set_result` (a :class:`~ifllm_lab.gaze.procedure.CalibrationResult`);
    :meth:`show_error` when there is no report (e.g. the fit failed).

    Signals: ``recalibrate_requested`` ("Recalibrate"), ``accepted`` ("Continue",
    allowed after a failed validation too; the failure stays on screen beside it).
    ``verdict`` is "PASS", "FAIL" or "" (no report); the labels (``verdict_label``,
    ``summary_label``, ``reasons_label``) hold the texts shown.
    """

    def __init__(self, parent=None):
        super().__init__(_ScreenMap(), parent)
        self.report = None
        self.screen = None
        self.map = self.panel
        self._verdict = ""
        self.title_label.setText("Validation")
        self._set_verdict("", style.TEXT_DIM)

    @property
    def verdict(self) -> str:
        return self._verdict

    def set_result(self, result, screen=None, *, title: str | None = None) -> None:
        """Show a CalibrationResult (its report, or its message when it has none)."""
        if result is None or result.report is None:
            self.show_error(getattr(result, "message", "") or "No validation report.")
            return
        self.set_report(result.report, screen, title=title or f"Validation (run {result.run})")

    def set_report(self, report, screen=None, *, title: str = "Validation") -> None:
        try:
            self._show(report, screen, title)
        except Exception as e:
            log.exception("validation view: cannot show the report")
            self.show_error(f"The validation report could not be shown ({e}).")

    def _show(self, report, screen, title: str) -> None:
        self.report, self.screen = report, screen
        self.title_label.setText(title)
        th = report.thresholds
        self._verdict = "PASS" if report.passed else "FAIL"
        self._set_verdict(self._verdict, style.GOOD if report.passed else style.BAD)
        n_ok = sum(1 for p in report.points if p.n_samples > 0)
        worst = (f"worst point {report.worst_point}: {fmt(report.worst_accuracy_deg, 2, DEG)}"
                 if report.worst_point >= 0 else "worst point \u2013")
        self.summary_label.setText(
            f"Accuracy {fmt(report.mean_accuracy_deg, 2, DEG)} ({fmt(report.mean_accuracy_px, 0, ' px')})"
            f"   \u00b7   Precision {fmt(report.mean_precision_deg, 2, DEG)}"
            f" ({fmt(report.mean_precision_px, 1, ' px')})   \u00b7   {worst}"
            f"   \u00b7   {n_ok} of {len(report.points)} points with data")
        if report.passed:
            self.reasons_label.setText("All points meet the criteria.")
            self._style_reasons(style.GOOD)
        else:
            self.reasons_label.setText("Failed: " + "; ".join(report.reasons))
            self._style_reasons(style.BAD)
        self.criteria_label.setText(
            f"Criteria: mean accuracy \u2264 {th.max_mean_deg:g}\u00b0, every point \u2264 {th.max_point_deg:g}\u00b0"
            f" with \u2265 {th.min_samples} samples.   Colours: green \u2264 {th.max_mean_deg:g}\u00b0,"
            f" amber \u2264 {th.max_point_deg:g}\u00b0, red over the limit or too few samples.")
        self.map.set_data(report, screen)
        self.recalibrate_button.setVisible(True)
        self.continue_button.setVisible(True)
        if report.passed:
            self.note_label.setText("")
            self._set_default(self.continue_button)
        else:
            self.note_label.setText("Validation failed. Recalibrating is recommended; "
                                    "Continue keeps this calibration.")
            self._style_note(style.BAD)
            self._set_default(self.recalibrate_button)
        self._relayout()

    def show_error(self, message: str, title: str = "Calibration") -> None:
        """No report to show: the message, calmly, and the two buttons."""
        self.report = None
        self._verdict = ""
        self.title_label.setText(title)
        self._set_verdict("", style.TEXT_DIM)
        self.summary_label.setText(message)
        self.reasons_label.setText("")
        self.criteria_label.setText("")
        self.note_label.setText("")
        self.map.set_data(None, self.screen)
        self._set_default(self.recalibrate_button)
        self._relayout()

    def _style_reasons(self, colour: QColor) -> None:
        self.reasons_label.setStyleSheet(f"color: {colour.name()}; background: transparent;")

    def _style_note(self, colour: QColor) -> None:
        self.note_label.setStyleSheet(f"color: {colour.name()}; background: transparent;")


class _DriftDiagram(QWidget):
    """The drift check around its target, in degrees: the limit rings and the mean estimate."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.result = None
        self.small_deg = 1.0
        self.large_deg = 2.0
        self.setMinimumSize(160, 120)

    def set_data(self, result, small_deg: float, large_deg: float) -> None:
        self.result, self.small_deg, self.large_deg = result, small_deg, large_deg
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            w, h = self.width(), self.height()
            side = min(w, h) - 4
            box = QRectF((w - side) / 2, (h - side) / 2, side, side)
            p.setPen(QPen(style.PANEL_EDGE, 1.5))
            p.setBrush(style.PANEL)
            p.drawRoundedRect(box, 6, 6)
            c = box.center()
            res = self.result
            off = res.offset_deg if res is not None and _finite(res.offset_deg) else 0.0
            extent = max(self.large_deg * 1.25, off * 1.15, 0.5)
            k = side * 0.45 / extent  # px per degree
            font = style.font_px(side, 0.045, minimum=10)
            p.setFont(font)
            for deg, col in ((self.small_deg, style.GOOD), (self.large_deg, style.BAD)):
                pen = QPen(QColor(col.red(), col.green(), col.blue(), 160), 1.5, Qt.PenStyle.DashLine)
                p.setPen(pen)
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawEllipse(c, deg * k, deg * k)
                p.drawText(QPointF(c.x() + deg * k * 0.71 + 4, c.y() - deg * k * 0.71 - 4), f"{deg:g}\u00b0")
            p.setPen(QPen(style.TEXT, 2))
            _cross(p, c, side * 0.04)
            if res is None:
                return
            dx, dy = res.offset_px
            n = math.hypot(dx, dy)
            if n > 0 and off > 0:
                # the mean estimate lies opposite to the correction (offset = target - mean)
                m = QPointF(c.x() - dx / n * off * k, c.y() - dy / n * off * k)
                col = _DRIFT_COLOUR.get(res.action, style.TEXT)
                p.setPen(QPen(col, 2))
                if off * k > side * 0.06:
                    _arrow(p, m, QPointF(c.x() - dx / n * side * 0.045, c.y() - dy / n * side * 0.045),
                           side * 0.03)
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(col)
                p.drawEllipse(m, side * 0.018, side * 0.018)
        except Exception:
            log.exception("drift diagram: paint failed")
        finally:
            p.end()


_DRIFT_TEXT = {
    "none": "No drift \u2014 no correction needed",
    "correct": "Small drift \u2014 corrected",
    "recalibrate": "Large drift \u2014 recalibration recommended",
}
_DRIFT_COLOUR = {"none": style.GOOD, "correct": style.WARN, "recalibrate": style.BAD}


class DriftResultView(_ResearcherView):
    """Outcome of a drift check (:class:`~ifllm_lab.gaze.calibration.DriftResult`).

    Shows the offset in degrees and px, whether it was corrected or recalibration is
    recommended, and a diagram of the mean estimate against the target and the limits.
    Signals: ``recalibrate_requested``, ``accepted`` ("Continue"), ``retry_requested``
    ("Check again"; the suggested action after :meth:`show_error`, e.g. when the check had
    too few samples). ``outcome`` is the result's action, "error", or "".
    """

    retry_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(_DriftDiagram(), parent)
        self.diagram = self.panel
        self.result = None
        self._outcome = ""
        self.retry_button = QPushButton("Check again", self)
        self.retry_button.clicked.connect(self.retry_requested)
        self.buttons.insertWidget(1, self.retry_button)
        self.title_label.setText("Drift check")
        self._set_verdict("", style.TEXT_DIM)

    @property
    def outcome(self) -> str:
        return self._outcome

    def outcome_text(self) -> str:
        return self.verdict_label.text()

    def _set_default(self, button: QPushButton) -> None:
        for b in (self.recalibrate_button, self.continue_button, getattr(self, "retry_button", None)):
            if b is not None:
                b.setDefault(b is button)
        button.setFocus()

    def set_result(self, result, *, small_deg: float = 1.0, large_deg: float = 2.0) -> None:
        """Show a DriftResult; ``small_deg`` / ``large_deg`` are the limits the check used."""
        try:
            self.result = result
            self._outcome = result.action
            colour = _DRIFT_COLOUR.get(result.action, style.TEXT)
            self._set_verdict(_DRIFT_TEXT.get(result.action, result.action), colour)
            self.summary_label.setText(
                f"Offset {fmt(result.offset_deg, 2, DEG)} ({fmt(result.distance_px, 0, ' px')})"
                f" from {result.n_samples} samples")
            detail = {
                "none": "The calibration is still good.",
                "correct": "The gaze estimates have been shifted to put them back on the target.",
                "recalibrate": "The offset is too large to correct reliably. Recalibrating is recommended.",
            }.get(result.action, "")
            self.reasons_label.setText(detail)
            self.reasons_label.setStyleSheet(f"color: {colour.name()}; background: transparent;")
            self.criteria_label.setText(
                f"Limits: under {small_deg:g}\u00b0 nothing is done, {small_deg:g}\u2013{large_deg:g}\u00b0 is "
                f"corrected, {large_deg:g}\u00b0 or more calls for recalibration. The dot is the mean gaze "
                "estimate, the cross the target.")
            self.note_label.setText("")
            self.diagram.set_data(result, small_deg, large_deg)
            self._set_default(self.recalibrate_button if result.action == "recalibrate" else self.continue_button)
            self._relayout()
        except Exception as e:
            log.exception("drift view: cannot show the result")
            self.show_error(f"The drift check result could not be shown ({e}).")

    def show_error(self, message: str) -> None:
        """The check gave no result (e.g. too few samples): say so, suggest checking again."""
        self.result = None
        self._outcome = "error"
        self._set_verdict("No result", style.TEXT_DIM)
        self.summary_label.setText(message)
        self.reasons_label.setText("Ask the participant to look at the dot, then check again.")
        self.reasons_label.setStyleSheet(f"color: {style.TEXT.name()}; background: transparent;")
        self.criteria_label.setText("")
        self.diagram.set_data(None, self.diagram.small_deg, self.diagram.large_deg)
        self._set_default(self.retry_button)
        self._relayout()
