"""AOIs over text: recorded layout + scroll streams mapped to boxes and points over time
(the reconstruction of imported IFLLM sessions is checked in ``tests/importers/test_ifllm_layout.py``)."""
from __future__ import annotations

import numpy as np
import pytest

from ifllm_lab.analysis.aoi import (
    BOX_DTYPE, LayoutTimeline, TextGeometry, paragraph_spans, word_of_char, word_spans,
)
from ifllm_lab.session import SessionClock, SessionMeta, SessionReader, SessionWriter
from ifllm_lab.session.schema import LayoutLevel
from ifllm_lab.synthetic.layout import CHAR_W, write_recorded_layout

from tests.support.recorded_layout import TEXT_1, TEXT_2, layout_rows, word_centre

# ------------------------------------------------------------------------------------------
# a hand-made recorded session: monospace layout (ifllm_lab.synthetic.layout) written as the
# response view writes it
# ------------------------------------------------------------------------------------------


@pytest.fixture
def recorded(tmp_path):
    """A session with two snapshots of two views and a scroll of the first view in between:

    t=1: snapshot 0 at scroll 0; t=2: view 1 scrolls down 60 px (two lines);
    t=4: snapshot 1, measured at scroll 60 (same text); the view is 150 px tall."""
    path = tmp_path / "recorded.h5"
    w = SessionWriter(path, SessionMeta(participant="aoi"), clock=SessionClock(), flush_interval=0.05)
    w.put_rows("turns", {"t": [0.5], "turn": [0], "mode": [1], "prompt": ["How do plants eat?"],
                         "response_1": [TEXT_1], "response_2": [TEXT_2], "t_first_token": [0.8],
                         "t_end": [20.0]})
    r1 = layout_rows(TEXT_1, t=1.0, snapshot=0, turn=0, response=1, left=100, top=200, scroll_y=0, cols=30)
    r2 = layout_rows(TEXT_2, t=1.0, snapshot=0, turn=0, response=2, left=500, top=200, scroll_y=0, cols=30)
    w.put_rows("layout", {k: r1[k] + r2[k] for k in r1})
    # view 1: 150 px visible of a taller document: max_y = doc height - 150
    doc_h = r1["y1"][0] - r1["y0"][0]
    w.put_rows("scroll", {"t": [1.0, 2.0], "turn": [0, 0], "view": [1, 1], "x": [0, 0], "y": [0, 60],
                          "max_y": [doc_h - 150, doc_h - 150]})
    r1b = layout_rows(TEXT_1, t=4.0, snapshot=1, turn=0, response=1, left=100, top=200, scroll_y=60, cols=30)
    r2b = layout_rows(TEXT_2, t=4.0, snapshot=1, turn=0, response=2, left=500, top=200, scroll_y=0, cols=30)
    w.put_rows("layout", {k: r1b[k] + r2b[k] for k in r1b})
    w.close()
    return path, r1, r2, r1b, doc_h


def test_recorded_boxes_follow_the_scroll_stream(recorded):
    path, r1, r2, r1b, doc_h = recorded
    with SessionReader(path) as r:
        lt = LayoutTimeline.for_session(r)
    assert lt.source == "layout" and lt.turns() == [0] and lt.responses == [1, 2]
    before = lt.boxes_at(1.5, LayoutLevel.WORD)
    after = lt.boxes_at(2.5, LayoutLevel.WORD)
    assert before.dtype == BOX_DTYPE
    v1b, v1a = before[before["response"] == 1], after[after["response"] == 1]
    n_words = len(word_spans(TEXT_1))
    assert len(v1b) == len(v1a) == n_words
    np.testing.assert_allclose(v1b["y0"], np.array(r1["y0"])[np.array(r1["level"]) == int(LayoutLevel.WORD)])
    np.testing.assert_allclose(v1a["y0"], v1b["y0"] - 60)  # the scroll moved every box up 60 px
    np.testing.assert_allclose(v1a["x0"], v1b["x0"])
    # view 2 did not scroll
    np.testing.assert_allclose(after[after["response"] == 2]["y0"], before[before["response"] == 2]["y0"])
    # snapshot 1 (measured at scroll 60) agrees with snapshot 0 shifted by the scroll
    later = lt.boxes_at(4.5, LayoutLevel.WORD)
    np.testing.assert_allclose(later[later["response"] == 1]["y0"], v1a["y0"])
    assert list(later[later["response"] == 1]["text"]) == TEXT_1.split()
    # boxes scrolled above the viewport (top 200 .. 350) are not visible
    assert not v1a["visible"][v1a["y1"] <= 200].any() and v1a["visible"][(v1a["y0"] >= 200) & (v1a["y1"] <= 350)].all()
    assert len(lt.boxes_at(0.5)) == 0  # before the first snapshot


def test_recorded_map_points_hit_the_right_words(recorded):
    """Lines of TEXT_1 at 30 columns: 0-2 the first paragraph, 3-5 the second; the view
    shows 150 px (five 30 px lines) from y=200; the scroll at t=2 moves everything 60 px up."""
    path, r1, r2, r1b, doc_h = recorded
    with SessionReader(path) as r:
        lt = LayoutTimeline.from_reader(r)
    words = TEXT_1.split()
    last = len(words) - 1  # "pores." on line 5: below the view until the scroll
    x2, y2 = word_centre(r1, 2)  # "light", line 0
    xl, yl = word_centre(r1, last)
    xg = x2 + 0.5 * CHAR_W * len(words[2]) + 0.3 * CHAR_W  # in the space after "light"
    pts = [
        (1.5, x2, y2, 2, 1),
        (2.5, x2, y2, words.index("and"), 1),  # line 2 has moved up under the point: "and"
        (2.5, x2, y2 - 60, -1, -1),  # "light" moved above the view: out of sight
        (1.5, xl, yl, -1, -1),  # below the view before the scroll
        (2.5, xl, yl - 60, last, 1),
        (4.5, xl, yl - 60, last, 1),  # snapshot 1, measured at scroll 60
        (1.5, xg, y2, -1, 1),  # on the line, between two words
        (1.5, 50.0, y2, -1, -1),  # left of every view
        (1.5, *word_centre(r2, 3), 3, 2),
        (0.5, x2, y2, -1, -1),  # before the first snapshot
    ]
    t, x, y, want_word, want_resp = (np.array(v) for v in zip(*pts))
    m = lt.map_points(t, x, y)
    assert m["word"].tolist() == want_word.tolist()
    assert m["response"].tolist() == want_resp.tolist()
    assert m["turn"].tolist() == [0 if r >= 0 else -1 for r in want_resp]
    assert m["line"][[0, 1, 4, 6]].tolist() == [0, 2, 5, 0]
    assert m["paragraph"][[0, 1, 4, 6]].tolist() == [0, 0, 1, 0]
    # the space after "light": no word; its caret is the boundary after "light"
    assert m["char"][6] == TEXT_1.index("light") + len("light")
    # a caret inside a word: the nearest character boundary
    xc = x2 - 0.5 * CHAR_W * len(words[2]) + 2.2 * CHAR_W
    mc = lt.map_points([1.5], [xc], [y2])
    assert mc["char"][0] == TEXT_1.index("light") + 2 and mc["word"][0] == 2
    assert not m["prompt"].any()
    # any order of samples gives the same answer
    o = np.random.default_rng(0).permutation(len(t))
    mo = lt.map_points(t[o], x[o], y[o])
    assert mo["word"].tolist() == m["word"][o].tolist()


def test_above_the_first_line_is_on_the_view_but_on_no_line(recorded):
    """The view's top padding, above the first line of the session's first text: the
    response, no paragraph, line, word or caret (as everywhere else above a text)."""
    path, r1, r2, r1b, doc_h = recorded
    with SessionReader(path) as r:
        lt = LayoutTimeline.from_reader(r)
    x, _ = word_centre(r1, 0)
    top = r1["y0"][0]  # the RESPONSE box: the document's top, the viewport's top at scroll 0
    first_line = min(y for lv, y in zip(r1["level"], r1["y0"]) if lv == int(LayoutLevel.LINE))
    assert top < first_line
    m = lt.map_points([1.5, 1.5, 1.5], [x, x + 400, x], [(top + first_line) / 2] * 2 + [first_line])
    assert m["response"].tolist() == [1, 2, 1]
    assert m["line"].tolist() == [-1, -1, 0] and m["paragraph"].tolist() == [-1, -1, 0]
    assert m["word"][:2].tolist() == [-1, -1] and m["char"][:2].tolist() == [-1, -1]


def _one_text(turn: int, t0: float, t1: float) -> TextGeometry:
    """"ab cd" on one line and "efg" on a second, 10 px per character from x = 5, 20 px
    bands from y = 0; on screen at (100, 300), scrolled up by 20 px from t0 + 1 s on."""
    f = np.array
    return TextGeometry(
        turn=turn, response=0, t0=t0, t1=t1,
        s_t=f([t0, t0 + 1.0]), s_dx=f([100.0, 100.0]), s_dy=f([300.0, 280.0]),
        s_vx0=f([100.0, 100.0]), s_vy0=f([300.0, 300.0]), s_vx1=f([300.0, 300.0]), s_vy1=f([400.0, 400.0]),
        b_level=[int(LayoutLevel.RESPONSE), int(LayoutLevel.PARAGRAPH), int(LayoutLevel.LINE), int(LayoutLevel.LINE),
                 int(LayoutLevel.WORD), int(LayoutLevel.WORD), int(LayoutLevel.WORD)],
        b_index=[0, 0, 0, 1, 0, 1, 2], b_par=[-1, 0, 0, 0, 0, 0, 0], b_line=[-1, -1, 0, 1, 0, 0, 1],
        b_x0=f([0.0, 5, 5, 5, 5, 35, 5]), b_y0=f([0.0, 0, 0, 20, 0, 0, 20]),
        b_x1=f([200.0, 195, 55, 35, 25, 55, 35]), b_y1=f([100.0, 40, 20, 40, 20, 20, 40]),
        b_cs=[0, 0, 0, 6, 0, 3, 6], b_ce=[9, 9, 5, 9, 2, 5, 9], b_text=["", "", "", "", "ab", "cd", "efg"],
        l_y0=f([20.0, 0.0]), l_y1=f([40.0, 20.0]), l_hx0=f([5.0, 5.0]), l_hx1=f([195.0, 195.0]),
        l_cs=[6, 0], l_ce=[9, 5], l_par=[0, 0], l_index=[1, 0],  # given in any order
        k_line=[1] * 6 + [0] * 4, k_x=f([5.0 + 10 * i for i in range(6)] + [5.0 + 10 * i for i in range(4)]),
        k_char=f(list(range(6)) + list(range(6, 10))),
        f_line=[1, 1, 0], f_x0=f([5.0, 35, 5]), f_x1=f([25.0, 55, 35]), f_word=[0, 1, 2],
    )


def test_a_registered_source_supplies_the_layout_of_its_sessions(tmp_path, monkeypatch):
    """A session from elsewhere has no layout stream: :meth:`LayoutTimeline.for_session`
    runs the reconstruction its importer registered, and the texts it hands over behave
    like recorded ones; with none registered, the error says what to do."""
    from ifllm_lab.analysis import sources

    monkeypatch.setattr(sources, "_SOURCES", {})  # this test's registry only
    w = SessionWriter(tmp_path / "elsewhere.h5", SessionMeta(participant="x", source="elsewhere"),
                      clock=SessionClock())
    w.close()
    with SessionReader(tmp_path / "elsewhere.h5") as r:
        with pytest.raises(ValueError, match="no layout reconstruction is registered.*import its package"):
            LayoutTimeline.for_session(r)
        calls = []

        def rebuild(reader, **options):
            calls.append(options)
            return LayoutTimeline.from_texts([_one_text(0, 1.0, 5.0), _one_text(1, 5.0, 9.0)],
                                             fit_report={"fitted": True})

        sources.register(sources.SessionSource("elsewhere", reconstruct_layout=rebuild))
        lt = LayoutTimeline.for_session(r)
        assert LayoutTimeline.reconstruct_imported(r, exclude_page_ms=[1.0]).fit_report == {"fitted": True}
    assert calls == [{}, {"exclude_page_ms": [1.0]}]
    assert lt.source == "reconstructed" and lt.turns() == [0, 1] and lt.n_lines(1, 0) == 2
    # "cd" at x 135..155, band 300..320 until t0 + 1 s, then 280..300 (scrolled up 20 px)
    t = [1.5, 1.5, 1.5, 1.5, 2.5, 2.5, 6.5, 0.5, 1.5]
    x = [145.0, 128.0, 145.0, 120.0, 120.0, 145.0, 115.0, 145.0, 350.0]
    y = [310.0, 310.0, 330.0, 330.0, 310.0, 290.0, 310.0, 310.0, 310.0]
    m = lt.map_points(t, x, y)
    assert m["turn"].tolist() == [0, 0, 0, 0, 0, -1, 1, -1, -1]
    assert m["word"].tolist() == [1, -1, -1, 2, 2, -1, 2, -1, -1]
    assert m["line"].tolist() == [0, 0, 1, 1, 1, -1, 1, -1, -1]
    assert m["char"].tolist() == [4, 2, 9, 8, 8, -1, 7, -1, -1]
    words = lt.boxes_at(2.5, LayoutLevel.WORD)
    assert words["text"].tolist() == ["ab", "cd", "efg"] and words["y0"].tolist() == [280.0, 280.0, 300.0]


def test_map_points_on_an_hour_of_gaze_agrees_with_boxes_at(tmp_path):
    """216k samples (an hour at 60 Hz) over 600 snapshots of two views (how long it takes is
    measured by ``ifllm-lab bench analysis``)."""
    path = tmp_path / "long.h5"
    write_recorded_layout(path, " ".join(TEXT_1.split() * 6), snapshots=600, every_s=6.0, cols=40)
    with SessionReader(path) as r:
        lt = LayoutTimeline.from_reader(r)
    rng = np.random.default_rng(1)
    n = 216_000
    t = rng.uniform(0, 3600, n)
    x = rng.uniform(0, 1400, n)
    y = rng.uniform(150, 700, n)
    m = lt.map_points(t, x, y)
    assert (m["word"] >= 0).mean() > 0.2
    # spot check against boxes_at
    for i in rng.choice(np.flatnonzero(m["word"] >= 0), 50, replace=False):
        b = lt.boxes_at(t[i], LayoutLevel.WORD)
        hit = b[(b["x0"] <= x[i]) & (x[i] < b["x1"]) & (b["y0"] <= y[i]) & (y[i] < b["y1"])]
        assert len(hit) == 1 and hit["index"][0] == m["word"][i] and hit["response"][0] == m["response"][i]


def test_word_helpers():
    text = "Hello  world\n\n  - item one\nend"
    spans = word_spans(text)
    assert [text[a:b] for a, b in spans] == text.split()
    assert paragraph_spans(text).tolist() == [[0, 12], [14, 26], [27, 30]]
    chars = np.array([0, 4, 5, 6, 7, 12, 29, 30, -1])
    assert word_of_char(spans, chars, caret=False).tolist() == [0, 0, -1, -1, 1, -1, 5, -1, -1]
    assert word_of_char(spans, chars).tolist() == [0, 0, 0, -1, 1, 1, 5, 5, -1]


def test_session_without_text_geometry(tmp_path):
    w = SessionWriter(tmp_path / "empty.h5", SessionMeta(participant="x"), clock=SessionClock())
    w.close()
    with SessionReader(tmp_path / "empty.h5") as r:
        with pytest.raises(ValueError, match="no text layout"):
            LayoutTimeline.for_session(r)
