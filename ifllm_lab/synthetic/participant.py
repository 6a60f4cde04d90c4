"""A simulated participant's webcam eye features for a known point of gaze, for calibration
tests and benchmarks.

The features follow the physics the real ones have: the eye's rotation in the head is the
gaze direction to the target minus the head's rotation; each iris is offset from the eye
corners by ``gain * sin(rotation)`` (plus an optional mild quadratic term), per eye with
its own gain and offset; lids follow the vertical rotation; head pose is measured with
noise; every feature gets Gaussian noise; blink frames have NaN iris features. Head pose
wanders slowly.
"""
from __future__ import annotations

import math

import numpy as np

from ..gaze.geometry import ScreenGeometry

# The feature columns :meth:`SimulatedParticipant.features` returns, in order.
FEATURE_NAMES = ("left_iris_u", "left_iris_v", "right_iris_u", "right_iris_v", "left_iris_lid", "right_iris_lid",
                 "yaw", "pitch", "roll", "face_x", "face_y", "face_distance_mm")
SCREEN = ScreenGeometry(1920, 1080, 527.0, 296.5, 600.0)  # 24" 16:9 at 60 cm
FRAME_HZ = 30.0  # webcam frame rate the head wander steps at by default


class SimulatedParticipant:
    """Webcam eye features (:data:`FEATURE_NAMES`) for a known point of gaze on ``screen``.

    Gains are in eye widths per degree of eye rotation (the iris moves ~0.35 eye widths
    across +-25 deg, as MediaPipe iris landmarks do). Noise, head wander and blinks each
    draw from their own random stream, so a noise-free twin (same seed) sees the same
    head path and blinks.
    """

    KU = np.array([0.0070, 0.0066])  # horizontal gain, left / right eye
    KV = np.array([0.0045, 0.0048])  # vertical gain
    KLID = 0.006
    U0 = np.array([0.50, 0.52])
    V0 = np.array([0.02, 0.03])

    def __init__(self, seed: int, *, iris_noise: float = 0.004, pose_noise: float = 0.2, head_sd: float = 0.5,
                 quad: float = 0.0, blink_rate: float = 0.05, screen: ScreenGeometry = SCREEN):
        self.iris_noise, self.pose_noise, self.head_sd, self.quad = iris_noise, pose_noise, head_sd, quad
        self.blink_rate = blink_rate
        self.screen = screen
        self.noise_rng = np.random.default_rng([seed, 1])
        self.head_rng = np.random.default_rng([seed, 2])
        self.blink_rng = np.random.default_rng([seed, 3])
        self.base_yaw, self.base_pitch = self.head_rng.normal(0, 3), self.head_rng.normal(-5, 2)
        self.head = np.zeros(4)  # yaw, pitch (deg), x, y (mm) wander

    def step(self, dt: float = 1.0 / FRAME_HZ) -> None:
        """Head wander over ``dt`` s: Ornstein-Uhlenbeck, time constant 2 s, sd head_sd deg /
        10*head_sd mm."""
        a = math.exp(-dt / 2.0)
        sd = np.array([1.0, 1.0, 10.0, 10.0]) * self.head_sd
        self.head = a * self.head + math.sqrt(1 - a * a) * sd * self.head_rng.normal(size=4)

    def blink(self) -> bool:
        """Whether the next frame is a blink (probability ``blink_rate``)."""
        return bool(self.blink_rng.random() < self.blink_rate)

    def features(self, x_px: float, y_px: float, blink: bool = False) -> np.ndarray:
        """One frame's features (:data:`FEATURE_NAMES`) looking at screen point (x, y) px."""
        r = self.noise_rng
        screen = self.screen
        yaw, pitch = self.base_yaw + self.head[0], self.base_pitch + self.head[1]
        hx, hy = self.head[2], self.head[3]
        d = screen.viewing_distance_mm
        x_mm = (x_px - screen.width_px / 2) * screen.mm_per_px_x
        y_mm = (y_px - screen.height_px / 2) * screen.mm_per_px_y
        gx, gy = math.degrees(math.atan2(x_mm - hx, d)), math.degrees(math.atan2(y_mm - hy, d))
        ex, ey = gx - yaw, gy + pitch  # eye-in-head rotation, deg
        sx, sy = math.degrees(math.sin(math.radians(ex))), math.degrees(math.sin(math.radians(ey)))
        n, q = self.iris_noise, self.quad
        u = self.U0 + self.KU * sx + q * ex * ex + 0.5 * q * ex * ey + r.normal(0, n, 2)
        v = self.V0 + self.KV * sy + q * ey * ey + r.normal(0, n, 2)
        lid = 0.5 + self.KLID * sy + r.normal(0, 1.5 * n, 2)
        pn = self.pose_noise
        f = np.array([u[0], v[0], u[1], v[1], lid[0], lid[1],
                      yaw + r.normal(0, pn), pitch + r.normal(0, pn), r.normal(0, pn),
                      0.5 + hx / 400 + r.normal(0, 0.002 if pn else 0),
                      0.45 + hy / 400 + r.normal(0, 0.002 if pn else 0),
                      d + r.normal(0, 5.0 if pn else 0)])
        if blink:
            f[:6] = np.nan
        return f

    def per_sample_sd_deg(self, max_rotation_deg: float = 30.0) -> tuple[float, float]:
        """Upper bounds of the per-axis gaze noise (deg) of one sample of an ideal linear model.

        Horizontal: the two eyes' iris_u combined by inverse variance (sd ``n / gain``,
        gain reduced by cos(max rotation) for the sine), plus the yaw noise (gaze = eye
        rotation + head rotation, coefficient 1). Vertical: the same from iris_v alone
        (the lids add information, so this over-estimates), plus the pitch noise.
        """
        c = math.cos(math.radians(max_rotation_deg))
        n = self.iris_noise
        sx = 1.0 / math.sqrt(np.sum((self.KU * c / n) ** 2)) if n else 0.0
        sy = 1.0 / math.sqrt(np.sum((self.KV * c / n) ** 2)) if n else 0.0
        return math.hypot(sx, self.pose_noise), math.hypot(sy, self.pose_noise)
