"""Interrupted sessions: find them, make clean copies, close them, or continue them.

A recorder that is killed (power cut, crash, SIGKILL) leaves its session file as the
last flush left it: uncompressed, still marked open for writing, ``complete`` False,
and readable (in SWMR mode) up to that flush. This module turns such files into
ordinary closed session files and tells the app what it needs to continue a session
in a new file.

* :func:`find_interrupted` lists every session in a data folder that was not closed
  cleanly, with what it holds and whether a recorder still writes it.
* :func:`recover` writes a clean, compressed copy (``<name>.recovered.h5``) beside the
  original and never changes the original.
* :func:`close_interrupted` replaces the original with its clean copy (for "close"
  rather than "resume"), keeping a ``.bak`` of the original until the swap succeeded.
* :func:`resume_info` and :func:`continuation_meta` describe a new part file
  (``<name>_part2.h5``) that continues the session and links back to the old file.

A recovered file keeps ``complete = False`` (the recording did not end normally) and
gets the root attributes ``recovered_utc``, ``recovered_from`` and ``duration_s``, plus
one ``log`` row (level WARNING, source ``recovery``) at the last recorded time.

"Is a recorder still writing it?" is answered on a best-effort basis. HDF5 releases its
file lock once a writer switches to SWMR mode, and a killed SWMR writer leaves the same
"already open for write" marks in the file as a running one, so neither an HDF5 open in
append mode nor its lock tell them apart. Instead: on Linux, the processes that have the
file open for writing are looked up in ``/proc`` (those of the same user, or all for
root); an exclusive lock (a non-SWMR HDF5 writer) counts too; where ``/proc`` is not
available a file modified in the last :data:`RECENT_S` seconds counts as in use.
Nothing is written to a file to find out.
"""
from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import h5py
import numpy as np

from ..paths import fsync_path
from .reader import SessionFileError, SessionReader
from .schema import STREAMS, TEXT_HEAP, LogLevel, SessionMeta
from .store import _COMPRESSION, _copy_attrs, write_failure_reason

try:
    import fcntl
except ImportError:  # Windows: no flock; the /proc and modification-time checks remain
    fcntl = None

RECOVERED_SUFFIX = ".recovered.h5"
BACKUP_SUFFIX = ".bak"
RECENT_S = 10.0  # without /proc: a file modified this recently may still be recorded
LOG_SOURCE = "recovery"
_PART_RE = re.compile(r"^(?P<base>.*)_part(?P<n>\d+)$")


class RecoveryError(Exception):
    """Recovery refused or failed; the message says why. ``reason`` is one of
    ``"in_use"``, ``"complete"``, ``"recovered"``, ``"unreadable"``, ``"exists"``,
    ``"backup_exists"``, ``"failed"``."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


# -- is a recorder still writing it? ------------------------------------------------------------
def _file_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _process_name(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return "?"


def _open_for_writing(paths: Iterable[str]) -> dict[str, list[str]] | None:
    """Processes that hold each file open for writing, as ``"process 123 (python)"``.

    Scans ``/proc/*/fd`` once (only processes this user may look at). Descriptors opened
    read-only (readers, viewers) do not count. None where ``/proc`` cannot be scanned.
    """
    if not os.path.isdir("/proc/self/fd"):
        return None
    wanted: dict[tuple[int, int], list[str]] = {}
    for p in paths:
        key = _file_key(p)
        if key is not None:
            wanted.setdefault(key, []).append(p)
    found: dict[str, list[str]] = {p: [] for ps in wanted.values() for p in ps}
    if not wanted:
        return found
    try:
        pids = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return None
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # gone, or another user's process
            continue
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            hit = wanted.get((st.st_dev, st.st_ino))
            if hit is None:
                continue
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii", errors="replace") as f:
                    flags = next((int(line.split()[1], 8) for line in f if line.startswith("flags:")), None)
            except (OSError, ValueError, IndexError):
                flags = None
            if flags is not None and flags & os.O_ACCMODE == os.O_RDONLY:
                continue  # a reader
            who = f"process {pid} ({_process_name(pid)})"
            for p in hit:
                if who not in found[p]:
                    found[p].append(who)
    return found


def _locked_exclusively(path: str) -> bool:
    """True when another open file holds an exclusive ``flock`` (a non-SWMR HDF5 writer).

    Takes a shared lock on a read-only descriptor for an instant; the file is not changed.
    """
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _in_use(path: str, writers: dict[str, list[str]] | None) -> str:
    """Why ``path`` looks in use by a recorder; "" when it does not."""
    holders = (writers or {}).get(path) or []
    if holders:
        return "open for writing by " + ", ".join(holders)
    if _locked_exclusively(path):
        return "locked by another program writing it"
    if writers is None:  # no /proc: go by the modification time
        try:
            age = time.time() - os.path.getmtime(path)
        except OSError:
            return ""
        if age < RECENT_S:
            return f"modified {age:.0f} s ago (it may still be recording)"
    return ""


def in_use(path: str | os.PathLike) -> str:
    """Best-effort check that a recorder still writes ``path``: the reason, or "" when not."""
    path = os.path.abspath(os.fspath(path))
    return _in_use(path, _open_for_writing([path]))


# -- listing ------------------------------------------------------------------------------------
@dataclass
class InterruptedSession:
    """One session file that was not closed cleanly (or could not be read: ``error``)."""

    path: str
    size_bytes: int = 0
    modified_unix: float = 0.0
    error: str | None = None  # the file cannot be read as a session; nothing else is filled in
    participant: str = ""
    study: str = ""
    session_id: str = ""
    source: str = ""
    created_utc: str = ""
    clock_start_unix: float = 0.0
    t_last: float = 0.0  # seconds on the session clock of the last row of any stream
    turns: int = 0  # rows of the turns stream
    rows: dict[str, int] = field(default_factory=dict)  # complete rows per stream
    writer_open: bool = False  # still marked open by its recorder (killed, or recording now)
    in_use: bool = False  # a recorder still writes it (best effort, see the module doc)
    in_use_detail: str = ""
    problems: list[str] = field(default_factory=list)
    recovered_copy: str | None = None  # an existing <name>.recovered.h5 beside it

    @property
    def readable(self) -> bool:
        return self.error is None

    @property
    def summary(self) -> str:
        """One line for people."""
        name = os.path.basename(self.path)
        if self.error is not None:
            return f"{name}: unreadable ({_size(self.size_bytes)}): {self.error}"
        who = " / ".join(x for x in (self.participant or "-", self.study or "-", self.session_id or "-"))
        state = "RECORDING NOW" if self.in_use else ("interrupted" if self.writer_open else "ended early")
        when = _local_time(self.modified_unix)
        main = {k: v for k, v in self.rows.items() if k in ("gaze", "mouse") and v}
        rows = ", ".join(f"{k} {v}" for k, v in main.items())
        text = (
            f"{name}: {who}: {state} at {when}, last data at {_clock(self.t_last)}, "
            f"{self.turns} turn{'s' if self.turns != 1 else ''}"
            + (f", {rows} rows" if rows else "")
            + f", {_size(self.size_bytes)}"
        )
        if self.in_use:
            text += f" ({self.in_use_detail})"
        elif self.recovered_copy:
            text += f"; recovered copy: {os.path.basename(self.recovered_copy)}"
        return text

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["summary"] = self.summary
        return d


def _size(n: int) -> str:
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def _clock(t: float) -> str:
    t = max(0.0, float(t))
    m, s = divmod(int(round(t)), 60)
    return f"t = {t:.1f} s" if t < 60 else f"t = {t:.1f} s ({m} min {s} s)"


def _local_time(unix: float) -> str:
    if not unix:
        return "?"
    return _dt.datetime.fromtimestamp(unix).strftime("%Y-%m-%d %H:%M")


def _session_files(folder: str, depth: int) -> list[str]:
    out = []
    level = [folder]
    for d in range(depth + 1):
        nxt = []
        for base in level:
            try:
                entries = sorted(os.scandir(base), key=lambda e: e.name)
            except OSError:
                if d == 0:  # the folder asked for: say so rather than "nothing found"
                    raise
                continue
            for e in entries:
                try:
                    if e.is_file() and e.name.endswith(".h5"):
                        out.append(os.path.abspath(e.path))
                    elif d < depth and e.is_dir() and not e.name.startswith("."):
                        nxt.append(e.path)
                except OSError:
                    continue
        level = nxt
    return out


def _last_t(r: SessionReader) -> float:
    last = 0.0
    for name in r.stream_names:
        t = r.stream(name).t
        if len(t):
            m = np.nanmax(t) if not np.isnan(t).all() else np.nan
            if np.isfinite(m):
                last = max(last, float(m))
    return last


def _describe(path: str, writers: dict[str, list[str]] | None) -> InterruptedSession | None:
    """The entry for ``path``; None when it is a cleanly closed session or a recovered copy."""
    try:
        st = os.stat(path)
        size, mtime = st.st_size, st.st_mtime
    except OSError:
        size, mtime = 0, 0.0
    item = InterruptedSession(path=path, size_bytes=size, modified_unix=mtime)
    try:
        with SessionReader(path) as r:
            if r.complete or "recovered_utc" in r.attrs:
                return None
            meta = r.meta
            item.participant, item.study, item.session_id = meta.participant, meta.study, meta.session_id
            item.source = meta.source
            item.clock_start_unix = float(meta.clock_start_unix)
            item.created_utc = str(r.attrs.get("created_utc", ""))
            item.rows = {n: len(r.stream(n)) for n in r.stream_names}
            item.turns = item.rows.get("turns", 0)
            item.t_last = _last_t(r)
            item.writer_open = r.live_or_crashed
            item.problems = list(r.problems)
    except SessionFileError as exc:
        item.error = str(exc)
        return item
    except Exception as exc:  # a damaged file shows up as assorted errors: list it, never raise
        item.error = f"{path} cannot be read: {exc!r}"
        return item
    item.in_use_detail = _in_use(path, writers)
    item.in_use = bool(item.in_use_detail)
    copy = _default_out(path)
    item.recovered_copy = copy if os.path.exists(copy) else None
    return item


def find_interrupted(folder: str | os.PathLike, depth: int = 1) -> list[InterruptedSession]:
    """Every ``*.h5`` in ``folder`` (and its subfolders, ``depth`` levels down) that is a
    session not closed cleanly, or that cannot be read at all (listed with ``error``).

    Cleanly closed sessions and recovered copies are left out. Newest first.
    Raises NotADirectoryError when ``folder`` is not a folder and OSError (e.g.
    PermissionError) when it cannot be listed.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"{folder} is not a folder.")
    files = _session_files(folder, depth)
    writers = _open_for_writing(files)
    items = [i for i in (_describe(p, writers) for p in files) if i is not None]
    items.sort(key=lambda i: (-i.modified_unix, i.path))
    return items


def format_interrupted(items: Sequence[InterruptedSession]) -> str:
    """Text for ``ifllm-lab recover`` (listing): one block per file."""
    if not items:
        return "No interrupted sessions found."
    n_bad = sum(1 for i in items if not i.readable)
    n_live = sum(1 for i in items if i.readable and i.in_use)
    head = f"{len(items) - n_bad} interrupted session{'s' if len(items) - n_bad != 1 else ''}"
    if n_live:
        head += f" ({n_live} still recording)"
    if n_bad:
        head += f", {n_bad} unreadable file{'s' if n_bad != 1 else ''}"
    lines = [head + ":"]
    for i in items:
        lines.append(f"  {i.summary}")
        lines.append(f"    {i.path}")
        if i.readable:
            rows = ", ".join(f"{k} {v}" for k, v in i.rows.items() if v) or "none"
            lines.append(f"    rows: {rows}")
    return "\n".join(lines)


# -- recovering ---------------------------------------------------------------------------------
@dataclass
class Trim:
    """Rows of one stream left out of the recovered copy."""

    stream: str
    kept: int
    column_lengths: dict[str, int]
    reason: str

    @property
    def dropped(self) -> int:
        return max(self.column_lengths.values(), default=self.kept) - self.kept

    def __str__(self) -> str:
        return f"{self.stream}: kept {self.kept} rows, dropped {self.dropped} ({self.reason})"


@dataclass
class RecoveryReport:
    source: str  # the interrupted file
    out: str  # the clean copy (for close_interrupted: the original's path, now clean)
    rows: dict[str, int]  # rows per stream in the copy, the recovery log row not counted
    trimmed: list[Trim]
    t_last: float  # seconds on the session clock of the last recorded row
    size_before: int
    size_after: int
    seconds: float
    problems: list[str] = field(default_factory=list)  # the reader's findings on the original
    replaced: bool = False  # close_interrupted: the original was replaced by the copy
    backup_removed: bool = False  # close_interrupted: the .bak of the original was deleted

    @property
    def summary(self) -> str:
        verb = "closed" if self.replaced else "recovered"
        text = (
            f"{os.path.basename(self.source)} {verb}: {sum(self.rows.values())} rows in "
            f"{len(self.rows)} streams up to {_clock(self.t_last)}, "
            f"{_size(self.size_before)} -> {_size(self.size_after)} in {self.seconds:.1f} s"
        )
        if not self.replaced:
            text += f"; clean copy: {self.out}"
        if self.trimmed:
            text += "; trimmed " + "; ".join(map(str, self.trimmed))
        return text


def _default_out(path: str) -> str:
    root = path[:-3] if path.endswith(".h5") else path
    return root + RECOVERED_SUFFIX


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _open_interrupted(path: str, *, allow_complete: bool = False, allow_recovered: bool = False) -> SessionReader:
    """Open a session for recovery; RecoveryError when it is in use, complete or unreadable."""
    if not os.path.isfile(path):
        raise RecoveryError(f"{path}: no such file.", "unreadable")
    busy = in_use(path)
    if busy:
        raise RecoveryError(
            f"{path} is still being recorded ({busy}). Stop that recording first; a running "
            "recorder closes its file itself.", "in_use")
    try:
        r = SessionReader(path)
    except SessionFileError as exc:
        raise RecoveryError(f"Cannot recover {path}: {exc}", "unreadable") from exc
    recovered = r.attrs.get("recovered_utc")
    if recovered is not None and not allow_recovered:
        r.close()
        raise RecoveryError(
            f"{path} is already a recovered session (recovered {recovered}); there is nothing to recover.",
            "recovered")
    if r.complete and not allow_complete:
        r.close()
        raise RecoveryError(f"{path} was closed cleanly; there is nothing to recover.", "complete")
    return r


def _copy_rows(src: h5py.Dataset, dst: h5py.Dataset, n: int) -> int:
    """Copy rows ``0:n``; returns how many were copied (fewer where a block cannot be read)."""
    step = max(1, (src.chunks[0] if src.chunks else 65536) * 16)
    for i in range(0, n, step):
        try:
            block = src[i:min(n, i + step)]
        except (OSError, RuntimeError, ValueError):
            return i
        dst[i:i + len(block)] = block
    return n


def _new_dataset(group: h5py.Group, name: str, src: h5py.Dataset, n: int) -> h5py.Dataset:
    ds = group.create_dataset(
        name, shape=(n,) + src.shape[1:], maxshape=src.maxshape, dtype=src.dtype,
        chunks=src.chunks, fillvalue=src.fillvalue, **_COMPRESSION,
    )
    _copy_attrs(src, ds)
    return ds


def _is_text(ds: h5py.Dataset) -> bool:
    return bool(ds.attrs.get("text", False)) and ds.ndim == 2 and ds.shape[1] == 2


def _write_copy(r: SessionReader, tmp: str, log_message: Callable[[float], str], recovered_attrs: dict
                ) -> tuple[dict[str, int], list[Trim], float]:
    """Write the clean copy of ``r`` to ``tmp``; returns (rows per stream, trims, last t).

    ``log_message(last_t)`` gives the text of the recovery log row."""
    src = r._f  # the reader's handle (read-only, SWMR where the file is still marked open)
    trims: list[Trim] = []
    rows: dict[str, int] = {}
    with h5py.File(tmp, "w") as dst:
        _copy_attrs(src, dst)
        # the text store first: text cells of the copied rows must lie inside it
        heap_len = 0
        if TEXT_HEAP in src:
            heap_src = src[TEXT_HEAP]
            heap = _new_dataset(dst, TEXT_HEAP, heap_src, heap_src.shape[0])
            heap_len = _copy_rows(heap_src, heap, heap_src.shape[0])
            if heap_len < heap_src.shape[0]:
                heap.resize((heap_len,))
        # groups and datasets that are not streams (meta, anything unknown): as they are
        def copy_other(name, obj):
            if name == TEXT_HEAP:
                return
            if isinstance(obj, h5py.Group):
                _copy_attrs(obj, dst.require_group(name))
                return
            parent = os.path.dirname(name)
            if parent in STREAMS:
                return  # copied below, trimmed to the stream's complete rows
            g = dst.require_group(parent) if parent else dst
            if obj.ndim == 0:
                _copy_attrs(obj, g.create_dataset(os.path.basename(name), data=obj[()]))
            else:
                _copy_rows(obj, _new_dataset(g, os.path.basename(name), obj, obj.shape[0]), obj.shape[0])

        src.visititems(copy_other)
        last_t = 0.0
        for name in STREAMS:
            if name not in src or not isinstance(src[name], h5py.Group):
                continue
            g_src, g_dst = src[name], dst[name]
            cols = {k: g_src[k] for k in g_src.keys() if isinstance(g_src[k], h5py.Dataset)}
            lengths = {k: ds.shape[0] for k, ds in cols.items()}
            n = min(lengths.values(), default=0)
            reason = ""
            if len(set(lengths.values())) > 1:
                reason = "columns of unequal length: the rows of a write cut short"
            # rows whose text lies past the end of the text store (cut between two writes)
            for k, ds in cols.items():
                if _is_text(ds) and n:
                    pairs = ds[:n]
                    bad = np.nonzero(pairs[:, 0] + pairs[:, 1] > heap_len)[0]
                    if len(bad) and bad[0] < n:
                        n = int(bad[0])
                        reason = f"text of column {k!r} lies past the end of the text store"
            out = {k: _new_dataset(g_dst, k, ds, n) for k, ds in cols.items()}
            for k, ds in cols.items():
                got = _copy_rows(ds, out[k], n)
                if got < n:
                    n = got
                    reason = f"column {k!r} cannot be read past row {got} (the file is shorter than its index)"
                    for d in out.values():
                        if d.shape[0] > n:
                            d.resize((n,) + d.shape[1:])
            if reason:
                trims.append(Trim(name, n, lengths, reason))
            rows[name] = n
            if n and "t" in cols:
                t = out["t"][max(0, n - 65536):n]  # rows are in time order: the last ones are the latest
                if not np.isnan(t).all():
                    last_t = max(last_t, float(np.nanmax(t)))
        # one log row: the session was interrupted and recovered
        if "log" not in dst:
            _create_stream(dst, "log")
            rows.setdefault("log", 0)
        log = dst["log"]
        n = rows.get("log", 0)
        encoded = [LOG_SOURCE.encode(), log_message(last_t).encode("utf-8")]
        if TEXT_HEAP not in dst:
            dst.create_dataset(TEXT_HEAP, shape=(0,), maxshape=(None,), dtype="u1", chunks=(65536,), **_COMPRESSION)
        heap = dst[TEXT_HEAP]
        start = heap.shape[0]
        blob = b"".join(encoded)
        heap.resize((start + len(blob),))
        heap[start:] = np.frombuffer(blob, dtype=np.uint8)
        values = {
            "t": last_t,
            "level": int(LogLevel.WARNING),
            "source": (start, len(encoded[0])),
            "message": (start + len(encoded[0]), len(encoded[1])),
        }
        for k in log.keys():
            ds = log[k]
            ds.resize((n + 1,) + ds.shape[1:])
            if k in values:
                ds[n] = values[k]
        for key, value in recovered_attrs.items():
            dst.attrs[key] = value
        dst.attrs["duration_s"] = float(last_t)
    return rows, trims, last_t


def _create_stream(f: h5py.File, name: str) -> None:
    spec = STREAMS[name]
    g = f.require_group(name)
    g.attrs["doc"] = spec.doc
    for col in spec.columns:
        if col.is_text:
            ds = g.create_dataset(col.name, shape=(0, 2), maxshape=(None, 2), dtype="u8",
                                  chunks=(min(spec.chunk_rows, 8192), 2), **_COMPRESSION)
            ds.attrs["text"] = True
        else:
            ds = g.create_dataset(col.name, shape=(0,), maxshape=(None,), dtype=col.dtype,
                                  chunks=(spec.chunk_rows,), fillvalue=col.default(), **_COMPRESSION)
        ds.attrs["doc"] = col.doc


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _verify(out: str, rows: dict[str, int]) -> None:
    """The copy opens with a plain HDF5 open and holds the rows written (+1 log row)."""
    with h5py.File(out, "r"):
        pass
    with SessionReader(out) as r:
        for name, n in rows.items():
            want = n + (1 if name == "log" else 0)
            if len(r.stream(name)) != want:
                raise RecoveryError(f"the copy {out} holds {len(r.stream(name))} {name} rows, not {want}", "failed")


def recover(path: str | os.PathLike, out: str | os.PathLike | None = None, *, overwrite: bool = False,
            _action: str = "recovered") -> RecoveryReport:
    """Write a clean, compressed copy of an interrupted session; the original is not changed.

    The copy holds every complete row of every stream (all rows up to the recorder's last
    flush), the metadata and all attributes; ``complete`` stays False, ``recovered_utc``,
    ``recovered_from`` and ``duration_s`` are set and a ``log`` row records the recovery.
    Trailing rows that not all columns of a stream hold (or whose text is missing) are
    left out and reported in :attr:`RecoveryReport.trimmed`.

    Args:
        path: the interrupted session file.
        out: where to write the copy; default ``<name>.recovered.h5`` beside ``path``.
        overwrite: replace ``out`` when it exists (refused otherwise).

    Raises:
        RecoveryError: the file is still being recorded, was closed cleanly, is already a
            recovered copy or cannot be read, ``out`` exists, or writing failed.
    """
    t0 = time.perf_counter()
    path = os.path.abspath(os.fspath(path))
    out = _default_out(path) if out is None else os.path.abspath(os.fspath(out))
    if out == path:
        raise RecoveryError(f"The copy must not overwrite the original {path}; use close_interrupted.", "exists")
    if os.path.exists(out) and not overwrite:
        raise RecoveryError(f"{out} already exists (recovered before?); remove it or choose another "
                            "file for the copy.", "exists")
    size_before = os.path.getsize(path) if os.path.isfile(path) else 0
    r = _open_interrupted(path)
    tmp = out + ".tmp"
    try:
        problems = list(r.problems)
        recovered_utc = _utc_now()
        how = ("the recorder stopped without closing the file" if r.live_or_crashed
               else "the recording ended without being marked complete")

        def message(t_last: float) -> str:
            return (
                f"session interrupted: {how}; last data at t = {t_last:.3f} s. {_action.capitalize()} "
                f"by IFLLM Lab at {recovered_utc} from {os.path.basename(path)}: rows up to the "
                "recorder's last flush are kept."
            )

        attrs = {"recovered_utc": recovered_utc, "recovered_from": path}
        rows, trims, t_last = _write_copy(r, tmp, message, attrs)
    except RecoveryError:
        _remove(tmp)
        raise
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        _remove(tmp)
        raise RecoveryError(f"Recovering {path} into {out} failed: {write_failure_reason(exc)}. The original "
                            "is unchanged.",
                            "failed") from exc
    finally:
        r.close()
    try:
        _verify(tmp, rows)
        fsync_path(tmp)
        os.replace(tmp, out)
        fsync_path(os.path.dirname(out), directory=True)
    except Exception as exc:
        _remove(tmp)
        if isinstance(exc, RecoveryError):
            raise
        raise RecoveryError(f"Recovering {path} into {out} failed: {write_failure_reason(exc)}. The original "
                            "is unchanged.",
                            "failed") from exc
    return RecoveryReport(
        source=path, out=out, rows=rows, trimmed=trims, t_last=t_last, size_before=size_before,
        size_after=os.path.getsize(out), seconds=time.perf_counter() - t0, problems=problems,
    )


def close_interrupted(path: str | os.PathLike) -> RecoveryReport:
    """Close an interrupted session in place: its clean copy replaces it (one file remains).

    The copy is written and checked first; then the original is kept as ``<path>.bak``
    while the copy is moved onto ``path`` (an atomic rename), and the ``.bak`` is deleted
    once the new file opens and holds every row. Any failure puts the original back.
    Refuses as :func:`recover` does, and when a ``.bak`` from an earlier attempt exists.
    """
    path = os.path.abspath(os.fspath(path))
    bak = path + BACKUP_SUFFIX
    if os.path.exists(bak):
        raise RecoveryError(
            f"{bak} exists (left by an earlier attempt?): check it, then move or delete it.", "backup_exists")
    staged = path + ".closing"
    report = recover(path, staged, overwrite=True, _action="closed")
    try:
        try:
            os.link(path, bak)  # instant, and the original stays where it is until the rename
        except OSError:
            shutil.copy2(path, bak)
        fsync_path(bak)
    except OSError as exc:
        _remove(staged)
        _remove(bak)
        raise RecoveryError(f"Cannot keep a backup of {path} ({write_failure_reason(exc)}); nothing was changed.",
                            "failed") from exc
    try:
        os.replace(staged, path)
        fsync_path(os.path.dirname(path), directory=True)
        _verify(path, report.rows)
    except Exception as exc:
        try:
            os.replace(bak, path)
        except OSError:
            pass
        _remove(staged)
        raise RecoveryError(f"Closing {path} failed ({write_failure_reason(exc)}); the original was put back.",
                            "failed") from exc
    try:
        os.remove(bak)
        report.backup_removed = True
    except OSError:
        pass
    report.out = path
    report.replaced = True
    report.size_after = os.path.getsize(path)
    return report


# -- resuming -----------------------------------------------------------------------------------
@dataclass
class ResumeInfo:
    """What a new recording needs to continue an interrupted session in a new file."""

    path: str  # the old file (absolute)
    session_id: str
    participant: str
    study: str
    next_turn: int  # turn index of the first turn of the new file
    t_last: float  # last recorded time on the old file's session clock, seconds
    clock_start_unix: float  # wall clock of t == 0 of the old file
    part: int  # part number of the old file (1 for a session's first file)
    next_part: int
    next_path: str  # suggested new file: <name>_part<next_part>.h5 beside the old one
    aborted_turn: int | None  # a turn that was under way (scroll/layout rows) but has no turns row
    meta: SessionMeta = field(repr=False, default_factory=SessionMeta)


def _max_int(r: SessionReader, stream: str, column: str) -> int | None:
    if stream not in r or column not in r.stream(stream).columns or not len(r.stream(stream)):
        return None
    values = r.stream(stream).column(column)
    return int(values.max()) if len(values) else None


def resume_info(path: str | os.PathLike) -> ResumeInfo:
    """What :func:`continuation_meta` and the app need to go on with the session of ``path``.

    ``next_turn`` is one past the last recorded turn index (the number of turns recorded
    for a session's first file). Refuses (RecoveryError) a file that is still being
    recorded or cannot be read. Complete and recovered files are accepted (a session closed
    with :func:`close_interrupted` keeps its path, so a part file's link stays valid).
    """
    path = os.path.abspath(os.fspath(path))
    r = _open_interrupted(path, allow_complete=True, allow_recovered=True)
    with r:
        meta = r.meta
        extra = meta.extra if isinstance(meta.extra, dict) else {}
        first_turn = int(extra.get("first_turn", 0) or 0)
        last_turn = _max_int(r, "turns", "turn")
        next_turn = first_turn if last_turn is None else max(first_turn, last_turn + 1)
        started = [v for v in (_max_int(r, "scroll", "turn"), _max_int(r, "layout", "turn")) if v is not None]
        aborted = max(started) if started and max(started) >= next_turn else None
        t_last = _last_t(r)
    part = int(extra.get("part", 1) or 1)
    folder, name = os.path.split(path)
    stem = name[:-3] if name.endswith(".h5") else name
    if stem.endswith(RECOVERED_SUFFIX[:-3]):
        stem = stem[: -len(RECOVERED_SUFFIX[:-3])]
    m = _PART_RE.match(stem)
    if m:
        stem = m.group("base")
        part = max(part, int(m.group("n")))
    next_part = part + 1
    while os.path.exists(os.path.join(folder, f"{stem}_part{next_part}.h5")):
        next_part += 1
    return ResumeInfo(
        path=path, session_id=meta.session_id, participant=meta.participant, study=meta.study,
        next_turn=next_turn, t_last=t_last, clock_start_unix=float(meta.clock_start_unix), part=part,
        next_part=next_part, next_path=os.path.join(folder, f"{stem}_part{next_part}.h5"),
        aborted_turn=aborted, meta=meta,
    )


def continuation_meta(info: ResumeInfo) -> SessionMeta:
    """Metadata of the new part file: the same participant, study and session id, the old
    screen geometry and ``extra`` (the app may overwrite them), and the links in ``extra``:
    ``continues`` (old file, absolute path), ``part``, ``first_turn``, ``continues_t_last``
    (seconds on the old clock) and ``continues_clock_start_unix``. ``clock_start_unix`` is
    left for the writer to set (the new file has its own clock, starting at 0)."""
    old = info.meta
    extra = json.loads(json.dumps(old.extra, default=str)) if isinstance(old.extra, dict) else {}
    extra.update(
        continues=info.path,
        part=info.next_part,
        first_turn=info.next_turn,
        continues_t_last=info.t_last,
        continues_clock_start_unix=info.clock_start_unix,
    )
    return SessionMeta(
        participant=info.participant, study=info.study, session_id=info.session_id, source="ifllm-lab",
        screen_width_px=old.screen_width_px, screen_height_px=old.screen_height_px,
        screen_width_mm=old.screen_width_mm, screen_height_mm=old.screen_height_mm,
        viewing_distance_mm=old.viewing_distance_mm, clock_start_unix=0.0, extra=extra,
    )


__all__ = [
    "InterruptedSession", "RecoveryError", "RecoveryReport", "ResumeInfo", "Trim", "close_interrupted",
    "continuation_meta", "find_interrupted", "format_interrupted", "in_use", "recover", "resume_info",
]
