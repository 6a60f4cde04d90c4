"""``ifllm-lab bench replay``: replay timings, which need Qt (offscreen)."""
from __future__ import annotations

import os
import tempfile

from ...synthetic.session import make_replay_session
from .run import measure_replay


def bench_replay(path: str | None = None, seconds: float = 3600.0, seeks: int = 200, frames: int = 240,
                 size: tuple[int, int] = (1280, 720), folder: str | None = None) -> dict:
    """Replay timings (:func:`ifllm_lab.ui.replay.run.measure_replay`) on ``path``, or on a
    synthetic ``seconds``-long session at 60 Hz gaze and 1 kHz mouse written first."""
    if path is not None:
        return {**measure_replay(path, seeks, frames, size), "file": path}
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        made = make_replay_session(os.path.join(tmp, "synthetic-replay.h5"), seconds=seconds)
        return {**measure_replay(made["file"], seeks, frames, size), "file": "synthetic", "synthetic": made}
