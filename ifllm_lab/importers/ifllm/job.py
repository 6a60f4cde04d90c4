"""The IFLLM import as a job (:mod:`ifllm_lab.jobs`): a window or a child process runs it
with progress, cancel and a log like any other long work.

Nothing is imported from ``jobs/`` (a layer above this one): the function only calls the
context it is given."""
from __future__ import annotations

import os

from .release import ImportReport, import_release

__all__ = ["import_job"]


def import_job(ctx, src: str, out_dir: str, *, jobs: int | None = None,
               overwrite: bool = False) -> ImportReport:
    """:func:`~ifllm_lab.importers.ifllm.release.import_release` as a job body
    (``Job(import_job, src, out_dir)``; ``ctx`` is the job's context): progress is the
    fraction of sessions imported, a cancel stops it between sessions (the job ends
    ``cancelled`` with the report of what was imported as its partial work), and the log
    lists every session file written and what was not imported, and why.

    Errors before any work (not a release, an unusable output folder) fail the job with
    their message. A full disk ends the job ``done`` with the report saying where it stopped
    (``report.stopped``), as the import itself does."""
    ctx.progress(0.0, f"reading {os.path.basename(os.path.normpath(os.fspath(src)))}")
    ctx.log(f"import {src} -> {out_dir}" + (" (overwrite)" if overwrite else ""))

    def progress(done: int, total: int, path: str) -> None:
        ctx.progress(done / total if total else 1.0, f"{done} of {total} sessions imported")
        ctx.log(f"imported {path}")

    report = import_release(src, out_dir, jobs=jobs, overwrite=overwrite, progress=progress,
                            cancel=lambda: ctx.cancelled)
    for path in report.skipped:
        ctx.log(f"kept (imported before) {path}")
    for n in report.not_imported:
        ctx.log(f"not imported {n.worker}/{n.task}: {n.reason}")
    summary = (f"{len(report.sessions)} sessions imported, {len(report.skipped)} kept, "
               f"{len(report.not_imported)} not imported")
    ctx.partial(report)
    if report.stopped == "cancelled":
        ctx.progress(None, f"cancelled: {summary}")
        ctx.check_cancel()  # ends the job cancelled, the report as its partial work
    if report.stopped:
        ctx.log(f"stopped: {report.stopped}")
        summary += f"; stopped: {report.stopped}"
    ctx.progress(None, summary)
    ctx.log(summary)
    return report
