"""``ifllm-lab bench``: benchmarks that print JSON."""
from __future__ import annotations

import json
import os

from .common import (CommandError, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, input_file, output_folder, report_problem,
                     size_arg, write_problem)


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
        from ..bench import bench_record
        from ..session import SessionWriteError

        try:
            result = bench_record(seconds=args.seconds if args.seconds is not None else 10.0, mouse_hz=args.mouse_hz,
                                  gaze_hz=args.gaze_hz, folder=args.folder, flood_rows=args.flood_rows)
        except SessionWriteError as exc:
            raise CommandError(f"{exc} (the benchmark's files are removed)", EXIT_FAILED) from None
        except OSError as exc:
            raise write_problem(args.folder or "the temporary folder", exc) from None
    elif args.what == "llm":
        from ..llm.bench import bench_llm
        from ..llm.types import LLMError

        if args.model:
            input_file(args.model, "model file")
        try:
            result = bench_llm(model_path=args.model)
        except LLMError as exc:
            report_problem(str(exc))
            return EXIT_BAD_INPUT
    elif args.what == "replay":
        from ..session import SessionFileError
        from ..ui.replay.bench import bench_replay

        if args.file:
            input_file(args.file, "session file")
        size = size_arg(args.size) if args.size else (1280, 720)
        try:
            result = bench_replay(args.file, seconds=args.seconds if args.seconds is not None else 3600.0,
                                  folder=args.folder, size=size)
        except (SessionFileError, ValueError) as exc:
            report_problem(str(exc))
            return EXIT_BAD_INPUT
    elif args.what == "workbench":
        from ..ui.workbench.bench import bench_workbench

        if args.file and not os.path.exists(args.file):
            raise CommandError(f"{args.file}: no such session file or folder")
        try:
            result = bench_workbench(args.file, files=args.files, folder=args.folder)
        except ValueError as exc:
            report_problem(str(exc))
            return EXIT_BAD_INPUT
        except OSError as exc:
            raise write_problem(args.folder or "the temporary folder", exc) from None
    elif args.what == "study":
        from ..ui.study_bench import bench_study

        try:
            result = bench_study(runs=1 if args.repeats is None else max(1, args.repeats),
                                 questions=max(1, args.questions), folder=args.folder)
        except RuntimeError as exc:
            raise CommandError(str(exc), EXIT_FAILED) from None
    elif args.what == "answers":
        from ..ui.answers_bench import bench_answers

        result = bench_answers(runs=3 if args.repeats is None else max(1, args.repeats), folder=args.folder)
    elif args.what == "analysis":
        from ..bench import bench_analysis

        try:
            result = bench_analysis(samples=args.samples, snapshots=args.snapshots,
                                    repeats=5 if args.repeats is None else args.repeats,
                                    folder=args.folder)
        except ValueError as exc:
            report_problem(str(exc))
            return EXIT_BAD_INPUT
        except OSError as exc:
            raise write_problem(args.folder or "the temporary folder", exc) from None
    elif args.what == "dpo":
        from ..dpo.bench import bench_dpo
        from ..dpo.job import SpecError
        from ..dpo.pairs import PairsError
        from ..dpo.worker import MISSING_EXTRA, missing_extra

        src = args.file or os.path.join("..", "shared", "data", "ifllm-dev.tar.xz")
        if not os.path.exists(src):
            raise CommandError(f"{src}: no such session file, folder or IFLLM release (name the sessions to use)")
        if missing_extra():
            raise CommandError(MISSING_EXTRA)
        try:
            result = bench_dpo([src], steps=args.steps, eval_prompts=args.prompts, folder=args.folder)
        except (PairsError, SpecError) as exc:
            raise CommandError(str(exc)) from None
        except RuntimeError as exc:
            raise CommandError(str(exc), EXIT_FAILED) from None
    elif args.what == "reward":
        from ..reward.bench import bench_reward
        from ..reward.data import DataError
        from ..reward.model import ModelError

        src = args.file or os.path.join("..", "shared", "data", "ifllm-dev.tar.xz")
        if not os.path.exists(src):
            raise CommandError(f"{src}: no such session file, folder or IFLLM release (name the sessions to use)")
        try:
            result = bench_reward([src], repeats=1 if args.repeats is None else max(1, args.repeats))
        except (DataError, ModelError) as exc:
            raise CommandError(str(exc)) from None
        except RuntimeError as exc:
            raise CommandError(str(exc), EXIT_FAILED) from None
    else:
        from ..bench import bench_gaze
        from ..camera import CameraError
        from ..gaze.landmarks import LandmarkerError

        if args.video and not os.path.exists(args.video):
            raise CommandError(f"{args.video}: no such video file or image folder")
        try:
            result = bench_gaze(video=args.video, max_frames=args.frames, folder=args.folder)
        except (CameraError, LandmarkerError, ValueError) as exc:
            report_problem(str(exc))
            return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    return EXIT_OK


def register(sub) -> None:
    s = sub.add_parser("bench", help="benchmarks that print JSON",
                       description="record: drive the real session writer with synthetic mouse and gaze "
                                   "producers on their own threads, then flood it to measure its capacity.\n"
                                   "gaze: the raw face landmarker and the whole gaze pipeline on the same "
                                   "frames of a video (default: a rendered face video), end-to-end fps and "
                                   "frame-to-sample latency.\n"
                                   "llm: load time, first-token latency and tokens/s of the local model.\n"
                                   "replay: open time, seek p95 and render fps of the replay on a session "
                                   "(default: a synthetic hour).\n"
                                   "study: a simulated participant runs a whole pairwise study on a rendered "
                                   "face video with the bundled LLM, with the participant window alone and with "
                                   "the live monitor beside it: the GUI thread's stalls (max, p99, p99.9 ms).\n"
                                   "answers: a long Markdown answer streamed token by token into a real answer "
                                   "view with the layout tracker, rendered as Markdown and as plain text side by "
                                   "side: the GUI thread's time per piece (median, p95, max).\n"
                                   "analysis: calibration fit, I-DT / I-VT on an hour of gaze, AOI mapping and "
                                   "heatmap, each repeated (min and median).\n"
                                   "workbench: a data folder of --files session files (copies of FILE.h5 or of "
                                   "the sessions in a FOLDER, e.g. an imported release) opened in the workbench: "
                                   "first rows, whole table and the window's longest stall, without and with "
                                   "the cache.\n"
                                   "dpo: LoRA DPO (rDPO + NLL) of the bundled SmolLM2 on the pairs of FOLDER "
                                   "(default: ../shared/data/ifllm-dev.tar.xz) for --steps steps, then the "
                                   "evaluation on --prompts held-out prompts: seconds per step, peak memory, "
                                   "the loss curve, the win rate of tuned over base.\n"
                                   "reward: the reward models on FOLDER (default: ../shared/data/ifllm-dev.tar.xz): "
                                   "feature extraction cold and from the cache, then training with the default "
                                   "settings (--repeats runs), each step's seconds and the peak memory.")
    s.add_argument("what", choices=("record", "gaze", "llm", "replay", "analysis", "workbench", "dpo", "answers", "study",
                                        "reward"))
    s.add_argument("file", nargs="?", default=None, metavar="FILE.h5|FOLDER",
                   help="replay: the session to measure (default: a synthetic one-hour session); workbench: the "
                        "sessions to copy (default: a generated one); dpo, reward: the sessions or IFLLM release")
    s.add_argument("--files", type=int, default=1000, help="workbench: session files in the folder (default 1000)")
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
    s.add_argument("--samples", type=int, default=216_000, help="analysis: gaze samples (default: 1 h at 60 Hz)")
    s.add_argument("--snapshots", type=int, default=600, help="analysis: layout snapshots (default 600)")
    s.add_argument("--repeats", type=int, default=None,
                   help="analysis: repetitions of each measurement (default 5); answers: runs of each mode "
                        "(default 3); study: runs of each mode (default 1); reward: training runs (default 1)")
    s.add_argument("--questions", type=int, default=2, help="study: questions per session (default 2)")
    s.add_argument("--steps", type=int, default=20, help="dpo: training steps (default 20)")
    s.add_argument("--prompts", type=int, default=20, help="dpo: held-out prompts to evaluate on (default 20)")
    s.add_argument("--folder", default=None, help="where to write the temporary files (default: system temp)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_bench)
