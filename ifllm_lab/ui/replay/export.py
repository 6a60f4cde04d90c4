"""Headless replay export: one PNG at a moment, or an MP4 of a time span.

Frames are painted by the same :class:`~.stimulus.StimulusRenderer` as the window, into
offscreen images (no display needed: the offscreen Qt platform works); videos are
written with OpenCV (MPEG-4 part 2, ``mp4v``, which every OpenCV build can write).
"""
from __future__ import annotations

import math
import os

import cv2
import numpy as np
from PySide6.QtCore import QBuffer, QIODevice
from PySide6.QtGui import QImage

from .stimulus import Overlays, StimulusRenderer, render_image

__all__ = ["export_png", "export_mp4", "qimage_to_rgb"]


def qimage_to_rgb(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    arr = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)[:, : w * 3]
    return arr.reshape(h, w, 3).copy()


def _renderer(data, detect: bool) -> StimulusRenderer:
    r = StimulusRenderer(data)
    data.layout()  # built now: a headless frame must not come out without its text
    if detect:
        try:
            r.set_fixations(data.fixations())
        except Exception as exc:  # still export the rest
            data.problems.append(f"fixations could not be detected: {exc}")
    return r


def export_png(data, out: str | os.PathLike, t: float, *, size=(1280, 720), overlays: Overlays | None = None,
               detect: bool = True) -> dict:
    """The stimulus and overlays at session time ``t`` (clamped to the session) as a PNG."""
    overlays = overlays or Overlays()
    t = float(min(max(t, data.t_start), data.t_end))
    r = _renderer(data, detect and (overlays.fixations or overlays.scanpath))
    img = render_image(r, t, size, overlays)
    out = os.fspath(out)
    buf = QBuffer()  # encoded in memory, then written by Python: a failed write is an OSError
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    if not img.save(buf, "PNG"):
        raise ValueError("the image could not be encoded as PNG")
    with open(out, "wb") as fh:
        fh.write(bytes(buf.data()))
    return {"file": out, "t": t, "size": list(size)}


def export_mp4(data, out: str | os.PathLike, *, t0: float | None = None, t1: float | None = None, fps: float = 30.0,
               speed: float = 1.0, size=(1280, 720), overlays: Overlays | None = None, detect: bool = True,
               progress=None) -> dict:
    """Frames from ``t0`` to ``t1`` (session seconds; default: the whole session) every
    ``speed / fps`` seconds, as an MP4 at ``fps``."""
    overlays = overlays or Overlays()
    t0 = data.t_start if t0 is None else max(float(t0), data.t_start)
    t1 = data.t_end if t1 is None else min(float(t1), data.t_end)
    if not t1 > t0:
        raise ValueError(f"nothing to export: the span {t0:.2f}-{t1:.2f} s is empty")
    if fps <= 0 or speed <= 0:
        raise ValueError("fps and speed must be positive")
    w, h = int(size[0]) // 2 * 2, int(size[1]) // 2 * 2  # codecs want even sizes
    n = int(math.floor((t1 - t0) * fps / speed)) + 1
    r = _renderer(data, detect and (overlays.fixations or overlays.scanpath))
    out = os.fspath(out)
    writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot write video {out}")
    try:
        for k in range(n):
            t = t0 + k * speed / fps
            rgb = qimage_to_rgb(render_image(r, t, (w, h), overlays))
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            if progress is not None:
                progress(k + 1, n)
    finally:
        writer.release()
    return {"file": out, "frames": n, "fps": fps, "t0": t0, "t1": t1, "size": [w, h]}
