"""Screen geometry: pixels, millimetres and degrees of visual angle.

Frames and units
----------------
- Screen positions are **pixels** in the screen frame: origin at the top left of the
  screen, x to the right, y down (the session file's convention).
- Physical positions on the screen are **millimetres** in the same frame (origin top
  left, x right, y down).
- The eye is modelled as one point (the cyclopean eye) on the perpendicular through the
  **screen centre**, ``viewing_distance_mm`` in front of the screen. This is the
  standard assumption of eye-tracking accuracy reports (Tobii, EyeLink, ISO 15007)
  when the head position is not measured.

Exact angles versus the small-angle shortcut
--------------------------------------------
:meth:`ScreenGeometry.deg_between` computes the angle between the two 3-D rays from the
eye to the two screen points (``atan2(|a x b|, a . b)``), which is exact for any pair of
points. The common shortcut ``deg = degrees(distance_mm / viewing_distance_mm)`` (or
``px / px_per_degree``) is right only for short distances near the screen centre. Away
from the centre the screen is seen obliquely and further away, so a given distance on the
screen spans a *smaller* angle than at the centre: e.g. on a 24" 1920x1080 screen (527 x 297 mm) at
600 mm, a horizontal 50 px (13.7 mm) spans 1.31 deg at the centre, 1.11 deg at the middle
of the left edge and 1.09 deg at the top left corner, so the shortcut overstates errors at
the edges by up to ~20 %. Reports here always use the exact form.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScreenGeometry:
    """A screen and the viewing distance.

    Attributes
    ----------
    width_px, height_px:
        Screen resolution in pixels (of the coordinate system gaze is reported in).
    width_mm, height_mm:
        Physical size of the visible screen area, millimetres.
    viewing_distance_mm:
        Distance from the eye to the screen plane along the perpendicular through the
        screen centre, millimetres.
    """

    width_px: float
    height_px: float
    width_mm: float
    height_mm: float
    viewing_distance_mm: float

    def __post_init__(self) -> None:
        for name in ("width_px", "height_px", "width_mm", "height_mm", "viewing_distance_mm"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and v > 0):
                raise ValueError(f"ScreenGeometry.{name} must be a positive finite number, got {v!r}")

    # --- pixel pitch -------------------------------------------------------------------
    @property
    def mm_per_px_x(self) -> float:
        """Horizontal pixel pitch, mm per px."""
        return self.width_mm / self.width_px

    @property
    def mm_per_px_y(self) -> float:
        """Vertical pixel pitch, mm per px."""
        return self.height_mm / self.height_px

    @property
    def centre_px(self) -> tuple[float, float]:
        """Screen centre, px (origin top left)."""
        return 0.5 * self.width_px, 0.5 * self.height_px

    def px_to_mm(self, x_px, y_px):
        """Screen position(s) in px -> position(s) in mm, both with origin top left.

        Works on scalars or arrays (broadcast). Because the origin is shared, the same
        function converts *displacements* (dx, dy) px into mm.
        """
        return np.multiply(x_px, self.mm_per_px_x), np.multiply(y_px, self.mm_per_px_y)

    def mm_to_px(self, x_mm, y_mm):
        """Inverse of :meth:`px_to_mm` (mm -> px, origin top left)."""
        return np.divide(x_mm, self.mm_per_px_x), np.divide(y_mm, self.mm_per_px_y)

    # --- visual angle --------------------------------------------------------------------
    def _rays(self, p) -> np.ndarray:
        """3-D vectors (mm) from the eye to screen point(s) ``p`` (..., 2) px."""
        p = np.asarray(p, dtype=np.float64)
        if p.shape[-1] != 2:
            raise ValueError(f"screen points must have 2 coordinates (x, y) in the last axis, got shape {p.shape}")
        cx, cy = self.centre_px
        x_mm = (p[..., 0] - cx) * self.mm_per_px_x
        y_mm = (p[..., 1] - cy) * self.mm_per_px_y
        z = np.broadcast_to(self.viewing_distance_mm, x_mm.shape)
        return np.stack([x_mm, y_mm, z], axis=-1)

    def deg_between(self, p, q):
        """Visual angle in **degrees** between screen points ``p`` and ``q`` (px).

        ``p`` and ``q`` are ``(x, y)`` pairs or arrays of shape ``(..., 2)`` that
        broadcast against each other. Exact: the angle between the rays from the eye
        (on the perpendicular through the screen centre, ``viewing_distance_mm`` away) to
        both points, computed as ``atan2(|a x b|, a . b)`` (numerically stable for tiny
        angles too). Returns a float for single points, else an array; NaN where an input
        is NaN.
        """
        a = self._rays(p)
        b = self._rays(q)
        cross = np.linalg.norm(np.cross(a, b), axis=-1)
        dot = np.sum(a * b, axis=-1)
        deg = np.degrees(np.arctan2(cross, dot))
        return float(deg) if np.ndim(deg) == 0 else deg

    def small_angle_deg(self, p, q):
        """The small-angle shortcut: ``degrees(distance_mm / viewing_distance_mm)``.

        Only for comparison and documentation (see the module docstring); exact at the
        screen centre in the limit of short distances, too large elsewhere.
        """
        p = np.asarray(p, dtype=np.float64)
        q = np.asarray(q, dtype=np.float64)
        dx = (p[..., 0] - q[..., 0]) * self.mm_per_px_x
        dy = (p[..., 1] - q[..., 1]) * self.mm_per_px_y
        deg = np.degrees(np.hypot(dx, dy) / self.viewing_distance_mm)
        return float(deg) if np.ndim(deg) == 0 else deg

    @property
    def mean_mm_per_px(self) -> float:
        """Mean of the horizontal and vertical pixel pitch, mm per px."""
        return 0.5 * (self.mm_per_px_x + self.mm_per_px_y)

    def px_per_degree_at_centre(self) -> float:
        """Pixels spanned by 1 deg of visual angle centred on the screen centre.

        ``2 * D * tan(0.5 deg) / pitch`` with ``D`` the viewing distance (mm) and
        ``pitch`` the mean pixel pitch (mm/px). Valid at the centre; towards the edges a
        degree spans more pixels (see the module docstring).
        """
        return 2.0 * self.viewing_distance_mm * math.tan(math.radians(0.5)) / self.mean_mm_per_px

    def deg_to_px(self, deg):
        """Approximate size in px of ``deg`` degrees of visual angle at the screen centre.

        ``2 * D * tan(deg / 2) / pitch`` (exact for a segment centred on the screen
        centre, square pixels assumed via the mean pitch). Use it for sizes (target
        radius, fixation thresholds), not to report errors (use :meth:`deg_between`).
        """
        px = 2.0 * self.viewing_distance_mm * np.tan(np.radians(np.asarray(deg, dtype=np.float64)) / 2.0) \
            / self.mean_mm_per_px
        return float(px) if np.ndim(px) == 0 else px

    def px_to_deg_at_centre(self, px):
        """Approximate visual angle (deg) of a segment ``px`` long centred on the screen centre."""
        return np.degrees(2.0 * np.arctan(np.asarray(px, dtype=np.float64) * self.mean_mm_per_px
                                          / (2.0 * self.viewing_distance_mm)))

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready) of the five attributes."""
        return {"width_px": self.width_px, "height_px": self.height_px, "width_mm": self.width_mm,
                "height_mm": self.height_mm, "viewing_distance_mm": self.viewing_distance_mm}

    @classmethod
    def from_dict(cls, d: dict) -> "ScreenGeometry":
        return cls(float(d["width_px"]), float(d["height_px"]), float(d["width_mm"]), float(d["height_mm"]),
                   float(d["viewing_distance_mm"]))


def deg_between(screen: ScreenGeometry, p, q):
    """Module-level alias of :meth:`ScreenGeometry.deg_between`."""
    return screen.deg_between(p, q)
