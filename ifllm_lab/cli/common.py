"""What every command shares: the one-line problem (:class:`CommandError`), checks of input
and output places made before any work, and cleanup of what a failed command wrote."""
from __future__ import annotations

import os
import shutil

from ..console import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, parse_size, report_problem
from ..paths import probe_write, unreadable_file

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_BAD_INPUT", "CommandError", "report_problem", "input_file",
           "output_folder", "output_file", "check_writable_folder", "NewFiles", "write_problem", "size_arg",
           "progress_printer"]


class CommandError(Exception):
    """A problem to report as one line (``ifllm-lab: ...`` on stderr) with an exit status:
    :data:`EXIT_BAD_INPUT` for input or output places that cannot be used, :data:`EXIT_FAILED`
    for a failure while working."""

    def __init__(self, message: str, status: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.status = status


def input_file(path: str, what: str = "file") -> str:
    """``path`` as a readable file, or CommandError naming it and what is wrong."""
    problem = unreadable_file(path, what)
    if problem:
        raise CommandError(problem)
    return path


def _place_problem(target: str, exc: OSError, what: str) -> CommandError:
    """An output place that cannot be used: bad input (2), but a full disk is a failure (1)."""
    from ..session.store import write_failure_reason

    reason = write_failure_reason(exc)
    return CommandError(f"{target}: {what}: {reason}", EXIT_FAILED if reason == "the disk is full" else EXIT_BAD_INPUT)


def check_writable_folder(folder: str, target: str) -> None:
    """CommandError about ``target`` unless a file can be made in ``folder``."""
    try:
        probe_write(folder)
    except OSError as exc:
        raise _place_problem(target, exc, f"cannot write in {folder}") from None


def output_folder(path: str) -> bool:
    """Make sure ``path`` can take output files: an existing writable folder, or a new
    one made in an existing writable folder. Returns True when it was made here."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise CommandError(f"{path} is a file, not a folder for the output")
        check_writable_folder(path, path)
        return False
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CommandError(f"{path}: the folder it would go in ({parent}) does not exist")
    try:
        os.mkdir(path)
    except OSError as exc:
        raise _place_problem(path, exc, "the folder cannot be made") from None
    try:
        check_writable_folder(path, path)
    except CommandError:
        os.rmdir(path)
        raise
    return True


def output_file(path: str) -> str:
    """Make sure ``path`` can be written as a new file (its folder exists and is writable)."""
    if os.path.isdir(path):
        raise CommandError(f"{path} is a folder, not a file name for the output")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CommandError(f"{path}: the folder it would go in ({parent}) does not exist")
    check_writable_folder(parent, path)
    return path


class NewFiles:
    """Removes what a failed command wrote into an output folder: the folder itself when
    the command made it, else the entries that were not there before."""

    def __init__(self, folder: str, made: bool):
        self.folder = folder
        self.made = made
        self.before = set() if made else set(os.listdir(folder))

    def remove(self) -> None:
        if self.made:
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        for name in set(os.listdir(self.folder)) - self.before:
            p = os.path.join(self.folder, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                try:
                    os.remove(p)
                except OSError:
                    pass


def write_problem(target: str, exc: OSError) -> CommandError:
    """A failed write as one line: the disk filled, or another write error."""
    from ..session.store import write_failure_reason

    reason = write_failure_reason(exc)
    return CommandError(f"cannot write to {target}: {reason}; nothing was left there", EXIT_FAILED)


def size_arg(text: str, option: str = "--size") -> tuple[int, int]:
    """A ``WxH`` option, or CommandError naming the option."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise CommandError(f"{option}: {exc}") from None


def progress_printer(args):
    """``progress(fraction, message)`` for a long command: one line on stderr rewritten in
    place, silent with ``--quiet``."""
    import sys

    def show(fraction: float, message: str) -> None:
        if not args.quiet:
            print(f"\r{100 * fraction:5.1f} % {message[:70]:<70}", end="", file=sys.stderr, flush=True)
    return show
