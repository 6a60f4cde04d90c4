"""``ifllm-lab features``: the implicit-feedback feature table of session files."""
from __future__ import annotations

import json
import os
import sys
import time

from .common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, CommandError, output_file, report_problem, write_problem


def _session_paths(sources: list[str]) -> list[str]:
    from ..session.catalog import session_files

    out: list[str] = []
    for src in sources:
        if os.path.isdir(src):
            found = session_files(src)
            if not found:
                raise CommandError(f"{src}: no session files (*.h5) in it")
            out += found
        elif os.path.isfile(src):
            out.append(os.path.abspath(src))
        else:
            raise CommandError(f"{src}: no such session file or folder")
    return sorted(dict.fromkeys(out))


def cmd_features(args) -> int:
    import ifllm_lab.importers.ifllm  # noqa: F401  (imported IFLLM sessions: their layout and detector defaults)

    from ..features.batch import features_of_files
    from ..features.registry import docs_table
    from ..features.table import rows_to_table, write_table
    from ..session import SessionFileError
    from ..session.catalog import default_cache_dir

    if args.docs:
        output_file(args.docs)
        try:
            with open(args.docs, "w", encoding="utf-8") as fh:
                fh.write(docs_table())
        except OSError as exc:
            raise write_problem(args.docs, exc) from None
        if not args.sessions:
            print(args.docs)
            return EXIT_OK
    if not args.sessions:
        raise CommandError("give session files or folders (or --docs FILE)")
    if not args.out:
        raise CommandError("--out FILE is needed (.csv or .parquet)")
    paths = _session_paths(args.sessions)
    output_file(args.out)
    rows, skipped, undefined = [], [], {}
    t0 = time.perf_counter()
    cache = None if args.no_cache else os.path.join(default_cache_dir(), "features")

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(f"\r{done}/{total} sessions", end="", file=sys.stderr, flush=True)

    results = dict(features_of_files(paths, cache_dir=cache, workers=args.workers, progress=progress))
    for path in paths:  # in the files' order, whatever order they were computed in
        res = results[path]
        if isinstance(res, SessionFileError):
            skipped.append((path, str(res)))
            continue
        if isinstance(res, Exception):
            skipped.append((path, f"{path}: features failed: {type(res).__name__}: {res}"))
            continue
        rows += res.responses if args.level == "response" else res.comparisons
        for need, why in res.undefined.items():
            undefined.setdefault(need, why)
    if not args.quiet:
        print(file=sys.stderr)
    if len(skipped) == len(paths):
        first = skipped[0][1]
        report_problem(first if len(paths) == 1 else
                       f"none of the {len(paths)} session files could be read ({first}); nothing written")
        return EXIT_BAD_INPUT
    for _path, why in skipped:
        report_problem(f"skipped: {why}")
    try:
        write_table(rows_to_table(rows, args.level), args.out)
    except OSError as exc:
        raise write_problem(args.out, exc) from None
    summary = {"out": os.path.abspath(args.out), "level": args.level, "sessions": len(paths) - len(skipped),
               "rows": len(rows), "skipped": [p for p, _ in skipped], "seconds": round(time.perf_counter() - t0, 2),
               "undefined": undefined}
    print(json.dumps(summary, ensure_ascii=False) if args.json else
          f"{len(rows)} {args.level} rows from {summary['sessions']} sessions -> {args.out}"
          + (f" ({len(skipped)} skipped)" if skipped else ""))
    return EXIT_FAILED if skipped else EXIT_OK


def register(sub) -> None:
    p = sub.add_parser(
        "features", help="implicit-feedback features of sessions as a table (CSV or Parquet)",
        description="One row per answer (--level response) or per pairwise question (--level comparison) of "
                    "every session, with ids, labels and every registered feature; a feature the session has no "
                    "data for is empty, and the summary says why. Unreadable files are skipped and named "
                    "(exit 1); --docs FILE writes the feature list as Markdown.")
    p.add_argument("sessions", nargs="*", metavar="SESSIONS", help="session files or folders of them")
    p.add_argument("--out", help="the table to write: .csv or .parquet")
    p.add_argument("--level", choices=("response", "comparison"), default="response")
    p.add_argument("--docs", metavar="FILE", help="write the feature registry as a Markdown table")
    p.add_argument("--workers", type=int, default=2, help="processes computing features (default 2)")
    p.add_argument("--no-cache", action="store_true",
                   help="compute every file again (default: files unchanged since the last run come from the cache)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_features)
