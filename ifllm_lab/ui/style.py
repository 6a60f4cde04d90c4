"""Colours, font sizes and small painting helpers shared by the lab's screens.

Participant screens use a uniform mid-dark grey (#3a3a3a, the usual background of
eye-tracking calibration: the pupil stays at a mid size, and a light target has high
contrast without glare). Researcher views use the same palette so switching between them
does not flash the room.

Font sizes are given as fractions of the widget height (:func:`font_px`) so text reads
the same on a laptop and on a large lab monitor; :func:`type_height` keeps them in
proportion on a narrow or portrait window, and :func:`fit_font` makes painted text that
would not fit its place smaller, never below ``MIN_FONT_PX``.
"""
from __future__ import annotations

import math

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QIcon
from PySide6.QtWidgets import QApplication

BACKGROUND = QColor("#3a3a3a")
PANEL = QColor("#2f2f2f")  # the screen map / diagram area in researcher views
PANEL_EDGE = QColor("#5a5a5a")
TEXT = QColor("#e6e6e6")
TEXT_DIM = QColor("#a8a8a8")
TEXT_FAINT = QColor("#8a8a8a")

TARGET = QColor("#f2f2f2")  # the calibration target disc
TARGET_CENTRE = QColor("#000000")  # its fixation point

GOOD = QColor("#5cc46b")
WARN = QColor("#f0b429")
BAD = QColor("#ef6a5e")

FONT_FAMILY = "DejaVu Sans"  # falls back to the platform's sans serif when missing
MIN_FONT_PX = 12  # the smallest type a page uses when it makes its text smaller to fit
NARROWEST = 1.6  # the width : height of the narrowest screen type is sized for (1024 x 640)


def font_px(height: float, fraction: float, *, minimum: int = 11, bold: bool = False) -> QFont:
    """A sans-serif font whose pixel size is ``fraction`` of ``height`` (at least ``minimum`` px)."""
    f = QFont(FONT_FAMILY)
    f.setStyleHint(QFont.StyleHint.SansSerif)
    f.setPixelSize(max(int(minimum), int(round(height * fraction))))
    f.setBold(bold)
    return f


def type_height(width: float, height: float) -> float:
    """The height to size type by in a ``width`` x ``height`` area: the height itself on
    a landscape screen, less where the area is narrower than ``NARROWEST`` (a 4:3 or a
    portrait screen), so that a line of text keeps its length relative to the width."""
    return min(float(height), float(width) / NARROWEST)


def fit_font(font: QFont, text: str, rect: QRectF, flags=Qt.AlignmentFlag.AlignCenter, *,
             minimum: int = MIN_FONT_PX) -> QFont:
    """``font``, or a smaller copy of it (not below ``minimum`` px) with which ``text``
    (wrapped at word boundaries) fits into ``rect``."""
    f = QFont(font)
    px = f.pixelSize()
    if px <= 0 or not text:
        return f
    flags = int(flags) | int(Qt.TextFlag.TextWordWrap)
    while True:
        need = QFontMetricsF(f).boundingRect(rect, flags, text)
        if (need.width() <= rect.width() + 0.5 and need.height() <= rect.height() + 0.5) or px <= minimum:
            return f
        px = max(int(minimum), min(px - 1, int(px * 0.92)))
        f.setPixelSize(px)


def fmt(value: float, digits: int = 2, unit: str = "") -> str:
    """A number for display; an en dash for NaN / None."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "\u2013"
    return f"{value:.{digits}f}{unit}"


def css(color: QColor) -> str:
    return color.name()


def button_stylesheet(height: float) -> str:
    """Large, flat buttons for the researcher views (``:default`` is the suggested action)."""
    px = max(13, int(round(height * 0.026)))
    pad_v = max(6, int(round(height * 0.012)))
    pad_h = max(14, int(round(height * 0.03)))
    return (
        f"QPushButton {{ font-family: '{FONT_FAMILY}'; font-size: {px}px; color: {TEXT.name()};"
        f" background: #4a4a4a; border: 1px solid #6a6a6a; border-radius: 6px;"
        f" padding: {pad_v}px {pad_h}px; }}"
        f" QPushButton:hover {{ background: #555555; }}"
        f" QPushButton:pressed {{ background: #404040; }}"
        f" QPushButton:default {{ border: 2px solid #d0d0d0; }}"
        f" QPushButton:focus {{ outline: none; }}"
    )


def apply_dark_palette(app) -> None:
    """The researcher windows' look for a whole application: Qt's Fusion style with this
    module's colours (the study's participant screens set their own)."""
    from PySide6.QtGui import QPalette

    app.setStyle("Fusion")
    pal = QPalette()
    roles = QPalette.ColorRole
    base = QColor("#262626")
    for role, colour in ((roles.Window, BACKGROUND), (roles.WindowText, TEXT), (roles.Base, base),
                         (roles.AlternateBase, PANEL), (roles.Text, TEXT), (roles.Button, QColor("#474747")),
                         (roles.ButtonText, TEXT), (roles.ToolTipBase, PANEL), (roles.ToolTipText, TEXT),
                         (roles.Highlight, QColor("#3d6fa8")), (roles.HighlightedText, QColor("#ffffff")),
                         (roles.PlaceholderText, TEXT_FAINT), (roles.Link, QColor("#7fb2ee")),
                         (roles.Mid, PANEL_EDGE), (roles.Dark, QColor("#202020")), (roles.Light, QColor("#5a5a5a"))):
        pal.setColor(role, colour)
    for role in (roles.WindowText, roles.Text, roles.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, TEXT_FAINT)
    app.setPalette(pal)


def application(argv: list[str] | None = None) -> QApplication:
    """The process's QApplication (made on first use): named "IFLLM Lab", with the app's
    icon on every window (``data/icons/ifllm-lab.png``) and the desktop entry's name, so
    a Linux desktop groups the windows under the installed launcher."""
    from ..paths import data_file

    app = QApplication.instance()
    if app is None:
        app = QApplication(argv or ["ifllm-lab"])
        app.setApplicationName("IFLLM Lab")
        app.setDesktopFileName("ifllm-lab")
    if app.windowIcon().isNull():
        icon = data_file("icons", "ifllm-lab.png")
        if icon.is_file():
            app.setWindowIcon(QIcon(str(icon)))
    return app
