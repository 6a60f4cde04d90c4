"""Feature rows of real imported IFLLM sessions and of a synthetic recorded session; the
registry's docs; the ``features`` command."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ifllm_lab.importers.ifllm  # noqa: F401  (imported sessions: layout reconstruction)
from ifllm_lab.features.extract import session_features
from ifllm_lab.features.registry import FEATURES, docs_table, features_of
from ifllm_lab.features.table import read_table
from ifllm_lab.session import SessionReader
from ifllm_lab.synthetic.session import make_replay_session
from tests.support.child_process import child_env
from tests.support.repo import REPO

CLI = [sys.executable, "-m", "ifllm_lab"]


@pytest.fixture(scope="module")
def imported_pairs(imported):
    """Imported sessions: (pairwise, pointwise) with the most gaze."""
    _, out = imported
    best: dict[str, tuple[int, str]] = {}
    for p in sorted(Path(out).glob("*.h5")):
        with SessionReader(p) as r:
            if not len(r["turns"]) or "gaze" not in r:
                continue
            mode = "pairwise" if r["turns"].column("response_2")[0] else "pointwise"
            n = len(r["gaze"])
        if n > best.get(mode, (0, ""))[0]:
            best[mode] = (n, str(p))
    return best["pairwise"][1], best["pointwise"][1]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("features") / "recorded.h5"
    make_replay_session(str(path), seconds=600, turn_s=150)
    return str(path)


def test_imported_pairwise_rows_ids_labels_and_what_is_undefined(imported_pairs):
    path = imported_pairs[0]
    res = session_features(path)
    with SessionReader(path) as r:
        turns = r["turns"].read()
    assert len(res.responses) == 2 * len(turns) and len(res.comparisons) == len(turns)
    for row, tr in zip(res.comparisons, turns):
        assert row["preference"] == int(tr["preference"]) and row["model_1"] == tr["model_1"]
    by = {(r["turn"], r["response"]): r for r in res.responses}
    for tr in turns:
        assert by[(int(tr["turn"]), 1)]["likert"] == int(tr["likert_1"])
        assert by[(int(tr["turn"]), 2)]["likert"] == int(tr["likert_2"])
    # the release logged no clicks or scrolls and no validation in degrees: said, and NaN, never 0
    for need in ("clicks", "scroll", "mouse_events", "validation", "words"):
        assert need in res.undefined, res.undefined
    undefined = res.undefined_features()
    assert {"mouse_clicks", "mouse_scrolls", "q_validation_deg", "fix_word_coverage"} <= set(undefined)
    for row in res.responses:
        assert all(math.isnan(row[k]) for k in undefined)
    # and what it has is there
    dwell = np.array([r["gaze_dwell_s"] for r in res.responses])
    assert np.isfinite(dwell).all() and dwell.sum() > 10
    assert np.isfinite([r["mouse_path_px"] for r in res.responses]).all()
    assert all(r["text_words"] > 10 for r in res.responses)
    for c in res.comparisons:
        a, b = by[(c["turn"], 1)], by[(c["turn"], 2)]
        assert c["d_gaze_dwell_s"] == pytest.approx(a["gaze_dwell_s"] - b["gaze_dwell_s"])
        assert c["d_text_words"] == a["text_words"] - b["text_words"]
        assert c["c_ctx_question_chars"] == a["ctx_question_chars"]
        if a["gaze_dwell_s"] + b["gaze_dwell_s"] > 0:
            assert a["gaze_dwell_share"] + b["gaze_dwell_share"] == pytest.approx(1.0)
            assert c["gaze_last_look"] in (1.0, -1.0) and c["gaze_last_look_s"] > 0


def test_imported_dwell_agrees_with_the_release_own_answer_boxes(imported_pairs):
    """The release logged, per gaze sample, whether it fell in answer 1's or answer 2's
    box (``gaze_rel``); the dwell from the rebuilt layout must mostly agree on which answer
    got more gaze."""
    path = imported_pairs[0]
    res = session_features(path)
    with SessionReader(path) as r:
        rel = r["gaze_rel"].read(columns=["t", "response", "x"])
        turns = r["turns"].read()
    agree = n = 0
    for k, tr in enumerate(turns):
        t0 = float(tr["t"])
        t1 = float(turns["t"][k + 1]) if k + 1 < len(turns) else math.inf
        inside = rel[(rel["t"] >= t0) & (rel["t"] < t1) & (rel["x"] >= 0)]
        c1, c2 = int((inside["response"] == 1).sum()), int((inside["response"] == 2).sum())
        cmp = next(c for c in res.comparisons if c["turn"] == int(tr["turn"]))
        if abs(c1 - c2) < 10 or not np.isfinite(cmp["d_gaze_dwell_s"]):
            continue
        n += 1
        agree += (c1 > c2) == (cmp["d_gaze_dwell_s"] > 0)
    assert n >= 2 and agree / n >= 0.7, (agree, n)


def test_imported_pointwise_has_no_comparisons(imported_pairs):
    res = session_features(imported_pairs[1])
    assert res.responses and not res.comparisons
    assert all(r["response"] == 0 and r["mode"] == "pointwise" for r in res.responses)
    assert all(r["ctx_shown_left"] == 1.0 for r in res.responses)


def test_recorded_session_defines_clicks_scrolls_and_fixations(recorded):
    res = session_features(recorded)
    assert len(res.comparisons) == 4 and len(res.responses) == 8
    for need in ("clicks", "scroll", "mouse_events", "gaze", "layout", "fixations"):
        assert need not in res.undefined, res.undefined
    r0 = res.responses[0]
    assert r0["mouse_clicks"] >= 1 and r0["mouse_scrolls"] >= 1
    assert r0["fix_count"] > 10 and 0 < r0["fix_mean_s"] < 1
    assert 0 < r0["gaze_lines_share"] <= 1 and 0 < r0["gaze_reach"] <= 1
    assert r0["ctx_decision_s"] == pytest.approx(150 - 10 - 1.0)  # rated at t + 140, answer shown at t + 1


def test_the_docs_are_the_registry():
    doc = (REPO / "docs" / "features.md").read_text(encoding="utf-8")
    assert doc == docs_table(), "docs/features.md is stale: run ifllm-lab features --docs docs/features.md"
    for f in features_of():
        assert f"`{f.name}`" in doc
    assert len(FEATURES) > 60


def test_features_command_csv_parquet_and_bad_input(imported_pairs, recorded, tmp_path):
    folder = tmp_path / "sessions"
    folder.mkdir()
    for p in (*imported_pairs, recorded):
        (folder / Path(p).name).write_bytes(Path(p).read_bytes())
    (folder / "broken.h5").write_bytes(b"not a session")
    out = tmp_path / "rows.csv"
    p = subprocess.run([*CLI, "features", str(folder), "--out", str(out), "--json", "--quiet"], env=child_env(),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 1, p.stderr  # the broken file is skipped and named
    assert "broken.h5" in p.stderr and "Traceback" not in p.stderr
    summary = json.loads(p.stdout)
    table = read_table(str(out))
    assert summary["sessions"] == 3 and summary["rows"] == len(table["session"])
    assert "clicks" in summary["undefined"]
    assert set(table["participant"]) == {Path(imported_pairs[0]).stem.split("_task")[0],
                                         Path(imported_pairs[1]).stem.split("_task")[0], "P-SYNTHETIC"}
    pq = tmp_path / "cmp.parquet"
    p = subprocess.run([*CLI, "features", str(folder / Path(recorded).name), "--out", str(pq), "--level",
                        "comparison", "--quiet"], env=child_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    t = read_table(str(pq))
    assert len(t["session"]) == 4 and "d_gaze_dwell_s" in t and np.isfinite(t["d_gaze_dwell_s"]).all()
    # nothing readable, a missing output folder: exit 2, nothing written
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["features", str(empty), "--out", str(tmp_path / "x.csv")],
                 ["features", str(folder / "broken.h5"), "--out", str(tmp_path / "y.csv")],
                 ["features", str(folder), "--out", str(tmp_path / "nope" / "z.csv")]):
        p = subprocess.run([*CLI, *args, "--quiet"], env=child_env(), capture_output=True, text=True, timeout=600)
        assert p.returncode == 2 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not list(tmp_path.glob("*.csv.partial")) and not (tmp_path / "x.csv").exists()
    assert not (tmp_path / "y.csv").exists()
