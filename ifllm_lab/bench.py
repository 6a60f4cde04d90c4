"""Benchmarks that print JSON (``ifllm-lab bench ...``).

``record``: drives the real :class:`SessionWriter` with synthetic producers on their
own threads, paced at the requested rates like a camera and a mouse would be, and
then measures the writer's capacity by flooding it.
"""
from __future__ import annotations

import math
import os
import tempfile
import threading
import time

import numpy as np

from .session import SessionMeta, SessionReader, SessionWriter
from .session.schema import MouseKind


def _paced_producer(writer: SessionWriter, stream: str, hz: float, seconds: float,
                    make_row, out: dict, start: threading.Event) -> None:
    """Put one row every 1/hz s (catching up in bursts when the OS wakes us late)."""
    period = 1.0 / hz
    n_total = int(round(seconds * hz))
    max_enqueue = 0.0
    sent = 0
    start.wait()
    t_start = time.perf_counter()
    perf = time.perf_counter
    while sent < n_total:
        due = min(n_total, int((perf() - t_start) / period) + 1)
        while sent < due:
            t_row = writer.clock.now()
            a = perf()
            writer.put(stream, make_row(t_row, sent))
            dt = perf() - a
            if dt > max_enqueue:
                max_enqueue = dt
            sent += 1
        next_due = t_start + sent * period
        delay = next_due - perf()
        if delay > 0:
            time.sleep(delay)
    out["sent"] = sent
    out["max_enqueue_s"] = max_enqueue


def _mouse_row(t: float, i: int) -> tuple:
    return (t, int(MouseKind.MOVE), 500.0 + 300.0 * math.sin(i / 500), 400.0 + 200.0 * math.cos(i / 700), 0)


def _gaze_row(t: float, i: int) -> tuple:
    x = 960.0 + 400.0 * math.sin(i / 90)
    y = 540.0 + 250.0 * math.cos(i / 130)
    return (t, x, y, 1, 0.9, i, x + 3.0, y - 2.0, 0.45, 0.5, 0.55, 0.5, 0.3, 0.31, 2.0, -5.0, 0.5, 600.0)


def bench_record(seconds: float = 10.0, mouse_hz: float = 1000.0, gaze_hz: float = 60.0,
                 folder: str | None = None, flood_rows: int = 1_000_000) -> dict:
    """Measure the writer. Returns the figures printed by ``ifllm-lab bench record``.

    - ``*_sent`` / ``*_written``: rows put by the paced producers and found in the file.
    - ``lost``: rows sent but not in the file (must be 0).
    - ``max_enqueue_ms``: the longest a producer's ``put`` took.
    - ``rows_per_s``: writer capacity: rows per second of a flood of ``flood_rows``
      rows, from the first put to the file closed.
    - ``file_mb_per_hour``: size of the closed (compressed) paced-run file, per hour.
    - ``recording_mb_per_hour``: its size while recording (uncompressed, crash safe), per hour.
    """
    tmp = tempfile.TemporaryDirectory(prefix="ifllm-bench-", dir=folder)
    try:
        path = os.path.join(tmp.name, "paced.h5")
        writer = SessionWriter(path, SessionMeta(participant="bench", study="bench-record"))
        start = threading.Event()
        mouse_out: dict = {}
        gaze_out: dict = {}
        threads = [
            threading.Thread(target=_paced_producer, args=(writer, "mouse", mouse_hz, seconds, _mouse_row,
                                                          mouse_out, start)),
            threading.Thread(target=_paced_producer, args=(writer, "gaze", gaze_hz, seconds, _gaze_row,
                                                          gaze_out, start)),
        ]
        for th in threads:
            th.start()
        start.set()
        for th in threads:
            th.join()
        stats = writer.close()
        with SessionReader(path) as r:
            mouse_written = len(r["mouse"])
            gaze_written = len(r["gaze"])
        size = os.path.getsize(path)

        flood_path = os.path.join(tmp.name, "flood.h5")
        flood = SessionWriter(flood_path, SessionMeta(participant="bench", study="bench-flood"))
        t0 = time.perf_counter()
        put = flood.put
        for i in range(flood_rows):
            put("mouse", (i * 1e-3, 0, float(i % 1920), float(i % 1080), 0))
        flood_stats = flood.close()
        flood_s = time.perf_counter() - t0
        with SessionReader(flood_path) as r:
            flood_written = len(r["mouse"])

        return {
            "seconds": seconds,
            "mouse_hz": mouse_hz,
            "gaze_hz": gaze_hz,
            "mouse_sent": mouse_out["sent"],
            "mouse_written": mouse_written,
            "gaze_sent": gaze_out["sent"],
            "gaze_written": gaze_written,
            "lost": (mouse_out["sent"] - mouse_written) + (gaze_out["sent"] - gaze_written),
            "writer_lost": stats.lost,
            "max_enqueue_ms": round(max(mouse_out["max_enqueue_s"], gaze_out["max_enqueue_s"]) * 1000, 3),
            "max_flush_ms": round(stats.max_flush_ms, 2),
            "flushes": stats.flushes,
            "rows_per_s": round(flood_written / flood_s),
            "flood_rows": flood_rows,
            "flood_lost": flood_rows - flood_written + flood_stats.lost,
            "file_mb_per_hour": round(size / 1e6 * 3600 / seconds, 1),
            "recording_mb_per_hour": round(writer.store.recorded_bytes / 1e6 * 3600 / seconds, 1),
        }
    finally:
        tmp.cleanup()


def bench_gaze(video: str | None = None, max_frames: int = 300, folder: str | None = None) -> dict:
    """Measure the gaze pipeline on the frames of a video (default: a rendered face video).

    - ``landmarker_ms``: median time of the raw FaceLandmarker (VIDEO mode) per frame.
    - ``pipeline_ms``: median time per frame of the whole pipeline on the same frames
      (landmarks, features incl. the eye-image iris search, calibrated point, One Euro
      filter, row queued to a real session writer); ``overhead_ratio`` =
      pipeline_ms / landmarker_ms. Both run interleaved frame by frame; the means are
      reported too (``*_mean_ms``).
    - ``fps``: frames per second of the threaded tracker reading and decoding the file
      as fast as it can, writing into a session file (end to end).
    - ``p95_latency_ms``: 95th percentile of frame capture -> sample queued, with the
      file played in real time at its own frame rate like a camera; ``dropped``:
      frames the tracker had to skip in that run.
    """
    from .camera import VideoFileSource
    from .gaze.calibration import fit_calibration
    from .gaze.filters import OneEuroFilter
    from .gaze.landmarks import FaceLandmarker
    from .gaze.tracker import FeatureExtractor, GazePipeline, GazeTracker
    from .session import SessionClock

    tmp = tempfile.TemporaryDirectory(prefix="ifllm-bench-gaze-", dir=folder)
    try:
        if video is None:
            from .gaze.synthetic import write_gaze_video

            video = os.path.join(tmp.name, "face.mp4")
            grid = [(x, y) for y in (150, 540, 930) for x in (200, 960, 1720)]
            write_gaze_video(video, grid, frames_per_target=max(1, max_frames // len(grid)))
        frames = []
        with VideoFileSource(video) as src:
            for frame in src:
                frames.append(frame)
                if len(frames) >= max_frames:
                    break
        if len(frames) < 10:
            raise ValueError(f"{video}: only {len(frames)} frames could be read; need at least 10")
        warm = 5

        extractor = FeatureExtractor()
        with FaceLandmarker() as lm:  # features for a real calibration fit
            feats, targets = [], []
            for i, f in enumerate(frames):
                face = lm.detect(f.image, f.t)
                if face is not None:
                    feats.append(extractor(f.image, face, f.t)[1])
                    targets.append((200 + 760 * (i % 3), 150 + 390 * ((i // 3) % 3)))
        feats = np.array(feats)
        ok = np.isfinite(feats).all(axis=1)
        calibration = fit_calibration(feats[ok], np.array(targets, float)[ok], feature_names=extractor.names)

        # The raw landmarker and the whole pipeline see the same frames, interleaved frame by
        # frame (two landmarker instances, each tracking its own sequence), so that a busy
        # machine slows both alike; medians keep scheduler hiccups out of the ratio.
        clock = SessionClock()
        writer = SessionWriter(os.path.join(tmp.name, "pipeline.h5"), SessionMeta(study="bench-gaze"), clock=clock)
        raw_times, pipe_times = [], []
        with FaceLandmarker() as raw, FaceLandmarker() as lm:
            pipe = GazePipeline(lm, calibration=calibration, smoother=OneEuroFilter())
            for f in frames:
                a = time.perf_counter()
                raw.detect(f.image, f.t)
                b = time.perf_counter()
                writer.put("gaze", pipe.process(f.image, f.t, f.index).row())
                c = time.perf_counter()
                raw_times.append(b - a)
                pipe_times.append(c - b)
        writer.close()
        landmarker_ms = float(np.median(raw_times[warm:]) * 1000)
        pipeline_ms = float(np.median(pipe_times[warm:]) * 1000)
        landmarker_mean_ms = float(np.mean(raw_times[warm:]) * 1000)
        pipeline_mean_ms = float(np.mean(pipe_times[warm:]) * 1000)

        def tracker_run(realtime: bool):
            clock = SessionClock()
            writer = SessionWriter(os.path.join(tmp.name, f"tracker-{realtime}.h5"), SessionMeta(), clock=clock)
            with FaceLandmarker() as lm, VideoFileSource(video, clock=clock, realtime=realtime) as src:
                pipe = GazePipeline(lm, calibration=calibration, smoother=OneEuroFilter())
                tracker = GazeTracker(src, pipe, clock, writer=writer)
                a = time.perf_counter()
                tracker.start()
                tracker.wait()
                stats = tracker.stop()
                wall = time.perf_counter() - a
                dropped = stats.dropped + src.frames_dropped
            writer.close()
            return stats, wall, dropped

        stats, wall, _ = tracker_run(realtime=False)
        fps = stats.frames / wall
        live, _, dropped = tracker_run(realtime=True)
        return {
            "video": video if not video.startswith(tmp.name) else "rendered face, 640x480",
            "frames": len(frames),
            "landmarker_ms": round(landmarker_ms, 2),
            "pipeline_ms": round(pipeline_ms, 2),
            "fps": round(fps, 1),
            "overhead_ratio": round(pipeline_ms / landmarker_ms, 3),
            "landmarker_mean_ms": round(landmarker_mean_ms, 2),
            "pipeline_mean_ms": round(pipeline_mean_ms, 2),
            "p95_latency_ms": round(live.p95_latency_ms(), 1),
            "live_frames": live.frames,
            "dropped": dropped,
        }
    finally:
        tmp.cleanup()


# -- replay ---------------------------------------------------------------------------------
_WORDS = ("the model answers with a short list of steps that the reader can follow while the "
          "gaze moves along each line from left to right and back to the start of the next one "
          "so that fixations land on words and regressions appear now and then").split()


def make_replay_session(path: str, seconds: float = 3600.0, gaze_hz: float = 60.0, mouse_hz: float = 1000.0,
                        turn_s: float = 300.0, seed: int = 0) -> dict:
    """Write a synthetic recorded session for replay benchmarks: ``gaze_hz`` gaze that reads
    two answers line by line (fixations of 150-350 ms with saccades, a blink now and
    then), ``mouse_hz`` cursor moves, one pairwise turn every ``turn_s`` with its layout
    (response, paragraph, line and word boxes) and scroll rows."""
    rng = np.random.default_rng(seed)
    W, H = 1920, 1080
    meta = SessionMeta(participant="P-SYNTHETIC", study="bench-replay", session_id="synthetic",
                       screen_width_px=W, screen_height_px=H, screen_width_mm=527.0, screen_height_mm=297.0,
                       viewing_distance_mm=600.0, extra={"synthetic": True})
    t0 = time.perf_counter()
    n_turns = max(1, int(seconds // turn_s))
    panels = {1: (80.0, 200.0, 930.0, 1000.0), 2: (990.0, 200.0, 1840.0, 1000.0)}
    line_h, word_px = 36.0, 11.0
    with SessionWriter(path, meta, flush_interval=1.0) as w:
        # layout + turns
        snap = 0
        word_centres = {}
        for k in range(n_turns):
            tt = k * turn_s
            cols = {c: [] for c in ("t", "snapshot", "turn", "response", "level", "index", "x0", "y0", "x1", "y1",
                                    "scroll_y", "char_start", "char_end", "text")}
            texts = {}
            centres = []
            for resp, (px0, py0, px1, py1) in panels.items():
                words = [(_WORDS[(k * 7 + resp * 13 + i) % len(_WORDS)]) for i in range(160)]
                text = " ".join(words)
                texts[resp] = text
                x, y, line, char = px0 + 20, py0 + 20, 0, 0

                def add(level, index, x0, y0, x1, y1, c0, c1, txt=""):
                    for name, v in (("t", tt + 2.0), ("snapshot", snap), ("turn", k), ("response", resp),
                                    ("level", level), ("index", index), ("x0", x0), ("y0", y0), ("x1", x1),
                                    ("y1", y1), ("scroll_y", 0.0), ("char_start", c0), ("char_end", c1),
                                    ("text", txt)):
                        cols[name].append(v)

                add(0, 0, px0, py0, px1, py1, 0, len(text))
                add(1, 0, px0 + 20, py0 + 20, px1 - 20, py1 - 20, 0, len(text))
                line_start = 0
                for i, word in enumerate(words):
                    wpx = word_px * len(word)
                    if x + wpx > px1 - 20:
                        add(2, line, px0 + 20, y, x, y + line_h, line_start, char - 1)
                        line += 1
                        x, y, line_start = px0 + 20, y + line_h, char
                    add(3, i, x, y, x + wpx, y + line_h, char, char + len(word), word)
                    centres.append((x + wpx / 2, y + line_h / 2))
                    x += wpx + word_px
                    char += len(word) + 1
                add(2, line, px0 + 20, y, x, y + line_h, line_start, len(text))
            word_centres[k] = np.array(centres)
            w.put_rows("layout", {c: (np.array(v, dtype=object) if c == "text" else np.array(v))
                                  for c, v in cols.items()})
            snap += 1
            w.put("turns", (tt, k, 1, f"question {k + 1}", texts[1], texts[2], "model-a", "model-b",
                            int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(0, 3)), -1,
                            int(rng.integers(0, 2)), tt + 1.0, tt + 20.0, tt + turn_s - 10.0, tt + turn_s,
                            "{}"))
            w.put("phases", (tt, "turn", f'{{"turn": {k}}}'))
            w.put_rows("scroll", {"t": np.array([tt + 2.0, tt + 120.0]), "turn": np.array([k, k]),
                                  "view": np.array([1, 1]), "x": np.zeros(2), "y": np.array([0.0, 0.0]),
                                  "max_y": np.array([400.0, 400.0])})
        # gaze: fixations on successive words, 150-350 ms each
        n_g = int(seconds * gaze_hz)
        tg = np.arange(n_g) / gaze_hz
        gx = np.empty(n_g, np.float32)
        gy = np.empty(n_g, np.float32)
        i = 0
        while i < n_g:
            k = min(int(tg[i] // turn_s), n_turns - 1)
            cs = word_centres[k]
            j = int((tg[i] % turn_s) * 3.5) % len(cs)
            if rng.random() < 0.1:
                j = max(0, j - int(rng.integers(1, 6)))  # a regression
            d = int(gaze_hz * rng.uniform(0.15, 0.35))
            gx[i:i + d] = cs[j, 0] + rng.normal(0, 8, min(d, n_g - i))
            gy[i:i + d] = cs[j, 1] + rng.normal(0, 8, min(d, n_g - i))
            i += d
        valid = np.ones(n_g, np.uint8)
        blinks = rng.integers(0, n_g - 20, int(seconds / 4))
        for b in blinks:
            valid[b:b + int(0.15 * gaze_hz)] = 0
        gx[valid == 0] = np.nan
        gy[valid == 0] = np.nan
        step = 100_000
        for a in range(0, n_g, step):
            s = slice(a, a + step)
            m = len(tg[s])
            w.put_rows("gaze", {"t": tg[s], "x": gx[s], "y": gy[s], "valid": valid[s],
                                "confidence": np.ones(m, np.float32), "frame": np.arange(a, a + m)})
        # mouse: a smooth wandering cursor
        n_m = int(seconds * mouse_hz)
        for a in range(0, n_m, 500_000):
            m = min(500_000, n_m - a)
            tm = (a + np.arange(m)) / mouse_hz
            mx = W / 2 + 600 * np.sin(tm * 0.31) * np.cos(tm * 0.07)
            my = H / 2 + 350 * np.sin(tm * 0.23 + 1.0)
            kind = np.zeros(m, np.uint8)
            kind[::5000] = int(MouseKind.PRESS)
            w.put_rows("mouse", {"t": tm, "kind": kind, "x": mx.astype(np.float32), "y": my.astype(np.float32)})
    return {"file": path, "seconds": seconds, "gaze_rows": n_g, "mouse_rows": n_m, "turns": n_turns,
            "write_s": round(time.perf_counter() - t0, 2), "mb": round(os.path.getsize(path) / 1e6, 1)}


def bench_replay(path: str | None = None, seconds: float = 3600.0, seeks: int = 200, frames: int = 240,
                 size: tuple[int, int] = (1280, 720), folder: str | None = None) -> dict:
    """Replay timings (:func:`ifllm_lab.ui.replay.run.measure_replay`) on ``path``, or on a
    synthetic ``seconds``-long session at 60 Hz gaze and 1 kHz mouse written first."""
    from .ui.replay.run import measure_replay

    if path is not None:
        return {**measure_replay(path, seeks, frames, size), "file": path}
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        made = make_replay_session(os.path.join(tmp, "synthetic-replay.h5"), seconds=seconds)
        return {**measure_replay(made["file"], seeks, frames, size), "file": "synthetic", "synthetic": made}
