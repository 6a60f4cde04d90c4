"""``ifllm-lab dpo export``: preference pairs for DPO from the sessions."""
from __future__ import annotations

import json
import os
import sys

from .common import EXIT_FAILED, EXIT_OK, CommandError, check_writable_folder, progress_printer


def _out_place(path: str, fmt: str) -> None:
    if os.path.isdir(path) and fmt == "jsonl":
        raise CommandError(f"{path} is a folder: --out names the .jsonl file to write")
    if os.path.isfile(path) and fmt == "hf":
        raise CommandError(f"{path} is a file: --format hf writes a folder")
    if fmt == "hf" and os.path.isdir(path) and os.listdir(path) \
            and not os.path.isfile(os.path.join(path, "dataset_info.json")):
        raise CommandError(f"{path} is a folder that is not a dataset: choose a new name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CommandError(f"{path}: the folder it would go in ({parent}) does not exist")
    check_writable_folder(parent, path)


def cmd_dpo_export(args) -> int:
    from ..dpo.pairs import PairsError, make_pairs, write_hf, write_jsonl
    from ..session.store import write_failure_reason

    for v in args.sessions:
        if not os.path.exists(v):
            raise CommandError(f"{v}: no such session file, folder or IFLLM release")
    labels = args.labels or ("implicit" if args.reward_model else "explicit")
    if args.reward_model and not os.path.exists(args.reward_model):
        raise CommandError(f"{args.reward_model}: no such reward model folder")
    _out_place(args.out, args.format)

    progress = progress_printer(args)
    try:
        rep = make_pairs(args.sessions, labels=labels, model_folder=args.reward_model,
                         min_confidence=args.min_confidence, all_participants=args.all_participants,
                         workers=args.workers, progress=progress)
    except PairsError as exc:
        raise CommandError(str(exc)) from None
    finally:
        if not args.quiet:
            print(file=sys.stderr)
    if not rep.pairs:
        raise CommandError("no pairs: " + (", ".join(f"{n} {why}" for why, n in rep.dropped.most_common())
                                           or "the sessions have no pairwise questions") + "; nothing written")
    try:
        out = write_hf(rep.pairs, args.out) if args.format == "hf" else write_jsonl(rep.pairs, args.out)
    except PairsError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"{args.out}: {write_failure_reason(exc)}; nothing written", EXIT_FAILED) from None
    s = rep.summary()
    s.update(out=out, labels=labels, format=args.format,
             min_confidence=args.min_confidence if labels != "explicit" else None)
    if args.json:
        print(json.dumps(s, ensure_ascii=False))
    else:
        print(f"{s['pairs']} pairs from {s['participants']} participants ({s['sessions']} sessions) -> {out}")
        print("  by label source: " + ", ".join(f"{k} {v}" for k, v in s["by_source"].items()))
        if s["dropped"]:
            print("  left out: " + ", ".join(f"{why} {n}" for why, n in s["dropped"].items()))
        for p, why in s["dropped_participants"].items():
            print(f"  participant {p} left out: {why}")
        for sk in s["skipped"]:
            print(f"  skipped {sk['path']}: {sk['why']}")
    return EXIT_OK


def _spec(path: str):
    from ..dpo.job import SpecError, load_spec

    try:
        return load_spec(path)
    except SpecError as exc:
        raise CommandError(str(exc)) from None


def _follow(job_dir: str, args) -> int:
    """Wait for the job, its progress on stderr; exit 0 when it finished, 1 otherwise."""
    import time

    from ..jobs import DONE, read_status

    seen = None
    while True:
        st = read_status(job_dir)
        if st is not None and (st.fraction, st.message) != seen and not args.quiet:
            seen = (st.fraction, st.message)
            frac = "  ?  " if st.fraction is None else f"{100 * st.fraction:5.1f}"
            print(f"\r{frac} % {st.message[:70]:<70}", end="", file=sys.stderr, flush=True)
        if st is not None and st.finished:
            break
        time.sleep(0.5)
    if not args.quiet:
        print(file=sys.stderr)
    if st.state != DONE:
        raise CommandError(f"the DPO job in {job_dir} {st.state}: {st.error}", EXIT_FAILED)
    return EXIT_OK


def _job_row(info) -> dict:
    from ..session.provenance import read_stale, stale_text

    st = info.status
    stale = read_stale(info.folder)
    return {"folder": info.folder, "name": info.spec.name if info.spec else "", "state": info.state,
            "stale": stale_text(stale) if stale else None,
            "fraction": getattr(st, "fraction", None), "message": getattr(st, "message", ""),
            "error": getattr(st, "error", None) or info.problem or None,
            "step": info.last.get("step"), "loss": info.last.get("loss"),
            "margin": info.last.get("rewards/margins"), "accuracy": info.last.get("rewards/accuracies")}


def _job_dir_arg(path: str) -> str:
    from ..dpo.job import SPEC_FILE

    if not os.path.isfile(os.path.join(path, SPEC_FILE)):
        raise CommandError(f"{path}: not a DPO job folder (no {SPEC_FILE})")
    return os.path.join(path, SPEC_FILE)


def _start(spec, args, *, resume: bool) -> int:
    from ..dpo.job import SpecError, launch
    from ..dpo.worker import MISSING_EXTRA, missing_extra

    if spec.run == "local" and missing_extra():
        raise CommandError(MISSING_EXTRA)
    try:
        job_dir = launch(spec, resume=resume)
    except SpecError as exc:
        raise CommandError(str(exc)) from None
    print(job_dir)
    return _follow(job_dir, args) if args.wait and spec.run == "local" else EXIT_OK


def cmd_dpo_run(args) -> int:
    spec = _spec(args.spec)
    if args.out:
        spec.output_dir = os.path.abspath(args.out)
        spec.name = os.path.basename(os.path.normpath(spec.output_dir)) or spec.name
    if args.pairs:
        spec.pairs = os.path.abspath(args.pairs)
    return _start(spec, args, resume=False)


def cmd_dpo_resume(args) -> int:
    return _start(_spec(_job_dir_arg(args.job)), args, resume=True)


def cmd_dpo_eval(args) -> int:
    from ..dpo.job import EVAL_DIR, SpecError, launch_eval, read_eval

    _job_dir_arg(args.job)
    if args.reward_model and not os.path.exists(args.reward_model):
        raise CommandError(f"{args.reward_model}: no such reward model folder")
    try:
        launch_eval(args.job, reward_model=args.reward_model, prompts=args.prompts,
                    max_new_tokens=args.max_new_tokens)
    except SpecError as exc:
        raise CommandError(str(exc)) from None
    _follow(os.path.join(args.job, EVAL_DIR), args)
    ev = read_eval(args.job)
    summary = {k: v for k, v in ev.items() if k != "answers"}
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        wr = "no reward model given" if ev["win_rate"] is None else \
            f"{100 * ev['win_rate']:.1f} % [{100 * ev['win_rate_ci'][0]:.1f}, {100 * ev['win_rate_ci'][1]:.1f}]" \
            if ev["win_rate_ci"] else f"{100 * ev['win_rate']:.1f} %"
        print(f"tuned over base on {ev['prompts']} held-out prompts: {wr}; tuned answer longer in "
              f"{100 * ev['longer_share']:.0f} %")
        for side in ("base", "tuned"):
            print(f"  {side:5s} " + ", ".join(f"{k} {v}" for k, v in ev["text"][side].items()))
    return EXIT_OK


def cmd_dpo_export_gguf(args) -> int:
    from ..dpo.job import EXPORT_DIR, SpecError, launch_export
    from ..jobs import read_status

    _job_dir_arg(args.job)
    _out_place(args.out, "jsonl")
    try:
        launch_export(args.job, args.out, converter=args.converter, outtype=args.outtype)
    except SpecError as exc:
        raise CommandError(str(exc)) from None
    _follow(os.path.join(args.job, EXPORT_DIR), args)
    print(os.path.abspath(args.out))
    st = read_status(os.path.join(args.job, EXPORT_DIR))
    return EXIT_OK if st is not None else EXIT_FAILED


def cmd_dpo_get_converter(args) -> int:
    from ..dpo.converter import ConverterError, fetch_converter

    try:
        print(fetch_converter(args.dest, log=lambda m: print(m, file=sys.stderr)))
    except ConverterError as exc:
        raise CommandError(str(exc), EXIT_FAILED) from None
    return EXIT_OK


def cmd_dpo_cancel(args) -> int:
    from ..dpo.job import cancel

    _job_dir_arg(args.job)
    print(cancel(args.job, grace_s=args.grace))
    return EXIT_OK


def cmd_dpo_jobs(args) -> int:
    from ..dpo.job import SPEC_FILE, job_info, list_jobs

    if not os.path.isdir(args.folder):
        raise CommandError(f"{args.folder}: no such folder")
    infos = [job_info(args.folder)] if os.path.isfile(os.path.join(args.folder, SPEC_FILE)) else \
        list_jobs(args.folder)
    rows = [_job_row(i) for i in infos]
    if args.json:
        print(json.dumps(rows if len(rows) != 1 or infos[0].folder != os.path.abspath(args.folder) else rows[0],
                         ensure_ascii=False))
    else:
        for r in rows:
            tail = f"step {r['step']}, loss {r['loss']:.4f}" if r["loss"] is not None else ""
            print(f"{r['folder']}  {r['state']}  {tail}  {r['error'] or ''}".rstrip()
                  + (f"  [{r['stale']}]" if r["stale"] else ""))
    if not rows:
        raise CommandError(f"{args.folder}: no DPO jobs in it")
    return EXIT_OK


def cmd_dpo_script(args) -> int:
    import shlex

    from ..dpo.job import SpecError, accelerate_command, slurm_script

    spec = _spec(args.spec)
    try:
        spec.check(local_files=False)
    except SpecError as exc:
        raise CommandError(str(exc)) from None
    if args.accelerate:
        print(" ".join(shlex.quote(c) for c in accelerate_command(spec)))
    else:
        print(slurm_script(spec), end="")
    return EXIT_OK


def register(sub) -> None:
    from ..dpo.pairs import LABELS

    p = sub.add_parser("dpo", help="preference pairs and DPO fine-tuning jobs",
                       description="Turn the sessions into preference pairs (explicit choices and a reward "
                                   "model's implicit labels) for DPO.")
    ds = p.add_subparsers(dest="dpo_cmd", metavar="{export,run,resume,eval,export-gguf,get-converter,cancel,jobs,script}")
    ds.required = True
    e = ds.add_parser("export", help="write preference pairs (TRL's conversational format) as JSONL or a "
                                     "Hugging Face dataset",
                      description="One pair per pairwise question: prompt (the conversation so far, as chat "
                                  "messages), chosen, rejected, label_source (explicit, implicit, both agree), "
                                  "confidence, participant, session and turn. Prints the counts by label source "
                                  "and by reason left out.\n\nlabels:\n" +
                                  "\n".join(f"  {k:9s} {v}" for k, v in LABELS.items()))
    e.add_argument("--sessions", nargs="+", required=True, metavar="SRC",
                   help="session files or folders, or an IFLLM release (folder or .tar.xz)")
    e.add_argument("--reward-model", metavar="MODEL", help="a pairwise reward model folder (reward train --out)")
    e.add_argument("--labels", choices=tuple(LABELS),
                   help="where labels come from (default: implicit with --reward-model, else explicit)")
    e.add_argument("--min-confidence", type=float, default=0.7, metavar="P",
                   help="keep a reward model's label only when max(p, 1-p) >= P (default 0.7)")
    e.add_argument("--all-participants", action="store_true",
                   help="no quality rule (default: leave out participants whose own gaze data is poor)")
    e.add_argument("--out", required=True, metavar="FILE", help="the .jsonl file (or dataset folder) to write")
    e.add_argument("--format", choices=("jsonl", "hf"), default="jsonl",
                   help="jsonl (default) or a Hugging Face datasets folder (needs the dpo extra)")
    e.add_argument("--workers", type=int, default=2, help="processes computing features (default 2)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--quiet", action="store_true", help="no progress on stderr")
    e.set_defaults(func=cmd_dpo_export)
    r = ds.add_parser("run", help="start a DPO job from its spec (TOML); --wait follows it",
                      description="Starts the job the spec describes in its output_dir: on this machine in a "
                                  "child process (closing the terminal or the workbench does not stop it), "
                                  "through accelerate launch, or on Slurm. Prints the job folder.")
    r.add_argument("spec", metavar="SPEC", help="the job's TOML spec")
    r.add_argument("--out", metavar="DIR", help="the job folder (instead of the spec's output_dir)")
    r.add_argument("--pairs", metavar="FILE", help="the pairs file (instead of the spec's pairs)")
    r.add_argument("--wait", action="store_true", help="follow the job until it ends (exit 1 unless it finished)")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_dpo_run)
    r = ds.add_parser("resume", help="go on with a job from its last checkpoint")
    r.add_argument("job", metavar="JOB_DIR")
    r.add_argument("--wait", action="store_true")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_dpo_resume)
    v = ds.add_parser("eval", help="answers of the base and the tuned model to the held-out prompts, scored by "
                                   "a text reward model: the win rate of tuned over base",
                      description="Generates (greedy, fixed seeds) the base and the tuned model's answers to the "
                                  "prompts the job held out of training, scores each pair with a pairwise reward "
                                  "model on the text features (reward train --keep text), and reports the win "
                                  "rate of tuned over base with a bootstrap interval and text statistics of "
                                  "both. Writes JOB_DIR/eval.json.")
    v.add_argument("job", metavar="JOB_DIR")
    v.add_argument("--reward-model", metavar="MODEL", help="a pairwise text reward model (default: the spec's)")
    v.add_argument("--prompts", type=int, help="evaluate on at most this many held-out prompts")
    v.add_argument("--max-new-tokens", type=int, help="answer length limit (default: the spec's)")
    v.add_argument("--json", action="store_true")
    v.add_argument("--quiet", action="store_true")
    v.set_defaults(func=cmd_dpo_eval)
    x = ds.add_parser("export-gguf", help="the tuned model as one GGUF file the study app can chat with",
                      description="Merges a LoRA adapter into its base and writes the model with llama.cpp's "
                                  "converter (get it once with 'dpo get-converter'). Name the file as the "
                                  "study's LLM model to chat with it.")
    x.add_argument("job", metavar="JOB_DIR")
    x.add_argument("--out", required=True, metavar="FILE.gguf")
    x.add_argument("--outtype", default="q8_0", choices=("f32", "f16", "bf16", "q8_0"))
    x.add_argument("--converter", metavar="DIR", help="a llama.cpp folder with convert_hf_to_gguf.py")
    x.add_argument("--quiet", action="store_true")
    x.set_defaults(func=cmd_dpo_export_gguf)
    g = ds.add_parser("get-converter", help="fetch llama.cpp's GGUF converter once (from the llama-cpp-python "
                                            "source package on PyPI)")
    g.add_argument("--dest", metavar="DIR", help="where to keep it (default: the user's data folder)")
    g.set_defaults(func=cmd_dpo_get_converter)
    c = ds.add_parser("cancel", help="stop a job (it saves a checkpoint first); its processes end after --grace")
    c.add_argument("job", metavar="JOB_DIR")
    c.add_argument("--grace", type=float, default=60.0, metavar="S", help="seconds to wait before ending it")
    c.set_defaults(func=cmd_dpo_cancel)
    j = ds.add_parser("jobs", help="the jobs in a folder (or one job folder): state, step, loss, margin")
    j.add_argument("folder")
    j.add_argument("--json", action="store_true")
    j.set_defaults(func=cmd_dpo_jobs)
    w = ds.add_parser("script", help="print the Slurm batch script (or the accelerate command) of a spec")
    w.add_argument("spec", metavar="SPEC")
    w.add_argument("--accelerate", action="store_true", help="the accelerate launch command instead")
    w.set_defaults(func=cmd_dpo_script)
