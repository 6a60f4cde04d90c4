"""Real MediaPipe FaceLandmarker on a real face photo, and the eye features from it."""
from __future__ import annotations

import numpy as np
import pytest

from ifllm_lab.gaze.features import BlinkDetector, FEATURE_NAMES, eye_features
from ifllm_lab.gaze.landmarks import FaceLandmarker, LandmarkerError, default_model_path
from ifllm_lab.synthetic.face import FaceRenderer, astronaut_face


@pytest.fixture(scope="module")
def renderer():
    return FaceRenderer()


@pytest.fixture()
def landmarker():
    with FaceLandmarker(video=False) as lm:
        yield lm


def test_bundled_model_is_the_shipped_file():
    import hashlib
    p = default_model_path()
    assert p.is_file() and p.stat().st_size == 3_758_596
    assert hashlib.sha256(p.read_bytes()).hexdigest() == \
        "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"


def test_missing_model_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "face_landmarker.task"
    with pytest.raises(LandmarkerError, match="not found") as err:
        FaceLandmarker(missing)
    assert str(missing) in str(err.value)


@pytest.mark.parametrize("content", [b"", b"\x00" * 5000, b"PK\x03\x04" + b"\x11" * 4000, "truncated"])
def test_corrupt_model_is_a_clear_error(tmp_path, content):
    bad = tmp_path / "face_landmarker.task"
    if content == "truncated":
        content = default_model_path().read_bytes()[:200_000]
    bad.write_bytes(content)
    with pytest.raises(LandmarkerError) as err:
        FaceLandmarker(bad)
    assert str(bad) in str(err.value)


def test_face_found_with_plausible_features(landmarker):
    img = astronaut_face()
    face = landmarker.detect(img)
    assert face is not None and face.points.shape == (478, 3)
    h, w = img.shape[:2]
    assert face.image_size == (w, h)
    xy = face.points[:, :2]
    assert (xy[:, 0] > 0).all() and (xy[:, 0] < w).all() and (xy[:, 1] > 0).all() and (xy[:, 1] < h).all()
    f = eye_features(face)
    v = f.vector()
    assert v.shape == (len(FEATURE_NAMES),) and np.isfinite(v).all()
    assert 0.2 < f.left_openness < 0.5 and 0.2 < f.right_openness < 0.5
    assert 0.25 < f.left_iris_u < 0.75 and 0.25 < f.right_iris_u < 0.75
    assert abs(f.yaw) < 20 and abs(f.roll) < 15
    assert 200 < f.face_distance_mm < 1500
    # the subject's left eye is on the image's right
    assert f.left_eye_width_px > 30 and f.right_eye_width_px > 30


def test_no_face_gives_none(landmarker):
    from skimage import data
    import cv2
    scene = cv2.resize(data.coffee(), (640, 480))
    assert landmarker.detect(scene) is None
    assert landmarker.detect(np.full((480, 640, 3), 127, np.uint8)) is None


def test_iris_features_follow_the_rendered_iris(renderer, landmarker):
    feats = [eye_features(landmarker.detect(renderer.render(du, 0.0))) for du in (-0.15, 0.0, 0.15)]
    # the iris moves right in the image: the subject's right eye (image left) towards its inner corner
    # (u up), the left eye (image right) towards its outer corner (u down)
    r = [f.right_iris_u for f in feats]
    l_ = [f.left_iris_u for f in feats]
    assert r[0] < r[1] < r[2] and r[2] - r[0] > 0.15
    assert l_[0] > l_[1] > l_[2] and l_[0] - l_[2] > 0.15


def test_head_pose_follows_rotation(renderer, landmarker):
    roll0 = eye_features(landmarker.detect(renderer.render())).roll
    roll1 = eye_features(landmarker.detect(renderer.render(head_rot_deg=8))).roll
    assert abs(abs(roll1 - roll0) - 8) < 2.5


def test_blink_frames_are_rejected(renderer, landmarker):
    det = BlinkDetector()
    open_ = [eye_features(landmarker.detect(renderer.render(du, 0.0))).openness for du in np.linspace(-.1, .1, 12)]
    assert not any(det(o) for o in open_)
    closed = eye_features(landmarker.detect(renderer.render(blink=True))).openness
    assert closed < 0.6 * np.median(open_)  # IMAGE mode: no temporal smoothing of the lids
    assert det(closed)
    assert det(float("nan"))
    # a narrow-eyed baseline does not make every frame a blink
    det2 = BlinkDetector()
    assert not any(det2(0.2 + 0.01 * np.sin(i)) for i in range(30))


def test_the_face_model_loads_without_mediapipes_drawing_helpers():
    """MediaPipe's vision package imports matplotlib through its drawing helpers; the app
    never uses them, so a fresh process that finds faces has no matplotlib (0.3 s less at
    start, 30 MB less in the bundle), and the real helpers still import when asked for."""
    import subprocess
    import sys

    code = (
        "import sys, cv2\n"
        "from ifllm_lab.gaze.landmarks import FaceLandmarker\n"
        "from ifllm_lab.paths import data_file\n"
        "img = cv2.cvtColor(cv2.imread(str(data_file('synthetic', 'face.png'))), cv2.COLOR_BGR2RGB)\n"
        "with FaceLandmarker(video=False) as lm:\n"
        "    assert lm.detect(img) is not None\n"
        "print('matplotlib' in sys.modules)\n"
        "from mediapipe.tasks.python.vision import drawing_utils\n"
        "print(callable(getattr(drawing_utils, 'draw_landmarks', None)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "True"]
