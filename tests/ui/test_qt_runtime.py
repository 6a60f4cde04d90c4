"""The Qt binding the app runs on must not leak references to None: PySide6 6.12.0 on
Python 3.11 dropped one per void call and aborted the interpreter after about a minute of UI."""
from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget


def test_void_calls_keep_none_alive(qtbot):
    w = QWidget()
    qtbot.addWidget(w)
    timer = QTimer()
    before = sys.getrefcount(None)
    for _ in range(2000):
        w.update()
        timer.stop()
    assert sys.getrefcount(None) - before > -100
