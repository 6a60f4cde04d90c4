"""Tests of ifllm_lab.gaze: landmarks, features, filters, the tracker, calibration."""
