"""Workbench windows for tests: each with its own settings file and catalog cache, their jobs
stopped at the end."""
from __future__ import annotations

import pytest

SIZES = {"small": (1024, 640), "large": (1920, 1080)}


@pytest.fixture
def make_wb(qtbot, tmp_path):
    """``make(folder, settings_name="wb.ini", size=SIZES["large"])``: a shown Workbench on
    ``folder`` (None: the last one) with its own settings file and catalog cache."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from ifllm_lab.ui.style import apply_dark_palette
    from ifllm_lab.ui.workbench import Workbench

    apply_dark_palette(QApplication.instance())
    made = []

    def make(folder, settings_name="wb.ini", size=SIZES["large"]):
        settings = QSettings(str(tmp_path / settings_name), QSettings.Format.IniFormat)
        wb = Workbench(str(folder) if folder else None, settings=settings, cache_dir=str(tmp_path / "cache"))
        qtbot.addWidget(wb)
        if size:
            wb.resize(*size)
        wb.show()
        made.append(wb)
        return wb

    yield make
    for wb in made:
        for runner, _ in list(wb.runners):
            runner.cancel()
            runner.wait(60)
