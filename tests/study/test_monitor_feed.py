"""The live monitor's figures (ifllm_lab.study.monitor.MonitorFeed) from a real session
writer's taps: synthetic rows of every kind go into a real HDF5 session file through the
writer while the feed follows it; its figures equal what the file holds afterwards."""
from __future__ import annotations

import json
import math
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from ifllm_lab.session import SessionReader
from ifllm_lab.session.schema import CalibrationPhase, LayoutLevel, SessionMeta
from ifllm_lab.session.writer import SessionWriter
from ifllm_lab.study.monitor import MonitorFeed, _fixations, model_folder

W, H = 1280, 720


def _meta() -> SessionMeta:
    return SessionMeta(participant="P-0123456789", study="feed", session_id="feed-test", screen_width_px=W,
                       screen_height_px=H, screen_width_mm=531.0, screen_height_mm=299.0, viewing_distance_mm=600.0)


def _gaze_row(t: float, frame: int, valid: bool, x: float = 400.0, y: float = 300.0) -> tuple:
    nan = float("nan")
    return (t, x if valid else nan, y if valid else nan, int(valid), 0.9 if valid else 0.0, frame, x, y) + (nan,) * 10


def _write_gaze(w: SessionWriter, t0: float, t1: float, hz: float, *, start_frame: int, drop_every: int = 0,
                invalid_every: int = 0, rng=None) -> int:
    """Camera rows from t0 to t1 at ``hz``, every ``drop_every``-th frame missing and every
    ``invalid_every``-th row invalid, from a producer thread of their own; returns the next frame."""
    frame = start_frame
    rows = []
    t = t0
    k = 0
    while t < t1:
        k += 1
        if drop_every and k % drop_every == 0:
            frame += 1  # a frame the tracker never processed
        valid = not (invalid_every and k % invalid_every == 0)
        jitter = rng.normal(0, 3, 2) if rng is not None else (0.0, 0.0)
        rows.append(_gaze_row(t, frame, valid, 400.0 + jitter[0], 300.0 + jitter[1]))
        frame += 1
        t += 1.0 / hz
    th = threading.Thread(target=lambda: [w.put("gaze", r) for r in rows], name="gaze-process")
    th.start()
    th.join()
    return frame


def _phase(w, t, name, **detail):
    w.put("phases", (t, name, json.dumps(detail)))


def _validation(w, t, run, acc, prec):
    n = len(acc)
    w.put_rows("calibration/points", {
        "t": [t + i * 0.5 for i in range(n)], "phase": [int(CalibrationPhase.VALIDATION)] * n, "run": [run] * n,
        "point": list(range(n)), "target_x": [100.0] * n, "target_y": [100.0] * n, "mean_x": [101.0] * n,
        "mean_y": [99.0] * n, "accuracy_px": [a * 40 for a in acc], "precision_px": [p * 40 for p in prec],
        "accuracy_deg": list(acc), "precision_deg": list(prec), "n_samples": [20] * n})


def _layout(w, t, snapshot, turn):
    # two answers side by side, three lines each, and the prompt
    rows = {k: [] for k in ("t", "snapshot", "turn", "response", "level", "index", "x0", "y0", "x1", "y1",
                            "scroll_y", "char_start", "char_end", "text")}

    def box(resp, level, index, x0, y0, x1, y1):
        for k, v in zip(rows, (t, snapshot, turn, resp, int(level), index, x0, y0, x1, y1, 0.0, 0, 10, "")):
            rows[k].append(v)

    box(-1, LayoutLevel.PROMPT, 0, 40, 20, 1240, 60)
    for resp, x0 in ((1, 40), (2, 660)):
        box(resp, LayoutLevel.RESPONSE, 0, x0, 100, x0 + 580, 600)
        for i in range(3):
            box(resp, LayoutLevel.LINE, i, x0 + 10, 110 + 30 * i, x0 + 560, 135 + 30 * i)
    w.put_rows("layout", {k: np.asarray(v) if k != "text" else v for k, v in rows.items()})


def _turn_row(turn: int, token_times: list[float]) -> tuple:
    settings = {"response_1": {"token_times": token_times, "completion_tokens": len(token_times),
                               "t_request": token_times[0] - 0.25, "t_first_token": token_times[0]},
                "response_2": None, "context": "response_1"}
    return (10.0, turn, 1, "What is bread?", "An answer.", "Another.", "m", "m", 4, 2, 1, -1, 0,
            token_times[0], token_times[-1], 19.0, 19.5, json.dumps(settings))


def test_the_feed_follows_a_session_and_its_figures_match_the_file(tmp_path):
    path = tmp_path / "session.h5"
    meta = _meta()
    w = SessionWriter(path, meta, flush_interval=0.1)
    feed = MonitorFeed(window_s=5.0, history_s=20.0, fixation_s=3.0)
    feed.attach(w, meta, questions=3)
    rng = np.random.default_rng(3)
    st = feed.update(now=0.0)
    assert st.attached and st.gaze_rows == 0 and st.turn == -1 and st.screen_px == (W, H)

    # calibration and validation: two runs, the newest counts
    _phase(w, 0.5, "stage", stage="calibration")
    _validation(w, 2.0, 0, [2.0, 3.0, 2.5], [0.5, 0.5, 0.5])
    _validation(w, 4.0, 1, [0.6, 0.8, 1.0], [0.2, 0.3, 0.4])
    _phase(w, 5.5, "calibration_done", passed=True, run=1, report={"mean_accuracy_deg": 0.8})
    # 12 s of gaze at 30 Hz: every 10th frame dropped, every 4th row invalid
    nxt = _write_gaze(w, 0.0, 12.0, 30.0, start_frame=100, drop_every=10, invalid_every=4, rng=rng)
    _phase(w, 6.0, "stage", stage="chat")
    _phase(w, 10.0, "turn", turn=0, mode="pairwise", swapped=True, prompt="What is bread?")
    _layout(w, 11.0, 0, 0)
    _layout(w, 11.5, 1, 0)
    for k in range(3):
        feed.token(11.0 + 0.05 * k)
    w.put("mouse", (11.7, 0, 500.0, 320.0))
    w.log(30, "gaze", "3 frames dropped (processing slower than the camera)")
    live = feed.update(now=11.1)
    assert live.answering and live.live_tokens == 3 and live.live_tokens_per_s == pytest.approx(20.0)
    tokens = [11.0 + 0.05 * k for k in range(41)]
    _phase(w, 13.0, "answers", turn=0)
    w.put("turns", _turn_row(0, tokens))
    _phase(w, 19.6, "turn_end", turn=0, preference=1)
    _phase(w, 20.0, "drift_done", action="correct", offset_deg=0.7)
    _phase(w, 20.5, "pause", stage="chat")
    st = feed.update(now=12.0)

    # -- the figures, before the file is read
    assert st.turn == 0 and st.mode == "pairwise" and st.swapped and st.turns_done == 1 and st.questions == 3
    assert st.stage == "chat" and st.phase == "pause" and st.paused and not st.ended
    assert st.validation_run == 1 and st.validations == 2 and st.validation_passed is True
    assert st.validation_deg == pytest.approx(0.8) and st.validation_precision_deg == pytest.approx(0.3)
    assert st.drift_deg == pytest.approx(0.7) and st.drift_action == "correct"
    assert not st.answering and st.last_tokens_per_s == pytest.approx(40 / 2.0)
    assert st.last_first_token_s == pytest.approx(0.25)
    assert sorted(b[0] for b in st.answer_boxes) == [1, 2] and len(st.line_boxes) == 6
    assert st.prompt_box == (40.0, 20.0, 1240.0, 60.0)
    assert st.cursor == (500.0, 320.0)
    assert any("frames dropped" in m for _, m in st.warnings)
    assert st.gaze_point is not None and abs(st.gaze_point[0] - 400) < 20
    assert len(st.fixations) >= 1 and st.fixations[:, 2].max() >= 0.1  # the jitter of a still eye is one fixation

    resume = threading.Thread(target=_phase, args=(w, 21.0, "resume"), name="gui")
    resume.start()
    resume.join()
    assert not feed.update(now=12.0).paused
    w.close()
    final = feed.update(now=12.0)
    feed.detach()

    # -- the file says the same
    with SessionReader(path) as r:
        gaze = r["gaze"].read()
        assert final.gaze_rows == len(gaze) and final.gaze_valid == int(np.count_nonzero(gaze["valid"] == 1))
        frames = gaze["frame"][gaze["frame"] >= 0]
        assert final.camera_rows == len(frames) and final.dropped_total == int(np.sum(np.diff(frames) - 1))
        win = (gaze["t"] > 12.0 - 5.0) & (gaze["t"] <= 12.0)
        assert final.gaze_rate_hz == pytest.approx(np.count_nonzero(win & (gaze["frame"] >= 0)) / 5.0)
        assert final.valid_share == pytest.approx(np.count_nonzero(win & (gaze["valid"] == 1)) / np.count_nonzero(win))
        cam = gaze["frame"] >= 0
        gaps = np.concatenate(([0], np.diff(gaze["frame"][cam]) - 1))  # frames missing before each camera row
        assert final.dropped == int(gaps[win[cam]].sum()) > 0
        # per-second bins: the rates add up to the camera rows of the last 20 s
        assert final.history_rate.sum() == np.count_nonzero((gaze["t"] > 12.0 - 20.0) & (gaze["t"] <= 12.0))
        assert final.counts["gaze"] == len(gaze) and final.counts["phases"] == len(r["phases"])
        assert final.counts["layout"] == len(r["layout"]) and final.counts["turns"] == len(r["turns"]) == 1
        assert final.counts["calibration/points"] == len(r["calibration/points"])
        pts = r["calibration/points"].read()
        last = pts[(pts["phase"] == int(CalibrationPhase.VALIDATION)) & (pts["run"] == pts["run"].max())]
        assert final.validation_deg == pytest.approx(float(np.mean(last["accuracy_deg"])))
        from ifllm_lab.session.catalog import last_validation_deg
        assert final.validation_deg == pytest.approx(last_validation_deg(r))
        settings = json.loads(r["turns"].read()["settings"][0])
        times = settings["response_1"]["token_times"]
        assert final.last_tokens_per_s == pytest.approx((len(times) - 1) / (times[-1] - times[0]))
    assert final.file_bytes > 0 and final.free_bytes > 0 and nxt > 100


def test_the_feed_starts_afresh_for_each_session_and_never_blocks_a_producer(tmp_path):
    feed = MonitorFeed(window_s=2.0, history_s=4.0)
    first = SessionWriter(tmp_path / "a.h5", _meta(), flush_interval=0.1)
    feed.attach(first)
    _write_gaze(first, 0.0, 2.0, 30.0, start_frame=0)
    first.close()
    st = feed.update(now=2.0)
    assert st.gaze_rows == 60 and st.gaze_rate_hz == pytest.approx(30.0, abs=0.6) and st.valid_share == 1.0

    second = SessionWriter(tmp_path / "b.h5", _meta(), flush_interval=0.1)
    feed.attach(second)  # detaches from the first
    assert not first._taps
    st = feed.update(now=0.0)
    assert st.gaze_rows == 0 and st.path.endswith("b.h5") and math.isnan(st.validation_deg)
    # a burst of rows from another thread is queued, never processed in the producer
    _write_gaze(second, 0.0, 60.0, 60.0, start_frame=0)
    sent = second.stats.streams["gaze"].sent
    assert sent >= 3600 and len(feed._inbox) == sent
    st = feed.update(now=60.0)
    assert st.gaze_rows == sent and not feed._inbox
    assert len(feed._gaze) <= 60 * 6  # only the last seconds are kept
    feed.close()
    assert not second._taps
    second.close()


def test_camera_copies_are_small_rate_limited_and_carry_the_landmarks():
    feed = MonitorFeed(camera_hz=5.0, camera_width=320)
    pts = np.column_stack([np.linspace(100, 500, 478), np.linspace(50, 400, 478), np.zeros(478)]).astype(np.float32)
    kept = set()
    for i in range(60):  # two seconds at 30 Hz, a face in every other frame
        img = np.full((480, 640, 3), i, np.uint8)
        sample = SimpleNamespace(face=SimpleNamespace(points=pts) if i % 2 == 0 else None)
        feed.camera(SimpleNamespace(t=i / 30.0, index=i, image=img), sample)
        shot = feed.update(now=i / 30.0).camera
        kept.add(shot.frame)
        assert shot.image.shape == (240, 320, 3) and shot.scale == 0.5 and int(shot.image[0, 0, 0]) == shot.frame
        if shot.frame % 2 == 0:
            np.testing.assert_allclose(shot.points[0], [50.0, 25.0])
        else:
            assert shot.points is None
    assert 9 <= len(kept) <= 11  # 5 a second


def test_quick_fixations_find_a_steady_look_and_skip_a_saccade():
    t = np.arange(0, 1.0, 1 / 30)
    x = np.where(t < 0.5, 300.0, 900.0) + np.random.default_rng(1).normal(0, 2, len(t))
    y = np.full(len(t), 400.0)
    fx = _fixations(t, x, y, px_per_deg=40.0)
    assert len(fx) == 2
    assert abs(fx[0, 0] - 300) < 5 and abs(fx[1, 0] - 900) < 5 and (fx[:, 2] >= 0.4).all()


def test_the_monitor_model_setting_is_found_beside_the_study_file(tmp_path):
    study = tmp_path / "studies" / "s.toml"
    study.parent.mkdir()
    study.write_text("")
    assert model_folder("models/rm", str(study)) == str(tmp_path / "studies" / "models" / "rm")
    assert model_folder("", str(study)) == ""
    assert model_folder(str(tmp_path / "x"), "<defaults>") == str(tmp_path / "x")


# -- the reward model's reading of each turn ---------------------------------------------------
@pytest.fixture(scope="module")
def implicit_model(tmp_path_factory):
    from tests.support.monitor import implicit_model as make

    return make(tmp_path_factory.mktemp("rm"), tmp_path_factory.mktemp("rm-cache"))


def _replay_live(src: str, writer: SessionWriter) -> None:
    """Every row of a recorded session put again in the order the app writes them: each row
    at its time, a ``turns`` row when the participant leaves its turn (``t_end``)."""
    from ifllm_lab.session.schema import STREAMS

    items = []
    with SessionReader(src) as r:
        for name in ("calibration/points", "phases", "layout", "gaze", "mouse", "turns"):
            rows = r[name].read()
            when = rows["t_end"] if name == "turns" else rows["t"]
            cols = STREAMS[name].column_names
            for i, row in enumerate(rows):  # a turn is left before the next one starts
                items.append((float(when[i]), name != "turns", name, tuple(row[c] for c in cols)))
    items.sort(key=lambda x: x[:2])
    for _, _, name, row in items:
        writer.put(name, row)


def test_predictions_from_the_live_rows_equal_those_of_the_finished_file(tmp_path, implicit_model):
    from ifllm_lab.reward.predict import predict_sessions
    from ifllm_lab.reward.store import load_model
    from ifllm_lab.study.monitor import TurnPredictor
    from ifllm_lab.synthetic.session import make_study_session

    src = str(tmp_path / "recorded.h5")
    prefs = make_study_session(src, "P-live", turns=4, signal=0.9, seed=99)
    with SessionReader(src) as r:
        meta = r.meta
    feed = MonitorFeed()
    predictor = TurnPredictor(implicit_model)
    feed.set_predictor(predictor)
    live = tmp_path / "live.h5"
    w = SessionWriter(live, meta, flush_interval=0.2)
    feed.attach(w, meta, questions=4)
    _replay_live(src, w)
    w.close()
    st = feed.update(now=200.0)
    assert st.turns_done == 4
    assert predictor.wait(120)
    st = feed.update(now=200.0)
    feed.close()
    assert "pairwise, implicit, logistic" in st.model_name and not st.model_error
    got = {p.turn: p for p in st.predictions}
    assert sorted(got) == [0, 1, 2, 3] and all(not p.error for p in got.values()), [p.error for p in got.values()]

    model, info = load_model(implicit_model)
    want, _ = predict_sessions(model, info, [src], cache_dir=str(tmp_path / "cache"), workers=1)
    assert len(want) == 4
    for w_ in want:
        p = got[w_.turn]
        assert p.p == pytest.approx(w_.p, abs=1e-6), (w_.turn, p.p, w_.p)
        assert p.predicted == w_.predicted and p.actual == w_.actual == prefs[w_.turn]
        assert p.seconds < 60 and p.moved_by
    assert sum(p.agrees for p in got.values()) >= 2  # a strong signal: mostly right


def test_a_model_that_cannot_be_used_is_said_once(tmp_path):
    from ifllm_lab.study.monitor import TurnPredictor

    pr = TurnPredictor(str(tmp_path / "no-such-model"))
    assert pr.wait(30)
    assert pr.error and pr.model is None
    pr.close()
