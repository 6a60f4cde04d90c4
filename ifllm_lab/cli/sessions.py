"""``ifllm-lab inspect``, ``export`` and ``recover``: one session file (or a folder of them) at a time."""
from __future__ import annotations

import json
import os

from .common import (CommandError, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, NewFiles, input_file, output_file,
                     output_folder, report_problem, write_problem)


def cmd_inspect(args) -> int:
    from ..session import SessionFileError
    from ..session.inspect import format_summary, summarize

    status = EXIT_OK
    results = []
    for path in args.files:
        try:
            s = summarize(path)
        except SessionFileError as exc:
            report_problem(str(exc))
            status = EXIT_BAD_INPUT
            if args.json:
                results.append({"file": os.path.abspath(path), "error": str(exc)})
            continue
        results.append(s)
        if not args.json:
            print(format_summary(s))
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, ensure_ascii=False))
    return status


def cmd_export(args) -> int:
    from ..session import SessionFileError, SessionReader
    from ..session.export import export_bids, export_csv

    try:  # the input first: a rejected input leaves no output folder behind
        reader = SessionReader(args.file)
    except SessionFileError as exc:
        raise CommandError(str(exc)) from None
    with reader:
        if args.format == "bids" and ("gaze" not in reader or len(reader["gaze"]) == 0):
            raise CommandError(f"{args.file}: no gaze samples to export; BIDS eye tracking needs a recorded "
                               "gaze stream")
        new = NewFiles(args.out, output_folder(args.out))
        try:
            paths = (export_csv if args.format == "csv" else export_bids)(reader, args.out)
        except (OSError, RuntimeError) as exc:
            new.remove()
            if isinstance(exc, OSError):
                raise write_problem(args.out, exc) from None
            raise CommandError(f"cannot write to {args.out}: {exc}", EXIT_FAILED) from None
        except BaseException:
            new.remove()
            raise
    for p in paths:
        print(p)
    return EXIT_OK


def cmd_recover(args) -> int:
    from ..session.recovery import RecoveryError, close_interrupted, find_interrupted, format_interrupted, recover

    if os.path.isdir(args.path):
        if args.out or args.close:
            raise CommandError(f"{args.path} is a folder: --out and --close take one session file")
        try:
            items = find_interrupted(args.path)
        except OSError as exc:
            raise CommandError(f"{args.path}: cannot list the folder: {exc.strerror or exc}") from None
        print(format_interrupted(items))
        return EXIT_OK
    input_file(args.path, "session file or folder")
    if args.out:
        output_file(args.out)
    try:
        report = close_interrupted(args.path) if args.close else recover(args.path, args.out)
    except RecoveryError as exc:
        hint = " (or choose another file with --out)" if exc.reason == "exists" else ""
        status = EXIT_FAILED if exc.reason == "failed" else EXIT_BAD_INPUT
        raise CommandError(f"{exc}{hint}", status) from None
    except OSError as exc:
        raise write_problem(args.out or args.path, exc) from None
    print(report.summary)
    return EXIT_OK


def register(sub) -> None:
    s = sub.add_parser("inspect", help="summarise session files and check their validity",
                       description="Schema, participant, study, duration, per-stream counts and rates, turns "
                                   "and validity problems of session files.")
    s.add_argument("files", nargs="+", metavar="FILE.h5")
    s.add_argument("--json", action="store_true", help="print JSON (a list when several files are given)")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("export", help="export a session as CSV or BIDS eye-tracking files",
                       description="csv: one CSV per stream and session.json; bids: the BIDS eye-tracking "
                                   "layout (physio.tsv.gz + JSON sidecar) for the gaze stream.")
    s.add_argument("file", metavar="FILE.h5")
    s.add_argument("--format", choices=("csv", "bids"), required=True)
    s.add_argument("--out", required=True, metavar="DIR")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("recover", help="list, recover or close sessions interrupted by a crash",
                       description="FOLDER: list the sessions in it that were not closed cleanly. FILE.h5: "
                                   "write a clean, compacted copy with every row up to the last flush "
                                   "(FILE.recovered.h5; the original is not touched), or with --close replace "
                                   "the file by that copy.")
    s.add_argument("path", metavar="FOLDER|FILE.h5")
    s.add_argument("--out", default=None, help="where to write the recovered copy")
    s.add_argument("--close", action="store_true", help="replace the interrupted file by its clean copy")
    s.set_defaults(func=cmd_recover)
