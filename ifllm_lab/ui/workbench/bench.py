"""``ifllm-lab bench workbench``: opening a data folder of many session files in the
workbench, as a researcher would: how soon the first rows show, how long the whole table
takes, and the longest stall of the window meanwhile (a 2 ms timer on the GUI thread
measures it), first with an empty cache, then again with the cache."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

import numpy as np

__all__ = ["bench_workbench"]


def _source_files(source: str | None, tmp: str) -> list[str]:
    from ...session.catalog import session_files

    if source:
        from ...session import SessionFileError, SessionReader

        files = session_files(source) if os.path.isdir(source) else [source]
        if not files:
            raise ValueError(f"{source}: no session files (*.h5) in it")
        try:
            SessionReader(files[0]).close()
        except SessionFileError as exc:
            raise ValueError(str(exc)) from None
        return files
    # no source: one session shaped like an imported IFLLM task (a few minutes of 10 Hz
    # gaze and mouse, three rated questions)
    from ...session import SessionMeta
    from ...session.store import SessionStore

    path = os.path.join(tmp, "model.h5")
    st = SessionStore(path, SessionMeta(participant="worker_bench", study="bench", clock_start_unix=1.76e9))
    t = np.arange(0, 240, 0.1)
    st.append("gaze", {"t": t, "x": 600 + 200 * np.sin(t), "y": 400 + 100 * np.cos(t),
                       "valid": np.ones(len(t), "u1")})
    st.append("mouse", {"t": t, "x": 600 + t, "y": 400 + t})
    st.append("turns", {"t": [1.0, 80.0, 160.0], "prompt": ["a", "b", "c"], "likert_1": [3, 4, 5]})
    st.close()
    return [path]


def _open_once(app, folder: str, cache_dir: str, settings_path: str, timeout_s: float) -> dict:
    from PySide6.QtCore import QSettings, QTimer

    from .window import Workbench

    gaps = {"last": None, "max": 0.0}

    def tick():
        now = time.perf_counter()
        if gaps["last"] is not None:
            gaps["max"] = max(gaps["max"], now - gaps["last"])
        gaps["last"] = now

    timer = QTimer()
    timer.setInterval(2)
    timer.timeout.connect(tick)
    settings = QSettings(settings_path, QSettings.Format.IniFormat)
    empty = os.path.join(os.path.dirname(folder), "empty")
    os.makedirs(empty, exist_ok=True)
    wb = Workbench(empty, settings=settings, cache_dir=cache_dir)  # the window first, shown and idle
    wb.resize(1400, 900)
    wb.show()
    while wb.sessions.scans == 0:
        app.processEvents()
        time.sleep(0.001)
    for _ in range(10):
        app.processEvents()
    scans = wb.sessions.scans
    timer.start()
    t0 = time.perf_counter()
    wb.sessions.set_folder(folder)  # then the folder, as File > Open data folder does
    first = None
    end = t0 + timeout_s
    while wb.sessions.scans == scans and time.perf_counter() < end:
        app.processEvents()
        if first is None and wb.sessions.model.rowCount():
            first = time.perf_counter() - t0
        time.sleep(0.0005)
    full = time.perf_counter() - t0
    timer.stop()
    rows = wb.sessions.model.rowCount()
    wb.close()
    wb.deleteLater()
    app.processEvents()
    return {"first_rows_s": round(first if first is not None else float("nan"), 3),
            "full_table_s": round(full, 3), "max_stall_ms": round(1000 * gaps["max"], 1), "rows": rows,
            "finished": full < timeout_s}


def bench_workbench(source: str | None = None, *, files: int = 1000, folder: str | None = None,
                    timeout_s: float = 300.0) -> dict:
    """Copy the session files of ``source`` (a folder, e.g. an imported IFLLM release, or
    one file; default: a generated one) round-robin until there are ``files`` of them, then
    open the folder in the workbench (offscreen) with an empty cache and again with the
    cache."""
    if files < 1:
        raise ValueError("files must be at least 1")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.setswitchinterval(0.001)
    from ..style import application

    app = application()
    with tempfile.TemporaryDirectory(prefix="ifllm-bench-workbench-", dir=folder) as tmp:
        data = os.path.join(tmp, "data")
        os.makedirs(os.path.join(data, "study"))
        sources = _source_files(source, tmp)
        t0 = time.perf_counter()
        for i in range(files):
            src = sources[i % len(sources)]
            stem = os.path.splitext(os.path.basename(src))[0]
            shutil.copyfile(src, os.path.join(data, "study", f"{stem}-{i:05d}.h5"))
        copy_s = time.perf_counter() - t0
        cache = os.path.join(tmp, "cache")
        cold = _open_once(app, data, cache, os.path.join(tmp, "wb.ini"), timeout_s)
        warm = _open_once(app, data, cache, os.path.join(tmp, "wb.ini"), timeout_s)
    out = {"files": files, "source_files": len(sources), "copy_s": round(copy_s, 2)}
    out.update(cold)
    out.update({f"warm_{k}": v for k, v in warm.items()})
    out["rows_per_s"] = round(files / cold["full_table_s"], 1) if cold["full_table_s"] > 0 else None
    return out
