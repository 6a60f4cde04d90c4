"""Killing the study app mid-turn loses at most the last second; the next start offers to
resume or close the interrupted session, and resuming goes on in a linked part file.

The app runs in a child process (Qt offscreen, the video camera, the real small LLM), is
driven to the middle of an answer and killed with SIGKILL; the parent then starts the
app again on the same data folder, as the researcher would.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from ifllm_lab.session import SessionReader
from ifllm_lab.session.recovery import find_interrupted

from tests.support.child_process import ChildLines, child_env, kill_child
from tests.support.study_app import ask, click, make_app, rate, study

pytestmark = pytest.mark.slow

CHILD = r"""
import json, sys, time
from PySide6.QtCore import QTimer, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from ifllm_lab.config import config_from_dict
from ifllm_lab.ui.calibration_screens import FacePositionTargets
from ifllm_lab.ui.study_app import StudyApp

cfg = json.loads(sys.argv[1])
qapp = QApplication([])
app = StudyApp(config_from_dict(cfg, "<child>"), countdown_s=0.3,
               face_targets=FacePositionTargets(min_distance_mm=150.0))
app.resize(1280, 720)
app.show()
state = {"step": "setup", "t": time.monotonic()}

def step():
    s = state["step"]
    if s == "setup" and app._llm_ok is not None and app.tracker is not None:
        app.setup_page.code.setText("kill-01")
        app.setup_page.start_button.click()
        app.consent_page.agree_button.click()
        print("SESSION", app.session.path, app.clock.unix_start, flush=True)
        state["step"] = "face"
    elif s == "face" and app.wizard.stage == "face":
        QTest.keyClick(app.wizard.face_guide, Qt.Key.Key_F12)
        state["step"] = "calibrating"
    elif s == "calibrating" and app.wizard.stage in ("report", "failed"):
        app.wizard.report_view.continue_button.click()
        state["step"] = "chat"
    elif s == "chat" and app.stage == "chat":
        QTest.keyClicks(app.chat_page.question, "Tell me a long story about a cat.")
        QTest.keyClick(app.chat_page.question, Qt.Key.Key_Return)
        state["step"] = "answering"
    elif s == "answering" and len(app.chat_page.panels["left"].view.text()) > 10:
        print("STREAMING", app.clock.now(), flush=True)
        state["step"] = "wait"

timer = QTimer()
timer.timeout.connect(step)
timer.start(20)
qapp.exec()
"""


def test_kill_mid_turn_then_resume_or_close(qtbot, tmp_path, face_video):
    cfg = study(tmp_path, face_video, mode="pointwise", questions=2, questionnaire=[])
    cfg["llm"][0]["max_tokens"] = 400  # still answering when killed
    cfg["calibration"]["drift_check_every"] = 0
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env(), cwd=str(tmp_path))
    lines = ChildLines(proc.stdout)
    try:
        _, path, unix_start = lines.wait_for("SESSION", 120).split()
        lines.wait_for("STREAMING", 120)
        time.sleep(1.5)  # answering, mouse poll and gaze running
        t_kill = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        kill_child(proc)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-3000:]

    # -- what the killed app left: readable, complete up to <= 1 s before the kill
    with SessionReader(path) as r:
        assert not r.complete
        last = max(float(r[n].t[-1]) for n in ("mouse", "gaze") if len(r[n]))
        lost_s = t_kill - (float(unix_start) + last)
        print(f"\nkilled mid-turn: last row {lost_s:.3f} s before the kill")
        assert 0 <= lost_s <= 1.0
        names = list(r["phases"].column("name"))
        assert "turn" in names and len(r["turns"]) == 0  # the prompt is in the turn phase
        prompt = json.loads(r["phases"].column("detail")[names.index("turn")])["prompt"]
        assert prompt == "Tell me a long story about a cat."
        assert len(r["layout"]) > 0  # the streaming answer's layout up to the kill

    # a copy of it (as if a second session had been interrupted) to close instead
    copy = Path(path).with_name("P-COPY_19990101-000000.h5")
    shutil.copyfile(path, copy)

    # -- the next start lists both; "Close it" closes the copy; "Resume" goes on
    app = make_app(qtbot, cfg)
    try:
        rows = {Path(row.path).name: row for row in app.setup_page.rows}
        assert set(rows) == {Path(path).name, copy.name}
        assert "interrupted" in rows[Path(path).name].label.text()
        click(qtbot, rows[copy.name].close_button)
        assert [Path(row.path).name for row in app.setup_page.rows] == [Path(path).name]
        with SessionReader(copy) as r:  # closed: a clean, compacted file marked as recovered
            assert "recovered_utc" in r.attrs and len(r["mouse"]) > 0
            assert [p for p in r.problems if "recovered copy" not in p] == []
        qtbot.waitUntil(lambda: app._llm_ok is not None and app.setup_page.preview.status.good, timeout=60_000)
        click(qtbot, app.setup_page.rows[0].resume_button)
        assert app.stage == "calibration"  # consent was given in part 1; calibrate again
        part2 = app.session.path
        assert part2.endswith("_part2.h5")
        QTest.keyClick(app.wizard.face_guide, Qt.Key.Key_F12)
        qtbot.waitUntil(lambda: app.wizard.stage in ("report", "failed"), timeout=60_000)
        click(qtbot, app.wizard.report_view.continue_button)
        qtbot.waitUntil(lambda: app.stage == "chat", timeout=5_000)
        assert app.chat_page.progress.text() == "Question 1 of 2"  # the killed turn is asked again
        ask(qtbot, app, "Tell me a short story.")
        rate(qtbot, app, 4)
        click(qtbot, app.chat_page.next_button)
        ask(qtbot, app, "Thanks. One more?")
        rate(qtbot, app, 3)
        click(qtbot, app.chat_page.next_button)
        qtbot.waitUntil(lambda: app.stage == "done", timeout=30_000)
    finally:
        app.close()
    assert find_interrupted(Path(path).parent) == []
    with SessionReader(part2) as r2, SessionReader(path) as r1:
        assert r2.complete and "recovered_utc" in r1.attrs
        assert r2.meta.session_id == r1.meta.session_id and r2.meta.participant == r1.meta.participant
        assert r2.meta.extra["continues"] == str(Path(path).resolve()) and r2.meta.extra["part"] == 2
        assert list(r2["turns"].column("turn")) == [0, 1]
        names = list(r2["phases"].column("name"))
        assert json.loads(r2["phases"].column("detail")[names.index("consent")])["continued_from"] == path
