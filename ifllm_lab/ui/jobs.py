"""The one adapter between jobs (:mod:`ifllm_lab.jobs`) and windows: a :class:`JobRunner`
runs a :class:`~ifllm_lab.jobs.Job` in a worker thread and turns what it reports into Qt
signals delivered on the GUI thread, in the order the job reported it::

    runner = JobRunner(Job(import_job, src, out, name="import"), parent=window)
    runner.progress.connect(bar_update)      # (fraction, message)
    runner.succeeded.connect(show_report)    # the job's result
    runner.failed.connect(show_error)        # one line
    runner.start()
    ...
    runner.cancel()                          # the job ends ``cancelled`` at its next check

The worker thread never touches a Qt object: it puts the job's events in a queue that a
timer of the runner empties on the GUI thread. So a window closed or deleted while its job
runs is safe: with the window goes the runner and its timer, nothing is delivered any more,
and the job is asked to stop (``cancel_on_destroy``).
"""
from __future__ import annotations

import logging
import math
import queue
import threading

from PySide6.QtCore import QObject, QTimer, Signal

from ..jobs import CANCELLED, DONE, FAILED, Job, JobEvent

__all__ = ["JobRunner"]

log = logging.getLogger(__name__)

#: runners without a parent, kept alive while their job runs
_RUNNING: set["JobRunner"] = set()


def _work(job: Job) -> None:  # worker thread: touches the job only
    try:
        job.run()
    except BaseException:  # noqa: BLE001 - KeyboardInterrupt / SystemExit in a worker: already recorded
        log.debug("job %s interrupted", job.name, exc_info=True)


class JobRunner(QObject):
    """Runs one job in a worker thread; signals arrive on the GUI thread.

    Progress that comes faster than the runner looks (every ``poll_ms``) is coalesced:
    the GUI gets the latest fraction and message, still in order. Log lines and partial
    results all arrive. The job ends with exactly one of ``succeeded`` / ``failed`` /
    ``cancelled``, then ``ended(state)``.
    """

    started = Signal()
    #: fraction 0..1 (NaN while unknown), message
    progress = Signal(float, str)
    logged = Signal(str)
    #: work done so far (``ctx.partial``)
    partial = Signal(object)
    #: the job's result
    succeeded = Signal(object)
    #: one line saying what went wrong (the traceback is in the job's log)
    failed = Signal(str)
    #: the partial work of a cancelled job (None when it handed over none)
    cancelled = Signal(object)
    #: the final state, after the signal above
    ended = Signal(str)

    def __init__(self, job: Job, parent: QObject | None = None, *, poll_ms: int = 25,
                 cancel_on_destroy: bool = True):
        super().__init__(parent)
        self.job = job
        self.state = job.state
        self._events: queue.SimpleQueue[JobEvent] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ended = False
        self._timer = QTimer(self)
        self._timer.setInterval(int(poll_ms))
        self._timer.timeout.connect(self._drain)
        events = self._events
        job.add_listener(events.put)  # worker thread: a plain queue, no Qt object
        if cancel_on_destroy:
            self.destroyed.connect(lambda *_: job.cancel())  # holds the job, not the runner

    @property
    def running(self) -> bool:
        """Started and not yet ended (as seen on the GUI thread)."""
        return self._thread is not None and not self._ended

    def start(self) -> "JobRunner":
        if self._thread is not None:
            raise RuntimeError(f"job {self.job.name!r} was started already")
        if self.parent() is None:
            _RUNNING.add(self)
        self._thread = threading.Thread(target=_work, args=(self.job,), name=f"job-{self.job.name}", daemon=True)
        self._timer.start()
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the job to stop; ``cancelled`` follows once it has."""
        self.job.cancel()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the job has ended and deliver what is left (scripts, tests, shutdown);
        False when ``timeout_s`` ran out first."""
        if self._thread is None:
            return False
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            return False
        self._drain()
        return True

    def _drain(self) -> None:  # GUI thread (timer)
        events: list[JobEvent] = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                break
        for i, ev in enumerate(events):
            if ev.kind == "progress" and i + 1 < len(events) and events[i + 1].kind == "progress":
                continue  # a newer progress follows at once
            self._deliver(ev)

    def _deliver(self, ev: JobEvent) -> None:
        kind = ev.kind
        if kind == "started":
            self.state = ev.state
            self.started.emit()
        elif kind == "progress":
            self.progress.emit(math.nan if ev.fraction is None else float(ev.fraction), ev.message)
        elif kind == "log":
            self.logged.emit(ev.message)
        elif kind == "partial":
            self.partial.emit(ev.value)
        elif kind == "ended":
            self._ended = True
            self.state = ev.state
            self._timer.stop()
            _RUNNING.discard(self)
            if ev.state == DONE:
                self.succeeded.emit(ev.value)
            elif ev.state == FAILED:
                self.failed.emit(ev.message)
            elif ev.state == CANCELLED:
                self.cancelled.emit(ev.value)
            self.ended.emit(ev.state)
