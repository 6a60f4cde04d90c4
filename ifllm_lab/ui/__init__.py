"""Qt (PySide6) user interface of the lab recorder. The only package that imports Qt.

``ifllm_lab.ui.calibration_screens``: the participant's face-position guide and
calibration / validation / drift-check target screen, and the researcher's validation
report and drift-check views; ``ifllm_lab.ui.calibration_wizard``: the whole calibration
part of a session (face guide -> calibration -> validation -> report, and drift checks).
Names are re-exported here lazily, so importing
``ifllm_lab.ui`` alone does not load Qt.
"""
from __future__ import annotations

_SCREENS = (
    "TargetScreen", "FaceGuide", "GazeBridge", "ValidationReportView", "DriftResultView",
    "FacePositionTargets", "FaceStatus", "face_status", "point_grade",
)

_WIZARD = ("CalibrationWizard",)

__all__ = list(_SCREENS + _WIZARD)


def __getattr__(name):
    if name in _SCREENS:
        from . import calibration_screens

        return getattr(calibration_screens, name)
    if name in _WIZARD:
        from . import calibration_wizard

        return getattr(calibration_wizard, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
