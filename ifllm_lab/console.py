"""How every command of ``ifllm-lab`` ends: exit statuses and the one-line problem report.
Plain Python: the command line and the Qt entry points (``ui/``) share it."""
from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_FAILED = 1  # a failure while working: a full disk, some sessions not imported
EXIT_BAD_INPUT = 2  # bad input, or an output place that cannot be used


def report_problem(message: str) -> None:
    """One line on stderr: ``ifllm-lab: MESSAGE``."""
    print(f"ifllm-lab: {message}", file=sys.stderr)


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> (1280, 720); ValueError naming the text when it is not WIDTHxHEIGHT
    in 16-8192 px."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"a size is WIDTHxHEIGHT in px, not {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise ValueError(f"size {text} is out of range (16-8192 px)")
    return w, h
