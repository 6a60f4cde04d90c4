"""Fixtures of the Qt tests."""
from tests.support.workbench import make_wb  # noqa: F401  (a fixture: make_wb(folder) opens a workbench)
