"""Per-frame eye features from face landmarks.

Coordinate frames and units:

- Each eye has its own frame: origin at the eye's outer corner, u axis towards the
  inner corner, v axis perpendicular to it pointing down in the image. Iris
  positions are in **eye widths** (the corner-to-corner distance): ``iris_u`` runs
  from 0 (outer corner) to 1 (inner corner); ``iris_v`` is the offset below the
  corner line (negative = above). Lid-relative ``iris_lid`` is 0 at the upper lid,
  1 at the lower lid.
- ``openness`` = lid gap / eye width (unitless; ~0.25-0.35 open, < ~0.1 closed).
- Head pose from the facial transformation matrix, degrees: ``yaw`` (turn to the
  subject's left is positive), ``pitch`` (chin up positive), ``roll``.
- ``face_distance_mm``: camera-to-face distance estimated by MediaPipe's face
  geometry (assumes its default camera field of view; relative changes are reliable,
  the absolute value within roughly 20 %).
- ``face_x``, ``face_y``: the midpoint between the eyes in the image, as a fraction of
  the image width / height (head position).

"Left" and "right" are the subject's own eyes (the left eye appears on the image's
right in an unmirrored camera picture).
"""
from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np

from .landmarks import FaceResult

# MediaPipe face mesh indices (subject's right eye = image left)
RIGHT_EYE = {"outer": 33, "inner": 133, "upper": 159, "lower": 145, "iris": 468, "iris_ring": (469, 470, 471, 472)}
LEFT_EYE = {"outer": 263, "inner": 362, "upper": 386, "lower": 374, "iris": 473, "iris_ring": (474, 475, 476, 477)}
RIGHT_EYE_CONTOUR = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE_CONTOUR = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)

BLINK_OPENNESS = 0.12  # below this (mean of both eyes) the frame is treated as a blink

FEATURE_NAMES = (
    "left_iris_u", "left_iris_v", "right_iris_u", "right_iris_v",
    "left_iris_lid", "right_iris_lid",
    "yaw", "pitch", "roll", "face_x", "face_y", "face_distance_mm",
)


@dataclass
class EyeFeatures:
    """Features of one frame (see the module docstring for frames and units)."""

    left_iris_u: float
    left_iris_v: float
    right_iris_u: float
    right_iris_v: float
    left_iris_lid: float
    right_iris_lid: float
    left_openness: float
    right_openness: float
    yaw: float
    pitch: float
    roll: float
    face_x: float
    face_y: float
    face_distance_mm: float
    left_eye_width_px: float
    right_eye_width_px: float

    @property
    def openness(self) -> float:
        return 0.5 * (self.left_openness + self.right_openness)

    @property
    def blink(self) -> bool:
        return self.openness < BLINK_OPENNESS

    def vector(self) -> np.ndarray:
        """The regression input, in :data:`FEATURE_NAMES` order (float64)."""
        return np.array([getattr(self, n) for n in FEATURE_NAMES], dtype=np.float64)


def _eye(points: np.ndarray, eye: dict) -> tuple[float, float, float, float, float]:
    """(iris_u, iris_v, iris_lid, openness, width_px) of one eye (plain floats: this runs
    for every frame, and numpy calls on 2-vectors cost more than the arithmetic)."""
    (ox, oy), (ix, iy), (ux, uy), (lx, ly), (cx, cy) = points[
        [eye["outer"], eye["inner"], eye["upper"], eye["lower"], eye["iris"]], :2].tolist()
    ax, ay = ix - ox, iy - oy
    width = math.hypot(ax, ay)
    if width < 1e-6:
        return (math.nan,) * 4 + (0.0,)
    e1x, e1y = ax / width, ay / width
    e2x, e2y = (-e1y, e1x) if e1x >= 0 else (e1y, -e1x)  # v points down in the image
    dx, dy = cx - ox, cy - oy
    u = (dx * e1x + dy * e1y) / width
    v_px = dx * e2x + dy * e2y
    upper = (ux - ox) * e2x + (uy - oy) * e2y
    lower = (lx - ox) * e2x + (ly - oy) * e2y
    gap = lower - upper
    lid = (v_px - upper) / gap if gap > 1e-6 else math.nan
    return u, v_px / width, lid, gap / width, width


def head_pose_deg(matrix: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from a 4x4 facial transformation matrix."""
    r = matrix[:3, :3]
    # R = Ry(yaw) Rx(pitch) Rz(roll) decomposition
    pitch = np.degrees(np.arcsin(np.clip(-r[1, 2], -1.0, 1.0)))
    yaw = np.degrees(np.arctan2(r[0, 2], r[2, 2]))
    roll = np.degrees(np.arctan2(r[1, 0], r[1, 1]))
    return float(yaw), float(pitch), float(roll)


def eye_features(face: FaceResult) -> EyeFeatures:
    """Eye features of one detected face."""
    p = face.points
    lu, lv, llid, lopen, lw = _eye(p, LEFT_EYE)
    ru, rv, rlid, ropen, rw = _eye(p, RIGHT_EYE)
    if face.matrix is not None:
        yaw, pitch, roll = head_pose_deg(face.matrix)
        distance = float(-face.matrix[2, 3] * 10.0)  # cm -> mm, the face is at negative z
    else:
        yaw = pitch = roll = distance = np.nan
    w, h = face.image_size
    mid = 0.5 * (p[LEFT_EYE["iris"], :2] + p[RIGHT_EYE["iris"], :2])
    return EyeFeatures(lu, lv, ru, rv, llid, rlid, lopen, ropen, yaw, pitch, roll,
                       float(mid[0] / w), float(mid[1] / h), distance, lw, rw)


def iris_radius_px(face: FaceResult, eye: dict) -> float:
    """Mean distance of the iris ring landmarks from the iris centre, px."""
    c = face.points[eye["iris"], :2]
    ring = face.points[list(eye["iris_ring"]), :2]
    return float(np.mean(np.linalg.norm(ring - c, axis=1)))


class BlinkDetector:
    """Blinks from eye openness, relative to the person's own open-eye baseline.

    Openness differs between people (and with head pitch), so a fixed threshold
    misses blinks of narrow eyes and flags wide ones. The baseline is the median
    openness of the last ``window`` non-blink frames; a frame is a blink when its
    openness falls below ``ratio`` x baseline (0.7: looking down narrows the eyes by ~20 %, a blink by far more), or below :data:`BLINK_OPENNESS`.
    """

    def __init__(self, ratio: float = 0.7, window: int = 90):
        self.ratio = ratio
        self.window = window
        self._history: list[float] = []
        self._baseline = np.nan
        self._seen = 0

    @property
    def baseline(self) -> float:
        return float(self._baseline)

    def __call__(self, openness: float) -> bool:
        if not np.isfinite(openness):
            return True
        base = self._baseline
        blink = openness < BLINK_OPENNESS or (np.isfinite(base) and openness < self.ratio * base)
        if not blink:
            self._history.append(openness)
            if len(self._history) > self.window:
                del self._history[: len(self._history) - self.window]
            self._seen += 1
            if self._seen % 10 == 1 or not np.isfinite(base):  # refresh the median every 10 frames
                self._baseline = float(np.median(self._history))
        return bool(blink)

    def reset(self) -> None:
        self._history.clear()
        self._baseline = np.nan
        self._seen = 0
