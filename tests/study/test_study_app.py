"""The participant study app end to end (Qt offscreen): a rendered real face played from a
video file as the camera, the real MediaPipe gaze pipeline, the real llama.cpp with the
bundled small model, a real session file read back with the reader and ``inspect``.

Screenshots of every screen go to ``$IFLLM_SCREENSHOTS`` when set, else the test's tmp folder.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from ifllm_lab.session import SessionReader
from ifllm_lab.session.inspect import summarize
from ifllm_lab.session.schema import CORE_STREAMS, LayoutLevel, MouseKind, TurnMode

from tests.support.markdown_text import shown_word
from tests.support.screenshots import save, shots_folder
from tests.support.study_app import (
    StallMeter, ask, calibrate, click, finish, inject_moves, make_app, phases, rate, study, wait_setup_ready,
)

# ======================================================================================

def test_pairwise_session_end_to_end(qtbot, tmp_path, face_video, capsys):
    shots = shots_folder(tmp_path)
    cfg = study(tmp_path, face_video, mode="pairwise", questions=2)
    cfg["llm"][0]["max_tokens"] = 60
    app = make_app(qtbot, cfg)
    try:
        wait_setup_ready(qtbot, app)
        assert app._llm_ok, app.setup_page.llm_status.text()
        assert "SmolLM2" in app.setup_page.llm_status.text()
        app.setup_page.code.setText("lab-07")
        save(app, shots, "app-1-setup")
        click(qtbot, app.setup_page.start_button)
        assert app.stage == "consent" and app.session is None  # no file before consent
        assert not list((tmp_path / "data").rglob("*.h5"))
        save(app, shots, "app-2-consent")
        click(qtbot, app.consent_page.agree_button)
        assert app.session is not None
        path = app.session.path
        calibrate(qtbot, app, shots)

        # -- turn 1: typed, streamed, rated, left preferred
        stall = StallMeter()
        ask(qtbot, app, "What is a good way to learn to cook?", stall, shots, "app-6-pairwise-streaming")
        print(f"\nGUI thread: longest stall {stall.max_gap * 1000:.1f} ms over {stall.ticks} ticks while answering")
        assert stall.ticks > 20 and stall.max_gap < 1.0  # a blocking answer would stall for seconds
        turn1 = app.turn
        assert turn1.pairwise and set(turn1.results) == {1, 2}
        for side in ("left", "right"):
            r = turn1.response_on(side)
            assert app.chat_page.panels[side].view.text() == turn1.results[r].text
        rate(qtbot, app, 4, 2, "left")
        save(app, shots, "app-7-pairwise-rated")
        click(qtbot, app.chat_page.next_button)

        # -- drift check between turns, then turn 2 (tie)
        qtbot.waitUntil(lambda: app.wizard.stage == "drift_result", timeout=20_000)
        save(app, shots, "app-8-drift-check")
        click(qtbot, app.wizard.drift_view.continue_button)
        qtbot.waitUntil(lambda: app.stage == "chat" and app.chat_page.state == "asking", timeout=5_000)
        ask(qtbot, app, "And how do I make bread?")
        turn2 = app.turn
        rate(qtbot, app, 3, 5, "tie")
        click(qtbot, app.chat_page.next_button)
        finish(qtbot, app, shots)
    finally:
        app.close()

    # -- the file
    assert not Path(path).name.startswith("LAB") and "LAB-07" not in path.upper()
    raw = Path(path).read_bytes()
    assert b"lab-07" not in raw and b"LAB-07" not in raw  # the code itself is stored nowhere
    report = summarize(path)
    print("inspect:", json.dumps({k: v["count"] for k, v in report["streams"].items()}))
    print("problems:", report["problems"])
    assert set(CORE_STREAMS) <= set(report["streams"])
    assert all(report["streams"][n]["count"] > 0 for n in CORE_STREAMS if n != "events")
    with SessionReader(path) as r:
        assert r.complete and not r.problems
        for name in ("gaze", "mouse", "scroll", "turns", "layout", "calibration/points", "calibration/samples",
                     "calibration/models", "phases", "keys", "window", "log"):
            assert len(r[name]) > 0, name
        assert r.meta.participant.startswith("P-") and r.meta.study == "e2e"
        turns = r["turns"].read()
        assert list(turns["turn"]) == [0, 1]
        assert all(turns["mode"] == int(TurnMode.PAIRWISE))
        for row, turn, left, right, pref in ((turns[0], turn1, 4, 2, "left"), (turns[1], turn2, 3, 5, "tie")):
            assert row["prompt"] == turn.prompt
            assert row["swapped"] == int(turn.swapped)
            assert row["response_1"] == turn.results[1].text and row["response_2"] == turn.results[2].text
            by_side = {turn.response_on("left"): left, turn.response_on("right"): right}
            assert (row["likert_1"], row["likert_2"]) == (by_side[1], by_side[2])
            assert row["preference"] == (0 if pref == "tie" else turn.response_on(pref))
            assert row["t"] < row["t_first_token"] < row["t_done"] < row["t_rated"] <= row["t_end"]
            settings = json.loads(row["settings"])
            s1, s2 = settings["response_1"], settings["response_2"]
            assert s1["seed"] != s2["seed"] and s1["model"] == s2["model"]
            assert len(s1["token_times"]) >= 1 and s1["settings"]["max_tokens"] == 60
            assert settings["context"] in ("response_1", "response_2")
        ctx1 = json.loads(turns[0]["settings"])["context"]
        assert ctx1 == f"response_{turn1.response_on('left')}"  # the preferred answer goes on
        # keystrokes: timing only, in the question box; the typed words are not in the file
        keys = r["keys"].read()
        typed = len("What is a good way to learn to cook?") + len("And how do I make bread?") + 2  # + Enter
        assert len(keys) == 2 * typed and set(keys["field"]) == {"question"}
        # layout: words of both answers with char ranges into the exact texts
        lay = r["layout"].read()
        words = lay[(lay["level"] == int(LayoutLevel.WORD)) & (lay["turn"] == 0) & (lay["response"] >= 1)]
        last = words[words["snapshot"] == words["snapshot"].max()]
        for resp in (1, 2):
            text = turn1.results[resp].text
            ws = last[last["response"] == resp]
            # answers are rendered as Markdown (the default): each word is its raw characters as shown
            assert [w["text"] for w in ws] == [shown_word(text, a, b) for a, b in zip(ws["char_start"], ws["char_end"])]
            assert all(0 <= a < b <= len(text) for a, b in zip(ws["char_start"], ws["char_end"]))
        # mouse: clicks were recorded with AOIs; gaze rows have calibrated points
        mouse = r["mouse"].read()
        assert (mouse["kind"] == int(MouseKind.PRESS)).sum() >= 8
        assert (mouse["kind"] == int(MouseKind.POLL)).sum() > 100
        gaze = r["gaze"].read()
        t_cal = min(t for t, n, _ in phases(r) if n == "calibration_done")
        after = gaze[gaze["t"] > t_cal + 0.2]
        assert len(after) > 100 and after["valid"].mean() > 0.9  # calibrated from then on
        assert np.all(np.isfinite(after["x"][after["valid"] == 1]))
        names = [n for _, n, _ in phases(r)]
        for n in ("consent", "turn", "answers", "turn_end", "drift_done", "questionnaire", "end"):
            assert n in names, n
        q = [d for _, n, d in phases(r) if n == "questionnaire"]
        assert [d["answer"] for d in q] == [3, 4]

    # -- what the data is for: features and a reward model, from the app's own file
    from ifllm_lab.cli import main
    from ifllm_lab.features.extract import session_features
    from ifllm_lab.synthetic.session import make_study_session

    feats = session_features(path)
    comp = {c["turn"]: c for c in feats.comparisons}
    assert comp[0]["preference"] == turn1.response_on("left") and comp[1]["preference"] == 0
    assert np.isfinite(comp[0]["r_gaze_dwell_s"]) or np.isfinite(comp[0]["d_gaze_dwell_s"])
    assert np.isfinite(comp[0]["ctx_answer1_side"])
    mix = tmp_path / "mix"
    mix.mkdir()
    shutil.copyfile(path, mix / Path(path).name)
    for i in range(3):
        make_study_session(str(mix / f"s{i}.h5"), f"S{i}", turns=4, signal=0.8, seed=i)
    out = tmp_path / "model"
    capsys.readouterr()
    assert main(["reward", "train", "--data", str(mix), "--out", str(out), "--folds", "2", "--no-paper",
                 "--all-participants", "--json", "--quiet"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["participants"] == 4 and trained["n_train"] == 13  # 3 x 4 synthetic + the app's rated turn
    assert main(["reward", "predict", str(out), path, "--json", "--quiet"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert [t["turn"] for t in pred["turns"]] == [0, 1] and 0 <= pred["turns"][0]["p"] <= 1


def test_pointwise_session_end_to_end(qtbot, tmp_path, face_video):
    shots = shots_folder(tmp_path)
    cfg = study(tmp_path, face_video, mode="pointwise", questions=2, answers="plain")  # the text as written
    cfg["calibration"]["drift_check_every"] = 0
    app = make_app(qtbot, cfg, participant="p-12")
    try:
        wait_setup_ready(qtbot, app)
        click(qtbot, app.setup_page.start_button)
        click(qtbot, app.consent_page.agree_button)
        path = app.session.path
        calibrate(qtbot, app)
        ask(qtbot, app, "Why is the sky blue?", shots=shots, shot_name="app-6-pointwise-streaming")
        assert not app.chat_page.panels["right"].isVisible()
        # 1,000 mouse moves a second for 30 s over the answer, while the camera, the gaze
        # tracker and the layout AOIs run: every one must be in the file, once
        view = app.chat_page.panels["left"].view
        moves = inject_moves(app, view.viewport(), 30.0)
        print(f"\ninjected {moves['posted']} moves, recorded {moves['recorded']}")
        assert moves["posted"] == moves["sent"] == moves["recorded"] == 30_000
        rate(qtbot, app, 5)
        save(app, shots, "app-7-pointwise-rated")
        click(qtbot, app.chat_page.next_button)
        ask(qtbot, app, "Tell me more.")
        rate(qtbot, app, 2)
        assert app.chat_page.next_button.text() == "Finish"
        click(qtbot, app.chat_page.next_button)
        finish(qtbot, app)
    finally:
        app.close()
    with SessionReader(path) as r:
        assert r.complete and not r.problems
        turns = r["turns"].read()
        assert list(turns["mode"]) == [int(TurnMode.POINTWISE)] * 2
        assert list(turns["likert_1"]) == [5, 2] and list(turns["likert_2"]) == [-1, -1]
        assert list(turns["preference"]) == [-1, -1] and list(turns["swapped"]) == [-1, -1]
        assert all(turns["response_2"] == "")
        mouse = r["mouse"].read()
        m = mouse[(mouse["kind"] == int(MouseKind.MOVE)) & (mouse["t"] >= moves["t0"])][:moves["sent"]]
        assert len(m) == moves["sent"]
        np.testing.assert_array_equal(m["x"], moves["x"])
        np.testing.assert_array_equal(m["y"], moves["y"])
        assert np.all(np.diff(m["t"]) > 0)
        # the AOI of each move is the word box (of the layout recorded then) under it
        lay = r["layout"].read()
        words = lay[(lay["level"] == int(LayoutLevel.WORD)) & (lay["response"] == 0) & (lay["turn"] == 0)
                    & (lay["t"] <= moves["t0"])]
        words = words[words["snapshot"] == words["snapshot"].max()]
        inside = ((m["x"][:, None] >= words["x0"]) & (m["x"][:, None] < words["x1"])
                  & (m["y"][:, None] >= words["y0"]) & (m["y"][:, None] < words["y1"]))
        expected = np.where(inside.any(axis=1), words["index"][inside.argmax(axis=1)], -1)
        on_words = m["aoi_word"] >= 0
        print(f"moves over words: {on_words.sum()}; AOI agrees with the recorded boxes for "
              f"{np.mean(expected == m['aoi_word']):.4f}")
        assert on_words.sum() > 500 and np.all(m["aoi_response"][on_words] == 0)  # the single answer
        assert np.mean(expected == m["aoi_word"]) > 0.995  # (box edges are float px)
        # plain answers: every word is exactly its raw characters
        text = str(turns[0]["response_1"])
        assert [str(w) for w in words["text"]] == [text[a:b] for a, b in zip(words["char_start"], words["char_end"])]
        assert not words["style"].any()
        # the second question was asked with the first answer in the context
        s2 = json.loads(turns[1]["settings"])
        assert s2["response_1"]["prompt_tokens"] > json.loads(turns[0]["settings"])["response_1"]["prompt_tokens"]
        assert "drift_done" not in [n for _, n, _ in phases(r)]
        assert len(r["layout"]) > 0 and len(r["scroll"]) > 0


def test_no_consent_no_recording(qtbot, tmp_path, face_video):
    app = make_app(qtbot, study(tmp_path, face_video), participant="p-3", preload=False)
    try:
        qtbot.waitUntil(lambda: app.setup_page.preview.status.good, timeout=20_000)
        click(qtbot, app.setup_page.start_button)
        assert app.setup_page.code.text() == ""  # the code is not kept, even on screen
        click(qtbot, app.consent_page.decline_button)
        assert app.stage == "declined" and "Nothing was recorded" in app.message_page.body.text()
        click(qtbot, app.message_page.button)
        assert app.stage == "setup"
    finally:
        app.close()
    assert not list((tmp_path / "data").rglob("*.h5"))


def test_missing_camera_is_reported_and_blocks_the_start(qtbot, tmp_path, face_video):
    cfg = study(tmp_path, str(tmp_path / "no-such-camera.mp4"))
    app = make_app(qtbot, cfg, participant="p-4", preload=False)
    try:
        status = app.setup_page.camera_status.text()
        assert "does not exist" in status and app.setup_page.retry_button.isVisible()
        click(qtbot, app.setup_page.start_button)
        assert app.stage == "setup" and "camera is not running" in app.setup_page.code_error.text()
        # the researcher fixes it (here: the file appears) and retries
        import shutil
        shutil.copyfile(face_video, tmp_path / "no-such-camera.mp4")
        click(qtbot, app.setup_page.retry_button)
        assert app.tracker is not None and not app.setup_page.retry_button.isVisible()
        click(qtbot, app.setup_page.start_button)
        assert app.stage == "consent"
    finally:
        app.close()


def test_a_corrupt_model_gives_a_calm_message_and_the_session_goes_on(qtbot, tmp_path, face_video):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4000))
    cfg = study(tmp_path, face_video, mode="pointwise", questions=2, questionnaire=[], keep_video=True)
    cfg["llm"][0]["model_path"] = str(bad)
    cfg["calibration"]["drift_check_every"] = 0
    app = make_app(qtbot, cfg, participant="p-5")
    try:
        qtbot.waitUntil(lambda: app._llm_ok is not None, timeout=60_000)
        assert app._llm_ok is False and "broken.gguf" in app.setup_page.llm_status.text()
        click(qtbot, app.setup_page.start_button)
        click(qtbot, app.consent_page.agree_button)
        path = app.session.path
        QTest.keyClick(app.wizard.face_guide, Qt.Key.Key_F12)
        qtbot.waitUntil(lambda: app.wizard.stage in ("report", "failed"), timeout=60_000)
        click(qtbot, app.wizard.report_view.continue_button)
        qtbot.waitUntil(lambda: app.stage == "chat", timeout=5_000)
        for q in ("Hello?", "Still there?"):
            ask(qtbot, app, q)
            page = app.chat_page
            status = page.panels["left"].status.text()
            assert status and "gguf" not in status.lower() and "Traceback" not in status  # calm, for people
            assert "no answer to rate" in page.hint.text()
            assert not page.panels["left"].likert.isVisible() and page.next_button.isEnabled()
            click(qtbot, page.next_button)
        qtbot.waitUntil(lambda: app.stage == "done", timeout=30_000)
    finally:
        app.close()
    with SessionReader(path) as r:
        turns = r["turns"].read()
        assert len(turns) == 2 and all(turns["likert_1"] == -1) and all(turns["response_1"] == "")
        assert "broken.gguf" in json.loads(turns[0]["settings"])["response_1"]["error_detail"]
        log = list(r["log"].column("message"))
        assert any("broken.gguf" in m for m in log)  # the precise reason for the researcher
        gaze_frames = set(r["gaze"].column("frame").tolist())
    # keep_video: the camera video beside the session, its frames lined up with the gaze rows
    import cv2

    video = Path(path).with_suffix(".camera.avi")
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    rows = (Path(path).with_suffix(".camera.frames.csv")).read_text().splitlines()
    assert rows[0] == "frame,t" and n == len(rows) - 1 > 100
    frames = [int(x.split(",")[0]) for x in rows[1:]]
    assert frames == sorted(frames) and len(set(frames) & gaze_frames) > 0.9 * len(frames)


def test_a_study_that_cannot_run_never_reaches_consent(qtbot, tmp_path, face_video):
    cfg = study(tmp_path, face_video, data_folder="/proc/nope")
    cfg["calibration"]["pattern"] = "7-point"
    app = make_app(qtbot, cfg, participant="p-6", preload=False)
    try:
        status = app.setup_page.study_status
        assert status.isVisible()
        assert "calibration.pattern" in status.text() and "7-point" in status.text()
        assert "study.data_folder" in status.text() and "/proc/nope" in status.text()
        save(app, shots_folder(tmp_path), "app-setup-study-problems")
        click(qtbot, app.setup_page.start_button)
        assert app.stage == "setup" and "Fix the study" in app.setup_page.code_error.text()
    finally:
        app.close()


def test_a_fault_after_consent_closes_the_one_session_file_calmly(qtbot, tmp_path, face_video, monkeypatch):
    import ifllm_lab.ui.study_app as study_app

    def broken_wizard(*args, **kwargs):
        raise RuntimeError("calibration screens failed (injected fault)")

    monkeypatch.setattr(study_app, "CalibrationWizard", broken_wizard)
    app = make_app(qtbot, study(tmp_path, face_video), participant="p-7", preload=False)
    data = tmp_path / "data"
    try:
        click(qtbot, app.setup_page.start_button)
        assert app.stage == "consent"
        click(qtbot, app.consent_page.agree_button)
        assert app.stage == "error" and app.session is None
        page = app.message_page
        assert page.title.text() == "Please call the researcher."
        assert "not your fault" in page.body.text() and "injected" not in page.body.text()
        assert page.detail.isVisible() and "injected fault" in page.detail.text()
        save(app, shots_folder(tmp_path), "app-session-fault")
        app.consent_page.agreed.emit()  # a late second "I agree" opens nothing
        [path] = list(data.rglob("*.h5"))
        with SessionReader(path) as r:
            assert r.state == "ended_early" and not r.live_or_crashed
            assert any("injected fault" in m for m in r["log"].read()["message"])
            assert "end" in [n for _, n, _ in phases(r)]
        click(qtbot, page.button)
        assert app.stage == "setup" and "injected fault" in app.setup_page.folder_status.text()
        assert len(app.setup_page.rows) == 1  # listed to resume or close, like an interrupted one
    finally:
        app.close()
    assert len(list(data.rglob("*.h5"))) == 1
