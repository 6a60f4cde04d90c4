"""Tests of ifllm_lab.study: readiness, the study session, the participant app end to end."""
