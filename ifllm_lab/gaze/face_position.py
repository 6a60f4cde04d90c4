"""Where the participant's face is, and the one plain-language hint that fixes it.

Before calibration the participant sees their face against an oval (the face guide of
:mod:`ifllm_lab.ui.calibration_screens`); :func:`face_status` says what, if anything, is
wrong with the face's position in the camera image, from one tracker sample. No Qt.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MESSAGES", "FacePositionTargets", "FaceStatus", "face_features", "face_status"]


@dataclass(frozen=True)
class FacePositionTargets:
    """Where the face should be. ``centre_x``, ``centre_y``: the midpoint between the eyes
    as fractions of the (unmirrored) camera image, with tolerances ``tol_x``, ``tol_y``;
    distance camera-to-face in mm; head turn in degrees."""

    centre_x: float = 0.5
    centre_y: float = 0.45
    tol_x: float = 0.12
    tol_y: float = 0.12
    min_distance_mm: float = 450.0
    max_distance_mm: float = 750.0
    max_yaw_deg: float = 25.0

    @property
    def nominal_distance_mm(self) -> float:
        return 0.5 * (self.min_distance_mm + self.max_distance_mm)


@dataclass(frozen=True)
class FaceStatus:
    """``code``: "waiting" (no sample yet, or none lately), "no_face", "too_close",
    "too_far", "move_left", "move_right", "move_up", "move_down", "turn" or "good";
    ``message``: the hint for the participant; ``hints``: every problem found, most
    important first (``message`` is the first)."""

    code: str
    message: str
    hints: tuple[str, ...] = field(default_factory=tuple)
    codes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def good(self) -> bool:
        return self.code == "good"


#: The participant's hint for each status code.
MESSAGES = {
    "waiting": "Waiting for the camera\u2026",
    "no_face": "Face not found \u2014 sit in front of the camera",
    "too_close": "Move back a little",
    "too_far": "Move a little closer",
    "move_left": "Move a little to your left",
    "move_right": "Move a little to your right",
    "move_up": "Move up a little",
    "move_down": "Move down a little",
    "turn": "Turn your face towards the screen",
    "good": "Good \u2014 keep still",
}


def _finite(*v) -> bool:
    return all(x is not None and isinstance(x, (int, float, np.floating)) and math.isfinite(x) for x in v)


def face_features(sample):
    """The EyeFeatures of a tracker sample: a GazeSample's features, an EyeFeatures as it
    is, None for None (or a sample without a face)."""
    if sample is None:
        return None
    if hasattr(sample, "face_x"):
        return sample
    return getattr(sample, "features", None)


def face_status(sample, targets: FacePositionTargets | None = None) -> FaceStatus:
    """The face-position hint for one tracker sample (a GazeSample, its EyeFeatures, or None).

    Left / right are the participant's own: the camera sees them unmirrored, so a face on
    the image's left (``face_x`` small) is off to the participant's right and should move
    to their left. Priority: no face, distance, left/right, up/down, head turn.
    """
    t = targets or FacePositionTargets()
    f = face_features(sample)
    if f is None or not _finite(f.face_x, f.face_y):
        return FaceStatus("no_face", MESSAGES["no_face"], (MESSAGES["no_face"],), ("no_face",))
    codes = []
    d = f.face_distance_mm
    if _finite(d):
        if d < t.min_distance_mm:
            codes.append("too_close")
        elif d > t.max_distance_mm:
            codes.append("too_far")
    dx = f.face_x - t.centre_x
    if dx < -t.tol_x:
        codes.append("move_left")
    elif dx > t.tol_x:
        codes.append("move_right")
    dy = f.face_y - t.centre_y
    if dy < -t.tol_y:
        codes.append("move_down")
    elif dy > t.tol_y:
        codes.append("move_up")
    if _finite(f.yaw) and abs(f.yaw) > t.max_yaw_deg:
        codes.append("turn")
    if not codes:
        codes = ["good"]
    hints = tuple(MESSAGES[c] for c in codes)
    return FaceStatus(codes[0], hints[0], hints, tuple(codes))
