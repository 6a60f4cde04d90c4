"""Face landmarks from MediaPipe Tasks FaceLandmarker (one face, 478 points with irises).

The model bundle ships with the app as package data (``ifllm_lab/data/models/face_landmarker.task``).
Landmarks are returned in **image pixels** (x right, y down; z in the same scale as
x, relative to the face centre, smaller = closer to the camera), together with the
facial transformation matrix (face pose in the camera frame, centimetres).
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import io
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..paths import data_file

MODEL_NAME = "face_landmarker.task"


def default_model_path() -> Path:
    """The bundled face model: ``models/face_landmarker.task`` in the package data
    (:func:`ifllm_lab.paths.data_file`)."""
    return data_file("models", MODEL_NAME)


# MediaPipe's vision package imports its drawing helpers on import, and they import
# matplotlib.pyplot (about 0.3 s and, in the standalone bundle, 30 MB with its fonts and
# image libraries). The app draws the face mesh with Qt and never calls them: while the
# vision package is first imported, these two submodules are empty modules. A later
# explicit import of one of them (another program in the same process) gets the real one.
_UNUSED_MEDIAPIPE = ("mediapipe.tasks.python.vision.drawing_utils", "mediapipe.tasks.python.vision.drawing_styles")


class _EmptyModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in _UNUSED_MEDIAPIPE else None

    def create_module(self, spec):
        return None  # an ordinary empty module

    def exec_module(self, module) -> None:
        module.__doc__ = "not loaded by IFLLM Lab (MediaPipe's drawing helpers are unused)"


def _import_vision():
    """``mediapipe.tasks.python`` and its ``vision`` package, without the drawing helpers."""
    if "mediapipe.tasks.python.vision" not in sys.modules and os.environ.get("IFLLM_MEDIAPIPE_DRAWING") != "1":
        finder = _EmptyModules()
        sys.meta_path.insert(0, finder)
        try:
            from mediapipe.tasks.python import vision  # noqa: F401
        finally:
            sys.meta_path.remove(finder)
            package = sys.modules.get("mediapipe.tasks.python.vision")
            for name in _UNUSED_MEDIAPIPE:  # the real module for anyone who imports it later
                sys.modules.pop(name, None)
                if package is not None and hasattr(package, name.rsplit(".", 1)[1]):
                    delattr(package, name.rsplit(".", 1)[1])
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision

    return mp_tasks, vision


class LandmarkerError(Exception):
    """The face model cannot be loaded; the message names the file and what to do."""


@dataclass
class FaceResult:
    """One detected face.

    Attributes:
        points: (478, 3) float32 landmarks in image px (x, y) and z (px scale).
        matrix: (4, 4) facial transformation matrix (camera frame, cm), or None.
        image_size: (width, height) of the analysed image, px.
    """

    points: np.ndarray
    matrix: np.ndarray | None
    image_size: tuple[int, int]


class FaceLandmarker:
    """MediaPipe FaceLandmarker in VIDEO mode (tracking between frames), one face.

    Use as a context manager or call :meth:`close`: the native graph holds threads
    and memory until closed.

    Raises:
        LandmarkerError: the model file is missing, unreadable or not a valid model.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, *, video: bool = True,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5):
        path = Path(model_path) if model_path is not None else default_model_path()
        self.model_path = path
        if not path.is_file():
            raise LandmarkerError(
                f"Face model not found: {path}. Reinstall IFLLM Lab or set the face model path in the "
                f"study settings to a {MODEL_NAME} file."
            )
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LandmarkerError(f"Face model {path} cannot be read: {exc.strerror or exc}.") from exc
        if len(data) < 1024 or not zipfile.is_zipfile(io.BytesIO(data)):  # a .task bundle is a zip archive
            raise LandmarkerError(
                f"Face model {path} is not a MediaPipe model bundle (corrupt or wrong file, "
                f"{len(data)} bytes). Replace it with the {MODEL_NAME} shipped with IFLLM Lab."
            )
        mp_tasks, vision = _import_vision()

        self._mode_video = video
        options = vision.FaceLandmarkerOptions(
            base_options=mp_tasks.BaseOptions(model_asset_buffer=data),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            num_faces=1,
            min_face_detection_confidence=min_detection_confidence,
            min_face_presence_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
            output_face_blendshapes=False,
            output_facial_transformation_matrixes=True,
        )
        try:
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
        except Exception as exc:  # MediaPipe raises RuntimeError/ValueError with internal text
            raise LandmarkerError(
                f"Face model {path} could not be loaded ({exc}). Replace it with the {MODEL_NAME} "
                "shipped with IFLLM Lab."
            ) from exc
        self._last_ms = -1

    def detect(self, image_rgb: np.ndarray, t: float | None = None) -> FaceResult | None:
        """Landmarks of the face in an RGB uint8 image (H, W, 3), or None when no face.

        ``t`` (seconds) is the frame time; in VIDEO mode timestamps must increase, so
        equal or earlier times are nudged forward by 1 ms.
        """
        import mediapipe as mp

        h, w = image_rgb.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image_rgb))
        if self._mode_video:
            ms = int(round((t or 0.0) * 1000))
            if ms <= self._last_ms:
                ms = self._last_ms + 1
            self._last_ms = ms
            result = self._landmarker.detect_for_video(image, ms)
        else:
            result = self._landmarker.detect(image)
        if not result.face_landmarks:
            return None
        pts = np.array([(p.x, p.y, p.z) for p in result.face_landmarks[0]], dtype=np.float32)
        pts *= np.array([w, h, w], dtype=np.float32)
        matrix = None
        if result.facial_transformation_matrixes:
            matrix = np.asarray(result.facial_transformation_matrixes[0], dtype=np.float64)
        return FaceResult(pts, matrix, (w, h))

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
