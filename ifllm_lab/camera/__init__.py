"""Frame sources (webcam, video file, image folder) behind one interface. No Qt.

Frames are (H, W, 3) uint8 **RGB** arrays with a time ``t`` in seconds on the session
clock; sizes are (width, height) in px. See :mod:`ifllm_lab.camera.sources`.
"""
from .sources import (
    IMAGE_EXTENSIONS,
    CameraError,
    CameraInfo,
    CameraSource,
    Frame,
    FrameSource,
    ImageFolderSource,
    SourceStatus,
    VideoFileSource,
    list_cameras,
    open_source,
)

__all__ = [
    "IMAGE_EXTENSIONS", "CameraError", "CameraInfo", "CameraSource", "Frame", "FrameSource",
    "ImageFolderSource", "SourceStatus", "VideoFileSource", "list_cameras", "open_source",
]
