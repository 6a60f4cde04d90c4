"""Tests of ifllm_lab.llm: the chat backends."""
