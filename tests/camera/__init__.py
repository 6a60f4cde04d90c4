"""Tests of ifllm_lab.camera: frame sources on real files."""
