"""Implicit-feedback features and the IFLLM release importer. No Qt."""
