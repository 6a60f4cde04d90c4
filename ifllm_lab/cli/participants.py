"""``ifllm-lab participant find | export | delete``: a participant's data rights (access and
erasure) from the code they were given."""
from __future__ import annotations

import json
import os
import sys

from .common import EXIT_FAILED, EXIT_OK, CommandError, NewFiles, output_folder, write_problem


def _default_data() -> str:
    from ..config import StudySettings

    return os.path.expanduser(StudySettings().data_folder)


def _find(args, progress=None):
    from ..study.rights import RightsError, find_participant

    try:
        return find_participant(args.data or _default_data(), args.code, also=args.also or ())
    except RightsError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"{args.data}: cannot be read: {exc.strerror or exc}") from None


def _print_findings(args, res) -> None:
    from ..study.rights import format_findings

    if args.json:
        print(json.dumps(res.as_dict(), ensure_ascii=False))
    else:
        print(format_findings(res))


def cmd_find(args) -> int:
    _print_findings(args, _find(args))
    return EXIT_OK


def cmd_export(args) -> int:
    from ..study.rights import RightsError, export_participant, format_findings

    res = _find(args)
    if not res.found:
        print(json.dumps(res.as_dict()) if args.json else format_findings(res) + " Nothing exported.")
        return EXIT_OK
    if os.path.isdir(args.out) and os.listdir(args.out):
        raise CommandError(f"{args.out} is not empty: export into a new or empty folder")
    new = NewFiles(args.out, output_folder(args.out))
    try:
        files = export_participant(res, args.out)
    except RightsError as exc:
        new.remove()
        raise CommandError(str(exc)) from None
    except OSError as exc:
        new.remove()
        raise write_problem(args.out, exc) from None
    except BaseException:
        new.remove()
        raise
    if args.json:
        print(json.dumps({"out": os.path.abspath(args.out), "files": files}, ensure_ascii=False))
    else:
        print(f"{len(files)} files of participant {res.pseudonym} -> {args.out} (summary.txt says what they are)")
    return EXIT_OK


def cmd_delete(args) -> int:
    from ..study.rights import RightsError, delete_participant, format_findings

    res = _find(args)
    if not res.found:
        print(json.dumps(res.as_dict()) if args.json else format_findings(res) + " Nothing deleted.")
        return EXIT_OK
    if not args.json:
        print(format_findings(res))
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError("deleting needs a confirmation: run it in a terminal, or add --yes; nothing "
                               "was deleted")
        answer = input(f"Delete these {len(res.files)} files of participant {res.pseudonym} for good, and mark "
                       f"{len(res.derived)} artefacts built from them stale? Type 'delete' to go on: ")
        if answer.strip().lower() != "delete":
            print("Nothing was deleted.")
            return EXIT_FAILED
    try:
        report = delete_participant(res)
    except RightsError as exc:
        raise CommandError(str(exc), EXIT_FAILED) from None
    except OSError as exc:
        raise CommandError(f"the deletion stopped: {exc}; run it again to finish (its journal is kept)",
                           EXIT_FAILED) from None
    print(json.dumps(report.record, ensure_ascii=False) if args.json else report.summary())
    return EXIT_OK


def register(sub) -> None:
    p = sub.add_parser(
        "participant", help="a participant's data: find, export or delete everything of one code",
        description="Access and erasure requests: the participant's code (turned into their pseudonym with the "
                    "data folder's key; the code itself is stored nowhere) finds every session file, part file, "
                    "recovered copy, kept camera video, export, feature table, pairs file and model built from "
                    "their data. A wrong or unknown code finds nothing.")
    ps = p.add_subparsers(dest="participant_cmd", metavar="{find,export,delete}")
    ps.required = True

    def common(q) -> None:
        q.add_argument("code", metavar="CODE", help="the participant's code, as typed at the session's setup")
        q.add_argument("--data", metavar="DIR", help="the data folder (default: the studies' default, "
                       "~/ifllm-data)")
        q.add_argument("--also", action="append", metavar="DIR",
                       help="another folder to search (exports, feature tables, models written elsewhere); "
                            "may be given several times")
        q.add_argument("--json", action="store_true", help="print one JSON object")

    f = ps.add_parser("find", help="list everything of a participant with sizes")
    common(f)
    f.set_defaults(func=cmd_find)
    e = ps.add_parser("export", help="copy everything of a participant, with a plain-language summary",
                      description="Copies the participant's files into --out (files/), their rows of tables "
                                  "and pair files shared with others (rows/), summary.txt (what was recorded, "
                                  "when, which studies, what was built from it) and files.json (SHA-256 of "
                                  "each file).")
    common(e)
    e.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder")
    e.set_defaults(func=cmd_export)
    d = ps.add_parser("delete", help="delete everything of a participant and record the deletion",
                      description="Lists what will go, asks (or --yes), marks what was built from the data "
                                  "stale (reward models, DPO jobs, shared tables: rebuild them), removes the "
                                  "files and their cache entries, and appends a record (pseudonym, time, file "
                                  "names and SHA-256, no data) to participant-deletions.jsonl in the data "
                                  "folder. An interrupted deletion is finished by running it again.")
    common(d)
    d.add_argument("--yes", action="store_true", help="do not ask")
    d.set_defaults(func=cmd_delete)
