"""The replay timeline: gaze x / y, mouse speed and scroll over the session, validity,
phases and turns as bands, and a cursor to scrub (pyqtgraph).

Drag the cursor (or anywhere on a plot with the left button) to scrub, click to jump;
the wheel zooms the time axis (all plots share it), right-drag pans. ``time_changed(t)``
is emitted for every move.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QVBoxLayout, QWidget

from .. import style

__all__ = ["Timeline"]

_TURN_BRUSHES = [QColor(90, 140, 220, 40), QColor(220, 160, 70, 40)]
_STAGE_COLOURS = {
    "setup": QColor(120, 120, 120), "consent": QColor(180, 180, 90), "calibration": QColor(230, 140, 60),
    "drift": QColor(230, 190, 60), "chat": QColor(90, 170, 230), "questionnaire": QColor(170, 110, 220),
    "done": QColor(110, 200, 120),
}


class _Plot(pg.PlotWidget):
    """A plot whose left-button presses / drags scrub instead of panning."""

    scrub = Signal(float)

    def __init__(self, **kw):
        super().__init__(**kw)
        self._dragging = False

    def _emit(self, ev) -> None:
        pos = self.plotItem.vb.mapSceneToView(self.mapToScene(ev.position().toPoint()))
        self.scrub.emit(float(pos.x()))

    def mousePressEvent(self, ev) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            self._dragging = True
            self._emit(ev)
            ev.accept()
            return
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev) -> None:
        if self._dragging:
            self._emit(ev)
            ev.accept()
            return
        super().mouseMoveEvent(ev)

    def mouseReleaseEvent(self, ev) -> None:
        if self._dragging and ev.button() == Qt.MouseButton.LeftButton:
            self._dragging = False
            ev.accept()
            return
        super().mouseReleaseEvent(ev)


def _cache(item) -> None:
    """Keep ``item`` drawn in a pixmap; a plotted data item paints through its curve and
    symbols, which are the ones to keep."""
    cache = pg.QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache
    item.setCacheMode(cache)
    if isinstance(item, pg.PlotDataItem):
        for part in (item.curve, item.scatter):
            part.setCacheMode(cache)


class Timeline(QWidget):
    time_changed = Signal(float)

    def __init__(self, data, parent=None):
        super().__init__(parent)
        self.data = data
        pg.setConfigOptions(antialias=False, background=style.PANEL, foreground=style.TEXT_DIM)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.plots: list[_Plot] = []
        self.stage_bands: list = []
        self.cursors: list[pg.InfiniteLine] = []
        titles = ("gaze px", "mouse px/s", "scroll px")  # short: a plot may be only ~70 px tall
        for i, title in enumerate(titles):
            w = _Plot()
            w.setMenuEnabled(False)
            # repaint only the strips the cursor leaves and enters, not the rectangle between
            w.setViewportUpdateMode(pg.QtWidgets.QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
            w.hideButtons()
            w.setLabel("left", title)
            w.getAxis("left").setWidth(70)
            w.getAxis("left").enableAutoSIPrefix(False)
            w.setMouseEnabled(x=True, y=False)
            w.getAxis("left").setStyle(maxTickLevel=0)  # major ticks only: a short plot has few labels
            if i < len(titles) - 1:
                w.getAxis("bottom").setStyle(showValues=False)
                w.setMinimumHeight(72 if i else 96)
            else:
                w.setLabel("bottom", "session time (s)")
                w.setMinimumHeight(100)
            if self.plots:
                w.setXLink(self.plots[0])
            w.scrub.connect(self._scrubbed)
            cursor = pg.InfiniteLine(pos=data.t_start, angle=90, movable=True,
                                     pen=pg.mkPen(QColor(255, 255, 255), width=2))
            cursor.sigDragged.connect(self._cursor_dragged)
            w.addItem(cursor, ignoreBounds=True)
            self.cursors.append(cursor)
            lay.addWidget(w, 2 if i == 0 else 1)
            self.plots.append(w)
        self._fill()
        self._cache_items()
        self.plots[0].setXRange(data.t_start, max(data.t_end, data.t_start + 1.0), padding=0.01)

    def _fill(self) -> None:
        d = self.data
        gx, gy = d.gaze_x.copy(), d.gaze_y.copy()
        gx[~d.gaze_valid] = np.nan
        gy[~d.gaze_valid] = np.nan
        top = self.plots[0]
        for arr, colour in ((gx, QColor(255, 196, 0)), (gy, QColor(120, 190, 255))):
            c = top.plot(d.gaze_t, arr, pen=pg.mkPen(colour, width=1), connect="finite")
            c.setDownsampling(auto=True, method="peak")
            c.setClipToView(True)
        # validity: one filled step curve along the bottom of the gaze plot (red where
        # invalid); one item however many gaps there are
        if len(d.gaze_t) > 1:
            ymax = float(max(d.screen_px))
            band = np.where(d.gaze_valid, 0.0, 0.04 * ymax)
            c = top.plot(d.gaze_t, band, pen=pg.mkPen(None), fillLevel=0.0, brush=pg.mkBrush(239, 106, 94, 150))
            c.setDownsampling(auto=True, method="peak")
            c.setClipToView(True)
            c.setZValue(-20)
            top.setYRange(0, ymax, padding=0.02)
        # turns as bands on every plot, phases as labelled ticks on the top one
        for k, turn in enumerate(d.turns):
            end = turn.t_end if np.isfinite(turn.t_end) else d.t_end
            for w in self.plots:
                band = pg.LinearRegionItem((turn.t, end), movable=False, brush=_TURN_BRUSHES[k % 2],
                                           pen=pg.mkPen(None))
                band.setZValue(-30)
                w.addItem(band, ignoreBounds=True)
            label = pg.TextItem(f"turn {turn.turn + 1}", color=style.TEXT_DIM, anchor=(0, 0))
            label.setPos(turn.t, float(d.screen_px[0]))
            top.addItem(label, ignoreBounds=True)
        # the study's stages (consent, calibration, chat, drift check, questionnaire ...)
        # as bands along the top of the gaze plot
        stages = [(t, det.get("stage", "")) for t, name, det in d.phases if name == "stage"]
        ymax_top = float(max(d.screen_px))
        for k, (t0, stage) in enumerate(stages[:500]):
            t1 = stages[k + 1][0] if k + 1 < len(stages) else d.t_end
            colour = _STAGE_COLOURS.get(stage, QColor(160, 160, 160))
            band = pg.LinearRegionItem((t0, t1), orientation="vertical", movable=False,
                                       brush=pg.mkBrush(colour.red(), colour.green(), colour.blue(), 70),
                                       pen=pg.mkPen(None), span=(0.93, 1.0))
            band.setZValue(-10)
            band.stage = stage
            top.addItem(band, ignoreBounds=True)
            self.stage_bands.append(band)
            if t1 - t0 > 0.03 * max(d.duration, 1.0):
                label = pg.TextItem(stage, color=style.TEXT, anchor=(0, 1))
                label.setPos(t0, ymax_top)
                top.addItem(label, ignoreBounds=True)
        shown = 0
        for t, name, _ in d.phases:
            if shown >= 200:  # a marker per phase change; the turns are bands already
                break
            if name in ("stage", "calibration_stage", "turn", "turn_end", "answers"):
                continue
            line = pg.InfiniteLine(pos=t, angle=90, movable=False,
                                   pen=pg.mkPen(QColor(170, 170, 170, 90), width=1, style=Qt.PenStyle.DashLine),
                                   label=name, labelOpts={"position": 0.92, "color": style.TEXT_FAINT, "rotateAxis": (1, 0)})
            top.addItem(line, ignoreBounds=True)
            shown += 1
        sct, scy = d.scroll_series()
        if len(sct):
            self.plots[2].plot(sct, scy, pen=pg.mkPen(QColor(200, 160, 255), width=1), stepMode=None,
                               symbol="o", symbolSize=3, symbolBrush=QColor(200, 160, 255))

    def _cache_items(self) -> None:
        """Curves and bands are drawn into pixmaps that Qt keeps (until the view range or
        size changes), so moving the cursor repaints two thin strips from those pixmaps
        instead of re-drawing 200,000-point curves on every seek."""
        for w in self.plots:
            for item in w.plotItem.items:
                if not isinstance(item, pg.InfiniteLine) or not item.movable:
                    _cache(item)

    def set_mouse_speed(self, st: np.ndarray, sp: np.ndarray) -> None:
        """The cursor speed curve (computed in the background: it reads every mouse row)."""
        if len(st):
            c = self.plots[1].plot(st, sp, pen=pg.mkPen(QColor(120, 230, 120), width=1))
            c.setDownsampling(auto=True, method="peak")
            c.setClipToView(True)
            _cache(c)

    # -- cursor -----------------------------------------------------------------------------
    def set_time(self, t: float) -> None:
        for c in self.cursors:
            if c.value() != t:
                c.blockSignals(True)
                c.setValue(t)
                c.blockSignals(False)

    def _cursor_dragged(self, line) -> None:
        self._scrubbed(float(line.value()))

    def _scrubbed(self, t: float) -> None:
        d = self.data
        t = float(min(max(t, d.t_start), d.t_end))
        self.set_time(t)
        self.time_changed.emit(t)
