"""Response views and their recorded text geometry.

:class:`ResponseView` shows one LLM answer (or the participant's prompt) as plain text in
large, calm type. :class:`LayoutTracker` records where every response, paragraph, line and
word of the views is on screen (the ``layout`` stream) and answers "which word is at this
screen point?" for the :class:`~ifllm_lab.ui.recording.InputRecorder` (``aoi_at``)::

    left, right = ResponseView(Response.FIRST), ResponseView(Response.SECOND)
    layout = LayoutTracker(writer)
    for view in (prompt_view, left, right):
        layout.add_view(view)
    rec = InputRecorder(writer, window, aoi_at=layout.aoi_at)
    ...
    layout.set_turn(3); rec.set_turn(3)
    left.append_text(token)            # snapshots follow by themselves

Characters
----------
A view holds the answer string exactly (:meth:`ResponseView.text`); ``char_start`` /
``char_end`` of every box are Python ``str`` indices into it (code points), whatever Qt
does inside: Qt counts UTF-16 code units (an emoji outside the BMP is two) and turns line
breaks into block separators; the mapping between the two is rebuilt at each measurement.
Line breaks: every ``"\\n"``, every lone ``"\\r"`` and every ``"\\r\\n"`` pair starts a new
QTextBlock, so ``"\\n\\n"`` between paragraphs gives an *empty* block in between.

Boxes
-----
RESPONSE (PROMPT for the prompt view, response -1)
    the whole document (text and its margins), also the part scrolled out of view;
    characters ``0 .. len(text)``.
PARAGRAPH
    one per QTextBlock holding at least one word (an empty or blank block -- the blank line
    of ``"\\n\\n"`` -- is no paragraph): the text column's width x the union of its lines'
    bands; characters: the block's text (without the line break).
LINE
    one per laid-out line of a paragraph: the line's natural text width (from the column's
    left edge) x the line's *band*. Lines are set with 150 % line spacing; Qt puts the
    extra space under the glyphs, the band shares it out evenly above and below the
    glyphs, so the bands of one paragraph tile it without gaps or overlaps and a gaze
    point between two lines goes to the nearer line.
WORD
    one per maximal run of non-whitespace characters (``str.split()``'s words; ``text``
    is the word): from the x of its first character to the x after its last
    (``QTextLine.cursorToX``) x its line's band. A word broken across lines -- longer than
    the line, or broken by Qt's line breaking at a hyphen, slash or dash inside it -- gives
    one WORD row *per line fragment*, all with the word's index; in reading order their
    texts concatenate to the word.

``index`` counts boxes of one level within one view in reading order, from 0. The prompt
view writes its PROMPT box and its WORD boxes only. Rows carry no paragraph column: a
word's paragraph is the PARAGRAPH row of the same snapshot and view whose character range
holds it (:attr:`~ifllm_lab.analysis.layout.LayoutBoxes.paragraph` has it directly).

Coordinate frames
-----------------
*document px* (origin top left of the QTextDocument, margins included) are what Qt's text
layout reports; they change only on re-layout (new text, width or font). *viewport px* =
document px minus the scroll offsets (the scroll bars' values; the horizontal one is
always 0 here: lines wrap at the view's width). *Global screen px* = viewport px plus the
viewport's top left on screen (``viewport().mapToGlobal``): Qt logical pixels, the frame of
the ``mouse`` stream's x, y (times the screen's ``devicePixelRatio`` for physical pixels).
Every ``layout`` row is in global screen px at the scroll state of its ``scroll_y``.

What is recorded when
---------------------
A snapshot measures every *visible* view added to the tracker and writes all their boxes
with one new ``snapshot`` id, the current turn and ``t`` = the measuring time:

* text changes (streamed tokens, a new answer): at most one snapshot per
  ``stream_interval_s`` while the text keeps changing, the first one at once, and one
  after the last change, so the final layout is always recorded;
* scrolling: one snapshot ``settle_ms`` after the scroll position stopped changing (the
  ``scroll`` stream has every offset);
* geometry: one snapshot ``settle_ms`` after the views, a parent of theirs or their
  window were last moved, resized, shown or hidden;
* :meth:`LayoutTracker.snapshot` on demand (e.g. when a turn starts).

Mapping a gaze (or mouse) point at time ``t`` to a word
-------------------------------------------------------
1. Take the latest snapshot with ``snapshot t <= t``.
2. For each view of it, find the view's scroll offset at ``t``: the last ``scroll`` row
   with that turn and ``view`` (= the layout rows' ``response``) and row ``t <= t``. Shift
   all the view's boxes up by ``scroll(t) - scroll_y``. Scrolling moves every box of a
   view by the same amount, so geometry between snapshots is exact without re-measuring.
3. Keep a point only inside the visible part of its view: from ``RESPONSE y0 + scroll_y``
   (the viewport's top, in the snapshot's frame) for a height of
   ``(RESPONSE y1 - RESPONSE y0) - max_y`` (``max_y`` from the same ``scroll`` row) when
   ``max_y > 0``; when ``max_y == 0`` the whole document is visible.
4. Hit-test LINE bands first (they tile each paragraph), then the line's WORD boxes;
   the space between two words belongs to neither
   (:class:`~ifllm_lab.analysis.layout.TextHitTest`, which the live AOI below uses too).
   With webcam gaze (1-2 degrees of error, see DESIGN) report per-word hits as
   probabilities, not certainties.

Geometry can be stale for the short time between a change and its snapshot (up to
``stream_interval_s`` for streamed text, about ``settle_ms`` for moves and resizes);
window moves can be applied exactly from the ``window`` stream in the meantime.

Live AOI
--------
:meth:`LayoutTracker.aoi_at` (the InputRecorder callback, called thousands of times a
second) uses the boxes of the latest snapshot in document px, shifted by each view's
*current* scroll offset and *current* place on screen, and the same
:class:`~ifllm_lab.analysis.layout.TextHitTest` as offline analysis, so it agrees with what
was recorded and follows scrolling and window moves at once. Points outside a view's
visible viewport give -1s: text scrolled out of view cannot be looked at or pointed to.
Inside a viewport the answer is ``(response, paragraph, word)``, with -1 for no paragraph /
no word (the margins, the blank lines between paragraphs, the space between words); the
prompt view answers ``(-1, paragraph, word)``.
"""
from __future__ import annotations

import bisect
import collections
import logging
import math
import re
import time
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, Qt, QTimer, Slot
from PySide6.QtGui import QFontMetricsF, QGuiApplication, QTextBlockFormat, QTextCursor, QTextOption
from PySide6.QtWidgets import QFrame, QTextBrowser, QWidget

from ..analysis.layout import LayoutBoxes, TextHitTest
from ..analysis.markdown import parse
from ..session.schema import LayoutLevel
from . import style
from .markdown_doc import MarkdownRenderer

log = logging.getLogger(__name__)

__all__ = [
    "PROMPT", "ResponseView", "LayoutBoxes", "LayoutTracker", "layout_boxes", "default_font_px",
    "LINE_SPACING_PERCENT", "READING_FONT_FRACTION", "MAX_LINE_CHARS",
]

PROMPT = -1  #: the ``response`` code of the prompt view

#: Reading text size as a fraction of the screen height: 24 px on a 1080-line screen
#: (about 0.35 degrees per character at 60 cm on a 24" monitor).
READING_FONT_FRACTION = 0.022
MIN_FONT_PX = 16

#: Line spacing (percent of the font's line height). Reading research and accessibility
#: guidance (WCAG 1.4.12) put comfortable spacing at about 1.5; for gaze it also matters
#: that a wider line pitch makes a sample's *line* less ambiguous: at 24 px type the pitch
#: is ~42 px, close to the ~55 px error of the best calibrated webcam gaze, so line- and
#: word-level assignment stays plausible where single spacing would make it a guess.
LINE_SPACING_PERCENT = 150

#: Longest line, in average characters: lines of about 50-75 characters read best; wider
#: views centre a column of this measure instead of stretching the lines.
MAX_LINE_CHARS = 72

_WORD = re.compile(r"\S+")  # the same characters as str.split(): str.isspace() whitespace
_ODD = re.compile("[\ud800-\udfff\ufdd0\ufdd1]")  # lone surrogates; Qt's frame markers
_NO_AOI = (-1, -1, -1)
_ORIGIN = QPoint(0, 0)
_NAMES = {PROMPT: "prompt", 0: "response", 1: "response_1", 2: "response_2"}


def default_font_px(widget: QWidget | None = None) -> int:
    """Reading font size for the screen a widget is on (the primary screen without one)."""
    screen = widget.screen() if widget is not None else None
    screen = screen or QGuiApplication.primaryScreen()
    height = screen.geometry().height() if screen is not None else 1080
    return max(MIN_FONT_PX, int(round(height * READING_FONT_FRACTION)))


def _display(piece: str, prev: str) -> str:
    """What goes into the QTextDocument for ``piece`` (``prev``: the character before it).

    Same number of characters as ``piece`` except that the ``"\\n"`` of a ``"\\r\\n"`` pair
    is dropped (the ``"\\r"`` becomes the line break, so a pair split over two streamed
    pieces still gives one break); characters Qt would not keep one-for-one are replaced
    by U+FFFD. :func:`_char_maps` models exactly this."""
    if "\r" in piece or (prev == "\r" and piece[:1] == "\n"):
        out = piece.replace("\r\n", "\r")
        if prev == "\r" and out[:1] == "\n":
            out = out[1:]
        piece = out.replace("\r", "\n")
    if _ODD.search(piece):
        piece = _ODD.sub("\ufffd", piece)
    return piece


def _char_maps(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Index maps between the answer string and the document, as :func:`_display` builds it.

    Returns ``(t_of_d, u16)``: ``t_of_d[i]`` is the ``text`` index of displayed character
    ``i`` and ``u16[i]`` its document position (UTF-16 units; a block separator is one);
    both have one more entry than there are displayed characters (the end)."""
    n = len(text)
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    if "\r" in text:  # the "\n" of each "\r\n" is not displayed
        keep = ~((codes == 10) & np.concatenate(([False], codes[:-1] == 13)))
        t_of_d = np.concatenate((np.flatnonzero(keep), [n])).astype(np.int64)
        shown = codes[keep]
    else:
        t_of_d = np.arange(n + 1, dtype=np.int64)
        shown = codes
    wide = shown > 0xFFFF  # outside the BMP: a surrogate pair in UTF-16
    if wide.any():
        u16 = np.concatenate(([0], np.cumsum(1 + wide.astype(np.int64))))
    else:
        u16 = np.arange(len(shown) + 1, dtype=np.int64)
    return t_of_d, u16


# -- measured geometry ---------------------------------------------------------------------
@dataclass(eq=False)
class _DocLayout:
    """Boxes of one view in document px, and their hit test (``hits``, in document px)."""

    text_len: int
    width: float
    height: float
    par_box: np.ndarray  # (n, 4) x0 y0 x1 y1
    par_chars: np.ndarray  # (n, 2)
    line_box: np.ndarray
    line_chars: np.ndarray
    line_par: np.ndarray
    frag_box: np.ndarray
    frag_chars: np.ndarray
    frag_word: np.ndarray
    frag_line: np.ndarray
    frag_text: list
    styles: tuple | None = None  # Markdown: style bits of (paragraphs, lines, fragments)

    def __post_init__(self) -> None:
        n_lines = len(self.line_box)
        self.hits = TextHitTest(
            line_group=np.zeros(n_lines, np.int64), line_y0=self.line_box[:, 1], line_y1=self.line_box[:, 3],
            line_x0=self.par_box[self.line_par, 0], line_x1=self.par_box[self.line_par, 2],
            line_paragraph=self.line_par, line_index=np.arange(n_lines), line_char_start=self.line_chars[:, 0],
            line_char_end=self.line_chars[:, 1], frag_line=self.frag_line, frag_x0=self.frag_box[:, 0],
            frag_x1=self.frag_box[:, 2], frag_word=self.frag_word,
        )


@dataclass(eq=False)
class _BlockGeom:
    """One paragraph block measured relative to its own layout (cached by text and width).

    Character offsets are code points within the block's text."""

    lines: np.ndarray  # (n, 6): x, y, natural width, width, height, x where the text starts
    line_chars: np.ndarray  # (n, 2)
    frags: np.ndarray  # (m, 3): x0, x1, line
    frag_chars: np.ndarray  # (m, 2)
    frag_word: np.ndarray  # (m,): word ordinal within the block
    n_words: int


_NO_WORDS = _BlockGeom(np.zeros((0, 6)), np.zeros((0, 2), np.int64), np.zeros((0, 3)), np.zeros((0, 2), np.int64),
                       np.zeros(0, np.int64), 0)


def _measure_block(layout, text: str) -> _BlockGeom:
    """Lines and word fragments of one laid-out block."""
    spans = [m.span() for m in _WORD.finditer(text)]
    n = layout.lineCount()
    if not spans or not n:
        return _NO_WORDS
    if any(ord(c) > 0xFFFF for c in text):  # QTextLayout positions count UTF-16 units
        units = np.concatenate(([0], np.cumsum([2 if ord(c) > 0xFFFF else 1 for c in text])))
        to16, to_cp = units.tolist(), lambda u: int(np.searchsorted(units, u))
    else:
        to16, to_cp = None, int
    qlines = [layout.lineAt(k) for k in range(n)]
    lines = np.array([(ln.x(), ln.y(), ln.naturalTextWidth(), ln.width(), ln.height()) for ln in qlines])
    starts16 = [ln.textStart() for ln in qlines]
    ends16 = [s + ln.textLength() for s, ln in zip(starts16, qlines)]
    line_chars = np.array([(to_cp(s), to_cp(e)) for s, e in zip(starts16, ends16)], dtype=np.int64)
    frags, frag_chars, frag_word = [], [], []
    for w, (a, b) in enumerate(spans):
        a16, b16 = (to16[a], to16[b]) if to16 else (a, b)
        k = bisect.bisect_right(starts16, a16) - 1
        while 0 <= k < n and starts16[k] < b16:  # one fragment per line the word is on
            fa, fb = max(a16, starts16[k]), min(b16, ends16[k])
            if fb > fa:
                line = qlines[k]
                xa = line.cursorToX(fa)[0]
                xb = line.cursorToX(fb)[0]
                frags.append((min(xa, xb), max(xa, xb), k))
                frag_chars.append((to_cp(fa), to_cp(fb)) if to16 else (fa, fb))
                frag_word.append(w)
            k += 1
    # where each line's text starts: its left edge, or for a right-aligned, centred or
    # right-to-left line the first of its words (the line box covers the text, not the column)
    text_x = [min(ln.cursorToX(s)[0], ln.cursorToX(e)[0]) for ln, s, e in zip(qlines, starts16, ends16)]
    lines = np.column_stack((lines, np.array(text_x, dtype=np.float64)))
    return _BlockGeom(lines, line_chars, np.array(frags, dtype=np.float64).reshape(-1, 3),
                      np.array(frag_chars, dtype=np.int64).reshape(-1, 2), np.array(frag_word, dtype=np.int64),
                      len(spans))


def _origin(doc, block, layout, nested: bool) -> tuple[float, float]:
    """Where a block's layout sits in document px. A block of the root frame: its layout's
    position; a block inside a frame (a Markdown table's cell): that plus the frame's place,
    which only the document layout knows."""
    if not nested:
        pos = layout.position()
        return pos.x(), pos.y()
    r = doc.documentLayout().blockBoundingRect(block)
    return r.x(), r.y()


def _measure(view: "ResponseView", cache: dict) -> _DocLayout:
    """Lay the whole document out and measure every paragraph, line and word (document px).

    ``cache`` maps ``(block text, text width, font, margins)`` to a :class:`_BlockGeom` and is
    updated to hold the blocks of this document only: while an answer streams, only its
    last block is measured again."""
    doc = view.document()
    size = doc.size()  # QTextDocumentLayout.documentSize() finishes the (lazy) layout
    text = view.text()
    t_of_d, u16, shown, style_d = view._char_maps()
    if int(u16[-1]) != doc.characterCount() - 1:  # a Qt text transformation _display misses
        log.warning("response view %s: document length %d != %d expected; character indices may be off",
                    view.objectName(), doc.characterCount() - 1, int(u16[-1]))
    frame = doc.rootFrame().frameFormat()
    content_bottom = size.height() - frame.bottomMargin() - frame.padding() - frame.border()
    width_key = (doc.textWidth(), view.font_px, frame.leftMargin(), frame.rightMargin())
    used: dict = {}
    nested = shown is not None and len(doc.rootFrame().childFrames()) > 0  # Markdown tables

    par, par_chars, lines, line_chars, line_par = [], [], [], [], []
    frags, frag_chars, frag_word, frag_line = [], [], [], []
    n_lines = n_words = 0
    block = doc.begin()
    layout = block.layout() if block.isValid() else None
    while block.isValid():
        nxt = block.next()
        next_layout = nxt.layout() if nxt.isValid() else None
        btext = block.text()
        key = (btext, width_key)
        geom = cache.get(key) or used.get(key)
        if geom is None:
            geom = _measure_block(layout, btext) if _WORD.search(btext) else _NO_WORDS
        used[key] = geom
        if geom.n_words:
            p = len(par)
            lx, ly = _origin(doc, block, layout, nested)
            bottom = (_origin(doc, nxt, next_layout, nested)[1] if next_layout is not None else content_bottom) - ly
            ln = geom.lines
            x, y, h = ln[:, 0] + lx, ln[:, 1], ln[:, 4]
            following = np.append(y[1:], bottom)  # where the next line (or block) starts
            half = np.maximum(following - y - h, 0.0) / 2.0  # line spacing shared above and below
            y0, y1 = ly + y - half, ly + y + h + half
            tx = ln[:, 5] + lx
            lines.append(np.column_stack((tx, y0, tx + ln[:, 2], y1)))
            par.append((float(x.min()), float(y0[0]), float((x + ln[:, 3]).max()), float(y1[-1])))
            start_d = int(np.searchsorted(u16, block.position()))  # displayed index of the block start
            line_chars.append(geom.line_chars + start_d)
            par_chars.append((start_d, start_d + len(btext)))
            line_par.append(np.full(len(ln), p, dtype=np.int64))
            k = geom.frags[:, 2].astype(np.int64)
            frags.append(np.column_stack((geom.frags[:, 0] + lx, y0[k], geom.frags[:, 1] + lx, y1[k])))
            frag_chars.append(geom.frag_chars + start_d)
            frag_word.append(geom.frag_word + n_words)
            frag_line.append(k + n_lines)
            n_lines += len(ln)
            n_words += geom.n_words
        block, layout = nxt, next_layout
    cache.clear()
    cache.update(used)

    def cat(parts, shape, dtype=np.float64):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)

    def to_text(d: np.ndarray) -> np.ndarray:
        """Displayed-index ranges -> answer-string index ranges."""
        ds, de = d[:, 0], d[:, 1]
        cs = t_of_d[ds]
        ce = np.where(de > ds, t_of_d[np.maximum(de - 1, 0)] + 1, cs)
        return np.column_stack((cs, ce)).astype(np.int64)

    d_frags = cat(frag_chars, (0, 2), np.int64)
    f_chars = to_text(d_frags)
    if shown is None:  # plain text: a word as shown is its raw characters
        f_text = [text[a:b] for a, b in f_chars.tolist()]
        styles = None
    else:  # Markdown: the characters as shown, and their style
        f_text = [shown[a:b] for a, b in d_frags.tolist()]
        d_pars = np.array(par_chars, dtype=np.int64).reshape(-1, 2)
        d_lines = cat(line_chars, (0, 2), np.int64)
        styles = (style_d[d_pars[:, 0]], style_d[d_lines[:, 0]], style_d[d_frags[:, 0]])
    return _DocLayout(
        text_len=len(text),
        width=float(size.width()),
        height=float(size.height()),
        par_box=np.array(par, dtype=np.float64).reshape(-1, 4),
        par_chars=to_text(np.array(par_chars, dtype=np.int64).reshape(-1, 2)),
        line_box=cat(lines, (0, 4)),
        line_chars=to_text(cat(line_chars, (0, 2), np.int64)),
        line_par=cat(line_par, (0,), np.int64),
        frag_box=cat(frags, (0, 4)),
        frag_chars=f_chars,
        frag_word=cat(frag_word, (0,), np.int64),
        frag_line=cat(frag_line, (0,), np.int64),
        frag_text=f_text,
        styles=styles,
    )


def _boxes(view: "ResponseView", lay: _DocLayout) -> LayoutBoxes:
    """A measured layout in global screen px at the view's current scroll state."""
    vp = view.viewport()
    origin = vp.mapToGlobal(_ORIGIN)
    sx = float(view.horizontalScrollBar().value())
    sy = float(view.verticalScrollBar().value())
    prompt = view.response == PROMPT
    top = np.array([[0.0, 0.0, lay.width, lay.height]])
    parts = [top] if prompt else [top, lay.par_box, lay.line_box]
    parts.append(lay.frag_box)
    box = np.concatenate(parts)
    n_par, n_line, n_frag = len(lay.par_box), len(lay.line_box), len(lay.frag_box)
    whole = np.array([[0, lay.text_len]], dtype=np.int64)
    if prompt:
        level = np.concatenate(([int(LayoutLevel.PROMPT)], np.full(n_frag, int(LayoutLevel.WORD))))
        index = np.concatenate(([0], lay.frag_word))
        paragraph = np.concatenate(([-1], lay.line_par[lay.frag_line]))
        chars = np.concatenate((whole, lay.frag_chars))
        text = [""] + lay.frag_text
    else:
        level = np.concatenate(([int(LayoutLevel.RESPONSE)], np.full(n_par, int(LayoutLevel.PARAGRAPH)),
                                np.full(n_line, int(LayoutLevel.LINE)), np.full(n_frag, int(LayoutLevel.WORD))))
        index = np.concatenate(([0], np.arange(n_par), np.arange(n_line), lay.frag_word))
        paragraph = np.concatenate(([-1], np.arange(n_par), lay.line_par, lay.line_par[lay.frag_line]))
        chars = np.concatenate((whole, lay.par_chars, lay.line_chars, lay.frag_chars))
        text = [""] * (1 + n_par + n_line) + lay.frag_text
    style = None
    if lay.styles is not None:
        ps, ls, fs = lay.styles
        parts = [[0], fs] if prompt else [[0], ps, ls, fs]
        style = np.concatenate([np.asarray(x, dtype=np.int64) for x in parts]).astype(np.uint16)
    dx = origin.x() - sx
    dy = origin.y() - sy
    return LayoutBoxes(
        response=view.response,
        level=level.astype(np.uint8),
        index=index.astype(np.int32),
        paragraph=paragraph.astype(np.int32),
        x0=box[:, 0] + dx,
        y0=box[:, 1] + dy,
        x1=box[:, 2] + dx,
        y1=box[:, 3] + dy,
        char_start=chars[:, 0].astype(np.int32),
        char_end=chars[:, 1].astype(np.int32),
        text=text,
        scroll_x=sx,
        scroll_y=sy,
        style=style,
    )


def layout_boxes(view: "ResponseView") -> LayoutBoxes:
    """All boxes of ``view`` now: its current text, width, scroll state and screen place."""
    return view.layout_boxes()


# -- the view ---------------------------------------------------------------------------------
def _stylesheet() -> str:
    return (
        f"QTextBrowser {{ background: {style.PANEL.name()}; color: {style.TEXT.name()};"
        f" border: 1px solid #464646; border-radius: 10px; }}"
        " QScrollBar:vertical { background: transparent; width: 14px; margin: 10px 4px 10px 0; }"
        " QScrollBar::handle:vertical { background: #565656; border-radius: 5px; min-height: 48px; }"
        " QScrollBar::handle:vertical:hover { background: #6a6a6a; }"
        " QScrollBar::add-line:vertical, QScrollBar::sub-line:vertical { height: 0; border: none; }"
        " QScrollBar::add-page:vertical, QScrollBar::sub-page:vertical { background: none; }"
    )


class ResponseView(QTextBrowser):
    """One answer (or the prompt) as plain text, for reading.

    Args:
        response: a schema ``Response`` code (0 single answer, 1 first, 2 second) or
            ``PROMPT`` (-1) for the participant's question.
        parent: parent widget.
        object_name: the widget's name (default ``response``, ``response_1``,
            ``response_2`` or ``prompt``).
        font_px: text size in px (default :func:`default_font_px` for the view's screen).
        max_line_chars: longest line in average characters (None: as wide as the view).

    Plain (the default): the text is shown exactly as given, character ``i`` of the
    document is character ``i`` of :meth:`text` (see the module doc for line breaks).
    ``markdown=True`` renders it as chat apps do (:mod:`~ifllm_lab.ui.markdown_doc`): every
    shown character still comes from one character of :meth:`text`, and the recorded boxes
    index :meth:`text` (markup included) while their ``text`` is the word as shown.
    The view is read-only with no text interaction at all (no selection, no links, no
    context menu): participants read, and a selection highlight or a drag that scrolls
    would change what they see outside the recorded events. It scrolls vertically only
    (wheel, scroll bar) and **never scrolls by itself**: streamed text grows below
    whatever the participant is reading, so every scroll in the ``scroll`` stream is the
    participant's own (a reading study needs that more than a chat needs follow-along).
    """

    def __init__(self, response: int, parent: QWidget | None = None, *, object_name: str | None = None,
                 font_px: int | None = None, max_line_chars: int | None = MAX_LINE_CHARS, markdown: bool = False):
        super().__init__(parent)
        response = int(response)
        if response not in _NAMES:
            raise ValueError(f"response must be -1 (prompt), 0, 1 or 2, not {response}")
        self.response = response
        self.setObjectName(object_name or _NAMES[response])
        self._text = ""
        self._revision = 0  # bumped by every change of the document's content or format
        self._measured: tuple | None = None  # (key, _DocLayout)
        self._block_cache: dict = {}  # measured blocks, see _measure
        self._margins: tuple | None = None
        self._font_px = 0
        self.max_line_chars = max_line_chars
        self._block_format = QTextBlockFormat()
        self._block_format.setLineHeight(float(LINE_SPACING_PERCENT),
                                         QTextBlockFormat.LineHeightTypes.ProportionalHeight.value)
        #: Markdown rendering (answers as chat apps show them) or the text exactly as written
        self.markdown = bool(markdown)
        self._md = MarkdownRenderer(self.document(), self._block_format, 16) if self.markdown else None
        self._streaming = False

        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        self.setAcceptDrops(False)
        self.setLineWrapMode(QTextBrowser.LineWrapMode.WidgetWidth)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setStyleSheet(_stylesheet())
        self.document().contentsChanged.connect(self._bump)
        self.set_font_px(font_px if font_px else default_font_px(self))

    # -- text ----------------------------------------------------------------------------
    def text(self) -> str:
        """The exact string shown (the one every recorded character index indexes)."""
        return self._text

    def set_text(self, text: str) -> None:
        """Show ``text`` (replacing what was there) from the top, as a complete answer."""
        text = str(text)
        self._text = text
        if self._md is not None:
            self._streaming = False
            self._md.reset()
            self._render_markdown()
        else:
            super().setPlainText(_display(text, ""))
            self._format_document()
        self.verticalScrollBar().setValue(0)

    def append_text(self, piece: str) -> None:
        """Add a streamed piece at the end. The scroll position never changes. Markdown:
        the answer is taken as still streaming (markers without their closer yet are not
        shown) until :meth:`finish_text`."""
        piece = str(piece)
        if not piece:
            return
        if self._md is not None:
            self._text += piece
            self._streaming = True
            self._render_markdown()
            return
        shown = _display(piece, self._text[-1:])
        self._text += piece
        if shown:
            cursor = QTextCursor(self.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(shown)  # new blocks take the last block's format (line spacing)

    def set_markdown(self, on: bool) -> None:
        """Render Markdown (True) or show the text exactly as written (False); the text
        shown now is shown again the new way."""
        on = bool(on)
        if on == self.markdown:
            return
        self.markdown = on
        self._md = MarkdownRenderer(self.document(), self._block_format, self._font_px) if on else None
        self.document().clear()
        self._margins = None
        text, self._text = self._text, ""
        self.set_text(text)

    def finish_text(self) -> None:
        """The streamed answer is complete: Markdown shows any marker left without its
        closer as written (nothing else moves)."""
        if self._md is not None and self._streaming:
            self._streaming = False
            self._render_markdown()

    def _render_markdown(self) -> None:
        keep = self.verticalScrollBar().value()
        if self._md.render(parse(self._text, partial=self._streaming)) == 0:
            self._margins = None  # a cleared document lost its frame's margins
        self._apply_margins(self.width())
        self.verticalScrollBar().setValue(keep)

    def _char_maps(self):
        """``(t_of_d, u16, shown, style)``: see :func:`_char_maps` (plain text: ``shown``
        and ``style`` are None) and :meth:`MarkdownRenderer.maps`."""
        if self._md is not None:
            return self._md.maps(len(self._text))
        t_of_d, u16 = _char_maps(self._text)
        return t_of_d, u16, None, None

    def clear_text(self) -> None:
        self.set_text("")

    # QTextEdit's own ways in would bypass text(); keep them consistent or refuse them
    def setPlainText(self, text: str) -> None:  # noqa: N802 - Qt name
        self.set_text(text)

    def clear(self) -> None:
        self.clear_text()

    def _refuse(self, *_args, **_kwargs):
        raise TypeError("ResponseView shows plain text only: use set_text() / append_text()")

    setHtml = setMarkdown = setText = append = insertPlainText = insertHtml = setSource = _refuse  # noqa: N815

    # -- look --------------------------------------------------------------------------------
    @property
    def font_px(self) -> int:
        return self._font_px

    def set_font_px(self, px: int) -> None:
        """Text size in px; margins and tab stops follow it."""
        px = max(8, int(px))
        self._font_px = px
        font = style.font_px(px, 1.0, minimum=8)
        self.setFont(font)
        self.document().setDefaultFont(font)
        self.setTabStopDistance(8 * QFontMetricsF(font).horizontalAdvance(" "))  # plain-text tabs
        self._margins = None
        if self._md is not None:
            self._md.set_font_px(px)
            self._render_markdown()
            return
        self._format_document()

    def _format_document(self) -> None:
        """Margins and line spacing (``setPlainText`` resets both)."""
        self._margins = None
        self._apply_margins(self.width())
        cursor = QTextCursor(self.document())
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.mergeBlockFormat(self._block_format)

    def _apply_margins(self, width: int) -> None:
        em = float(self._font_px)
        side = round(1.3 * em)
        if self.max_line_chars:
            measure = self.max_line_chars * QFontMetricsF(self.font()).averageCharWidth()
            inner = width - 2 * self.frameWidth()
            side = max(side, int((inner - measure) / 2))
        margins = (side, round(0.9 * em), side, round(1.3 * em))
        if margins == self._margins:
            return
        self._margins = margins
        root = self.document().rootFrame()
        fmt = root.frameFormat()
        fmt.setLeftMargin(margins[0])
        fmt.setTopMargin(margins[1])
        fmt.setRightMargin(margins[2])
        fmt.setBottomMargin(margins[3])
        root.setFrameFormat(fmt)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt name
        self._apply_margins(event.size().width())  # before Qt re-lays out for the new width
        super().resizeEvent(event)

    # -- geometry ----------------------------------------------------------------------------
    @Slot()
    def _bump(self) -> None:
        self._revision += 1

    def _layout(self) -> _DocLayout:
        """The measured layout in document px (re-measured only after a change)."""
        doc = self.document()
        key = (self._revision, doc.textWidth(), self._font_px, self._margins, len(self._text))
        if self._measured is None or self._measured[0] != key:
            self._measured = (key, _measure(self, self._block_cache))
        return self._measured[1]

    def layout_boxes(self) -> LayoutBoxes:
        """All boxes now, in global screen px (see the module doc)."""
        return _boxes(self, self._layout())


# -- the tracker --------------------------------------------------------------------------------
_GEOMETRY_EVENTS = frozenset({QEvent.Type.Move, QEvent.Type.Resize, QEvent.Type.Show, QEvent.Type.Hide})


class _Entry:
    """A tracked view and what :meth:`LayoutTracker.aoi_at` needs of it, looked up once."""

    __slots__ = ("view", "viewport", "vbar", "hbar", "response", "watched", "slots")

    def __init__(self, view: ResponseView):
        self.view = view
        self.viewport = view.viewport()
        self.vbar = view.verticalScrollBar()
        self.hbar = view.horizontalScrollBar()
        self.response = view.response
        self.watched: list[QObject] = []
        self.slots: list = []


class LayoutTracker(QObject):
    """Writes the ``layout`` stream for a set of :class:`ResponseView` and hit-tests it.

    One tracker per session (snapshot ids count from 0): add the turn's views with
    :meth:`add_view`, drop them with :meth:`clear_views`, set the turn with :meth:`set_turn`.

    Args:
        writer: the session writer (``writer.put_rows``; ``writer.clock`` unless ``clock``).
        clock: the session clock.
        stream_interval_s: least time between two snapshots caused by text changes.
        settle_ms: quiet time after scrolling or a geometry change before its snapshot.
        parent: QObject parent.

    ``stats``: ``snapshots`` written, ``rows`` queued, ``lost_rows`` (refused by the
    writer), ``reasons`` (snapshots per reason), ``last_ms`` / ``max_ms`` (time to measure
    and queue one snapshot), ``errors`` (failed automatic snapshots, logged).
    GUI thread only.
    """

    def __init__(self, writer, *, clock=None, stream_interval_s: float = 0.25, settle_ms: int = 150,
                 parent: QObject | None = None):
        super().__init__(parent)
        if stream_interval_s <= 0 or settle_ms < 0:
            raise ValueError("stream_interval_s must be > 0 and settle_ms >= 0")
        self.writer = writer
        self.clock = clock if clock is not None else writer.clock
        self.stream_interval_s = float(stream_interval_s)
        self.settle_ms = int(settle_ms)
        self.turn = -1
        self.stats: dict = {"snapshots": 0, "rows": 0, "lost_rows": 0, "reasons": collections.Counter(),
                            "last_ms": 0.0, "max_ms": 0.0, "errors": 0}
        self._entries: list[_Entry] = []
        self._layouts: dict[int, _DocLayout] = {}  # id(view) -> layout of the latest snapshot
        self._watch_count: collections.Counter = collections.Counter()
        self._next_snapshot = 0
        self._last_snapshot_mono = -1e9  # monotonic time of the latest snapshot
        self._text_timer = QTimer(self)
        self._text_timer.setSingleShot(True)
        self._text_timer.timeout.connect(self._text_due)
        self._settle_timer = QTimer(self)
        self._settle_timer.setSingleShot(True)
        self._settle_timer.setInterval(self.settle_ms)
        self._settle_timer.timeout.connect(self._settled)
        self._settle_reason = "geometry"

    # -- views ------------------------------------------------------------------------------
    @property
    def views(self) -> list[ResponseView]:
        return [e.view for e in self._entries]

    def add_view(self, view: ResponseView) -> None:
        """Track a view (its text, scrolling and geometry); a snapshot follows shortly."""
        if any(e.view is view for e in self._entries):
            return
        entry = _Entry(view)

        def on_text(*_):
            self._text_changed()

        def on_scroll(*_):
            self._geometry_changed("scroll")

        def on_destroyed(*_, e=entry):
            self._drop(e, disconnect=False)

        view.document().contentsChanged.connect(on_text)
        entry.vbar.valueChanged.connect(on_scroll)
        view.destroyed.connect(on_destroyed)
        entry.slots = [(view.document().contentsChanged, on_text), (entry.vbar.valueChanged, on_scroll),
                       (view.destroyed, on_destroyed)]
        self._watch(entry)
        self._entries.append(entry)
        self._geometry_changed("add")

    def clear_views(self) -> None:
        """Stop tracking every view (nothing is written)."""
        for entry in list(self._entries):
            self._drop(entry, disconnect=True)
        self._text_timer.stop()
        self._settle_timer.stop()

    def _drop(self, entry: _Entry, *, disconnect: bool) -> None:
        if entry not in self._entries:
            return
        self._entries.remove(entry)
        self._layouts.pop(id(entry.view), None)
        self._unwatch(entry)
        if disconnect:
            for signal, slot in entry.slots:
                try:
                    signal.disconnect(slot)
                except (RuntimeError, TypeError):
                    pass

    def _watch(self, entry: _Entry) -> None:
        """Filter the geometry events of the view, its viewport, its parents and its window:
        any of them moving or resizing moves the text on screen."""
        watched: list[QObject] = [entry.viewport]
        w: QWidget | None = entry.view
        while w is not None:
            watched.append(w)
            w = None if w.isWindow() else w.parentWidget()
        for obj in watched:
            if self._watch_count[id(obj)] == 0:
                obj.installEventFilter(self)
            self._watch_count[id(obj)] += 1
        entry.watched = watched

    def _unwatch(self, entry: _Entry) -> None:
        for obj in entry.watched:
            key = id(obj)
            self._watch_count[key] -= 1
            if self._watch_count[key] <= 0:
                del self._watch_count[key]
                try:
                    obj.removeEventFilter(self)
                except RuntimeError:  # already deleted
                    pass
        entry.watched = []

    def set_turn(self, turn: int) -> None:
        """The turn index written with every snapshot from now on."""
        self.turn = int(turn)

    @property
    def pending(self) -> bool:
        """True while an automatic snapshot is scheduled (text, scroll or geometry changed)."""
        return self._text_timer.isActive() or self._settle_timer.isActive()

    # -- snapshots --------------------------------------------------------------------------
    def snapshot(self, reason: str = "") -> int:
        """Measure every visible view now and write all boxes under one new snapshot id.

        Returns the id, or -1 when no view is visible (nothing is written)."""
        self._text_timer.stop()
        self._settle_timer.stop()
        t0 = time.perf_counter()
        parts: list[LayoutBoxes] = []
        for entry in list(self._entries):
            view = entry.view
            try:
                if not view.isVisible():
                    continue
                lay = view._layout()
                parts.append(_boxes(view, lay))
            except RuntimeError:  # deleted under us
                self._drop(entry, disconnect=False)
                continue
            self._layouts[id(view)] = lay
        self._last_snapshot_mono = time.monotonic()
        if not parts:
            return -1
        snap = self._next_snapshot
        self._next_snapshot += 1
        t = self.clock.now()
        cols = [p.rows(t=t, snapshot=snap, turn=self.turn) for p in parts]
        rows = {k: (sum((c[k] for c in cols), []) if k == "text" else np.concatenate([c[k] for c in cols]))
                for k in cols[0]}
        n = len(rows["t"])
        if self.writer.put_rows("layout", rows):
            self.stats["rows"] += n
        else:
            self.stats["lost_rows"] += n
        self.stats["snapshots"] += 1
        self.stats["reasons"][reason] += 1
        ms = (time.perf_counter() - t0) * 1000.0
        self.stats["last_ms"] = ms
        self.stats["max_ms"] = max(self.stats["max_ms"], ms)
        return snap

    def _text_changed(self) -> None:
        if self._text_timer.isActive():
            return
        wait = self._last_snapshot_mono + self.stream_interval_s - time.monotonic()
        self._text_timer.start(max(0, math.ceil(wait * 1000.0)))

    def _geometry_changed(self, reason: str) -> None:
        self._settle_reason = reason
        self._settle_timer.start()  # (re)start: the snapshot waits until things settle

    @Slot()
    def _text_due(self) -> None:
        self._auto("text")

    @Slot()
    def _settled(self) -> None:
        self._auto(self._settle_reason)

    def _auto(self, reason: str) -> None:
        try:
            self.snapshot(reason)
        except Exception:  # never raise into Qt's event loop
            self.stats["errors"] += 1
            if self.stats["errors"] == 1:
                log.exception("layout snapshot (%s) failed; further failures are only counted", reason)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt name
        etype = event.type()
        if etype in _GEOMETRY_EVENTS:
            self._geometry_changed("geometry")
        elif etype == QEvent.Type.ParentChange:  # a view (or a parent) moved to a new parent:
            QTimer.singleShot(0, self, self._rewatch)  # not while Qt walks this object's filters
        return False

    @Slot()
    def _rewatch(self) -> None:
        for entry in list(self._entries):
            try:
                self._unwatch(entry)
                self._watch(entry)
            except RuntimeError:  # deleted meanwhile
                self._drop(entry, disconnect=False)
        self._geometry_changed("geometry")

    # -- hit test -----------------------------------------------------------------------------
    def aoi_at(self, x: float, y: float) -> tuple[int, int, int]:
        """``(response, paragraph, word)`` at global screen point ``(x, y)``; -1 for none.

        Uses the latest snapshot's boxes at each view's current scroll offset and screen
        place. Outside every view's visible viewport: ``(-1, -1, -1)``; inside one, its
        response code (-1 for the prompt view) with the paragraph and word, -1 where none."""
        for entry in self._entries:
            vp = entry.viewport
            try:
                if not vp.isVisible():
                    continue
                origin = vp.mapToGlobal(_ORIGIN)
                lx = x - origin.x()
                ly = y - origin.y()
                if not (0 <= lx < vp.width() and 0 <= ly < vp.height()):
                    continue
                lay = self._layouts.get(id(entry.view))
                if lay is None:  # not in a snapshot yet
                    lay = self._layouts[id(entry.view)] = entry.view._layout()
                p, w = lay.hits.at(lx + entry.hbar.value(), ly + entry.vbar.value())
            except RuntimeError:  # a view deleted before its destroyed signal was handled
                continue
            return entry.view.response, p, w  # read now: a view may show another response next turn
        return _NO_AOI
