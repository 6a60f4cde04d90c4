"""Ground-truth face frames from a real photo: irises moved by known amounts.

Used by the tests, the gaze benchmark and demos where no camera and no person are
available. Starting from a real face photograph (default: the portrait of the NASA
astronaut Eileen Collins, public domain, shipped as ``ifllm_lab/data/synthetic/face.png``
with its source in ``SOURCE.txt`` beside it), the renderer

1. finds the eyes once with the real FaceLandmarker,
2. removes each iris (fills the eye opening with the eye's own sclera colour),
3. for every frame, pastes the original iris disc back at a shifted position,
   clipped by the eye opening (so lids cover it as they would), with sub-pixel
   placement, and optionally closes the eyes (blink) and moves/rotates the head.

Iris shifts ``(du, dv)`` are in eye widths along image x (right) and y (down);
:class:`GazeScene` maps screen targets to shifts with a known function, so every
frame has a known true point of gaze.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..gaze.features import LEFT_EYE, LEFT_EYE_CONTOUR, RIGHT_EYE, RIGHT_EYE_CONTOUR, iris_radius_px
from ..gaze.landmarks import FaceLandmarker, LandmarkerError
from ..paths import data_file

# The shipped crop of the 512x512 portrait: its top-left corner in the full photo, px.
_CROP_ORIGIN = (131, 27)


def face_photo() -> np.ndarray:
    """The shipped face photograph (``data/synthetic/face.png``), RGB uint8, 190x190 px."""
    data = data_file("synthetic", "face.png").read_bytes()
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError("the shipped face image ifllm_lab/data/synthetic/face.png cannot be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def astronaut_face(size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """The astronaut photo cropped to the face and scaled to ``size`` (w, h), RGB uint8.

    The face fills about half the frame width, as with a webcam at ~40 cm. Frame aspect
    ratios from 16:9 to 1:1 keep the whole face; taller ones are squeezed.
    """
    img = face_photo()
    w, h = size
    # face centre in the 512x512 photo is near (226, 125); crop with the frame's aspect ratio
    crop_w = 190
    crop_h = min(int(round(crop_w * h / w)), img.shape[0])
    cx, cy = 226 - _CROP_ORIGIN[0], 122 - _CROP_ORIGIN[1]
    x0, y0 = cx - crop_w // 2, min(max(0, cy - crop_h // 2), img.shape[0] - crop_h)
    crop = img[y0:y0 + crop_h, x0:x0 + crop_w]
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_CUBIC)


@dataclass
class _EyeModel:
    mask: np.ndarray  # uint8 (H, W), 255 inside the eye opening
    center: np.ndarray  # iris centre, px
    radius: float  # iris radius, px
    width: float  # eye width (corner to corner), px
    patch: np.ndarray  # float32 (2R+1, 2R+1, 3) iris texture around the centre
    alpha: np.ndarray  # float32 (2R+1, 2R+1) soft disc
    skin: np.ndarray  # float32 (3,) colour of the skin just below the eye
    lash: np.ndarray  # (k, 2) px: the line where the lids meet when closed


class FaceRenderer:
    """Renders frames of one face with the irises at chosen positions."""

    def __init__(self, image: np.ndarray | None = None, model_path=None):
        self.base = astronaut_face() if image is None else np.ascontiguousarray(image)
        self.size = (self.base.shape[1], self.base.shape[0])
        with FaceLandmarker(model_path, video=False) as lm:
            face = lm.detect(self.base)
        if face is None:
            raise LandmarkerError("no face found in the base image of the renderer")
        self.face = face
        pts = face.points[:, :2].astype(np.float64)
        self.eyes = [self._eye_model(pts, e, c) for e, c in ((LEFT_EYE, LEFT_EYE_CONTOUR),
                                                            (RIGHT_EYE, RIGHT_EYE_CONTOUR))]
        self.clean = self.base.astype(np.float32)
        for eye in self.eyes:
            self._erase_iris(eye)

    def _eye_model(self, pts: np.ndarray, eye: dict, contour: tuple[int, ...]) -> _EyeModel:
        h, w = self.base.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        poly = np.round(pts[list(contour)] * 4).astype(np.int32)
        cv2.fillPoly(mask, [poly], 255, lineType=cv2.LINE_AA, shift=2)
        center = pts[eye["iris"]]
        radius = iris_radius_px(self.face, eye)
        width = float(np.linalg.norm(pts[eye["inner"]] - pts[eye["outer"]]))
        r = int(np.ceil(radius * 1.15)) + 2
        cx, cy = center
        # iris texture sampled with sub-pixel accuracy around the detected centre
        m = np.float32([[1, 0, cx - r], [0, 1, cy - r]])
        patch = cv2.warpAffine(self.base.astype(np.float32), m, (2 * r + 1, 2 * r + 1),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        dist = np.sqrt(xx ** 2 + yy ** 2)
        alpha = np.clip(radius - dist + 0.5, 0.0, 1.0).astype(np.float32)
        sx, sy = np.round(center + np.array([0.0, 0.45 * width])).astype(int)
        skin = self.base[max(0, sy - 3):sy + 4, max(0, sx - 3):sx + 4].reshape(-1, 3).astype(np.float32).mean(0)
        # contour runs outer corner -> lower lid -> inner corner (9 points) -> upper lid back
        ring = pts[list(contour)]
        lower = ring[:9]
        upper = np.vstack([ring[8:], ring[:1]])[::-1]
        lash = 0.5 * (lower + upper)
        return _EyeModel(mask, center, radius, width, patch, alpha, skin, lash)

    def _erase_iris(self, eye: _EyeModel) -> None:
        inside = eye.mask > 127
        yy, xx = np.nonzero(inside)
        d = np.hypot(xx - eye.center[0], yy - eye.center[1])
        white = self.base[yy[d > eye.radius * 1.3], xx[d > eye.radius * 1.3]].astype(np.float32)
        if len(white) < 5:  # eye mostly iris: take the brightest pixels of the opening
            vals = self.base[yy, xx].astype(np.float32)
            white = vals[np.argsort(vals.sum(1))[-max(5, len(vals) // 5):]]
        sclera = np.median(white, axis=0)
        a = (eye.mask.astype(np.float32) / 255.0)[..., None]
        self.clean = self.clean * (1 - a) + sclera * a

    def render(self, du: float = 0.0, dv: float = 0.0, *, head_dx: float = 0.0, head_dy: float = 0.0,
               head_rot_deg: float = 0.0, blink: bool = False) -> np.ndarray:
        """One RGB frame with both irises shifted by (du, dv) eye widths (image x, y).

        ``head_dx``/``head_dy`` (px) and ``head_rot_deg`` (degrees, about the face
        centre) move the whole face; ``blink`` closes both eyes.
        """
        img = self.clean.copy()
        for eye in self.eyes:
            if blink:  # closed lids: skin over the opening and the lash line where the lids meet
                a = (eye.mask.astype(np.float32) / 255.0)[..., None]
                img = img * (1 - a) + eye.skin * a
                cv2.polylines(img, [np.round(eye.lash * 4).astype(np.int32)], False, (60.0, 40.0, 35.0),
                              thickness=max(2, int(eye.width * 0.05)), lineType=cv2.LINE_AA, shift=2)
                continue
            cx = eye.center[0] + du * eye.width
            cy = eye.center[1] + dv * eye.width
            r = (eye.patch.shape[0] - 1) // 2
            x0, y0 = int(np.floor(cx)) - r, int(np.floor(cy)) - r
            fx, fy = cx - np.floor(cx), cy - np.floor(cy)
            m = np.float32([[1, 0, fx], [0, 1, fy]])  # sub-pixel placement
            n = 2 * r + 1
            patch = cv2.warpAffine(eye.patch, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            alpha = cv2.warpAffine(eye.alpha, m, (n, n), flags=cv2.INTER_LINEAR, borderValue=0)
            ys, xs = slice(y0, y0 + n), slice(x0, x0 + n)
            a = alpha * (eye.mask[ys, xs].astype(np.float32) / 255.0)
            img[ys, xs] = img[ys, xs] * (1 - a[..., None]) + patch * a[..., None]
        if head_dx or head_dy or head_rot_deg:
            c = tuple(np.mean([e.center for e in self.eyes], axis=0))
            m = cv2.getRotationMatrix2D(c, head_rot_deg, 1.0)
            m[:, 2] += (head_dx, head_dy)
            img = cv2.warpAffine(img, m, self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)


@dataclass
class GazeScene:
    """A known mapping from screen targets to iris shifts.

    ``du = (x / width - 0.5) * u_range`` and ``dv = (y / height - 0.5) * v_range``
    (eye widths), so the true gaze point of a frame rendered with (du, dv) is known
    exactly.
    """

    screen_w: int = 1920
    screen_h: int = 1080
    u_range: float = 0.36
    v_range: float = 0.14

    def shift_for(self, x: float, y: float) -> tuple[float, float]:
        return (x / self.screen_w - 0.5) * self.u_range, (y / self.screen_h - 0.5) * self.v_range

    def target_for(self, du: float, dv: float) -> tuple[float, float]:
        return (du / self.u_range + 0.5) * self.screen_w, (dv / self.v_range + 0.5) * self.screen_h


@dataclass
class RenderedVideo:
    """A rendered face video and its ground truth, one row per frame."""

    path: str
    fps: float
    targets: np.ndarray  # (n, 2) true gaze point, screen px
    target_index: np.ndarray  # (n,) index into the target list
    blink: np.ndarray  # (n,) bool


def write_gaze_video(path: str, targets_px, *, renderer: FaceRenderer | None = None,
                     scene: GazeScene | None = None, frames_per_target: int = 15, fps: float = 30.0,
                     head_jitter_px: float = 2.0, head_jitter_deg: float = 0.7, blink_every: int = 0,
                     blink_frames: int = 4, seed: int = 0, fourcc: str = "mp4v") -> RenderedVideo:
    """Render a face looking at each target in turn and write it as a video file.

    ``blink_every`` > 0 closes the eyes for ``blink_frames`` frames (a real blink
    lasts 100-300 ms) at the end of every ``blink_every`` frames. Returns the truth.
    """
    renderer = renderer or FaceRenderer()
    scene = scene or GazeScene()
    rng = np.random.default_rng(seed)
    w, h = renderer.size
    out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not out.isOpened():
        raise OSError(f"cannot write video {path} with codec {fourcc}")
    truth, index, blinks = [], [], []
    n = 0
    try:
        for i, (x, y) in enumerate(targets_px):
            du, dv = scene.shift_for(x, y)
            for _ in range(frames_per_target):
                blink = blink_every > 0 and n % blink_every >= blink_every - blink_frames
                img = renderer.render(du, dv, head_dx=rng.normal(0, head_jitter_px),
                                      head_dy=rng.normal(0, head_jitter_px),
                                      head_rot_deg=rng.normal(0, head_jitter_deg), blink=blink)
                out.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
                truth.append((x, y))
                index.append(i)
                blinks.append(blink)
                n += 1
    finally:
        out.release()
    return RenderedVideo(path, fps, np.array(truth, float), np.array(index), np.array(blinks, bool))


def render_runs(path: str, runs, *, renderer: FaceRenderer | None = None, scene: GazeScene | None = None,
                fps: float = 30.0, saccade_s: float = 0.15, head_jitter_px: float = 2.0,
                head_jitter_deg: float = 0.7, seed: int = 0, fourcc: str = "mp4v") -> RenderedVideo:
    """Render a video of a face that follows the targets of calibration/validation runs.

    ``runs`` are :class:`~ifllm_lab.gaze.procedure.TargetRun` objects on one clock
    (t = frame index / fps, from 0). The eyes jump to each new target ``saccade_s``
    after it appears (a real saccade latency) and rest at the screen centre between
    runs. Returns the true gaze point of every frame (``target_index`` = -1 where no
    target was shown).
    """
    renderer = renderer or FaceRenderer()
    scene = scene or GazeScene()
    rng = np.random.default_rng(seed)
    end = max(r.end_t for r in runs)
    w, h = renderer.size
    out = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not out.isOpened():
        raise OSError(f"cannot write video {path} with codec {fourcc}")
    gaze = (scene.screen_w / 2, scene.screen_h / 2)
    truth, index = [], []
    try:
        for i in range(int(np.ceil(end * fps)) + 1):
            t = i / fps
            shown = -1
            for run in runs:
                s = run.state_at(t - saccade_s)
                if s.stage == "target":
                    gaze, shown = (s.x, s.y), s.index
            img = renderer.render(*scene.shift_for(*gaze), head_dx=rng.normal(0, head_jitter_px),
                                  head_dy=rng.normal(0, head_jitter_px), head_rot_deg=rng.normal(0, head_jitter_deg))
            out.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            truth.append(gaze)
            index.append(shown)
    finally:
        out.release()
    n = len(truth)
    return RenderedVideo(path, fps, np.array(truth, float), np.array(index), np.zeros(n, bool))
