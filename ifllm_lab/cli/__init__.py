"""``ifllm-lab`` command line: one subcommand per job, each group in its own module
(``register(sub)`` adds its subcommands).

Every command reports problems as one clear line on stderr and a non-zero exit
status (2 for bad input, 1 for a failure while working), never a traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from . import benchmarks, dpo, features, importing, participants, reward, sessions, windows
from .common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, CommandError, report_problem

__all__ = ["main", "build_parser", "CommandError", "EXIT_OK", "EXIT_FAILED", "EXIT_BAD_INPUT"]

# the order of ``ifllm-lab --help``
COMMAND_GROUPS = (windows, importing, sessions, participants, features, reward, dpo, benchmarks)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="ifllm-lab",
        description="IFLLM Lab: record, replay and learn from implicit feedback (gaze, mouse) on LLM answers.",
    )
    p.add_argument("--version", action="version", version=f"ifllm-lab {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="print progress and warnings of every component")
    p.add_argument("--self-test", action="store_true",
                   help="check this installation offscreen (face model, LLM, session file, replay, export, "
                        "workbench) and exit: 0 when all passed, 1 naming the first failing check")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Producer threads (camera, UI, mouse) must get the interpreter back quickly from the
    # writer and analysis threads: 1 ms instead of Python's default 5 ms between switches.
    sys.setswitchinterval(0.001)

    # components log details; a command already reports what matters in one line
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.self_test:
        from ..ui.selftest import run_self_test

        return run_self_test()
    if not getattr(args, "func", None):  # no command: the researcher's workbench
        args.func, args.command = windows.cmd_lab, "lab"
    try:
        return args.func(args)
    except CommandError as exc:
        report_problem(str(exc))
        return exc.status
    except KeyboardInterrupt:
        report_problem("interrupted")
        return 130
    except Exception as exc:  # a fault of the program: still one line (the details with -v)
        logging.getLogger("ifllm_lab.cli").debug("unexpected error", exc_info=True)
        if args.verbose:
            import traceback

            traceback.print_exc()
        report_problem(f"{args.command} failed unexpectedly: {type(exc).__name__}: {exc} (run with -v for the details)")
        return EXIT_FAILED
