"""``ifllm-lab import-ifllm``: the public IFLLM release into session files."""
from __future__ import annotations

import argparse
import json
import os
import sys

from .common import CommandError, EXIT_FAILED, EXIT_OK, output_file, report_problem, write_problem


def cmd_import_ifllm(args) -> int:
    from ..importers.ifllm import ImportStopped, ImportTargetError, ReleaseFormatError, import_release

    def progress(done, total, path):
        if not args.quiet and sys.stderr.isatty():
            print(f"\r  {done}/{total} sessions", end="", file=sys.stderr, flush=True)

    if args.report:
        output_file(args.report)
    try:
        report = import_release(args.src, args.out, jobs=args.jobs, overwrite=args.overwrite, progress=progress)
    except (ReleaseFormatError, ImportTargetError) as exc:
        raise CommandError(str(exc)) from None
    except ImportStopped as exc:
        raise CommandError(str(exc), EXIT_FAILED) from None
    if sys.stderr.isatty() and not args.quiet:
        print(file=sys.stderr)
    data = report.to_json()
    if args.report:
        try:
            with open(args.report, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, ensure_ascii=False)
        except OSError as exc:
            if os.path.exists(args.report):
                os.remove(args.report)
            raise write_problem(args.report, exc) from None
    if args.json:
        print(json.dumps(data if args.report is None else {"totals": data["totals"], "report": args.report},
                         ensure_ascii=False))
        return _import_status(report)
    tot = data["totals"]
    print(f"Imported {tot['sessions']} sessions ({tot['sessions_with_behaviour']} with behaviour data, "
          f"{tot['turns']} questions) into {report.out_dir}")
    for name, n in tot["streams"].items():
        print(f"  {name:<10}{n:>10} rows")
    print(f"  exact duplicate rows dropped: {tot['duplicates_dropped']}")
    for name, c in tot["files"].items():
        if c.get("duplicates"):
            print(f"    {name}: {c['duplicates']} of {c['rows']}")
    problems = report.all_problems()
    print(f"  rows with problems: {len(problems)}")
    for p in problems[: args.show_problems]:
        where = f"{p.file}:{p.line}" if p.line else p.file
        print(f"    {where}: {p.reason}" + (f"  [{p.text[:60]}]" if p.text else ""))
    if len(problems) > args.show_problems:
        print(f"    ... {len(problems) - args.show_problems} more (use --report FILE for all)")
    questions_only = [s for s in report.sessions if not s.files]
    if questions_only:
        print(f"  {len(questions_only)} tasks have questions but no behaviour files in the release "
              "(imported with their turns only)")
    notes = [n for n in data["notes"] if "no behaviour files" not in n]
    for note in notes[: args.show_problems]:
        print(f"  note: {note}")
    if len(notes) > args.show_problems:
        print(f"  ... {len(notes) - args.show_problems} more notes (use --report FILE for all)")
    if report.skipped:
        print(f"  already imported (kept): {len(report.skipped)} sessions")
    if report.not_imported:
        print(f"  NOT imported: {len(report.not_imported)} sessions")
        for n in report.not_imported[: args.show_problems]:
            print(f"    {os.path.basename(n.path)}: {n.reason}")
    return _import_status(report)


def _import_status(report) -> int:
    """Exit 1 with one line on stderr when some sessions were not imported."""
    if not report.not_imported:
        return EXIT_OK
    total = len(report.sessions) + len(report.skipped) + len(report.not_imported)
    why = report.stopped or report.not_imported[0].reason
    report_problem(f"{len(report.not_imported)} of {total} sessions were not imported into {report.out_dir}: {why}; "
         "run the same command again to import the rest")
    return EXIT_FAILED


def register(sub) -> None:
    s = sub.add_parser("import-ifllm", formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="import the public IFLLM release into session files",
                       description="Import the public IFLLM release (its folder or .tar.xz) into one session "
                                   "file per worker and task, with every question, gaze and mouse row.\n"
                                   "A session file appears under its final name only when it is complete. "
                                   "Running the same command again keeps the sessions already imported and "
                                   "imports the rest (after a full disk or a killed import).\n"
                                   "Exit status: 0 all imported, 1 some not imported (listed), 2 bad input.")
    s.add_argument("src", help="the release folder (holding query_logs_table.csv) or its .tar.xz")
    s.add_argument("--out", required=True, help="folder for the session files")
    s.add_argument("--jobs", type=int, default=None, help="parallel processes (default: all cores)")
    s.add_argument("--overwrite", action="store_true",
                   help="import every session again (default: keep sessions already imported completely, so a "
                        "second run finishes an import that was stopped)")
    s.add_argument("--report", metavar="FILE", help="write the full import report (every problem row) as JSON")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.add_argument("--show-problems", type=int, default=20, metavar="N", help="problem rows to list (default 20)")
    s.add_argument("--quiet", action="store_true", help="no progress display")
    s.set_defaults(func=cmd_import_ifllm)
