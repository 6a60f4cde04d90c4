"""Tests of ifllm_lab.jobs: long work, in this process and in a child."""
