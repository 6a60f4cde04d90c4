"""Eye-movement event detection defaults for the WebGazer gaze of the IFLLM release."""
from __future__ import annotations

__all__ = ["WEBGAZER_LABEL", "WEBGAZER_PARAMS"]

#: Defaults :func:`ifllm_lab.analysis.events.detect` uses for sessions imported from the
#: IFLLM release (WebGazer in a browser, ``meta.source == "ifllm-release"``), merged under
#: the caller's own params. An empirical choice, not from the literature: WebGazer gaze
#: there arrives at ~5-25 Hz (median interval ~80 ms) and moves a median 1.2-2 deg (nominal
#: geometry) between samples even when the reader fixates, so I-DT at 1 deg / 100 ms only
#: finds the 100-120 ms stretches between two near-identical samples (median 117 ms, 25 % of
#: the time on a sample of the release); 3 deg / 150 ms (about two sample intervals) gives a
#: median ~200 ms and ~50 % of the time. I-VT's lab defaults already give a median ~180 ms
#: there.
WEBGAZER_PARAMS: dict[str, dict] = {"idt": {"dispersion_deg": 3.0, "min_duration_s": 0.15}, "ivt": {}}

#: How the detector description names these defaults.
WEBGAZER_LABEL = "IFLLM-release (WebGazer)"
