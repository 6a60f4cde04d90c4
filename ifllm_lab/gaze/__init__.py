"""Webcam gaze: landmarks, eye features, calibration, filters, tracker. No Qt."""
