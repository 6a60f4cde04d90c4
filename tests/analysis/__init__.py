"""Tests of ifllm_lab.analysis: AOIs, events, reading measures, the text hit test."""
