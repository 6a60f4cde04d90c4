"""The public IFLLM release (arXiv 2606.20482): its importer and what exists only for
sessions imported from it."""
from .release import (
    ImportReport,
    ImportStopped,
    ImportTargetError,
    NotImported,
    ReleaseFormatError,
    SessionResult,
    import_release,
)
from .job import import_job

__all__ = ["ImportReport", "ImportStopped", "ImportTargetError", "NotImported", "ReleaseFormatError",
           "SessionResult", "import_job", "import_release"]
