"""Synthetic gaze samples with known fixations, for event-detection tests and benchmarks."""
from __future__ import annotations

import numpy as np

from ..analysis.events import GazeSamples
from ..gaze.geometry import ScreenGeometry

SCREEN = ScreenGeometry(1920.0, 1080.0, 527.0, 297.0, 600.0)  # 24" 16:9 at 60 cm


def scanpath_samples(seed: int, n_fix: int = 40, geom: ScreenGeometry = SCREEN, noise_s2s_deg: float = 0.4,
                     rate_hz=(15.0, 30.0), drop: float = 0.05, invalid: float = 0.02, dur_s=(0.15, 0.6),
                     amp_deg=(3.0, 15.0)) -> tuple[GazeSamples, np.ndarray]:
    """Gaze samples (screen px, seconds from 0.5 s) of ``n_fix`` fixations and their truth.

    Fixations (durations uniform in ``dur_s`` s) are joined by saccades in random directions
    (amplitudes uniform in ``amp_deg``, main sequence: 21 ms + 2.2 ms/deg) that stay 100 px
    inside the screen. Samples come at irregular times (each interval 1/rate_hz[1] ..
    1/rate_hz[0] s), ``drop`` of them lost, ``invalid`` flagged invalid, with Gaussian
    noise of the given RMS sample-to-sample precision in degrees (per-axis sd = RMS / 2).
    Returns (samples, truth), truth rows (onset s, duration s, x px, y px).
    """
    rng = np.random.default_rng(seed)
    ppd = geom.px_per_degree_at_centre()
    t = 0.5
    pos = np.array([geom.width_px / 2, geom.height_px / 2])
    knots_t, knots_p, truth = [], [], []
    for _ in range(n_fix):
        d = rng.uniform(*dur_s)
        truth.append((t, d, pos[0], pos[1]))
        knots_t += [t, t + d]
        knots_p += [pos.copy(), pos.copy()]
        t += d
        while True:
            a = rng.uniform(*amp_deg) * ppd
            ang = rng.uniform(0, 2 * np.pi)
            new = pos + a * np.array([np.cos(ang), np.sin(ang)])
            if 100 < new[0] < geom.width_px - 100 and 100 < new[1] < geom.height_px - 100:
                break
        t += (21.0 + 2.2 * a / ppd) / 1000.0
        pos = new
    t_end = knots_t[-1]
    intervals = 1.0 / rng.uniform(rate_hz[0], rate_hz[1], int(t_end * rate_hz[1]) + 10)
    ts = 0.5 + np.cumsum(intervals) - intervals[0] * rng.uniform()
    ts = ts[ts < t_end]
    ts = ts[rng.random(len(ts)) >= drop]
    kp = np.array(knots_p)
    x = np.interp(ts, knots_t, kp[:, 0])
    y = np.interp(ts, knots_t, kp[:, 1])
    sigma = noise_s2s_deg / 2.0 * ppd
    x = x + rng.normal(0, sigma, len(ts))
    y = y + rng.normal(0, sigma, len(ts))
    valid = rng.random(len(ts)) >= invalid
    return GazeSamples(ts, x, y, valid), np.array(truth)
