"""Analysis of recorded sessions: plain Python + numpy, no Qt.

Modules
-------
- :mod:`ifllm_lab.analysis.events`: eye-movement events from the ``gaze`` stream:
  fixations and saccades (I-DT, I-VT), blinks and gaps, in degrees of visual angle.
- :mod:`ifllm_lab.analysis.layout`: the boxes of one response view and the one hit test
  (which paragraph, line, word and caret a point is on), live and offline.
- :mod:`ifllm_lab.analysis.aoi`: areas of interest over the rendered text (the ``layout``
  stream) over time and the points on them.
- :mod:`ifllm_lab.analysis.sources`: what differs for sessions imported from elsewhere
  (their importers register a layout reconstruction and detector defaults).
- :mod:`ifllm_lab.analysis.metrics`: per-response reading and trajectory measures.
- :mod:`ifllm_lab.analysis.heatmap`: gaze and fixation heat maps.
- :mod:`ifllm_lab.analysis.replay`: what the replay window needs of a session.

Nothing is imported here: import the module you need.
"""
