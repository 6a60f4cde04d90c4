"""Generated data for benchmarks and tests, with known truth.

- ``face``: frames and videos of a real face photo (shipped in ``ifllm_lab/data/synthetic``)
  with the irises re-drawn at known positions; needs MediaPipe once to find the eyes.
- ``session``: a recorded session (gaze reading two answers, mouse, turns, layout,
  scroll) written with the real session writer, for replay.
- ``participant``: a simulated participant's webcam eye features for known gaze points,
  for calibration.
- ``scanpath``: gaze samples of known fixations and saccades, for event detection.
- ``layout``: recorded-layout rows of a monospace text view, and a long recorded layout.

Submodules are imported on their own (``from ifllm_lab.synthetic.face import
FaceRenderer``), so using one does not load what the others need.
"""
