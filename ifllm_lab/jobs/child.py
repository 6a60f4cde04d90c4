"""Jobs in a child process, with the status folder as the only channel: a crash of the job
(a killed process, a segfault in a native library, memory running out) cannot take the
window down, and the job goes on when the window closes.

::

    child = start_child(train, spec, status_dir="runs/dpo-1", name="DPO")
    child.status()        # JobStatus from status.json: state, fraction, message, error
    child.cancel()        # the job stops at its next check and ends ``cancelled``
    child.wait(60)        # JobStatus once it has ended (or when the time is up)
    child.result()        # what the function returned (a cancelled job: its partial work)

``fn`` must be importable by its module and name, and its arguments and result picklable.
The child is ``python -m ifllm_lab.jobs FOLDER`` in a session of its own; its
stdout and stderr go to ``FOLDER/output.txt``. :func:`in_child` runs such a child as the
body of an ordinary :class:`~ifllm_lab.jobs.job.Job`, so the Qt adapter runs it like any
other job.
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from typing import Any, Callable

from .job import Job, JobCancelled, JobContext, JobError
from .status import (
    CANCEL_FILE, CANCELLED, DONE, FAILED, LOG_FILE, QUEUED, JobStatus, StatusFile, _read_file, append_log, read_status,
    request_cancel, utc_now,
)

__all__ = ["ChildJob", "JobFailed", "start_child", "in_child", "CALL_FILE", "RESULT_FILE", "OUTPUT_FILE"]

CALL_FILE = "call.pickle"
RESULT_FILE = "result.pickle"
OUTPUT_FILE = "output.txt"


class JobFailed(RuntimeError):
    """A job in a child process failed; the message is its one-line error."""


def _child_command(folder: str) -> list[str]:
    return [sys.executable, "-m", "ifllm_lab.jobs", folder]


def _child_env() -> dict:
    env = dict(os.environ)
    # the child finds what this process finds (the package, the function's module)
    paths = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_child(fn: Callable[..., Any], /, *args, status_dir, name: str | None = None, **kwargs) -> "ChildJob":
    """Start ``fn(ctx, *args, **kwargs)`` as a job in a child process keeping its status in
    ``status_dir``. Raises :class:`~ifllm_lab.jobs.job.JobError` when the folder's job is
    still running, or when ``fn`` and its arguments cannot be handed to a child."""
    folder = os.path.abspath(os.fspath(status_dir))
    os.makedirs(folder, exist_ok=True)
    name = name or getattr(fn, "__name__", "job")
    st = read_status(folder)
    if st is not None and not st.finished and st.process_alive:
        raise JobError(f"{folder} is the status folder of job {st.name!r}, still running (pid {st.pid})")
    try:
        call = pickle.dumps((fn, args, kwargs, name))
    except Exception as exc:
        raise JobError(f"job {name!r} cannot run in a child process: {exc}") from None
    for stale in (CANCEL_FILE, RESULT_FILE, OUTPUT_FILE):
        try:
            os.remove(os.path.join(folder, stale))
        except FileNotFoundError:
            pass
    with open(os.path.join(folder, CALL_FILE), "wb") as fh:
        fh.write(call)
    StatusFile(folder, JobStatus(name=name, state=QUEUED)).close()
    with open(os.path.join(folder, OUTPUT_FILE), "ab") as out:
        proc = subprocess.Popen(_child_command(folder), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=_child_env(), start_new_session=True,
                                cwd=os.getcwd())
    return ChildJob(folder, proc, name)


class ChildJob:
    """A job running in a child process started by :func:`start_child`."""

    def __init__(self, folder: str, process: subprocess.Popen, name: str):
        self.folder = folder
        self.process = process
        self.name = name

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def status(self) -> JobStatus:
        """The job's status. A child that ended without finishing its job (killed, crashed)
        is recorded as ``failed`` in ``status.json``, with how it ended, for every later
        reader."""
        code = self.process.poll()
        st = read_status(self.folder)
        if code is None:
            if st is None:
                return JobStatus(name=self.name, state=QUEUED, pid=self.pid, process_alive=True)
            if st.state == QUEUED:  # started, not yet running its job
                return JobStatus(**{**st.__dict__, "pid": self.pid, "process_alive": True})
            if not (st.finished and st.process_alive is False):
                return st
            # the status file's reader saw the process gone before this one reaped it:
            # take its exit status, which says how it ended
            try:
                code = self.process.wait(2.0)
            except subprocess.TimeoutExpired:
                return st
        if st is not None and st.finished and st.process_alive is not False:
            return st
        return self._record_death(code, st)

    def _record_death(self, code: int, st: JobStatus | None) -> JobStatus:
        if code < 0:
            try:
                how = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"ended with exit code {code}"
        tail = _last_line(os.path.join(self.folder, OUTPUT_FILE))
        error = f"the job's process (pid {self.pid}) was {how} before the job finished" if code < 0 else \
            f"the job's process (pid {self.pid}) {how} before the job finished"
        if tail:
            error += f" ({tail})"
        base = st or JobStatus(name=self.name)
        sf = StatusFile(self.folder, JobStatus(**{**base.__dict__, "process_alive": None}))
        sf.update(state=FAILED, error=error, ended=utc_now(), pid=self.pid)
        sf.close()
        try:
            append_log(self.folder, f"failed: {error}")
        except OSError:
            pass
        return JobStatus(**{**sf.status.__dict__, "process_alive": False})

    def cancel(self) -> None:
        """Ask the job to stop; it ends ``cancelled`` at its next check."""
        request_cancel(self.folder)

    def kill(self) -> None:
        """End the child at once (SIGKILL); its status then reads ``failed``."""
        if self.process.poll() is None:
            self.process.kill()

    def wait(self, timeout: float | None = None) -> JobStatus:
        """The status once the child has ended, or when ``timeout`` seconds are over."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        return self.status()

    def result(self) -> Any:
        """What the job returned (``done``) or its partial work (``cancelled``); None when
        there is none."""
        try:
            with open(os.path.join(self.folder, RESULT_FILE), "rb") as fh:
                return pickle.load(fh)
        except FileNotFoundError:
            return None

    def log_text(self) -> str:
        try:
            with open(os.path.join(self.folder, LOG_FILE), encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""


def _last_line(path: str, limit: int = 200) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""


def in_child(ctx: JobContext, fn: Callable[..., Any], /, *args, child_dir, poll_s: float = 0.1, **kwargs) -> Any:
    """A job body that runs ``fn`` in a child process (:func:`start_child` with
    ``status_dir=child_dir``): its progress and log lines come through ``ctx``, a cancel of
    this job cancels the child, and it returns the child's result, raises
    :class:`~ifllm_lab.jobs.job.JobCancelled` with the child's partial work, or
    :class:`JobFailed` with the child's error (a killed child included)."""
    child = start_child(fn, *args, status_dir=child_dir, name=ctx.name, **kwargs)
    log_path = os.path.join(child.folder, LOG_FILE)
    log_pos = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    seen = (None, None)
    asked = False
    ended = False
    try:
        while True:
            st = child.status()
            log_pos = _forward_log(ctx, log_path, log_pos)
            if (st.fraction, st.message) != seen:
                seen = (st.fraction, st.message)
                ctx.progress(st.fraction, st.message)
            if st.finished:
                ended = True
                break
            if ctx.cancelled and not asked:
                child.cancel()
                asked = True
            time.sleep(poll_s)
        _forward_log(ctx, log_path, log_pos)
    finally:
        if not ended:  # this job is leaving for another reason: the child goes too
            child.kill()
            child.wait(10)
    if st.state == DONE:
        return child.result()
    if st.state == CANCELLED:
        raise JobCancelled(st.error or "cancelled", partial=child.result())
    raise JobFailed(st.error or "the job failed")


def _forward_log(ctx: JobContext, path: str, pos: int) -> int:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            fh.seek(pos)
            text = fh.read()
    except FileNotFoundError:
        return pos
    end = text.rfind("\n") + 1  # whole lines only
    for line in text[:end].splitlines():
        ctx.log(f"[child] {line}")
    return pos + len(text[:end].encode("utf-8"))


# -- the child's side ------------------------------------------------------------------------
def _run_call(ctx: JobContext, folder: str) -> Any:
    with open(os.path.join(folder, CALL_FILE), "rb") as fh:
        fn, args, kwargs, _ = pickle.load(fh)
    try:
        result = fn(ctx, *args, **kwargs)
    except JobCancelled as exc:
        _save_result(folder, exc.partial if exc.partial is not None else ctx._job.partial)
        raise
    except Exception:
        if ctx.cancelled and ctx._job.partial is not None:
            _save_result(folder, ctx._job.partial)
        raise
    _save_result(folder, result)
    return result


def _save_result(folder: str, value: Any) -> None:
    path = os.path.join(folder, RESULT_FILE)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        pickle.dump(value, fh)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """The child: runs the job whose call is stored in the folder given as the argument."""
    import faulthandler

    faulthandler.enable()  # a native crash leaves its trace in output.txt
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ifllm_lab.jobs STATUS_FOLDER", file=sys.stderr)
        return 2
    folder = argv[0]
    st = _read_file(folder)
    name = st.name if st is not None else "job"
    job = Job(_run_call, folder, name=name, status_dir=folder)
    job.run()
    return 0
