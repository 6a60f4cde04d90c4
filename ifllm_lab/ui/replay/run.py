"""``ifllm-lab replay`` and ``ifllm-lab bench replay``: the Qt side of both commands (the
command line itself stays free of Qt)."""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from ...analysis.replay import ReplayData
from ...console import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from ...console import report_problem as _err
from ...session import SessionFileError
from ...session.store import write_failure_reason

__all__ = ["run_replay", "measure_replay"]


def _application():
    from ..style import application

    return application()


def run_replay(path: str, *, overlays: str | None = None, export: str | None = None, at: float | None = None,
               start: float | None = None, end: float | None = None, fps: float = 30.0, speed: float = 1.0,
               size: tuple[int, int] = (1280, 720)) -> int:
    """Open the replay window on ``path``, or with ``export`` render OUT.png (at ``at``) or
    OUT.mp4 (``start`` .. ``end``) headless. Times are seconds from the session's start.
    Problems are one line on stderr; returns the exit status."""
    from .stimulus import Overlays

    try:
        chosen = Overlays.parse(overlays)
    except ValueError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    ext = os.path.splitext(export)[1].lower() if export else ""
    if export and ext not in (".png", ".mp4", ".m4v", ".mov"):
        _err(f"--export must end in .png or .mp4, not {ext or 'nothing'}")
        return EXIT_BAD_INPUT
    if export:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # headless: no display needed
    app = _application()
    try:
        data = ReplayData(path)
    except SessionFileError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    for p in data.problems:
        print(f"note: {p}", file=sys.stderr)
    existed = bool(export) and os.path.exists(export)
    try:
        if ext == ".png":
            from .export import export_png

            result = export_png(data, export, data.t_start + (at or 0.0), size=size, overlays=chosen)
        elif export:
            from .export import export_mp4

            first = start if start is not None else at
            t0 = None if first is None else data.t_start + first
            t1 = None if end is None else data.t_start + end
            result = export_mp4(data, export, t0=t0, t1=t1, fps=fps, speed=speed, size=size, overlays=chosen)
        else:
            from .window import ReplayWindow

            win = ReplayWindow(data, overlays=chosen)
            win.resize(1600, 950)
            if at is not None:
                win.seek(data.t_start + at)
            win.show()
            return app.exec()
        print(json.dumps(result))
        return EXIT_OK
    except (OSError, ValueError) as exc:
        if export and not existed:  # nothing half-written stays behind
            try:
                os.remove(export)
            except OSError:
                pass
        reason = write_failure_reason(exc) if isinstance(exc, OSError) else str(exc)
        _err(f"cannot write {export}: {reason}" if export else reason)
        return EXIT_FAILED
    finally:
        data.close()


def measure_replay(path: str, seeks: int = 200, frames: int = 240, size: tuple[int, int] = (1280, 720)) -> dict:
    """Replay timings on ``path``: ``open_s`` (file open, window built, first frame
    painted), ``background_s`` (layout, fixations and AOI metrics, which the window
    computes in a worker thread), ``seek_p95_ms`` (random seeks: time set, stimulus and
    overlays repainted, the event loop run once for the timeline cursors), ``render_fps``
    (offscreen frames with every overlay but the heatmap, stepping 1/60 s)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = _application()
    from .stimulus import Overlays, render_image
    from .window import ReplayWindow

    t0 = time.perf_counter()
    data = ReplayData(path)
    win = ReplayWindow(data, detect=False)  # the background work is timed separately below
    try:
        win.resize(1600, 900)
        win.show()
        app.processEvents()
        win.view.repaint()
        open_s = time.perf_counter() - t0
        t_bg = time.perf_counter()
        win.prepare()
        background_s = time.perf_counter() - t_bg
        rng = np.random.default_rng(1)
        times = []
        for t in rng.uniform(data.t_start, data.t_end, seeks):
            a = time.perf_counter()
            win.seek(float(t))
            win.view.repaint()  # the stimulus and overlays, painted now
            app.processEvents()  # the timeline cursors, as the event loop would
            times.append((time.perf_counter() - a) * 1000.0)
        overlays = Overlays(heatmap=False, aoi=True)
        first = data.t_start + (data.t_end - data.t_start) * 0.37
        a = time.perf_counter()
        for k in range(frames):
            render_image(win.renderer, first + k / 60.0, size, overlays)
        fps = frames / (time.perf_counter() - a)
        return {"open_s": round(open_s, 3), "seek_p95_ms": round(float(np.percentile(times, 95)), 2),
                "seek_median_ms": round(float(np.median(times)), 2), "render_fps": round(fps, 1),
                "background_s": round(background_s, 2),
                "fixations": int(len(win.events.fixations())) if win.events else 0,
                "duration_s": round(data.duration, 1), "gaze_rows": int(len(data.gaze_t)),
                "mouse_rows": int(len(data.mouse_t))}
    finally:
        win.close()
        data.close()
