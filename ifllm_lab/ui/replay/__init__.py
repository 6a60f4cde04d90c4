"""Session replay: the stimulus as the participant saw it with gaze / fixation / mouse /
heatmap / AOI overlays (``stimulus``), the pyqtgraph timeline (``timeline``), the window
(``window``) and headless PNG / MP4 export (``export``)."""
from ...importers import ifllm as _ifllm  # noqa: F401  (imported IFLLM sessions: their layout and detector defaults)
