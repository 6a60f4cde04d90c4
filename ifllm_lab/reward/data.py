"""Reward-model datasets: the feature tables of many sessions, with their labels.

:func:`load_dataset` takes what a researcher has: session files, folders of them, or an
IFLLM release (its folder or ``.tar.xz``, imported first into a folder kept in the cache, so
a second run reads the imported files again). Features come from
:func:`~ifllm_lab.features.batch.features_of_files` (cached per file).

A :class:`Dataset` holds the comparison table (one row per pairwise question) and the
response table (one row per answer), the answers' texts (for embeddings), what could not
be read and why, and a fingerprint of its rows. :func:`quality_filter` picks participants
whose own data is good enough to train on.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..features.table import rows_to_table

__all__ = ["Dataset", "DataError", "load_dataset", "QualityRule", "quality_filter", "release_import_dir",
           "is_release", "subset"]


class DataError(Exception):
    """No usable data: the message says what was given and what was missing."""


@dataclass
class Dataset:
    """``comparisons`` / ``responses``: feature tables (dicts of equal-length arrays, as
    :func:`~ifllm_lab.features.table.rows_to_table` makes them). ``texts`` maps
    ``(session, turn, response)`` to the answer's text. ``skipped`` lists ``(path, why)``
    for files that could not be read; ``undefined`` counts sessions per missing kind of
    data and reason (``{need: {why: sessions}}``)."""

    comparisons: dict[str, np.ndarray]
    responses: dict[str, np.ndarray]
    texts: dict[tuple[str, int, int], str] = field(default_factory=dict)
    sessions: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    undefined: dict[str, dict[str, int]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def table(self, level: str) -> dict[str, np.ndarray]:
        return self.comparisons if level == "comparison" else self.responses

    def fingerprint(self) -> str:
        """Changes when any row's ids, labels or feature values change (16 hex digits)."""
        h = hashlib.sha256()
        for table in (self.comparisons, self.responses):
            for name in sorted(table):
                col = table[name]
                h.update(name.encode())
                h.update(col.astype(np.float64).tobytes() if col.dtype.kind == "f"
                         else "\x1f".join(map(str, col.tolist())).encode())
        return h.hexdigest()[:16]


def is_release(src: str) -> bool:
    """An IFLLM release: an archive (``.tar.xz`` / ``.tar``), or a folder with
    ``query_logs_table.csv`` in it or one level down."""
    if os.path.isfile(src):
        return src.endswith((".tar.xz", ".txz", ".tar", ".tar.gz", ".tgz"))
    if not os.path.isdir(src):
        return False
    if os.path.isfile(os.path.join(src, "query_logs_table.csv")):
        return True
    try:
        return any(os.path.isfile(os.path.join(src, d, "query_logs_table.csv")) for d in os.listdir(src))
    except OSError:
        return False


def release_import_dir(src: str, cache_dir: str) -> str:
    """Where a release's sessions are imported for training: one folder per release (by
    its absolute path), under ``cache_dir``."""
    key = hashlib.sha256(os.path.abspath(src).encode()).hexdigest()[:16]
    name = os.path.basename(os.path.normpath(src)).split(".")[0] or "release"
    return os.path.join(cache_dir, "imports", f"{name}-{key}")


def _session_paths(src: str, cache_dir: str, progress, cancel, log) -> list[str]:
    from ..session.catalog import session_files

    if is_release(src):
        from ..importers.ifllm.release import import_release

        out = release_import_dir(src, cache_dir)
        os.makedirs(out, exist_ok=True)
        log(f"importing the IFLLM release {src} into {out} (kept for the next run)")
        report = import_release(src, out, progress=lambda d, n, _p: progress(0.3 * d / max(n, 1), "importing"),
                                cancel=cancel)
        if report.stopped:
            raise DataError(f"{src}: the import stopped ({report.stopped})")
        return session_files(out)
    if os.path.isdir(src):
        try:
            found = session_files(src)
        except OSError as exc:
            raise DataError(f"{src} cannot be read: {exc.strerror or exc}") from None
        if not found:
            raise DataError(f"{src}: no session files (*.h5) in it")
        return found
    if os.path.isfile(src):
        return [os.path.abspath(src)]
    raise DataError(f"{src}: no such session file, folder or IFLLM release")


def _texts(path: str, sid: str) -> dict[tuple[str, int, int], str]:
    from ..session import SessionReader

    out = {}
    with SessionReader(path) as r:
        if "turns" not in r or not len(r["turns"]):
            return out
        for tr in r["turns"].read(columns=["turn", "response_1", "response_2"]):
            a, b = str(tr["response_1"]), str(tr["response_2"])
            if b:
                out[(sid, int(tr["turn"]), 1)], out[(sid, int(tr["turn"]), 2)] = a, b
            else:
                out[(sid, int(tr["turn"]), 0)] = a
    return out


def load_dataset(sources: list[str], *, cache_dir: str | None = None, workers: int = 2,
                 progress: Callable[[float, str], None] | None = None, cancel: Callable[[], bool] | None = None,
                 log: Callable[[str], None] | None = None, feature_cache: bool = True) -> Dataset:
    """The dataset of ``sources`` (session files, folders, IFLLM releases). Raises
    :class:`DataError` when none of it can be used; files that cannot be read are skipped
    and listed. ``progress(fraction, message)``; ``cancel()`` is polled between files (a
    cancelled load raises :class:`InterruptedError`)."""
    import ifllm_lab.importers.ifllm  # noqa: F401  (imported IFLLM sessions: their layout)

    from ..features.batch import features_of_files
    from ..session.catalog import default_cache_dir

    progress = progress or (lambda f, m: None)
    log = log or (lambda m: None)
    cancel = cancel or (lambda: False)
    cache_dir = cache_dir or default_cache_dir()
    if not sources:
        raise DataError("no data given: name session files, folders of them, or an IFLLM release")
    paths: list[str] = []
    for src in sources:
        paths += _session_paths(os.fspath(src), cache_dir, progress, cancel, log)
        if cancel():
            raise InterruptedError("cancelled")
    paths = sorted(dict.fromkeys(paths))
    ds = Dataset({}, {}, sources=[os.fspath(s) for s in sources])
    n = len(paths)

    def step(done: int, total: int) -> None:
        progress(0.3 + 0.7 * done / max(total, 1), f"features of {done} of {total} sessions")

    results = dict(features_of_files(paths, cache_dir=os.path.join(cache_dir, "features") if feature_cache else None,
                                     workers=workers, progress=step, cancel=cancel))
    if cancel():
        raise InterruptedError("cancelled")
    comp, resp = [], []
    for path in paths:
        res = results.get(path)
        if res is None:
            continue
        if isinstance(res, Exception):
            ds.skipped.append((path, str(res) or type(res).__name__))
            log(f"skipped {path}: {res}")
            continue
        ds.sessions.append(path)
        comp += res.comparisons
        resp += res.responses
        for need, why in res.undefined.items():
            counts = ds.undefined.setdefault(need, {})
            counts[why] = counts.get(why, 0) + 1
        sid = (res.responses or res.comparisons or [{}])[0].get("session")
        if sid:
            try:
                ds.texts.update(_texts(path, sid))
            except Exception as exc:  # the features were read: a text that cannot be is only a note
                log(f"{path}: answer texts not read ({exc})")
    if not ds.sessions:
        if len(ds.skipped) == 1:
            raise DataError(f"{ds.skipped[0][0]} cannot be read: {ds.skipped[0][1]}")
        first = f"{ds.skipped[0][0]}: {ds.skipped[0][1]}" if ds.skipped else "no session files"
        raise DataError(f"none of the {n} session files could be read (e.g. {first})")
    ds.comparisons = rows_to_table(comp, "comparison")
    ds.responses = rows_to_table(resp, "response")
    return ds


def subset(table: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in table.items()}


# -- participant quality ---------------------------------------------------------------
@dataclass(frozen=True)
class QualityRule:
    """A participant is kept when the medians of their own turns pass every bound that
    their data has (a bound whose measure the participant has no value for is not
    applied): share of valid gaze samples, share of the time covered by gaze, the
    tracker's calibration score (imported sessions), the last validation error (deg)."""

    min_valid_share: float = 0.5
    min_covered: float = 0.5
    min_precision: float = 0.5
    max_validation_deg: float = 4.0

    def checks(self) -> list[tuple[str, str, float]]:
        return [("q_gaze_valid_share", ">=", self.min_valid_share), ("q_gaze_covered", ">=", self.min_covered),
                ("q_calibration_precision", ">=", self.min_precision),
                ("q_validation_deg", "<=", self.max_validation_deg)]


def quality_filter(table: dict[str, np.ndarray], rule: QualityRule | None = None,
                   ) -> tuple[np.ndarray, dict[str, str]]:
    """(rows of kept participants, ``{participant: why dropped}``). Works on either level;
    comparison tables carry the measures as ``c_`` + name. A participant without gaze at
    all is dropped ("no gaze"): their implicit features are empty."""
    rule = rule or QualityRule()
    n = len(table["participant"]) if "participant" in table else 0
    keep = np.ones(n, bool)
    dropped: dict[str, str] = {}
    if not n:
        return keep, dropped
    parts = table["participant"]
    for p in np.unique(parts):
        sel = parts == p
        why = []
        for name, op, bound in rule.checks():
            col = table.get(name, table.get(f"c_{name}"))
            if col is None:
                continue
            v = col[sel]
            v = v[np.isfinite(v)]
            if name in ("q_gaze_valid_share", "q_gaze_covered") and not len(v):
                why.append("no gaze")
                break
            if not len(v):
                continue
            med = float(np.median(v))
            if (op == ">=" and med < bound) or (op == "<=" and med > bound):
                why.append(f"{name} {med:.2f} {'<' if op == '>=' else '>'} {bound:g}")
        if why:
            dropped[str(p)] = "; ".join(why)
            keep[sel] = False
    return keep, dropped

