"""AOI reading measures on a hand-made scanpath, heat maps and scanpaths."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from ifllm_lab.analysis.aoi import LayoutTimeline
from ifllm_lab.analysis.heatmap import heatmap, scanpath
from ifllm_lab.analysis.metrics import (
    Fixations, fixations_of, map_fixations, response_metrics, turn_metrics, word_metrics,
)
from ifllm_lab.session import SessionClock, SessionMeta, SessionReader, SessionWriter
from ifllm_lab.session.schema import EventKind

from tests.support.recorded_layout import TEXT_1, TEXT_2, layout_rows, word_centre


@pytest.fixture
def session(tmp_path):
    """One pairwise turn (question at t=1, first token shown at t=2.5), both answers laid
    out once at t=2 and never scrolled."""
    path = tmp_path / "metrics.h5"
    w = SessionWriter(path, SessionMeta(participant="m"), clock=SessionClock(), flush_interval=0.05)
    w.put_rows("turns", {"t": [1.0], "turn": [0], "mode": [1], "prompt": ["q"], "response_1": [TEXT_1],
                         "response_2": [TEXT_2], "t_first_token": [2.5], "t_end": [30.0]})
    r1 = layout_rows(TEXT_1, t=2.0, snapshot=0, turn=0, response=1, left=100, top=200, scroll_y=0, cols=30)
    r2 = layout_rows(TEXT_2, t=2.0, snapshot=0, turn=0, response=2, left=500, top=200, scroll_y=0, cols=30)
    w.put_rows("layout", {k: r1[k] + r2[k] for k in r1})
    w.close()
    return path, r1, r2


def _scanpath(r1, r2):
    """(onset, duration, response, word) of the hand-made scanpath; word -1 = the gap right
    after word 0, response 0 = outside every view."""
    return [
        (3.0, 0.20, 1, 0), (3.3, 0.25, 1, 1), (3.6, 0.30, 1, 2),
        (4.0, 0.20, 1, 1),  # back one word, same line: a word regression
        (4.3, 0.20, 1, 5),  # next line
        (4.6, 0.20, 1, 2),  # back to line 0: word and line regression
        (5.0, 0.30, 2, 0), (5.4, 0.20, 2, 1),  # the other answer: visit 1 of response 1 ends
        (5.7, 0.20, 0, 0),  # outside every view
        (6.0, 0.40, 1, 9),  # revisit 1 (first of its visit: no regression)
        (6.5, 0.10, 1, 0),  # regression (word and line) inside the visit
        (6.7, 0.20, 2, 1),  # revisit of response 2
        (7.0, 0.15, 1, -1),  # response 1 but between two words: revisit 2
    ]


def _fixations(r1, r2):
    on, du, xs, ys = [], [], [], []
    for onset, dur, resp, word in _scanpath(r1, r2):
        if resp == 0:
            x, y = 40.0, 150.0
        elif word < 0:
            x, y = word_centre(r1, 0)
            x += 0.5 * 10 * len(TEXT_1.split()[0]) + 3.0  # 3 px into the space after it
        else:
            x, y = word_centre(r1 if resp == 1 else r2, word)
        on.append(onset)
        du.append(dur)
        xs.append(x)
        ys.append(y)
    return Fixations(on, du, xs, ys)


def test_response_metrics_on_a_hand_made_scanpath(session):
    path, r1, r2 = session
    with SessionReader(path) as r:
        lt = LayoutTimeline.for_session(r)
        fix = _fixations(r1, r2)
        rows = response_metrics(fix, lt, r)
    by = {row["response"]: row for row in rows}
    assert set(by) == {1, 2}
    a, b = by[1], by[2]
    assert a["aoi"] == "response 1" and a["turn"] == 0
    assert a["fixations"] == 9
    assert a["dwell_s"] == pytest.approx(0.2 + 0.25 + 0.3 + 0.2 + 0.2 + 0.2 + 0.4 + 0.1 + 0.15)
    assert a["ttff_s"] == pytest.approx(3.0 - 2.5)  # from the first token, not the question
    assert a["first_fixation_s"] == pytest.approx(3.0)
    assert a["visits"] == 3 and a["revisits"] == 2
    assert a["n_words"] == len(TEXT_1.split())
    assert a["words_fixated"] == 5  # 0, 1, 2, 5, 9
    assert a["coverage"] == pytest.approx(5 / len(TEXT_1.split()))
    assert a["regressions"] == 3 and a["line_regressions"] == 2
    assert a["regression_rate"] == pytest.approx(3 / 6)  # 5 transitions in visit 1, 1 in visit 2
    assert a["mean_fixation_s"] == pytest.approx(a["dwell_s"] / 9)
    assert b["fixations"] == 3 and b["dwell_s"] == pytest.approx(0.7)
    assert b["ttff_s"] == pytest.approx(2.5)
    assert b["visits"] == 2 and b["revisits"] == 1
    assert b["coverage"] == pytest.approx(2 / len(TEXT_2.split()))
    assert b["regressions"] == 0 and b["line_regressions"] == 0


def test_word_metrics(session):
    path, r1, r2 = session
    with SessionReader(path) as r:
        lt = LayoutTimeline.for_session(r)
    wm = word_metrics(_fixations(r1, r2), lt, 0, 1)
    assert len(wm) == len(TEXT_1.split()) and list(wm["text"]) == TEXT_1.split()
    by = {int(w["word"]): w for w in wm}
    assert by[0]["fixation_count"] == 2 and by[0]["total_fixation_s"] == pytest.approx(0.3)
    assert by[0]["first_fixation_s"] == pytest.approx(0.2) and by[0]["first_onset_s"] == pytest.approx(3.0)
    assert by[0]["regression_in"] == 1
    assert by[1]["total_fixation_s"] == pytest.approx(0.45) and by[1]["first_fixation_s"] == pytest.approx(0.25)
    assert by[1]["regression_in"] == 1
    assert by[2]["total_fixation_s"] == pytest.approx(0.5) and by[2]["regression_in"] == 1
    assert by[5]["fixation_count"] == 1 and by[5]["line"] == 1
    assert by[9]["total_fixation_s"] == pytest.approx(0.4) and by[9]["regression_in"] == 0
    never = wm[wm["fixation_count"] == 0]
    assert len(never) == len(wm) - 5 and np.isnan(never["first_fixation_s"]).all()
    assert never["total_fixation_s"].sum() == 0
    # the time window keeps the later fixations out
    early = word_metrics(_fixations(r1, r2), lt, 0, 1, t1=4.5)
    assert early["fixation_count"].sum() == 5


def test_turn_metrics_accepts_replay_objects_and_events(session):
    from ifllm_lab.analysis.events import Events

    path, r1, r2 = session
    fix = _fixations(r1, r2)
    n = len(fix)
    # an Events table with a saccade and a blink mixed in: only fixations count
    kind = np.r_[np.full(n, int(EventKind.FIXATION)), int(EventKind.SACCADE), int(EventKind.BLINK)]
    ev = Events(kind, np.r_[fix.onset, 3.25, 3.55], np.r_[fix.duration, 0.05, 0.05], np.r_[fix.x, 300, 300],
                np.r_[fix.y, 220, 220], np.full(n + 2, np.nan), np.full(n + 2, np.nan), "hand-made")
    assert len(fixations_of(ev)) == n
    with SessionReader(path) as r:
        lt = LayoutTimeline.for_session(r)
        data = SimpleNamespace(reader=r)
        rows = turn_metrics(ev.fixations(), lt, data, SimpleNamespace(turn=0))
        assert [row["aoi"] for row in rows] == ["response 1", "response 2"]
        assert rows[0]["fixations"] == 9 and rows[0]["revisits"] == 2
        assert turn_metrics(ev, lt, r, 5) == []  # a turn without geometry
        # without a reader: the layout's own spans; TTFF from the first geometry (t=2)
        no_reader = response_metrics(fix, lt)
        assert no_reader[0]["ttff_s"] == pytest.approx(1.0)
    m = map_fixations(fix, lt)
    assert m["mid"][0] == pytest.approx(3.1) and m["word"][0] == 0


def test_metrics_without_fixations(session):
    path, r1, r2 = session
    with SessionReader(path) as r:
        lt = LayoutTimeline.for_session(r)
        rows = response_metrics(Fixations([], [], [], []), lt, r)
    assert all(row["fixations"] == 0 and math.isnan(row["ttff_s"]) and row["revisits"] == 0 for row in rows)
    assert all(row["coverage"] == 0 for row in rows)


# ------------------------------------------------------------------------------------------
# heat maps and scanpaths
# ------------------------------------------------------------------------------------------
def test_heatmap_conserves_mass_and_puts_the_peak_on_the_fixation():
    rng = np.random.default_rng(3)
    x = np.r_[rng.uniform(0, 1920, 500), 1, 1919, 5, 3000, np.nan]
    y = np.r_[rng.uniform(0, 1080, 500), 1, 1079, 1075, 10, 5]
    w = np.r_[rng.uniform(0.1, 0.5, 500), 0.3, 0.3, 0.3, 5.0, 5.0]
    hm = heatmap(x, y, width=1920, height=1080, sigma_px=40, weights=w)
    assert hm.dtype == np.float32 and hm.shape == (270, 480)
    on_screen = w[:-2].sum()  # the point off screen and the NaN are left out
    assert hm.sum() == pytest.approx(on_screen, rel=0.01)
    one = heatmap([600.0], [400.0], width=1920, height=1080, sigma_px=30, scale=0.25)
    i, j = np.unravel_index(np.argmax(one), one.shape)
    assert (j, i) == (150, 100)  # the cell holding (600, 400)
    assert one.sum() == pytest.approx(1.0, rel=1e-3)
    # a point at a corner keeps its mass (the kernel folds back at the edges)
    corner = heatmap([0.5], [0.5], width=400, height=300, sigma_px=60, scale=0.5)
    assert corner.sum() == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize("sigma", [15.0, 40.0, 80.0])
def test_heatmap_sigma_is_honoured(sigma):
    scale = 0.25
    hm = heatmap([960.0], [540.0], width=1920, height=1080, sigma_px=sigma, scale=scale).astype(np.float64)
    yy, xx = np.mgrid[0:hm.shape[0], 0:hm.shape[1]]
    cx, cy = (xx + 0.5) / scale, (yy + 0.5) / scale  # cell centres, screen px
    m = hm.sum()
    mx, my = (hm * cx).sum() / m, (hm * cy).sum() / m
    sx = math.sqrt((hm * (cx - mx) ** 2).sum() / m)
    sy = math.sqrt((hm * (cy - my) ** 2).sum() / m)
    assert mx == pytest.approx(962.0, abs=2.5) and my == pytest.approx(542.0, abs=2.5)
    # binning into 4 px cells adds a uniform (4 px wide) spread: var = sigma^2 + 4^2 / 12
    expected = math.sqrt(sigma ** 2 + (1 / scale) ** 2 / 12)
    assert sx == pytest.approx(expected, rel=0.03) and sy == pytest.approx(expected, rel=0.03)


def test_heatmap_of_an_hour_of_gaze_keeps_every_sample_inside():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-100, 2020, 216_000), rng.uniform(-100, 1180, 216_000)
    hm = heatmap(x, y, width=1920, height=1080, sigma_px=40)  # timed by `ifllm-lab bench analysis`
    inside = ((x >= 0) & (x < 1920) & (y >= 0) & (y < 1080)).sum()
    assert hm.sum() == pytest.approx(inside, rel=0.01)
    with pytest.raises(ValueError):
        heatmap([1.0], [1.0], width=0, height=10, sigma_px=5)


def test_scanpath_orders_numbers_and_sizes_fixations():
    sp = scanpath([2.0, 1.0, 3.0, 4.0], [0.25, 1.0, 0.0625, 0.1], [10, 20, 30, np.nan], [1, 2, 3, 4])
    assert sp["order"].tolist() == [1, 2, 3]
    assert sp["onset"].tolist() == [1.0, 2.0, 3.0]
    assert sp["x"].tolist() == [20, 10, 30] and sp["y"].tolist() == [2, 1, 3]
    assert sp["radius"] == pytest.approx([24.0, 12.0, 6.0])  # 12 px at 0.25 s, ~ sqrt(duration)
    assert sp["segments"].tolist() == [[20, 2, 10, 1], [10, 1, 30, 3]]
    empty = scanpath([], [], [], [])
    assert len(empty["order"]) == 0 and empty["segments"].shape == (0, 4)
