"""Draw the app icon (ifllm_lab/data/icons/ifllm-lab.png, 512 px) with Qt: an eye whose
gaze rests on a chat bubble's lines. Run once after changing it:
    QT_QPA_PLATFORM=offscreen python tools/make_icon.py"""
from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QGuiApplication, QImage, QPainter, QPainterPath, QPen

SIZE = 512


def draw(size: int = SIZE) -> QImage:
    img = QImage(size, size, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = size / 512.0
    p.scale(s, s)
    # the tile
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("#1f2630"))
    p.drawRoundedRect(QRectF(16, 16, 480, 480), 96, 96)
    # the chat bubble, lower right, with three lines of text
    bubble = QPainterPath()
    bubble.addRoundedRect(QRectF(196, 250, 260, 178), 36, 36)
    tail = QPainterPath()
    tail.moveTo(250, 420)
    tail.lineTo(222, 470)
    tail.lineTo(300, 424)
    bubble = bubble.united(tail)
    p.setBrush(QColor("#e8edf3"))
    p.drawPath(bubble)
    p.setPen(QPen(QColor("#7a8796"), 18, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    for i, (x0, x1) in enumerate(((232, 420), (232, 396), (232, 340))):
        y = 298 + i * 42
        p.drawLine(QPointF(x0, y), QPointF(x1, y))
    # the eye, upper left
    eye = QPainterPath()
    eye.moveTo(56, 178)
    eye.quadTo(176, 48, 296, 178)
    eye.quadTo(176, 308, 56, 178)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("#2b3542"))
    p.drawPath(eye)
    p.save()
    p.setClipPath(eye)  # the iris stays inside the lids
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("#4aa3df"))
    p.drawEllipse(QPointF(196, 196), 52, 52)  # the iris looks down right, at the answer
    p.setBrush(QColor("#0d1117"))
    p.drawEllipse(QPointF(204, 204), 24, 24)
    p.setBrush(QBrush(QColor(255, 255, 255, 220)))
    p.drawEllipse(QPointF(184, 180), 10, 10)
    p.restore()
    p.setPen(QPen(QColor("#f5b642"), 14, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawPath(eye)  # the lids over the iris
    p.setPen(Qt.PenStyle.NoPen)
    # the gaze point on the first line
    p.setBrush(QColor(245, 182, 66, 230))
    p.drawEllipse(QPointF(330, 298), 20, 20)
    p.end()
    return img


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv)  # noqa: F841
    out = Path(__file__).resolve().parents[1] / "ifllm_lab" / "data" / "icons" / "ifllm-lab.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    ok = draw().save(str(out))
    print(out, "saved" if ok else "NOT saved")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
