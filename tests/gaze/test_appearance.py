"""Head-normalised appearance features (EyeAppearance) on the rendered real face.

Real MediaPipe FaceLandmarker (VIDEO mode) on frames of a real face photo whose irises
are re-drawn at known positions (:mod:`ifllm_lab.synthetic.face`), no mocks. The
calibration protocol is the one of the gaze fixture: 9 calibration targets and 8 other
validation targets, 15 frames each, with head jitter (shift N(0, 2 px), rotation
N(0, 0.7 deg)); accuracy in degrees of visual angle at 600 mm on a 531 mm / 1920 px
screen.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from ifllm_lab.gaze.appearance import FEATURE_NAMES, EyeAppearance
from ifllm_lab.gaze.landmarks import FaceLandmarker
from ifllm_lab.synthetic.face import FaceRenderer, GazeScene

SCREEN_W, SCREEN_H = 1920, 1080
MM_PER_PX = 531.0 / SCREEN_W
DISTANCE_MM = 600.0
CAL = [(x, y) for y in (0.1, 0.5, 0.9) for x in (0.1, 0.5, 0.9)]
VAL = [(x, y) for y in (0.3, 0.7) for x in (0.2, 0.4, 0.6, 0.8)]
FRAMES = 15


def degrees(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Angular distance (deg) between screen points p and q (px), viewed from 600 mm."""
    d_mm = np.linalg.norm((np.asarray(p, float) - np.asarray(q, float)) * MM_PER_PX, axis=-1)
    return np.degrees(np.arctan(d_mm / DISTANCE_MM))


@pytest.fixture(scope="module")
def renderer() -> FaceRenderer:
    return FaceRenderer()


def _record(renderer, extractors, targets, rng, shift_px=2.0, rot_deg=0.7):
    """Render the targets with head jitter, detect landmarks and extract with every extractor.

    Returns {name: (vectors or None list, targets (N, 2) px, times s)}.
    """
    scene = GazeScene()
    out = {name: ([], [], []) for name in extractors}
    with FaceLandmarker(video=True) as lm:
        t = 0.0
        for x, y in targets:
            tx, ty = x * SCREEN_W, y * SCREEN_H
            du, dv = scene.shift_for(tx, ty)
            for _ in range(FRAMES):
                t += 1 / 30
                img = renderer.render(du, dv, head_dx=rng.normal(0, shift_px), head_dy=rng.normal(0, shift_px),
                                      head_rot_deg=rng.normal(0, rot_deg))
                face = lm.detect(img, t)
                assert face is not None, "the landmarker lost the rendered face"
                for name, ex in extractors.items():
                    t0 = time.perf_counter()
                    v = ex.extract(img, face)
                    out[name][2].append(time.perf_counter() - t0)
                    out[name][0].append(v)
                    out[name][1].append((tx, ty))
    return {k: (v[0], np.array(v[1]), np.array(v[2])) for k, v in out.items()}


@pytest.fixture(scope="module")
def protocol(renderer):
    """Calibration and validation features, with and without image registration."""
    extractors = {"kept": EyeAppearance(), "no_registration": EyeAppearance(register=False)}
    rng = np.random.default_rng(1)
    cal = _record(renderer, extractors, CAL, rng)
    val = _record(renderer, extractors, VAL, rng)
    return cal, val


def _stack(rec):
    vectors, targets, _ = rec
    ok = [v is not None for v in vectors]
    return np.array([v for v in vectors if v is not None]), targets[ok]


def test_vector_has_fixed_length_is_finite_and_in_the_canonical_frame(protocol, renderer):
    cal, val = protocol
    ea = EyeAppearance()
    assert ea.names == FEATURE_NAMES and len(ea.names) == 4
    for rec in (cal["kept"], val["kept"]):
        vectors = rec[0]
        assert all(v is not None for v in vectors), "open eyes in frame: every frame must give features"
        for v in vectors:
            assert v.shape == (4,) and v.dtype == np.float64 and np.all(np.isfinite(v))
    X, T = _stack(cal["kept"])
    centre = X[(T == (0.5 * SCREEN_W, 0.5 * SCREEN_H)).all(1)].mean(0)
    # right eye near (-0.5, 0), left eye near (+0.5, 0) IOD units
    assert -0.6 < centre[0] < -0.4 and 0.4 < centre[2] < 0.6
    assert abs(centre[1]) < 0.1 and abs(centre[3]) < 0.1
    # a target further right on the screen moves the irises to image right (x up), lower: y up
    left = X[(T[:, 0] == 0.1 * SCREEN_W)].mean(0)
    right = X[(T[:, 0] == 0.9 * SCREEN_W)].mean(0)
    top = X[(T[:, 1] == 0.1 * SCREEN_H)].mean(0)
    bottom = X[(T[:, 1] == 0.9 * SCREEN_H)].mean(0)
    assert right[0] - left[0] > 0.05 and right[2] - left[2] > 0.05
    assert bottom[1] - top[1] > 0.02 and bottom[3] - top[3] > 0.02

    # optional pixel features: fixed length matching the names
    with FaceLandmarker(video=False) as lm:
        img = renderer.render(0.02, -0.01)
        face = lm.detect(img)
    px = EyeAppearance(pixel_size=(8, 4))
    v = px.extract(img, face)
    assert v is not None and v.shape == (4 + 2 * 32,) and len(px.names) == v.size and np.all(np.isfinite(v))


def _spread_ratio(rec) -> float:
    """Within-target feature spread (mean std) over the smallest between-target distance."""
    X, T = _stack(rec)
    targets = np.unique(T, axis=0)
    means = np.array([X[(T == t).all(1)].mean(0) for t in targets])
    within = np.mean([X[(T == t).all(1)].std(0).mean() for t in targets])
    d = np.linalg.norm(means[:, None] - means[None], axis=-1)
    between = d[np.triu_indices(len(targets), 1)].min()
    return float(within / between)


def test_features_are_invariant_to_head_shift_and_rotation(protocol):
    _, val = protocol
    # measured: 0.002 with registration; 0.42 from the landmark similarity alone
    assert _spread_ratio(val["kept"]) < 0.05
    # the check can fail: without the image registration the jitter is not removed
    assert _spread_ratio(val["no_registration"]) > 0.15


def _accuracy(cal, val):
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import StandardScaler

    Xc, Tc = _stack(cal)
    Xv, Tv = _stack(val)
    scaler = StandardScaler().fit(Xc)
    model = RidgeCV(alphas=np.logspace(-4, 2, 20)).fit(scaler.transform(Xc), Tc)
    P = model.predict(scaler.transform(Xv))
    per_point = [degrees(P[(Tv == t).all(1)].mean(0), t) for t in np.unique(Tv, axis=0)]
    return float(degrees(P, Tv).mean()), float(np.mean(per_point)), float(np.max(per_point))


def test_calibrated_point_accuracy_is_under_one_degree(protocol):
    cal, val = protocol
    sample, mean_point, max_point = _accuracy(cal["kept"], val["kept"])
    # measured on this fixture: sample 0.24, point accuracy mean 0.24, max 0.45 deg
    assert mean_point < 0.35, (sample, mean_point, max_point)
    assert max_point < 0.7, (sample, mean_point, max_point)
    assert sample < 0.4, (sample, mean_point, max_point)
    # the same iris localisation without the head registration is much worse (measured 1.2)
    _, mean_unreg, _ = _accuracy(cal["no_registration"], val["no_registration"])
    assert mean_unreg > 2 * mean_point


def test_per_frame_cost_is_small(protocol):
    cal, val = protocol
    times = np.r_[cal["kept"][2], val["kept"][2]][1:]  # the first call also builds the template
    # measured: median 0.47 ms on a 2-core desktop VM; generous bound for loaded CI machines
    assert np.median(times) < 3e-3


def test_blink_is_rejected_and_reset_forgets_the_template(renderer):
    ea = EyeAppearance()
    with FaceLandmarker(video=True) as lm:
        closed = renderer.render(0.0, 0.0, blink=True)
        face = lm.detect(closed, 0.033)
        assert ea.extract(closed, face) is None and not ea.has_template  # no template from closed eyes
        frames = []
        for i, kw in enumerate([{}, {"blink": True}, {}]):
            img = renderer.render(0.05, 0.02, head_dx=1.5, head_rot_deg=0.5, **kw)
            frames.append((img, lm.detect(img, 0.066 + i / 30)))
    first = ea.extract(*frames[0])
    assert first is not None and ea.has_template
    assert ea.extract(*frames[1]) is None  # blink: the iris does not match its template
    again = ea.extract(*frames[2])
    assert again is not None and np.allclose(first, again, atol=2e-3)
    ea.reset()
    assert not ea.has_template and ea.transform is None
    fresh = ea.extract(*frames[2])
    assert fresh is not None and ea.has_template
    # the new template is this frame itself: its irises sit where MediaPipe put them
    assert np.allclose(fresh, again, atol=0.05)
