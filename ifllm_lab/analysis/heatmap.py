"""Gaze and fixation heat maps, and scanpaths for drawing.

Plain numpy (OpenCV's Gaussian blur when it is installed, SciPy's otherwise), no Qt.

:func:`heatmap` is a Gaussian kernel density estimate on a downsampled grid: the points'
weights are binned into a 2-D histogram of ``scale`` times the screen's resolution, which is
blurred with a separable Gaussian of ``sigma_px * scale`` cells. Kernel mass that would fall
off the screen is folded back in at the edge (the reflection of the kernel), so the map
always sums to the total weight of the points on screen -- weights are s of dwell when
the weights are fixation durations, sample counts without weights. Points off screen (or
NaN) are left out. A typical ``sigma_px`` is one degree of visual angle in px (about 40 px
at 60 cm on a 24" 1080p screen; ``ScreenGeometry`` converts), or the session's validation
error.

:func:`scanpath` gives what a scanpath drawing needs: the fixations in order, numbered,
joined by a polyline, with circle radii proportional to the square root of the duration
(so that the circle's *area* is proportional to the time).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["heatmap", "scanpath"]


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with zero borders (the image is padded by the caller)."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - OpenCV is a dependency; SciPy as a fallback
        from scipy.ndimage import gaussian_filter

        return gaussian_filter(img, sigma, mode="constant", cval=0.0, truncate=4.0).astype(np.float32)
    r = int(math.ceil(4.0 * sigma))
    k = 2 * r + 1
    return cv2.GaussianBlur(img, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)


def _fold(p: np.ndarray, m: int, axis: int) -> np.ndarray:
    """Add the ``m``-wide margins of ``p`` along ``axis`` back onto the inside, mirrored at
    the edges, and return the inside."""
    p = np.moveaxis(p, axis, 0)
    n = p.shape[0] - 2 * m
    inside = p[m:m + n].copy()
    top = p[:m][::-1]  # ordered by distance from the edge: the row just outside first,
    bottom = p[m + n:]  # which lands on the row just inside
    # margins wider than the inside fold back and forth (a zig-zag over the inside)
    for block, start_at_top in ((top, True), (bottom, False)):
        i = 0
        forward = start_at_top
        while i < len(block):
            take = min(n, len(block) - i)
            chunk = block[i:i + take]
            if forward:
                inside[:take] += chunk
            else:
                inside[n - take:] += chunk[::-1]
            i += take
            forward = not forward
    return np.moveaxis(inside, 0, axis)


def heatmap(x, y, *, width: int, height: int, sigma_px: float, weights=None, scale: float = 0.25) -> np.ndarray:
    """Gaussian kernel density of points on a grid of ``scale`` times the screen size.

    ``x``, ``y``: screen px; ``width``, ``height``: the screen (px); ``sigma_px``: the
    kernel's standard deviation in screen px; ``weights``: one per point (default 1).
    Returns a float32 array of shape ``(round(height * scale), round(width * scale))``;
    cell ``[i, j]`` covers screen px ``[j / scale, (j + 1) / scale) x [i / scale, ...)``
    and holds the weight that falls on it, so the map sums to the total weight of the
    points on screen (divide by ``1 / scale**2`` for weight per px^2)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"heatmap: screen size must be positive, got {width} x {height}")
    if not scale > 0:
        raise ValueError(f"heatmap: scale must be positive, got {scale}")
    gw = max(1, int(round(width * scale)))
    gh = max(1, int(round(height * scale)))
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(x) != len(y):
        raise ValueError("heatmap: x and y differ in length")
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != len(x):
        raise ValueError("heatmap: weights and points differ in length")
    sx, sy = gw / float(width), gh / float(height)
    with np.errstate(invalid="ignore"):
        ix = np.floor(x * sx)
        iy = np.floor(y * sy)
    ok = np.isfinite(ix) & np.isfinite(iy) & np.isfinite(w) & (ix >= 0) & (ix < gw) & (iy >= 0) & (iy < gh)
    hist = np.bincount((iy[ok] * gw + ix[ok]).astype(np.int64), weights=w[ok], minlength=gw * gh)
    hist = hist.reshape(gh, gw).astype(np.float32)
    sigma = float(sigma_px) * 0.5 * (sx + sy)
    if not sigma > 0.0 or not ok.any():
        return hist
    m = int(math.ceil(4.0 * sigma))
    padded = np.zeros((gh + 2 * m, gw + 2 * m), dtype=np.float32)
    padded[m:m + gh, m:m + gw] = hist
    blurred = _blur(padded, sigma)
    out = _fold(_fold(blurred, m, 0), m, 1)
    return np.ascontiguousarray(out, dtype=np.float32)


def scanpath(onset, duration, x, y, *, radius_px: float = 12.0, ref_s: float = 0.25) -> dict[str, np.ndarray]:
    """What a scanpath drawing needs, fixations in onset order (NaN positions left out).

    Returns ``order`` (1, 2, ... as drawn next to each circle), ``onset``, ``duration``,
    ``x``, ``y`` (the polyline's points, screen px), ``radius`` (px: ``radius_px`` for a
    fixation of ``ref_s`` seconds, proportional to the square root of the duration) and
    ``segments`` (``(n - 1, 4)``: x0, y0, x1, y1 of each saccade line)."""
    onset = np.asarray(onset, dtype=np.float64).reshape(-1)
    duration = np.asarray(duration, dtype=np.float64).reshape(-1)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if not (len(onset) == len(duration) == len(x) == len(y)):
        raise ValueError("scanpath: arrays differ in length")
    keep = np.isfinite(onset) & np.isfinite(x) & np.isfinite(y)
    o = np.flatnonzero(keep)
    o = o[np.argsort(onset[o], kind="stable")]
    d = np.clip(np.nan_to_num(duration[o], nan=0.0), 0.0, None)
    radius = radius_px * np.sqrt(d / ref_s) if ref_s > 0 else np.full(len(o), radius_px)
    xs, ys = x[o], y[o]
    seg = np.stack([xs[:-1], ys[:-1], xs[1:], ys[1:]], axis=1) if len(o) > 1 else np.zeros((0, 4))
    return {
        "order": np.arange(1, len(o) + 1),
        "onset": onset[o],
        "duration": duration[o],
        "x": xs,
        "y": ys,
        "radius": radius,
        "segments": seg,
    }
