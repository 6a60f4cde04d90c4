"""Analysis of recorded sessions: plain Python + numpy, no Qt.

Modules
-------
- :mod:`ifllm_lab.analysis.events`: eye-movement events from the ``gaze`` stream:
  fixations and saccades (I-DT, I-VT), blinks and gaps, in degrees of visual angle.
- :mod:`ifllm_lab.analysis.aoi`: areas of interest over the rendered text (the ``layout``
  stream) and the fixations on them.
- :mod:`ifllm_lab.analysis.metrics`: per-response reading and trajectory measures.
- :mod:`ifllm_lab.analysis.heatmap`: gaze and fixation heat maps.
- :mod:`ifllm_lab.analysis.replay`: what the replay window needs of a session.

Nothing is imported here: import the module you need.
"""
