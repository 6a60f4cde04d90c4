"""The live monitor beside the real study app (Qt offscreen): a rendered face video as the
camera, the real gaze pipeline and llama.cpp with the bundled model. Its figures equal the
session file read back afterwards; its buttons pause, recalibrate and end the session.

Screenshots (1024 x 640 and 2560 x 1440) go to ``$IFLLM_SCREENSHOTS`` (else the test's tmp
folder) and are copied to /tmp/monitor-shots/."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from PySide6.QtWidgets import QApplication

from ifllm_lab.session import SessionReader
from ifllm_lab.ui.monitor import MonitorWindow

from tests.support.screenshots import shots_folder
from tests.support.study_app import StallMeter, ask, calibrate, click, make_app, phases, rate, study, wait_setup_ready

SHOTS_COPY = Path("/tmp/monitor-shots")


def _shot(win: MonitorWindow, shots: Path, name: str, size: tuple[int, int]) -> Path:
    old = win.size()
    win.resize(*size)
    for _ in range(5):
        QApplication.processEvents()
    win.refresh()
    img = win.grab().toImage()
    assert (img.width(), img.height()) == size, (img.width(), img.height())
    path = shots / f"{name}-{size[0]}.png"
    assert img.save(str(path))
    try:
        SHOTS_COPY.mkdir(exist_ok=True)
        shutil.copy(path, SHOTS_COPY / path.name)
    except OSError:
        pass
    win.resize(old)
    return path


def _labels_fit(win: MonitorWindow) -> None:
    """Nothing of the window is cut off: every button shows its whole text."""
    for b in (win.pause_button, win.recalibrate_button, win.end_button):
        assert b.width() >= b.minimumSizeHint().width() - 1, (b.text(), b.width(), b.minimumSizeHint())


def test_the_monitor_follows_a_session_live_and_its_buttons_work(qtbot, tmp_path, face_video):
    shots = shots_folder(tmp_path)
    cfg = study(tmp_path, face_video, mode="pairwise", questions=2)
    cfg["llm"][0]["max_tokens"] = 40
    app = make_app(qtbot, cfg)
    mon = MonitorWindow(app)
    qtbot.addWidget(mon)
    mon.resize(1024, 640)
    mon.show()
    qtbot.waitExposed(mon)
    try:
        wait_setup_ready(qtbot, app)
        st = mon.refresh()
        assert not st.attached and mon.title.text().startswith("No session yet")
        assert not mon.pause_button.isEnabled() and not mon.end_button.isEnabled()
        # the camera picture with the face reaches the monitor before the session
        qtbot.waitUntil(lambda: mon.refresh().camera is not None and mon.state.camera.points is not None,
                        timeout=20_000)
        app.setup_page.code.setText("lab-11")
        click(qtbot, app.setup_page.start_button)
        click(qtbot, app.consent_page.agree_button)
        path = app.session.path
        st = mon.refresh()
        assert st.attached and st.path == path and st.questions == 2 and st.participant == app.session.participant
        calibrate(qtbot, app)
        st = mon.refresh()
        report = app.wizard.result.report
        assert st.validation_deg == report.mean_accuracy_deg or abs(st.validation_deg - report.mean_accuracy_deg) < 1e-4
        assert st.validation_passed == bool(report.passed) and st.stage == "chat"

        # -- turn 1, with the monitor refreshing: the participant's window does not stall
        stall = StallMeter()
        page = app.chat_page
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest

        QTest.keyClicks(page.question, "What is a good way to learn to cook?")
        stall.start()
        QTest.keyClick(page.question, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: mon.refresh().live_tokens >= 3, timeout=30_000)
        live = mon.state
        assert live.answering and live.turn == 0 and live.mode == "pairwise"
        assert np.isfinite(live.live_tokens_per_s) and live.live_tokens_per_s > 0
        qtbot.waitUntil(lambda: page.state == "rating", timeout=90_000)
        stall.stop()
        print(f"\nGUI thread with the monitor open: longest stall {stall.max_gap * 1000:.1f} ms over "
              f"{stall.ticks} ticks; monitor refresh max {mon.refresh_ms_max:.1f} ms over {mon.refreshes}")
        assert stall.ticks > 20 and stall.max_gap < 1.0
        # reading the answers: the gaze reaches the miniature screen over the answer boxes
        qtbot.waitUntil(lambda: len(mon.refresh().answer_boxes) == 2 and mon.state.gaze_point is not None,
                        timeout=10_000)
        qtbot.wait(1500)
        mid = mon.refresh()
        assert mid.gaze_rate_hz > 5 and 0 <= mid.valid_share <= 1 and mid.file_bytes > 0 and mid.free_bytes > 0
        assert not mid.answering
        _shot(mon, shots, "monitor", (1024, 640))
        _shot(mon, shots, "monitor", (2560, 1440))
        _labels_fit(mon)

        # -- recalibrate at the next turn: a calibration instead of the drift check and question 2
        rate(qtbot, app, 4, 2, "left")
        assert mon.recalibrate() and app.recalibrate_next
        assert not mon.recalibrate_button.isEnabled() and not mon.recalibrate()  # once
        assert mon.refresh().recalibration_requested
        click(qtbot, page.next_button)
        qtbot.waitUntil(lambda: app.stage == "calibration" and app.wizard.stage == "face", timeout=5_000)
        st = mon.refresh()
        assert st.turns_done == 1 and np.isfinite(st.last_tokens_per_s) and st.last_tokens_per_s > 0
        assert not mon.pause_button.isEnabled()  # never in the middle of a calibration
        calibrate(qtbot, app)
        assert not mon.refresh().recalibration_requested and mon.state.validations == 2

        # -- pause and resume while the participant asks
        assert mon.toggle_pause() and app.stage == "paused" and mon.pause_button.text() == "Resume"
        assert mon.refresh().paused
        _shot(mon, shots, "monitor-paused", (1024, 640))
        assert mon.toggle_pause() and app.stage == "chat" and page.state == "asking"
        assert not mon.refresh().paused

        # -- question 2, then End session (two clicks)
        ask(qtbot, app, "And how do I make bread?")
        assert mon.refresh().turn == 1
        assert not mon.end_session() and app.session is not None  # the first click asks again
        assert mon.end_button.text().startswith("Click again")
        assert mon.end_session()
        assert app.session is None and app.stage == "done"
        mon.feed.refresh_disk()
        final = mon.refresh()
        assert final.ended and "live monitor" in final.end_reason
        assert mon.title.text().endswith("ENDED") and not mon.end_button.isEnabled()
    finally:
        mon.close()
        app.close()
    assert not app.camera_taps  # closing the monitor leaves nothing in the app

    # -- the file says what the monitor said
    with SessionReader(path) as r:
        gaze = r["gaze"].read()
        assert final.gaze_rows == len(gaze) and final.gaze_valid == int(np.count_nonzero(gaze["valid"] == 1))
        cam = gaze["frame"] >= 0
        assert final.camera_rows == int(cam.sum())
        assert final.dropped_total == int(np.clip(np.diff(gaze["frame"][cam]) - 1, 0, None).sum())
        for stream in ("gaze", "mouse", "layout", "phases", "turns", "calibration/points", "log"):
            assert final.counts.get(stream, 0) == len(r[stream]), stream
        assert final.turns_done == len(r["turns"]) == 1
        # the rate and valid share of the last seconds at the moment of the mid-session look
        win = (gaze["t"] > mid.t - mid.window_s) & (gaze["t"] <= mid.t)
        assert abs(np.count_nonzero(win & cam) / mid.window_s - mid.gaze_rate_hz) <= 1.0  # a row or five in flight
        n = np.count_nonzero(win)
        assert abs(np.count_nonzero(win & (gaze["valid"] == 1)) / n - mid.valid_share) <= 0.05
        assert final.file_bytes == os.path.getsize(path)
        ph = phases(r)
        names = [n for _, n, _ in ph]
        i = names.index("recalibration_requested")
        assert names.index("recalibration") > i and "drift_check" not in names[i:]
        after = names[names.index("recalibration"):]
        assert "calibration_stage" in after[:4] and ph[names.index("recalibration")][2]["turn"] == 1
        assert names.count("pause") == 1 and names.index("resume") > names.index("pause")
        end = [d for _, n, d in ph if n == "end"][0]
        assert end["reason"] == "ended early by the researcher (live monitor)" and end["turns"] == 1
        assert r.state in ("ended_early", "complete")
        settings = json.loads(r["turns"].read()["settings"][0])
        assert settings["response_1"]["token_times"]


def test_a_piloted_session_beside_the_monitor_with_a_reward_model(qtbot, tmp_path, face_video):
    """A simulated participant goes through a whole session (real input events) while the
    monitor follows it with the study's reward model: after each rated question the
    prediction is shown beside the choice, and it equals the model's reading of the file."""
    from ifllm_lab.reward.predict import predict_sessions
    from ifllm_lab.reward.store import load_model
    from ifllm_lab.ui.pilot import PilotParticipant

    from tests.support.monitor import implicit_model

    model_dir = implicit_model(tmp_path / "rm", tmp_path / "rm-cache")
    cfg = study(tmp_path, face_video, mode="pairwise", questions=2, monitor_model=model_dir)
    cfg["llm"][0]["max_tokens"] = 24
    app = make_app(qtbot, cfg)
    mon = MonitorWindow(app)
    qtbot.addWidget(mon)
    mon.resize(1024, 640)
    mon.show()
    report = {}
    pilot = PilotParticipant(app, timeout_s=300, read_s=1.0)
    pilot.finished.connect(report.update)
    try:
        pilot.start()
        qtbot.waitUntil(lambda: bool(report), timeout=320_000)
        assert report["ok"], report
        mon.refresh()  # takes in the rows queued since the last refresh: the last turn goes to the predictor
        assert mon.feed.predictor.wait(120)
        final = mon.refresh()
        _shot(mon, shots_folder(tmp_path), "monitor-prediction", (1600, 900))
    finally:
        mon.close()
        app.close()
    path = report["session"]
    assert final.path == path and final.ended and final.turns_done == 2
    assert "implicit" in final.model_name and not final.model_error
    preds = {p.turn: p for p in final.predictions}
    assert sorted(preds) == [0, 1], [(p.turn, p.error) for p in final.predictions]
    assert "P(answer 1)" in mon.prediction_info.text() and "participant:" in mon.prediction_info.text()
    with SessionReader(path) as r:
        for stream in ("gaze", "mouse", "layout", "phases", "turns", "calibration/points", "log"):
            assert final.counts.get(stream, 0) == len(r[stream]), stream
        assert final.gaze_rows == len(r["gaze"])
        turns = r["turns"].read()
    model, info = load_model(model_dir)
    want, _ = predict_sessions(model, info, [path], cache_dir=str(tmp_path / "cache"), workers=1)
    for w in want:
        p = preds[w.turn]
        assert not p.error, p.error
        assert p.actual == int(turns["preference"][w.turn]) == w.actual
        assert abs(p.p - w.p) < 1e-6, (w.turn, p.p, w.p)
