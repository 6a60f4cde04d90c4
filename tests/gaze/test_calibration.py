"""Calibration: patterns, sample collection, regression choice, validation reports, drift
checks and screen geometry, on a simulated participant with known truth.

The simulated participant (``Participant``,
:class:`ifllm_lab.synthetic.participant.SimulatedParticipant`) follows the physics the
real features have: the eye's rotation in the head is the gaze direction to the target
minus the head's rotation; each iris is offset from the eye corners by
``gain * sin(rotation)`` (plus an optional mild quadratic term), per eye with its own gain
and offset; lids follow the vertical rotation; head pose is measured with noise; every
feature gets Gaussian noise; blink frames have NaN iris features and the blink flag. Head
pose wanders slowly.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ifllm_lab.gaze.calibration import (
    DEFAULT_KINDS, CalibrationCollector, CalibrationModel, ValidationThresholds, drift_check, fit_calibration,
    list_patterns, load_pattern, precision_rms_s2s, validate,
)
from ifllm_lab.gaze.geometry import ScreenGeometry
from ifllm_lab.session.schema import STREAMS, CalibrationPhase
from ifllm_lab.synthetic.participant import FEATURE_NAMES as NAMES
from ifllm_lab.synthetic.participant import FRAME_HZ as HZ
from ifllm_lab.synthetic.participant import SCREEN
from ifllm_lab.synthetic.participant import SimulatedParticipant as Participant


# ======================================================================================
# Simulated participant
# ======================================================================================

def show_points(p: Participant, pattern, *, outlier_frac: float = 0.0, t0: float = 0.0, seed: int = 0,
                settle_s: float | None = None) -> CalibrationCollector:
    """Show a points pattern at 30 Hz; the eye arrives 150 ms after each target onset.

    With ``outlier_frac`` that fraction of frames (anywhere in the dwell) look at a random
    screen point instead (glances away, anticipation, tracker glitches).
    """
    coll = CalibrationCollector(pattern, SCREEN, settle_s=settle_s)
    targets = pattern.targets_px(SCREEN)
    rng = np.random.default_rng([seed, 9])
    t = t0
    prev = np.array(SCREEN.centre_px)
    for i in pattern.presentation_order(seed):
        onset = t
        for k in range(int(round(pattern.dwell_s * HZ))):
            t = onset + (k + 0.5) / HZ
            p.step()
            gaze = prev if k < 0.15 * HZ else targets[i]
            if outlier_frac and rng.random() < outlier_frac:
                gaze = rng.uniform([0, 0], [SCREEN.width_px, SCREEN.height_px])
            b = p.blink()
            coll.add(t, p.features(*gaze, blink=b), b, True, i, onset)
        prev = targets[i]
        t = onset + pattern.dwell_s
    return coll


def n_coefficients(model: CalibrationModel) -> int:
    """Coefficients per output coordinate (all maps, with intercepts)."""
    return sum(m.coef.shape[0] + 1 for m in model.maps)


# ======================================================================================
# Geometry
# ======================================================================================

def _angle_arccos(screen: ScreenGeometry, p, q) -> float:
    """Independent check: arccos of the normalised dot product of the eye-to-point rays."""
    def ray(pt):
        return np.array([(pt[0] - screen.width_px / 2) * screen.width_mm / screen.width_px,
                         (pt[1] - screen.height_px / 2) * screen.height_mm / screen.height_px,
                         screen.viewing_distance_mm])
    a, b = ray(p), ray(q)
    return math.degrees(math.acos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1)))


def test_one_centimetre_at_sixty_centimetres_is_0955_deg():
    mm = ScreenGeometry(1000, 1000, 1000.0, 1000.0, 600.0)  # 1 px = 1 mm
    centred = mm.deg_between((495, 500), (505, 500))
    from_centre = mm.deg_between((500, 500), (510, 500))
    assert centred == pytest.approx(0.955, abs=5e-4)
    assert from_centre == pytest.approx(0.955, abs=5e-4)
    assert centred == pytest.approx(math.degrees(2 * math.atan(5 / 600)), rel=1e-12)
    assert from_centre == pytest.approx(math.degrees(math.atan(10 / 600)), rel=1e-12)
    assert mm.px_per_degree_at_centre() == pytest.approx(2 * 600 * math.tan(math.radians(0.5)), rel=1e-12)
    assert mm.deg_between((500 - mm.deg_to_px(1.0) / 2, 500), (500 + mm.deg_to_px(1.0) / 2, 500)) == \
        pytest.approx(1.0, rel=1e-12)
    assert float(mm.px_to_deg_at_centre(mm.deg_to_px(2.5))) == pytest.approx(2.5, rel=1e-12)


def test_exact_angle_off_centre_differs_from_small_angle_as_geometry_says():
    c = SCREEN.centre_px
    # on the horizontal midline both rays lie in one plane with the eye: exact = atan difference
    p, q = (0.0, c[1]), (50.0, c[1])
    x1 = (p[0] - c[0]) * SCREEN.mm_per_px_x
    x2 = (q[0] - c[0]) * SCREEN.mm_per_px_x
    d = SCREEN.viewing_distance_mm
    exact = math.degrees(math.atan(x2 / d) - math.atan(x1 / d))
    assert SCREEN.deg_between(p, q) == pytest.approx(exact, rel=1e-12)
    # the small-angle shortcut overstates it by ~1/cos^2 of the eccentricity (~19 % here)
    small = SCREEN.small_angle_deg(p, q)
    ecc = math.atan(((x1 + x2) / 2) / d)
    assert small / SCREEN.deg_between(p, q) == pytest.approx(1 / math.cos(ecc) ** 2, rel=0.01)
    assert small / SCREEN.deg_between(p, q) > 1.15
    # at the centre the two agree closely
    assert SCREEN.small_angle_deg((c[0] - 5, c[1]), (c[0] + 5, c[1])) == \
        pytest.approx(SCREEN.deg_between((c[0] - 5, c[1]), (c[0] + 5, c[1])), rel=1e-4)
    # arbitrary points (a corner and a diagonal step), and vectorised use
    pts = np.array([[0.0, 0.0], [1919.0, 20.0], [300.0, 1000.0], [960.0, 540.0]])
    qs = pts + np.array([35.0, -20.0])
    got = SCREEN.deg_between(pts, qs)
    want = [_angle_arccos(SCREEN, a, b) for a, b in zip(pts, qs)]
    np.testing.assert_allclose(got, want, rtol=1e-7)
    assert SCREEN.deg_between((100, 100), (100, 100)) == 0.0
    with pytest.raises(ValueError):
        ScreenGeometry(1920, 1080, 0.0, 300.0, 600.0)


# ======================================================================================
# Patterns
# ======================================================================================

def test_patterns_load_and_targets_lie_on_screen():
    names = list_patterns()
    for required in ("5-point", "9-point", "13-point", "pursuit-lissajous", "validation-9"):
        assert required in names
    counts = {"5-point": 5, "9-point": 9, "13-point": 13, "validation-9": 9}
    for name in names:
        pat = load_pattern(name)
        assert pat.name == name
        assert 0.0 <= pat.settle_s
        if pat.is_pursuit:
            ts = np.linspace(0, pat.duration_s, 2001)
            xy = pat.position_px_at(ts, SCREEN)
            assert np.all((xy >= 0) & (xy <= [SCREEN.width_px, SCREEN.height_px]))
            assert pat.position_at(0.0) == pytest.approx([0.5, 0.5])  # starts at the centre
            # smooth pursuit works up to ~30 deg/s: the path stays well below that
            speed = SCREEN.deg_between(xy[1:], xy[:-1]) / np.diff(ts)
            assert 5.0 < speed.max() < 20.0
            with pytest.raises(ValueError):
                pat.targets_px(SCREEN)
        else:
            tg = pat.targets_px(SCREEN)
            assert np.all((tg >= 0) & (tg <= [SCREEN.width_px, SCREEN.height_px]))
            assert pat.dwell_s > pat.settle_s
            assert sorted(pat.presentation_order(seed=4)) == list(range(len(tg)))
        if name in counts:
            assert len(pat.points) == counts[name]
    # validation targets are not calibration targets (>= 0.05 screen units from every one)
    val = load_pattern("validation-9").points
    for name in ("5-point", "9-point", "13-point"):
        cal = load_pattern(name).points
        dist = np.linalg.norm(val[:, None, :] - cal[None, :, :], axis=2)
        assert dist.min() >= 0.05 - 1e-12, name
    assert load_pattern("validation-9").purpose == "validation"


@pytest.mark.parametrize("content, message", [
    ('{"name": "x", "kind": "points", "points": [[0.1, 0.1]], "dwell_s": 1.0', "not valid JSON"),
    ('{"name": "x", "kind": "points", "dwell_s": 1.0}', "'points'"),
    ('{"name": "x", "kind": "points", "points": [[1.2, 0.1]], "dwell_s": 1.0}', "outside the screen"),
    ('{"name": "x", "kind": "points", "points": [[0.2, 0.1]], "dwell_s": 0.2}', "settle_s"),
    ('{"name": "x", "kind": "points", "points": [[0.2, 0.1]], "dwell_s": 1, "dwel": 2}', "unknown key"),
    ('{"name": "x", "kind": "spiral"}', "'kind'"),
    ('{"name": "x", "kind": "pursuit", "duration_s": 10, "path": {"ax": 0.6, "ay": 0.1, "fx": 0.1, "fy": 0.1}}',
     "leaves the screen"),
    ('[1, 2]', "JSON object"),
])
def test_bad_pattern_file_raises_value_error_naming_the_file(tmp_path, content, message):
    f = tmp_path / "broken-pattern.json"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as e:
        load_pattern(f)
    assert "broken-pattern.json" in str(e.value)
    assert message in str(e.value)
    with pytest.raises(FileNotFoundError, match="9-point"):
        load_pattern("no-such-pattern")


# ======================================================================================
# Sample collection
# ======================================================================================

def test_collector_drops_settle_blink_and_invalid_frames_and_counts_them():
    pat = load_pattern("9-point")  # dwell 1.5 s, settle 0.3 s
    coll = CalibrationCollector(pat, SCREEN)
    nf = len(NAMES)
    expect = dict(seen=0, kept=0, settle=0, blink=0, invalid=0)
    per_target = {}
    for j, i in enumerate([4, 0, 8]):
        onset = 10.0 + 1.5 * j
        for k in range(45):  # 30 Hz, frame k at onset + (k + 0.5)/30 s
            t = onset + (k + 0.5) / HZ
            blink = k % 7 == 3
            valid = k % 11 != 5
            f = np.full(nf, float(k))
            if k == 20:
                f[2] = np.nan  # a non-finite feature in a "valid" frame
            if blink:
                f[:6] = np.nan
            kept = coll.add(t, f, blink, valid, i, onset)
            expect["seen"] += 1
            # by hand: settle first (k + 0.5 < 9 <=> k <= 8), then blink, then invalid
            if (k + 0.5) / HZ < 0.3:
                reason = "settle"
            elif blink:
                reason = "blink"
            elif not valid or k == 20:
                reason = "invalid"
            else:
                reason = "kept"
            expect[reason] += 1
            assert kept == (reason == "kept")
            if reason == "kept":
                per_target.setdefault(i, []).append(k)
    assert coll.counts.as_dict() == dict(expect, outside=0)
    # settle: 9 frames per target; blinks after settle: k = 10, 17, 24, 31, 38 -> 5 per target
    assert expect["settle"] == 27 and expect["blink"] == 15
    X, Y, g = coll.training_data()
    assert len(X) == expect["kept"] == len(coll)
    assert np.all(np.isfinite(X))
    assert coll.groups == [0, 4, 8]
    for i, ks in per_target.items():
        np.testing.assert_array_equal(coll.features_for(i)[:, 0], ks)  # in time order
        assert coll.target_px(i) == pytest.approx(tuple(pat.targets_px(SCREEN)[i]))
        np.testing.assert_allclose(Y[g == i], np.tile(pat.targets_px(SCREEN)[i], (len(ks), 1)))
    assert coll.onset(0) == 11.5 and math.isnan(coll.onset(1))
    rows = coll.sample_rows(phase=CalibrationPhase.CALIBRATION, run=2)
    assert len(rows) == expect["seen"] and sum(r["used"] for r in rows) == expect["kept"]
    assert set(rows[0]) == set(STREAMS["calibration/samples"].column_names)
    with pytest.raises(ValueError):
        coll.add(20.0, np.zeros(nf), False, True, 9, 19.0)  # no target 9 in a 9-point pattern


def test_pursuit_collector_targets_follow_the_path_with_lag():
    pat = load_pattern("pursuit-lissajous")
    coll = CalibrationCollector(pat, SCREEN)
    onset = 5.0
    ts = onset + np.arange(0, pat.duration_s + 1.0, 1 / HZ)
    for t in ts:
        coll.add(t, np.array([t, 0.0]), False, True, 0, onset)
    X, Y, g = coll.training_data()
    since = X[:, 0] - onset
    assert since.min() >= pat.settle_s and since.max() <= pat.duration_s
    np.testing.assert_allclose(Y, pat.position_px_at(since - pat.lag_s, SCREEN))
    assert coll.counts.settle == int(np.sum(ts - onset < pat.settle_s))
    assert coll.counts.outside == int(np.sum(ts - onset > pat.duration_s))
    assert sorted(set(g.tolist())) == list(range(pat.cv_segments))


# ======================================================================================
# Regression
# ======================================================================================

def _calibrate(p: Participant, *, pattern="9-point", kinds=DEFAULT_KINDS, outlier_frac=0.0, **kw):
    cal = show_points(p, load_pattern(pattern), outlier_frac=outlier_frac)
    X, Y, g = cal.training_data()
    return fit_calibration(X, Y, kinds, feature_names=NAMES, groups=g, screen=SCREEN, **kw), cal


def test_validation_accuracy_is_within_the_bound_derived_from_the_noise():
    seed, quad = 3, 3e-5
    p = Participant(seed, quad=quad)
    model, cal = _calibrate(p)
    val = show_points(p, load_pattern("validation-9"), t0=100.0, seed=1)
    rep = validate(model, val, SCREEN)
    # the model-misfit floor: the same pipeline on the noise-free twin (same head path, blinks)
    p0 = Participant(seed, quad=quad, iris_noise=0.0, pose_noise=0.0)
    model0, _ = _calibrate(p0)
    floor = validate(model0, show_points(p0, load_pattern("validation-9"), t0=100.0, seed=1), SCREEN)
    # statistical part: a validation mean averages m samples (sd / sqrt(m)); the fitted
    # coefficients add ~ sd * sqrt(k / N) (k coefficients, N calibration samples).
    sx, sy = p.per_sample_sd_deg()
    m = min(pt.n_samples for pt in rep.points)
    k, n = n_coefficients(model), len(cal)
    bound = floor.mean_accuracy_deg + 3.0 * math.hypot(sx, sy) * math.sqrt(1.0 / m + k / n)
    print(f"chosen {model.kind}, mean accuracy {rep.mean_accuracy_deg:.3f} deg (floor "
          f"{floor.mean_accuracy_deg:.3f}, bound {bound:.3f}), precision {rep.mean_precision_deg:.3f} deg")
    assert rep.mean_accuracy_deg < bound
    assert rep.mean_accuracy_deg < 0.75  # WebGazer reports ~4 deg, good webcam systems 1.4-2.5
    assert rep.worst_accuracy_deg < 1.5
    assert rep.passed and not rep.reasons
    # precision of raw samples: RMS-S2S = 2 * per-axis sd for white noise, so about 2 * hypot / sqrt 2
    assert rep.mean_precision_deg < 2.0 * math.hypot(sx, sy)
    assert 0 < floor.mean_accuracy_deg < 0.3


def test_poly2_wins_on_a_quadratic_generator_and_cv_picks_it():
    p = Participant(2, quad=1e-4)  # iris offsets clearly quadratic in the eye rotation
    model, _ = _calibrate(p)
    cv = model.cv
    assert cv["poly2-ridge"]["cv_error_px"] < 0.8 * cv["ridge"]["cv_error_px"]
    assert "poly2" in model.kind
    val = show_points(p, load_pattern("validation-9"), t0=100.0, seed=1)
    ridge_only, _ = _calibrate(Participant(2, quad=1e-4), kinds=("ridge",))
    acc_chosen = validate(model, val, SCREEN).mean_accuracy_deg
    acc_ridge = validate(ridge_only, val, SCREEN).mean_accuracy_deg
    print(f"quadratic generator: {model.kind} {acc_chosen:.2f} deg vs ridge {acc_ridge:.2f} deg")
    assert acc_chosen < 0.75 * acc_ridge
    # the same participant without the quadratic term: CV keeps the linear model, which is
    # also the better one on the validation targets
    lin = Participant(2, quad=0.0)
    model_lin, _ = _calibrate(lin)
    val_lin = show_points(lin, load_pattern("validation-9"), t0=100.0, seed=1)
    poly_lin, _ = _calibrate(Participant(2, quad=0.0), kinds=("poly2-ridge",))
    assert "poly2" not in model_lin.kind
    acc_lin = validate(model_lin, val_lin, SCREEN).mean_accuracy_deg
    acc_poly = validate(poly_lin, val_lin, SCREEN).mean_accuracy_deg
    print(f"linear generator: {model_lin.kind} {acc_lin:.2f} deg vs poly2-ridge {acc_poly:.2f} deg")
    assert acc_lin < acc_poly + 0.05


def test_huber_resists_ten_percent_outlier_samples():
    seed = 4
    clean, _ = _calibrate(Participant(seed), kinds=("ridge",))
    ridge, _ = _calibrate(Participant(seed), kinds=("ridge",), outlier_frac=0.10)
    huber, _ = _calibrate(Participant(seed), kinds=("huber",), outlier_frac=0.10)
    chosen, _ = _calibrate(Participant(seed), outlier_frac=0.10)
    # the same validation samples for all (a fresh participant twin walked to the same state)
    pv = Participant(seed)
    show_points(pv, load_pattern("9-point"), outlier_frac=0.10)
    val = show_points(pv, load_pattern("validation-9"), t0=100.0, seed=1)
    acc = {name: validate(m, val, SCREEN).mean_accuracy_deg
           for name, m in [("clean", clean), ("ridge", ridge), ("huber", huber), ("chosen", chosen)]}
    print({k: round(v, 3) for k, v in acc.items()}, chosen.kind, huber.info["robust_weights"])
    assert acc["ridge"] > acc["clean"] + 1.0  # plain least squares is dragged off by > 1 deg
    assert acc["huber"] < acc["clean"] + 0.25  # Huber stays close to the outlier-free fit
    assert "huber" in chosen.kind and acc["chosen"] < acc["clean"] + 0.25
    # the outliers (~10 % of the used samples) are the ones down-weighted below 1/2
    n_low, n = huber.info["robust_weights"]["n_below_half"], huber.info["n_samples"]
    assert 0.05 * n < n_low < 0.15 * n


def test_settle_time_keeps_the_in_flight_frames_out_of_the_fit():
    seed = 6
    with_settle, _ = _calibrate(Participant(seed), kinds=("ridge",))
    pat = load_pattern("9-point")
    cal = show_points(Participant(seed), pat, settle_s=0.0)
    X, Y, g = cal.training_data()
    no_settle = fit_calibration(X, Y, ("ridge",), feature_names=NAMES, groups=g, screen=SCREEN)
    pv = Participant(seed)
    show_points(pv, pat)
    val = show_points(pv, load_pattern("validation-9"), t0=100.0, seed=1)
    a_with = validate(with_settle, val, SCREEN).mean_accuracy_deg
    a_without = validate(no_settle, val, SCREEN).mean_accuracy_deg
    assert a_without > a_with + 0.2, (a_with, a_without)


def test_pursuit_calibration_validates_on_fixed_targets():
    p = Participant(8, quad=3e-5)
    pat = load_pattern("pursuit-lissajous")
    coll = CalibrationCollector(pat, SCREEN)
    onset = 2.0
    for t in onset + np.arange(0, pat.duration_s + 0.5, 1 / HZ):
        p.step()
        b = p.blink()
        eye = pat.position_px_at(t - onset - 0.03, SCREEN)  # the eye trails the target by 30 ms
        coll.add(t, p.features(*eye, blink=b), b, True, 0, onset)
    X, Y, g = coll.training_data()
    model = fit_calibration(X, Y, feature_names=NAMES, groups=g, screen=SCREEN)
    rep = validate(model, show_points(p, load_pattern("validation-9"), t0=100.0, seed=1), SCREEN)
    print(f"pursuit: {len(X)} samples, {model.kind}, accuracy {rep.mean_accuracy_deg:.3f} deg")
    assert rep.mean_accuracy_deg < 0.6 and rep.passed


def test_fit_cross_validates_every_kind_for_nine_points_of_thirty_samples():
    p = Participant(1)
    targets = load_pattern("9-point").targets_px(SCREEN)
    X = np.array([p.features(*tg) for tg in targets for _ in range(30)])
    Y = np.repeat(targets, 30, axis=0)
    model = fit_calibration(X, Y, feature_names=NAMES, screen=SCREEN)  # timed by `ifllm-lab bench analysis`
    assert set(DEFAULT_KINDS) <= set(model.cv)


def test_model_json_round_trip_gives_identical_predictions():
    p = Participant(5, quad=3e-5)
    model, cal = _calibrate(p, outlier_frac=0.05)
    X, _, _ = cal.training_data()
    s = model.to_json()
    d = json.loads(s)  # plain JSON: dicts, lists, numbers, strings
    assert d["kind"] == model.kind and d["space"] == "angle"
    for kind in DEFAULT_KINDS:  # why the kind was chosen travels with the model
        assert "cv_error_px" in d["cv"][kind] and "alpha" in d["cv"][kind]
    assert sum(d["cv"][k]["chosen"] for k in DEFAULT_KINDS) == 1 and d["cv"][model.kind]["chosen"]
    back = CalibrationModel.from_json(s)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    shifted = model.with_offset(12.5, -3.25)
    np.testing.assert_array_equal(CalibrationModel.from_json(shifted.to_json()).predict(X), shifted.predict(X))
    np.testing.assert_allclose(shifted.predict(X) - model.predict(X), np.tile([12.5, -3.25], (len(X), 1)))
    row = model.to_row(12.0, run=1)
    assert set(row) == set(STREAMS["calibration/models"].column_names)
    with pytest.raises(ValueError):
        CalibrationModel.from_json('{"format": "something else"}')


def test_predict_handles_nan_rows_and_named_columns():
    model, cal = _calibrate(Participant(7))
    X, _, _ = cal.training_data()
    X = X[:5].copy()
    X[2, 0] = np.nan
    out = model.predict(X)
    assert np.all(np.isnan(out[2])) and np.all(np.isfinite(np.delete(out, 2, axis=0)))
    perm = np.random.default_rng(0).permutation(len(NAMES))
    np.testing.assert_allclose(model.predict(X[:, perm], feature_names=[NAMES[i] for i in perm]), out)
    with pytest.raises(ValueError):
        model.predict(X[:, :5])
    # without names there are no per-eye kinds; they are recorded as skipped
    cal_x, cal_y, cal_g = cal.training_data()
    anon = fit_calibration(cal_x, cal_y, groups=cal_g)
    assert "skipped" in anon.cv["per-eye-ridge"] and anon.space == "px"
    with pytest.raises(ValueError, match="at least 3 targets"):
        fit_calibration(cal_x[cal_g < 2], cal_y[cal_g < 2], groups=cal_g[cal_g < 2])


# ======================================================================================
# Validation report
# ======================================================================================

def test_validation_report_numbers_equal_hand_computed_ones():
    rng = np.random.default_rng(11)
    targets = load_pattern("validation-9").targets_px(SCREEN)
    ests = [t + rng.normal([10.0 * i, -4.0], 15.0, (20 + i, 2)) for i, t in enumerate(targets)]
    ests[3][5] = np.nan  # non-finite estimates are skipped
    onsets = [100.0 + 1.5 * i for i in range(9)]
    th = ValidationThresholds(max_mean_deg=1.5, max_point_deg=2.5)
    rep = validate(ests, None, SCREEN, targets=targets, thresholds=th, onsets=onsets)
    acc_deg = []
    for i, (pt, e, t) in enumerate(zip(rep.points, ests, targets)):
        e = e[np.all(np.isfinite(e), axis=1)]
        mx, my = sum(e[:, 0]) / len(e), sum(e[:, 1]) / len(e)
        acc = math.sqrt((mx - t[0]) ** 2 + (my - t[1]) ** 2)
        steps = [(e[j + 1, 0] - e[j, 0]) ** 2 + (e[j + 1, 1] - e[j, 1]) ** 2 for j in range(len(e) - 1)]
        prec = math.sqrt(sum(steps) / len(steps))
        a_deg = _angle_arccos(SCREEN, (mx, my), t)
        p_deg = math.sqrt(sum(_angle_arccos(SCREEN, e[j], e[j + 1]) ** 2 for j in range(len(e) - 1)) / (len(e) - 1))
        assert pt.n_samples == len(e) == 20 + i - (i == 3)
        assert pt.mean == pytest.approx((mx, my), rel=1e-12)
        assert pt.accuracy_px == pytest.approx(acc, rel=1e-9)
        assert pt.precision_px == pytest.approx(prec, rel=1e-9)
        assert pt.accuracy_deg == pytest.approx(a_deg, rel=1e-6)
        assert pt.precision_deg == pytest.approx(p_deg, rel=1e-6)
        assert precision_rms_s2s(e) == pytest.approx(prec, rel=1e-12)
        acc_deg.append(a_deg)
    assert rep.mean_accuracy_deg == pytest.approx(sum(acc_deg) / 9, rel=1e-6)
    assert rep.mean_accuracy_px == pytest.approx(np.mean([p.accuracy_px for p in rep.points]), rel=1e-12)
    assert rep.worst_point == int(np.argmax(acc_deg))
    assert rep.worst_accuracy_deg == pytest.approx(max(acc_deg), rel=1e-6)
    # pass / fail against the thresholds, by hand
    should_pass = sum(acc_deg) / 9 <= 1.5 and max(acc_deg) <= 2.5
    assert rep.passed == should_pass
    strict = validate(ests, None, SCREEN, targets=targets, onsets=onsets,
                      thresholds=ValidationThresholds(max_mean_deg=0.01, max_point_deg=max(acc_deg) - 1e-6))
    assert not strict.passed and len(strict.reasons) == 2
    assert any(f"point {int(np.argmax(acc_deg))}" in r for r in strict.reasons)
    # rows for the session's calibration/points stream
    rows = rep.to_rows(run=3)
    assert [list(r) for r in rows] == [list(STREAMS["calibration/points"].column_names)] * 9
    assert rows[4]["t"] == onsets[4] and rows[4]["phase"] == CalibrationPhase.VALIDATION and rows[4]["run"] == 3
    assert rows[4]["accuracy_deg"] == rep.points[4].accuracy_deg and rows[4]["n_samples"] == rep.points[4].n_samples
    # a shuffled pattern: the rows follow the order the targets were shown, each keeps its point
    shown = [5, 2, 8, 0, 7, 1, 4, 6, 3]
    shuffled_onsets = [0.0] * 9
    for k, i in enumerate(shown):
        shuffled_onsets[i] = 10.0 + 2.0 * k
    shuffled = validate(ests, None, SCREEN, targets=targets, onsets=shuffled_onsets).to_rows()
    assert [r["point"] for r in shuffled] == shown
    assert all(np.diff([r["t"] for r in shuffled]) > 0)
    # a target without samples fails the report
    ests[6] = np.zeros((0, 2))
    empty = validate(ests, None, SCREEN, targets=targets)
    assert not empty.passed and empty.points[6].n_samples == 0 and math.isfinite(empty.mean_accuracy_deg)


# ======================================================================================
# Drift check
# ======================================================================================

def test_drift_check_actions_at_the_thresholds():
    c = SCREEN.centre_px
    d = SCREEN.viewing_distance_mm

    def estimates_at(deg: float) -> np.ndarray:
        # mean estimate exactly `deg` to the right of the centre target (+ zero-mean jitter)
        dx = math.tan(math.radians(deg)) * d / SCREEN.mm_per_px_x
        jitter = np.array([[-3.0, 2.0], [3.0, -2.0], [0.0, 0.0]])
        return np.array([c[0] + dx, c[1]]) + jitter

    for deg, action in [(0.5, "none"), (0.999, "none"), (1.001, "correct"), (1.999, "correct"),
                        (2.001, "recalibrate"), (4.0, "recalibrate")]:
        r = drift_check(estimates_at(deg), c, None, SCREEN)
        assert r.action == action, (deg, r)
        assert r.offset_deg == pytest.approx(deg, rel=1e-9)
        assert r.offset_px[1] == pytest.approx(0.0, abs=1e-9) and r.offset_px[0] < 0
    assert drift_check(estimates_at(1.5), c, None, SCREEN, small_deg=2.0, large_deg=3.0).action == "none"
    with pytest.raises(ValueError):
        drift_check(np.array([[1.0, 2.0], [np.nan, 1.0]]), c, None, SCREEN)

    # with a model: the eye-corner landmarks slip after calibration (iris offsets shift)
    p = Participant(9)
    model, _ = _calibrate(p)
    target = (SCREEN.width_px * 0.5, SCREEN.height_px * 0.5)
    actions = {}
    for shift in (0.0, 0.0105, 0.03):  # eye widths: ~0, ~1.5 and ~4.4 deg of eye rotation
        p.U0 = Participant.U0 + shift
        feats = np.array([p.features(*target) for _ in range(30)])
        r = drift_check(feats, target, model, SCREEN)
        assert r.n_samples == 30
        actions[shift] = r.action
        if r.action == "correct":
            fixed = r.apply(model)
            again = drift_check(feats, target, fixed, SCREEN)
            assert again.offset_deg < 1e-6 and again.action == "none"
            assert fixed.offset == pytest.approx(np.array(r.offset_px))
        else:
            assert r.apply(model) is model
    assert actions == {0.0: "none", 0.0105: "correct", 0.03: "recalibrate"}
