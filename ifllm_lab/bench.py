"""Benchmarks that print JSON (``ifllm-lab bench ...``).

``record``: drives the real :class:`SessionWriter` with synthetic producers on their
own threads, paced at the requested rates like a camera and a mouse would be, and
then measures the writer's capacity by flooding it.

``gaze``: the face landmarker and the whole gaze pipeline on a (rendered) face video.

``analysis``: calibration fit, fixation detection, AOI mapping and heat maps on
synthetic data of a one-hour session.

The replay benchmark needs Qt and lives in :mod:`ifllm_lab.ui.replay.bench`.
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
            from .synthetic.face import write_gaze_video

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


# -- analysis -------------------------------------------------------------------------------
def _timed(fn, repeats: int) -> tuple[list[float], object]:
    """Wall times (s) of ``repeats`` calls of ``fn`` and the last call's result."""
    times, out = [], None
    for _ in range(repeats):
        a = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - a)
    return times, out


def bench_analysis(samples: int = 216_000, snapshots: int = 600, repeats: int = 5, calibration_points: int = 9,
                   samples_per_point: int = 30, folder: str | None = None) -> dict:
    """Time the analysis steps side by side on synthetic data. Returns the figures printed by
    ``ifllm-lab bench analysis``; each step runs ``repeats`` times, reported as the
    minimum (``*_min_*``) and the median (``*_median_*``):

    - ``fit_calibration_*_ms``: :func:`~ifllm_lab.gaze.calibration.fit_calibration`
      (every default model kind, cross-validated) on ``calibration_points`` targets
      (the 9-point pattern, or the 5- / 13-point one) x ``samples_per_point`` samples
      of a simulated participant.
    - ``idt_*_s`` / ``ivt_*_s``: I-DT and I-VT fixation detection on ``samples`` gaze
      samples at 60 Hz (216,000 = one hour; 1 % invalid, 0.4 deg RMS noise);
      ``idt_fixations`` / ``ivt_fixations`` / ``true_fixations``: what they found.
    - ``map_points_*_ms``: :meth:`~ifllm_lab.analysis.aoi.LayoutTimeline.map_points` of
      ``samples`` points over a recorded layout of ``snapshots`` snapshots of two views
      (one every 6 s); ``layout_build_s``: reading that layout into a timeline (once).
    - ``heatmap_*_ms``: :func:`~ifllm_lab.analysis.heatmap.heatmap` of ``samples``
      points, 1920x1080 px, sigma 40 px.
    """
    from .analysis import events as E
    from .analysis.aoi import LayoutTimeline
    from .analysis.heatmap import heatmap
    from .gaze.calibration import fit_calibration, load_pattern
    from .synthetic.layout import write_recorded_layout
    from .synthetic.participant import FEATURE_NAMES, SCREEN, SimulatedParticipant
    from .synthetic.scanpath import SCREEN as SCANPATH_SCREEN
    from .synthetic.scanpath import scanpath_samples

    if samples < 100 or snapshots < 1 or repeats < 1 or samples_per_point < 2:
        raise ValueError("bench analysis needs samples >= 100, snapshots >= 1, repeats >= 1 and "
                         "samples_per_point >= 2")
    patterns = {5: "5-point", 9: "9-point", 13: "13-point"}
    if calibration_points not in patterns:
        raise ValueError(f"calibration_points must be one of {sorted(patterns)}, not {calibration_points}")

    def ms(times):
        return round(min(times) * 1000, 2), round(float(np.median(times)) * 1000, 2)

    def s_(times):
        return round(min(times), 4), round(float(np.median(times)), 4)

    out: dict = {"samples": samples, "snapshots": snapshots, "repeats": repeats}

    # calibration: a simulated participant looking at each target in turn
    who = SimulatedParticipant(1)
    targets = load_pattern(patterns[calibration_points]).targets_px(SCREEN)
    X = np.array([who.features(*tg) for tg in targets for _ in range(samples_per_point)])
    Y = np.repeat(targets, samples_per_point, axis=0)
    times, model = _timed(lambda: fit_calibration(X, Y, feature_names=FEATURE_NAMES, screen=SCREEN), repeats)
    out["fit_calibration_samples"] = len(X)
    out["fit_calibration_kinds"] = len(model.cv)
    out["fit_calibration_min_ms"], out["fit_calibration_median_ms"] = ms(times)

    # fixations: 60 Hz scanpath with fixations of 150-600 ms (~2.4 per second)
    n_fix = int(samples / 60 / 0.39) + 20
    gaze, truth = scanpath_samples(0, n_fix=n_fix, rate_hz=(60.0, 60.0), drop=0.0, invalid=0.01)
    gaze = E.GazeSamples(gaze.t[:samples], gaze.x[:samples], gaze.y[:samples], gaze.valid[:samples])
    truth = truth[truth[:, 0] + truth[:, 1] <= gaze.t[-1]]
    out["gaze_samples"] = len(gaze)
    out["true_fixations"] = len(truth)
    for name, detect in (("idt", lambda: E.idt(gaze, SCANPATH_SCREEN)),
                         ("ivt", lambda: E.ivt(gaze, SCANPATH_SCREEN).fixations())):
        times, fix = _timed(detect, repeats)
        out[f"{name}_fixations"] = len(fix)
        out[f"{name}_min_s"], out[f"{name}_median_s"] = s_(times)

    # AOI mapping over a long recorded layout
    with tempfile.TemporaryDirectory(prefix="ifllm-bench-analysis-", dir=folder) as tmp:
        made = write_recorded_layout(os.path.join(tmp, "layout.h5"), snapshots=snapshots)
        a = time.perf_counter()
        with SessionReader(made["file"]) as r:
            timeline = LayoutTimeline.from_reader(r)
        out["layout_build_s"] = round(time.perf_counter() - a, 3)
    rng = np.random.default_rng(1)
    t = rng.uniform(0, made["seconds"], samples)
    x = rng.uniform(0, 1400, samples)
    y = rng.uniform(150, 700, samples)
    times, hits = _timed(lambda: timeline.map_points(t, x, y), repeats)
    out["map_points_on_words"] = round(float((hits["word"] >= 0).mean()), 3)
    out["map_points_min_ms"], out["map_points_median_ms"] = ms(times)
    # one point at a time, as the live mouse asks on every move (up to 1 kHz)
    one = timeline._tb.hits
    pts = list(zip(x[:20_000].tolist(), y[:20_000].tolist()))

    def one_by_one():
        for px, py in pts:
            one.at(px, py)

    times, _ = _timed(one_by_one, repeats)
    out["hit_one_point_min_us"] = round(min(times) / len(pts) * 1e6, 2)
    out["hit_one_point_median_us"] = round(float(np.median(times)) / len(pts) * 1e6, 2)

    # heat map of a screen's worth of samples, some outside
    hx, hy = rng.uniform(-100, 2020, samples), rng.uniform(-100, 1180, samples)
    times, _ = _timed(lambda: heatmap(hx, hy, width=1920, height=1080, sigma_px=40), repeats)
    out["heatmap_min_ms"], out["heatmap_median_ms"] = ms(times)
    return out
