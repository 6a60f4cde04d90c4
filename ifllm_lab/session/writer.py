"""Threaded session writer: producers enqueue rows, one thread writes them.

Producers (camera thread, UI thread, LLM thread) call :meth:`SessionWriter.put`
with one row, or :meth:`SessionWriter.put_rows` with a batch. Enqueueing is an
append to an in-memory deque: it never touches the disk and never waits for the
writer. The queue is bounded (``max_queue`` entries); rows that do not fit are
counted as lost rather than blocking a producer.

The writer thread wakes every ``flush_interval`` seconds (at most 1 s), writes
everything queued and flushes the file in SWMR mode, so a process killed at any
moment leaves a file holding every row up to the previous flush.

A write failure (disk full, I/O error) stops recording cleanly: the writer keeps
what was flushed, marks itself failed with a message for people
(:attr:`SessionWriter.error`) and calls ``on_error`` once; later rows are counted
as lost.

Taps (:meth:`SessionWriter.add_tap`) see the rows of chosen streams as they are queued,
in the producer's thread (e.g. to publish them live as Lab Streaming Layer streams). A
tap must only hand the row on (append to a queue of its own) and must not change it; a
tap that raises is logged once and dropped, and the recording goes on.
"""
from __future__ import annotations

import collections
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .schema import STREAMS, LogLevel, SessionMeta
from .store import SessionStore, SessionWriteError

log = logging.getLogger(__name__)


class SessionClock:
    """The one session time base: seconds since the session started (monotonic).

    ``unix_start`` is the wall-clock time (UTC epoch seconds) of ``t == 0``.
    """

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self.unix_start = time.time()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def from_monotonic(self, mono: float) -> float:
        """Convert a ``time.monotonic()`` reading (e.g. a frame capture time)."""
        return mono - self._t0


@dataclass
class StreamCounts:
    sent: int = 0
    written: int = 0
    lost: int = 0


@dataclass
class WriterStats:
    streams: dict[str, StreamCounts] = field(default_factory=dict)
    flushes: int = 0
    max_flush_ms: float = 0.0
    busy_s: float = 0.0  # time the writer thread spent converting and writing

    @property
    def lost(self) -> int:
        return sum(c.lost for c in self.streams.values())

    @property
    def written(self) -> int:
        return sum(c.written for c in self.streams.values())


def _rows(item) -> int:
    """Rows in a queued entry: a row tuple, a structured array or a column mapping."""
    if isinstance(item, tuple):
        return 1
    if isinstance(item, np.ndarray):
        return len(item)
    return len(next(iter(item.values()), ()))


class SessionWriter:
    """Records one session file from any number of producer threads.

    Args:
        path: the session file to create.
        meta: what the session is; ``meta.clock_start_unix`` is set from ``clock``.
        clock: the session clock; a new one starts now when omitted.
        flush_interval: seconds between flushes (0.05 .. 1.0).
        max_queue: bound of the in-memory queue (entries: a row or a batch).
        on_error: called once, from the writer thread, with the message when
            recording stops because of a write failure.
        min_free_mb: stop cleanly when the disk holding the file has less free space than
            this (checked after every flush); 0 turns the check off.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        meta: SessionMeta,
        *,
        clock: SessionClock | None = None,
        streams: Sequence[str] | None = None,
        flush_interval: float = 0.5,
        max_queue: int = 2_000_000,
        on_error: Callable[[str], None] | None = None,
        min_free_mb: float = 100.0,
    ):
        if not 0.01 <= flush_interval <= 1.0:
            raise ValueError("flush_interval must be between 0.01 and 1.0 seconds")
        self.clock = clock or SessionClock()
        meta.clock_start_unix = self.clock.unix_start
        self.store = SessionStore(path, meta, streams=streams, swmr=True)
        self.path = self.store.path
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.on_error = on_error
        self.min_free_bytes = int(min_free_mb * 1e6)
        self._widths = {n: len(spec.columns) for n, spec in self.store.specs.items()}
        self._columns = {n: set(spec.column_names) for n, spec in self.store.specs.items()}
        self._folder = os.path.dirname(os.path.abspath(self.path))
        self.error: str | None = None
        self.stats = WriterStats(streams={n: StreamCounts() for n in self.store.specs})
        self._queue: collections.deque = collections.deque()
        # stream -> the taps on it; replaced whole (never changed in place), read without a lock
        self._taps: dict[str, tuple[Callable[[str, object], None], ...]] = {}
        self._lock = threading.Lock()  # guards counters and the closed/queue-full check
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="session-writer", daemon=True)
        self._thread.start()

    # -- producers ------------------------------------------------------------------
    @property
    def failed(self) -> bool:
        return self.error is not None

    def put(self, stream: str, row: tuple) -> bool:
        """Queue one row: a tuple in the stream's column order (trailing columns may be
        omitted and take their fill value). Never blocks; returns False if the row was lost.

        A row with more values than the stream has columns is a programming error and
        raises ValueError here, in the producer, rather than stopping the recording later.
        """
        counts = self.stats.streams[stream]
        if len(row) > self._widths[stream]:
            raise ValueError(f"{stream}: {len(row)} values for {self._widths[stream]} columns")
        with self._lock:
            counts.sent += 1
            if self.error is not None or self._closed or len(self._queue) >= self.max_queue:
                counts.lost += 1
                return False
            self._queue.append((stream, row))
        taps = self._taps.get(stream)
        if taps:
            self._call_taps(taps, stream, row)
        return True

    def put_rows(self, stream: str, rows: Mapping[str, Sequence] | np.ndarray) -> bool:
        """Queue a batch: a structured array or a mapping of column to values.

        Unknown column names (KeyError) and columns of unequal length (ValueError) are
        refused here, in the producer, so one bad batch cannot stop the recording."""
        names = (rows.dtype.names or ()) if isinstance(rows, np.ndarray) else tuple(rows)
        counts = self.stats.streams[stream]
        unknown = set(names) - self._columns[stream]
        if unknown:
            raise KeyError(f"stream {stream!r} has no column(s) {sorted(unknown)}")
        lengths = {len(rows)} if isinstance(rows, np.ndarray) else {len(v) for v in rows.values()}
        if len(lengths) > 1:
            raise ValueError(f"{stream}: columns of unequal length {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        with self._lock:
            counts.sent += n
            if self.error is not None or self._closed or len(self._queue) >= self.max_queue:
                counts.lost += n
                return False
            item = rows if isinstance(rows, np.ndarray) else dict(rows)
            self._queue.append((stream, item))
        taps = self._taps.get(stream)
        if taps:
            self._call_taps(taps, stream, item)
        return True

    # -- taps -----------------------------------------------------------------------------
    def add_tap(self, streams: Sequence[str], tap: Callable[[str, object], None]) -> None:
        """Call ``tap(stream, entry)`` for every row of ``streams`` the writer accepts, in
        the producer's thread, right after it is queued: ``entry`` is what was queued (a
        row tuple from :meth:`put`; a structured array or a mapping of columns from
        :meth:`put_rows`) and must not be changed. A tap must return at once (hand the row
        to a thread of its own); one that raises is logged once and removed."""
        unknown = set(streams) - set(self.store.specs)
        if unknown:
            raise KeyError(f"no stream(s) {sorted(unknown)} in this session")
        with self._lock:
            taps = dict(self._taps)
            for s in streams:
                taps[s] = taps.get(s, ()) + (tap,)
            self._taps = taps

    def remove_tap(self, tap: Callable[[str, object], None]) -> None:
        """Stop calling ``tap`` (nothing happens when it is not a tap)."""
        with self._lock:
            taps = {s: tuple(f for f in fs if f != tap) for s, fs in self._taps.items()}  # == : bound methods
            self._taps = {s: fs for s, fs in taps.items() if fs}

    def _call_taps(self, taps: tuple, stream: str, item) -> None:
        for tap in taps:
            try:
                tap(stream, item)
            except Exception as exc:  # a tap never stops the recording
                self.remove_tap(tap)
                log.exception("a tap on the %s stream failed and was removed; recording goes on", stream)
                self.put("log", (self.clock.now(), int(LogLevel.ERROR), "writer",
                                 f"a live tap on the {stream} stream failed and was removed: {exc!r}"))

    def log(self, level: LogLevel | int, source: str, message: str) -> bool:
        """Record a message in the session's ``log`` stream (and the Python log)."""
        log.log(int(level), "%s: %s", source, message)
        return self.put("log", (self.clock.now(), int(level), source, message))

    # -- writer thread ----------------------------------------------------------------
    def _drain(self) -> dict[str, list]:
        """Take everything queued now, grouped by stream (order kept)."""
        grouped: dict[str, list] = collections.defaultdict(list)
        q = self._queue
        for _ in range(len(q)):
            stream, item = q.popleft()
            grouped[stream].append(item)
        return grouped

    def _write_group(self, stream: str, items: list) -> None:
        spec = STREAMS[stream]
        batch: list[tuple] = []

        def write_tuples():
            if not batch:
                return
            width = len(batch[0])
            if all(len(r) == width for r in batch):
                cols = spec.columns[:width]
                arr = np.array(batch, dtype=[(c.name, object if c.is_text else c.dtype) for c in cols])
                self.stats.streams[stream].written += self.store.append(stream, arr)
            else:  # rows of several widths: write each run separately
                for row in batch:
                    cols = spec.columns[: len(row)]
                    self.stats.streams[stream].written += self.store.append(
                        stream, {c.name: [v] for c, v in zip(cols, row)}
                    )
            batch.clear()

        for item in items:
            if isinstance(item, tuple):
                batch.append(item)
            else:
                write_tuples()
                self.stats.streams[stream].written += self.store.append(stream, item)
        write_tuples()

    def _write_pending(self) -> None:
        grouped = self._drain()
        if not grouped:
            return
        t0 = time.perf_counter()
        written = {stream: self.stats.streams[stream].written for stream in grouped}
        try:
            for stream, items in grouped.items():
                self._write_group(stream, items)
        except BaseException:
            # rows taken from the queue that never reached the file are lost
            for stream, items in grouped.items():
                done = self.stats.streams[stream].written - written[stream]
                self.stats.streams[stream].lost += sum(map(_rows, items)) - done
            raise
        self.stats.busy_s += time.perf_counter() - t0

    def _flush(self) -> None:
        t0 = time.perf_counter()
        self.store.flush()
        dt = time.perf_counter() - t0
        self.stats.busy_s += dt
        self.stats.flushes += 1
        self.stats.max_flush_ms = max(self.stats.max_flush_ms, dt * 1000)

    def _fail(self, message: str) -> None:
        self.error = message
        log.error(message)
        # rows still queued will never be written
        for stream, items in self._drain().items():
            self.stats.streams[stream].lost += sum(map(_rows, items))
        try:
            self.store.close(complete=False)
        except SessionWriteError:
            pass
        if self.on_error is not None:
            try:
                self.on_error(message)
            except Exception:  # a broken callback must not hide the write failure
                log.exception("on_error callback failed")

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.flush_interval):
                self._write_pending()
                self._flush()
                self._check_free_space()
            self._write_pending()
            self._flush()
        except SessionWriteError as exc:
            self._fail(str(exc))
        except Exception as exc:  # never die silently: a bug here must still end cleanly
            self._fail(f"Recording to {self.path} stopped by an internal error: {exc!r}")

    def _check_free_space(self) -> None:
        """Stop cleanly while the disk still has room, rather than at the failed write
        (a write that fails for lack of space can leave the last rows unreadable)."""
        if not self.min_free_bytes:
            return
        try:
            free = shutil.disk_usage(self._folder).free
        except OSError:
            return
        if free < self.min_free_bytes:
            raise SessionWriteError(
                f"Recording to {self.path} stopped: the disk is nearly full ({free / 1e6:.0f} MB left, "
                f"{self.min_free_bytes / 1e6:.0f} MB needed). Everything written before this point is kept; "
                "free some space before the next session."
            )

    # -- shutdown -------------------------------------------------------------------
    def close(self, complete: bool = True) -> WriterStats:
        """Write everything queued, flush, mark the file complete and close it."""
        if self._closed:
            return self.stats
        with self._lock:
            self._closed = True
        self._stop.set()
        self._thread.join()
        if self.error is None:
            try:
                self.store.close(complete=complete)
            except SessionWriteError as exc:
                self.error = str(exc)
        return self.stats

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(complete=exc[0] is None)
