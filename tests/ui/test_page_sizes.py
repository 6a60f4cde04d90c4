"""Every participant and researcher page at the smallest lab window (1024 x 640 logical px,
at 100 % and 150 % display scaling) and on a 4K screen at 200 % and 100 %: no label, button, check
box, radio button, combo box, line edit or spin box is clipped, squeezed below its size
hint, elided or outside the window, and painted text fits where it is drawn.

Each size and scale runs in a child process (Qt reads ``QT_SCALE_FACTOR`` when the
application is made): ``python -m tests.support.page_sizes``. Screenshots of every page go
to ``$IFLLM_SCREENSHOTS`` when set, else the test's tmp folder, named
``<page>-<physical size>@<scale %>.png``.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.child_process import child_env
from tests.support.page_sizes import PAGES, widget_problems
from tests.support.repo import REPO
from tests.support.screenshots import shots_folder

# (screen in physical px, display scale): the window is the screen's logical size
SIZES = [("1024x640", 1.0), ("1536x960", 1.5), ("3840x2160", 2.0), ("3840x2160", 1.0)]


def _render(size: str, scale: float, shots) -> dict:
    cmd = [sys.executable, "-m", "tests.support.page_sizes", "--size", size, "--scale", f"{scale:g}",
           "--out", str(shots), "--shots"]
    p = subprocess.run(cmd, cwd=str(REPO), env=child_env(), capture_output=True, text=True, timeout=600)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert p.returncode == 0 and lines, f"exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    return json.loads(lines[-1])


@pytest.mark.parametrize("size, scale", SIZES, ids=[f"{s}@{round(k * 100)}" for s, k in SIZES])
def test_every_page_fits(size, scale, tmp_path):
    shots = shots_folder(tmp_path)
    report = _render(size, scale, shots)
    w, h = (int(v) for v in size.split("x"))
    assert report["logical"] == [round(w / scale), round(h / scale)]
    assert list(report["pages"]) == list(PAGES)
    assert len(report["shots"]) == len(PAGES)
    bad = {page: problems for page, problems in report["pages"].items() if problems}
    assert not bad, f"{size} @ {scale:g}: " + "".join(
        f"\n  {page}:" + "".join(f"\n    {p}" for p in problems) for page, problems in bad.items())


def test_the_check_finds_what_is_cut(qapp):
    """The check itself: a squeezed button, a label out of the window, a wrapped label
    too short for its text, a combo box too narrow for its text, a placeholder cut, and
    painted text too large for its place are each named."""
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QFont
    from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QPushButton, QWidget

    class Painted(QWidget):
        def painted_texts(self):
            f = QFont()
            f.setPixelSize(40)
            return [(QRectF(0, 0, 60, 20), "Waiting for the camera", f, int(Qt.AlignmentFlag.AlignCenter))]

    win = QWidget()
    win.resize(300, 200)
    squeezed = QPushButton("Start session", win)
    squeezed.setObjectName("start")
    squeezed.setGeometry(0, 0, 30, 30)
    outside = QLabel("far away", win)
    outside.setGeometry(280, 10, 100, 20)
    wrapped = QLabel("a long text that needs several lines at this width " * 3, win)
    wrapped.setWordWrap(True)
    wrapped.setGeometry(0, 40, 120, 20)
    combo = QComboBox(win)
    combo.addItem("All participants of every study")
    combo.setGeometry(0, 70, 60, combo.sizeHint().height())
    edit = QLineEdit(win)
    edit.setPlaceholderText("participant code (stored only as a pseudonym)")
    edit.setGeometry(0, 110, 80, edit.sizeHint().height())
    painted = Painted(win)
    painted.setGeometry(150, 120, 100, 50)
    fine = QPushButton("OK", win)
    fine.setGeometry(150, 60, fine.sizeHint().width(), fine.sizeHint().height())
    win.show()
    try:
        problems = widget_problems(win)
        text = "\n".join(problems)
        assert "QPushButton#start 'Start session': 30 px wide" in text, text
        assert "QLabel 'far away'" in text and "outside the window" in text, text
        assert any(p.startswith("QLabel 'a long text") and "px high, needs" in p for p in problems), text
        assert "QComboBox 'All participants of every study': the text is cut" in text, text
        assert "its placeholder is cut" in text, text
        assert "Painted painted 'Waiting for the camera': needs" in text, text
        assert "'OK'" not in text, text
    finally:
        win.close()
        win.deleteLater()
