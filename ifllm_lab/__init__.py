"""IFLLM Lab: a lab recorder and analysis pipeline for implicit feedback on LLM answers."""
__version__ = "0.1.0"
