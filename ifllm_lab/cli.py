"""``ifllm-lab`` command line: one subcommand per job.

Every command reports problems as one clear line on stderr and a non-zero exit
status (2 for bad input, 1 for a failure while working), never a traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from . import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


def _err(message: str) -> None:
    print(f"ifllm-lab: {message}", file=sys.stderr)


class CommandError(Exception):
    """A problem to report as one line (``ifllm-lab: ...`` on stderr) with an exit status:
    :data:`EXIT_BAD_INPUT` for input or output places that cannot be used, :data:`EXIT_FAILED`
    for a failure while working."""

    def __init__(self, message: str, status: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.status = status


# -- input and output places, checked before any work ------------------------------------
def input_file(path: str, what: str = "file") -> str:
    """``path`` as a readable file, or CommandError naming it and what is wrong."""
    from .paths import unreadable_file

    problem = unreadable_file(path, what)
    if problem:
        raise CommandError(problem)
    return path


def _place_problem(target: str, exc: OSError, what: str) -> CommandError:
    """An output place that cannot be used: bad input (2), but a full disk is a failure (1)."""
    from .session.store import write_failure_reason

    reason = write_failure_reason(exc)
    return CommandError(f"{target}: {what}: {reason}", EXIT_FAILED if reason == "the disk is full" else EXIT_BAD_INPUT)


def _check_writable_folder(folder: str, target: str) -> None:
    try:
        import tempfile

        fd, probe = tempfile.mkstemp(prefix=".ifllm-write-check-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise _place_problem(target, exc, f"cannot write in {folder}") from None


def output_folder(path: str) -> bool:
    """Make sure ``path`` can take output files: an existing writable folder, or a new
    one made in an existing writable folder. Returns True when it was made here."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise CommandError(f"{path} is a file, not a folder for the output")
        _check_writable_folder(path, path)
        return False
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CommandError(f"{path}: the folder it would go in ({parent}) does not exist")
    try:
        os.mkdir(path)
    except OSError as exc:
        raise _place_problem(path, exc, "the folder cannot be made") from None
    try:
        _check_writable_folder(path, path)
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
    _check_writable_folder(parent, path)
    return path


class NewFiles:
    """Removes what a failed command wrote into an output folder: the folder itself when
    the command made it, else the entries that were not there before."""

    def __init__(self, folder: str, made: bool):
        self.folder = folder
        self.made = made
        self.before = set() if made else set(os.listdir(folder))

    def remove(self) -> None:
        import shutil

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


def _write_problem(target: str, exc: OSError) -> CommandError:
    """A failed write as one line: the disk filled, or another write error."""
    from .session.store import write_failure_reason

    reason = write_failure_reason(exc)
    return CommandError(f"cannot write to {target}: {reason}; nothing was left there", EXIT_FAILED)


# -- import-ifllm ---------------------------------------------------------------------
def cmd_import_ifllm(args) -> int:
    from .importers.ifllm import ImportStopped, ImportTargetError, ReleaseFormatError, import_release

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
            raise _write_problem(args.report, exc) from None
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
    _err(f"{len(report.not_imported)} of {total} sessions were not imported into {report.out_dir}: {why}; "
         "run the same command again to import the rest")
    return EXIT_FAILED


# -- inspect ----------------------------------------------------------------------------
def cmd_inspect(args) -> int:
    from .session import SessionFileError
    from .session.inspect import format_summary, summarize

    status = EXIT_OK
    results = []
    for path in args.files:
        try:
            s = summarize(path)
        except SessionFileError as exc:
            _err(str(exc))
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


# -- export -----------------------------------------------------------------------------
def cmd_export(args) -> int:
    from .session import SessionFileError, SessionReader
    from .session.export import export_bids, export_csv

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
                raise _write_problem(args.out, exc) from None
            raise CommandError(f"cannot write to {args.out}: {exc}", EXIT_FAILED) from None
        except BaseException:
            new.remove()
            raise
    for p in paths:
        print(p)
    return EXIT_OK


# -- recover ------------------------------------------------------------------------------
def cmd_recover(args) -> int:
    from .session.recovery import RecoveryError, close_interrupted, find_interrupted, format_interrupted, recover

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
        raise _write_problem(args.out or args.path, exc) from None
    print(report.summary)
    return EXIT_OK


# -- bench --------------------------------------------------------------------------------
def cmd_bench(args) -> int:
    made = output_folder(args.folder) if args.folder else False
    try:
        return _bench(args)
    finally:
        if made:
            import shutil

            shutil.rmtree(args.folder, ignore_errors=True)


def _bench(args) -> int:
    if args.what == "record":
        from .bench import bench_record
        from .session import SessionWriteError

        try:
            result = bench_record(seconds=args.seconds if args.seconds is not None else 10.0, mouse_hz=args.mouse_hz,
                                  gaze_hz=args.gaze_hz, folder=args.folder, flood_rows=args.flood_rows)
        except SessionWriteError as exc:
            raise CommandError(f"{exc} (the benchmark's files are removed)", EXIT_FAILED) from None
        except OSError as exc:
            raise _write_problem(args.folder or "the temporary folder", exc) from None
    elif args.what == "llm":
        from .llm.bench import bench_llm
        from .llm.types import LLMError

        if args.model:
            input_file(args.model, "model file")
        try:
            result = bench_llm(model_path=args.model)
        except LLMError as exc:
            _err(str(exc))
            return EXIT_BAD_INPUT
    elif args.what == "replay":
        from .bench import bench_replay
        from .session import SessionFileError

        if args.file:
            input_file(args.file, "session file")
        try:
            size = _size(args.size) if args.size else (1280, 720)
            result = bench_replay(args.file, seconds=args.seconds if args.seconds is not None else 3600.0,
                                  folder=args.folder, size=size)
        except (SessionFileError, ValueError) as exc:
            _err(str(exc))
            return EXIT_BAD_INPUT
    else:
        from .bench import bench_gaze
        from .camera import CameraError
        from .gaze.landmarks import LandmarkerError

        if args.video and not os.path.exists(args.video):
            raise CommandError(f"{args.video}: no such video file or image folder")
        try:
            result = bench_gaze(video=args.video, max_frames=args.frames, folder=args.folder)
        except (CameraError, LandmarkerError, ValueError) as exc:
            _err(str(exc))
            return EXIT_BAD_INPUT
        except ModuleNotFoundError as exc:
            raise CommandError(f"bench gaze draws its test face with {exc.name}, which is not installed: "
                               f"install it (pip install scikit-image) or give a face video with --video",
                               EXIT_FAILED) from None
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    return EXIT_OK


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"a size is WIDTHxHEIGHT in px, not {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise ValueError(f"size {text} is out of range (16-8192 px)")
    return w, h


# -- replay ---------------------------------------------------------------------------------
def cmd_replay(args) -> int:
    from .session import SessionFileError, SessionReader

    input_file(args.file, "session file")
    try:  # checked before any window or image is made
        SessionReader(args.file).close()
    except SessionFileError as exc:
        raise CommandError(str(exc)) from None
    try:
        size = _size(args.size)
    except ValueError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    if args.export:
        output_file(args.export)
    try:
        from .ui.replay.run import run_replay
    except ImportError as exc:
        _err(f"the replay cannot start: {exc}")
        return EXIT_FAILED
    return run_replay(args.file, overlays=args.overlays, export=args.export, at=args.at, start=args.start,
                      end=args.end, fps=args.fps, speed=args.speed, size=size)


# -- app ----------------------------------------------------------------------------------
def cmd_app(args) -> int:
    from .config import ConfigError, load_config

    try:
        config = load_config(args.study)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT
    if args.data:
        config.study.data_folder = args.data
    size = None
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            size = (w, h)
        except ValueError:
            _err(f"--size must be WIDTHxHEIGHT in px, not {args.size!r}")
            return EXIT_BAD_INPUT
    if args.camera and not args.camera.strip().isdigit() and not os.path.exists(args.camera):
        _err(f"camera {args.camera!r}: no such video file or image folder (give a camera index such as 0, "
             f"a video file or a folder of images)")
        return EXIT_BAD_INPUT
    try:
        from .ui.study_app import run_app
    except ImportError as exc:
        _err(f"the window cannot start: {exc}")
        return EXIT_FAILED
    try:
        return run_app(config, camera=args.camera, participant=args.participant, windowed=args.windowed,
                       size=size, check_s=args.check, screenshot=args.screenshot)
    except ValueError as exc:
        _err(str(exc))
        return EXIT_BAD_INPUT


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="ifllm-lab",
        description="IFLLM Lab: record, replay and learn from implicit feedback (gaze, mouse) on LLM answers.",
    )
    p.add_argument("--version", action="version", version=f"ifllm-lab {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="print progress and warnings of every component")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("app", help="run a participant session (the study window)",
                       description="The participant study: setup (participant code, camera preview), consent, "
                                   "calibration, the conversation with ratings, the questionnaire. Without "
                                   "--study it runs the embedded defaults: the bundled small LLM, the bundled "
                                   "face model, camera 0, a pairwise study of 5 questions.")
    s.add_argument("--study", default=None, metavar="FILE", help="study settings (.toml or .json)")
    s.add_argument("--camera", default=None, metavar="SRC",
                   help="camera index (0), a video file or a folder of images (overrides the study's)")
    s.add_argument("--participant", default=None, metavar="CODE", help="fill in the participant code")
    s.add_argument("--data", default=None, metavar="DIR", help="data folder (overrides the study's)")
    s.add_argument("--windowed", action="store_true", help="a window instead of full screen")
    s.add_argument("--size", default=None, metavar="WxH", help="window size in px (implies --windowed)")
    s.add_argument("--check", type=float, default=0.0, metavar="SECONDS",
                   help="self-check: wait up to SECONDS for camera frames with a face and the LLM, print "
                        "JSON and exit (0 ok, 1 not)")
    s.add_argument("--screenshot", default=None, metavar="PNG", help="with --check: save the window")
    s.set_defaults(func=cmd_app)

    s = sub.add_parser("replay", help="replay a session with gaze, fixation and mouse overlays",
                       description="Opens the replay window: the stimulus as the participant saw it with gaze, "
                                   "fixations, scanpath, heatmap, mouse and AOI overlays, the timeline, the turn, "
                                   "AOI metrics and data quality. With --export it renders headless instead: "
                                   "OUT.png at --at SECONDS, or OUT.mp4 of --from/--to (default: all).\n"
                                   "Times are seconds from the start of the session.")
    s.add_argument("file", metavar="FILE.h5")
    s.add_argument("--export", default=None, metavar="OUT.png|OUT.mp4")
    s.add_argument("--at", type=float, default=None, metavar="SECONDS", help="the moment (PNG) or start (MP4)")
    s.add_argument("--from", dest="start", type=float, default=None, metavar="SECONDS", help="MP4 start")
    s.add_argument("--to", dest="end", type=float, default=None, metavar="SECONDS", help="MP4 end")
    s.add_argument("--fps", type=float, default=30.0, help="MP4 frame rate (default 30)")
    s.add_argument("--speed", type=float, default=1.0, help="MP4: session seconds per video second (default 1)")
    s.add_argument("--size", default="1280x720", metavar="WxH", help="exported image size (default 1280x720)")
    s.add_argument("--overlays", default=None, metavar="LIST",
                   help="comma list of text,gaze,fixations,scanpath,heatmap,mouse,clicks,aoi (or 'all'; "
                        "default: text,gaze,fixations,scanpath,mouse,clicks)")
    s.set_defaults(func=cmd_replay)

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

    s = sub.add_parser("bench", help="benchmarks that print JSON",
                       description="record: drive the real session writer with synthetic mouse and gaze "
                                   "producers on their own threads, then flood it to measure its capacity.\n"
                                   "gaze: the raw face landmarker and the whole gaze pipeline on the same "
                                   "frames of a video (default: a rendered face video), end-to-end fps and "
                                   "frame-to-sample latency.\n"
                                   "llm: load time, first-token latency and tokens/s of the local model.")
    s.add_argument("what", choices=("record", "gaze", "llm", "replay"))
    s.add_argument("file", nargs="?", default=None, metavar="FILE.h5",
                   help="replay: the session to measure (default: a synthetic one-hour session)")
    s.add_argument("--size", default=None, metavar="WxH", help="replay: rendered frame size (default 1280x720)")
    s.add_argument("--video", default=None, help="gaze: a video file of a face (default: render one)")
    s.add_argument("--frames", type=int, default=300, help="gaze: frames to use (default 300)")
    s.add_argument("--model", default=None, help="llm: a .gguf file (default: the bundled small model)")
    s.add_argument("--seconds", type=float, default=None,
                   help="record: length of the paced run (default 10 s); replay: length of the synthetic session "
                        "(default 3600 s)")
    s.add_argument("--mouse-hz", type=float, default=1000.0)
    s.add_argument("--gaze-hz", type=float, default=60.0)
    s.add_argument("--flood-rows", type=int, default=1_000_000, help="rows for the capacity measurement")
    s.add_argument("--folder", default=None, help="where to write the temporary files (default: system temp)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_bench)
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
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_OK
    try:
        return args.func(args)
    except CommandError as exc:
        _err(str(exc))
        return exc.status
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except Exception as exc:  # a fault of the program: still one line (the details with -v)
        logging.getLogger("ifllm_lab.cli").debug("unexpected error", exc_info=True)
        if args.verbose:
            import traceback

            traceback.print_exc()
        _err(f"{args.command} failed unexpectedly: {type(exc).__name__}: {exc} (run with -v for the details)")
        return EXIT_FAILED
