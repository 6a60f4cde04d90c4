"""The one hit test (``ifllm_lab.analysis.layout.TextHitTest``): one point at a time (the live
mouse) and many at once (offline analysis) give the same answer, and that answer follows the
documented rules, checked against a plain search over every line and fragment."""
from __future__ import annotations


import numpy as np
import pytest

from ifllm_lab.analysis.layout import LayoutBoxes, TextHitTest
from ifllm_lab.session.schema import LayoutLevel


def _texts(seed: int, n_groups: int = 4):
    """Random laid-out texts: per group, paragraphs of lines whose bands tile the paragraph
    (blank space between paragraphs), a column per paragraph, words along each line with
    spaces between them; lines are given in shuffled order (the table sorts them)."""
    rng = np.random.default_rng(seed)
    lines, frags = [], []
    for g in range(n_groups):
        y = rng.uniform(-50, 50)
        n_line = 0
        for p in range(rng.integers(1, 4)):
            x0 = rng.uniform(0, 40)
            x1 = x0 + rng.uniform(200, 500)
            pitch = rng.uniform(20, 45)
            for _ in range(rng.integers(1, 5)):
                li = len(lines)
                lines.append((g, y, y + pitch, x0, x1, p, n_line))
                x = x0 + rng.uniform(0, 10)
                w = 0
                while x < x1 - 30:
                    width = rng.uniform(8, 60)
                    frags.append((li, x, min(x + width, x1), w))
                    x += width + rng.uniform(3, 12)
                    w += 1
                y += pitch
                n_line += 1
            y += rng.uniform(0, 30)  # the blank line between two paragraphs
    lines = np.array(lines)
    order = rng.permutation(len(lines))
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    lines = lines[order]
    frags = np.array(frags)
    return lines, np.column_stack((inv[frags[:, 0].astype(int)], frags[:, 1:]))


def _table(lines, frags) -> TextHitTest:
    return TextHitTest(
        line_group=lines[:, 0].astype(int), line_y0=lines[:, 1], line_y1=lines[:, 2], line_x0=lines[:, 3],
        line_x1=lines[:, 4], line_paragraph=lines[:, 5].astype(int), line_index=lines[:, 6].astype(int),
        line_char_start=np.zeros(len(lines), int), line_char_end=np.zeros(len(lines), int),
        frag_line=frags[:, 0].astype(int), frag_x0=frags[:, 1], frag_x1=frags[:, 2], frag_word=frags[:, 3].astype(int),
    )


def _plain(lines, frags, g, x, y) -> tuple[int, int, int]:
    """(paragraph, line, word) by looking at every line and fragment: the rules as written."""
    on = np.flatnonzero((lines[:, 0] == g) & (lines[:, 1] <= y) & (y < lines[:, 2])
                        & (lines[:, 3] <= x) & (x < lines[:, 4]))
    if not len(on):
        return -1, -1, -1
    assert len(on) == 1  # bands do not overlap
    li = on[0]
    w = np.flatnonzero((frags[:, 0] == li) & (frags[:, 1] <= x) & (x < frags[:, 2]))
    return int(lines[li, 5]), int(lines[li, 6]), int(frags[w[0], 3]) if len(w) else -1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_point_and_many_points_follow_the_rules(seed):
    lines, frags = _texts(seed)
    hits = _table(lines, frags)
    rng = np.random.default_rng(100 + seed)
    n = 4000
    g = rng.integers(0, 4, n)
    x = rng.uniform(-20, 560, n)
    y = rng.uniform(-80, 600, n)
    # and points on every edge: band tops and bottoms, columns, fragment ends
    ex = np.concatenate((frags[:, 1], frags[:, 2], frags[:, 2] - 1e-9, lines[:, 3], lines[:, 4]))
    ey = np.concatenate([(lines[frags[:, 0].astype(int), 1] + lines[frags[:, 0].astype(int), 2]) / 2] * 3
                        + [lines[:, 1], lines[:, 2] - 1e-9])
    eg = np.concatenate([lines[frags[:, 0].astype(int), 0]] * 3 + [lines[:, 0]] * 2).astype(int)
    g, x, y = np.concatenate((g, eg)), np.concatenate((x, ex)), np.concatenate((y, ey))
    many = hits.locate(g, x, y, chars=False)
    plain = [_plain(lines, frags, *p) for p in zip(g.tolist(), x.tolist(), y.tolist())]
    assert [(int(a), int(b), int(c)) for a, b, c in zip(many["paragraph"], many["line"], many["word"])] == plain
    one = [hits.at(xx, yy, gg) for gg, xx, yy in zip(g.tolist(), x.tolist(), y.tolist())]
    assert one == [(p, w) for p, _, w in plain]
    # the answers are not trivially empty
    assert sum(w >= 0 for *_, w in plain) > 500 and sum(p >= 0 and w < 0 for p, _, w in plain) > 200


def test_a_point_above_the_first_line_of_the_first_text_is_on_no_line():
    lines, frags = _texts(3, n_groups=2)
    hits = _table(lines, frags)
    g0 = lines[lines[:, 0] == 0]
    top = g0[np.argmin(g0[:, 1])]
    x = (top[3] + top[4]) / 2
    assert hits.at(x, top[1] - 1.0, 0) == (-1, -1)
    assert hits.locate(0, [x], [top[1] - 1.0])["line"].tolist() == [-1]
    assert hits.locate(0, [x], [top[1]])["line"].tolist() == [int(top[6])]


def test_carets_are_the_nearest_character_boundary():
    # one line "ab cd" at 10 px per character from x=100: knots at every boundary
    hits = TextHitTest(line_group=[0], line_y0=[0.0], line_y1=[30.0], line_x0=[0.0], line_x1=[400.0],
                       line_paragraph=[0], line_index=[0], line_char_start=[0], line_char_end=[5],
                       frag_line=[0, 0], frag_x0=[100.0, 130.0], frag_x1=[120.0, 150.0], frag_word=[0, 1],
                       knot_line=[0] * 6, knot_x=[100.0 + 10 * i for i in range(6)], knot_char=list(range(6)))
    got = hits.locate(0, [50.0, 104.0, 106.0, 125.0, 149.0, 300.0], [10.0] * 6)
    assert got["char"].tolist() == [0, 0, 1, 3, 5, 5]
    assert got["word"].tolist() == [-1, 0, 0, -1, 1, -1]
    assert hits.chars([0], [112.0]).tolist() == [1]
    empty = TextHitTest(line_group=[], line_y0=[], line_y1=[], line_x0=[], line_x1=[], line_paragraph=[],
                        line_index=[], line_char_start=[], line_char_end=[], frag_line=[], frag_x0=[], frag_x1=[],
                        frag_word=[])
    assert empty.at(1.0, 1.0) == (-1, -1) and empty.locate(0, [1.0], [1.0])["word"].tolist() == [-1]


def test_layout_boxes_levels_and_rows():
    b = LayoutBoxes(
        response=1, level=np.array([LayoutLevel.RESPONSE, LayoutLevel.WORD, LayoutLevel.WORD], np.uint8),
        index=np.array([0, 0, 1], np.int32), paragraph=np.array([-1, 0, 0], np.int32),
        x0=np.array([0.0, 10.0, 50.0]), y0=np.zeros(3), x1=np.array([100.0, 40.0, 90.0]), y1=np.full(3, 20.0),
        char_start=np.array([0, 0, 4], np.int32), char_end=np.array([9, 3, 9], np.int32), text=["", "one", "three"],
        scroll_x=0.0, scroll_y=12.0,
    )
    words = b.at(LayoutLevel.WORD)
    assert len(words) == 2 and words.text == ["one", "three"] and words.index.tolist() == [0, 1]
    rows = b.rows(t=1.5, snapshot=3, turn=2)
    assert rows["x0"].dtype == np.float32 and rows["scroll_y"].tolist() == [12.0] * 3
    assert rows["response"].tolist() == [1, 1, 1] and rows["snapshot"].tolist() == [3, 3, 3]
