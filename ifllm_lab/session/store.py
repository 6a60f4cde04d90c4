"""Low-level session file creation and appending (single thread, no queue).

:class:`SessionStore` creates the file with every group and column of the schema,
then appends rows column by column. It is used directly by batch producers (the
IFLLM importer) and from the writer thread of :class:`~ifllm_lab.session.writer.SessionWriter`.

Crash safety: with ``swmr=True`` the file is switched to HDF5 single-writer /
multiple-reader mode right after creation. Every :meth:`flush` then leaves a file
that readers (and a reader after a SIGKILL) open consistently, holding all rows up
to that flush.

Size: in SWMR mode HDF5 never reuses file space, so compressed chunks that are
rewritten at every flush would leave their old copies behind (the file grew ~30x
in a measurement). Recording therefore writes uncompressed chunks, which are
updated in place, and :meth:`SessionStore.close` compacts the finished file into
its compressed archive form (see :func:`compact_session`). A file left by a killed
recorder stays uncompressed and complete up to its last flush.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence

import h5py
import numpy as np

from .. import __version__
from .schema import (
    FORMAT_NAME,
    META_GROUP,
    SCHEMA_VERSION,
    STREAMS,
    TEXT_HEAP,
    SessionMeta,
    StreamSpec,
)

# gzip level 1 with byte shuffle: readable by every HDF5 tool, fast enough for 1 kHz streams.
_COMPRESSION = dict(compression="gzip", compression_opts=1, shuffle=True)


class SessionWriteError(RuntimeError):
    """Writing failed (disk full, folder not writable, I/O error). Rows written before are kept."""


# h5py raises OSError for most failed writes but RuntimeError for some (a flush on a full disk).
_WRITE_ERRORS = (OSError, RuntimeError)


def write_failure_reason(exc: BaseException) -> str:
    """A failed write in a few words: "the disk is full", "no permission to write", ... or the
    first line of the error (HDF5's messages run over several lines)."""
    text = str(exc)
    errno = getattr(exc, "errno", None)
    if errno == 28 or "No space" in text or "ENOSPC" in text or "errno = 28" in text:
        return "the disk is full"
    if errno == 27 or "File too large" in text or "errno = 27" in text:
        return "the file reached the size limit of this system"
    if errno == 30 or "Read-only file system" in text or "errno = 30" in text:
        return "the disk is read-only"
    if errno == 13 or "Permission denied" in text or "errno = 13" in text:
        return "no permission to write there"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return text.splitlines()[0] if text else type(exc).__name__


def _meta_attrs(meta: SessionMeta) -> dict:
    out = {}
    for key, value in meta.__dict__.items():
        if key == "extra":
            continue
        out[key] = value
    return out


class SessionStore:
    """An open session file for appending.

    Args:
        path: file to create (must not exist unless ``overwrite``).
        meta: session description.
        streams: stream names to create; default all core streams. Extra streams
            (imported data) are created only when named.
        swmr: switch to single-writer/multiple-reader mode (crash safe flushes).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        meta: SessionMeta,
        streams: Sequence[str] | None = None,
        swmr: bool = False,
        overwrite: bool = False,
    ):
        self.path = os.fspath(path)
        self.meta = meta
        self.swmr = swmr
        self._compression = {} if swmr else _COMPRESSION
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise SessionWriteError(f"Cannot record to {self.path}: folder {folder} does not exist.")
        if not os.access(folder, os.W_OK):
            raise SessionWriteError(f"Cannot record to {self.path}: folder {folder} is not writable.")
        if os.path.exists(self.path) and not overwrite:
            raise SessionWriteError(f"Cannot record to {self.path}: the file already exists.")
        names = list(streams) if streams is not None else [n for n, s in STREAMS.items() if not s.extra]
        self.specs: dict[str, StreamSpec] = {n: STREAMS[n] for n in names}
        self.counts: dict[str, int] = {n: 0 for n in names}
        self._t_last = 0.0
        try:
            self._f = h5py.File(self.path, "w", libver="latest")
            self._create_layout()
            if swmr:
                self._f.swmr_mode = True
        except OSError as exc:
            self._abort()
            raise SessionWriteError(f"Cannot create session file {self.path}: {write_failure_reason(exc)}") from exc
        self._heap = self._f[TEXT_HEAP]
        self._heap_len = 0
        self._cols = {
            name: [(c, self._f[name][c.name]) for c in spec.columns] for name, spec in self.specs.items()
        }
        self.closed = False
        self.recorded_bytes = 0
        self.compacted = False
        self.failed: str | None = None  # message of the first failed write

    # -- creation -----------------------------------------------------------------
    def _create_layout(self) -> None:
        f = self._f
        f.attrs["format"] = FORMAT_NAME
        f.attrs["schema"] = SCHEMA_VERSION
        f.attrs["app_version"] = __version__
        f.attrs["created_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        f.attrs["complete"] = False
        for key, value in _meta_attrs(self.meta).items():
            f.attrs[key] = value
        meta = f.create_group(META_GROUP)
        meta.attrs["extra_json"] = json.dumps(self.meta.extra, ensure_ascii=False, default=str)
        f.create_dataset(TEXT_HEAP, shape=(0,), maxshape=(None,), dtype="u1", chunks=(65536,), **self._compression)
        for name, spec in self.specs.items():
            g = f.require_group(name)
            g.attrs["doc"] = spec.doc
            for col in spec.columns:
                if col.is_text:
                    ds = g.create_dataset(
                        col.name, shape=(0, 2), maxshape=(None, 2), dtype="u8",
                        chunks=(min(spec.chunk_rows, 8192), 2), **self._compression,
                    )
                    ds.attrs["text"] = True
                else:
                    ds = g.create_dataset(
                        col.name, shape=(0,), maxshape=(None,), dtype=col.dtype,
                        chunks=(spec.chunk_rows,), fillvalue=col.default(), **self._compression,
                    )
                ds.attrs["doc"] = col.doc

    def _abort(self) -> None:
        try:
            self._f.close()
        except Exception:
            pass

    # -- appending ----------------------------------------------------------------
    def _append_text(self, values: Sequence) -> np.ndarray:
        encoded = [("" if v is None else str(v)).encode("utf-8") for v in values]
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.uint64, count=len(encoded))
        offsets = np.empty_like(lengths)
        if len(lengths):
            np.cumsum(lengths[:-1], out=offsets[1:])
            offsets[0] = 0
        offsets += self._heap_len
        blob = b"".join(encoded)
        if blob:
            n = len(blob)
            self._heap.resize((self._heap_len + n,))
            self._heap[self._heap_len:] = np.frombuffer(blob, dtype=np.uint8)
            self._heap_len += n
        return np.stack([offsets, lengths], axis=1)

    def append(self, stream: str, rows: Mapping[str, Sequence] | np.ndarray) -> int:
        """Append rows to ``stream``; returns the number appended.

        ``rows`` is a structured array or a mapping of column name to values. Columns
        it lacks take the column's fill value; names not in the schema are an error.
        """
        if self.closed:
            raise SessionWriteError(f"{self.path} is closed")
        if self.failed is not None:
            raise SessionWriteError(self.failed)
        if isinstance(rows, np.ndarray):
            names = rows.dtype.names or ()
            get = rows.__getitem__
        else:
            names = tuple(rows.keys())
            get = rows.__getitem__
        try:
            spec_cols = self._cols[stream]
        except KeyError:
            raise KeyError(f"stream {stream!r} is not in this session file") from None
        unknown = set(names) - {c.name for c, _ in spec_cols}
        if unknown:
            raise KeyError(f"stream {stream!r} has no column(s) {sorted(unknown)}")
        if not names:
            return 0
        n = len(get(names[0]))
        if n == 0:
            return 0
        start = self.counts[stream]
        try:
            for col, ds in spec_cols:
                if col.name in names:
                    values = get(col.name)
                    if len(values) != n:
                        raise ValueError(f"{stream}/{col.name}: {len(values)} values, expected {n}")
                    data = self._append_text(values) if col.is_text else np.asarray(values, dtype=col.dtype)
                else:
                    if col.is_text:
                        data = np.zeros((n, 2), dtype=np.uint64)
                    else:
                        data = np.full(n, col.default(), dtype=col.dtype)
                ds.resize((start + n,) + ds.shape[1:])
                ds[start:] = data
        except _WRITE_ERRORS as exc:
            raise self._write_failed(exc) from exc
        self.counts[stream] = start + n
        if "t" in names:
            self._t_last = max(self._t_last, float(np.max(get("t"))))
        return n

    def _write_error_message(self, exc: BaseException) -> str:
        reason = write_failure_reason(exc)
        return f"Recording to {self.path} stopped: {reason}. Everything written before this point is kept."

    def _write_failed(self, exc: BaseException) -> SessionWriteError:
        """Stop writing to the file after a failed write; returns the error to raise.

        The file is left as the failure left it: like a killed recorder's, readable up to
        the last flush. HDF5's descriptor is pointed at the null device so that closing
        (which writes the cached metadata) neither changes the file nor fails: a failed
        close leaves the HDF5 library in a state that crashes the process at exit.
        """
        if self.failed is None:
            self.failed = self._write_error_message(exc)
            try:
                fd = self._f.id.get_vfd_handle()
                null = os.open(os.devnull, os.O_RDWR)
                try:
                    os.dup2(null, fd)
                finally:
                    os.close(null)
            except Exception:  # not a POSIX file descriptor: closing may report errors
                pass
        return SessionWriteError(self.failed)

    def flush(self) -> None:
        if self.failed is not None:
            raise SessionWriteError(self.failed)
        try:
            self._f.flush()
        except _WRITE_ERRORS as exc:
            raise self._write_failed(exc) from exc

    @property
    def t_last(self) -> float:
        return self._t_last

    def close(self, complete: bool = True, duration_s: float | None = None) -> None:
        """Flush and close. With ``complete`` the file is marked as cleanly finished.

        Attributes cannot change in SWMR mode, so a SWMR file is reopened briefly
        to record the final state, then compacted (compressed) in place. If the
        compaction cannot finish (e.g. the disk is full) the uncompressed file,
        which holds the same data, is kept.
        """
        if self.closed:
            return
        self.closed = True
        error = None
        try:
            self._f.flush()
        except _WRITE_ERRORS as exc:
            error = self._write_failed(exc)
        try:
            self._f.close()
        except _WRITE_ERRORS as exc:
            error = error or self._write_failed(exc)
        if self.failed is not None:  # the file stays as the failure left it
            raise error or SessionWriteError(self.failed)
        try:
            with h5py.File(self.path, "r+") as f:
                f.attrs["complete"] = bool(complete)
                f.attrs["duration_s"] = float(self._t_last if duration_s is None else duration_s)
                f.attrs["closed_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        except _WRITE_ERRORS as exc:
            raise SessionWriteError(self._write_error_message(exc)) from exc
        self.recorded_bytes = os.path.getsize(self.path)
        if self.swmr:
            self.compacted = compact_session(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(complete=exc[0] is None)


def _copy_attrs(src, dst) -> None:
    for key, value in src.attrs.items():
        dst.attrs[key] = value


def compact_session(path: str | os.PathLike) -> bool:
    """Rewrite a session file with compressed columns, replacing it atomically.

    Returns True when the file was replaced, False when it was left as it was
    (compaction failed, e.g. for lack of disk space; the original is untouched).
    """
    path = os.fspath(path)
    tmp = path + ".compacting"
    try:
        with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
            _copy_attrs(src, dst)

            def copy(name, obj):
                if isinstance(obj, h5py.Group):
                    _copy_attrs(obj, dst.require_group(name))
                    return
                g = dst.require_group(os.path.dirname(name)) if "/" in name else dst
                ds = g.create_dataset(
                    os.path.basename(name), shape=obj.shape, maxshape=obj.maxshape, dtype=obj.dtype,
                    chunks=obj.chunks, fillvalue=obj.fillvalue, **_COMPRESSION,
                )
                step = max(1, (obj.chunks[0] if obj.chunks else 65536) * 16)
                for i in range(0, obj.shape[0], step):
                    ds[i:i + step] = obj[i:i + step]
                _copy_attrs(obj, ds)

            src.visititems(copy)
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            os.remove(tmp)
        except OSError:
            pass
        return False
