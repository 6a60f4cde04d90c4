"""Lazy session file reader.

Opening reads only the attributes; each stream's ``t`` column is loaded on first
use and cached, and rows are read for the requested index or time range only.
Files left open by a killed recorder (or still being written) are opened in
single-writer/multiple-reader mode and report that in :attr:`SessionReader.problems`.
"""
from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass

import h5py
import numpy as np

from ..paths import unreadable_file
from .schema import FORMAT_NAME, META_GROUP, SCHEMA_VERSION, STREAMS, TEXT_HEAP, SessionMeta, StreamSpec


class SessionFileError(Exception):
    """The file cannot be read as a session; the message says why and what to do."""


# Tries of a metadata read that fails its checksum in SWMR mode. HDF5 sleeps 1 ns, 2 ns,
# 4 ns ... between tries, so its default (100) hangs for ages on a damaged file; 25 tries
# wait about 30 ms in all, plenty for a writer that is updating the entry right now.
_SWMR_READ_ATTEMPTS = 25


def _open_swmr(path: str) -> h5py.File | None:
    """Open in SWMR read mode with few metadata read attempts; None where that cannot be set."""
    try:
        set_attempts = ctypes.CDLL(h5py.defs.__file__).H5Pset_metadata_read_attempts
    except (OSError, AttributeError):
        return None
    set_attempts.argtypes = (ctypes.c_int64, ctypes.c_uint)
    set_attempts.restype = ctypes.c_int
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    if set_attempts(fapl.id, _SWMR_READ_ATTEMPTS) < 0:
        return None
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    return h5py.File(fid)


def _column_lengths(group: h5py.Group, read_last: bool = False) -> dict[str, int]:
    """Stored length of every column of a stream's group. Opening each column also shows
    damage now rather than mid-analysis; HDF5's low-level calls cost a tenth of h5py's
    objects. ``read_last``: read each column's last row too (in a cut-off file the index
    of the last rows may lie past the end)."""
    lengths = {}
    gid = group.id
    for key in gid:
        n = h5py.h5d.open(gid, key).shape[0]
        name = key.decode("utf-8")
        lengths[name] = n
        if n and read_last:
            _ = group[name][-1]
    return lengths


def _truncated(path: str) -> str:
    return (
        f"{path} is truncated (the file is shorter than its own index says): it was cut off "
        "while copying or the disk filled up. Copy it again from the recording machine; "
        "if that is the original, nothing in it can be read."
    )


def _open_hdf5(path: str) -> tuple[h5py.File, bool, bool]:
    """Open read-only; returns (file, opened_in_swmr_mode, shorter_than_its_index)."""
    problem = unreadable_file(path, "session file")
    if problem:
        raise SessionFileError(problem)
    try:
        is_hdf5 = h5py.is_hdf5(path)
        size = os.path.getsize(path)
    except OSError as exc:
        raise SessionFileError(f"{path} cannot be read: {exc.strerror or exc}.") from None
    if not is_hdf5:
        raise SessionFileError(
            f"{path} is not an IFLLM Lab session file: it is not HDF5 ({size} bytes"
            + (", empty" if size == 0 else "")
            + ")."
        )
    try:
        return h5py.File(path, "r"), False, False
    except (OSError, RuntimeError) as exc:
        first = str(exc)
    truncated = "truncated" in first or "eof" in first.lower()
    # A file still marked open by a SWMR writer (recording now, killed, or stopped by a full
    # disk, which also leaves it shorter than its index) is opened in SWMR mode, which skips
    # the end-of-file check. A truncated file is tried that way only with few read attempts.
    if truncated or "already open for write" in first or "consistency flags" in first:
        try:
            f = _open_swmr(path)
            if f is None and not truncated:
                f = h5py.File(path, "r", swmr=True)
            if f is not None:
                return f, True, truncated
        except (OSError, RuntimeError):
            pass
    if truncated:
        raise SessionFileError(_truncated(path))
    raise SessionFileError(f"{path} is damaged or truncated: it cannot be opened as HDF5 ({first}).")


@dataclass
class StreamInfo:
    name: str
    count: int
    t_first: float
    t_last: float

    @property
    def rate_hz(self) -> float:
        span = self.t_last - self.t_first
        return (self.count - 1) / span if self.count > 1 and span > 0 else 0.0


class Stream:
    """One stream of a session file, read lazily.

    ``len(stream)`` is the number of complete rows (the shortest column, so that a
    file cut between two column writes stays consistent).
    """

    def __init__(self, reader: "SessionReader", spec: StreamSpec, group: h5py.Group):
        self._reader = reader
        self.spec = spec
        self.name = spec.name
        self._group = group
        lengths = reader._lengths.get(spec.name)
        if lengths is None:
            lengths = reader._lengths[spec.name] = _column_lengths(group)
        self._lengths = lengths
        self.columns = tuple(c.name for c in spec.columns if c.name in lengths)
        self.extra_columns = tuple(k for k in lengths if k not in spec.column_names)
        self._len = min(lengths.values(), default=0)
        self._t: np.ndarray | None = None

    def __len__(self) -> int:
        return self._len

    def column_lengths(self) -> dict[str, int]:
        """Stored length of every column (they differ only in a damaged file)."""
        return dict(self._lengths)

    def __repr__(self) -> str:
        return f"<Stream {self.name}: {self._len} rows>"

    @property
    def t(self) -> np.ndarray:
        """Session-clock seconds of every row (loaded once, cached)."""
        if self._t is None:
            self._t = self._group["t"][: self._len] if "t" in self._group else np.zeros(self._len)
        return self._t

    def column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self._len if stop is None else min(stop, self._len)
        start = max(0, min(start, stop))
        ds = self._group[name]
        if ds.attrs.get("text", False):
            return self._reader._decode_text(ds[start:stop])
        if name == "t" and self._t is not None:
            return self._t[start:stop]
        return ds[start:stop]

    def read(self, start: int = 0, stop: int | None = None, columns=None) -> np.ndarray:
        """Rows ``start:stop`` as a structured array (text columns as ``str`` objects)."""
        stop = self._len if stop is None else min(stop, self._len)
        start = max(0, min(start, stop))
        names = tuple(columns) if columns is not None else self.columns + self.extra_columns
        arrays = [self.column(n, start, stop) for n in names]
        out = np.empty(stop - start, dtype=[(n, a.dtype) for n, a in zip(names, arrays)])
        for n, a in zip(names, arrays):
            out[n] = a
        return out

    def index_range(self, t0: float, t1: float) -> tuple[int, int]:
        """Row indices ``[i0, i1)`` with ``t0 <= t < t1`` (``t`` is sorted)."""
        t = self.t
        return int(np.searchsorted(t, t0, "left")), int(np.searchsorted(t, t1, "left"))

    def between(self, t0: float, t1: float, columns=None) -> np.ndarray:
        """Rows with ``t0 <= t < t1`` (seconds on the session clock)."""
        i0, i1 = self.index_range(t0, t1)
        return self.read(i0, i1, columns)

    def info(self) -> StreamInfo:
        n = self._len
        if n == 0:
            return StreamInfo(self.name, 0, float("nan"), float("nan"))
        t = self.t
        return StreamInfo(self.name, n, float(t[0]), float(t[-1]))


class SessionReader:
    """A session file opened for reading.

    Raises :class:`SessionFileError` for anything that is not a readable session
    of this or an older schema.
    """

    def __init__(self, path: str | os.PathLike, *, check_streams: bool = True):
        """``check_streams=False`` opens a stream's columns only when it is first read (a
        quick look at many files, e.g. a folder's table); a cut-off file is checked whole
        either way."""
        self.path = os.fspath(path)
        self._f, self.live_or_crashed, shortened = _open_hdf5(self.path)
        try:
            self._check(shortened, check_streams or shortened)
        except Exception as exc:  # a damaged index shows up as assorted errors
            self._f.close()
            if shortened:  # whatever the damage looks like, the cause is the missing end
                raise SessionFileError(_truncated(self.path)) from exc
            if isinstance(exc, SessionFileError):
                raise
            raise SessionFileError(f"{self.path} is damaged: {exc}") from exc
        self._heap: bytes | None = None
        self._streams: dict[str, Stream] = {}
        self.problems: list[str] = []
        if "recovered_utc" in self._attrs:
            self.problems.append(
                f"recovered copy of an interrupted recording ({self._attrs.get('recovered_from', '')}): "
                "data up to the recorder's last flush"
            )
        elif self.state == "ended_early":
            self.problems.append(
                "the session ended before it was complete (closed by the app; the reason is in its "
                "'end' phase and log)"
            )
        elif self.state == "interrupted":
            self.problems.append(
                "the recording was not closed cleanly (recorder killed or still running): "
                "data up to the last flush is readable"
            )
        if shortened:
            self.problems.append(
                "the file is shorter than its own index says (the disk filled up while recording, "
                "or it was cut off while copying): the rows of the last, failed write may hold "
                "fill values (NaN, -1) or zeros"
            )

    def _check(self, shortened: bool = False, check_streams: bool = True) -> None:
        # read once: a session's root attributes do not change while it is open for reading
        # (a recorder writes them only when it closes the file)
        self._attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self._f.attrs.items()}
        attrs = self._attrs
        if attrs.get("format") != FORMAT_NAME or "schema" not in attrs:
            raise SessionFileError(
                f"{self.path} is an HDF5 file but not an IFLLM Lab session (no '{FORMAT_NAME}' format mark)."
            )
        self.schema = int(attrs["schema"])
        if self.schema > SCHEMA_VERSION:
            raise SessionFileError(
                f"{self.path} uses session schema {self.schema}, newer than this IFLLM Lab "
                f"understands ({SCHEMA_VERSION}). Update IFLLM Lab to read it."
            )
        if TEXT_HEAP not in self._f:
            raise SessionFileError(f"{self.path} is damaged: its text store is missing.")
        # open every stream's columns so that damage shows now, not mid-analysis; their
        # lengths are kept for the streams (HDF5's low-level calls: a tenth of the cost)
        self._lengths: dict[str, dict[str, int]] = {}
        for name in STREAMS if check_streams else ():
            if name in self._f:
                self._lengths[name] = _column_lengths(self._f[name], read_last=shortened)

    # -- metadata -----------------------------------------------------------------
    @property
    def attrs(self) -> dict:
        return dict(self._attrs)

    @property
    def meta(self) -> SessionMeta:
        a = self.attrs
        fields = {k: a[k] for k in SessionMeta.__dataclass_fields__ if k in a and k != "extra"}
        extra = json.loads(self._f[META_GROUP].attrs.get("extra_json", "{}")) if META_GROUP in self._f else {}
        return SessionMeta(**fields, extra=extra)

    @property
    def complete(self) -> bool:
        return bool(self._attrs.get("complete", False)) and not self.live_or_crashed

    @property
    def state(self) -> str:
        """``complete`` (closed cleanly at the end), ``ended_early`` (closed cleanly before
        the end), ``recovered`` (a clean copy of an interrupted recording) or
        ``interrupted`` (not closed: the recorder was killed or is still running)."""
        if self.complete:
            return "complete"
        if "recovered_utc" in self._attrs:
            return "recovered"
        if "closed_utc" in self._attrs and not self.live_or_crashed:
            return "ended_early"
        return "interrupted"

    @property
    def stream_names(self) -> list[str]:
        return [n for n in STREAMS if n in self._f]

    def __contains__(self, name: str) -> bool:
        return name in STREAMS and name in self._f

    def stream(self, name: str) -> Stream:
        if name not in self._streams:
            if name not in self:
                raise KeyError(f"{self.path} has no stream {name!r} (it has: {', '.join(self.stream_names)})")
            self._streams[name] = Stream(self, STREAMS[name], self._f[name])
        return self._streams[name]

    __getitem__ = stream

    def _decode_text(self, pairs: np.ndarray) -> np.ndarray:
        if self._heap is None:
            self._heap = self._f[TEXT_HEAP][:].tobytes()
        heap = self._heap
        out = np.empty(len(pairs), dtype=object)
        for i, (off, n) in enumerate(pairs.tolist()):
            out[i] = heap[off:off + n].decode("utf-8", "replace")
        return out

    def duration(self) -> float:
        """Seconds from 0 to the last sample of any stream."""
        last = 0.0
        for name in self.stream_names:
            s = self.stream(name)
            if len(s):
                last = max(last, float(s.t[-1]))
        return last

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
