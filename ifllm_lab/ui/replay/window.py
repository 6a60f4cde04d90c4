"""The replay window: the stimulus with overlays, the timeline, and the side panels.

Keys: Space play / pause; Left / Right 1 s back / on (Shift: 10 s, Alt: one frame of
1/60 s); Home / End; PageUp / PageDown previous / next turn; ``[`` / ``]`` slower /
faster (0.25x-8x); G gaze, F fixations, S scanpath, H heatmap, M mouse, C clicks,
A AOI dwell, T text.
"""
from __future__ import annotations

import logging
import math
import threading
import time

from PySide6.QtCore import QRectF, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence, QPainter, QShortcut
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QHBoxLayout, QHeaderView, QLabel, QMainWindow, QPushButton, QSplitter, QTableWidget,
    QTableWidgetItem, QTabWidget, QTextBrowser, QVBoxLayout, QWidget,
)

from ...analysis.replay import ReplayData
from ...jobs import Job
from .. import style
from ..jobs import JobRunner
from .stimulus import OVERLAY_NAMES, Overlays, StimulusRenderer
from .timeline import Timeline

log = logging.getLogger(__name__)

__all__ = ["ReplayWindow", "StimulusView", "SPEEDS"]

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
PANEL_DELAY_MS = 120
_KEYS = {"gaze": "G", "fixations": "F", "scanpath": "S", "heatmap": "H", "mouse": "M", "clicks": "C", "aoi": "A",
         "text": "T"}


class StimulusView(QWidget):
    """Paints :class:`StimulusRenderer` at the window's current time."""

    def __init__(self, renderer: StimulusRenderer, overlays: Overlays, parent=None):
        super().__init__(parent)
        self.renderer = renderer
        self.overlays = overlays
        self.t = renderer.data.t_start
        self.setMinimumSize(320, 200)
        self.last_paint_ms = 0.0

    def set_time(self, t: float) -> None:
        self.t = t
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt name
        t0 = time.perf_counter()
        p = QPainter(self)
        try:
            self.renderer.paint(p, QRectF(self.rect()), self.t, self.overlays)
        finally:
            p.end()
        self.last_paint_ms = (time.perf_counter() - t0) * 1000.0


class ReplayWindow(QMainWindow):
    """Replays one session (see the module docstring for the keys).

    ``time_changed(t)`` follows the cursor; ``fixations_ready()`` fires once the
    fixations are detected (a job in a worker thread, :attr:`background`; the window is
    usable before)."""

    time_changed = Signal(float)
    fixations_ready = Signal()

    def __init__(self, data: ReplayData, *, overlays: Overlays | None = None, detect: bool = True, parent=None):
        super().__init__(parent)
        self.data = data
        self.setWindowTitle(f"IFLLM Lab replay - {data.path}")
        self.overlays = overlays or Overlays()
        self.renderer = StimulusRenderer(data)
        self.view = StimulusView(self.renderer, self.overlays)
        self.timeline = Timeline(data)
        self.t = data.t_start
        self.speed = 1.0
        self.playing = False
        self.events = None
        self._play_timer = QTimer(self)
        self._play_timer.setInterval(16)
        self._play_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._play_timer.timeout.connect(self._tick)
        self._last_tick = 0.0
        self._shown_turn = None
        self._panel_timer = QTimer(self)
        self._panel_timer.setSingleShot(True)
        self._panel_timer.setInterval(PANEL_DELAY_MS)
        self._panel_timer.timeout.connect(self._refresh_panels)

        # -- controls
        self.play_button = QPushButton("Play")
        self.play_button.setObjectName("play")
        self.play_button.clicked.connect(self.toggle_play)
        self.speed_box = QComboBox()
        self.speed_box.setObjectName("speed")
        for s in SPEEDS:
            self.speed_box.addItem(f"{s:g}x", s)
        self.speed_box.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_box.currentIndexChanged.connect(lambda i: self.set_speed(SPEEDS[i]))
        self.time_label = QLabel()
        self.time_label.setObjectName("time")
        self.prev_turn_button = QPushButton("< Turn")
        self.next_turn_button = QPushButton("Turn >")
        self.prev_turn_button.clicked.connect(lambda: self.jump_turn(-1))
        self.next_turn_button.clicked.connect(lambda: self.jump_turn(+1))
        self.overlay_boxes: dict[str, QCheckBox] = {}
        bar = QHBoxLayout()
        bar.addWidget(self.play_button)
        bar.addWidget(self.speed_box)
        bar.addWidget(self.prev_turn_button)
        bar.addWidget(self.next_turn_button)
        bar.addWidget(self.time_label, 1)
        # the overlays on their own row at the right: the window fits a 1024 px screen
        shown = QHBoxLayout()
        shown.addStretch(1)
        for name in OVERLAY_NAMES:
            box = QCheckBox(f"{name} ({_KEYS.get(name, '')})")
            box.setObjectName(f"overlay_{name}")
            box.setChecked(getattr(self.overlays, name))
            box.toggled.connect(lambda on, n=name: self.set_overlay(n, on))
            self.overlay_boxes[name] = box
            shown.addWidget(box)

        # -- side panels
        self.banner = QLabel()
        self.banner.setObjectName("problems")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(f"color: {style.WARN.name()}; padding: 4px;")
        self.turn_panel = QTextBrowser()
        self.turn_panel.setObjectName("turn_panel")
        self.metrics_table = QTableWidget(0, 7)
        self.metrics_table.setObjectName("aoi_metrics")
        self.metrics_table.setHorizontalHeaderLabels(
            ["AOI", "dwell s", "fixations", "first fix s", "revisits", "coverage", "regressions"])
        self.metrics_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.quality_panel = QTextBrowser()
        self.quality_panel.setObjectName("quality_panel")
        self.tabs = QTabWidget()
        self.tabs.addTab(self.turn_panel, "Turn")
        self.tabs.addTab(self.metrics_table, "AOI metrics")
        self.tabs.addTab(self.quality_panel, "Data quality")

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.view)
        top.addWidget(self.tabs)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 1)
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(top)
        main.addWidget(self.timeline)
        main.setStretchFactor(0, 3)
        main.setStretchFactor(1, 1)
        main.setSizes([560, 340])
        top.setSizes([1150, 420])
        self.splitters = (main, top)
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.banner)
        lay.addWidget(main, 1)
        lay.addLayout(bar)
        lay.addLayout(shown)
        self.setCentralWidget(central)
        self.setStyleSheet(_STYLE)
        self.timeline.time_changed.connect(self.seek)

        self._shortcuts()
        self._fill_quality()
        self.banner.setVisible(bool(data.problems))
        self.banner.setText("  \u2022 ".join(["This session has problems:"] + data.problems))
        self._metrics: dict[int, list[dict]] = {}
        self._metrics_lock = threading.Lock()
        self._predictions: dict[int, list] = {}  # turn -> a reward model's predictions (set_predictions)
        self._prediction_model = ""
        #: the work over the whole session (layout, cursor speed, fixations, AOI metrics)
        self.background: JobRunner | None = None
        self.seek(data.t_start)
        self._refresh_panels()
        if detect:
            self.background = JobRunner(Job(self._background, name="replay-fixations"), self)
            self.background.partial.connect(self._background_step)
            self.background.succeeded.connect(self._metrics_arrived)
            self.background.failed.connect(self._fixations_failed)
            self.background.start()

    # -- keys --------------------------------------------------------------------------------
    def _shortcuts(self) -> None:
        def key(seq, fn):
            QShortcut(QKeySequence(seq), self, activated=fn)

        key("Space", self.toggle_play)
        key("Right", lambda: self.seek(self.t + 1.0))
        key("Left", lambda: self.seek(self.t - 1.0))
        key("Shift+Right", lambda: self.seek(self.t + 10.0))
        key("Shift+Left", lambda: self.seek(self.t - 10.0))
        key("Alt+Right", lambda: self.seek(self.t + 1 / 60))
        key("Alt+Left", lambda: self.seek(self.t - 1 / 60))
        key("Home", lambda: self.seek(self.data.t_start))
        key("End", lambda: self.seek(self.data.t_end))
        key("PgDown", lambda: self.jump_turn(+1))
        key("PgUp", lambda: self.jump_turn(-1))
        key("]", lambda: self.step_speed(+1))
        key("[", lambda: self.step_speed(-1))
        for name, k in _KEYS.items():
            key(k, lambda n=name: self.overlay_boxes[n].toggle())

    # -- time ----------------------------------------------------------------------------------
    @Slot(float)
    def seek(self, t: float) -> None:
        d = self.data
        t = float(min(max(t, d.t_start), d.t_end))
        self.t = t
        self.view.set_time(t)
        self.timeline.set_time(t)
        turn = d.turn_at(t)
        self.time_label.setText(
            f"{t - d.t_start:8.2f} s / {d.duration:.1f} s" + (f"   turn {turn.turn + 1}" if turn else "")
            + f"   {self.speed:g}x")
        if turn is not self._shown_turn:
            # the side panels follow once scrubbing pauses: the picture and the cursor
            # move at once, the turn text and metrics table after PANEL_DELAY_MS
            self._shown_turn = turn
            self._panel_timer.start()
        self.time_changed.emit(t)

    def _refresh_panels(self) -> None:
        self._fill_turn(self._shown_turn)
        self._fill_metrics(self._shown_turn)

    def toggle_play(self) -> None:
        self.playing = not self.playing
        self.play_button.setText("Pause" if self.playing else "Play")
        if self.playing:
            if self.t >= self.data.t_end:
                self.seek(self.data.t_start)
            self._last_tick = time.perf_counter()
            self._play_timer.start()
        else:
            self._play_timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        dt = now - self._last_tick
        self._last_tick = now
        t = self.t + dt * self.speed
        if t >= self.data.t_end:
            self.seek(self.data.t_end)
            self.toggle_play()
            return
        self.seek(t)

    def set_speed(self, speed: float) -> None:
        self.speed = float(speed)
        i = SPEEDS.index(speed) if speed in SPEEDS else None
        if i is not None and self.speed_box.currentIndex() != i:
            self.speed_box.setCurrentIndex(i)
        self.seek(self.t)

    def step_speed(self, direction: int) -> None:
        i = SPEEDS.index(self.speed) if self.speed in SPEEDS else SPEEDS.index(1.0)
        self.set_speed(SPEEDS[max(0, min(len(SPEEDS) - 1, i + direction))])

    def jump_turn(self, direction: int) -> None:
        starts = [tt.t for tt in self.data.turns]
        if not starts:
            return
        if direction > 0:
            later = [s for s in starts if s > self.t + 1e-6]
            if later:
                self.seek(later[0])
        else:
            earlier = [s for s in starts if s < self.t - 0.5]
            self.seek(earlier[-1] if earlier else self.data.t_start)

    def set_overlay(self, name: str, on: bool) -> None:
        setattr(self.overlays, name, bool(on))
        if self.overlay_boxes[name].isChecked() != bool(on):
            self.overlay_boxes[name].setChecked(bool(on))
        self.view.update()

    # -- fixations -------------------------------------------------------------------------------
    def _background(self, ctx) -> None:  # worker thread (a job: touches no widget)
        """Everything that reads or computes over the whole session, after the window is up:
        the layout, the cursor-speed curve, the fixations, then the AOI metrics of every turn.
        Each piece reaches the window as ``ctx.partial((what, value))``; a failure of the
        fixations fails the job (the banner says why)."""
        ctx.progress(0.0, "layout")
        try:
            self.data.layout()
            ctx.partial(("layout", None))
        except Exception:
            if ctx.cancelled:  # the window (or the file) was closed meanwhile
                raise
            log.exception("layout failed")
        ctx.check_cancel()
        ctx.progress(0.1, "cursor speed")
        try:
            ctx.partial(("speed", self.data.mouse_speed()))
        except Exception:
            if ctx.cancelled:
                raise
            log.exception("mouse speed failed")
        ctx.check_cancel()
        ctx.progress(0.2, "fixations")
        ev = self.data.fixations()
        ctx.partial(("fixations", ev))
        turns = self.data.turns
        for i, turn in enumerate(turns):
            ctx.check_cancel()
            self._metrics_for(turn, ev)
            self.renderer.turn_dwell(turn)  # the AOI overlay's dwell, ready before it is asked for
            ctx.progress(0.5 + 0.5 * (i + 1) / len(turns), "AOI metrics")

    @Slot(object)
    def _background_step(self, step) -> None:
        what, value = step
        if what == "layout":
            self.view.update()
        elif what == "speed":
            self.timeline.set_mouse_speed(*value)
        elif what == "fixations":
            self._fixations_arrived(value)

    @Slot(object)
    def _metrics_arrived(self, _result) -> None:
        self._fill_metrics(self._shown_turn)

    @Slot(str)
    def _fixations_failed(self, message: str) -> None:
        trace = self.background.job.traceback if self.background is not None else ""
        log.error("fixation detection failed: %s\n%s", message, trace)
        self.data.problems.append(f"fixations could not be detected: {message}")
        self.banner.setText("  \u2022 ".join(["This session has problems:"] + self.data.problems))
        self.banner.show()

    def _metrics_for(self, turn, ev) -> list[dict]:
        key = turn.turn
        with self._metrics_lock:
            if key in self._metrics:
                return self._metrics[key]
        layout = self.data.layout()
        if layout is None:
            rows = []
        else:
            try:
                from ...analysis.metrics import turn_metrics

                rows = turn_metrics(ev.fixations(), layout, self.data, turn)
            except Exception as exc:
                log.exception("AOI metrics failed")
                rows = [{"aoi": f"metrics failed: {exc}"}]
        with self._metrics_lock:
            self._metrics[key] = rows
        return rows

    def _fixations_arrived(self, ev) -> None:
        self.events = ev
        self.renderer.set_fixations(ev)
        self._fill_metrics(self._shown_turn)
        self.view.update()
        self.fixations_ready.emit()

    def prepare(self) -> None:
        """Do the background work now, in this thread (benchmarks, scripts): the layout,
        the cursor-speed curve, the fixations and the AOI metrics of every turn."""
        self.data.layout()
        self.timeline.set_mouse_speed(*self.data.mouse_speed())
        self._fixations_arrived(self.data.fixations())
        for turn in self.data.turns:
            self._metrics_for(turn, self.events)
            self.renderer.turn_dwell(turn)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt name
        if self.background is not None:
            self.background.cancel()  # nobody will see it: it stops at its next check
        super().closeEvent(event)

    # -- panels -------------------------------------------------------------------------------
    def _fill_turn(self, turn) -> None:
        if turn is None:
            self.turn_panel.setHtml("<p><i>No turn at this moment.</i></p>")
            return
        esc = _esc
        parts = [f"<h3>Turn {turn.turn + 1} ({turn.mode})</h3>",
                 f"<p><b>Question</b><br>{esc(turn.prompt)}</p>"]
        names = {0: "Answer", 1: "Response 1", 2: "Response 2"}
        for r, text in turn.responses.items():
            side = ""
            if turn.mode == "pairwise" and turn.swapped in (0, 1):
                side = " (shown right)" if (r == 1) == bool(turn.swapped) else " (shown left)"
            lk = turn.likert.get(r, -1)
            parts.append(f"<p><b>{names[r]}</b>{side} &middot; {esc(turn.models.get(r, ''))} &middot; "
                         f"Likert {lk if lk > 0 else '&ndash;'}<br>{esc(text)}</p>")
        if turn.mode == "pairwise":
            parts.append(f"<p><b>Preference:</b> {esc(turn.preference_text())}</p>")
        if self._prediction_model:
            parts.append(self._prediction_html(turn))
        self.turn_panel.setHtml("".join(parts))

    # -- a reward model's predictions --------------------------------------------------------------
    def set_predictions(self, model_name: str, predictions: list) -> None:
        """Show a reward model's predictions for this session in the turn panel, each on its
        turn: ``predictions`` are :class:`~ifllm_lab.reward.predict.TurnPrediction` (turn,
        response, p, predicted, actual, moved_by). An empty ``model_name`` clears them."""
        self._prediction_model = str(model_name)
        self._predictions = {}
        for p in predictions if model_name else ():
            self._predictions.setdefault(int(p.turn), []).append(p)
        self._fill_turn(self._shown_turn)

    def _prediction_html(self, turn) -> str:
        head = f"<b>Reward model {_esc(self._prediction_model)}</b>"
        preds = self._predictions.get(turn.turn)
        if not preds:
            return _boxed(f"{head}: no prediction for this turn (no rated answers in it).")
        lines = []
        for p in sorted(preds, key=lambda p: p.response):
            if not math.isfinite(p.p):
                what = "no prediction (its features are missing)"
            elif turn.mode == "pairwise" and p.response == 0:
                chose = {1: "chose answer 1", 2: "chose answer 2", 0: "called it a tie"}.get(p.actual, "no choice made")
                hit = "" if p.actual not in (1, 2) else (
                    f" <span style='color:{(style.GOOD if p.actual == p.predicted else style.BAD).name()}'>"
                    f"{'&#10003;' if p.actual == p.predicted else '&#10007;'}</span>")
                what = f"P(answer 1 preferred) = {p.p:.2f} &rarr; predicts answer {p.predicted}; {chose}{hit}"
            else:
                name = "the answer" if p.response == 0 else f"answer {p.response}"
                rated = f"rated {p.actual}" if p.actual > 0 else "not rated"
                what = (f"{name}: P(rated good) = {p.p:.2f} &rarr; predicts {'good' if p.predicted else 'not good'}; "
                        f"{rated}")
            moved = ", ".join(f"{_esc(n)} {d:+.2f}" if abs(d) >= 0.005 else f"{_esc(n)} {d:+.1e}"
                              for n, d in p.moved_by)
            lines.append(what + (f"<br><small>moved by: {moved}</small>" if moved else ""))
        return _boxed(f"{head}: " + ("<br>" if len(lines) > 1 else "") + "<br>".join(lines))

    def _fill_metrics(self, turn) -> None:
        table = self.metrics_table
        table.setRowCount(0)
        if turn is None or self.events is None:
            return
        with self._metrics_lock:
            rows = self._metrics.get(turn.turn)
        if rows is None:  # not computed yet in the background: this turn now
            rows = self._metrics_for(turn, self.events)
        table.setRowCount(len(rows))
        cols = ("aoi", "dwell_s", "fixations", "ttff_s", "revisits", "coverage", "regressions")
        for i, row in enumerate(rows):
            for j, key in enumerate(cols):
                v = row.get(key, "")
                if isinstance(v, float):
                    v = "\u2013" if not math.isfinite(v) else (f"{v:.0%}" if key == "coverage" else f"{v:.2f}")
                item = QTableWidgetItem(str(v))
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                table.setItem(i, j, item)

    def _fill_quality(self) -> None:
        q = self.data.quality()
        fmt = style.fmt
        rows = [
            ("validation accuracy", fmt(q.validation_deg, 2, "\u00b0")),
            ("validation precision (RMS-S2S)", fmt(q.validation_precision_deg, 2, "\u00b0")),
            ("gaze rate", fmt(q.gaze_hz, 1, " Hz")),
            ("valid gaze samples", "\u2013" if not math.isfinite(q.valid_fraction) else f"{q.valid_fraction:.0%}"),
            ("gaps > 1 s", str(q.gaps)),
            ("camera frames dropped", str(q.dropped_frames)),
            ("log warnings / errors", f"{q.warnings} / {q.errors}"),
        ]
        html = "<table>" + "".join(f"<tr><td>{a}</td><td><b>{b}</b></td></tr>" for a, b in rows) + "</table>"
        if q.problems:
            html += "<p><b>Problems</b></p><ul>" + "".join(f"<li>{_esc(p)}</li>" for p in q.problems) + "</ul>"
        self.quality_panel.setHtml(html)


_STYLE = (
    f"QMainWindow, QWidget {{ background: #2b2b2b; color: {style.TEXT.name()}; }}"
    " QTextBrowser, QTableWidget { background: #323232; border: 1px solid #4a4a4a; }"
    " QHeaderView::section { background: #3a3a3a; color: #d0d0d0; border: none; padding: 3px; }"
    " QTabBar::tab { background: #3a3a3a; padding: 5px 10px; }"
    " QTabBar::tab:selected { background: #505050; }"
    " QPushButton, QComboBox { background: #444; border: 1px solid #666; border-radius: 4px; padding: 3px 10px; }"
    " QSplitter::handle { background: #3a3a3a; }"
)


def _boxed(html: str) -> str:
    """A block set off from the turn's text (a reward model's prediction)."""
    return f"<table width='100%' cellpadding='6' bgcolor='#283744'><tr><td>{html}</td></tr></table>"


def _esc(s: str) -> str:
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>"))
