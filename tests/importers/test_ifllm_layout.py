"""The layout of imported IFLLM sessions, rebuilt by the importer's reconstruction
(``ifllm_lab.importers.ifllm.layout``), checked against the release's own ``char_index``;
and how analysis finds it (``LayoutTimeline.for_session``) and the WebGazer detector
defaults."""
from __future__ import annotations

import math
import time
from collections import Counter

import h5py
import numpy as np
import pytest

from ifllm_lab.analysis.aoi import LayoutTimeline, word_of_char, word_spans
from ifllm_lab.importers.ifllm import reconstruct_layout
from ifllm_lab.session import SessionReader
from ifllm_lab.session.schema import LayoutLevel, Response


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
            lt = reconstruct_layout(r)
            t_fit += time.perf_counter() - t0
            assert lt.source == "reconstructed" and lt.turns()
            c_in = _word_agreement(r, lt)
            g = r["gaze"].read(columns=["page_ms"])
            held = np.arange(len(g)) % 5 == 2
            lt_out = reconstruct_layout(r, exclude_page_ms=g["page_ms"][held])
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
            lt = reconstruct_layout(r)
            events = detect(r, "idt")
            assert "IFLLM-release (WebGazer) defaults" in events.detector
            fix = events.fixations()
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


def test_importing_the_release_package_registers_its_sessions(tmp_path):
    """``import ifllm_lab.importers.ifllm`` tells analysis how to treat its sessions: the
    layout reconstruction (also for a file that only holds the release's own streams) and
    the WebGazer detector defaults, which the detector description names."""
    from ifllm_lab.analysis import sources
    from ifllm_lab.analysis.events import detect
    from ifllm_lab.importers.ifllm import WEBGAZER_PARAMS
    from ifllm_lab.session import SessionMeta, SessionWriter
    from ifllm_lab.synthetic.scanpath import scanpath_samples

    src = sources.registered()["ifllm-release"]
    assert src.reconstruct_layout is reconstruct_layout and src.detector_defaults is WEBGAZER_PARAMS
    assert set(src.streams) == {"gaze_rel", "mouse_rel"}
    s, _ = scanpath_samples(0)
    w = SessionWriter(tmp_path / "imported.h5", SessionMeta(source="ifllm-release"), flush_interval=0.05)
    w.put_rows("gaze", {"t": s.t, "x": s.x, "y": s.y, "valid": s.valid.astype(np.uint8)})
    w.close()
    with SessionReader(tmp_path / "imported.h5") as r:
        ev = detect(r, "idt")
        assert "I-DT dispersion=3deg min=0.15s" in ev.detector and "; IFLLM-release (WebGazer) defaults" in ev.detector
        assert "WebGazer" not in detect(r, "ivt").detector
        lt = LayoutTimeline.for_session(r)  # no turns: an empty reconstruction, and why
    assert lt.source == "reconstructed" and lt.turns() == [] and lt.fit_report["notes"] == ["no turns"]
