"""Input recording: every mouse event, a timer-polled cursor, keystroke timing, the
window's focus / visibility / geometry and the response views' scroll positions, all
into a :class:`~ifllm_lab.session.writer.SessionWriter` on the session clock.

:class:`InputRecorder` is an application-wide event filter
(``QApplication.instance().installEventFilter``) that records for one top-level window
(and the popups and dialogs parented to it)::

    rec = InputRecorder(writer, main_window, aoi_at=layout.aoi_at)
    rec.record_scroll(Response.FIRST, left_view.verticalScrollBar())
    rec.start()
    ...
    rec.set_turn(3)
    ...
    rec.stop()

What goes where
---------------
``mouse``
    One row per mouse event delivered to a widget of the window: MOVE (mouse tracking is
    switched on for the window and every child, including children added later, so
    moves arrive without a button held), PRESS, RELEASE, DOUBLE_CLICK (Qt sends press,
    release, press, *double-click*, release for a double click: all five are recorded),
    WHEEL (``angleDelta() / 8``: degrees; touchpad begin/end phases have 0 deltas),
    ENTER / LEAVE of the top-level window. Position: the event's **global** position
    (``globalPosition()``), Qt logical (device-independent) screen pixels; multiply by the
    screen's ``devicePixelRatio`` for physical pixels. ``buttons``: for press, release and
    double-click the button that changed, otherwise the buttons held (Qt's button bits are
    the schema's :class:`MouseButton` bits). ``aoi_*``: the ``aoi_at(x, y)`` callback's
    ``(response, paragraph, word)`` at the event's global position (-1 without one).
    Plus POLL rows: ``QCursor.pos()`` read on a precise timer at ``poll_hz`` (120 Hz by
    default), with the buttons Qt knows to be held, so the cursor's sampling rate does
    not depend on how often the platform reports or Qt merges moves.
``keys``
    PRESS / RELEASE (auto-repeat presses too) in named input fields: a
    ``QLineEdit`` / ``QTextEdit`` / ``QPlainTextEdit`` with an ``objectName`` (Qt's own
    ``qt_*`` names excluded; ``fields=`` limits it to a set of names). Timing and field
    name only: never the key, the text or the modifiers. (Text entered through an input
    method arrives as ``QInputMethodEvent``, not key events, and is not recorded.)
``window``
    FOCUS_IN / FOCUS_OUT (the window is activated / deactivated), SHOWN / HIDDEN, and
    GEOMETRY when the window moves or is resized (one row per change of the geometry,
    not per Qt event). Every row carries the window's current ``geometry()`` (the client
    area in global screen px). :meth:`InputRecorder.start` writes the state it starts
    in: GEOMETRY, SHOWN or HIDDEN, FOCUS_IN or FOCUS_OUT.
``scroll``
    :meth:`InputRecorder.record_scroll` taps a view's vertical (and optionally horizontal)
    ``QScrollBar``: a row with the current turn (:meth:`InputRecorder.set_turn`), the
    view's Response code, the offsets and ``max_y`` whenever the value or the range changes
    (streamed answers grow the range without moving the value), and one at start.

Time
----
``t`` is ``clock.now()`` (the writer's :class:`SessionClock`) when the recorder handles the
event, i.e. when Qt delivers it to the widget. Qt's own ``QInputEvent.timestamp()`` is
milliseconds since an arbitrary, platform-dependent origin (X11 server time, evdev,
0 for synthesised events) and is not stored: the schema has no column for it. The gap
between the platform's timestamp and delivery is the GUI thread's event latency
(typically well under 1 ms; longer while the GUI thread is busy, e.g. laying out a
long answer).

Recording each event once
-------------------------
An application-wide filter sees one input event several times: first at the window's
``QWindow`` (``QWidgetWindow``), then, as a new event, at the widget under the cursor,
then, each time that widget does not accept it, as a copy at each parent widget
(``QApplication::notify`` propagation; the base ``QWidget`` ignores mouse moves, so a
move over a plain child reaches every ancestor). The recorder

* ignores ``QWindow`` receivers entirely: every mouse event, real or synthesised with
  ``QTest``/``sendEvent``/``postEvent``, is delivered to a widget, while events sent
  straight to a widget never pass its ``QWindow``;
* records a mouse event at the first widget that receives it, and treats a delivery as
  that event's propagation when (a) it has the same signature as the previous mouse
  delivery -- type, Qt timestamp, global position, button, buttons (and for wheels the
  angle and pixel deltas and phase), which propagation copies keep -- and (b) its receiver
  is the **parent** of the previous delivery's receiver (propagation walks exactly one
  parent up per step). Both must hold, so two genuinely separate, identical events (same
  widget, same timestamp) are both recorded, and a propagated copy is never recorded
  again. Event object identity cannot be used: propagation copies are new objects,
  usually at the same stack address as unrelated later events.
* records ENTER / LEAVE / activation / show / hide / geometry only when the receiver is
  the top-level widget itself (Qt sends them to every child too), and key events only at
  the named field (key propagation goes to parents, which are not fields).

Threads
-------
GUI thread only (it is an event filter); :meth:`SessionWriter.put` never blocks.
"""
from __future__ import annotations

import collections
import enum
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Slot
from PySide6.QtGui import QCursor, QGuiApplication
from PySide6.QtWidgets import QApplication, QLineEdit, QPlainTextEdit, QScrollBar, QTextEdit, QWidget

from ..session.schema import KeyKind, MouseKind, WindowKind

log = logging.getLogger(__name__)

__all__ = ["InputRecorder", "RecorderStats", "AoiCallback"]

#: ``aoi_at(x, y) -> (response, paragraph, word)`` at a global screen position; -1 for none.
AoiCallback = Callable[[float, float], "tuple[int, int, int] | None"]

_NO_AOI = (-1, -1, -1)
_NAN = math.nan
_BUTTON_BITS = 0x1F  # Qt Left 1, Right 2, Middle 4, Back 8, Forward 16 == schema MouseButton bits

_E = QEvent.Type
_MOUSE_KINDS = {
    _E.MouseMove: MouseKind.MOVE,
    _E.MouseButtonPress: MouseKind.PRESS,
    _E.MouseButtonRelease: MouseKind.RELEASE,
    _E.MouseButtonDblClick: MouseKind.DOUBLE_CLICK,
    _E.Wheel: MouseKind.WHEEL,
}
_BUTTON_CHANGE = {_E.MouseButtonPress, _E.MouseButtonRelease, _E.MouseButtonDblClick}
_ENTER_LEAVE = {_E.Enter: MouseKind.ENTER, _E.Leave: MouseKind.LEAVE}
_KEY_KINDS = {_E.KeyPress: KeyKind.PRESS, _E.KeyRelease: KeyKind.RELEASE}
_WINDOW_KINDS = {
    _E.WindowActivate: WindowKind.FOCUS_IN,
    _E.WindowDeactivate: WindowKind.FOCUS_OUT,
    _E.Show: WindowKind.SHOWN,
    _E.Hide: WindowKind.HIDDEN,
    _E.Move: WindowKind.GEOMETRY,
    _E.Resize: WindowKind.GEOMETRY,
}
_INTERESTING = frozenset(_MOUSE_KINDS) | frozenset(_ENTER_LEAVE) | frozenset(_KEY_KINDS) | frozenset(
    _WINDOW_KINDS) | {_E.ChildPolished}
_FIELD_TYPES = (QLineEdit, QTextEdit, QPlainTextEdit)


def _key(stream: str, kind: enum.IntEnum) -> str:
    return f"{stream}.{kind.name.lower()}"


@dataclass
class RecorderStats:
    """What the recorder saw and recorded, by ``"stream.kind"`` (e.g. ``"mouse.move"``).

    ``seen`` counts deliveries of an event kind to the recorded window's widgets (a
    propagated mouse event counts once per widget it reaches); ``recorded`` counts the
    rows queued; ``duplicates`` the mouse deliveries recognised as propagation of an
    event already recorded; ``lost`` rows the writer refused (queue full, writer closed or
    failed); ``poll_missed`` poll slots skipped because the GUI thread was busy for
    longer than a poll period; ``aoi_errors`` calls of ``aoi_at`` that raised;
    ``errors`` events whose handling failed otherwise (logged once, never raised into Qt);
    ``busy_s`` seconds spent handling recorded kinds (not counting Qt's own work).
    """

    seen: collections.Counter = field(default_factory=collections.Counter)
    recorded: collections.Counter = field(default_factory=collections.Counter)
    duplicates: int = 0
    lost: int = 0
    poll_missed: int = 0
    aoi_errors: int = 0
    errors: int = 0
    busy_s: float = 0.0


class _ScrollTap(QObject):
    """Child of a vertical scroll bar: turns its (and a horizontal bar's) changes into rows."""

    def __init__(self, recorder: "InputRecorder", view: int, bar: QScrollBar, horizontal: QScrollBar | None):
        super().__init__(bar)
        self._recorder = recorder
        self.view = int(view)
        self._bar = bar
        self._horizontal = horizontal
        self._last: tuple | None = None
        bar.valueChanged.connect(self._changed)
        bar.rangeChanged.connect(self._changed)
        if horizontal is not None:
            horizontal.valueChanged.connect(self._changed)
            horizontal.rangeChanged.connect(self._changed)

    @Slot()
    def _changed(self, *_args) -> None:
        self.snapshot(force=False)

    def snapshot(self, force: bool) -> None:
        rec = self._recorder
        if not rec.running:
            return
        try:
            x = float(self._horizontal.value()) if self._horizontal is not None else 0.0
            y = float(self._bar.value())
            max_y = float(self._bar.maximum())
        except RuntimeError:  # a bar deleted while its signal was pending
            return
        state = (rec.turn, x, y, max_y)
        if not force and state == self._last:
            return
        self._last = state
        rec._put("scroll", "scroll.change", (rec.clock.now(), rec.turn, self.view, x, y, max_y))


class InputRecorder(QObject):
    """Records mouse, key, window and scroll events of one top-level window.

    Args:
        writer: the session writer (``writer.put`` and, unless ``clock`` is given,
            ``writer.clock``).
        window: the top-level widget to record (its popups and dialogs count too).
        aoi_at: ``aoi_at(x, y) -> (response, paragraph, word)`` at a global screen
            position, -1 for none (or ``None`` for no AOI); called for every mouse row, in
            the GUI thread, up to a few thousand times a second: keep it fast (a lookup in
            the current layout snapshot, well under 0.1 ms).
            Exceptions are counted (``stats.aoi_errors``), logged once, and stored as -1.
        poll_hz: cursor poll rate; 0 turns the poll off.
        fields: names of the input fields whose keys are timed; ``None``: every named
            ``QLineEdit`` / ``QTextEdit`` / ``QPlainTextEdit``.
        clock: the session clock (default ``writer.clock``).
        parent: QObject parent.
    """

    def __init__(
        self,
        writer,
        window: QWidget,
        *,
        aoi_at: AoiCallback | None = None,
        poll_hz: float = 120.0,
        fields: Iterable[str] | None = None,
        clock=None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        if not isinstance(window, QWidget) or not window.isWindow():
            raise ValueError("InputRecorder records a top-level QWidget (window.isWindow() must be true)")
        if poll_hz < 0:
            raise ValueError("poll_hz must be >= 0")
        self.writer = writer
        self.clock = clock if clock is not None else writer.clock
        self.window = window
        self.aoi_at = aoi_at
        self.poll_hz = float(poll_hz)
        self.fields = frozenset(fields) if fields is not None else None
        self.turn = -1
        self.stats = RecorderStats()
        self.running = False
        self._window_gone = False
        self._last_sig: tuple | None = None
        self._last_receiver: QWidget | None = None
        self._last_geometry: tuple | None = None
        self._taps: list[_ScrollTap] = []
        self._poll_timer = QTimer(self)
        self._poll_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._poll_timer.setSingleShot(True)
        self._poll_timer.timeout.connect(self._poll)
        self._poll_t0 = 0.0
        self._poll_k = 0
        window.destroyed.connect(self._on_window_destroyed)

    # -- control ------------------------------------------------------------------------
    def start(self) -> None:
        """Install the filter, switch mouse tracking on, write the starting state, start the poll."""
        if self.running or self._window_gone:
            return
        app = QApplication.instance()
        if app is None:
            raise RuntimeError("InputRecorder needs a QApplication")
        self.running = True
        self._last_sig = None
        self._last_receiver = None
        _track(self.window)
        for child in self.window.findChildren(QWidget):
            _track(child)
        app.installEventFilter(self)
        w = self.window
        self._last_geometry = None
        self._window_row(WindowKind.GEOMETRY)
        self._window_row(WindowKind.SHOWN if w.isVisible() else WindowKind.HIDDEN)
        self._window_row(WindowKind.FOCUS_IN if w.isActiveWindow() else WindowKind.FOCUS_OUT)
        for tap in self._taps:
            tap.snapshot(force=True)
        if self.poll_hz > 0:
            self._poll_t0 = time.monotonic()
            self._poll_k = 0
            self._poll()

    def stop(self) -> None:
        """Remove the filter and stop the poll (rows already queued stay queued)."""
        if not self.running:
            return
        self.running = False
        self._poll_timer.stop()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        self._last_receiver = None

    def set_turn(self, turn: int) -> None:
        """The turn index written into ``scroll`` rows from now on."""
        self.turn = int(turn)

    def record_scroll(self, view: int, scrollbar: QScrollBar, horizontal: QScrollBar | None = None) -> "_ScrollTap":
        """Record the scroll state of one response view (``view``: its Response code).

        ``scrollbar`` is the view's vertical bar (``area.verticalScrollBar()``);
        ``horizontal`` its horizontal bar, if the view scrolls sideways (else ``x`` is 0).
        A row is written whenever the value or range changes (while running), and at
        once when already running. Returns the tap: set its ``view`` when the view shows
        another response later (e.g. sides swapped in the next pairwise turn)."""
        tap = _ScrollTap(self, view, scrollbar, horizontal)
        tap.destroyed.connect(lambda *_: self._taps.remove(tap) if tap in self._taps else None)
        self._taps.append(tap)
        if self.running:
            tap.snapshot(force=True)
        return tap

    def counts(self) -> dict:
        """``{"seen": {...}, "recorded": {...}, ...}``: a plain copy of :attr:`stats`."""
        s = self.stats
        return {
            "seen": dict(s.seen), "recorded": dict(s.recorded), "duplicates": s.duplicates, "lost": s.lost,
            "poll_missed": s.poll_missed, "aoi_errors": s.aoi_errors, "errors": s.errors, "busy_s": s.busy_s,
        }

    # -- the filter -----------------------------------------------------------------------
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt name
        etype = event.type()
        if etype not in _INTERESTING or not self.running or not isinstance(obj, QWidget):
            return False  # QWindow receivers are skipped on purpose: see the module doc
        t0 = time.perf_counter()
        try:
            mouse_kind = _MOUSE_KINDS.get(etype)
            if mouse_kind is not None:
                if self._owns(obj):
                    self._mouse_event(obj, event, etype, mouse_kind)
            elif obj is self.window:
                kind = _ENTER_LEAVE.get(etype)
                if kind is not None:
                    self._enter_leave(event, kind)
                elif etype in _WINDOW_KINDS:
                    self._window_event(_WINDOW_KINDS[etype])
                elif etype in _KEY_KINDS:
                    self._key_event(obj, _KEY_KINDS[etype])
                elif etype == _E.ChildPolished:
                    self._child_polished(event)
            elif etype in _KEY_KINDS:
                if isinstance(obj, _FIELD_TYPES) and self._owns(obj):
                    self._key_event(obj, _KEY_KINDS[etype])
            elif etype == _E.ChildPolished:
                if self._owns(obj):
                    self._child_polished(event)
        except RuntimeError:  # a receiver deleted mid-delivery
            log.debug("input recorder: event on a deleted object skipped", exc_info=True)
        except Exception:  # never break the app's event flow over a recording fault
            self.stats.errors += 1
            if self.stats.errors == 1:
                log.exception("input recorder: handling a %s event failed (further failures are only counted)",
                              etype.name)
        self.stats.busy_s += time.perf_counter() - t0
        return False

    def _owns(self, w: QWidget) -> bool:
        """The widget is the window, a child of it, or in a popup / dialog parented to it."""
        target = self.window
        while w is not None:
            if w is target:
                return True
            w = w.parentWidget()
        return False

    def _mouse_event(self, obj: QWidget, event, etype, kind: MouseKind) -> None:
        name = _key("mouse", kind)
        self.stats.seen[name] += 1
        gp = event.globalPosition()
        x, y = gp.x(), gp.y()
        if kind is MouseKind.WHEEL:
            angle = event.angleDelta()
            pixel = event.pixelDelta()
            extra = (angle.x(), angle.y(), pixel.x(), pixel.y(), event.phase().value)
            buttons = event.buttons().value & _BUTTON_BITS
            dx, dy = angle.x() / 8.0, angle.y() / 8.0
        else:
            extra = None
            if etype in _BUTTON_CHANGE:
                buttons = event.button().value & _BUTTON_BITS
            else:
                buttons = event.buttons().value & _BUTTON_BITS
            dx = dy = _NAN
        sig = (etype, event.timestamp(), x, y, event.button().value if extra is None else 0,
               event.buttons().value, extra)
        last = self._last_receiver
        if sig == self._last_sig and last is not None and obj is _parent(last):
            self.stats.duplicates += 1
            self._last_receiver = obj
            return
        self._last_sig = sig
        self._last_receiver = obj
        r, p, wd = self._aoi(x, y)
        self._put("mouse", name, (self.clock.now(), int(kind), x, y, buttons, dx, dy, r, p, wd))

    def _enter_leave(self, event, kind: MouseKind) -> None:
        name = _key("mouse", kind)
        self.stats.seen[name] += 1
        if kind is MouseKind.ENTER and hasattr(event, "globalPosition"):
            gp = event.globalPosition()
            x, y = gp.x(), gp.y()
        else:  # a Leave event has no position: where the cursor is now
            pos = QCursor.pos()
            x, y = float(pos.x()), float(pos.y())
        buttons = QGuiApplication.mouseButtons().value & _BUTTON_BITS
        r, p, wd = self._aoi(x, y)
        self._put("mouse", name, (self.clock.now(), int(kind), x, y, buttons, _NAN, _NAN, r, p, wd))

    def _key_event(self, obj: QWidget, kind: KeyKind) -> None:
        name = obj.objectName()
        if not name or name.startswith("qt_") or not isinstance(obj, _FIELD_TYPES):
            return
        if self.fields is not None and name not in self.fields:
            return
        key = _key("keys", kind)
        self.stats.seen[key] += 1
        self._put("keys", key, (self.clock.now(), int(kind), name))

    def _window_event(self, kind: WindowKind) -> None:
        self.stats.seen[_key("window", kind)] += 1
        self._window_row(kind)

    def _window_row(self, kind: WindowKind) -> None:
        g = self.window.geometry()
        geom = (float(g.x()), float(g.y()), float(g.width()), float(g.height()))
        if kind is WindowKind.GEOMETRY:
            if geom == self._last_geometry:
                return  # a setGeometry sends Move and Resize: one row per actual change
            self._last_geometry = geom
        self._put("window", _key("window", kind), (self.clock.now(), int(kind)) + geom)

    def _child_polished(self, event) -> None:
        child = event.child()
        if isinstance(child, QWidget):
            _track(child)

    # -- cursor poll ---------------------------------------------------------------------
    @Slot()
    def _poll(self) -> None:
        if not self.running:
            return
        pos = QCursor.pos()
        x, y = float(pos.x()), float(pos.y())
        buttons = QGuiApplication.mouseButtons().value & _BUTTON_BITS
        r, p, wd = self._aoi(x, y)
        self.stats.seen["mouse.poll"] += 1
        self._put("mouse", "mouse.poll", (self.clock.now(), int(MouseKind.POLL), x, y, buttons, _NAN, _NAN, r, p, wd))
        # next slot on a fixed grid (t0 + k / hz), so the rate holds on average although a
        # timer only takes whole milliseconds; slots the GUI thread was too busy for are skipped
        period = 1.0 / self.poll_hz
        elapsed = time.monotonic() - self._poll_t0
        self._poll_k += 1
        due_k = int(elapsed / period) + 1
        if due_k > self._poll_k:
            self.stats.poll_missed += due_k - self._poll_k
            self._poll_k = due_k
        delay_ms = max(0, math.ceil((self._poll_k * period - elapsed) * 1000.0))
        self._poll_timer.start(delay_ms)

    # -- helpers ---------------------------------------------------------------------------
    def _aoi(self, x: float, y: float) -> tuple[int, int, int]:
        if self.aoi_at is None:
            return _NO_AOI
        try:
            out = self.aoi_at(x, y)
            if out is None:
                return _NO_AOI
            r, p, w = out
            return int(r), int(p), int(w)
        except Exception:
            self.stats.aoi_errors += 1
            if self.stats.aoi_errors == 1:
                log.exception("aoi_at(%s, %s) failed; AOI stored as -1 (further failures are only counted)", x, y)
            return _NO_AOI

    def _put(self, stream: str, name: str, row: tuple) -> None:
        if self.writer.put(stream, row):
            self.stats.recorded[name] += 1
        else:
            self.stats.lost += 1

    @Slot()
    def _on_window_destroyed(self, *_args) -> None:
        self._window_gone = True
        self.stop()


def _track(w: QWidget) -> None:
    if not w.hasMouseTracking():
        w.setMouseTracking(True)


def _parent(w: QWidget):
    try:
        return w.parentWidget()
    except RuntimeError:  # deleted since its delivery
        return None
