"""Reward models: datasets, honest evaluation, model files and the CLI, on real session
files (synthetic recorded sessions whose signal is known, and the real IFLLM data)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from ifllm_lab.cli import main
from ifllm_lab.reward.data import DataError, QualityRule, load_dataset, quality_filter
from ifllm_lab.reward.evaluate import _splits, accuracy_ci, difference_ci, participant_bias
from ifllm_lab.reward.model import SCREENED_KS, ModelError, RewardModel, fit_platt, labels, set_columns
from ifllm_lab.reward.store import FORMAT, ModelFileError, load_model, read_info, save_model
from ifllm_lab.reward.train import TrainSettings, train
from ifllm_lab.session import SessionMeta, SessionWriter
from ifllm_lab.synthetic.session import make_study_session

FAST = TrainSettings(kinds=("logistic",), folds=4, paper_protocol=False, importance=False, n_boot=500)


def _study(folder: Path, participants: int, signal: float, *, turns: int = 10, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(participants):
        make_study_session(str(folder / f"p{i:02d}.h5"), f"P{i:02d}", turns=turns, signal=signal, seed=seed + i)
    return folder


@pytest.fixture(scope="module")
def strong(tmp_path_factory) -> Path:
    return _study(tmp_path_factory.mktemp("strong"), 8, 0.9)


@pytest.fixture(scope="module")
def strong_data(strong, tmp_path_factory):
    return load_dataset([str(strong)], cache_dir=str(tmp_path_factory.mktemp("cache")), workers=1)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("reward-cache"))


# -- what the models learn --------------------------------------------------------------------
def test_implicit_features_find_a_known_signal_and_text_does_not(strong_data):
    rep = train(strong_data, FAST)
    acc = {s: rep.results["logistic"][s]["acc"] for s in ("text", "gaze", "mouse", "implicit", "fused")}
    assert rep.n_train == 80 and rep.participants == 8
    assert acc["implicit"] > 0.75 and acc["gaze"] > 0.7, acc
    assert acc["text"] < 0.7, acc  # the answers' texts do not depend on the choice
    lo, hi = rep.results["logistic"]["implicit"]["ci"]
    assert lo <= acc["implicit"] <= hi and hi - lo < 0.4
    d, dlo, dhi = rep.fused_minus_text
    assert d > 0 and dlo <= d <= dhi
    assert rep.model is not None and rep.model.feature_set == "fused"
    s = rep.summary()
    assert s["implicit_auc"] > 0.8 and 0.5 <= s["majority_acc"] < 0.7
    assert rep.confusion[0][0] + rep.confusion[0][1] + rep.confusion[1][0] + rep.confusion[1][1] == 80


def test_without_signal_implicit_features_stay_near_chance(tmp_path, cache):
    data = load_dataset([str(_study(tmp_path / "none", 8, 0.0, seed=50))], cache_dir=cache, workers=1)
    rep = train(data, TrainSettings(kinds=("logistic",), sets=("implicit",), keep_set="implicit", folds=4,
                                    paper_protocol=False, importance=False, n_boot=500))
    r = rep.results["logistic"]["implicit"]
    assert r["acc"] < 0.7 and r["ci"][0] < 0.5 + 0.05, r


def test_grouped_folds_never_share_a_participant():
    rng = np.random.default_rng(1)
    groups = np.repeat([f"P{i}" for i in range(12)], 9)
    y = rng.integers(0, 2, len(groups))
    splits, k = _splits(y, groups, "participant", 5, 0)
    assert k == 5
    seen = []
    for tr, te in splits:
        assert not set(groups[tr]) & set(groups[te])
        seen += list(te)
    assert sorted(seen) == list(range(len(groups)))  # every row is tested once
    with pytest.raises(ModelError, match="at least 2 participants"):
        _splits(y[:9], groups[:9], "participant", 5, 0)


def test_bootstrap_intervals_resample_participants():
    groups = np.repeat([f"P{i}" for i in range(40)], 10)
    correct = (np.random.default_rng(0).random(400) < 0.6).astype(float)
    lo, hi = accuracy_ci(correct, groups)
    assert lo < correct.mean() < hi and 0.03 < hi - lo < 0.2
    # one participant's turns all right or all wrong: far less information than 400 rows
    clustered = np.repeat((np.arange(40) % 5 < 3).astype(float), 10)
    clo, chi = accuracy_ci(clustered, groups)
    assert chi - clo > hi - lo
    d, dlo, dhi = difference_ci(correct, correct, groups)
    assert d == dlo == dhi == 0.0


def test_pairwise_predictions_are_antisymmetric(strong_data):
    m = RewardModel("pairwise", "boosting", "fused").fit(strong_data.comparisons)
    X = m.design(strong_data.comparisons)
    p = m.raw_proba(X)
    np.testing.assert_allclose(p + m.raw_proba(m._mirror(X)), 1.0, atol=1e-9)
    # calibration keeps it: a pairwise Platt scaling has no offset (it would move the 0.5 threshold)
    _rows, y = labels(strong_data.comparisons, "pairwise")
    m.platt = fit_platt(p, y, symmetric=True)
    assert m.platt[1] == 0.0 and m.platt[0] > 0
    np.testing.assert_allclose(m.calibrate(p) + m.calibrate(1.0 - p), 1.0, atol=1e-9)
    assert fit_platt(p, np.where(p > 0.9, 1, y))[1] != 0.0  # the pointwise scaling keeps its offset
    cols = set_columns(strong_data.comparisons, "pairwise", "text", "logistic")
    assert any(c.startswith("r_text_") for c in cols) and "ctx_answer1_side" in cols
    assert not any(c.startswith(("gaze_", "r_gaze", "r_mouse", "q_")) for c in cols)


def test_the_paper_forest_learns_a_known_participants_side_and_mirrored_kinds_cannot(tmp_path, cache):
    # every participant always picks the same side, whatever the answers: as their trackers'
    # rates go up, two pick left, two right, two left, two right. The rate (a quality feature)
    # tells them apart, so a model that has seen them can learn each one's side, while a new
    # participant's rate lies between one of each side; the mirrored kinds cannot learn a
    # side at all
    from ifllm_lab.reward.evaluate import cross_validate

    for i in range(8):
        make_study_session(str(tmp_path / f"p{i}.h5"), f"P{i}", turns=16, signal=0.0, gaze_hz=20.0 + 3 * i, seed=i)
    t = dict(load_dataset([str(tmp_path)], cache_dir=cache, workers=1).comparisons)
    parts = sorted(set(t["participant"].tolist()))
    left_lover = {p: (i // 2) % 2 == 0 for i, p in enumerate(parts)}
    t["preference"] = np.array([1 if left_lover[p] else 2 for p in t["participant"].tolist()])
    assert (t["ctx_answer1_side"] == 1).all()  # answer 1 on the left: its preference is the left's
    acc = {}
    for kind in ("paper-forest", "forest"):
        for protocol in ("question", "participant"):
            oof, _ = cross_validate(t, "pairwise", kind, "gaze", protocol=protocol, folds=4, seed=0)
            acc[kind, protocol] = oof.accuracy
    assert acc["paper-forest", "question"] >= 0.75  # participants mixed: their side is learnt
    assert acc["paper-forest", "participant"] <= 0.5  # new participants: their side cannot be known
    assert acc["forest", "question"] <= 0.62  # mirrored: a side bias is invisible
    m = RewardModel("pairwise", "paper-forest", "gaze").fit(t)
    assert not m.mirrored and RewardModel("pairwise", "forest", "gaze").mirrored
    X = m.design(t)
    assert np.abs(m.raw_proba(X) + m.raw_proba(m._mirror(X)) - 1.0).max() > 0.5  # not antisymmetric
    loaded, _info = load_model(save_model(m, str(tmp_path / "model")))  # its file works like any other
    assert loaded.kind == "paper-forest" and not loaded.mirrored
    np.testing.assert_array_equal(loaded.predict_proba(t), m.predict_proba(t))


def test_repeated_cross_validation_averages_runs_on_other_folds(strong_data):
    import dataclasses

    base = dataclasses.replace(FAST, sets=("text", "implicit", "fused"))
    three = train(strong_data, dataclasses.replace(base, repeats=3)).summary()
    assert three["repeats"] == 3
    for fs in ("text", "implicit", "fused"):
        r = three["by_model"]["logistic"][fs]
        assert len(r["repeat_accs"]) == 3
        assert r["acc"] == pytest.approx(np.mean(r["repeat_accs"]), abs=1e-4)  # every row's hits averaged
        assert r["ci"][0] <= r["acc"] <= r["ci"][1]
        for rep in range(3):  # repeat k is the plain run with seed + k
            one = train(strong_data, dataclasses.replace(base, sets=(fs,), seed=rep)).summary()
            assert one["repeats"] == 1 and "repeat_accs" not in one["by_model"]["logistic"][fs]
            assert one["by_model"]["logistic"][fs]["acc"] == pytest.approx(r["repeat_accs"][rep], abs=1e-4)
    from ifllm_lab.cli.reward import _table

    text = _table(three)
    assert "the mean of 3 cross-validations on different folds" in text and "   repeats " in text
    with pytest.raises(ModelError, match="repeats must be at least 1"):
        train(strong_data, dataclasses.replace(base, repeats=0))


def test_the_quality_rule_drops_participants_by_their_own_data():
    n = 12
    table = {"participant": np.array(["A"] * 6 + ["B"] * 6),
             "c_q_gaze_valid_share": np.array([0.9] * 6 + [0.2] * 6),
             "c_q_validation_deg": np.array([1.0] * 6 + [np.nan] * 6),
             "c_q_gaze_covered": np.full(n, 0.9)}
    keep, dropped = quality_filter(table, QualityRule())
    assert keep.tolist() == [True] * 6 + [False] * 6
    assert list(dropped) == ["B"] and "q_gaze_valid_share" in dropped["B"]
    table["c_q_validation_deg"][:6] = 6.0
    _keep, dropped = quality_filter(table, QualityRule())
    assert "q_validation_deg 6.00 > 4" in dropped["A"]
    no_gaze = {"participant": np.array(["C"] * 3), "c_q_gaze_valid_share": np.full(3, np.nan),
               "c_q_gaze_covered": np.full(3, np.nan)}
    assert quality_filter(no_gaze)[1] == {"C": "no gaze"}


def test_the_screened_model_chooses_how_many_features_inside_its_training_rows(strong_data, tmp_path):
    m = RewardModel("pairwise", "screened", "fused").fit(strong_data.comparisons)
    k = m.chosen["selectkbest__k"]
    assert k in SCREENED_KS and m.estimator.named_steps["selectkbest"].k == k
    out = save_model(m, str(tmp_path / "screened"))
    loaded, info = load_model(out)
    assert info["chosen"] == m.chosen == loaded.chosen
    # too few participants to choose: the fixed default, nothing tuned
    two = {c: v[np.isin(strong_data.comparisons["participant"], ["P00", "P01"])]
           for c, v in strong_data.comparisons.items()}
    assert RewardModel("pairwise", "screened", "fused").fit(two).chosen == {}


def test_a_pairwise_model_embeds_only_the_answers_of_pairwise_questions():
    from ifllm_lab.reward.data import Dataset
    from ifllm_lab.reward.text_embed import task_texts

    d = Dataset({"session": np.array(["s1", "s1"]), "turn": np.array([0, 2])}, {}, sources=[])
    d.texts = {("s1", 0, 1): "a", ("s1", 0, 2): "b", ("s1", 1, 0): "pointwise", ("s1", 2, 1): "c",
               ("s1", 2, 2): "d", ("s2", 0, 1): "other session"}
    assert sorted(task_texts(d, "pairwise").values()) == ["a", "b", "c", "d"]
    assert task_texts(d, "pointwise") == d.texts and task_texts(d) == d.texts


def test_cli_trains_text_models_on_the_answers_embeddings(capfd, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    # 32 pairs (enough for the 16 components) of short, different answers: a few seconds of model time
    data = tmp_path / "study"
    data.mkdir()
    words = ["rivers", "tea", "orbits", "violins", "granite", "tides", "ferns", "comets", "maps", "bees"]
    for p in range(4):
        _no_gaze(data / f"p{p}.h5", f"P{p}", turns=8,
                 texts=lambda k, p=p: (f"{words[(p + k) % 10]} and {words[(3 * p + k) % 10]}, briefly.",
                                       f"A longer note on {words[(p * k + 1) % 10]}: see {words[k % 10]} {p}."))
    out = tmp_path / "model"
    rc, stdout, err = _cli(capfd, ["reward", "train", "--data", str(data), "--embeddings", "--model", "logistic",
                                   "--sets", "text", "--keep", "text", "--folds", "2", "--no-paper",
                                   "--no-importance", "--all-participants", "--out", str(out), "--json",
                                   "--quiet"])
    assert rc == 0, err
    assert json.loads(stdout)["text_acc"] is not None
    model, info = load_model(str(out))
    assert [c for c in model.design_columns if c.startswith("emb_")] == [f"emb_{i}" for i in range(1, 17)]
    assert info["embedding"]["model"].startswith("SmolLM2-135M-Instruct")
    # predicting reads the same embeddings (from the cache the training filled)
    rc, stdout, err = _cli(capfd, ["reward", "predict", str(out), str(data), "--json", "--quiet"])
    assert rc == 0, err
    assert json.loads(stdout)["predictions"] == 32


# -- model files ------------------------------------------------------------------------------
def test_a_saved_model_predicts_the_same_after_loading(strong_data, tmp_path):
    rep = train(strong_data, FAST)
    out = save_model(rep.model, str(tmp_path / "m"), metrics=rep.summary())
    assert sorted(os.listdir(out)) == ["estimator.skops", "model.json"]
    model, info = load_model(out)
    t = strong_data.comparisons
    np.testing.assert_array_equal(model.predict_proba(t), rep.model.predict_proba(t))
    assert info["format"] == FORMAT and info["design_columns"] == rep.model.design_columns
    assert info["versions"]["scikit_learn"] and info["metrics"]["fused_acc"] == rep.summary()["fused_acc"]
    # saving again over it replaces it whole, with nothing left beside it
    save_model(rep.model, out)
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_model_files_that_cannot_be_used_say_why(strong_data, tmp_path):
    rep = train(strong_data, FAST)
    good = save_model(rep.model, str(tmp_path / "good"))
    newer = shutil.copytree(good, tmp_path / "newer")
    info = json.loads((newer / "model.json").read_text())
    info["format"] = FORMAT + 1
    (newer / "model.json").write_text(json.dumps(info))
    with pytest.raises(ModelFileError, match="newer|update IFLLM Lab"):
        load_model(str(newer))
    damaged = shutil.copytree(good, tmp_path / "damaged")
    (damaged / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="cannot be read"):
        read_info(str(damaged))
    cut = shutil.copytree(good, tmp_path / "cut")
    data = (cut / "estimator.skops").read_bytes()
    (cut / "estimator.skops").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFileError, match="cannot be loaded"):
        load_model(str(cut))
    # an estimator file holding a call into the operating system is refused, not run
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    foreign = shutil.copytree(good, tmp_path / "foreign")
    sio.dump(FunctionTransformer(func=os.getcwd), str(foreign / "estimator.skops"))
    with pytest.raises(ModelFileError, match="never has"):
        load_model(str(foreign))
    with pytest.raises(ModelFileError, match="not a reward model folder"):
        load_model(str(tmp_path))


# -- the CLI ----------------------------------------------------------------------------------
def _cli(capfd, argv):
    capfd.readouterr()
    rc = main(argv)
    out, err = capfd.readouterr()
    return rc, out, [ln for ln in err.splitlines() if ln.strip()]


def _one_line(err, what):
    assert len(err) == 1 and err[0].startswith("ifllm-lab: ") and what in err[0], err


def test_cli_trains_saves_lists_and_predicts(capfd, strong, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    out = tmp_path / "model"
    rc, stdout, err = _cli(capfd, ["reward", "train", "--data", str(strong), "--out", str(out), "--folds", "4",
                                   "--no-paper", "--json", "--quiet"])
    assert rc == 0, err
    s = json.loads(stdout)
    for key in ("n_train", "n_eval", "text_acc", "gaze_acc", "mouse_acc", "implicit_acc", "fused_acc",
                "top_features"):
        assert key in s
    assert s["n_train"] == 80 and s["n_eval"] == 0 and len(s["implicit_acc_ci"]) == 2
    assert s["top_features"] and {"name", "drop", "group", "meaning"} <= set(s["top_features"][0])
    assert (out / "model.json").is_file()
    b = s["participant_bias"]
    assert b["pairs"] == 80 and b["participants"] == 8
    from ifllm_lab.cli.reward import _table

    assert f"own other choices (side bias): {100 * b['own_side_acc']:.1f} %" in _table(s)  # the text table's line
    rc, stdout, _ = _cli(capfd, ["reward", "models", str(tmp_path), "--json"])
    assert rc == 0 and json.loads(stdout)[0]["path"] == str(out)
    one = str(strong / "p03.h5")
    rc, stdout, err = _cli(capfd, ["reward", "predict", str(out), one, "--json", "--quiet"])
    assert rc == 0, err
    p = json.loads(stdout)
    assert p["predictions"] == 10 and all(0 <= t["p"] <= 1 for t in p["turns"])
    assert all(t["predicted"] in (1, 2) and t["actual"] in (1, 2) and t["moved_by"] for t in p["turns"])
    # evaluated on a separate set of participants
    rc, stdout, err = _cli(capfd, ["reward", "train", "--data", *[str(strong / f"p0{i}.h5") for i in range(5)],
                                   "--eval", *[str(strong / f"p0{i}.h5") for i in range(5, 8)], "--json",
                                   "--quiet", "--sets", "text,implicit", "--keep", "implicit"])
    assert rc == 0, err
    s = json.loads(stdout)
    assert s["n_train"] == 50 and s["n_eval"] == 30 and s["protocol"] == "evaluation set"
    assert s["implicit_acc"] > 0.6


def _no_gaze(path: Path, participant: str, turns: int = 3, texts=None) -> None:
    """A session of ``turns`` pairwise questions with no gaze or mouse; ``texts(k)`` gives
    turn k's two answers (default: the same two every turn)."""
    meta = SessionMeta(participant=participant, study="s", screen_width_px=1920, screen_height_px=1080)
    with SessionWriter(str(path), meta, flush_interval=1.0) as w:
        for k in range(turns):
            a, b = texts(k) if texts else ("answer one " * 20, "answer two " * 5)
            w.put("turns", (k * 10.0, k, 1, "q", a, b, "m1", "m2", 4, 2,
                            1 + k % 2, -1, 0, k * 10 + 1.0, k * 10 + 2.0, k * 10 + 8.0, k * 10 + 9.0, "{}"))


def test_bench_reward_measures_features_and_training_apart(capfd, strong, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    rc, stdout, err = _cli(capfd, ["bench", "reward", str(strong), "--json"])
    assert rc == 0, err
    b = json.loads(stdout)
    assert b["sessions"] == 8 and b["pairwise_rows"] == 80 and b["participants"] == 8
    assert b["kinds"] == ["screened"] and len(b["train_runs_s"]) == 1
    for k in ("prepare_s", "features_cold_s", "features_cached_s", "train_s", "peak_rss_mb"):
        assert b[k] > 0
    assert {"evaluate", "fit", "importance", "total"} <= set(b["train_steps_s"])
    assert 0.0 <= b["fused_acc"] <= 1.0
    assert any((tmp_path / "xdg").rglob("*"))  # the feature cache went to the user's cache folder
    rc, _stdout, err = _cli(capfd, ["bench", "reward", str(tmp_path / "none"), "--json"])
    assert rc != 0
    _one_line(err, "no such session file, folder or IFLLM release")


def test_cli_bad_input_gets_one_line_and_writes_nothing(capfd, strong, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = _cli(capfd, ["reward", "train", "--data", str(empty), "--out", str(out), "--quiet"])
    assert rc == 2
    _one_line(err, "no session files")
    single = tmp_path / "single"
    single.mkdir()
    shutil.copyfile(strong / "p00.h5", single / "p00.h5")
    rc, _, err = _cli(capfd, ["reward", "train", "--data", str(single), "--out", str(out), "--quiet"])
    assert rc == 2
    _one_line(err, "at least 2 participants")
    nogaze = tmp_path / "nogaze"
    nogaze.mkdir()
    for i in range(3):
        _no_gaze(nogaze / f"n{i}.h5", f"N{i}")
    rc, _, err = _cli(capfd, ["reward", "train", "--data", str(nogaze), "--out", str(out), "--quiet"])
    assert rc == 2
    _one_line(err, "no gaze")
    rc, _, err = _cli(capfd, ["reward", "train", "--data", str(nogaze), "--all-participants", "--sets", "gaze",
                              "--keep", "gaze", "--out", str(out), "--quiet"])
    assert rc == 2
    _one_line(err, "gaze")
    rc, _, err = _cli(capfd, ["reward", "train", "--data", str(strong), "--task", "pointwise", "--model", "nope",
                              "--out", str(out), "--quiet"])
    assert rc == 2
    _one_line(err, "unknown model kind")
    assert not out.exists() and not list(tmp_path.glob("out*"))
    rc, _, err = _cli(capfd, ["reward", "models", str(empty)])
    assert rc == 2
    _one_line(err, "no reward models")


def test_a_single_turn_participant_and_pointwise_only_data(tmp_path, strong, cache):
    # a participant with one turn is kept and tested in one fold, never in training and testing at once
    one = tmp_path / "one"
    shutil.copytree(strong, one)
    make_study_session(str(one / "short.h5"), "P-ONE", turns=1, signal=0.9, seed=99)
    data = load_dataset([str(one)], cache_dir=cache, workers=1)
    rep = train(data, FAST)
    assert rep.participants == 9 and rep.n_train == 81
    # answers rated one by one (no pairwise question) given to a pairwise model
    pw = tmp_path / "pointwise"
    pw.mkdir()
    meta = SessionMeta(participant="W", study="s", screen_width_px=1920, screen_height_px=1080)
    with SessionWriter(str(pw / "w.h5"), meta, flush_interval=1.0) as w:
        w.put("turns", (0.0, 0, 0, "q", "only answer", "", "m1", "", 4, -1, -1, -1, 0, 1.0, 2.0, 8.0, 9.0, "{}"))
    data = load_dataset([str(pw)], cache_dir=cache, workers=1)
    with pytest.raises(ModelError, match="pairwise model needs pairwise questions"):
        train(data, FAST)
    with pytest.raises(DataError, match="no such"):
        load_dataset([str(tmp_path / "nothing-here")], cache_dir=cache)


# -- the real IFLLM data ----------------------------------------------------------------------
def test_real_ifllm_sessions_train_with_grouped_cv(imported, cache):
    _report, out = imported
    files = sorted(str(p) for p in Path(out).rglob("*.h5"))
    data = load_dataset(files[:60], cache_dir=cache, workers=2)
    assert len(data.sessions) >= 50
    rep = train(data, TrainSettings(kinds=("logistic",), folds=5, importance=True, n_boot=500))
    s = rep.summary()
    assert rep.participants >= 5 and rep.n_train >= 50
    for k in ("text", "gaze", "mouse", "implicit", "fused"):
        assert 0.2 <= s[f"{k}_acc"] <= 0.9 and s[f"{k}_acc_ci"][0] <= s[f"{k}_acc"] <= s[f"{k}_acc_ci"][1]
        assert s[f"paper_{k}_acc"] is not None
    cols = rep.model.design_columns
    assert any(c.startswith("model=") for c in cols)  # which LLM wrote each answer
    assert any(c.startswith("r_text_") for c in cols) and any(c.startswith(("r_gaze", "gaze_")) for c in cols)
    assert s["top_features"] and rep.group_importance
    bias = s["participant_bias"]  # IFLLM shows answer 1 on the left: every participant's side bias is measured
    assert bias["pairs"] == rep.n_train and 0.0 <= bias["left_share_p10"] <= bias["left_share_p90"] <= 1.0
    assert 0.3 <= bias["own_side_acc"] <= 0.9


def test_participant_bias_counts_the_side_chosen_and_leaves_each_choice_out():
    # P1 picks the left answer 4 times of 5; answer 1 is on the right in P1's last pair, so
    # preference 2 there is a left choice. P2 picks left and right alike (a tie for every
    # left-out choice but the ones that break it). P3 has one pair: half a hit.
    t = {"participant": np.array(["P1"] * 5 + ["P2"] * 4 + ["P3"]),
         "preference": np.array([1, 1, 1, 2, 2, 1, 2, 1, 2, 1]),
         "ctx_answer1_side": np.array([1, 1, 1, 1, -1, 1, 1, 1, 1, 1], float)}
    b = participant_bias(t, min_pairs=4)
    assert b["pairs"] == 10 and b["participants"] == 2
    assert b["left_share"] == pytest.approx(7 / 10)
    assert b["left_share_p10"] == pytest.approx(0.5 + 0.1 * 0.3) and b["left_share_p90"] == pytest.approx(0.8 - 0.1 * 0.3)
    # P1: leaving out a left choice leaves 3 of 4 left -> predict left: 4 hits; leaving out the
    # right choice leaves 4 of 4 left -> a miss. P2: leaving out a left choice leaves 1 of 3 left
    # -> predict right: a miss; a right one leaves 2 of 3 left -> predict left: a miss. P3: half.
    assert b["own_side_acc"] == pytest.approx((4 + 0 + 0.5) / 10)
    assert participant_bias({"participant": np.array(["a"]), "preference": np.array([-1])}) == {}
    assert participant_bias({"participant": np.array(["a"]), "likert": np.array([3])}) == {}
