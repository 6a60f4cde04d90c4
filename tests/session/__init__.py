"""Tests of ifllm_lab.session: the session file, its faults, recovery, catalog and export."""
