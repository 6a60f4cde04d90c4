"""Head-normalised, image-refined iris positions (appearance features for gaze regression).

The landmark features of :mod:`.features` locate the irises with MediaPipe's iris
points. Those are a few pixels off and, in VIDEO mode, smoothed over time, so with a
moving head they lag the image by up to about half of the motion. For sub-degree
calibrated gaze this module measures the same quantities from the pixels:

1. **Head normalisation.** A similarity transform (rotation, scale, translation) from
   stable face landmarks (eye corners, nose bridge and tip, forehead, temples, cheeks;
   no lids, irises or mouth) to a template gives an initial *image -> canonical* map.
   It is then refined by registering a grey-level *periocular strip* (brows, nose
   bridge, skin around the eyes; the eye openings and a margin for the lids are masked
   out) to the template's strip with inverse-compositional Lucas-Kanade (similarity
   warp, invariant to brightness and contrast changes).
2. **Iris localisation.** In each eye's normalised patch the iris is found by
   normalised cross-correlation with the template's own iris disc, then refined to
   sub-pixel precision with translational Lucas-Kanade on the disc (masked to the
   iris, so lids and sclera around it do not pull it).

The template (periocular strip, iris discs, landmark shape) is taken from the first
face seen with open eyes after construction or :meth:`EyeAppearance.reset`; call
``reset()`` when the participant or the camera changes, before calibrating.

Canonical frame (all output coordinates):
    origin at the midpoint between the two eye centres of the template face (an eye
    centre is the midpoint of the eye's two corner landmarks); x axis from the
    subject's right eye centre (image left in an unmirrored picture) towards the left
    eye centre; y axis perpendicular, pointing down in the image; unit = the
    template's inter-ocular distance (IOD, eye centre to eye centre). The right eye
    centre is at about (-0.5, 0) and the left at (+0.5, 0). One unit is ~60-65 mm on
    an adult face, so 0.001 IOD is ~0.06 mm; over a 24-inch screen at 60 cm the irises
    move by roughly 0.15 IOD horizontally and 0.06 IOD vertically (the ranges of
    :class:`ifllm_lab.synthetic.face.GazeScene`), i.e. ~0.003 IOD horizontally and ~0.002 IOD
    vertically per degree of gaze: sub-degree gaze needs iris positions to a few
    hundredths of a pixel on average, hence the image-based refinement.

Feature vector (:attr:`EyeAppearance.names`, float64, canonical units):
    ``right_iris_x, right_iris_y, left_iris_x, left_iris_y`` - iris centres in the
    canonical frame; optionally followed by the pixels of each normalised eye patch
    resampled to ``pixel_size`` and standardised (zero mean, unit variance per eye;
    unitless) when ``pixel_size`` is given.

The features are per frame (no temporal filtering); average predictions, not
features, when a fixation estimate is needed. Cost per frame, independent of the frame
size (all sampling is at a fixed canonical resolution): ~0.4 ms on one core of a 2-core
desktop VM, ~0.7 ms when run right after the landmarker (cold caches); the landmarker
itself takes ~8 ms there.

Assumptions and limits: the iris template includes the corneal reflection and the
iris texture as seen on the template frame, and the registration strip assumes the
periocular region moves rigidly in the image (head rotations of a few degrees; larger
turns change its 2-D appearance - re-take the template with :meth:`reset`). Lids
that move with vertical gaze are excluded from the registration by ``lid_margin``;
they still occlude the iris, which compresses the vertical response near the lids
(monotonic, absorbed by the calibration regression).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .features import BLINK_OPENNESS, LEFT_EYE, LEFT_EYE_CONTOUR, RIGHT_EYE, RIGHT_EYE_CONTOUR, eye_features
from .landmarks import FaceResult

# Face mesh points that move rigidly with the head (no lids, irises, brows or mouth):
# nose bridge and tip, eye corners, forehead midline, temples, cheekbones, nostrils.
STABLE_LANDMARKS = (6, 168, 197, 195, 5, 4, 33, 133, 263, 362, 10, 151, 9, 8, 127, 356, 234, 454,
                    116, 345, 122, 351, 1, 2, 98, 327)

FEATURE_NAMES = ("right_iris_x", "right_iris_y", "left_iris_x", "left_iris_y")

_EYES = ((RIGHT_EYE, RIGHT_EYE_CONTOUR), (LEFT_EYE, LEFT_EYE_CONTOUR))  # image left, image right


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2-D similarity mapping ``src`` (N, 2) onto ``dst`` (N, 2), as 3x3."""
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    den = max(float((s * s).sum()), 1e-12)
    a = float((s * d).sum()) / den  # scale * cos(angle)
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / den  # scale * sin(angle)
    return np.array([[a, -b, md[0] - a * ms[0] + b * ms[1]], [b, a, md[1] - b * ms[0] - a * ms[1]], [0.0, 0.0, 1.0]])


def _inv_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 3x3 affine matrix (last row 0, 0, 1)."""
    (a, b, tx), (c, d, ty) = m[:2].tolist()  # plain floats: this runs several times per frame
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return np.array([[ia, ib, -(ia * tx + ib * ty)], [ic, id_, -(ic * tx + id_ * ty)], [0.0, 0.0, 1.0]])


def _peak_offset(lo: float, mid: float, hi: float) -> float:
    """Sub-sample offset (-0.5..0.5) of a parabola's vertex through three samples."""
    den = float(lo) - 2.0 * float(mid) + float(hi)
    return min(0.5, max(-0.5, 0.5 * (float(lo) - float(hi)) / den)) if den < 0 else 0.0


def _box_map(res: float, x0: float, y0: float) -> np.ndarray:
    """3x3 map canonical -> pixel grid with ``res`` px per IOD and (x0, y0) at pixel 0."""
    return np.array([[res, 0.0, -x0 * res], [0.0, res, -y0 * res], [0.0, 0.0, 1.0]])


class _LucasKanade:
    """Masked inverse-compositional Lucas-Kanade on a fixed template.

    ``dof=4``: similarity warp (scale/rotation/translation); ``dof=2``: translation.
    The steepest-descent images are projected orthogonally to a constant and to the
    template, so the estimate is invariant to affine brightness changes (gain/offset).
    """

    def __init__(self, template: np.ndarray, mask: np.ndarray, dof: int):
        t = template.astype(np.float32)
        h, w = t.shape
        self.size = (w, h)
        self.dof = dof
        m = (mask > 0).astype(np.float32)
        kern = np.array([[-0.5, 0.0, 0.5]], np.float32)  # central differences, px^-1
        gx = cv2.filter2D(t, cv2.CV_32F, kern, borderType=cv2.BORDER_REPLICATE)
        gy = cv2.filter2D(t, cv2.CV_32F, kern.T, borderType=cv2.BORDER_REPLICATE)
        self.centre = ((w - 1) / 2.0, (h - 1) / 2.0)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        xx -= self.centre[0]
        yy -= self.centre[1]
        if dof == 4:
            cols = [gx * xx + gy * yy, gy * xx - gx * yy, gx, gy]
        else:
            cols = [gx, gy]
        sd = np.stack([c.ravel() for c in cols], 1).astype(np.float64) * m.ravel()[:, None]
        # project out span{1, T} on the mask (photometric invariance)
        tm = t.ravel().astype(np.float64) * m.ravel()
        b = np.stack([m.ravel().astype(np.float64), tm], 1)
        sd -= b @ np.linalg.lstsq(b, sd, rcond=None)[0]
        hess = sd.T @ sd
        self.ok = bool(np.linalg.cond(hess) < 1e8)
        k = np.linalg.solve(hess, sd.T) if self.ok else np.zeros_like(sd.T)
        tz = (tm - tm[m.ravel() > 0].mean()) * m.ravel()  # zero-mean template on the mask
        g = tz / max(float(tz @ tz), 1e-12)  # gain estimate: g @ I
        self.rows = np.vstack([k, g[None]]).astype(np.float32)
        # NCC over the mask with dense dot products (no gathering of the masked pixels):
        # ncc = (t0 . v) / sqrt(m . v^2 - (m . v)^2 / n), t0 the zero-mean unit template on the mask
        self._m = m.ravel().astype(np.float32)
        self._n = float(self._m.sum())
        tzm = tz[self._m > 0]
        self._t0 = (tz / max(float(np.linalg.norm(tzm)), 1e-12)).astype(np.float32)
        self._last: np.ndarray | None = None
        c = np.eye(3)
        c[:2, 2] = self.centre
        self._c, self._ci = c, np.linalg.inv(c)

    def align(self, gray: np.ndarray, warp: np.ndarray, iters: int, eps: float) -> tuple[np.ndarray, int]:
        """Refine ``warp`` (3x3, gray px -> template px); returns (warp, iterations)."""
        for k in range(iters):
            img = cv2.warpAffine(gray, warp[:2], self.size, flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
            self._last = img
            r = self.rows @ img.reshape(-1)
            gain = float(r[-1])
            if not gain > 0.2:  # contrast reversed or gone: not the template's texture
                return warp, -1
            dp = (r[:-1] / gain).tolist()
            # inverse-compositional update: warp = C @ W(dp) @ C^-1 @ warp, C the shift to the
            # template centre; written out, as these 3x3 products run several times a frame
            if self.dof == 4:
                a, b, tx, ty = dp
                cx, cy = self.centre
                m = np.array([[1.0 + a, -b, tx - a * cx + b * cy],
                              [b, 1.0 + a, ty - b * cx - a * cy],
                              [0.0, 0.0, 1.0]])
                warp = m @ warp
            else:
                warp = warp.copy()
                warp[0] += dp[0] * warp[2]
                warp[1] += dp[1] * warp[2]
            if abs(dp[-2]) < eps and abs(dp[-1]) < eps:
                return warp, k + 1
        return warp, iters

    def last_ncc(self) -> float:
        """Normalised cross-correlation (-1..1) over the mask between the template and the
        image as sampled in the last iteration of :meth:`align`."""
        if self._last is None:
            return float("nan")
        v = self._last.reshape(-1)
        s1 = float(self._m @ v)
        ss = float(self._m @ (v * v)) - s1 * s1 / self._n
        return float(self._t0 @ v) / math.sqrt(ss) if ss > 1e-12 else 0.0


class EyeAppearance:
    """Per-frame iris positions in a head-normalised canonical frame (see module doc).

    Args:
        patch_size: (w, h) px of each eye's normalised patch, in which the iris is
            located; it spans ``eye_extent`` canonical units, so the sampling
            resolution is ``patch_size[0] / eye_extent[0]`` px per IOD (default 144,
            about the native resolution of a face filling half of a 640 px frame;
            smaller faces are upsampled, which costs nothing extra).
        eye_extent: (w, h) of each eye patch, IOD units, centred on the template's eye.
        register: refine the landmark similarity by image registration (strongly
            recommended: MediaPipe's VIDEO-mode landmarks lag head motion).
        strip_res: px per IOD of the periocular registration strip (it spans x in
            [-0.95, 0.95], y in [-0.5, 0.35] IOD).
        lid_margin: margin (IOD) around the eye openings excluded from registration,
            so that lid motion (which follows vertical gaze) does not move the frame.
        min_score: the normalised cross-correlation of each iris with the template
            disc (-1..1) below which the frame is rejected (blink, occlusion).
        pixel_size: (w, h) to append each eye patch resampled to that size and
            standardised (WebGazer-style pixel features); None for iris positions only.
    """

    STRIP_BOX = (-0.95, 0.95, -0.5, 0.35)

    def __init__(self, patch_size: tuple[int, int] = (72, 50), *, eye_extent: tuple[float, float] = (0.5, 0.35),
                 register: bool = True, strip_res: float = 64.0, lid_margin: float = 0.05,
                 min_score: float = 0.6, pixel_size: tuple[int, int] | None = None,
                 reg_iters: int = 10, iris_iters: int = 10):
        self.patch_size = (int(patch_size[0]), int(patch_size[1]))
        self.eye_extent = (float(eye_extent[0]), float(eye_extent[1]))
        self.eye_res = self.patch_size[0] / self.eye_extent[0]
        self.register = register
        self.strip_res = float(strip_res)
        self.lid_margin = float(lid_margin)
        self.min_score = float(min_score)
        self.pixel_size = None if pixel_size is None else (int(pixel_size[0]), int(pixel_size[1]))
        self.reg_iters = int(reg_iters)
        self.iris_iters = int(iris_iters)
        names = list(FEATURE_NAMES)
        if self.pixel_size:
            for side in ("right", "left"):
                names += [f"{side}_px_{r}_{c}" for r in range(self.pixel_size[1]) for c in range(self.pixel_size[0])]
        self.names: tuple[str, ...] = tuple(names)
        self._stable = np.array(STABLE_LANDMARKS)
        x0, x1, y0, y1 = self.STRIP_BOX
        pad = 0.15  # IOD; covers what registration can move the strip by
        self._strip_corners = np.array([[x0 - pad, y0 - pad], [x1 + pad, y0 - pad], [x0 - pad, y1 + pad],
                                        [x1 + pad, y1 + pad]])
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget the template; the next open-eyed face seen becomes the new one."""
        self._tmpl = None
        self.transform: np.ndarray | None = None  # last image -> canonical map (2x3)
        self.scores: tuple[float, float] | None = None  # last iris NCC scores (right, left)

    @property
    def has_template(self) -> bool:
        return self._tmpl is not None

    # ------------------------------------------------------------------ helpers
    def _crop_gray(self, image: np.ndarray, to_canon: np.ndarray):
        """Grey float32 crop of the image under the registration strip (with a margin).

        Returns (gray, off, clipped): ``off`` maps image px -> crop px (3x3), ``clipped``
        tells that the region reached past the frame edge; (None, None, True) when
        almost nothing of it is inside the frame.
        """
        inv = _inv_affine(to_canon)
        pts = self._strip_corners @ inv[:2, :2].T + inv[:2, 2]
        h, w = image.shape[:2]
        ax0, ay0 = np.floor(pts.min(0)).astype(int)
        ax1, ay1 = np.ceil(pts.max(0)).astype(int) + 1
        clipped = ax0 < 0 or ay0 < 0 or ax1 > w or ay1 > h
        if clipped:
            ax0, ay0, ax1, ay1 = max(ax0, 0), max(ay0, 0), min(ax1, w), min(ay1, h)
            if ax1 - ax0 < 8 or ay1 - ay0 < 8:
                return None, None, True
        crop = image[ay0:ay1, ax0:ax1]
        gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
        off = np.array([[1.0, 0.0, -ax0], [0.0, 1.0, -ay0], [0.0, 0.0, 1.0]])
        return gray.astype(np.float32), off, clipped

    def _eyes_inside(self, to_canon: np.ndarray, image_size: tuple[int, int]) -> bool:
        """Whether both eye patches lie inside the frame."""
        inv = _inv_affine(to_canon)
        w, h = image_size
        half = 0.5 * np.array(self.eye_extent)
        for e in self._tmpl["eyes"]:
            for sx in (-1, 1):
                for sy in (-1, 1):
                    x, y = inv[:2, :2] @ (e["centre"] + half * (sx, sy)) + inv[:2, 2]
                    if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
                        return False
        return True

    def _make_template(self, image: np.ndarray, face: FaceResult) -> bool:
        p = face.points[:, :2].astype(np.float64)
        openness = eye_features(face).openness
        if not np.isfinite(openness) or openness < 1.5 * BLINK_OPENNESS:
            return False  # closed or half-closed eyes make a poor template
        centres = [0.5 * (p[eye["outer"]] + p[eye["inner"]]) for eye, _ in _EYES]
        mid = 0.5 * (centres[0] + centres[1])
        axis = centres[1] - centres[0]
        iod = float(np.hypot(*axis))
        if iod < 10:
            return False
        e1 = axis / iod
        to_canon = np.eye(3)
        to_canon[0, :2] = e1 / iod
        to_canon[1, :2] = np.array([-e1[1], e1[0]]) / iod
        to_canon[:2, 2] = -to_canon[:2, :2] @ mid
        q = p @ to_canon[:2, :2].T + to_canon[:2, 2]  # all landmarks in canonical units
        gray, off, clipped = self._crop_gray(image, to_canon)
        if gray is None or clipped:
            return False
        crop_to_canon = to_canon @ _inv_affine(off)
        # periocular strip with the eye openings (plus lid margin) masked out
        x0, x1, y0, y1 = self.STRIP_BOX
        s = _box_map(self.strip_res, x0, y0)
        size = (int(round((x1 - x0) * self.strip_res)), int(round((y1 - y0) * self.strip_res)))
        strip = cv2.warpAffine(gray, (s @ crop_to_canon)[:2], size, flags=cv2.INTER_LINEAR)
        mask = np.full((size[1], size[0]), 255, np.uint8)
        for _, contour in _EYES:
            poly = q[list(contour)] @ s[:2, :2].T + s[:2, 2]
            cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 0, lineType=cv2.LINE_8, shift=4)
        k = 2 * int(round(self.lid_margin * self.strip_res)) + 1
        if k > 1:
            mask = cv2.erode(mask, np.ones((k, k), np.uint8))
        mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0
        strip_lk = _LucasKanade(strip, mask, 4)
        if not strip_lk.ok:
            return False
        eyes = []
        pw, ph = self.patch_size
        half = np.diag([0.5, 0.5, 1.0])  # patch px -> coarse (half-resolution) px
        for eye, contour in _EYES:
            qc = q[list(contour)]
            ctr = 0.5 * (qc.min(0) + qc.max(0))
            box = _box_map(self.eye_res, ctr[0] - self.eye_extent[0] / 2, ctr[1] - self.eye_extent[1] / 2)
            patch = cv2.warpAffine(gray, (box @ crop_to_canon)[:2], (pw, ph), flags=cv2.INTER_LINEAR)
            opening = np.zeros((ph, pw), np.uint8)
            cv2.fillPoly(opening, [np.round((qc @ box[:2, :2].T + box[:2, 2]) * 16).astype(np.int32)], 255, shift=4)
            ic = box[:2, :2] @ q[eye["iris"]] + box[:2, 2]  # iris centre, patch px
            ring = q[list(eye["iris_ring"])]
            rad = float(np.mean(np.linalg.norm(ring - q[eye["iris"]], axis=1))) * self.eye_res
            r = int(np.ceil(rad))
            ix, iy = int(round(ic[0])) - r, int(round(ic[1])) - r
            if r < 4 or ix < 0 or iy < 0 or ix + 2 * r + 1 > pw or iy + 2 * r + 1 > ph:
                return False
            disc = patch[iy:iy + 2 * r + 1, ix:ix + 2 * r + 1].copy()
            yy, xx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
            inside = np.hypot(xx - (ic[0] - ix - r), yy - (ic[1] - iy - r)) <= 0.9 * rad
            disc_mask = (inside & (opening[iy:iy + 2 * r + 1, ix:ix + 2 * r + 1] > 0)).astype(np.uint8)
            if disc_mask.sum() < 20 or disc.std() < 1.0:
                return False
            lk = _LucasKanade(disc, disc_mask, 2)
            if not lk.ok:
                return False
            # coarse copy for the correlation search (half resolution: 4x cheaper)
            coarse_size = (pw // 2, ph // 2)
            coarse = cv2.warpAffine(gray, (half @ box @ crop_to_canon)[:2], coarse_size, flags=cv2.INTER_LINEAR)
            cr = r // 2
            cx, cy = int(round(ic[0] / 2)) - cr, int(round(ic[1] / 2)) - cr
            if cx < 0 or cy < 0 or cx + 2 * cr + 1 > coarse_size[0] or cy + 2 * cr + 1 > coarse_size[1]:
                return False
            coarse_disc = coarse[cy:cy + 2 * cr + 1, cx:cx + 2 * cr + 1].copy()
            # only the iris counts: pixels off the (half-size) disc mask are set to the disc's mean,
            # so they add nothing to the correlation and lids/lashes cannot attract the match
            cm = cv2.resize(disc_mask.astype(np.float32), (2 * cr + 1, 2 * cr + 1), interpolation=cv2.INTER_AREA) > 0.5
            coarse_disc[~cm] = coarse_disc[cm].mean()
            eyes.append(dict(box=box, box_inv=_inv_affine(box), centre=ctr, lk=lk,
                             disc_origin=np.array([ix, iy], float), iris_patch=ic,
                             coarse_map=half @ box, coarse_size=coarse_size, coarse_disc=coarse_disc,
                             coarse_origin=np.array([cx, cy], float)))
        self._tmpl = dict(stable=q[self._stable], strip_map=s, strip_inv=_inv_affine(s), strip_lk=strip_lk,
                          eyes=eyes)
        return True

    # ------------------------------------------------------------------ main
    def extract(self, image_rgb: np.ndarray, face: FaceResult) -> np.ndarray | None:
        """Feature vector of one frame (see :attr:`names`; canonical IOD units), or None.

        ``image_rgb`` is the frame the landmarks were detected in (RGB uint8, (H, W, 3);
        a (H, W) grey frame works too). None when there is no template yet and this
        frame cannot make one (eyes closed, face cut by the frame edge), when the eyes
        are (partly) outside the frame, or when an iris does not match the template
        disc (blink, occlusion, glare).
        """
        self.scores = None
        if self._tmpl is None and not self._make_template(image_rgb, face):
            return None
        tm = self._tmpl
        to_canon = _similarity(face.points[self._stable, :2].astype(np.float64), tm["stable"])
        if not np.all(np.isfinite(to_canon)):
            return None
        gray, off, clipped = self._crop_gray(image_rgb, to_canon)
        if gray is None:
            return None
        crop_to_canon = to_canon @ _inv_affine(off)
        if self.register:
            warp, n = tm["strip_lk"].align(gray, tm["strip_map"] @ crop_to_canon, self.reg_iters, 0.02)
            if n < 0:
                return None
            crop_to_canon = tm["strip_inv"] @ warp
        to_canon = crop_to_canon @ off
        if clipped and not self._eyes_inside(to_canon, face.image_size):
            return None
        out = []
        scores = []
        for e in tm["eyes"]:
            # coarse search: correlation with the disc at half resolution
            coarse = cv2.warpAffine(gray, (e["coarse_map"] @ crop_to_canon)[:2], e["coarse_size"],
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            ncc = cv2.matchTemplate(coarse, e["coarse_disc"], cv2.TM_CCOEFF_NORMED)
            _, best, _, (mx, my) = cv2.minMaxLoc(ncc)
            if not best > 0.0:
                return None
            fx, fy = float(mx), float(my)
            if 0 < mx < ncc.shape[1] - 1:
                fx += _peak_offset(ncc[my, mx - 1], ncc[my, mx], ncc[my, mx + 1])
            if 0 < my < ncc.shape[0] - 1:
                fy += _peak_offset(ncc[my - 1, mx], ncc[my, mx], ncc[my + 1, mx])
            # fine: LK on the full-resolution disc, started at the coarse peak
            ox = e["disc_origin"][0] + 2.0 * (fx - e["coarse_origin"][0])
            oy = e["disc_origin"][1] + 2.0 * (fy - e["coarse_origin"][1])
            to_patch = e["box"] @ crop_to_canon
            start = np.array([[1.0, 0.0, -ox], [0.0, 1.0, -oy], [0.0, 0.0, 1.0]]) @ to_patch  # crop -> disc px
            warp, n = e["lk"].align(gray, start, self.iris_iters, 0.02)
            scores.append(e["lk"].last_ncc() if n > 0 else float("nan"))
            self.scores = tuple((scores + [float("nan")])[:2])
            if n < 0 or not scores[-1] >= self.min_score:
                return None  # no iris texture there (blink, occlusion, glare)
            shift = -(warp @ _inv_affine(to_patch))[:2, 2] - e["disc_origin"]  # iris shift, patch px
            if not np.all(np.isfinite(shift)) or np.hypot(*shift) > 0.5 * self.patch_size[0]:
                return None  # diverged
            out.append(e["box_inv"][:2, :2] @ (e["iris_patch"] + shift) + e["box_inv"][:2, 2])
        self.transform = to_canon[:2].copy()
        if self.pixel_size:
            for e in tm["eyes"]:
                patch = cv2.warpAffine(gray, (e["box"] @ crop_to_canon)[:2], self.patch_size,
                                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                small = cv2.resize(patch, self.pixel_size, interpolation=cv2.INTER_AREA).ravel()
                out.append((small - small.mean()) / (small.std() + 1e-6))
        v = np.concatenate(out).astype(np.float64)
        return v if np.all(np.isfinite(v)) else None
