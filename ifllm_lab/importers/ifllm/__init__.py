"""The public IFLLM release (arXiv 2606.20482): its importer and what exists only for
sessions imported from it (the layout reconstruction, the WebGazer detector defaults).

Importing this package registers how analysis treats those sessions
(:mod:`ifllm_lab.analysis.sources`).
"""
from ...analysis import sources as _sources
from .detection import WEBGAZER_LABEL, WEBGAZER_PARAMS
from .job import import_job
from .layout import reconstruct_layout
from .release import (
    SOURCE,
    ImportReport,
    ImportStopped,
    ImportTargetError,
    NotImported,
    ReleaseFormatError,
    SessionResult,
    import_release,
)

_sources.register(_sources.SessionSource(
    SOURCE, label=WEBGAZER_LABEL, streams=("gaze_rel", "mouse_rel"), reconstruct_layout=reconstruct_layout,
    detector_defaults=WEBGAZER_PARAMS,
))

__all__ = ["ImportReport", "ImportStopped", "ImportTargetError", "NotImported", "ReleaseFormatError",
           "SessionResult", "WEBGAZER_PARAMS", "import_job", "import_release", "reconstruct_layout"]
