"""Worker processes for background reading (the sessions catalog, feature extraction).

Fresh processes (forkserver on Linux, spawn elsewhere), never forks of a process that may
hold a window's or another thread's locks, and at lower priority than the window they work
for: a repaint that waits for a free core is a stall the researcher sees.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

__all__ = ["background_pool"]


def _background_priority() -> None:
    try:
        os.nice(10)
    except (AttributeError, OSError):  # no nice() here, or not allowed: work at normal priority
        pass


def background_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` fresh, low-priority processes (use it in a ``with``)."""
    context = multiprocessing.get_context("forkserver" if sys.platform.startswith("linux") else "spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_background_priority)
