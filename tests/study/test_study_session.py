"""The study flow without Qt: pseudonyms, turn plans, side randomisation and the turns
written into a real session file by real llama.cpp generations."""
from __future__ import annotations

import json
import os
import random
import stat

import pytest

from ifllm_lab.config import config_from_dict
from ifllm_lab.session import SessionClock, SessionReader
from ifllm_lab.session.schema import TurnMode
from ifllm_lab.study.participant import (
    KEY_FILE, ParticipantCodeError, normalise_code, pseudonym, pseudonym_key,
)
from ifllm_lab.study.session import Backends, StudySession, plan_turns, session_path


def test_pseudonyms_are_stable_per_data_folder_and_hide_the_code(tmp_path):
    key = pseudonym_key(tmp_path / "a")
    assert stat.S_IMODE(os.stat(tmp_path / "a" / KEY_FILE).st_mode) == 0o600
    assert pseudonym_key(tmp_path / "a") == key  # made once, then read
    p = pseudonym("lab-07", key)
    assert p.startswith("P-") and len(p) == 12
    assert pseudonym(" LAB-07 ", key) == p  # normalised: case and outer spaces
    assert pseudonym("lab-08", key) != p
    assert pseudonym("lab-07", pseudonym_key(tmp_path / "b")) != p  # another lab's key
    for bad in ("", "   ", "a/b", "x" * 80, "../etc"):
        with pytest.raises(ParticipantCodeError):
            normalise_code(bad)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / KEY_FILE).write_text("zz-not-hex")
    with pytest.raises(ParticipantCodeError, match="damaged"):
        pseudonym_key(tmp_path / "c")


def test_turn_plans():
    rng = random.Random(1)
    assert plan_turns("pairwise", 3, rng) == ["pairwise"] * 3
    assert plan_turns("pointwise", 2, rng) == ["pointwise"] * 2
    plans = {tuple(plan_turns("mixed", 5, random.Random(s))) for s in range(20)}
    assert len(plans) > 3  # shuffled
    for p in plans:
        assert p.count("pointwise") == 3 and p.count("pairwise") == 2


def test_session_path_never_reuses_a_file(tmp_path):
    cfg = config_from_dict({"study": {"name": "pilot 1", "data_folder": str(tmp_path)}})
    a = session_path(cfg, "P-ABC", when=0)
    a.parent.mkdir(parents=True)
    a.write_bytes(b"")
    b = session_path(cfg, "P-ABC", when=0)
    assert a.parent.name == "pilot_1" and a != b and not b.exists()


def test_turns_with_the_real_model(tmp_path):
    """Pairwise turns from two seeds of the bundled model, then a pointwise one (mixed)."""
    cfg = config_from_dict({"study": {"name": "s", "mode": "mixed", "questions": 3, "data_folder": str(tmp_path)},
                            "llm": [{"name": "small", "max_tokens": 12, "seed": 5}]})
    clock = SessionClock()
    backends = Backends(cfg, clock=clock.now)
    try:
        s = StudySession(cfg, tmp_path / "x.h5", "P-TEST", clock, (1280, 720), backends, seed=3)
        s.plan = ["pairwise", "pointwise", "pairwise"]
        s.consent("consent text", "builtin")
        pieces = []
        t = s.begin_turn("Name a fruit.")
        s.generate(t, lambda side, r, ev: pieces.append((side, r, ev.text)))
        assert t.ok and set(t.results) == {1, 2}
        # streamed left first, then right; each side's pieces make its answer
        sides = [p[0] for p in pieces]
        assert sides == sorted(sides, key=["left", "right"].index)
        for side in ("left", "right"):
            assert "".join(p[2] for p in pieces if p[0] == side) == t.results[t.response_on(side)].text
        assert t.results[1].seed != t.results[2].seed
        s.finish_turn(t, likert={1: 4, 2: 2}, preference=2, t_rated=clock.now())
        assert s.conversation.turns[-1].content == t.results[2].text  # the preferred answer goes on
        t2 = s.begin_turn("Why?")
        assert t2.mode == "pointwise" and not t2.swapped
        s.generate(t2)
        s.finish_turn(t2, likert={0: 3}, t_rated=clock.now())
        assert len(s.conversation.turns) == 4
        s.close()
    finally:
        backends.close()
    with SessionReader(tmp_path / "x.h5") as r:
        turns = r["turns"].read()
        assert list(turns["mode"]) == [int(TurnMode.PAIRWISE), int(TurnMode.POINTWISE)]
        assert turns[0]["preference"] == 2 and (turns[0]["likert_1"], turns[0]["likert_2"]) == (4, 2)
        assert turns[1]["likert_1"] == 3 and turns[1]["swapped"] == -1
        assert json.loads(turns[0]["settings"])["context"] == "response_2"
        extra = r.meta.extra
        assert extra["side_seed"] == 3 and extra["config"]["study"]["mode"] == "mixed"
        names = list(r["phases"].column("name"))
        assert names[0] == "consent" and names.count("answers") == 2 and names[-1] == "end"
