"""ResponseView and LayoutTracker (Qt, offscreen): real widgets, a real SessionWriter writing a
real HDF5 file, read back with SessionReader.

Geometry is checked against Qt's own cursor rectangles and against the answer string
(character indices are Python ``str`` indices, whatever Qt counts), snapshots against the
file. A screenshot of two answers side by side (1280 x 720 PNG) goes to
``$IFLLM_SCREENSHOTS`` when set, else to the test's tmp_path.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QTextCursor
from PySide6.QtWidgets import QApplication, QHBoxLayout, QVBoxLayout, QWidget

from ifllm_lab.session import SessionClock, SessionMeta, SessionReader, SessionWriter
from ifllm_lab.session.schema import LayoutLevel, Response
from ifllm_lab.ui import style
from ifllm_lab.ui.recording import InputRecorder
from ifllm_lab.ui.response_view import (
    PROMPT, READING_FONT_FRACTION, LayoutTracker, ResponseView, layout_boxes,
)

from tests.support.screenshots import H, W, save, shots_folder

L = LayoutLevel

# Real-looking answers with what breaks naive indexing: "\n\n" paragraphs, a "\r\n" line
# break, tabs, emoji and other characters outside the BMP (two UTF-16 units each), a URL
# longer than a line (wraps mid-word), hyphenated compounds (Qt may break after a hyphen),
# a no-break space (a word boundary for str.split(), not for Qt's line breaking).
ANSWER_1 = (
    "Photosynthesis turns light into chemical energy. In the chloroplasts of a leaf, chlorophyll "
    "absorbs mostly red and blue light \U0001F331 and hands the energy on to a chain of proteins in the "
    "thylakoid membrane.\n\n"
    "The light-dependent reactions split water, release oxygen and make ATP and NADPH. The Calvin "
    "cycle then uses both to fix carbon dioxide into three-carbon sugars, which the plant builds "
    "into glucose, sucrose and starch.\n\n"
    "Step\tWhere\tWhat comes out\n"
    "1.\tthylakoid\tATP, NADPH, O\u2082\n"
    "2.\tstroma\tG3P sugars\n\n"
    "A good reference: https://en.wikipedia.org/wiki/Photosynthesis#Light-dependent_reactions_and_the_"
    "Calvin_cycle_in_much_more_detail\r\n"
    "Overall: 6 CO\u2082 + 6 H\u2082O + light \u2192 C\u2086H\u2081\u2082O\u2086 + 6 O\u2082. "
    "A large tree fixes roughly 20\u00a0kg of carbon a year \U0001F333\U0001F30D."
)
ANSWER_2 = (
    "Plants make their food from light, water and air.\n\n"
    "1. Light is caught by chlorophyll, the green pigment in the leaves.\n"
    "2. Water comes up from the roots; carbon dioxide comes in through tiny pores called stomata.\n"
    "3. Using the light's energy, the leaf joins them into sugar and lets oxygen out.\n\n"
    "That is why plants need sunlight to grow, and why forests matter so much for the air we "
    "breathe \U0001F642. Without photosynthesis there would be almost no oxygen in the atmosphere and "
    "no food chain as we know it.\n\n"
    "In short: light + water + CO\u2082 \u2192 sugar + oxygen."
)
PROMPT_TEXT = "How do plants turn sunlight into food? Please explain it simply."
TRICKY = (
    "Tabs\there\tand\u00a0there.\r\n\r\nEmoji \U0001F600\U0001F680 in\tthe middle, "
    "a_word_that_is_far_too_long_to_fit_on_any_single_line_of_this_narrow_view_at_all end.\n\n\n"
    "   \n"
    "state-of-the-art well-known\u2028after a line separator\rCR only\n"
    "\U0001F468\u200D\U0001F469\u200D\U0001F467 family"
)


@pytest.fixture
def writer(tmp_path):
    w = SessionWriter(tmp_path / "session.h5", SessionMeta(participant="layout"), clock=SessionClock(),
                      flush_interval=0.1)
    yield w
    w.close()


class Turn(QWidget):
    """A pairwise turn as the participant sees it: the question above two answers."""

    def __init__(self, font_px: int | None = None):
        super().__init__()
        self.setObjectName("turn")
        self.setStyleSheet(f"QWidget#turn {{ background: {style.BACKGROUND.name()}; }}")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 20, 24, 24)
        outer.setSpacing(16)
        self.prompt = ResponseView(PROMPT, font_px=font_px, max_line_chars=None)
        self.prompt.setFixedHeight(int((font_px or self.prompt.font_px) * 4.6))
        outer.addWidget(self.prompt)
        row = QHBoxLayout()
        row.setSpacing(32)
        self.left = ResponseView(Response.FIRST, font_px=font_px)
        self.right = ResponseView(Response.SECOND, font_px=font_px)
        row.addWidget(self.left)
        row.addWidget(self.right)
        outer.addLayout(row, 1)
        self.views = (self.prompt, self.left, self.right)

    def fill(self) -> None:
        self.prompt.set_text(PROMPT_TEXT)
        self.left.set_text(ANSWER_1)
        self.right.set_text(ANSWER_2)


def show(qtbot, widget, size=(W, H)):
    qtbot.addWidget(widget)
    widget.resize(*size)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def turn(qtbot):
    t = show(qtbot, Turn())
    t.fill()
    QApplication.processEvents()
    return t


def read_layout(path) -> np.ndarray:
    with SessionReader(path) as r:
        return r["layout"].read()


def words_by_index(level, index, text) -> list[str]:
    """WORD rows -> words, fragments of one word joined in reading order."""
    out: list[str] = []
    last = None
    for lv, i, t in zip(level, index, text):
        if lv != L.WORD:
            continue
        if i == last:
            out[-1] += t
        else:
            assert i == len(out), "word indices run 0, 1, 2 ... in reading order"
            out.append(t)
            last = i
    return out


def doc_position(text: str, i: int) -> int:
    """Document position of ``text[i]``, computed independently of the module: UTF-16
    units, with a "\\r\\n" pair as one block separator."""
    head = text[:i]
    return len(head.encode("utf-16-le")) // 2 - head.count("\r\n") - (1 if text[i - 1:i + 1] == "\r\n" else 0)


def global_origin(view) -> QPoint:
    return view.viewport().mapToGlobal(QPoint(0, 0))


def inside(inner, outer, tol=0.01) -> bool:
    return (inner[0] >= outer[0] - tol and inner[1] >= outer[1] - tol and inner[2] <= outer[2] + tol
            and inner[3] <= outer[3] + tol)


def box(b, i) -> tuple[float, float, float, float]:
    return float(b.x0[i]), float(b.y0[i]), float(b.x1[i]), float(b.y1[i])


# -- the view ---------------------------------------------------------------------------------
def test_view_shows_the_exact_string_as_plain_text(qtbot):
    v = show(qtbot, ResponseView(Response.SINGLE), (500, 400))
    raw = "**not bold** <b>not html</b> &amp; [link](http://x)\r\nline\ttab \U0001F600"
    v.set_text(raw)
    assert v.text() == raw
    shown = v.document().toRawText()
    assert shown == raw.replace("\r\n", "\u2029")  # no markup interpreted, nothing added
    assert v.document().characterCount() - 1 == len(raw.encode("utf-16-le")) // 2 - 1
    assert v.objectName() == "response" and v.response == Response.SINGLE
    assert v.isReadOnly() and v.textInteractionFlags() == Qt.TextInteractionFlag.NoTextInteraction
    assert v.contextMenuPolicy() == Qt.ContextMenuPolicy.NoContextMenu
    assert v.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    assert v.verticalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAsNeeded
    for refused in (v.setHtml, v.setMarkdown, v.append, v.insertPlainText):
        with pytest.raises(TypeError):
            refused("<b>x</b>")
    v.setPlainText("plain")  # Qt's own plain-text setter stays consistent with text()
    assert v.text() == "plain" == v.document().toPlainText()
    v.clear_text()
    assert v.text() == "" and v.document().isEmpty()
    v.set_font_px(30)
    assert v.font().pixelSize() == 30 == v.font_px
    # line spacing survives setPlainText and applies to streamed blocks too
    v.set_text("a\nb")
    v.append_text("\nc\n\nd")
    block = v.document().begin()
    while block.isValid():
        assert block.blockFormat().lineHeight() == 150
        block = block.next()
    with pytest.raises(ValueError):
        ResponseView(3)
    assert ResponseView(PROMPT).objectName() == "prompt"
    assert ResponseView(Response.SECOND, object_name="right").objectName() == "right"


def test_streamed_pieces_equal_the_whole_text(qtbot):
    """Pieces cut anywhere (inside "\\r\\n", next to emoji) give the same document and
    the same boxes as the whole string at once."""
    whole = show(qtbot, ResponseView(Response.FIRST), (420, 900))
    streamed = show(qtbot, ResponseView(Response.FIRST), (420, 900))
    streamed.move(whole.x() + 10, whole.y())  # same size, elsewhere: compare in document terms
    whole.set_text(TRICKY)
    cuts = sorted({0, len(TRICKY)} | set(range(0, len(TRICKY), 7)) | {TRICKY.index("\r\n") + 1})
    for a, b in zip(cuts, cuts[1:]):
        streamed.append_text(TRICKY[a:b])
    QApplication.processEvents()
    assert streamed.text() == TRICKY
    assert streamed.document().toRawText() == whole.document().toRawText()
    bw, bs = layout_boxes(whole), layout_boxes(streamed)
    assert bs.text == bw.text
    assert np.array_equal(bs.level, bw.level) and np.array_equal(bs.index, bw.index)
    assert np.array_equal(bs.char_start, bw.char_start) and np.array_equal(bs.char_end, bw.char_end)
    dx = global_origin(streamed).x() - global_origin(whole).x()
    assert np.allclose(bs.x0 - dx, bw.x0) and np.allclose(bs.y1, bw.y1)


# -- geometry --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [ANSWER_1, TRICKY], ids=["answer", "tricky"])
def test_word_line_paragraph_boxes(qtbot, text):
    v = show(qtbot, ResponseView(Response.FIRST, font_px=20), (460, 700))
    v.set_text(text)
    QApplication.processEvents()
    b = layout_boxes(v)
    assert b.scroll_y == 0 and b.response == Response.FIRST
    assert list(b.level) == sorted(b.level, key=lambda lv: [L.RESPONSE, L.PARAGRAPH, L.LINE, L.WORD].index(lv))

    # words: exact slices of the string, in reading order, the same words as str.split()
    words = b.at(L.WORD)
    for t, cs, ce in zip(words.text, words.char_start, words.char_end):
        assert t == text[cs:ce] and t and not any(c.isspace() for c in t)
    assert words_by_index(words.level, words.index, words.text) == text.split()
    assert np.all(np.diff(words.char_start) > 0)
    fragments = np.flatnonzero(np.diff(words.index) == 0)
    assert len(fragments) >= 1, "the over-long word wraps into fragments with one word index"
    for i in fragments:  # a fragment ends where the next one starts, one line further down
        assert words.char_end[i] == words.char_start[i + 1]
        assert words.y0[i + 1] > words.y0[i]

    # paragraphs: blocks with at least one word; "\n\n" leaves an empty block, not a paragraph
    paragraphs = b.at(L.PARAGRAPH)
    expected = [p for p in re.split(r"\r\n|\r|\n", text) if p.split()]
    assert [text[cs:ce] for cs, ce in zip(paragraphs.char_start, paragraphs.char_end)] == expected
    assert list(paragraphs.index) == list(range(len(expected)))

    # lines: tile their paragraph's text and height; words sit inside their line
    lines = b.at(L.LINE)
    top = box(b, 0)
    assert b.level[0] == L.RESPONSE and (b.char_start[0], b.char_end[0]) == (0, len(text))
    for p in range(len(paragraphs)):
        mine = np.flatnonzero(lines.paragraph == p)
        assert "".join(text[cs:ce] for cs, ce in zip(lines.char_start[mine], lines.char_end[mine])) == expected[p]
        assert np.allclose(lines.y1[mine][:-1], lines.y0[mine][1:]), "line bands abut"
        assert lines.y0[mine][0] == pytest.approx(paragraphs.y0[p]) and lines.y1[mine][-1] == pytest.approx(
            paragraphs.y1[p])
        for i in mine:
            assert inside(box(lines, i), box(paragraphs, p)) and inside(box(lines, i), top)
        assert inside(box(paragraphs, p), top)
    assert np.all(np.diff(lines.y0) > 0)
    for i in range(len(words)):
        line = np.flatnonzero((lines.char_start <= words.char_start[i]) & (words.char_end[i] <= lines.char_end))
        assert len(line) == 1, "every word fragment lies in exactly one line"
        assert inside(box(words, i), box(lines, line[0]))
        assert words.paragraph[i] == lines.paragraph[line[0]]
        assert words.y0[i] == lines.y0[line[0]] and words.y1[i] == lines.y1[line[0]]

    # x positions agree with Qt's own cursor at each fragment's first character
    origin = global_origin(v)
    cursor = QTextCursor(v.document())
    for i in range(len(words)):
        cursor.setPosition(doc_position(text, int(words.char_start[i])))
        r = v.cursorRect(cursor)
        assert abs(origin.x() + r.x() - words.x0[i]) <= 1.0, words.text[i]
        assert words.y0[i] <= origin.y() + r.center().y() <= words.y1[i]
    # and the last character's right edge is the box's right edge
    for i in range(len(words)):
        cursor.setPosition(doc_position(text, int(words.char_end[i])))
        r = v.cursorRect(cursor)
        if words.char_end[i] == lines.char_end[lines.char_start <= words.char_start[i]][-1] and \
                i + 1 < len(words) and words.index[i + 1] == words.index[i]:
            continue  # a mid-word break: Qt puts that cursor at the start of the next line
        assert abs(origin.x() + r.x() - words.x1[i]) <= 1.0, words.text[i]


def test_scrolling_shifts_every_box_by_the_scroll_delta(qtbot):
    v = show(qtbot, ResponseView(Response.SECOND, font_px=20), (380, 260))
    v.set_text(ANSWER_1 + "\n\n" + ANSWER_2)
    QApplication.processEvents()
    bar = v.verticalScrollBar()
    assert bar.maximum() > 200
    before = layout_boxes(v)
    bar.setValue(173)
    after = layout_boxes(v)
    assert after.scroll_y == 173
    assert np.array_equal(after.x0, before.x0) and np.array_equal(after.x1, before.x1)
    assert np.allclose(after.y0, before.y0 - 173) and np.allclose(after.y1, before.y1 - 173)
    assert after.text == before.text
    # the visible part of a view, as the module doc tells analysis to derive it
    doc_h = after.y1[0] - after.y0[0]
    viewport_top = after.y0[0] + after.scroll_y
    assert viewport_top == pytest.approx(global_origin(v).y())
    assert doc_h - bar.maximum() == pytest.approx(v.viewport().height(), abs=1.0)


# -- hit test -------------------------------------------------------------------------------------
def visible_centres(view, boxes):
    """(x, y, paragraph, word) at the centre of each WORD box inside the viewport."""
    o = global_origin(view)
    vp = view.viewport()
    out = []
    words = boxes.at(L.WORD)
    for i in range(len(words)):
        x = (words.x0[i] + words.x1[i]) / 2
        y = (words.y0[i] + words.y1[i]) / 2
        if o.x() <= x < o.x() + vp.width() and o.y() <= y < o.y() + vp.height():
            out.append((x, y, int(words.paragraph[i]), int(words.index[i])))
    return out


def test_aoi_at_words_margins_gaps_and_scrolling(qtbot, turn, writer):
    tracker = LayoutTracker(writer)
    for v in turn.views:
        tracker.add_view(v)
    assert tracker.snapshot("test") == 0
    for v in turn.views:
        centres = visible_centres(v, layout_boxes(v))
        assert len(centres) >= min(15, len(v.text().split()))
        for x, y, p, w in centres:
            assert tracker.aoi_at(x, y) == (v.response, p, w)

    left, right = turn.left, turn.right
    lo, ro = global_origin(left), global_origin(right)
    lb = layout_boxes(left)
    par = lb.at(L.PARAGRAPH)
    # the left margin of the text column: on the response, on no paragraph
    assert tracker.aoi_at(lo.x() + 3, (par.y0[0] + par.y1[0]) / 2) == (Response.FIRST, -1, -1)
    # the blank line between two paragraphs
    assert tracker.aoi_at(par.x0[0] + 5, (par.y1[0] + par.y0[1]) / 2) == (Response.FIRST, -1, -1)
    # the space between the first two words of a line: the paragraph, no word
    words = lb.at(L.WORD)
    gap_x = (words.x1[0] + words.x0[1]) / 2
    assert tracker.aoi_at(gap_x, (words.y0[0] + words.y1[0]) / 2) == (Response.FIRST, 0, -1)
    # between the two views, outside the window, left of everything
    between = (lo.x() + left.viewport().width() + ro.x()) / 2
    assert between < ro.x() and tracker.aoi_at(between, lo.y() + 50) == (-1, -1, -1)
    assert tracker.aoi_at(-50, -50) == (-1, -1, -1)
    assert tracker.aoi_at(lo.x() + 100, turn.mapToGlobal(QPoint(0, turn.height())).y() + 5) == (-1, -1, -1)

    # scroll the left view: words move up by the delta; hidden words give -1s
    bar = left.verticalScrollBar()
    assert bar.maximum() > 60
    delta = min(bar.maximum(), 90)
    bar.setValue(delta)
    vp_top = lo.y()
    vp_bottom = lo.y() + left.viewport().height()
    moved = scrolled_out = 0
    for i in range(len(words)):
        x = (words.x0[i] + words.x1[i]) / 2
        y = (words.y0[i] + words.y1[i]) / 2 - delta
        got = tracker.aoi_at(x, y)
        if vp_top <= y < vp_bottom:
            assert got == (Response.FIRST, words.paragraph[i], words.index[i])
            moved += 1
        elif y < vp_top:  # text scrolled out of view cannot be looked at (or lands on the prompt)
            assert got[0] != Response.FIRST
            scrolled_out += 1
    assert moved > 10 and scrolled_out >= 1
    assert tracker.aoi_at(words.x0[0] + 2, vp_top - 3) == (-1, -1, -1)  # just above the viewport
    # the point where the first word was now shows a later one (or the view's margin)
    r, p, w = tracker.aoi_at((words.x0[0] + words.x1[0]) / 2, (words.y0[0] + words.y1[0]) / 2)
    assert r == Response.FIRST and w != 0

    # a sanity bound on speed (the recorder calls this for every mouse event)
    xs = np.random.default_rng(1).uniform(0, W, 10_000)
    ys = np.random.default_rng(2).uniform(0, H, 10_000)
    t0 = time.perf_counter()
    for x, y in zip(xs.tolist(), ys.tolist()):
        tracker.aoi_at(x, y)
    mean_ms = (time.perf_counter() - t0) / 10_000 * 1000
    assert mean_ms < 1.0, mean_ms


def test_aoi_at_as_the_input_recorders_callback(qtbot, turn, writer):
    tracker = LayoutTracker(writer)
    for v in turn.views:
        tracker.add_view(v)
    tracker.snapshot()
    rec = InputRecorder(writer, turn, aoi_at=tracker.aoi_at, poll_hz=0)
    rec.start()
    targets = []
    for v in (turn.left, turn.right, turn.prompt):
        x, y, p, w = visible_centres(v, layout_boxes(v))[5]
        vp = v.viewport()
        local = vp.mapFromGlobal(QPointF(x, y))
        QApplication.sendEvent(vp, QMouseEvent(QEvent.Type.MouseMove, local, QPointF(x, y), Qt.MouseButton.NoButton,
                                               Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))
        targets.append((v.response, p, w))
    rec.stop()
    assert rec.counts()["aoi_errors"] == 0
    writer.close()
    with SessionReader(writer.path) as r:
        mouse = r["mouse"].read()
    moves = mouse[mouse["kind"] == 0]
    assert [(int(m["aoi_response"]), int(m["aoi_paragraph"]), int(m["aoi_word"])) for m in moves] == targets
    assert targets[2][0] == PROMPT and targets[2][2] >= 0


def rule_answer(view, boxes, x: float, y: float):
    """``(response, paragraph, word)`` at a global screen point by the documented rules,
    read straight off a view's boxes now (every box tried, no lookup tables); None outside
    the view's viewport. The prompt view records no LINE rows: its paragraph is None
    (not derivable from the rows)."""
    o, vp = global_origin(view), view.viewport()
    if not (o.x() <= x < o.x() + vp.width() and o.y() <= y < o.y() + vp.height()):
        return None
    words = boxes.at(L.WORD)
    on = np.flatnonzero((words.x0 <= x) & (x < words.x1) & (words.y0 <= y) & (y < words.y1))
    word = int(words.index[on[0]]) if len(on) else -1
    if view.response == PROMPT:
        return PROMPT, None, word
    lines, pars = boxes.at(L.LINE), boxes.at(L.PARAGRAPH)
    band = np.flatnonzero((lines.y0 <= y) & (y < lines.y1))
    assert len(band) <= 1  # the bands do not overlap
    if not len(band):
        assert word == -1
        return view.response, -1, -1
    p = int(lines.paragraph[band[0]])
    if not pars.x0[p] <= x < pars.x1[p]:
        assert word == -1
        return view.response, -1, -1
    return view.response, p, word


def test_live_and_offline_aois_agree_with_the_rules(qtbot, turn, writer):
    """The recorder's live AOI (``LayoutTracker.aoi_at``) and the offline mapping of the file
    it wrote (``LayoutTimeline.map_points``) use one hit test: for random points over the
    whole turn (and on the edges of every word and line), before and after the left answer
    scrolls, both give what the rules give on the boxes of that moment."""
    from ifllm_lab.analysis.aoi import LayoutTimeline

    tracker = LayoutTracker(writer)
    rec = InputRecorder(writer, turn, aoi_at=tracker.aoi_at, poll_hz=0)
    for v in turn.views:
        tracker.add_view(v)
        rec.record_scroll(v.response, v.verticalScrollBar())
    rec.start()
    tracker.snapshot("test")
    rng = np.random.default_rng(11)
    o = turn.mapToGlobal(QPoint(0, 0))
    samples = []  # (t, x, y, live, by the rules)

    def probe(n: int) -> None:
        boxes = {v: layout_boxes(v) for v in turn.views}
        xs = [o.x() + rng.uniform(-20, turn.width() + 20, n)]
        ys = [o.y() + rng.uniform(-20, turn.height() + 20, n)]
        for b in boxes.values():  # just inside and just outside every word and line
            for lv in (L.WORD, L.LINE):
                e = b.at(lv)
                ym = (e.y0 + e.y1) / 2
                xs += [e.x0, e.x1 - 0.01, e.x1, e.x0 - 0.01, (e.x0 + e.x1) / 2, (e.x0 + e.x1) / 2]
                ys += [ym, ym, ym, ym, e.y0, e.y1 - 0.01]
        t = writer.clock.now()
        for x, y in zip(np.concatenate(xs).tolist(), np.concatenate(ys).tolist()):
            rules = next((a for v in turn.views if (a := rule_answer(v, boxes[v], x, y)) is not None),
                         (None, -1, -1))
            samples.append((t, x, y, tracker.aoi_at(x, y), rules))

    probe(3000)
    bar = turn.left.verticalScrollBar()
    assert bar.maximum() > 60
    bar.setValue(bar.maximum() - 7)
    QApplication.processEvents()
    probe(3000)
    rec.stop()
    writer.close()
    with SessionReader(writer.path) as r:
        lt = LayoutTimeline.from_reader(r)
    t, x, y = (np.array([s[i] for s in samples]) for i in range(3))
    m = lt.map_points(t, x, y)
    n_words = n_views_differ = 0
    for i, (_, _, _, live, rules) in enumerate(samples):
        r, p, w = rules  # r None: outside every view
        assert live == ((-1, -1, -1) if r is None else (r, live[1] if p is None else p, w)), (i, live, rules)
        n_words += w >= 0
        offline_r = PROMPT if m["prompt"][i] else None if m["response"][i] < 0 else int(m["response"][i])
        if offline_r == r == PROMPT:
            assert m["word"][i] == -1  # no LINE rows recorded for the prompt
        elif offline_r == r:
            assert (int(m["paragraph"][i]), int(m["word"][i])) == (p, w), (i, m["paragraph"][i], m["word"][i], rules)
        else:
            # the recorded viewport is the document's visible part: it can miss the view's
            # empty margin below a short text (or the last pixel row), never any text
            n_views_differ += 1
            assert p in (-1, None) and w == -1 and m["paragraph"][i] == -1 and m["word"][i] == -1, (i, rules)
    assert n_words > 1000 and n_views_differ < 0.1 * len(samples), (n_words, n_views_differ)


# -- snapshots in the session file ----------------------------------------------------------------
def test_one_snapshot_holds_both_answers_and_the_prompt(qtbot, turn, writer):
    tracker = LayoutTracker(writer)
    for v in turn.views:
        tracker.add_view(v)
    tracker.set_turn(4)
    hidden = ResponseView(Response.SINGLE)  # never shown: no boxes
    tracker.add_view(hidden)
    first = tracker.snapshot("turn start")
    turn.left.set_text("")  # an empty answer still has its RESPONSE box
    second = tracker.snapshot()
    assert (first, second) == (0, 1)
    writer.close()
    rows = read_layout(writer.path)
    assert tracker.stats["snapshots"] == 2 and tracker.stats["rows"] == len(rows) and tracker.stats["lost_rows"] == 0
    assert tracker.stats["reasons"]["turn start"] == 1
    assert set(rows["turn"]) == {4}
    snap0 = rows[rows["snapshot"] == 0]
    assert len(set(snap0["t"])) == 1 and set(snap0["response"]) == {PROMPT, Response.FIRST, Response.SECOND}
    for v in turn.views:
        mine = snap0[snap0["response"] == v.response]
        expected = layout_boxes(v) if v is not turn.left else None
        if v is turn.prompt:
            assert set(mine["level"]) == {L.PROMPT, L.WORD}
            assert mine["level"][0] == L.PROMPT
            assert (mine["char_start"][0], mine["char_end"][0]) == (0, len(PROMPT_TEXT))
        else:
            assert set(mine["level"]) == {L.RESPONSE, L.PARAGRAPH, L.LINE, L.WORD}
        answer = {turn.prompt: PROMPT_TEXT, turn.left: ANSWER_1, turn.right: ANSWER_2}[v]
        assert words_by_index(mine["level"], mine["index"], mine["text"]) == answer.split()
        for row in mine[mine["level"] == L.WORD]:
            assert row["text"] == answer[row["char_start"]:row["char_end"]]
        assert set(mine[mine["level"] != L.WORD]["text"]) == {""}
        if expected is not None:
            assert np.allclose(mine["x0"], expected.x0) and np.allclose(mine["y1"], expected.y1)
            assert np.all(mine["scroll_y"] == 0)
    snap1 = rows[rows["snapshot"] == 1]
    empty = snap1[snap1["response"] == Response.FIRST]
    assert list(empty["level"]) == [L.RESPONSE] and (empty["char_start"][0], empty["char_end"][0]) == (0, 0)


def test_streaming_is_throttled_and_the_final_layout_is_recorded(qtbot, writer):
    view = show(qtbot, ResponseView(Response.SINGLE, font_px=20), (700, 420))
    tracker = LayoutTracker(writer, stream_interval_s=0.25, settle_ms=150)
    tracker.add_view(view)
    text = ANSWER_1 + "\n\n" + ANSWER_2
    cuts = np.linspace(0, len(text), 201).astype(int)  # 200 pieces, cut anywhere
    pieces = [text[a:b] for a, b in zip(cuts, cuts[1:])]
    t0 = time.monotonic()
    for k, piece in enumerate(pieces):
        view.append_text(piece)
        qtbot.wait(5)
        if k == 130:  # the participant scrolls mid-stream
            assert view.verticalScrollBar().maximum() > 40
            view.verticalScrollBar().setValue(40)
    duration = time.monotonic() - t0
    qtbot.waitUntil(lambda: not tracker.pending, timeout=2000)
    qtbot.wait(50)
    assert view.text() == "".join(pieces) == ANSWER_1 + "\n\n" + ANSWER_2
    assert view.verticalScrollBar().value() == 40, "streaming never scrolls the view"
    writer.close()
    rows = read_layout(writer.path)
    snaps = np.unique(rows["snapshot"])
    assert len(snaps) == tracker.stats["snapshots"]
    assert 3 <= len(snaps) <= duration / 0.25 + 4, (len(snaps), duration)
    counts = [len(words_by_index(*(rows[rows["snapshot"] == s][c] for c in ("level", "index", "text"))))
              for s in snaps]
    assert counts == sorted(counts), "answers only grow"
    last = rows[rows["snapshot"] == snaps[-1]]
    assert words_by_index(last["level"], last["index"], last["text"]) == view.text().split()
    assert np.all(last["scroll_y"] == 40)
    t = np.array([rows[rows["snapshot"] == s]["t"][0] for s in snaps])
    assert np.all(np.diff(t) > 0)


def test_scrolling_gives_one_settled_snapshot_shifted_by_the_delta(qtbot, writer):
    view = show(qtbot, ResponseView(Response.FIRST, font_px=20), (400, 300))
    view.set_text(ANSWER_1 + "\n\n" + ANSWER_2)
    tracker = LayoutTracker(writer, settle_ms=300)
    tracker.add_view(view)
    qtbot.waitUntil(lambda: tracker.stats["snapshots"] == 1, timeout=2000)  # the view was added
    qtbot.wait(400)
    assert tracker.stats["snapshots"] == 1
    bar = view.verticalScrollBar()
    t0 = time.monotonic()
    for value in range(15, 151, 15):  # one slow wheel gesture: 10 steps 40 ms apart, longer than settle_ms
        bar.setValue(value)
        qtbot.wait(40)
    assert time.monotonic() - t0 > 0.3
    qtbot.waitUntil(lambda: tracker.stats["snapshots"] == 2, timeout=2000)
    qtbot.wait(500)
    assert tracker.stats["snapshots"] == 2 and tracker.stats["reasons"]["scroll"] == 1
    writer.close()
    rows = read_layout(writer.path)
    a, b = rows[rows["snapshot"] == 0], rows[rows["snapshot"] == 1]
    assert len(a) == len(b) and list(a["text"]) == list(b["text"])
    assert np.all(a["scroll_y"] == 0) and np.all(b["scroll_y"] == 150)
    assert np.array_equal(a["x0"], b["x0"]) and np.array_equal(a["x1"], b["x1"])
    assert np.allclose(b["y0"], a["y0"] - 150, atol=1e-3) and np.allclose(b["y1"], a["y1"] - 150, atol=1e-3)
    assert b["t"][0] - a["t"][0] > 0.3


def test_resize_and_move_give_new_snapshots(qtbot, writer):
    window = show(qtbot, QWidget(), (900, 500))
    lay = QHBoxLayout(window)
    view = ResponseView(Response.FIRST, font_px=20)
    lay.addWidget(view)
    view.set_text(ANSWER_1)
    QApplication.processEvents()
    tracker = LayoutTracker(writer, settle_ms=100)
    tracker.add_view(view)
    qtbot.waitUntil(lambda: tracker.stats["snapshots"] == 1, timeout=2000)
    window.resize(520, 500)
    qtbot.waitUntil(lambda: tracker.stats["snapshots"] >= 2, timeout=2000)
    qtbot.wait(250)
    n_resized = tracker.stats["snapshots"]
    assert n_resized <= 3
    pos = window.pos()
    window.move(pos.x() + 37, pos.y() + 11)
    qtbot.waitUntil(lambda: window.pos() != pos, timeout=2000)
    qtbot.waitUntil(lambda: tracker.stats["snapshots"] > n_resized, timeout=2000)
    qtbot.wait(250)
    moved_by = window.pos() - pos
    writer.close()
    rows = read_layout(writer.path)
    snaps = np.unique(rows["snapshot"])
    first, resized, moved = (rows[rows["snapshot"] == s] for s in (snaps[0], snaps[n_resized - 1], snaps[-1]))
    n_lines = [int(np.sum(s["level"] == L.LINE)) for s in (first, resized)]
    assert n_lines[1] > n_lines[0], "narrower view, more lines"
    for s in (first, resized, moved):
        assert words_by_index(s["level"], s["index"], s["text"]) == ANSWER_1.split()
    top = [s[s["level"] == L.RESPONSE][0] for s in (first, resized)]
    assert top[1]["x1"] - top[1]["x0"] < top[0]["x1"] - top[0]["x0"]
    assert len(moved) == len(resized)
    assert np.allclose(moved["x0"] - resized["x0"], moved_by.x()) and np.allclose(moved["y1"] - resized["y1"],
                                                                                   moved_by.y())


def test_clear_views_and_deleted_views_stop_tracking(qtbot, writer):
    view = show(qtbot, ResponseView(Response.FIRST), (400, 300))
    tracker = LayoutTracker(writer, stream_interval_s=0.05, settle_ms=20)
    tracker.add_view(view)
    view.set_text("one two")
    qtbot.waitUntil(lambda: tracker.stats["snapshots"] >= 1, timeout=2000)
    tracker.clear_views()
    n = tracker.stats["snapshots"]
    view.set_text("three four five")
    view.resize(300, 300)
    qtbot.wait(150)
    assert tracker.stats["snapshots"] == n and tracker.views == []
    assert tracker.snapshot() == -1  # nothing to measure
    other = ResponseView(Response.SECOND)  # not given to qtbot: deleted below
    other.show()
    tracker.add_view(other)
    other.deleteLater()
    qtbot.waitUntil(lambda: tracker.views == [], timeout=2000)
    assert tracker.aoi_at(10, 10) == (-1, -1, -1)


# -- how it looks --------------------------------------------------------------------------------------
def test_screenshot_two_answers_side_by_side(qtbot, tmp_path):
    font = round(H * READING_FONT_FRACTION)  # a 1280 x 720 window stands for a 1080-line screen
    t = show(qtbot, Turn(font_px=font))
    t.fill()
    QApplication.processEvents()
    path = save(t, shots_folder(tmp_path), "response_views_pairwise")
    assert Path(path).stat().st_size > 10_000
    img = t.grab().toImage()
    # calm: the answers' panel colour, light text on it, nowhere pure white
    lo = global_origin(t.left) - t.mapToGlobal(QPoint(0, 0))
    assert img.pixelColor(lo.x() + 4, lo.y() + t.left.viewport().height() - 4).name() == style.PANEL.name()
    assert img.pixelColor(4, 4).name() == style.BACKGROUND.name()
    grey = np.array([[img.pixelColor(x, y).lightness() for x in range(0, W, 7)] for y in range(0, H, 7)])
    assert grey.max() < 250


def test_a_view_moved_to_another_parent_is_still_followed(qtbot, writer):
    a = show(qtbot, QWidget(), (500, 400))
    b = show(qtbot, QWidget(), (500, 400))
    b.move(a.x() + 300, a.y() + 50)
    holder = QWidget(a)
    QHBoxLayout(holder).addWidget(view := ResponseView(Response.FIRST, font_px=20))
    holder.setGeometry(0, 0, 400, 300)
    holder.show()
    view.set_text(ANSWER_2)
    tracker = LayoutTracker(writer, settle_ms=50)
    tracker.add_view(view)
    qtbot.waitUntil(lambda: tracker.stats["snapshots"] == 1, timeout=2000)
    holder.setParent(b)  # the view's parent moves to the other window
    holder.show()
    qtbot.waitUntil(lambda: tracker.stats["snapshots"] >= 2, timeout=2000)
    qtbot.wait(150)
    n = tracker.stats["snapshots"]
    b.move(b.x() + 40, b.y())  # the new window moves: the view moves with it
    qtbot.waitUntil(lambda: tracker.stats["snapshots"] > n, timeout=2000)
    x, y, p, w = visible_centres(view, layout_boxes(view))[3]
    assert tracker.aoi_at(x, y) == (Response.FIRST, p, w)
