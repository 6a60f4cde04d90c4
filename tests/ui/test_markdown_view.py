"""Answers rendered as Markdown (Qt offscreen, real widgets): every recorded word box's raw
characters, stripped of markup, are the word as shown; streaming never shows a marker that
vanishes later nor moves earlier lines; the live mouse AOI agrees with the layout; a
screenshot of a rendered answer for the note."""
from __future__ import annotations


import pytest
from PySide6.QtWidgets import QApplication

from ifllm_lab.analysis import markdown as md
from ifllm_lab.session.schema import LayoutLevel
from ifllm_lab.ui.response_view import LayoutTracker, ResponseView

from tests.support.markdown_text import shown_word, strip_markup  # noqa: F401
from tests.support.screenshots import shots_folder

CORPUS = {
    "lists": "Here is how:\n\n1. **Rinse** the rice\n2. Boil it\n   - add *salt*\n   - cover\n3. Rest it 5 min\n\n"
             "* one\n* two\n",
    "emphasis across lines": "This is **bold text that\nwraps to the next line** and _italic\nalso_ and ~~gone~~.\n",
    "code": "Use `print()` like this:\n\n```python\nfor i in range(3):\n    print(i * 2)\n```\n\nDone.",
    "table": "| Fruit | Colour |\n|:------|-------:|\n| Banana | Yellow |\n| Kiwi \\| gold | Green |\n",
    "links and headings": "## Read more\n\nSee [the docs](https://example.org/a_b) or <https://x.org>.\n\n"
                          "### Notes\n> A quote with `code`.\n\n---\nEnd.",
    "emoji and right-to-left": "Plants 🌱 need light ☀️.\n\nمرحبا **بالعالم** — שלום עולם.\n\n😀 **bold 😀 emoji**",
    "escapes and stray markers": "2 * 3 = 6, a_b_c, \\*literal\\*, the end.",
}


def show(qtbot, view: ResponseView, w=900, h=700):
    qtbot.addWidget(view)
    view.resize(w, h)
    view.show()
    qtbot.waitExposed(view)
    QApplication.processEvents()


def words(view):
    return view.layout_boxes().at(LayoutLevel.WORD)


@pytest.mark.parametrize("name", list(CORPUS))
def test_every_word_box_is_its_raw_characters_without_markup(qtbot, name):
    raw = CORPUS[name]
    v = ResponseView(1, markdown=True, font_px=20)
    show(qtbot, v)
    v.set_text(raw)
    w = words(v)
    assert len(w.text) >= 4
    for text, a, b in zip(w.text, w.char_start, w.char_end):
        assert 0 <= a < b <= len(raw)
        assert shown_word(raw, a, b) == text, (raw[a:b], text)
    assert not any(m in t for t in w.text for m in ("**", "](", "`"))  # no markup is shown
    # the same answer streamed in small pieces ends up laid out the same
    s = ResponseView(1, markdown=True, font_px=20)
    show(qtbot, s)
    for i in range(0, len(raw), 3):
        s.append_text(raw[i:i + 3])
    s.finish_text()
    ws = words(s)
    assert ws.text == w.text and list(ws.char_start) == list(w.char_start) and list(ws.style) == list(w.style)
    assert s.text() == raw


def test_styles_are_recorded_for_what_is_shown(qtbot):
    v = ResponseView(1, markdown=True, font_px=20)
    show(qtbot, v)
    v.set_text("# Head\n\n**bold** `code` *it*\n\n- item\n\n| h |\n|---|\n| c |\n")
    st = dict(zip(words(v).text, (int(x) for x in words(v).style)))
    assert md.heading_level(st["Head"]) == 1
    assert st["bold"] & md.BOLD and st["code"] & md.CODE and st["it"] & md.ITALIC
    assert st["item"] & md.LIST_ITEM and st["h"] & md.TABLE_HEADER and st["c"] & md.TABLE


def test_streaming_keeps_earlier_lines_still_and_hides_open_markers(qtbot):
    v = ResponseView(1, markdown=True, font_px=20)
    show(qtbot, v)
    first = "A first paragraph that is complete and long enough to wrap onto a second line of the view.\n\n"
    v.append_text(first)
    v.append_text("Then **bold te")
    before = v.layout_boxes().at(LayoutLevel.LINE)
    assert "**" not in v.document().toPlainText()
    bold = [t for t, st in zip(words(v).text, words(v).style) if st & md.BOLD]
    assert bold == []  # the open "**" bolds nothing yet
    v.append_text("xt** and more words\n\n- a list item")
    v.finish_text()
    after = v.layout_boxes().at(LayoutLevel.LINE)
    n = sum(1 for a in before.char_end if a <= len(first))  # the first paragraph's lines
    assert n >= 2
    for k in range(n):  # never re-flowed nor moved
        assert (after.x0[k], after.y0[k], after.x1[k], after.y1[k]) == (before.x0[k], before.y0[k], before.x1[k],
                                                                       before.y1[k])
        assert (after.char_start[k], after.char_end[k]) == (before.char_start[k], before.char_end[k])
    assert [t for t, st in zip(words(v).text, words(v).style) if st & md.BOLD] == ["bold", "text"]


def test_the_live_aoi_agrees_with_the_layout(qtbot, tmp_path):
    from ifllm_lab.session import SessionClock, SessionMeta, SessionWriter

    writer = SessionWriter(tmp_path / "s.h5", SessionMeta(participant="md"), clock=SessionClock())
    try:
        v = ResponseView(1, markdown=True, font_px=20)
        show(qtbot, v, 900, 900)
        v.set_text(CORPUS["lists"] + "\n" + CORPUS["table"] + "\n" + CORPUS["code"])
        tracker = LayoutTracker(writer)
        tracker.add_view(v)
        assert tracker.snapshot("test") == 0
        w = words(v)
        checked = 0
        for i in range(len(w.text)):
            x, y = (w.x0[i] + w.x1[i]) / 2, (w.y0[i] + w.y1[i]) / 2
            assert tracker.aoi_at(x, y) == (1, int(w.paragraph[i]), int(w.index[i])), w.text[i]
            checked += 1
        assert checked >= 25
        # the offline mapping (many points at once) agrees, table cells side by side included
        from PySide6.QtCore import QPoint

        o = v.viewport().mapToGlobal(QPoint(0, 0))
        xs = (w.x0 + w.x1) / 2 - o.x() + v.horizontalScrollBar().value()
        ys = (w.y0 + w.y1) / 2 - o.y() + v.verticalScrollBar().value()
        found = v._layout().hits.locate(0, xs, ys)
        assert list(found["word"]) == [int(i) for i in w.index]
        assert list(found["paragraph"]) == [int(p) for p in w.paragraph]
    finally:
        writer.close()


def test_screenshot_of_a_rendered_answer(qtbot, tmp_path):
    v = ResponseView(1, markdown=True, font_px=22)
    show(qtbot, v, 760, 900)
    v.set_text("\n\n".join(CORPUS[k] for k in ("links and headings", "lists", "code", "table")))
    path = shots_folder(tmp_path) / "markdown-answer.png"
    assert v.grab().save(str(path))


def test_bench_answers_reports_both_modes(qtbot, tmp_path, capsys):
    from ifllm_lab.cli import main

    assert main(["bench", "answers", "--repeats", "1", "--folder", str(tmp_path / "b"), "--json"]) == 0
    import json

    r = json.loads(capsys.readouterr().out)
    assert r["pieces"] > 100 and r["runs"] == 1
    for mode in ("markdown", "plain"):
        assert 0 < r[f"{mode}_piece_ms_median"] <= r[f"{mode}_piece_ms_p95"] <= r[f"{mode}_piece_ms_max"]
        assert len(r[f"{mode}_answer_ms"]) == 1
    assert not (tmp_path / "b").exists()  # the benchmark's files are removed
