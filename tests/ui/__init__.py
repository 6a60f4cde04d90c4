"""Tests of ifllm_lab.ui (Qt offscreen): screens, widgets, replay, the workbench."""
