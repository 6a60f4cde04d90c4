"""The Qt adapter for jobs (offscreen): signals on the GUI thread in order, cancel from the
GUI, failures, a window closed or deleted while its job runs, a crashing child process."""
from __future__ import annotations

import math
import os
import signal
import threading
import time

import pytest

from PySide6.QtWidgets import QLabel, QWidget

from ifllm_lab.analysis.replay import ReplayData
from ifllm_lab.jobs import CANCELLED, DONE, FAILED, RUNNING, Job, in_child, read_status
from ifllm_lab.synthetic.session import make_replay_session
from ifllm_lab.ui.jobs import JobRunner
from ifllm_lab.ui.replay.window import ReplayWindow

from tests.support.jobs import work_until_cancelled

WAIT_MS = 60_000


def test_progress_reaches_the_gui_thread_in_order(qtbot):
    n = 6
    acks = threading.Semaphore(0)

    def steps(ctx):
        for i in range(1, n + 1):
            ctx.log(f"line {i}")
            ctx.progress(i / n, f"step {i}")
            assert acks.acquire(timeout=60), "the GUI never saw the step"  # the job waits for the window
        return "all steps"

    runner = JobRunner(Job(steps, name="steps"))
    seen, logged, threads, order = [], [], set(), []
    runner.started.connect(lambda: order.append("started"))

    def on_progress(fraction, message):
        threads.add(threading.current_thread())
        seen.append((fraction, message))
        acks.release()

    runner.progress.connect(on_progress)
    runner.logged.connect(logged.append)
    runner.succeeded.connect(lambda result: order.append(("succeeded", result)))
    runner.ended.connect(lambda state: order.append(("ended", state)))
    with qtbot.waitSignal(runner.ended, timeout=WAIT_MS):
        runner.start()
    assert seen[:n] == [(i / n, f"step {i}") for i in range(1, n + 1)]
    assert threads == {threading.main_thread()}
    assert [m for m in logged if m.startswith("line")] == [f"line {i}" for i in range(1, n + 1)]
    assert order == ["started", ("succeeded", "all steps"), ("ended", DONE)]
    assert runner.state == DONE and not runner.running


def test_unknown_progress_is_nan(qtbot):
    shown = threading.Event()

    def spin(ctx):
        ctx.progress(None, "working it out")
        assert shown.wait(60)
        return 1

    runner = JobRunner(Job(spin))
    seen = []
    runner.progress.connect(lambda f, m: (seen.append((f, m)), shown.set()))
    with qtbot.waitSignal(runner.succeeded, timeout=WAIT_MS):
        runner.start()
    assert math.isnan(seen[0][0]) and seen[0][1] == "working it out"


def test_cancel_from_the_gui_stops_the_job_and_reports_its_partial_work(qtbot):
    runner = JobRunner(Job(work_until_cancelled, name="endless"))
    pieces = []

    def on_partial(done):
        pieces.append(done)
        if len(pieces) == 3:
            runner.cancel()

    runner.partial.connect(on_partial)
    with qtbot.waitSignal(runner.cancelled, timeout=WAIT_MS) as blocker:
        runner.start()
    partial = blocker.args[0]
    assert len(partial) >= 3 and partial == list(range(len(partial)))
    assert runner.state == CANCELLED and runner.job.state == CANCELLED
    assert pieces[-1] == partial  # every partial arrived, in order, the last one is what it reports
    assert pieces == [list(range(k + 1)) for k in range(len(pieces))]


def test_an_exception_arrives_as_failed_with_one_line(qtbot):
    def broken(ctx):
        ctx.progress(0.2, "starting")
        {}["missing key"]

    runner = JobRunner(Job(broken))
    got = []
    runner.succeeded.connect(lambda r: got.append(("succeeded", r)))
    runner.cancelled.connect(lambda r: got.append(("cancelled", r)))
    with qtbot.waitSignal(runner.failed, timeout=WAIT_MS) as blocker:
        runner.start()
    assert blocker.args == ["KeyError: 'missing key'"]
    qtbot.wait(100)
    assert got == [] and runner.state == FAILED
    assert "Traceback" in runner.job.traceback


def test_deleting_the_window_mid_job_is_clean(qtbot):
    window = QWidget()
    label = QLabel(window)
    runner = JobRunner(Job(work_until_cancelled, name="endless"), window)
    updates = []

    def show(fraction, message):
        label.setText(message)  # a child of the window: would crash if called after it is gone
        updates.append(message)

    runner.progress.connect(show)
    window.show()
    runner.start()
    qtbot.waitUntil(lambda: len(updates) >= 3, timeout=WAIT_MS)
    job = runner.job
    assert job.state == RUNNING
    gone = []
    window.destroyed.connect(lambda *_: gone.append(True))
    window.deleteLater()
    qtbot.waitUntil(lambda: bool(gone), timeout=WAIT_MS)
    n = len(updates)
    assert job.wait(60) and job.state == CANCELLED  # asked to stop when its window went
    qtbot.wait(200)  # anything still queued would arrive now
    assert len(updates) == n


def test_closing_the_replay_window_mid_work_is_clean(qtbot, tmp_path):
    path = tmp_path / "replay.h5"
    make_replay_session(str(path), seconds=240, turn_s=120)
    data = ReplayData(str(path))
    win = ReplayWindow(data)
    job = win.background.job
    win.show()
    qtbot.waitUntil(lambda: job.state != "queued", timeout=WAIT_MS)
    win.close()
    gone = []
    win.destroyed.connect(lambda *_: gone.append(True))
    win.deleteLater()
    qtbot.waitUntil(lambda: bool(gone), timeout=WAIT_MS)
    assert job.wait(120)
    assert job.state in (CANCELLED, DONE)  # done only if it finished before the close
    data.close()


def test_the_replay_window_gets_its_background_work_through_a_job(qtbot, tmp_path):
    path = tmp_path / "replay.h5"
    make_replay_session(str(path), seconds=60, turn_s=30)
    data = ReplayData(str(path))
    win = ReplayWindow(data)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.background.ended, timeout=120_000) as blocker:
        pass
    assert blocker.args == [DONE] and win.events is not None
    assert len(win._metrics) == len(data.turns)  # every turn's AOI metrics, computed in the job
    win.close()
    data.close()


def test_a_killed_child_process_fails_the_job_not_the_window(qtbot, tmp_path):
    folder = tmp_path / "child"
    window = QWidget()
    qtbot.addWidget(window)
    runner = JobRunner(Job(in_child, work_until_cancelled, child_dir=folder, name="in a child"), window)
    with qtbot.waitSignal(runner.failed, timeout=WAIT_MS) as blocker:
        runner.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = read_status(folder)
            if st is not None and st.state == RUNNING and st.message:
                break
            qtbot.wait(20)
        else:
            pytest.fail("the child never ran")
        os.kill(st.pid, signal.SIGKILL)
    assert "SIGKILL" in blocker.args[0] and runner.state == FAILED
    assert read_status(folder).state == FAILED
    window.setWindowTitle("still here")  # the window goes on
    assert window.windowTitle() == "still here"
