"""Importers: data recorded elsewhere turned into IFLLM Lab session files. No Qt."""
