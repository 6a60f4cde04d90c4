"""Mouse measures on hand-built trajectories whose answers are known exactly, and the
invariants on a long random walk."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ifllm_lab.features import mouse as M
from ifllm_lab.features.mouse import hover_measures, trajectory_measures
from ifllm_lab.features.registry import FEATURES

TRAJ = ("mouse_path_px", "mouse_speed_mean_px_s", "mouse_speed_max_px_s", "mouse_accel_max_px_s2",
        "mouse_moving_share", "mouse_pauses", "mouse_pause_s", "mouse_x_flips", "mouse_y_flips", "mouse_mad_px",
        "mouse_ad_px", "mouse_auc_px2")
HOVER = ("mouse_hover_s", "mouse_hover_share", "mouse_hover_entries", "mouse_last_hover_s")


def _ramp(t, x, y):
    """Positions on a regular clock: t (s), x and y as arrays."""
    return np.asarray(t, float), np.asarray(x, float), np.asarray(y, float)


def test_features_are_registered_with_units():
    units = {"mouse_path_px": "px", "mouse_speed_mean_px_s": "px/s", "mouse_speed_max_px_s": "px/s",
             "mouse_accel_max_px_s2": "px/s^2", "mouse_moving_share": "share", "mouse_pauses": "count",
             "mouse_pause_s": "s", "mouse_x_flips": "count", "mouse_y_flips": "count", "mouse_mad_px": "px",
             "mouse_ad_px": "px", "mouse_auc_px2": "px^2", "mouse_hover_s": "s", "mouse_hover_share": "share",
             "mouse_hover_entries": "count", "mouse_last_hover_s": "s"}
    for name, unit in units.items():
        f = FEATURES[name]
        assert (f.group, f.unit, f.level) == ("mouse", unit, "response") and "mouse" in f.needs
    r = trajectory_measures([0, 1], [0, 1], [0, 1])
    assert tuple(r) == TRAJ
    assert tuple(hover_measures([0, 1], [True, False], 0, 2)) == HOVER


def test_a_straight_line_deviates_nowhere():
    r = trajectory_measures([0, 1, 2], [0, 50, 100], [0, 0, 0])
    assert r["mouse_mad_px"] == 0 and r["mouse_ad_px"] == 0 and r["mouse_auc_px2"] == 0
    assert r["mouse_x_flips"] == 0 and r["mouse_y_flips"] == 0
    assert r["mouse_path_px"] == 100 and r["mouse_speed_mean_px_s"] == 50
    # a diagonal one, densely sampled, far from the origin: path = distance, no deviation
    s = np.linspace(0, 1, 1001)
    d = trajectory_measures(s * 2, 700 + 300 * s, 400 - 400 * s)
    assert d["mouse_path_px"] == pytest.approx(500) and d["mouse_speed_mean_px_s"] == pytest.approx(250)
    assert d["mouse_mad_px"] == pytest.approx(0, abs=1e-9) and d["mouse_auc_px2"] == pytest.approx(0, abs=1e-6)
    assert d["mouse_x_flips"] == 0 and d["mouse_y_flips"] == 0


def test_deviation_and_area_with_their_sign():
    # from (0, 0) to (100, 0) through (50, -30): above the line on screen = left of travel
    up = trajectory_measures([0, 1, 2], [0, 50, 100], [0, -30, 0])
    assert up["mouse_mad_px"] == pytest.approx(30) and up["mouse_auc_px2"] == pytest.approx(1500)
    assert up["mouse_ad_px"] == pytest.approx(10)
    down = trajectory_measures([0, 1, 2], [0, 50, 100], [0, 30, 0])
    assert down["mouse_mad_px"] == pytest.approx(-30) and down["mouse_auc_px2"] == pytest.approx(-1500)
    assert down["mouse_ad_px"] == pytest.approx(-10)


def test_right_angle_detours():
    # to (100, -100) (up-right on screen) going up first, then right: the corner (0, -100)
    # lies left of travel, 100 / sqrt(2) from the line; the area is the half square
    t = [0, 1, 2]
    left = trajectory_measures(t, [0, 0, 100], [0, -100, -100])
    assert left["mouse_mad_px"] == pytest.approx(100 / math.sqrt(2))
    assert left["mouse_auc_px2"] == pytest.approx(5000)
    assert left["mouse_ad_px"] == pytest.approx(100 / math.sqrt(2) / 3)
    assert left["mouse_path_px"] == pytest.approx(200)
    # the mirror image (right first, then up) flips the signs
    right = trajectory_measures(t, [0, 100, 100], [0, 0, -100])
    assert right["mouse_mad_px"] == pytest.approx(-100 / math.sqrt(2))
    assert right["mouse_auc_px2"] == pytest.approx(-5000)
    # the same path run backwards: left becomes right
    back = trajectory_measures(t, [100, 0, 0], [-100, -100, 0])
    assert back["mouse_mad_px"] == pytest.approx(-100 / math.sqrt(2))
    assert back["mouse_auc_px2"] == pytest.approx(-5000)
    # a rectangular detour, densely sampled: up 100, across 200, down 100 -> 200 x 100 box
    leg = np.linspace(0, 1, 51)[:-1]
    bx = np.concatenate((0 * leg, 200 * leg, 200 + 0 * leg, [200]))
    by = np.concatenate((-100 * leg, -100 + 0 * leg, -100 + 100 * leg, [0]))
    box = trajectory_measures(np.arange(len(bx)) * 0.01, bx, by)
    assert box["mouse_mad_px"] == pytest.approx(100) and box["mouse_auc_px2"] == pytest.approx(20_000)
    assert box["mouse_path_px"] == pytest.approx(400)
    assert box["mouse_y_flips"] == 1 and box["mouse_x_flips"] == 0
    # moved and rotated by 90 degrees (x, y) -> (-y, x): same MAD and AUC
    rot = trajectory_measures(np.arange(len(bx)) * 0.01, 500 - by, 300 + bx)
    assert rot["mouse_mad_px"] == pytest.approx(100) and rot["mouse_auc_px2"] == pytest.approx(20_000)
    mirrored = trajectory_measures(np.arange(len(bx)) * 0.01, bx, -by)
    assert mirrored["mouse_mad_px"] == pytest.approx(-100) and mirrored["mouse_auc_px2"] == pytest.approx(-20_000)


def test_an_s_shaped_path_cancels_its_areas():
    # above the line for the first half, below for the second: AUC 0, MAD the larger side
    r = trajectory_measures([0, 1, 2, 3, 4], [0, 25, 50, 75, 100], [0, -20, 0, 30, 0])
    assert r["mouse_auc_px2"] == pytest.approx(50 * 20 / 2 - 50 * 30 / 2)
    assert r["mouse_mad_px"] == pytest.approx(-30) and r["mouse_ad_px"] == pytest.approx((20 - 30) / 5)


def test_flips_with_their_dead_band():
    zig = trajectory_measures(np.arange(6), [0, 10, 0, 10, 0, 10], [0, 0, 0, 0, 0, 0])
    assert zig["mouse_x_flips"] == 4 and zig["mouse_y_flips"] == 0
    assert trajectory_measures(np.arange(6), [0, 1, 0, 1, 0, 1], [0] * 6)["mouse_x_flips"] == 0  # jitter
    assert trajectory_measures(np.arange(6), [0, 2, 0, 2, 0, 2], [0] * 6)["mouse_x_flips"] == 0  # back exactly 2
    assert trajectory_measures(np.arange(6), [0, 3, 0, 3, 0, 3], [0] * 6)["mouse_x_flips"] == 4  # back 3 > 2
    # moves of zero are ignored (mousetrap); a pause at the turning point changes nothing
    assert trajectory_measures(np.arange(7), [0, 10, 10, 10, 0, 0, 10], [0] * 7)["mouse_x_flips"] == 2
    # a slow reversal made of 1 px steps (1 kHz events) is a flip all the same
    x = np.concatenate((np.arange(0, 50), np.arange(50, 0, -1), np.arange(0, 51)))
    slow = trajectory_measures(np.arange(len(x)) / 1000, x, np.zeros(len(x)))
    assert slow["mouse_x_flips"] == 2
    # ... and +-1 px jitter riding on it adds none
    jit = x + np.tile([0, 1], len(x))[:len(x)]
    assert trajectory_measures(np.arange(len(x)) / 1000, jit, np.zeros(len(x)))["mouse_x_flips"] == 2
    # y flips on a vertical zig-zag of 3 teeth
    yz = trajectory_measures(np.arange(7), [0, 5, 10, 15, 20, 25, 30], [0, 40, 0, 40, 0, 40, 0])
    assert yz["mouse_y_flips"] == 5 and yz["mouse_x_flips"] == 0


def test_speed_acceleration_moving_and_a_pause_at_10_hz():
    t = np.arange(31) * 0.1  # 0 .. 3 s
    k = np.arange(31)
    # 100 px/s for 1 s, still 0.8 s, 300 px/s for 1.2 s
    x = np.where(k <= 10, 10.0 * k, np.where(k <= 18, 100.0, 100.0 + 30.0 * (k - 18)))
    r = trajectory_measures(t, x, np.zeros(31))
    assert r["mouse_path_px"] == pytest.approx(460)
    assert r["mouse_speed_mean_px_s"] == pytest.approx(460 / 3)
    assert r["mouse_speed_max_px_s"] == pytest.approx(300)
    assert r["mouse_accel_max_px_s2"] == pytest.approx(300 / 0.1)  # 0 -> 300 px/s between midpoints 0.1 s apart
    assert r["mouse_moving_share"] == pytest.approx(2.2 / 3)
    assert r["mouse_pauses"] == 1 and r["mouse_pause_s"] == pytest.approx(0.8)
    assert r["mouse_x_flips"] == 0


def test_speed_and_acceleration_at_1_khz():
    t = np.arange(2000) / 1000
    const = trajectory_measures(t, 200 * t, 50 + 0 * t)
    assert const["mouse_speed_max_px_s"] == pytest.approx(200) and const["mouse_speed_mean_px_s"] == pytest.approx(200)
    assert const["mouse_accel_max_px_s2"] == pytest.approx(0, abs=1e-6) and const["mouse_moving_share"] == 1
    assert const["mouse_pauses"] == 0 and const["mouse_pause_s"] == 0
    # a step from 100 to 300 px/s at t = 1: the 5 ms intervals on either side give 200 px/s in 5 ms
    x = np.where(t < 1, 100 * t, 100 + 300 * (t - 1))
    step = trajectory_measures(t, x, 0 * t)
    assert step["mouse_speed_max_px_s"] == pytest.approx(300)
    assert step["mouse_accel_max_px_s2"] == pytest.approx(200 / 0.005)
    # an extra event 0.1 ms after another, 1 px on: no 10 000 px/s spike
    tj = np.insert(t, 501, t[500] + 0.0001)
    xj = np.insert(200 * t, 501, 200 * t[500] + 1)
    assert (xj[501] - xj[500]) / (tj[501] - tj[500]) == pytest.approx(10_000)
    jit = trajectory_measures(tj, xj, 0 * tj)
    assert 200 <= jit["mouse_speed_max_px_s"] < 250 and jit["mouse_path_px"] == pytest.approx(200 * t[-1] + 1.6)


def test_pauses_at_1_khz_and_in_sampling_gaps():
    t = np.arange(3000) / 1000
    x = np.where(t < 1, t * 100, np.where(t < 1.8, 100, 100 + (t - 1.8) * 300))
    r = trajectory_measures(t, x, np.zeros_like(t))
    # the pause also holds the last 2 px before it (20 ms at 100 px/s) and the first 2 px
    # after it (6.7 ms at 300 px/s): moving is judged over 0.1 s, and 2 px in 0.1 s is still
    assert r["mouse_pauses"] == 1 and r["mouse_pause_s"] == pytest.approx(0.8 + 0.02 + 2 / 300, abs=0.002)
    assert r["mouse_moving_share"] == pytest.approx((2.2 - 0.02 - 2 / 300) / 2.999, abs=0.001)
    # events only when the cursor moves: a 0.8 s gap closed by a 1 px move is a pause,
    # a 0.8 s gap closed by a 40 px jump is not, and a 0.4 s one is too short
    gaps = trajectory_measures([0, 0.1, 0.9, 1.0, 1.8, 1.9, 2.3], [0, 10, 11, 21, 61, 71, 72], [0] * 7)
    assert gaps["mouse_pauses"] == 1 and gaps["mouse_pause_s"] == pytest.approx(0.8)
    # a hand resting on the mouse: +-1 px for 1 s at 10 Hz is still
    tr = np.arange(11) * 0.1
    rest = trajectory_measures(tr, 500 + np.tile([0, 1], 6)[:11], 300 + np.zeros(11))
    assert rest["mouse_pauses"] == 1 and rest["mouse_pause_s"] == pytest.approx(1.0)
    assert rest["mouse_moving_share"] == 0 and rest["mouse_x_flips"] == 0
    # two pauses of 0.6 s separated by a move
    two = trajectory_measures([0, 0.6, 0.7, 1.3], [0, 0, 50, 50], [0, 0, 0, 0])
    assert two["mouse_pauses"] == 2 and two["mouse_pause_s"] == pytest.approx(1.2)


def test_a_nudge_is_no_motion_at_either_rate():
    # a resting hand nudging the cursor 1 px every 0.2 s for 2 s: 5 px/s, still both as
    # recorded events (a 120 Hz poll between them) and sampled at 10 Hz
    for hz in (120, 10):
        t = np.arange(int(2 * hz) + 1) / hz
        x = 300 + np.floor(t / 0.2)
        r = trajectory_measures(t, x, 200 + 0 * t)
        assert r["mouse_moving_share"] == 0, hz
        assert r["mouse_pauses"] == 1 and r["mouse_pause_s"] == pytest.approx(2), hz
    # the same path at 100 px/s is moving at both rates
    for hz in (1000, 10):
        t = np.arange(int(2 * hz) + 1) / hz
        r = trajectory_measures(t, 100 * t, 0 * t)
        assert r["mouse_moving_share"] == 1 and r["mouse_pauses"] == 0, hz


def test_missing_samples_and_degenerate_windows():
    r = trajectory_measures([0, 1, 2, 3], [0, np.nan, 100, np.nan], [0, 5, 0, 1])
    assert r["mouse_path_px"] == 100 and r["mouse_speed_mean_px_s"] == 50  # the NaN rows are dropped
    nan_t = trajectory_measures([0, np.nan, 2], [0, 5, 100], [0, 5, 0])
    assert nan_t["mouse_path_px"] == 100
    for few in (trajectory_measures([0], [1], [1]), trajectory_measures([], [], []),
                trajectory_measures([0, 1], [np.nan, 3], [1, 1])):
        assert set(few) == set(TRAJ) and all(math.isnan(v) for v in few.values())
    loop = trajectory_measures([0, 1, 2], [0, 50, 0], [0, 0, 0])  # back where it started: no line
    assert math.isnan(loop["mouse_mad_px"]) and math.isnan(loop["mouse_ad_px"])
    assert math.isnan(loop["mouse_auc_px2"])
    assert loop["mouse_path_px"] == 100 and loop["mouse_x_flips"] == 1 and loop["mouse_speed_max_px_s"] == 50
    same_time = trajectory_measures([1, 1], [0, 10], [0, 0])  # no span: no mean speed, no share
    assert same_time["mouse_path_px"] == 10 and math.isnan(same_time["mouse_speed_mean_px_s"])
    assert math.isnan(same_time["mouse_moving_share"]) and math.isnan(same_time["mouse_speed_max_px_s"])
    # two samples: one speed, no change of speed yet
    two = trajectory_measures([0, 0.5], [0, 30], [0, 40])
    assert two["mouse_speed_max_px_s"] == 100 and math.isnan(two["mouse_accel_max_px_s2"])
    with pytest.raises(ValueError):
        trajectory_measures([0, 1], [0, 1, 2], [0, 1])


def test_hover_sample_and_hold_with_gaps_and_clipping():
    # window [0.5, 8.6]; the sample at 0 holds [0, 1] of which [0.5, 1] is in the window.
    # in 0.5 s, in 1 s, out 1 s, in until 7 (a 4 s gap: unknown), in 1 s, out 0.6 s (to t1)
    t = [0, 1, 2, 3, 7, 8, 9]
    inside = np.array([1, 1, 0, 1, 1, 0, 1], bool)
    r = hover_measures(t, inside, 0.5, 8.6)
    assert r["mouse_hover_s"] == pytest.approx(2.5)
    assert r["mouse_hover_share"] == pytest.approx(2.5 / 4.1)
    assert r["mouse_hover_entries"] == 2 and r["mouse_last_hover_s"] == pytest.approx(1)


def test_hover_visits_and_the_last_one():
    # over it 0.5 s, away 0.5 s, over it again until the window ends (clipped at 1.8)
    r = hover_measures([0, 0.5, 1.0, 1.5, 2.5], np.array([0, 1, 0, 1, 1], bool), 0, 1.8)
    assert r["mouse_hover_s"] == pytest.approx(0.8) and r["mouse_hover_share"] == pytest.approx(0.8 / 1.8)
    assert r["mouse_hover_entries"] == 2 and r["mouse_last_hover_s"] == pytest.approx(0.3)
    # the last visit ended before t1: its own length, not the time since
    done = hover_measures([0, 0.2, 0.9, 1.0], np.array([1, 1, 0, 0], bool), 0, 2)
    assert done["mouse_last_hover_s"] == pytest.approx(0.9) and done["mouse_hover_entries"] == 1
    assert done["mouse_hover_s"] == pytest.approx(0.9) and done["mouse_hover_share"] == pytest.approx(0.45)


def test_hover_gaps_and_empty_windows():
    # a 3 s gap between two samples over the answer is not attributed
    gap = hover_measures([0, 3], np.array([1, 1], bool), 0, 4)
    assert gap["mouse_hover_s"] == 1 and gap["mouse_hover_share"] == 1
    assert gap["mouse_hover_entries"] == 1 and gap["mouse_last_hover_s"] == 1
    never = hover_measures([0, 1], np.array([0, 0], bool), 0, 2)
    assert never["mouse_hover_s"] == 0 and never["mouse_hover_share"] == 0 and never["mouse_hover_entries"] == 0
    assert math.isnan(never["mouse_last_hover_s"])
    # no sample in the window: all NaN, even with one just before it
    for empty in (hover_measures([5], np.array([1], bool), 0, 2), hover_measures([-0.5], [True], 0, 2),
                  hover_measures([], np.zeros(0, bool), 0, 2)):
        assert set(empty) == set(HOVER) and all(math.isnan(v) for v in empty.values())
    # a sample before t0 whose hold ends more than 1 s later tells nothing about the window
    old = hover_measures([-1.5, 0.5, 1.0], np.array([1, 0, 1], bool), 0, 1.5)
    assert old["mouse_hover_s"] == pytest.approx(0.5) and old["mouse_hover_share"] == pytest.approx(0.5)
    assert old["mouse_hover_entries"] == 1
    # only unknown time in the window: NaN
    assert all(math.isnan(v) for v in hover_measures([0], [True], 0, 5).values())
    # a sample exactly at t1 ends the hold before it and adds no visit
    edge = hover_measures([0, 1], np.array([0, 1], bool), 0, 1)
    assert edge["mouse_hover_s"] == 0 and edge["mouse_hover_entries"] == 0


def test_random_walk_invariants():
    # ifllm_lab.synthetic has no stand-alone cursor generator: a seeded random walk with
    # rests, 1-20 ms between events, jitter of a resting hand
    rng = np.random.default_rng(4)
    n = 40_000
    t = np.cumsum(rng.uniform(0.001, 0.02, n))
    moving = np.repeat(rng.random(n // 200) < 0.6, 200)
    x = 960 + np.cumsum(np.where(moving, rng.normal(0, 3, n), 0)) + np.where(moving, 0, rng.integers(-1, 2, n))
    y = 540 + np.cumsum(np.where(moving, rng.normal(0, 3, n), 0))
    r = trajectory_measures(t, x, y)
    span = t[-1] - t[0]
    assert r["mouse_path_px"] >= math.hypot(x[-1] - x[0], y[-1] - y[0])
    assert abs(r["mouse_mad_px"]) >= abs(r["mouse_ad_px"]) > 0
    assert r["mouse_speed_mean_px_s"] == pytest.approx(r["mouse_path_px"] / span)
    assert r["mouse_speed_max_px_s"] >= r["mouse_speed_mean_px_s"] and r["mouse_accel_max_px_s2"] > 0
    assert 0 < r["mouse_moving_share"] < 1 and r["mouse_pauses"] >= 1
    assert 0 < r["mouse_pause_s"] <= span * (1 - r["mouse_moving_share"]) + 1e-9  # a pause never moves
    raw_x = np.count_nonzero(np.diff(np.sign(np.diff(x)[np.diff(x) != 0])))
    assert 100 < r["mouse_x_flips"] < raw_x  # the dead band removes the jitter's reversals
    # |AUC| is at most the area swept within MAD of the line
    length = math.hypot(x[-1] - x[0], y[-1] - y[0])
    assert abs(r["mouse_auc_px2"]) <= r["mouse_path_px"] * abs(r["mouse_mad_px"]) + length * abs(r["mouse_mad_px"])
    # hover over a box: shares and times within bounds, the last visit within the hover time
    inside = (abs(x - 960) < 80) & (abs(y - 540) < 80)
    h = hover_measures(t, inside, t[0] + 5, t[-1] - 5)
    assert 0 <= h["mouse_hover_share"] <= 1 and 0 <= h["mouse_hover_s"] <= span
    assert h["mouse_hover_entries"] >= 1 and 0 <= h["mouse_last_hover_s"] <= h["mouse_hover_s"]
    # a shuffled copy gives the same answers (the samples are put in time order)
    p = rng.permutation(n)
    assert trajectory_measures(t[p], x[p], y[p]) == pytest.approx(r)


def test_flips_agree_with_a_plain_loop():
    """The vectorised dead band against the obvious sequential definition."""
    rng = np.random.default_rng(7)

    def loop(v, band):
        flips, direction, extreme = 0, 0, v[0]
        for p in v[1:]:
            if direction >= 0 and p > extreme:
                extreme = p
                direction = direction or (1 if p - v[0] > band / 2 else 0)
            elif direction <= 0 and p < extreme:
                extreme = p
                direction = direction or (-1 if v[0] - p > band / 2 else 0)
            if direction == 1 and extreme - p > band:
                flips, direction, extreme = flips + 1, -1, p
            elif direction == -1 and p - extreme > band:
                flips, direction, extreme = flips + 1, 1, p
        return flips

    sizes = [int(n) for n in rng.integers(2, 300, 200)] + [3000, 5000, 20_000]  # the long ones scan in blocks
    for n in sizes:
        v = np.round(np.cumsum(rng.normal(0, rng.uniform(0.5, 4), n)))
        assert M._flips(v, M.FLIP_PX) == loop(v, M.FLIP_PX), n
        assert M._flips(v, 0.0) == np.count_nonzero(np.diff(np.sign(np.diff(v)[np.diff(v) != 0])))


def test_an_hour_at_1_khz_gives_every_measure():
    """A whole hour of 1 kHz rows in one window (its speed is a benchmark figure, not asserted)."""
    n = 3_600_000
    rng = np.random.default_rng(1)
    t = np.arange(n) / 1000
    x = 960 + 600 * np.sin(t * 0.31) * np.cos(t * 0.07) + rng.integers(-1, 2, n)
    y = 540 + 350 * np.sin(t * 0.23 + 1.0)
    r = trajectory_measures(t, x, y)
    h = hover_measures(t, x < 960, 0, 3600)
    assert all(np.isfinite(v) for v in r.values()), r
    assert r["mouse_path_px"] > 0 and h["mouse_hover_entries"] > 0
    assert 0 < h["mouse_hover_share"] < 1 and 0 <= r["mouse_moving_share"] <= 1
