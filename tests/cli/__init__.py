"""Tests of ifllm_lab.cli: the command line as a user runs it."""
