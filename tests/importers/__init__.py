"""Tests of ifllm_lab.importers: the IFLLM release import and its layout reconstruction."""
