"""Preference pairs for DPO: from the real IFLLM data (explicit choices, with the release's
own table as the oracle) and from recorded sessions with a reward model's labels."""
from __future__ import annotations

import json

import pytest

from ifllm_lab.cli import main
from ifllm_lab.dpo.pairs import PairsError, make_pairs, read_jsonl
from ifllm_lab.importers.ifllm.release import import_release
from ifllm_lab.reward.data import load_dataset
from ifllm_lab.reward.store import save_model
from ifllm_lab.reward.train import TrainSettings, train
from ifllm_lab.synthetic.session import make_study_session

from tests.support.release_piece import release_piece

@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("dpo-cache"))


def test_explicit_pairs_follow_the_choices_and_the_conversation(piece, cache):
    folder, rows = piece
    rep = make_pairs([str(folder)], all_participants=True, cache_dir=cache, workers=1)
    by_task: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: int(r["query_ID"])):
        by_task.setdefault(r["user_id"], []).append(r)
    n_pairs = sum(r["preference"] in ("1.0", "2.0") for r in rows if r["llm_response_2"].strip())
    n_none = sum(r["preference"] == "" for r in rows if r["llm_response_2"].strip())
    assert n_pairs >= 8 and n_none >= 4
    assert len(rep.pairs) == n_pairs and rep.dropped == {"no choice": n_none}
    assert rep.by_source["explicit"] == n_pairs and rep.participants == 3
    for p in rep.pairs:
        task = by_task[p.participant]
        k = p.turn
        q = task[k]
        assert p.prompt[-1] == {"role": "user", "content": q["user_query"]}
        want = q["llm_response_1"] if q["preference"] == "1.0" else q["llm_response_2"]
        other = q["llm_response_2"] if q["preference"] == "1.0" else q["llm_response_1"]
        assert p.chosen == [{"role": "assistant", "content": want}]
        assert p.rejected == [{"role": "assistant", "content": other}]
        assert p.label_source == "explicit" and p.confidence == 1.0
        # the conversation so far: each earlier question with the answer that went on
        assert len(p.prompt) == 2 * k + 1
        for j in range(k):
            e = task[j]
            went_on = e["llm_response_2"] if e["preference"] == "2.0" else e["llm_response_1"]
            assert p.prompt[2 * j] == {"role": "user", "content": e["user_query"]}
            assert p.prompt[2 * j + 1] == {"role": "assistant", "content": went_on}


def test_the_cli_writes_jsonl_and_a_hugging_face_dataset(piece, tmp_path, capsys):
    folder, _rows = piece
    out = tmp_path / "pairs.jsonl"
    assert main(["dpo", "export", "--sessions", str(folder), "--all-participants", "--out", str(out), "--json",
                 "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = read_jsonl(str(out))
    assert summary["pairs"] == len(rows) and summary["by_source"]["explicit"] == len(rows)
    assert summary["dropped"]["no choice"] >= 4 and summary["labels"] == "explicit"
    assert set(rows[0]) >= {"prompt", "chosen", "rejected", "label_source", "confidence", "participant", "session",
                            "turn"}
    datasets = pytest.importorskip("datasets")
    hf = tmp_path / "pairs-hf"
    assert main(["dpo", "export", "--sessions", str(folder), "--all-participants", "--out", str(hf), "--format",
                 "hf", "--quiet"]) == 0
    ds = datasets.load_from_disk(str(hf))
    assert len(ds) == len(rows) and ds[0]["chosen"] == rows[0]["chosen"] and ds[0]["prompt"] == rows[0]["prompt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs-hf", "pairs.jsonl"]  # nothing left beside


@pytest.fixture(scope="module")
def study(tmp_path_factory, cache):
    """(folder, the pairwise reward model trained on it, {(session, turn): preference})."""
    folder = tmp_path_factory.mktemp("dpo-study")
    for i in range(8):
        make_study_session(str(folder / f"p{i}.h5"), f"P{i}", turns=8, signal=0.9, seed=100 + i)
    data = load_dataset([str(folder)], cache_dir=cache, workers=1)
    rep = train(data, TrainSettings(kinds=("logistic",), sets=("implicit",), keep_set="implicit", folds=4,
                                    paper_protocol=False, importance=False, n_boot=200))
    model = save_model(rep.model, str(tmp_path_factory.mktemp("dpo-model") / "m"))
    t = data.comparisons
    prefs = {(str(s), int(k)): int(p) for s, k, p in zip(t["session"], t["turn"], t["preference"])}
    return folder, model, prefs


def test_implicit_labels_from_a_reward_model(study, cache):
    folder, model, prefs = study
    kw = dict(model_folder=model, all_participants=True, cache_dir=cache, workers=1)
    imp = make_pairs([str(folder)], labels="implicit", min_confidence=0.5, **kw)
    assert len(imp.pairs) == imp.questions == len(prefs)  # every question scored, none left out
    right = sum(p.label_source == "both agree" for p in imp.pairs)
    assert right / len(imp.pairs) > 0.75  # the signal the sessions were made with
    assert all(p.confidence >= 0.5 for p in imp.pairs)
    strict = make_pairs([str(folder)], labels="implicit", min_confidence=0.95, **kw)
    assert len(strict.pairs) < len(imp.pairs)
    assert len(strict.pairs) + strict.dropped["low confidence"] == strict.questions
    assert all(p.confidence >= 0.95 for p in strict.pairs)
    agree = make_pairs([str(folder)], labels="agree", min_confidence=0.5, **kw)
    assert len(agree.pairs) == right and agree.dropped["disagree"] == len(prefs) - right
    assert {(p.session, p.turn) for p in agree.pairs} == \
        {(p.session, p.turn) for p in imp.pairs if p.label_source == "both agree"}
    fill = make_pairs([str(folder)], labels="fill", min_confidence=0.5, **kw)
    assert fill.by_source["explicit"] == len(prefs) and len(fill.pairs) == len(prefs)


def test_labels_that_cannot_be_made_say_why(study, cache, tmp_path, release_root):
    folder, model, _prefs = study
    with pytest.raises(PairsError, match="need a reward model"):
        make_pairs([str(folder)], labels="agree", cache_dir=cache)
    with pytest.raises(PairsError, match="between 0.5 and 1"):
        make_pairs([str(folder)], labels="implicit", model_folder=model, min_confidence=0.3, cache_dir=cache)
    with pytest.raises(PairsError, match="no such reward model folder"):
        make_pairs([str(folder)], labels="implicit", model_folder=str(tmp_path / "none"), cache_dir=cache)
    # sessions with no pairwise question: one line, exit 2, nothing written
    pointwise = tmp_path / "pointwise"
    import_release(str(release_piece(release_root, tmp_path, ["worker_19651352"], tasks={"136"})), str(pointwise))
    rc = main(["dpo", "export", "--sessions", str(pointwise), "--all-participants", "--out",
               str(tmp_path / "x.jsonl"), "--quiet"])
    assert rc == 2 and not (tmp_path / "x.jsonl").exists()
