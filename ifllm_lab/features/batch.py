"""The features of many sessions: each file's result kept in a cache (by path, size and
modification time, and the registry's fingerprint), the others computed in worker
processes.

Imported IFLLM sessions cost ~2-3 s each (their text layout is rebuilt from the release's
relative positions); a cached file costs a JSON read. The cache lives in the user's cache
folder (``features/`` under :func:`~ifllm_lab.session.catalog.default_cache_dir`) unless a
``cache_dir`` is given; a cache that cannot be written only costs time.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool

from ..paths import write_text_atomic
from ..workers import background_pool
from .extract import SessionFeatures, session_features
from .registry import FEATURES

__all__ = ["registry_fingerprint", "features_of_files"]

PROCESSES_FROM = 4  # files to compute before worker processes pay for their start


def registry_fingerprint() -> str:
    """Changes whenever a feature is added, removed or redefined (the cache is then stale)."""
    text = json.dumps([[f.name, f.group, f.unit, f.meaning, list(f.needs), f.level] for f in FEATURES.values()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cache_file(cache_dir: str, path: str) -> str:
    key = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:24]
    return os.path.join(cache_dir, f"{key}.json")


def _nan_to_none(rows: list[dict]) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


def _none_to_nan(rows: list[dict]) -> list[dict]:
    return [{k: (math.nan if v is None else v) for k, v in r.items()} for r in rows]


def _load(cache_dir: str | None, path: str) -> SessionFeatures | None:
    if cache_dir is None:
        return None
    try:
        st = os.stat(path)
        with open(_cache_file(cache_dir, path), encoding="utf-8") as fh:
            d = json.load(fh)
        if (d["path"], d["size"], d["mtime_ns"], d["registry"]) != (os.path.abspath(path), st.st_size,
                                                                    st.st_mtime_ns, registry_fingerprint()):
            return None
        return SessionFeatures(path, _none_to_nan(d["responses"]), _none_to_nan(d["comparisons"]), d["undefined"],
                               d["notes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save(cache_dir: str | None, path: str, res: SessionFeatures, st: os.stat_result) -> None:
    if cache_dir is None:
        return
    try:
        os.makedirs(cache_dir, exist_ok=True)
        write_text_atomic(_cache_file(cache_dir, path), json.dumps({
            "path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "registry": registry_fingerprint(), "responses": _nan_to_none(res.responses),
            "comparisons": _nan_to_none(res.comparisons), "undefined": res.undefined, "notes": res.notes}))
    except OSError:
        pass


def _compute(path: str) -> SessionFeatures | Exception:
    """One file's features, or the exception that stopped them (handed back, not raised)."""
    import ifllm_lab.importers.ifllm  # noqa: F401  (a worker process: imported sessions' layouts)

    try:
        return session_features(path)
    except Exception as exc:  # the caller reports it with the file's name
        return exc


def features_of_files(paths: list[str], *, cache_dir: str | None = None, workers: int = 2,
                      progress: Callable[[int, int], None] | None = None,
                      cancel: Callable[[], bool] | None = None) -> Iterator[tuple[str, SessionFeatures | Exception]]:
    """``(path, features or the exception)`` for every file, cached ones first, the others
    as they are computed (in ``workers`` processes when there are several to compute).
    ``cancel()`` is checked between files."""
    done = 0
    todo = []
    for path in paths:
        hit = _load(cache_dir, path)
        if hit is None:
            todo.append(path)
            continue
        done += 1
        if progress:
            progress(done, len(paths))
        yield path, hit

    def finished(path: str, res) -> tuple[str, SessionFeatures | Exception]:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(paths))
        if isinstance(res, SessionFeatures):
            try:
                _save(cache_dir, path, res, os.stat(path))
            except OSError:
                pass
        return path, res

    if workers <= 1 or len(todo) < PROCESSES_FROM:
        for path in todo:
            if cancel is not None and cancel():
                return
            yield finished(path, _compute(path))
        return
    with background_pool(workers) as pool:
        pending = [(path, pool.submit(_compute, path)) for path in todo]
        try:
            for path, fut in pending:
                if cancel is not None and cancel():
                    return
                try:
                    res = fut.result()
                except BrokenProcessPool:  # a worker died: this process computes the rest
                    res = _compute(path)
                yield finished(path, res)
        finally:
            for _path, fut in pending:
                fut.cancel()
