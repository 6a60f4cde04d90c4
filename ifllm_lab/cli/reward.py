"""``ifllm-lab reward train`` / ``reward predict`` / ``reward models``: reward models from
implicit feedback."""
from __future__ import annotations

import json
import os
import sys
import time

from .common import EXIT_OK, CommandError, progress_printer, write_problem


def _log(args):
    def log(message: str) -> None:
        if args.verbose:
            print(f"\n{message}", file=sys.stderr)
    return log


def _sources(values: list[str]) -> list[str]:
    for v in values:
        if not os.path.exists(v):
            raise CommandError(f"{v}: no such session file, folder or IFLLM release")
    return values


def _out_folder(path: str) -> None:
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise CommandError(f"{path} is a file, not a folder for the model")
        if os.listdir(path) and not os.path.isfile(os.path.join(path, "model.json")):
            raise CommandError(f"{path} is a folder that is not a reward model: choose a new name")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CommandError(f"{path}: the folder it would go in ({parent}) does not exist")
    from .common import check_writable_folder

    check_writable_folder(parent, path)


def cmd_reward_train(args) -> int:
    from ..reward.data import DataError, QualityRule
    from ..reward.model import ModelError
    from ..reward.train import TrainSettings, train_job

    sources = _sources(args.data)
    evals = _sources(args.eval) if args.eval else None
    if args.out:
        _out_folder(args.out)
    kinds = tuple(k.strip() for k in args.model.split(",") if k.strip())
    sets = tuple(k.strip() for k in args.sets.split(",") if k.strip())
    settings = TrainSettings(task=args.task, kinds=kinds, sets=sets, keep_set=args.keep, folds=args.folds,
                             seed=args.seed, repeats=args.repeats,
                             quality=None if args.all_participants else QualityRule(),
                             paper_protocol=not args.no_paper, importance=not args.no_importance)
    try:
        settings.check()
    except ModelError as exc:
        raise CommandError(str(exc)) from None

    class Ctx:  # the job context, for a command run in the foreground
        cancelled = False
        progress = staticmethod(progress_printer(args))
        log = staticmethod(_log(args))

        @staticmethod
        def check_cancel() -> None:
            pass

    t0 = time.perf_counter()
    try:
        report = train_job(Ctx, sources, args.out, settings, eval_sources=evals, workers=args.workers,
                           embeddings=args.embeddings)
    except (DataError, ModelError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        if args.out:
            raise write_problem(args.out, exc) from None
        raise
    finally:
        if not args.quiet:
            print(file=sys.stderr)
    out = report.summary(top=args.top)
    out["out"] = os.path.abspath(args.out) if args.out else None
    out["seconds"]["wall"] = round(time.perf_counter() - t0, 2)
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(_table(out))
    return EXIT_OK


def _fmt(acc, ci) -> str:
    if acc is None:
        return "   -"
    return f"{100 * acc:5.1f} %  [{100 * ci[0]:4.1f}, {100 * ci[1]:4.1f}]" if ci and None not in ci \
        else f"{100 * acc:5.1f} %"


def _table(out: dict) -> str:
    lines = [f"{out['task']} reward models, {out['protocol']}: {out['n_train']} rows from {out['participants']} "
             f"participants" + (f" ({out['dropped_participants']} left out by the quality rule)"
                                if out["dropped_participants"] else "")
             + (f"; evaluated on {out['n_eval']} rows of {out['eval_participants']} participants"
                if out["n_eval"] else "")
             + (f"; every figure the mean of {out['repeats']} cross-validations on different folds"
                if (out.get("repeats") or 1) > 1 else "")]
    if out.get("majority_acc") is not None:
        lines.append(f"  always the commoner label: {100 * out['majority_acc']:.1f} %")
    b = out.get("participant_bias") or {}
    if b.get("participants") and b.get("own_side_acc") is not None and b.get("left_share_p10") is not None:
        lines.append(f"  the participant's own other choices (side bias): {100 * b['own_side_acc']:.1f} %; "
                     f"left picked in {100 * b['left_share_p10']:.0f}-{100 * b['left_share_p90']:.0f} % of choices "
                     f"(10th-90th percentile, {b['participants']} participants with 5 or more)")
    for kind, sets in out["by_model"].items():
        lines.append(f"  {kind}")
        for s, r in sets.items():
            paper = f"   paper protocol {100 * r['paper_acc']:5.1f} %" if r.get("paper_acc") is not None else ""
            auc = f"   AUC {r['auc']:.3f}" if r.get("auc") is not None else ""
            reps = r.get("repeat_accs") or []
            spread = (f"   repeats {100 * min(reps):.1f}-{100 * max(reps):.1f} %" if len(reps) > 1
                      and None not in reps else "")
            lines.append(f"    {s:<9} {_fmt(r['acc'], r['ci'])}{auc}{paper}{spread}")
    if out.get("fused_minus_text") is not None:
        lo, hi = out["fused_minus_text_ci"]
        lines.append(f"  fused - text: {100 * out['fused_minus_text']:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]")
    if out["top_features"]:
        lines.append("  features that carry it (accuracy lost when shuffled):")
        lines += [f"    {f['name']:<32} {100 * (f['drop'] or 0):+.2f}  {f['meaning']}" for f in out["top_features"]]
    if out.get("out"):
        lines.append(f"  model saved to {out['out']}")
    return "\n".join(lines)


def cmd_reward_predict(args) -> int:
    from ..reward.data import DataError
    from ..reward.model import ModelError
    from ..reward.predict import accuracy_of, predict_sessions
    from ..reward.store import load_model

    try:
        model, info = load_model(args.model)
    except ModelError as exc:
        raise CommandError(str(exc)) from None
    sources = _sources(args.sessions)
    try:
        preds, data = predict_sessions(model, info, sources, workers=args.workers, top=args.top,
                                       progress=progress_printer(args))
    except (DataError, ModelError) as exc:
        raise CommandError(str(exc)) from None
    finally:
        if not args.quiet:
            print(file=sys.stderr)
    acc = accuracy_of(preds) if model.task == "pairwise" else None
    if args.json:
        print(json.dumps({"model": os.path.abspath(args.model), "task": model.task, "predictions": len(preds),
                          "agreement": None if acc is None or acc != acc else round(acc, 4),
                          "skipped": [p for p, _ in data.skipped],
                          "turns": [p.as_dict() for p in preds]}, ensure_ascii=False))
    else:
        for p in preds:
            why = ", ".join(f"{n} {d:+.2f}" for n, d in p.moved_by)
            what = (f"P(answer 1) {p.p:.2f} -> {p.predicted}, chosen {p.actual if p.actual >= 0 else '-'}"
                    if model.task == "pairwise" else
                    f"answer {p.response}: P(good) {p.p:.2f}, rated {p.actual if p.actual > 0 else '-'}")
            print(f"{p.session} turn {p.turn}: {what}   ({why})")
        if acc is not None and acc == acc:
            print(f"agrees with the participants' choices on {100 * acc:.1f} % of {len(preds)} questions")
    return EXIT_OK


def cmd_reward_models(args) -> int:
    from ..reward.store import list_models
    from ..session.provenance import read_stale, stale_text

    if not os.path.isdir(args.folder):
        raise CommandError(f"{args.folder} is a file, not a folder of reward models" if os.path.exists(args.folder)
                           else f"{args.folder}: no such folder")
    rows = []
    for path, info in list_models(args.folder):
        if isinstance(info, str):
            rows.append({"path": path, "problem": info})
            continue
        m = info.get("metrics", {})
        rows.append({"path": path, "task": info["task"], "kind": info["kind"], "feature_set": info["feature_set"],
                     "created": info.get("created"), "sessions": info.get("data", {}).get("sessions"),
                     "acc": m.get(f"{info['feature_set']}_acc"), "acc_ci": m.get(f"{info['feature_set']}_acc_ci"),
                     "stale": stale_text(read_stale(path)) if read_stale(path) else None})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        for r in rows:
            print(r["path"] + (f": {r['problem']}" if "problem" in r else
                               f"  {r['task']} {r['kind']} {r['feature_set']}  {_fmt(r['acc'], r['acc_ci'])}"
                               + (f"  [{r['stale']}]" if r.get("stale") else "")))
    if not rows:
        raise CommandError(f"{args.folder}: no reward models in it")
    return EXIT_OK


def register(sub) -> None:
    from ..reward.model import KINDS, SETS, TASKS

    p = sub.add_parser("reward", help="train and apply reward models from implicit feedback",
                       description="Reward models that predict the participant's preference from the answers' "
                                   "text, their gaze and their mouse.")
    rs = p.add_subparsers(dest="reward_cmd", metavar="{train,predict,models}")
    rs.required = True
    t = rs.add_parser("train", help="train and evaluate (ablations, grouped CV, intervals); keep a model",
                      description="Loads the sessions (folders of session files, or an IFLLM release folder or "
                                  ".tar.xz, imported into the cache first), computes their features (cached), "
                                  "and evaluates every model kind on every feature set: participant-grouped "
                                  "cross-validation with bootstrap intervals over participants (and the IFLLM "
                                  "paper's protocol beside it), or accuracy on --eval. The main model (the first "
                                  "--model) on the fused features is fitted on all the data and saved to --out.")
    t.add_argument("--data", nargs="+", required=True, metavar="SRC", help="session files or folders, or an IFLLM "
                   "release (folder or .tar.xz)")
    t.add_argument("--eval", nargs="+", metavar="SRC", help="evaluate on these sessions instead of by CV")
    t.add_argument("--out", metavar="DIR", help="the model folder to write")
    t.add_argument("--task", choices=tuple(TASKS), default="pairwise")
    t.add_argument("--model", default="screened", metavar="KIND",
                   help=f"estimator kinds, comma-separated, the first is the main one ({', '.join(KINDS)}; "
                        "default screened)")
    t.add_argument("--sets", default=",".join(SETS), help=f"feature sets to compare (default {','.join(SETS)})")
    t.add_argument("--keep", default="fused", choices=tuple(SETS), help="feature set of the saved model")
    t.add_argument("--folds", type=int, default=5)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--repeats", type=int, default=1, metavar="N",
                   help="repeat the cross-validation on N different random folds and average (default 1)")
    t.add_argument("--embeddings", action="store_true",
                   help="text models also see the answers' embeddings from the local LLM (slow the first time)")
    t.add_argument("--all-participants", action="store_true",
                   help="no quality rule: train on every participant (default: leave out those whose own gaze "
                        "data is poor)")
    t.add_argument("--no-paper", action="store_true", help="skip the paper's protocol (CV over questions)")
    t.add_argument("--no-importance", action="store_true", help="skip permutation importance")
    t.add_argument("--top", type=int, default=10, help="features listed (default 10)")
    t.add_argument("--workers", type=int, default=2, help="processes computing features (default 2)")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.add_argument("--quiet", action="store_true", help="no progress on stderr")
    t.add_argument("--verbose", action="store_true", help="log each step on stderr")
    t.set_defaults(func=cmd_reward_train)
    q = rs.add_parser("predict", help="apply a saved model to sessions: per turn P(preferred) and why",
                      description="Per pairwise question: P(answer 1 preferred), the predicted and the actual "
                                  "choice, and the features that moved the prediction most.")
    q.add_argument("model", metavar="MODEL", help="a model folder written by reward train")
    q.add_argument("sessions", nargs="+", metavar="SESSIONS", help="session files or folders")
    q.add_argument("--top", type=int, default=3)
    q.add_argument("--workers", type=int, default=2)
    q.add_argument("--json", action="store_true")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=cmd_reward_predict)
    m = rs.add_parser("models", help="list the model folders in a folder with their accuracy")
    m.add_argument("folder")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_reward_models)
