"""Mouse measures on trajectories whose answers are known exactly."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ifllm_lab.features.mouse import hover_measures, trajectory_measures


def test_a_straight_line_deviates_nowhere():
    r = trajectory_measures([0, 1, 2], [0, 50, 100], [0, 0, 0])
    assert r["mouse_mad_px"] == 0 and r["mouse_auc_px2"] == 0 and r["mouse_x_flips"] == 0
    assert r["mouse_path_px"] == 100 and r["mouse_speed_mean_px_s"] == 50


def test_deviation_and_area_with_their_sign():
    # from (0, 0) to (100, 0) through (50, -30): above the line on screen = left of travel
    up = trajectory_measures([0, 1, 2], [0, 50, 100], [0, -30, 0])
    assert up["mouse_mad_px"] == pytest.approx(30) and up["mouse_auc_px2"] == pytest.approx(1500)
    assert up["mouse_ad_px"] == pytest.approx(10)
    down = trajectory_measures([0, 1, 2], [0, 50, 100], [0, 30, 0])
    assert down["mouse_mad_px"] == pytest.approx(-30) and down["mouse_auc_px2"] == pytest.approx(-1500)
    # a right-angle detour: up 100, across 100, down 100 -> a 100 x 100 square
    box = trajectory_measures([0, 1, 2, 3], [0, 0, 100, 100], [0, -100, -100, 0])
    assert box["mouse_mad_px"] == pytest.approx(100) and box["mouse_auc_px2"] == pytest.approx(10_000)
    assert box["mouse_path_px"] == pytest.approx(300)


def test_flips_pauses_speed_and_acceleration():
    zig = trajectory_measures(np.arange(6), [0, 10, 0, 10, 0, 10], [0, 0, 0, 0, 0, 0])
    assert zig["mouse_x_flips"] == 4 and zig["mouse_y_flips"] == 0
    jitter = trajectory_measures(np.arange(6), [0, 1, 0, 1, 0, 1], [0] * 6)  # inside the dead band
    assert jitter["mouse_x_flips"] == 0
    t = np.arange(0, 3, 0.001)
    x = np.where(t < 1, t * 100, np.where(t < 1.8, 100, 100 + (t - 1.8) * 300))
    r = trajectory_measures(t, x, np.zeros_like(t))
    assert r["mouse_pauses"] == 1 and r["mouse_pause_s"] == pytest.approx(0.8, abs=0.01)
    assert r["mouse_speed_max_px_s"] == pytest.approx(300, rel=0.01)
    assert r["mouse_accel_max_px_s2"] > 1000  # 0 -> 300 px/s within a few ms
    assert r["mouse_moving_share"] == pytest.approx(2.2 / 3, abs=0.01)


def test_missing_samples_and_degenerate_windows():
    r = trajectory_measures([0, 1, 2, 3], [0, np.nan, 100, np.nan], [0, 5, 0, 1])
    assert r["mouse_path_px"] == 100  # the NaN rows are dropped
    assert all(math.isnan(v) for v in trajectory_measures([0], [1], [1]).values())
    loop = trajectory_measures([0, 1, 2], [0, 50, 0], [0, 0, 0])  # back where it started: no line
    assert math.isnan(loop["mouse_mad_px"]) and loop["mouse_path_px"] == 100


def test_hover_sample_and_hold_with_gaps_and_clipping():
    r = hover_measures([0, 1, 2, 3, 7, 8], np.array([1, 1, 0, 1, 1, 0], bool), 0.5, 9)
    # from t = 1: in 1 s, out 1 s, in until 7 (a 4 s gap: unknown), in 1 s, out 1 s
    assert r["mouse_hover_s"] == 2 and r["mouse_hover_share"] == 0.5
    assert r["mouse_hover_entries"] == 2 and r["mouse_last_hover_s"] == 1
    never = hover_measures([0, 1], np.array([0, 0], bool), 0, 2)
    assert never["mouse_hover_s"] == 0 and math.isnan(never["mouse_last_hover_s"])
    assert all(math.isnan(v) for v in hover_measures([5], np.array([1], bool), 0, 2).values())


def test_random_walk_invariants():
    rng = np.random.default_rng(4)
    n = 20_000
    t = np.cumsum(rng.uniform(0.001, 0.02, n))
    x, y = np.cumsum(rng.normal(0, 3, n)), np.cumsum(rng.normal(0, 3, n))
    r = trajectory_measures(t, x, y)
    assert r["mouse_path_px"] >= math.hypot(x[-1] - x[0], y[-1] - y[0])
    assert abs(r["mouse_mad_px"]) >= abs(r["mouse_ad_px"])
    assert 0 <= r["mouse_moving_share"] <= 1 and r["mouse_x_flips"] > 100
