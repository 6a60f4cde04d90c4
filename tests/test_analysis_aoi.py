"""AOIs over text: recorded layout + scroll streams, and the reconstruction of imported IFLLM
sessions checked against the release's own character index."""
from __future__ import annotations

import math
import time
from collections import Counter

import h5py
import numpy as np
import pytest

from ifllm_lab.analysis.aoi import BOX_DTYPE, LayoutTimeline, paragraph_spans, word_of_char, word_spans
from ifllm_lab.session import SessionClock, SessionMeta, SessionReader, SessionWriter
from ifllm_lab.session.schema import LayoutLevel, Response
from ifllm_lab.synthetic.layout import CHAR_W
from ifllm_lab.synthetic.layout import SAMPLE_TEXT as TEXT_1
from ifllm_lab.synthetic.layout import monospace_layout_rows as layout_rows
from ifllm_lab.synthetic.layout import write_recorded_layout

# ------------------------------------------------------------------------------------------
# a hand-made recorded session: monospace layout (ifllm_lab.synthetic.layout) written as the
# response view writes it
# ------------------------------------------------------------------------------------------


def word_centre(rows: dict, word: int) -> tuple[float, float]:
    i = next(j for j, (lv, ix) in enumerate(zip(rows["level"], rows["index"]))
             if lv == int(LayoutLevel.WORD) and ix == word)
    return (rows["x0"][i] + rows["x1"][i]) / 2, (rows["y0"][i] + rows["y1"][i]) / 2


TEXT_2 = "Short second answer with a few words only."


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


# ------------------------------------------------------------------------------------------
# imported IFLLM sessions: the reconstruction against the release's own char_index
# ------------------------------------------------------------------------------------------
def _session_pick(out_dir, n_each: int = 7) -> list:
    """Imported sessions with gaze on the answers: ``n_each`` pairwise and pointwise ones,
    spread over the size range (every k-th by gaze_rel row count, largest excluded for time)."""
    sizes = {"pairwise": [], "pointwise": []}
    for p in sorted(out_dir.glob("*.h5")):
        with h5py.File(p, "r") as f:
            if "gaze_rel" not in f or "turns" not in f:
                continue
            n = f["gaze_rel"]["t"].shape[0]
            task = int(p.stem.rsplit("task", 1)[1])
        if n >= 800:
            sizes["pairwise" if task % 2 else "pointwise"].append((n, p))
    pick = []
    for kind, items in sizes.items():
        items.sort(key=lambda v: (-v[0], v[1].name))
        items = items[1:]  # the largest ones cost time without telling more
        step = max(1, len(items) // n_each)
        pick += [p for _, p in items[::step][:n_each]]
    return pick


def _truth_rows(reader, lt: LayoutTimeline | None):
    """Gaze rows on an answer's text: (gaze row index, turn, response, char_index, text),
    with the release's snippet confirming the text (not the site's placeholder, a stale
    answer or another page element)."""
    turns = reader["turns"].read()
    g = reader["gaze"].read(columns=["t", "page_ms"])
    gr = reader["gaze_rel"].read(columns=["t", "response", "char_index", "snippet", "page_ms"])
    gi = {p: i for i, p in enumerate(g["page_ms"].tolist())}
    out = []
    for row in gr[gr["char_index"] >= 0]:
        i = gi.get(row["page_ms"])
        k = int(np.searchsorted(turns["t"], row["t"], "right") - 1)
        if i is None or k < 0:
            continue
        resp = int(row["response"])
        text = str(turns["response_2"][k] if resp == int(Response.SECOND) else turns["response_1"][k])
        ci = int(row["char_index"])
        sn = str(row["snippet"]).strip()
        if not sn or sn not in text[max(0, ci - 12):ci + 12]:
            continue
        out.append((i, k, resp, ci, text))
    return out


def _word_agreement(reader, lt: LayoutTimeline, only=None) -> Counter:
    """Counts comparing the word holding the release's char_index (strictly inside a word)
    with the word holding the caret :meth:`map_points` gives for the same absolute sample.

    Rows whose release caret is on the text's first or last rendered line are counted
    apart: the browser gives those lines' carets for any point above or below the text
    (the box's padding, the rating area under a short answer), where the point is on no
    word. Carets at a soft line start are ambiguous (the end of the line above or the
    start of the line) and are left out."""
    g = reader["gaze"].read(columns=["t", "x", "y"])
    m = lt.map_points(g["t"], g["x"], g["y"])
    c = Counter()
    spans_cache = {}
    for i, k, resp, ci, text in _truth_rows(reader, lt):
        if only is not None and not only[i]:
            continue
        spans = spans_cache.setdefault((k, resp), word_spans(text))
        truth = int(word_of_char(spans, np.array([ci]), caret=False)[0])
        if truth < 0:
            continue
        line = int(lt.lines_of_chars(k, resp, [ci])[0])
        lines = lt.n_lines(k, resp)
        if ci > 0 and text[ci - 1] != "\n" and ci in _soft_starts(lt, k, resp):
            continue
        edge = not (0 < line < lines - 1)
        ours = -1
        if m["turn"][i] == k and m["response"][i] == resp and m["char"][i] >= 0:
            ours = int(word_of_char(spans, np.array([m["char"][i]]), caret=False)[0])
        key = "edge" if edge else "inner"
        c[key + "_n"] += 1
        c[key + "_same"] += ours == truth
        c[key + "_adjacent"] += ours >= 0 and abs(ours - truth) <= 1
        c[key + "_same_line"] += m["turn"][i] == k and m["response"][i] == resp and m["line"][i] == line
    return c


def _soft_starts(lt: LayoutTimeline, k: int, resp: int) -> set:
    cache = lt.__dict__.setdefault("_test_line_starts", {})
    if (k, resp) not in cache:
        cache[(k, resp)] = set(lt.lines(k, resp)["char_start"].tolist())
    return cache[(k, resp)]


@pytest.fixture(scope="module")
def imported_pick(imported):
    _, out = imported
    pick = _session_pick(out)
    assert len(pick) >= 10, "too few imported sessions with gaze on the answers"
    return pick


def _rate(c: Counter, key: str, kind: str = "inner") -> float:
    return c[f"{kind}_{key}"] / max(1, c[f"{kind}_n"])


@pytest.mark.slow
def test_imported_gaze_lands_on_the_release_words(imported_pick):
    """THE acceptance check: absolute gaze mapped through the reconstructed layout lands on
    the word that holds the release's own char_index for the same sample.

    In-sample: the layout fitted on all rows (what the replay uses). Held out: every 5th
    gaze sample left out of the fit entirely, then mapped (what the layout predicts for a
    point it has not seen)."""
    total_in, total_out = Counter(), Counter()
    lines = []
    t_fit = 0.0
    for p in imported_pick:
        with SessionReader(p) as r:
            t0 = time.perf_counter()
            lt = LayoutTimeline.reconstruct_imported(r)
            t_fit += time.perf_counter() - t0
            assert lt.source == "reconstructed" and lt.turns()
            c_in = _word_agreement(r, lt)
            g = r["gaze"].read(columns=["page_ms"])
            held = np.arange(len(g)) % 5 == 2
            lt_out = LayoutTimeline.reconstruct_imported(r, exclude_page_ms=g["page_ms"][held])
            c_out = _word_agreement(r, lt_out, only=held)
        total_in.update(c_in)
        total_out.update(c_out)
        lines.append(f"  {p.name:38s} rows {c_in['inner_n']:5d}  same word {_rate(c_in, 'same'):.3f}  "
                     f"held out {_rate(c_out, 'same'):.3f} ({c_out['inner_n']})  "
                     f"pitch {lt.fit_report.get('pitch_px', math.nan):.1f}px")
    report = (
        f"\nimported sessions: {len(imported_pick)}, reconstruction {t_fit / len(imported_pick):.2f} s each\n"
        + "\n".join(lines)
        + f"\nin-sample  (n={total_in['inner_n']}): same word {_rate(total_in, 'same'):.3f}, "
          f"same or adjacent {_rate(total_in, 'adjacent'):.3f}, same line {_rate(total_in, 'same_line'):.3f}; "
          f"first/last-line rows (n={total_in['edge_n']}) same word {_rate(total_in, 'same', 'edge'):.3f}"
        + f"\nheld out   (n={total_out['inner_n']}): same word {_rate(total_out, 'same'):.3f}, "
          f"same or adjacent {_rate(total_out, 'adjacent'):.3f}, same line {_rate(total_out, 'same_line'):.3f}"
    )
    print(report)
    assert total_in["inner_n"] > 5000 and total_out["inner_n"] > 1000
    assert _rate(total_in, "same") >= 0.95, report
    assert _rate(total_in, "adjacent") >= 0.96, report
    assert _rate(total_in, "same_line") >= 0.97, report
    assert _rate(total_out, "same") >= 0.92, report
    assert _rate(total_out, "same_line") >= 0.94, report


@pytest.mark.slow
def test_imported_fixations_land_on_the_release_majority_word(imported_pick):
    """Fixations (I-DT of ifllm_lab.analysis.events) mapped at their midpoint with their
    centroid: the word they map to against the majority word of the release's char_index
    over the fixation's own samples. A centroid of samples spread over neighbouring words
    lands on one of them, so this rate is lower than the per-sample one by nature."""
    from ifllm_lab.analysis.events import detect

    same = adjacent = n = 0
    for p in imported_pick:
        with SessionReader(p) as r:
            lt = LayoutTimeline.reconstruct_imported(r)
            fix = detect(r, "idt").fixations()
            rows = _truth_rows(r, lt)
            g = r["gaze"].read(columns=["t"])
        mid = fix.onset + fix.duration / 2
        m = lt.map_points(mid, fix.x, fix.y)
        rt = np.array([g["t"][i] for i, *_ in rows])
        order = np.argsort(rt)
        rt = rt[order]
        rows = [rows[j] for j in order]
        spans = {}
        for j in range(len(fix)):
            a, b = np.searchsorted(rt, [fix.onset[j], fix.onset[j] + fix.duration[j]])
            votes = Counter()
            for i, k, resp, ci, text in rows[a:b]:
                sp = spans.setdefault((k, resp), word_spans(text))
                w = int(word_of_char(sp, np.array([ci]), caret=False)[0])
                if w >= 0:
                    votes[(k, resp, w)] += 1
            if not votes:
                continue
            (k, resp, w), cnt = votes.most_common(1)[0]
            if cnt * 2 <= sum(votes.values()):
                continue
            n += 1
            if m["turn"][j] == k and m["response"][j] == resp and m["char"][j] >= 0:
                ours = int(word_of_char(spans[(k, resp)], np.array([m["char"][j]]), caret=False)[0])
                same += ours == w
                adjacent += ours >= 0 and abs(ours - w) <= 1
    print(f"\nfixations with a majority word: {n}; maps to it: {same / n:.3f}; to it or a neighbour: "
          f"{adjacent / n:.3f}")
    assert n > 1000
    assert same / n >= 0.55
    assert adjacent / n >= 0.6


@pytest.mark.slow
def test_imported_layout_is_consistent(imported_pick):
    """Word boxes carry their text, lie inside their line and their box; paragraphs hold
    their lines; a box's viewport moves with the page (box origin from abs - rel)."""
    p = imported_pick[0]
    with SessionReader(p) as r:
        lt = LayoutTimeline.for_session(r)
        turns = r["turns"].read()
        g = r["gaze"].read(columns=["t", "x", "y", "page_ms"])
        gr = r["gaze_rel"].read(columns=["t", "response", "x", "y", "page_ms"])
    assert lt.source == "reconstructed"
    rep = lt.fit_report
    assert 10 < rep["font_px_per_em"] < 60 and 20 < rep["pitch_px"] < 200, rep
    for k in lt.turns():
        for resp in lt.responses:
            t0, t1 = lt.span(k, resp)
            if math.isnan(t0):
                continue
            b = lt.boxes_at((t0 + t1) / 2)
            b = b[(b["turn"] == k) & (b["response"] == resp)]
            text = str(turns["response_2"][k] if resp == 2 else turns["response_1"][k])
            w = b[b["level"] == int(LayoutLevel.WORD)]
            assert [t for t in w["text"]] == [text[a:e] for a, e in zip(w["char_start"], w["char_end"])]
            assert sorted(set(w["index"].tolist())) == list(range(len(text.split())))
            ln = b[b["level"] == int(LayoutLevel.LINE)]
            assert np.all(np.diff(ln["y0"]) > 0)
            rb = b[b["level"] == int(LayoutLevel.RESPONSE)]
            assert len(rb) == 1 and np.all(w["x1"] <= rb["x1"][0] + 1)
    # where a sample is inside a box, the box's origin at that time is abs - rel
    pm = {v: i for i, v in enumerate(g["page_ms"].tolist())}
    checked = 0
    for row in gr[(gr["x"] >= 0)][::25]:
        i = pm.get(row["page_ms"])
        if i is None:
            continue
        vps = [v for v in lt.viewports_at(g["t"][i]) if v["response"] == row["response"]]
        if not vps:
            continue
        assert vps[0]["x0"] == pytest.approx(g["x"][i] - row["x"], abs=1.0)
        assert vps[0]["y0"] == pytest.approx(g["y"][i] - row["y"], abs=1.0)
        checked += 1
    assert checked > 20


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
