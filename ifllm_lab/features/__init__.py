"""Implicit-feedback features of sessions (what a reward model learns from). No Qt."""
