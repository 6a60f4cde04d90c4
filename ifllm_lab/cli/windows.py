"""``ifllm-lab app`` and ``ifllm-lab replay``: the commands that open a window (Qt is imported only
when they run)."""
from __future__ import annotations

import os

from .common import EXIT_BAD_INPUT, EXIT_FAILED, CommandError, input_file, output_file, report_problem, size_arg


def cmd_replay(args) -> int:
    from ..session import SessionFileError, SessionReader

    input_file(args.file, "session file")
    try:  # checked before any window or image is made
        SessionReader(args.file).close()
    except SessionFileError as exc:
        raise CommandError(str(exc)) from None
    size = size_arg(args.size)
    if args.export:
        output_file(args.export)
    try:
        from ..ui.replay.run import run_replay
    except ImportError as exc:
        report_problem(f"the replay cannot start: {exc}")
        return EXIT_FAILED
    return run_replay(args.file, overlays=args.overlays, export=args.export, at=args.at, start=args.start,
                      end=args.end, fps=args.fps, speed=args.speed, size=size)


def cmd_app(args) -> int:
    from ..config import ConfigError, load_config

    try:
        config = load_config(args.study)
    except ConfigError as exc:
        report_problem(str(exc))
        return EXIT_BAD_INPUT
    if args.data:
        config.study.data_folder = args.data
    size = size_arg(args.size) if args.size else None
    if args.camera and not args.camera.strip().isdigit() and not os.path.exists(args.camera):
        report_problem(f"camera {args.camera!r}: no such video file or image folder (give a camera index such "
                       "as 0, a video file or a folder of images)")
        return EXIT_BAD_INPUT
    try:
        from ..ui.study_app import run_app
    except ImportError as exc:
        report_problem(f"the window cannot start: {exc}")
        return EXIT_FAILED
    try:
        return run_app(config, camera=args.camera, participant=args.participant, windowed=args.windowed,
                       size=size, check_s=args.check, screenshot=args.screenshot, screen_index=args.screen,
                       pilot=args.pilot, pilot_timeout_s=args.pilot_timeout, monitor=args.monitor,
                       monitor_screen=args.monitor_screen)
    except ValueError as exc:
        report_problem(str(exc))
        return EXIT_BAD_INPUT


def cmd_lab(args) -> int:
    folder = getattr(args, "folder", None)
    if folder and not os.path.exists(folder):
        raise CommandError(f"{folder}: no such folder")
    if folder and not os.path.isdir(folder):
        raise CommandError(f"{folder} is a file, not a data folder")
    size = size_arg(args.size) if getattr(args, "size", None) else None
    screenshot = getattr(args, "screenshot", None)
    if screenshot:
        output_file(screenshot)
    try:
        from ..ui.workbench import run_workbench
    except ImportError as exc:
        report_problem(f"the window cannot start: {exc}")
        return EXIT_FAILED
    return run_workbench(folder, size=size, screenshot=screenshot)


def register(sub) -> None:
    s = sub.add_parser("lab", help="the researcher's workbench (also: ifllm-lab with no command)",
                       description="The researcher's window: the sessions of a data folder (filter, sort, search, "
                                   "inspect, export, recover, replay in tabs), the studies (summary, problems, "
                                   "Run study) and the IFLLM import, with one status line for every job.")
    s.add_argument("folder", nargs="?", default=None, metavar="FOLDER",
                   help="the data folder (default: the last one opened)")
    s.add_argument("--size", default=None, metavar="WxH", help="window size in px")
    s.add_argument("--screenshot", default=None, metavar="PNG",
                   help="wait for the table, save the window as PNG and exit (no display needed)")
    s.set_defaults(func=cmd_lab)

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
    s.add_argument("--screen", type=int, default=None, metavar="N",
                   help="the screen to use, 0 for the first (default: the primary screen)")
    s.add_argument("--size", default=None, metavar="WxH", help="window size in px (implies --windowed)")
    s.add_argument("--check", type=float, default=0.0, metavar="SECONDS",
                   help="self-check: wait up to SECONDS for camera frames with a face and the LLM, print "
                        "JSON and exit (0 ok, 1 not)")
    s.add_argument("--pilot", action="store_true",
                   help="pilot the study: a simulated participant goes through one whole session (code, "
                        "consent, calibration, the questions typed, answers read with the mouse and rated, "
                        "the questionnaire) with real input events; the file is marked as a pilot. Prints "
                        "a JSON report and exits 0 when the session completed, 1 with the reason when not")
    s.add_argument("--pilot-timeout", type=float, default=900.0, metavar="SECONDS",
                   help="with --pilot: give up after SECONDS (default 900)")
    s.add_argument("--screenshot", default=None, metavar="PNG",
                   help="with --check: save the window; with --pilot: the last page")
    s.add_argument("--monitor", action="store_true",
                   help="open the live monitor beside the study: the camera with the face landmarks, gaze rate, "
                        "valid share and dropped frames, validation and drift, the participant's screen in "
                        "miniature with the live gaze, the turn, the LLM, the file; Pause, Recalibrate at next "
                        "turn, End session (on a second screen when there is one)")
    s.add_argument("--monitor-screen", type=int, default=None, metavar="N",
                   help="with --monitor: the screen for the monitor (0 for the first)")
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
