"""``ifllm-lab app --pilot``: a simulated participant runs a whole study through the real app
(Qt offscreen, real input events, the real gaze pipeline on a rendered face video, the real
llama.cpp with the bundled model), and the file it leaves replays."""
from __future__ import annotations

import json
import re

import numpy as np

from ifllm_lab.cli import main
from ifllm_lab.session import SessionReader
from ifllm_lab.session.inspect import summarize
from ifllm_lab.session.schema import LayoutLevel, MouseKind

from tests.support.markdown_text import shown_word
from tests.support.screenshots import H, W
from tests.support.study_app import _pattern

#: five points with short dwells: the calibration is not what is tested here (validation shuffled)
FIVE = [[0.5, 0.5], [0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9]]


def _study(tmp_path, **llm) -> str:
    path = tmp_path / "pilot.toml"
    extra = "".join(f'{k} = {json.dumps(v)}\n' for k, v in llm.items())
    path.write_text(f"""
[study]
name = "pilot-e2e"
mode = "pairwise"
questions = 2
data_folder = {json.dumps(str(tmp_path / "data"))}
questionnaire = ["How natural did the conversation feel? (1-5)"]
[screen]
width_px = {W}
height_px = {H}
[calibration]
pattern = {json.dumps(_pattern(tmp_path, "calibration", "calibration", FIVE, 0.8))}
validation = {json.dumps(_pattern(tmp_path, "validation", "validation", FIVE, 0.6, shuffle=True))}
[[llm]]
name = "small"
max_tokens = 32
seed = 5
{extra}""")
    return str(path)


def test_the_pilot_runs_a_whole_session_that_replays(qapp, tmp_path, face_video, capsys):
    shot = tmp_path / "end.png"
    rc = main(["app", "--study", _study(tmp_path), "--camera", face_video, "--size", f"{W}x{H}", "--pilot",
               "--pilot-timeout", "400", "--screenshot", str(shot)])
    out = capsys.readouterr()
    report = json.loads(out.out.strip().splitlines()[-1])
    assert rc == 0 and report["ok"], report
    assert report["turns"] == 2 and report["problem"] == ""
    assert set(report["stages_s"]) >= {"setup", "consent", "calibration", "chat", "questionnaire", "done"}
    assert report["validation_deg"] is not None and report["screenshot"] == str(shot) and shot.stat().st_size
    path = report["session"]
    assert path.startswith(str(tmp_path / "data"))

    with SessionReader(path) as r:
        assert r.complete and r.meta.extra["pilot"] is True and r.meta.study == "pilot-e2e"
        turns = r["turns"].read()
        assert list(turns["turn"]) == [0, 1]
        assert set(turns["likert_1"]) <= {1, 2, 3, 4, 5} and set(turns["likert_2"]) <= {1, 2, 3, 4, 5}
        assert set(turns["preference"]) <= {0, 1, 2}
        assert all(turns["t"] < turns["t_rated"])
        t_answered = float(turns["t_done"][0])
        # the questions were typed key by key (timing only is stored), then Enter
        from ifllm_lab.ui.pilot import QUESTIONS

        assert len(r["keys"]) == 2 * (len(QUESTIONS[0]) + len(QUESTIONS[1]) + 2)
        assert list(turns["prompt"]) == list(QUESTIONS[:2])
        # the mouse read the answers: moves over the response AOIs, presses on the controls
        mouse = r["mouse"].read()
        assert (mouse["kind"] == int(MouseKind.PRESS)).sum() >= 2 * 4 + 3  # start, agree, 2 x (2 + 1 + next), ...
        on_answers = (mouse["kind"] == int(MouseKind.MOVE)) & (mouse["aoi_response"] >= 1)
        assert on_answers.sum() > 20
        # the answers were rendered as Markdown: every word box is its raw characters as shown
        lay = r["layout"].read()
        for k, row in enumerate(turns):
            for resp in (1, 2):
                raw = str(row[f"response_{resp}"])
                ws = lay[(lay["level"] == int(LayoutLevel.WORD)) & (lay["turn"] == k) & (lay["response"] == resp)]
                ws = ws[ws["snapshot"] == ws["snapshot"].max()]
                assert len(ws) and [str(t) for t in ws["text"]] == [
                    shown_word(raw, a, b) for a, b in zip(ws["char_start"], ws["char_end"])]
                if re.search(r"\*\*\S[^*]*\*\*", raw):
                    assert (ws["style"] & 1).any()  # bold words were recorded as bold
        gaze = r["gaze"].read()
        assert len(gaze) > 100 and np.isfinite(gaze["x"][gaze["valid"] == 1]).all()
        names = [str(n) for n in r["phases"].column("name")]
        for n in ("consent", "calibration_done", "turn", "questionnaire", "end"):
            assert n in names, n
    # every stream goes forward in time (the shuffled validation points included)
    problems = summarize(path)["problems"]
    assert not [p for p in problems if "backwards" in p or "unequal" in p], problems

    # the replay of the first answers, as the participant saw them: text on the page
    import cv2

    png = tmp_path / "replay.png"
    assert main(["replay", path, "--export", str(png), "--at", f"{t_answered:.2f}"]) == 0
    img = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    assert img.shape == (720, 1280)
    assert (img > 150).mean() > 0.002  # light text on the dark page, not an empty frame


def test_a_pilot_that_cannot_start_says_why(qapp, tmp_path, face_video, capsys):
    missing = tmp_path / "gone.gguf"
    rc = main(["app", "--study", _study(tmp_path, model_path=str(missing)), "--camera", face_video,
               "--size", f"{W}x{H}", "--pilot", "--pilot-timeout", "120"])
    out = capsys.readouterr()
    report = json.loads(out.out.strip().splitlines()[-1])
    assert rc == 1 and not report["ok"]
    assert report["problem"].startswith("setup:") and "gone.gguf" in report["problem"], report
    assert "did not complete" in out.err
    assert not list((tmp_path / "data").rglob("*.h5"))  # nothing recorded without a participant
