"""A job's status kept on disk, for jobs that outlive the window that started them.

A status folder holds:

- ``status.json``: state, fraction, message, started / ended / updated (ISO 8601, UTC),
  pid, host, error. Written atomically (a temporary file, then ``os.replace``), so a
  reader never sees half a file, and not more often than :data:`MIN_WRITE_INTERVAL_S`
  except when the state changes.
- ``log.txt``: the job's log, one line per entry, UTC timestamps; a failure's traceback.
- ``cancel``: present when someone asked the job to stop (:func:`request_cancel`).

:func:`read_status` reads it back from any process and tells a job whose process is gone
(killed, crashed) from one still running.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone

from ..paths import write_text_atomic

__all__ = [
    "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED", "STATES", "FINAL_STATES",
    "STATUS_FILE", "LOG_FILE", "CANCEL_FILE", "MIN_WRITE_INTERVAL_S",
    "JobStatus", "JobStatusError", "StatusFile", "read_status", "request_cancel", "cancel_requested",
    "append_log", "process_alive", "utc_now",
]

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
FINAL_STATES = frozenset({DONE, FAILED, CANCELLED})

STATUS_FILE = "status.json"
LOG_FILE = "log.txt"
CANCEL_FILE = "cancel"
#: the shortest time between two writes of ``status.json`` while the state stays the same (s)
MIN_WRITE_INTERVAL_S = 0.25


class JobStatusError(ValueError):
    """A status file that cannot be read as one."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _from_iso(s) -> datetime | None:
    return None if not s else datetime.fromisoformat(s)


@dataclass
class JobStatus:
    """What ``status.json`` says about a job (times are UTC)."""

    name: str
    state: str = QUEUED
    #: 0..1, or None while unknown
    fraction: float | None = None
    message: str = ""
    started: datetime | None = None
    ended: datetime | None = None
    updated: datetime | None = None
    #: the process running the job and the machine it runs on
    pid: int | None = None
    host: str = ""
    #: a token of the process's start (Linux: its start time in clock ticks) so that a
    #: reused pid is not taken for the job's process
    pid_start: str | None = None
    #: one line saying what went wrong (state ``failed``) or why it stopped
    error: str | None = None
    #: set by :func:`read_status`: True while the job's process is there, False when it is
    #: gone, None when it cannot be told (another host, no pid yet, a finished job)
    process_alive: bool | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("process_alive")
        for k in ("started", "ended", "updated"):
            d[k] = _iso(d[k])
        return d

    @classmethod
    def from_json(cls, d: dict) -> "JobStatus":
        if not isinstance(d, dict) or d.get("state") not in STATES:
            raise JobStatusError(f"not a job status: {str(d)[:120]}")
        known = {f.name for f in fields(cls)} - {"process_alive"}
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("started", "ended", "updated"):
            kw[k] = _from_iso(kw.get(k))
        kw.setdefault("name", "")
        return cls(**kw)


# -- processes -----------------------------------------------------------------------------
def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def process_start_token(pid: int) -> str | None:
    """A token of when process ``pid`` started (Linux), None where it cannot be read."""
    st = _proc_stat(pid)
    return st[19] if st and len(st) > 19 else None


def process_alive(pid: int, start_token: str | None = None) -> bool:
    """Whether process ``pid`` (on this machine) is running: not gone, not a zombie, and
    (when ``start_token`` is given and can be checked) the same process, not a reused pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    except OSError:
        return False
    st = _proc_stat(pid)
    if st is None:
        return True  # no /proc: the signal check is all there is
    if st[0] in ("Z", "X"):
        return False
    if start_token is not None and len(st) > 19 and st[19] != start_token:
        return False
    return True


# -- writing -------------------------------------------------------------------------------
def append_log(folder: str, line: str) -> None:
    """Append one entry (may span lines) to ``folder/log.txt`` with a UTC timestamp."""
    stamp = utc_now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    with open(os.path.join(folder, LOG_FILE), "a", encoding="utf-8") as fh:
        fh.write(f"{stamp}Z {line.rstrip()}\n")


class StatusFile:
    """Keeps ``folder/status.json`` of one job up to date.

    :meth:`update` writes at once when the state changes or ``force`` is set; otherwise at
    most every :data:`MIN_WRITE_INTERVAL_S`, and a change held back is written when that
    interval is over (a timer), so the file never stays behind for longer. Thread-safe.
    """

    def __init__(self, folder: str, status: JobStatus):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, STATUS_FILE)
        self.status = status
        self._lock = threading.Lock()
        self._last_write = -1e9
        self._timer: threading.Timer | None = None
        self._closed = False
        #: how many times the file was written
        self.writes = 0

    def update(self, *, force: bool = False, **changes) -> None:
        with self._lock:
            state_changed = "state" in changes and changes["state"] != self.status.state
            self.status = replace(self.status, **changes)
            if self._closed:
                return
            now = time.monotonic()
            wait = self._last_write + MIN_WRITE_INTERVAL_S - now
            if force or state_changed or wait <= 0:
                self._write_locked()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self._flush_later)
                self._timer.daemon = True
                self._timer.start()

    def _flush_later(self) -> None:
        with self._lock:
            self._timer = None
            if not self._closed:
                self._write_locked()

    def _write_locked(self) -> None:
        self.status = replace(self.status, updated=utc_now())
        final = self.status.finished
        write_text_atomic(self.path, json.dumps(self.status.to_json(), indent=1), sync=final)
        self._last_write = time.monotonic()
        self.writes += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """Write what is held back and stop writing."""
        with self._lock:
            if self._closed:
                return
            self._write_locked()
            self._closed = True


# -- reading -------------------------------------------------------------------------------
def _read_file(folder: str) -> JobStatus | None:
    path = os.path.join(os.fspath(folder), STATUS_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise JobStatusError(f"{path} cannot be read: {exc.strerror or exc}") from None
    try:
        return JobStatus.from_json(json.loads(text))
    except (ValueError, TypeError) as exc:
        raise JobStatusError(f"{path} is not a job status: {exc}") from None


def read_status(folder) -> JobStatus | None:
    """The status of the job kept in ``folder``, or None when the folder holds none.

    A job that is queued or running on this machine but whose process is gone reads as
    ``failed`` (``process_alive`` False) with an error saying so: nothing can finish it any
    more. Raises :class:`JobStatusError` when ``status.json`` is not a job status.
    """
    st = _read_file(folder)
    if st is None or st.finished or st.pid is None:
        return st
    if st.host and st.host != socket.gethostname():
        return replace(st, process_alive=None)  # another machine: cannot be told from here
    if process_alive(st.pid, st.pid_start):
        return replace(st, process_alive=True)
    again = _read_file(folder)  # it may have finished between the read and the check
    if again is not None and (again.finished or again.pid != st.pid):
        return again
    return replace(st, state=FAILED, process_alive=False,
                   error=f"the job's process (pid {st.pid}) is gone but the job never finished: "
                         "it was killed or crashed")


def request_cancel(folder) -> None:
    """Ask the job kept in ``folder`` (in any process) to stop; it stops at its next check."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    write_text_atomic(os.path.join(folder, CANCEL_FILE), utc_now().isoformat())


def cancel_requested(folder) -> bool:
    return os.path.exists(os.path.join(os.fspath(folder), CANCEL_FILE))
