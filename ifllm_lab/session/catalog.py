"""A folder of session files as a table: one row per file, cheap enough for thousands.

A row holds what a researcher sorts and filters by (participant, study, date, duration,
turns rated, gaze rate and valid share, validation error, mouse rate, state). It is read
from the file's attributes, dataset shapes and a few small columns, never the whole
recording, and kept in a cache (JSON, keyed by path, size and modification time) so that
opening the folder again reads only the files that changed. Plain Python; the workbench
runs :meth:`SessionCatalog.scan` as a job.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..paths import write_text_atomic
from ..workers import background_pool
from .reader import SessionFileError, SessionReader
from .schema import CalibrationPhase

CACHE_VERSION = 1
PROCESSES_FROM = 200  # files to read before worker processes pay for their start
STATES = ("complete", "ended_early", "recovered", "interrupted", "unreadable")


@dataclass
class CatalogRow:
    path: str
    size: int
    mtime_ns: int
    state: str  # one of STATES
    problem: str = ""  # why an unreadable file cannot be read; else the first validity problem
    participant: str = ""
    study: str = ""
    session_id: str = ""
    source: str = ""
    started_utc: str = ""  # ISO date and time of t = 0 (UTC), "" when unknown
    duration_s: float = float("nan")
    turns: int = 0
    turns_rated: int = 0
    gaze_rate_hz: float = float("nan")
    gaze_valid: float = float("nan")  # share of gaze samples marked valid
    validation_deg: float = float("nan")  # mean accuracy of the last validation, degrees
    mouse_rate_hz: float = float("nan")

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def to_json(self) -> dict:
        d = asdict(self)
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict) -> CatalogRow:
        names = {f.name: f for f in fields(cls)}
        kw = {}
        for k, v in d.items():
            if k in names:
                kw[k] = float("nan") if v is None and names[k].type in ("float", float) else v
        return cls(**kw)


def _rate(count: int, span: float) -> float:
    return (count - 1) / span if count > 1 and span > 0 else float("nan")


def catalog_row(path: str | os.PathLike) -> CatalogRow:
    """The row of one file; never raises (an unreadable file is a row saying why)."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
        size, mtime = st.st_size, st.st_mtime_ns
    except OSError as exc:
        return CatalogRow(path, 0, 0, "unreadable", f"{path} cannot be read: {exc.strerror or exc}")
    try:
        with SessionReader(path, check_streams=False) as r:
            return _row_of(r, path, size, mtime)
    except SessionFileError as exc:
        return CatalogRow(path, size, mtime, "unreadable", str(exc))
    except Exception as exc:  # a damaged file must not stop a scan of the folder
        return CatalogRow(path, size, mtime, "unreadable", f"{path} cannot be read: {type(exc).__name__}: {exc}")


def _row_of(r: SessionReader, path: str, size: int, mtime: int) -> CatalogRow:
    meta = r.meta
    row = CatalogRow(path, size, mtime, r.state, r.problems[0] if r.problems else "", meta.participant, meta.study,
                     meta.session_id, meta.source)
    if meta.clock_start_unix:
        row.started_utc = _dt.datetime.fromtimestamp(meta.clock_start_unix, _dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M")
    if "gaze" in r and len(r["gaze"]):
        g = r["gaze"]
        row.gaze_rate_hz = _rate(len(g), float(g.t[-1] - g.t[0]))
        row.gaze_valid = float(np.mean(g.column("valid") > 0))
    if "mouse" in r and len(r["mouse"]):
        m = r["mouse"]
        row.mouse_rate_hz = _rate(len(m), float(m.t[-1] - m.t[0]))
    # as inspect gives it: what the recorder wrote when it closed, else the last sample
    row.duration_s = float(r.attrs.get("duration_s", 0.0)) or r.duration()
    if "turns" in r and len(r["turns"]):
        turns = r["turns"]
        row.turns = len(turns)
        likert = turns.column("likert_1")
        row.turns_rated = int(np.sum(likert >= 0))
    row.validation_deg = last_validation_deg(r)
    return row


def last_validation_deg(r: SessionReader) -> float:
    """Mean accuracy (degrees) of the session's last gaze validation; NaN when it has none."""
    if "calibration/points" not in r or not len(r["calibration/points"]):
        return float("nan")
    pts = r["calibration/points"].read(columns=["phase", "run", "accuracy_deg"])
    val = pts[pts["phase"] == int(CalibrationPhase.VALIDATION)]
    if not len(val):
        return float("nan")
    last = val[val["run"] == val["run"].max()]
    acc = last["accuracy_deg"][np.isfinite(last["accuracy_deg"])]
    return float(np.mean(acc)) if len(acc) else float("nan")


def session_files(folder: str | os.PathLike) -> list[str]:
    """Every session file (``*.h5``) under ``folder``, sorted; files being written by an
    import, a recovery or a compaction are left out. OSError when ``folder`` cannot be read."""
    folder = os.fspath(folder)
    os.listdir(folder)  # the folder itself must be readable: its error is the caller's to show
    out = []
    for base, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(base, f) for f in files if f.endswith(".h5") and not f.startswith(".")]
    return sorted(out)


def default_cache_dir() -> str:
    from platformdirs import user_cache_dir

    return user_cache_dir("ifllm-lab", appauthor=False)


class SessionCatalog:
    """The rows of every session file under ``folder``, cached in ``cache_dir`` (default:
    the user's cache folder)."""

    def __init__(self, folder: str | os.PathLike, cache_dir: str | None = None):
        self.folder = os.path.abspath(os.fspath(folder))
        key = hashlib.sha1(self.folder.encode("utf-8")).hexdigest()[:16]
        self.cache_path = os.path.join(cache_dir or default_cache_dir(), f"catalog-{key}.json")
        self.rows: dict[str, CatalogRow] = {}
        self.files_read = 0  # by the last scan (the others came from the cache)

    def _load_cache(self) -> dict[str, CatalogRow]:
        try:
            with open(self.cache_path, encoding="utf-8") as fh:
                data = json.load(fh)
            if data.get("version") != CACHE_VERSION or data.get("folder") != self.folder:
                return {}
            return {d["path"]: CatalogRow.from_json(d) for d in data["rows"]}
        except (OSError, ValueError, KeyError, TypeError):
            return {}  # no cache, or one from another version: read the files again

    def save_cache(self) -> None:
        """Write the cache atomically; a cache that cannot be written only costs time."""
        try:
            os.makedirs(os.path.dirname(self.cache_path), exist_ok=True)
            write_text_atomic(self.cache_path, json.dumps({"version": CACHE_VERSION, "folder": self.folder,
                                                           "rows": [r.to_json() for r in self.rows.values()]}))
        except OSError:
            pass

    def scan(self, *, progress: Callable[[int, int], None] | None = None, cancel: Callable[[], bool] | None = None,
             workers: int = 1, batch: int = 16, processes_from: int = PROCESSES_FROM) -> Iterator[list[CatalogRow]]:
        """Yield the rows in batches as they are known: first every file the cache still
        describes (same size and modification time), then the others as they are read
        (with ``workers`` > 1 in that many processes when at least ``processes_from`` files
        are to be read). ``self.rows`` holds the result; the
        cache is saved at the end (also after a cancel, with what was read)."""
        files = session_files(self.folder)
        cached = self._load_cache()
        self.rows = {}
        fresh, todo = [], []
        for path in files:
            c = cached.get(path)
            try:
                st = os.stat(path)
            except OSError:
                todo.append(path)
                continue
            if c is not None and c.size == st.st_size and c.mtime_ns == st.st_mtime_ns and c.state != "interrupted":
                fresh.append(c)  # an interrupted file may be one still recording: always read again
            else:
                todo.append(path)
        done = 0
        self.files_read = 0
        for i in range(0, len(fresh), batch * 8):
            part = fresh[i:i + batch * 8]
            for row in part:
                self.rows[row.path] = row
            done += len(part)
            if progress:
                progress(done, len(files))
            yield part
        try:
            for part in _read_rows(todo, workers if len(todo) >= processes_from else 1, batch, cancel):
                for row in part:
                    self.rows[row.path] = row
                done += len(part)
                self.files_read += len(part)
                if progress:
                    progress(done, len(files))
                yield part
        finally:
            self.save_cache()


def _read_rows(paths: list[str], workers: int, batch: int, cancel) -> Iterator[list[CatalogRow]]:
    chunks = [paths[i:i + batch] for i in range(0, len(paths), batch)]
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            if cancel is not None and cancel():
                return
            yield [catalog_row(p) for p in chunk]
        return
    # the first rows at once, read here; then fresh worker processes (not forks of this one,
    # which may hold locks of other threads, a window's included) read the rest
    yield _rows_of(chunks[0])
    with background_pool(workers) as pool:
        pending = [pool.submit(_rows_of, chunk) for chunk in chunks[1:]]
        try:
            for chunk, fut in zip(chunks[1:], pending):
                if cancel is not None and cancel():
                    return
                try:
                    yield fut.result()
                except BrokenProcessPool:  # a worker died: this process reads the rest
                    yield _rows_of(chunk)
        finally:
            for fut in pending:
                fut.cancel()


def _rows_of(chunk: list[str]) -> list[CatalogRow]:
    return [catalog_row(p) for p in chunk]


def scan_job(ctx, catalog: SessionCatalog, *, workers: int | None = None) -> SessionCatalog:
    """:meth:`SessionCatalog.scan` as a job body (``Job(scan_job, catalog)``): each batch of
    rows is handed over as partial work as soon as it is known, progress counts files, a
    cancel stops between batches. ``workers`` (default: 2 processes for more than 200
    files to read, else this one)."""
    ctx.progress(0.0, f"reading {catalog.folder}")
    if workers is None:
        workers = 2 if (os.cpu_count() or 1) > 1 else 1

    def progress(done: int, total: int) -> None:
        ctx.progress(done / total if total else 1.0, f"{done} of {total} session files")

    for part in catalog.scan(progress=progress, cancel=lambda: ctx.cancelled, workers=workers):
        ctx.partial(part)
    ctx.check_cancel()
    ctx.progress(1.0, f"{len(catalog.rows)} session files ({catalog.files_read} read, the others unchanged)")
    return catalog
