"""A job: a function doing long work (an import, feature extraction, training) in one shape.

The function receives a :class:`JobContext` first: it reports progress
(``ctx.progress(fraction, message)``), polls the cancel flag (``ctx.cancelled`` or
``ctx.check_cancel()``, which raises :class:`JobCancelled`), writes a log (``ctx.log``),
hands over work done so far (``ctx.partial(value)``) and returns its result::

    def count(ctx, n):
        for i in range(n):
            ctx.check_cancel()
            ...
            ctx.progress((i + 1) / n, f"{i + 1} of {n}")
        return n

    job = Job(count, 10, name="count")
    job.run()            # in this thread; see ifllm_lab.ui.jobs for a worker thread
    job.state, job.result, job.error

A job ends ``done`` (its return value in :attr:`Job.result`), ``cancelled`` (what it did
until then in :attr:`Job.partial`) or ``failed`` (a one-line :attr:`Job.error`; the
traceback is in the log). With ``status_dir`` it also keeps its status on disk (see
:mod:`ifllm_lab.jobs.status`).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from .status import (
    CANCEL_FILE, CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobStatus, StatusFile, _read_file, append_log,
    process_alive, process_start_token, utc_now,
)

__all__ = ["Job", "JobContext", "JobEvent", "JobCancelled", "JobError", "describe_error"]

log = logging.getLogger(__name__)

#: how often ``ctx.cancelled`` looks for a cancel file in the status folder (s)
CANCEL_FILE_POLL_S = 0.1
#: log lines kept in memory (:attr:`Job.log_lines`); the log file keeps all
LOG_LINES_KEPT = 2000


class JobCancelled(Exception):
    """Stops a job after a cancel. ``partial`` is what it did until then (None: the last
    value given to ``ctx.partial``)."""

    def __init__(self, message: str = "cancelled", partial: Any = None):
        super().__init__(message)
        self.partial = partial


class JobError(RuntimeError):
    """A job that cannot be made or run as asked (a status folder in use, run twice)."""


def describe_error(exc: BaseException) -> str:
    """One line for people: the exception's first line; its type is named too unless it is
    one of this product's own errors (whose messages are written for people)."""
    text = str(exc).strip()
    first = text.splitlines()[0].strip() if text else ""
    own = type(exc).__module__.split(".")[0] == "ifllm_lab"
    if not first:
        line = type(exc).__name__
    elif own:
        line = first
    else:
        line = f"{type(exc).__name__}: {first}"
    return line if len(line) <= 300 else line[:299] + "\u2026"


@dataclass(frozen=True)
class JobEvent:
    """What a listener (:meth:`Job.add_listener`) hears, in the job's thread.

    kind: ``started``, ``progress`` (fraction, message), ``log`` (message), ``partial``
    (value), ``ended`` (state; message: the error of a failed job or why it stopped;
    value: the result, or the partial work of a cancelled job)."""

    kind: str
    state: str
    fraction: float | None = None
    message: str = ""
    value: Any = None


class JobContext:
    """What the job's function gets to report and to check for a cancel."""

    def __init__(self, job: "Job"):
        self._job = job

    @property
    def name(self) -> str:
        return self._job.name

    def progress(self, fraction: float | None = None, message: str | None = None) -> None:
        """Report progress: ``fraction`` 0..1 (None: unknown or unchanged), ``message`` (None:
        unchanged)."""
        self._job._progress(fraction, message)

    def log(self, message: str) -> None:
        """Add a line to the job's log."""
        self._job._log(str(message))

    def partial(self, value: Any) -> None:
        """Hand over work done so far (delivered to listeners in order; kept as
        :attr:`Job.partial`, what a cancelled job reports)."""
        self._job._partial(value)

    @property
    def cancelled(self) -> bool:
        """True once someone asked the job to stop."""
        return self._job.cancel_requested

    def check_cancel(self) -> None:
        """Raise :class:`JobCancelled` if someone asked the job to stop."""
        if self._job.cancel_requested:
            raise JobCancelled()


class Job:
    """``fn(ctx, *args, **kwargs)`` as a job; ``name`` and ``status_dir`` are the job's own
    keywords, every other one goes to ``fn``.

    status_dir: a folder where the job keeps ``status.json`` and ``log.txt`` (made if
        missing). A folder whose job is still running in a live process is refused
        (:class:`JobError`); a cancel file left by an earlier, finished job is removed.
    """

    def __init__(self, fn: Callable[..., Any], /, *args, name: str | None = None, status_dir=None, **kwargs):
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.name = name or getattr(fn, "__name__", "job")
        self.status_dir: str | None = None if status_dir is None else os.fspath(status_dir)
        self.state = QUEUED
        self.fraction: float | None = None
        self.message = ""
        self.result: Any = None
        self.partial: Any = None
        #: one line saying what went wrong (``failed``) or why the job stopped (``cancelled``)
        self.error: str | None = None
        self.exception: BaseException | None = None
        self.traceback: str = ""
        self.started: datetime | None = None
        self.ended: datetime | None = None
        self.log_lines: deque[str] = deque(maxlen=LOG_LINES_KEPT)
        self._cancel = threading.Event()
        self._cancel_checked = 0.0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._listeners: list[Callable[[JobEvent], None]] = []
        self._status: StatusFile | None = None
        if self.status_dir is not None:
            self._claim_status_dir()

    def __repr__(self) -> str:
        return f"<Job {self.name!r} {self.state}>"

    # -- status folder ---------------------------------------------------------------------
    def _claim_status_dir(self) -> None:
        folder = self.status_dir
        os.makedirs(folder, exist_ok=True)
        old = _read_file(folder)
        if old is not None and old.state == RUNNING and old.pid is not None and old.host == socket.gethostname() \
                and process_alive(old.pid, old.pid_start):
            raise JobError(f"{folder} is the status folder of job {old.name!r}, still running (pid {old.pid})")
        if old is None or old.finished:
            try:
                os.remove(os.path.join(folder, CANCEL_FILE))
            except FileNotFoundError:
                pass
        self._status = StatusFile(folder, JobStatus(name=self.name, host=socket.gethostname()))
        self._status.update(force=True)

    # -- listeners -------------------------------------------------------------------------
    def add_listener(self, fn: Callable[[JobEvent], None]) -> None:
        """Call ``fn(event)`` for every :class:`JobEvent`, in the job's thread, in order. A
        listener that raises is logged and otherwise ignored."""
        self._listeners.append(fn)

    def _emit(self, event: JobEvent) -> None:
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception:
                log.exception("job %s: a listener failed", self.name)

    # -- cancel ----------------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the job to stop (from any thread). A queued job ends ``cancelled`` without
        running; a running one at its next check."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        if self._cancel.is_set():
            return True
        if self.status_dir is not None:
            now = time.monotonic()
            if now - self._cancel_checked >= CANCEL_FILE_POLL_S:
                self._cancel_checked = now
                if os.path.exists(os.path.join(self.status_dir, CANCEL_FILE)):
                    self._cancel.set()
                    return True
        return False

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended (run by another thread); False on timeout."""
        return self._done.wait(timeout)

    # -- reports from the function -----------------------------------------------------------
    def _progress(self, fraction, message) -> None:
        if fraction is not None:
            f = float(fraction)
            self.fraction = min(1.0, max(0.0, f)) if f == f else None
        if message is not None:
            self.message = str(message)
        if self._status is not None:
            self._status.update(fraction=self.fraction, message=self.message)
        self._emit(JobEvent("progress", self.state, self.fraction, self.message))

    def _log(self, message: str) -> None:
        self.log_lines.append(message)
        log.debug("job %s: %s", self.name, message)
        if self.status_dir is not None:
            try:
                append_log(self.status_dir, message)
            except OSError:
                log.warning("job %s: the log file cannot be written", self.name, exc_info=True)
        self._emit(JobEvent("log", self.state, self.fraction, message))

    def _partial(self, value) -> None:
        self.partial = value
        self._emit(JobEvent("partial", self.state, self.fraction, self.message, value))

    # -- running ---------------------------------------------------------------------------
    def run(self) -> str:
        """Run the job in this thread; returns its final state (never raises for what the
        function raised, except KeyboardInterrupt / SystemExit, recorded and raised again)."""
        with self._lock:
            if self.state != QUEUED:
                raise JobError(f"job {self.name!r} has already run ({self.state})")
            self.state = RUNNING
        self.started = utc_now()
        if self._status is not None:
            pid = os.getpid()
            self._status.update(state=RUNNING, started=self.started, pid=pid, pid_start=process_start_token(pid))
        self._emit(JobEvent("started", RUNNING, self.fraction, self.message))
        self._log(f"started {self.name}")
        if self.cancel_requested:
            self._end(CANCELLED, "cancelled before it started")
            return self.state
        try:
            result = self.fn(JobContext(self), *self.args, **self.kwargs)
        except JobCancelled as exc:
            if exc.partial is not None:
                self._partial(exc.partial)
            self._end(CANCELLED, str(exc) or "cancelled")
        except Exception as exc:
            self.exception = exc
            self.traceback = traceback.format_exc()
            if self.cancel_requested:  # what it raised on the way out of a cancel
                self._log(f"stopped after a cancel with an error: {describe_error(exc)}\n{self.traceback}")
                self._end(CANCELLED, "cancelled")
            else:
                self._log(f"failed: {describe_error(exc)}\n{self.traceback}")
                self._end(FAILED, describe_error(exc))
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: recorded, then on its way
            self.exception = exc
            self.traceback = traceback.format_exc()
            self._log(f"interrupted: {describe_error(exc)}\n{self.traceback}")
            self._end(FAILED, f"interrupted ({type(exc).__name__})")
            raise
        else:
            self.result = result
            self._progress(1.0, None)
            self._end(DONE, None)
        return self.state

    def _end(self, state: str, error: str | None) -> None:
        self.state = state
        self.error = error
        self.ended = utc_now()
        took = (self.ended - self.started).total_seconds() if self.started else 0.0
        self._log(f"{state} after {took:.1f} s" + (f": {error}" if error else ""))
        if self._status is not None:
            self._status.update(state=state, error=error, ended=self.ended, fraction=self.fraction,
                                message=self.message)
            self._status.close()
        value = self.result if state == DONE else self.partial
        self._done.set()
        self._emit(JobEvent("ended", state, self.fraction, error or "", value))
