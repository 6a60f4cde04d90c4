"""Jobs without Qt: progress, cancel, errors, the status kept on disk, jobs in a child
process (killed ones included), and the IFLLM import as a job on a piece of the real release."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from ifllm_lab.importers.ifllm import ImportReport, import_job
from ifllm_lab.jobs import (
    CANCELLED, DONE, FAILED, RUNNING, Job, JobCancelled, JobError, JobFailed, JobStatusError, in_child, read_status,
    request_cancel, start_child,
)
from ifllm_lab.jobs.status import MIN_WRITE_INTERVAL_S, JobStatus, StatusFile
from ifllm_lab.session import SessionReader

from tests.support.jobs import work_until_cancelled
from tests.support.release_piece import release_piece

WAIT_S = 60  # generous: a child process starts a Python interpreter


def _wait_for(pred, timeout=WAIT_S, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# -- job bodies (module level: a child process imports them by name) -------------------------
def count_to(ctx, n, *, step_message="step"):
    for i in range(n):
        ctx.check_cancel()
        ctx.log(f"{step_message} {i + 1}")
        ctx.progress((i + 1) / n, f"{step_message} {i + 1} of {n}")
    return n * 10


def _pieces(message: str) -> int:
    head = message.split(" ", 1)[0]
    return int(head) if head.isdigit() else 0


def fail_with(ctx, text):
    ctx.progress(0.5, "half way")
    raise ValueError(text)


def exit_abruptly(ctx, code):
    ctx.progress(0.3, "about to go")
    # a progress report right after the job started is held back for up to
    # MIN_WRITE_INTERVAL_S (status.json is throttled); the process goes once it is out
    time.sleep(2 * MIN_WRITE_INTERVAL_S)
    os._exit(code)


# -- in this thread --------------------------------------------------------------------------
def test_a_job_reports_in_order_and_ends_with_its_result():
    events = []
    job = Job(count_to, 4, name="count", step_message="piece")
    job.add_listener(events.append)
    assert job.state == "queued"
    assert job.run() == DONE
    assert job.result == 40 and job.error is None and job.fraction == 1.0
    progress = [(e.fraction, e.message) for e in events if e.kind == "progress"]
    assert progress[:4] == [(0.25, "piece 1 of 4"), (0.5, "piece 2 of 4"), (0.75, "piece 3 of 4"),
                            (1.0, "piece 4 of 4")]
    assert [e.kind for e in events][0] == "started" and events[-1].kind == "ended"
    assert events[-1].state == DONE and events[-1].value == 40
    assert [m for m in job.log_lines if m.startswith("piece")] == ["piece 1", "piece 2", "piece 3", "piece 4"]
    assert job.started <= job.ended
    with pytest.raises(JobError):
        job.run()


def test_cancel_stops_a_running_job_and_keeps_its_partial_work():
    job = Job(work_until_cancelled, name="endless")
    t = threading.Thread(target=job.run)
    t.start()
    _wait_for(lambda: job.partial is not None and len(job.partial) >= 3, what="three pieces of work")
    job.cancel()
    assert job.wait(WAIT_S)
    t.join(WAIT_S)
    assert job.state == CANCELLED and job.result is None
    assert len(job.partial) >= 3 and job.partial == list(range(len(job.partial)))
    n = len(job.partial)
    time.sleep(0.1)
    assert len(job.partial) == n  # it stopped


def test_a_queued_job_cancelled_never_runs():
    ran = []
    job = Job(lambda ctx: ran.append(1))
    job.cancel()
    assert job.run() == CANCELLED and ran == []


def test_cancelled_carries_what_the_job_says_it_did():
    def stops(ctx):
        ctx.partial("first half")
        raise JobCancelled("stopped half way", partial="both halves")

    job = Job(stops)
    assert job.run() == CANCELLED
    assert job.partial == "both halves" and job.error == "stopped half way"


def test_an_exception_fails_the_job_with_one_line_and_the_traceback_in_the_log(tmp_path):
    job = Job(fail_with, "the value is bad\nand more detail below", status_dir=tmp_path / "j")
    assert job.run() == FAILED
    assert job.error == "ValueError: the value is bad"
    assert isinstance(job.exception, ValueError) and "Traceback" in job.traceback
    log_text = (tmp_path / "j" / "log.txt").read_text()
    assert "Traceback (most recent call last)" in log_text and "in fail_with" in log_text
    st = read_status(tmp_path / "j")
    assert st.state == FAILED and st.error == "ValueError: the value is bad" and st.fraction == 0.5
    assert st.ended is not None and st.started <= st.ended


def test_this_products_errors_keep_their_own_words(tmp_path):
    job = Job(import_job, str(tmp_path / "nothing-here"), str(tmp_path / "out"))
    assert job.run() == FAILED
    assert "no such file or folder" in job.error and "\n" not in job.error
    assert not job.error.startswith("ReleaseFormatError")


def test_an_error_raised_on_the_way_out_of_a_cancel_is_a_cancel():
    started = threading.Event()

    def body(ctx):
        started.set()
        while not ctx.cancelled:
            time.sleep(0.01)
        raise OSError("the file was closed under me")

    job = Job(body)
    t = threading.Thread(target=job.run)
    t.start()
    assert started.wait(WAIT_S)
    job.cancel()
    t.join(WAIT_S)
    assert job.state == CANCELLED
    assert any("the file was closed under me" in line for line in job.log_lines)


# -- status on disk ---------------------------------------------------------------------------
def test_the_status_file_while_running_and_after(tmp_path):
    folder = tmp_path / "job"
    gate = threading.Event()

    def body(ctx):
        ctx.progress(0.4, "waiting at the gate")
        ctx.log("at the gate")
        assert gate.wait(WAIT_S)
        return "through"

    job = Job(body, name="gated", status_dir=folder)
    assert read_status(folder).state == "queued"
    t = threading.Thread(target=job.run)
    t.start()
    st = _wait_for(lambda: (s := read_status(folder)) is not None and s.message == "waiting at the gate" and s,
                   what="the running status")
    assert st.state == RUNNING and st.process_alive is True and st.pid == os.getpid()
    assert st.name == "gated" and st.fraction == 0.4 and st.started is not None and st.ended is None
    # a second job cannot take a folder whose job is running
    with pytest.raises(JobError, match="still running"):
        Job(body, status_dir=folder)
    gate.set()
    t.join(WAIT_S)
    raw = json.loads((folder / "status.json").read_text())
    assert raw["state"] == "done" and raw["fraction"] == 1.0 and raw["pid"] == os.getpid()
    assert raw["started"].endswith("+00:00") and raw["ended"].endswith("+00:00")
    assert [p.name for p in folder.iterdir() if ".tmp" in p.name] == []  # written by replace
    assert "at the gate" in (folder / "log.txt").read_text()
    # the folder can take the next job; a cancel left behind by a finished one is dropped
    request_cancel(folder)
    again = Job(count_to, 2, status_dir=folder)
    assert again.run() == DONE


def test_a_cancel_file_stops_a_job_from_another_process(tmp_path):
    folder = tmp_path / "job"
    job = Job(work_until_cancelled, status_dir=folder)
    t = threading.Thread(target=job.run)
    t.start()
    _wait_for(lambda: job.partial is not None, what="work")
    request_cancel(folder)  # what another process does: a file, no shared memory
    t.join(WAIT_S)
    assert job.state == CANCELLED and read_status(folder).state == CANCELLED


def test_status_writes_are_held_back_then_written(tmp_path):
    sf = StatusFile(str(tmp_path), JobStatus(name="many"))
    t0 = time.monotonic()
    for i in range(2000):
        sf.update(fraction=i / 2000, message=f"update {i}")
    elapsed = time.monotonic() - t0
    # at most one write per interval (plus the first), whatever the machine's speed
    assert sf.writes <= 2 + elapsed / MIN_WRITE_INTERVAL_S
    # what was held back is written when the interval is over
    _wait_for(lambda: json.loads((tmp_path / "status.json").read_text())["message"] == "update 1999",
              what="the held-back update")
    sf.update(state=RUNNING)  # a new state is written at once
    assert json.loads((tmp_path / "status.json").read_text())["state"] == RUNNING
    sf.close()


def test_read_status_of_nothing_and_of_something_else(tmp_path):
    assert read_status(tmp_path) is None
    (tmp_path / "status.json").write_text('{"state": "dancing"}')
    with pytest.raises(JobStatusError):
        read_status(tmp_path)


# -- child processes --------------------------------------------------------------------------
def test_a_job_in_a_child_process_reports_through_its_folder(tmp_path):
    folder = tmp_path / "child"
    child = start_child(count_to, 5, status_dir=folder, name="counting", step_message="row")
    st = child.wait(WAIT_S)
    assert st.state == DONE, (st, (folder / "output.txt").read_text())
    assert child.result() == 50 and st.pid == child.pid and st.name == "counting"
    assert "row 5" in child.log_text()
    # the status outlives the process: a reader later sees the same
    again = read_status(folder)
    assert again.state == DONE and again.fraction == 1.0 and again.message == "row 5 of 5"


def test_a_child_that_fails_reports_one_line(tmp_path):
    child = start_child(fail_with, "no good", status_dir=tmp_path / "c")
    st = child.wait(WAIT_S)
    assert st.state == FAILED and st.error == "ValueError: no good"
    assert "Traceback" in child.log_text()


def test_a_child_cancelled_keeps_its_partial_work(tmp_path):
    child = start_child(work_until_cancelled, status_dir=tmp_path / "c")
    _wait_for(lambda: _pieces(child.status().message) >= 3, what="three pieces in the child")
    child.cancel()
    st = child.wait(WAIT_S)
    assert st.state == CANCELLED
    partial = child.result()
    assert len(partial) >= 3 and partial == list(range(len(partial)))


def test_a_killed_child_reads_as_failed_not_running(tmp_path):
    folder = tmp_path / "c"
    child = start_child(work_until_cancelled, status_dir=folder)
    _wait_for(lambda: child.status().state == RUNNING and child.status().message, what="the child running")
    assert read_status(folder).process_alive is True
    os.kill(child.pid, signal.SIGKILL)
    # another reader, which never started the child (it is not reaped yet: a zombie)
    st = _wait_for(lambda: (s := read_status(folder)).state == FAILED and s, what="the killed child seen as gone")
    assert st.process_alive is False and "killed or crashed" in st.error
    assert json.loads((folder / "status.json").read_text())["state"] == RUNNING  # the child never wrote more
    # the parent knows how it ended and records it for every later reader
    st = child.wait(WAIT_S)
    assert st.state == FAILED and "SIGKILL" in st.error and st.process_alive is False
    disk = json.loads((folder / "status.json").read_text())
    assert disk["state"] == FAILED and "SIGKILL" in disk["error"] and disk["ended"]
    assert read_status(folder).state == FAILED and "SIGKILL" in read_status(folder).error
    # and the folder can be used again
    again = start_child(count_to, 1, status_dir=folder)
    assert again.wait(WAIT_S).state == DONE


def test_a_child_that_exits_without_finishing(tmp_path):
    child = start_child(exit_abruptly, 3, status_dir=tmp_path / "c")
    st = child.wait(WAIT_S)
    assert st.state == FAILED and "exit code 3" in st.error and st.fraction == pytest.approx(0.3)


def test_a_child_as_the_body_of_a_job(tmp_path):
    job = Job(in_child, count_to, 3, child_dir=tmp_path / "c", name="via child", step_message="item")
    events = []
    job.add_listener(events.append)
    assert job.run() == DONE, job.error
    assert job.result == 30
    fractions = [e.fraction for e in events if e.kind == "progress" and e.fraction is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("item 3" in line for line in job.log_lines)  # the child's log comes through


def test_a_killed_child_fails_the_job_that_runs_it(tmp_path):
    folder = tmp_path / "c"
    job = Job(in_child, work_until_cancelled, child_dir=folder)
    t = threading.Thread(target=job.run)
    t.start()
    st = _wait_for(lambda: (s := read_status(folder)) is not None and s.state == RUNNING and s.message and s,
                   what="the child running")
    os.kill(st.pid, signal.SIGKILL)
    t.join(WAIT_S)
    assert job.state == FAILED and "SIGKILL" in job.error
    assert isinstance(job.exception, JobFailed)


def test_cancelling_the_job_cancels_its_child(tmp_path):
    job = Job(in_child, work_until_cancelled, child_dir=tmp_path / "c")
    t = threading.Thread(target=job.run)
    t.start()
    _wait_for(lambda: (s := read_status(tmp_path / "c")) is not None and s.state == RUNNING and s.message,
              what="the child running")
    job.cancel()
    t.join(WAIT_S)
    assert job.state == CANCELLED and len(job.partial) >= 1
    assert read_status(tmp_path / "c").state == CANCELLED


def test_a_function_a_child_cannot_have_is_refused(tmp_path):
    with pytest.raises(JobError, match="cannot run in a child process"):
        start_child(lambda ctx: 1, status_dir=tmp_path / "c")


# -- the IFLLM import as a job --------------------------------------------------------------
WORKER, TASKS = "worker_0484ce71", ("170", "186", "204")


def _release_piece(release_root: Path, dest: Path) -> Path:
    """A release holding three sessions of one worker."""
    return release_piece(release_root, dest, [WORKER], TASKS)


def test_the_import_runs_as_a_job(release_root, tmp_path):
    root = _release_piece(release_root, tmp_path / "src")
    out = tmp_path / "out"
    job = Job(import_job, str(root), str(out), jobs=1, name="import", status_dir=tmp_path / "job")
    events = []
    job.add_listener(events.append)
    assert job.run() == DONE, job.error
    report = job.result
    assert isinstance(report, ImportReport) and len(report.sessions) == 3 and not report.not_imported
    fractions = [e.fraction for e in events if e.kind == "progress" and e.fraction is not None]
    steps = [f for i, f in enumerate(fractions) if i == 0 or f != fractions[i - 1]]
    assert steps == [0.0, pytest.approx(1 / 3), pytest.approx(2 / 3), 1.0]
    for s in report.sessions:
        with SessionReader(s.path) as r:
            assert len(r["turns"]) == s.turns
    log_text = (tmp_path / "job" / "log.txt").read_text()
    assert all(f"imported {s.path}" in log_text for s in report.sessions)
    assert read_status(tmp_path / "job").message == "3 sessions imported, 0 kept, 0 not imported"


def test_a_cancelled_import_job_reports_what_it_imported(release_root, tmp_path):
    root = _release_piece(release_root, tmp_path / "src")
    out = tmp_path / "out"
    job = Job(import_job, str(root), str(out), jobs=1)

    def cancel_after_the_first_session(ev):  # what a person pressing Cancel does
        if ev.kind == "progress" and ev.fraction and ev.fraction > 0:
            job.cancel()

    job.add_listener(cancel_after_the_first_session)
    assert job.run() == CANCELLED
    report = job.partial
    assert isinstance(report, ImportReport) and report.stopped == "cancelled"
    assert 1 <= len(report.sessions) < 3
    assert len(report.sessions) + len(report.not_imported) == 3
    assert all("not started" in n.reason for n in report.not_imported)
    assert sorted(p.name for p in out.glob("*.h5")) == sorted(Path(s.path).name for s in report.sessions)
    # a second run finishes it
    again = Job(import_job, str(root), str(out), jobs=1)
    assert again.run() == DONE
    assert len(again.result.skipped) == len(report.sessions) and len(again.result.sessions) == len(report.not_imported)
