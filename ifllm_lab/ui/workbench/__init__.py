"""The researcher's workbench: sessions, studies, replays and imports in one window."""
from .window import Workbench, run_workbench

__all__ = ["Workbench", "run_workbench"]
