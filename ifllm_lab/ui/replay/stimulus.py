"""Drawing one moment of a session: what the participant saw, and the overlays.

:class:`StimulusRenderer` paints with a ``QPainter`` into any rectangle (the replay
window's view, or an offscreen image for PNG / MP4 export), mapping the participant's
screen (px) into it with one uniform scale. No widget state: everything it draws at time
``t`` comes from :class:`~ifllm_lab.analysis.replay.ReplayData` and the
:class:`Overlays` switches.

The stimulus is rebuilt from the session's text layout at ``t``: the panel of every
answer (and the prompt), and every word at its recorded screen box (scroll included), in
the study's reading colours. For imported IFLLM sessions the layout is the one rebuilt
from the release's relative positions and character indices (page px).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (QBrush, QColor, QFont, QFontDatabase, QFontMetricsF, QImage, QPainter, QPainterPath,
                           QPen, QPixmap,
                           QPolygonF, QStaticText, QTransform)

from ...analysis import markdown as md
from ...session.schema import LayoutLevel
from .. import style
from ..markdown_doc import CODE_GROUND, HEADER_GROUND, HEADING_SCALE, TABLE_EDGE

__all__ = ["Overlays", "StimulusRenderer", "render_image", "OVERLAY_NAMES"]

GAZE = QColor(255, 196, 0)
FIXATION = QColor(64, 170, 255)
MOUSE = QColor(120, 230, 120)
CLICK = QColor(255, 90, 90)
PANEL = QColor("#2f2f2f")
PANEL_EDGE = QColor("#4a4a4a")
WORD = QColor("#d8d8d8")
PROMPT = QColor("#bcbcbc")


@dataclass
class Overlays:
    """Which overlays are drawn, and their time windows (seconds before ``t``)."""

    text: bool = True
    gaze: bool = True
    gaze_trail_s: float = 1.0
    fixations: bool = True
    fixation_window_s: float = 4.0
    scanpath: bool = True
    heatmap: bool = False
    mouse: bool = True
    mouse_trail_s: float = 1.5
    clicks: bool = True
    aoi: bool = False  # word boxes tinted by the gaze dwell on them so far in the turn

    @classmethod
    def parse(cls, spec: str | None) -> "Overlays":
        """"gaze,fixations,heatmap" -> those on, the rest off; None / "default" -> defaults;
        "all" -> every one on."""
        if spec is None or spec.strip() in ("", "default"):
            return cls()
        names = {n.strip() for n in spec.split(",") if n.strip()}
        known = set(OVERLAY_NAMES)
        if "all" in names:
            names = known
        unknown = names - known
        if unknown:
            raise ValueError(f"unknown overlay(s) {', '.join(sorted(unknown))}; known: {', '.join(OVERLAY_NAMES)}")
        o = cls(**{n: (n in names) for n in OVERLAY_NAMES})
        return o


OVERLAY_NAMES = tuple(f.name for f in fields(Overlays) if f.type in ("bool", bool))


def _heat_colour_table() -> list[int]:
    """A transparent-to-hot colour table (alpha grows with density)."""
    out = []
    for i in range(256):
        v = i / 255.0
        r = int(255 * min(1.0, 2.0 * v))
        g = int(255 * max(0.0, min(1.0, 2.0 * v - 0.5)))
        b = int(80 * max(0.0, 1.0 - 3.0 * v))
        a = int(200 * min(1.0, v * 1.6))
        out.append((a << 24) | (r << 16) | (g << 8) | b)
    return out


_HEAT_TABLE = _heat_colour_table()


_ITEM_MARK = re.compile(r"[ \t]*(?:>[ \t]?)*[ \t]*([-*+]|\d{1,9}[.)])(?=[ \t]|$)")
#: the style bits that change a word's font (inline styles, heading level, code blocks, table headers)
_FONT_BITS = md.BOLD | md.ITALIC | md.CODE | md.STRIKE | md.LINK | (7 << md.HEADING_SHIFT) | md.CODE_BLOCK \
    | md.TABLE_HEADER
_TINTS = [QColor(64, 170, 255, a) for a in range(256)]  # the AOI dwell tint by opacity
TEXT_LAYER_BUDGET = 96e6  # bytes of drawn text layers kept for scrubbing back and forth


class StimulusRenderer:
    """Paints the stimulus and the overlays of one moment (see the module docstring)."""

    def __init__(self, data):
        self.data = data
        self._font_cache: dict[int, tuple[QFont, QFontMetricsF]] = {}
        self._sprites: dict[tuple, QPixmap] = {}  # fixation circles
        self._word_px: dict[tuple, float] = {}  # (line height, scale) -> font px of the words
        self._advances: dict[tuple, dict[str, float]] = {}  # font -> word -> width
        self._statics: dict[tuple, dict[str, QStaticText]] = {}  # font -> word -> laid out
        self._heat_cache: tuple | None = None
        self._dwell_cache: dict[int, tuple] = {}  # turn -> turn_dwell()
        self._fix = None  # fixations, once computed (set_fixations)
        self._text_cache: dict[tuple, QImage] = {}  # layout state and size -> drawn panels and words
        self._styled_cache: dict[tuple, tuple[QFont, QFontMetricsF]] = {}

    # -- inputs computed elsewhere ---------------------------------------------------------
    def set_fixations(self, events) -> None:
        """Fixations (``Events``) to draw; None until they are ready."""
        self._fix = events.fixations() if events is not None else None

    # -- geometry ----------------------------------------------------------------------------
    def transform(self, rect: QRectF) -> tuple[float, float, float]:
        """(scale, dx, dy): screen px -> ``rect`` (uniform scale, centred)."""
        sw, sh = self.data.screen_px
        s = min(rect.width() / sw, rect.height() / sh)
        dx = rect.left() + (rect.width() - sw * s) / 2
        dy = rect.top() + (rect.height() - sh * s) / 2
        return s, dx, dy

    def _font(self, px: int) -> tuple[QFont, QFontMetricsF]:
        px = max(4, min(200, int(px)))
        f = self._font_cache.get(px)
        if f is None:
            font = QFont(style.FONT_FAMILY)
            font.setPixelSize(px)
            f = self._font_cache[px] = (font, QFontMetricsF(font))
        return f

    # -- painting ----------------------------------------------------------------------------
    def paint(self, p: QPainter, rect: QRectF, t: float, overlays: Overlays) -> None:
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.fillRect(rect, style.BACKGROUND)
        s, dx, dy = self.transform(rect)
        sw, sh = self.data.screen_px
        screen = QRectF(dx, dy, sw * s, sh * s)
        p.setPen(QPen(PANEL_EDGE, 1))
        p.drawRect(screen)
        p.setClipRect(screen)
        boxes = None
        if overlays.text or overlays.aoi:
            layout = self.data.layout(wait=False)
            if layout is not None:
                try:
                    boxes = layout.boxes_at(t)
                except Exception:
                    boxes = None
        if boxes is not None and len(boxes):
            self._paint_text(p, boxes, s, dx, dy, overlays, t)
        if overlays.heatmap:
            self._paint_heatmap(p, t, s, dx, dy)
        if overlays.fixations or overlays.scanpath:
            self._paint_fixations(p, t, s, dx, dy, overlays)
        if overlays.mouse or overlays.clicks:
            self._paint_mouse(p, t, s, dx, dy, overlays)
        if overlays.gaze:
            self._paint_gaze(p, t, s, dx, dy, overlays)
        p.restore()

    def _paint_text(self, p, boxes, s, dx, dy, overlays, t) -> None:
        """Answer panels and words, then the AOI dwell tint. Panels and words are drawn
        once per layout state and size into a cached transparent layer (the layout changes
        only on a new snapshot or a scroll; drawing hundreds of words every frame would
        cap playback well below 60 fps); the last few layers are kept for scrubbing."""
        levels = boxes["level"]
        words = boxes[levels == int(LayoutLevel.WORD)]
        dev = p.device()
        size = (dev.width(), dev.height()) if dev is not None else (0, 0)
        key = (size, round(s, 6), round(dx, 2), round(dy, 2), len(boxes), float(boxes["x0"].sum()),
               float(boxes["y0"].sum()), float(boxes["y1"].sum()), bool(overlays.text))
        layer = self._text_cache.get(key)
        if layer is None:
            layer = self._layer(size)
            q = QPainter(layer)
            q.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            panels = boxes[(levels == int(LayoutLevel.RESPONSE)) | (levels == int(LayoutLevel.PROMPT))]
            q.setPen(QPen(PANEL_EDGE, 1))
            q.setBrush(QBrush(PANEL))
            for b in panels:
                r = QRectF(dx + b["x0"] * s, dy + b["y0"] * s, (b["x1"] - b["x0"]) * s, (b["y1"] - b["y0"]) * s)
                if r.width() > 1 and r.height() > 1:
                    q.drawRoundedRect(r, 6 * s, 6 * s)
            if overlays.text and "style" in (boxes.dtype.names or ()):
                self._paint_blocks(q, boxes, s, dx, dy, t)
            if overlays.text and len(words):
                self._draw_words(q, words, s, dx, dy)
            q.end()
            self._text_cache[key] = layer
            keep = max(4, int(TEXT_LAYER_BUDGET / max(1, size[0] * size[1] * 4)))
            while len(self._text_cache) > keep:  # least recently used first
                self._text_cache.pop(next(iter(self._text_cache)))
        else:  # most recently used last
            self._text_cache[key] = self._text_cache.pop(key)
        p.drawImage(0, 0, layer)
        if overlays.aoi and len(words):  # a translucent tint over the words by dwell so far
            dwell = self._dwell(t, words)
            if dwell is not None and len(dwell) and float(dwell.max()) > 0:
                y0, y1 = dy + words["y0"] * s, dy + words["y1"] * s
                on = (dwell > 0) & (y1 > 0) & (y0 < size[1])
                x0, x1 = dx + words["x0"][on] * s, dx + words["x1"][on] * s
                alpha = (30 + 120 * np.minimum(1.0, dwell[on] / float(dwell.max()))).astype(int)
                for a, l, r, top, bottom in zip(alpha.tolist(), x0.tolist(), x1.tolist(), y0[on].tolist(),
                                                y1[on].tolist()):
                    p.fillRect(QRectF(l, top, r - l, bottom - top), _TINTS[a])

    @staticmethod
    def _layer(size) -> QImage:
        img = QImage(max(1, size[0]), max(1, size[1]), QImage.Format.Format_ARGB32_Premultiplied)
        img.fill(0)
        return img

    def _word_font(self, words, s: float) -> tuple[QFont, QFontMetricsF]:
        """The font that makes the words as wide as their recorded boxes (median over the
        longer words), capped by the line height; found once per line height (a session
        keeps its font) and scale."""
        h = float(np.median(words["y1"] - words["y0"]))
        key = (round(h, 1), round(s, 4))
        px = self._word_px.get(key)
        if px is None:
            _, ref = self._font(100)
            ratios = []
            for b in words[:400]:
                txt = str(b["text"])
                if len(txt) >= 4:
                    adv = ref.horizontalAdvance(txt)
                    if adv > 0:
                        ratios.append((b["x1"] - b["x0"]) * s / adv)
            px = 100.0 * float(np.median(ratios)) if ratios else h * s / 1.75
            px = self._word_px[key] = min(px, h * s * 0.8)
        return self._font(px)

    def _styled_font(self, base: QFont, style_bits: int) -> tuple[QFont, QFontMetricsF]:
        """The body font as a Markdown style shows it (bold, italic, monospace, heading size)."""
        key = (base.pixelSize(), int(style_bits) & _FONT_BITS)
        f = self._styled_cache.get(key)
        if f is None:
            font = QFont(base)
            level = md.heading_level(style_bits)
            px = base.pixelSize() * (HEADING_SCALE.get(level, 1.0) if level else 1.0)
            if style_bits & (md.CODE | md.CODE_BLOCK):
                font.setFamilies(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).families())
                px *= 0.92
            font.setPixelSize(max(4, round(px)))
            font.setBold(bool(level) or bool(style_bits & (md.BOLD | md.TABLE_HEADER)))
            font.setItalic(bool(style_bits & md.ITALIC))
            font.setStrikeOut(bool(style_bits & md.STRIKE))
            font.setUnderline(bool(style_bits & md.LINK))
            f = self._styled_cache[key] = (font, QFontMetricsF(font))
        return f

    def _paint_blocks(self, q: QPainter, boxes, s: float, dx: float, dy: float, t: float) -> None:
        """What Markdown draws around the words: code blocks' ground, table cells, list
        bullets and numbers (the item's marker, read from the raw answer)."""
        pars = boxes[boxes["level"] == int(LayoutLevel.PARAGRAPH)]
        if not len(pars) or not pars["style"].any():
            return
        turn = self.data.turn_at(t)
        texts = turn.responses if turn is not None else {}
        body = self._word_font(boxes[boxes["level"] == int(LayoutLevel.WORD)], s)[0]
        for b in pars:
            st = int(b["style"])
            r = QRectF(dx + b["x0"] * s, dy + b["y0"] * s, (b["x1"] - b["x0"]) * s, (b["y1"] - b["y0"]) * s)
            if st & md.CODE_BLOCK:
                q.fillRect(r.adjusted(-6 * s, 0, 6 * s, 0), CODE_GROUND)
            elif st & md.TABLE:
                q.setPen(QPen(TABLE_EDGE, 1))
                q.setBrush(HEADER_GROUND if st & md.TABLE_HEADER else Qt.BrushStyle.NoBrush)
                q.drawRect(r.adjusted(-5 * s, -2 * s, 5 * s, 2 * s))
            elif st & md.LIST_ITEM:
                raw = texts.get(int(b["response"]), "")
                cs = int(b["char_start"])
                line_start = raw.rfind("\n", 0, cs) + 1
                m = _ITEM_MARK.match(raw, line_start, cs) if 0 <= cs <= len(raw) else None
                if m is None:
                    continue  # a later paragraph of an item: no bullet
                label = m.group(1) if m.group(1)[:1].isdigit() else "\u2022"
                font, fm = self._styled_font(body, 0)
                q.setFont(font)
                q.setPen(WORD)
                w = fm.horizontalAdvance(label + " ")
                line_h = min(r.height(), fm.height() * 1.5)
                q.drawText(QRectF(r.left() - w, r.top(), w, line_h), Qt.AlignmentFlag.AlignVCenter, label)

    def _draw_words(self, p, words, s, dx, dy) -> None:
        """The words inside the frame, each at its recorded box (a word wider than its box
        is squeezed into it), in the style it was shown in (Markdown answers); words
        scrolled off the frame cost nothing."""
        styles = words["style"] if "style" in (words.dtype.names or ()) else None
        plain = words if styles is None or not styles.any() else words[styles == 0]
        body, fm = self._word_font(plain if len(plain) else words, s)
        if styles is not None and styles.any():
            groups = {}
            for k, st in enumerate((styles.astype(np.int64) & _FONT_BITS).tolist()):
                groups.setdefault(st, []).append(k)
            for st, idx in groups.items():
                font, sfm = self._styled_font(body, st) if st else (body, fm)
                self._draw_word_run(p, words[np.asarray(idx)], font, sfm, s, dx, dy)
            return
        self._draw_word_run(p, words, body, fm, s, dx, dy)

    def _draw_word_run(self, p, words, font, fm, s, dx, dy) -> None:
        p.setFont(font)
        ascent, descent = fm.ascent(), fm.descent()
        dev = p.device()
        right, bottom = (dev.width(), dev.height()) if dev is not None else (math.inf, math.inf)
        x0 = dx + words["x0"] * s
        x1 = dx + words["x1"] * s
        y0 = dy + words["y0"] * s
        y1 = dy + words["y1"] * s
        keep = (y1 > 0) & (y0 < bottom) & (x1 > 0) & (x0 < right) & (x1 > x0)
        fkey = (font.pixelSize(), font.bold(), font.italic(), font.family(), font.underline(), font.strikeOut())
        advances = self._advances.setdefault(fkey, {})
        statics = self._statics.setdefault(fkey, {})
        top_off = (ascent + descent) / 2
        pen = None
        for k in np.flatnonzero(keep).tolist():
            b = words[k]
            text = str(b["text"])
            if not text:
                continue
            colour = PROMPT if b["response"] < 0 else WORD
            if colour is not pen:
                p.setPen(colour)
                pen = colour
            adv = advances.get(text)
            if adv is None:
                adv = advances[text] = fm.horizontalAdvance(text)
            st = statics.get(text)
            if st is None:  # laid out once per word and size: drawing it again is a copy of glyphs
                st = statics[text] = QStaticText(text)
                st.setTextFormat(Qt.TextFormat.PlainText)
                st.prepare(QTransform(), font)
            left, width = float(x0[k]), float(x1[k] - x0[k])
            top = float(y0[k] + y1[k]) / 2 - top_off
            if adv > width * 1.02 and adv > 0:  # squeeze to the recorded box
                p.save()
                p.translate(left, top)
                p.scale(width / adv, 1.0)
                p.drawStaticText(QPointF(0, 0), st)
                p.restore()
            else:
                p.drawStaticText(QPointF(left, top), st)

    def _dwell(self, t, words) -> np.ndarray | None:
        """Gaze dwell (s) on each word box of ``words`` from the start of the turn to ``t``."""
        turn = self.data.turn_at(t)
        if turn is None or self.data.layout() is None:
            return None
        tt, uniq, inv, dt = self.turn_dwell(turn)
        if not len(uniq):
            return np.zeros(len(words))
        n = int(np.searchsorted(tt, t, "right"))
        sums = np.bincount(inv[:n], weights=dt[:n], minlength=len(uniq) + 1)[:-1]
        wkey = (words["response"].astype(np.int64) + 2) * 1_000_000 + words["index"].astype(np.int64)
        pos = np.clip(np.searchsorted(uniq, wkey), 0, len(uniq) - 1)
        return np.where(uniq[pos] == wkey, sums[pos], 0.0)

    def turn_dwell(self, turn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The turn's valid gaze samples mapped to words once (kept; the replay's
        background work calls this for every turn): times, the word keys seen, each
        sample's index into them (``len(keys)`` for none) and its dwell share (s)."""
        cached = self._dwell_cache.get(turn.turn)
        if cached is not None:
            return cached
        data = self.data
        g = data.gaze_window(turn.t, turn.t_end if math.isfinite(turn.t_end) else data.t_end)
        keep = g["valid"]
        tt, xx, yy = g["t"][keep], g["x"][keep], g["y"][keep]
        layout = data.layout()
        if len(tt) == 0 or layout is None:
            cached = (np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
        else:
            m = layout.map_points(tt, xx, yy)
            dt = np.clip(np.diff(tt, append=tt[-1]), 0, 0.1)
            key = np.where(m["word"] >= 0, (m["response"].astype(np.int64) + 2) * 1_000_000 + m["word"], -1)
            uniq, inv = np.unique(key[key >= 0], return_inverse=True)
            index = np.full(len(key), len(uniq), np.int64)
            index[key >= 0] = inv
            cached = (tt, uniq, index, dt)
        self._dwell_cache[turn.turn] = cached
        return cached

    def _paint_heatmap(self, p, t, s, dx, dy) -> None:
        data = self.data
        turn = data.turn_at(t)
        t0 = turn.t if turn is not None else max(data.t_start, t - 60.0)
        key = (round(t0, 3), round(t * 4) / 4)
        if self._heat_cache is None or self._heat_cache[0] != key:
            from ...analysis.heatmap import heatmap

            g = data.gaze_window(t0, t)
            keep = g["valid"]
            sw, sh = data.screen_px
            scale = 0.25
            if keep.sum() < 2:
                self._heat_cache = (key, None)
            else:
                sigma = max(8.0, 0.03 * min(sw, sh))
                hm = heatmap(g["x"][keep], g["y"][keep], width=sw, height=sh, sigma_px=sigma, scale=scale)
                top = float(hm.max())
                if top <= 0:
                    self._heat_cache = (key, None)
                else:
                    img8 = np.ascontiguousarray(np.clip(hm / top * 255.0, 0, 255).astype(np.uint8))
                    qimg = QImage(img8.data, img8.shape[1], img8.shape[0], img8.shape[1],
                                  QImage.Format.Format_Indexed8)
                    qimg.setColorTable(_HEAT_TABLE)
                    self._heat_cache = (key, qimg.copy())
        img = self._heat_cache[1]
        if img is not None:
            sw, sh = data.screen_px
            p.drawImage(QRectF(dx, dy, sw * s, sh * s), img)

    def _paint_fixations(self, p, t, s, dx, dy, overlays) -> None:
        fx = self._fix
        if fx is None or not len(fx):
            return
        t0 = t - overlays.fixation_window_s
        on = fx.onset
        i0, i1 = np.searchsorted(on, [t0, t])
        if i1 <= i0:
            return
        xs = dx + fx.x[i0:i1] * s
        ys = dy + fx.y[i0:i1] * s
        dur = np.minimum(fx.duration[i0:i1], np.maximum(0.0, t - on[i0:i1]))
        if overlays.scanpath and i1 - i0 > 1:
            _polyline(p, xs, ys, FIXATION, 150, max(1.0, 2 * s))
        if not overlays.fixations:
            return
        font, _ = self._font(max(9, 26 * s))
        p.setFont(font)
        dev = p.device()
        dpr = dev.devicePixelRatioF() if dev is not None else 1.0
        pen_w = max(1.0, 2.5 * s)
        centre = int(Qt.AlignmentFlag.AlignCenter)
        for k, (x, y, d) in enumerate(zip(xs, ys, dur)):
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            r = round((10.0 + 45.0 * math.sqrt(max(d, 0.0))) * max(s, 0.3))
            age = (t - on[i0 + k]) / max(overlays.fixation_window_s, 1e-6)
            alpha = 20 * round(10 * (1.0 - 0.7 * min(1.0, age)))  # 60..200 in 8 steps
            sprite = self._fixation_sprite(r, alpha, pen_w, dpr)
            half = sprite.width() / dpr / 2
            p.drawPixmap(QPointF(x - half, y - half), sprite)
            p.setPen(QColor(255, 255, 255, alpha))
            p.drawText(QRectF(x - r, y - r, 2 * r, 2 * r), centre, str(i0 + k + 1))

    def _fixation_sprite(self, r: int, alpha: int, pen_w: float, dpr: float) -> QPixmap:
        """A fixation's circle, drawn once per radius, opacity, pen and pixel ratio and kept
        (an antialiased translucent circle costs up to a millisecond each time; a copy of
        its pixels a few microseconds)."""
        key = (r, alpha, round(pen_w, 2), dpr)
        pm = self._sprites.get(key)
        if pm is None:
            side = 2 * r + int(math.ceil(pen_w)) + 2
            pm = QPixmap(max(1, round(side * dpr)), max(1, round(side * dpr)))
            pm.setDevicePixelRatio(dpr)
            pm.fill(Qt.GlobalColor.transparent)
            q = QPainter(pm)
            q.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            q.setPen(QPen(QColor(FIXATION.red(), FIXATION.green(), FIXATION.blue(), alpha), pen_w))
            q.setBrush(QColor(FIXATION.red(), FIXATION.green(), FIXATION.blue(), alpha // 4))
            q.drawEllipse(QPointF(side / 2, side / 2), r, r)
            q.end()
            if len(self._sprites) >= 512:  # oldest first
                self._sprites.pop(next(iter(self._sprites)))
            self._sprites[key] = pm
        return pm

    def _paint_mouse(self, p, t, s, dx, dy, overlays) -> None:
        m = self.data.mouse_window(t - max(overlays.mouse_trail_s, 0.5), t + 1e-6)
        if not len(m["t"]):
            return
        if overlays.mouse:
            ok = np.isfinite(m["x"]) & np.isfinite(m["y"])
            xs, ys = dx + m["x"][ok] * s, dy + m["y"][ok] * s
            if len(xs) > 1:
                step = max(1, len(xs) // 400)  # a 1 kHz trail is drawn from every n-th point
                xs, ys = xs[::step], ys[::step]
                _polyline(p, xs, ys, MOUSE, 170, max(1.0, 2 * s))
            if len(xs):
                c = QPointF(xs[-1], ys[-1])
                p.setPen(QPen(QColor(0, 0, 0, 200), 1))
                p.setBrush(MOUSE)
                arrow = QPainterPath(c)
                k = max(6.0, 18 * s)
                arrow.lineTo(c + QPointF(0, k))
                arrow.lineTo(c + QPointF(k * 0.3, k * 0.75))
                arrow.lineTo(c + QPointF(k * 0.7, k * 0.7))
                arrow.closeSubpath()
                p.drawPath(arrow)
        if overlays.clicks:
            from ...session.schema import MouseKind

            press = m["kind"] == int(MouseKind.PRESS)
            for x, y, tc in zip(m["x"][press], m["y"][press], m["t"][press]):
                age = (t - tc) / max(overlays.mouse_trail_s, 0.5)
                r = max(5.0, 22 * s) * (0.5 + age)
                p.setPen(QPen(QColor(CLICK.red(), CLICK.green(), CLICK.blue(), int(230 * (1 - 0.8 * age))),
                              max(1.5, 3 * s)))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawEllipse(QPointF(dx + x * s, dy + y * s), r, r)

    def _paint_gaze(self, p, t, s, dx, dy, overlays) -> None:
        g = self.data.gaze_window(t - overlays.gaze_trail_s, t + 1e-6)
        keep = g["valid"]
        if not keep.any():
            return
        tt, xs, ys = g["t"][keep], dx + g["x"][keep] * s, dy + g["y"][keep] * s
        # the fading trail: dots batched into a few alpha steps (one drawPoints call each)
        age = (t - tt) / max(overlays.gaze_trail_s, 1e-6)
        step = np.minimum(5, (np.clip(age, 0, 1) * 6).astype(int))
        r = max(4.0, 12 * s)
        for k in range(6):
            sel = step == k
            if not sel.any():
                continue
            a = int(220 * (1.0 - (k + 0.5) / 6) ** 1.5)
            pen = QPen(QColor(GAZE.red(), GAZE.green(), GAZE.blue(), a), r)
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            p.setPen(pen)
            p.drawPoints(QPolygonF([QPointF(x, y) for x, y in zip(xs[sel], ys[sel])]))
        # the current gaze point: a ring
        p.setPen(QPen(QColor(GAZE.red(), GAZE.green(), GAZE.blue(), 240), max(2.0, 3 * s)))
        p.setBrush(Qt.BrushStyle.NoBrush)
        r = max(6.0, 16 * s)
        p.drawEllipse(QPointF(xs[-1], ys[-1]), r, r)


def _polyline(p: QPainter, xs, ys, colour: QColor, alpha: int, width: float) -> None:
    """One open polyline through the finite points (xs, ys)."""
    ok = np.isfinite(xs) & np.isfinite(ys)
    pts = QPolygonF([QPointF(x, y) for x, y in zip(xs[ok].tolist(), ys[ok].tolist())])
    p.setPen(QPen(QColor(colour.red(), colour.green(), colour.blue(), alpha), width))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawPolyline(pts)


def render_image(renderer: StimulusRenderer, t: float, size: tuple[int, int], overlays: Overlays) -> QImage:
    """One frame at ``t`` as an RGB image of ``size`` px (headless: no window needed)."""
    img = QImage(int(size[0]), int(size[1]), QImage.Format.Format_RGB32)
    p = QPainter(img)
    try:
        renderer.paint(p, QRectF(0, 0, size[0], size[1]), t, overlays)
    finally:
        p.end()
    return img
