"""Train and evaluate reward models in one call: the ablations, both protocols, intervals,
importances, calibration, and the model that is kept.

:func:`train` takes a :class:`~ifllm_lab.reward.data.Dataset` (and optionally a second
one to evaluate on) and returns a :class:`TrainReport`; :func:`train_job` is the same as a
job body (progress, cancel, log) for windows and child processes.

What is measured, per estimator kind and feature set (:data:`~ifllm_lab.reward.model.SETS`):

- without ``eval_data``: participant-grouped k-fold CV accuracy with a bootstrap interval
  over participants, and the paper's CV over questions beside it; with ``repeats`` > 1 the
  CV is run again on other random folds (seeds ``seed``, ``seed + 1``, ...) and every figure
  is the mean over the repeats (each row's correctness averaged before the bootstrap), with
  each repeat's accuracy listed, since with a few dozen participants the folds alone move
  an accuracy by a few points;
- with ``eval_data``: the accuracy of a model trained on all of ``data`` on ``eval_data``,
  with an interval over the evaluation participants.

The headline figures (``text_acc``, ``gaze_acc``, ... ``fused_acc``) are those of the
main kind; ``fused_minus_text`` is the paired difference with its interval. The kept
model (the main kind on the fused set, or the set asked for) is fitted on all of ``data``
and calibrated on its out-of-fold scores.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from .data import Dataset, QualityRule, quality_filter, subset
from .evaluate import (
    accuracy_ci, confusion, cross_validate, difference_ci, expected_calibration_error, participant_bias,
    permutation_importance, reliability,
)
from .model import KINDS, SETS, ModelError, RewardModel, fit_platt, group_of, labels

__all__ = ["TrainSettings", "TrainReport", "train", "train_job"]


@dataclass
class TrainSettings:
    task: str = "pairwise"
    kinds: tuple[str, ...] = ("screened",)  # the first is the main kind
    sets: tuple[str, ...] = tuple(SETS)
    keep_set: str = "fused"  # the feature set of the model that is kept
    folds: int = 5
    seed: int = 0
    repeats: int = 1  # cross-validations on different random folds, averaged
    quality: QualityRule | None = field(default_factory=QualityRule)  # None: every participant
    paper_protocol: bool = True
    importance: bool = True
    n_boot: int = 2000

    def check(self) -> None:
        from .model import TASKS

        if self.task not in TASKS:
            raise ModelError(f"unknown task {self.task!r}: use one of {', '.join(TASKS)}")
        for k in self.kinds:
            if k not in KINDS:
                raise ModelError(f"unknown model kind {k!r}: use one of {', '.join(KINDS)}")
        for s in self.sets:
            if s not in SETS:
                raise ModelError(f"unknown feature set {s!r}: use one of {', '.join(SETS)}")
        if not self.kinds or not self.sets:
            raise ModelError("choose at least one model kind and one feature set")
        if self.keep_set not in SETS:
            raise ModelError(f"unknown feature set {self.keep_set!r}")
        if self.folds < 2:
            raise ModelError(f"folds must be at least 2 (got {self.folds})")
        if self.repeats < 1:
            raise ModelError(f"repeats must be at least 1 (got {self.repeats})")


@dataclass
class TrainReport:
    """Everything :func:`train` measured (``summary()`` is the CLI's JSON object)."""

    task: str
    protocol: str  # "participant-grouped CV" or "evaluation set"
    n_train: int
    n_eval: int
    participants: int
    eval_participants: int
    dropped: dict[str, str]
    results: dict[str, dict[str, dict]]  # kind -> set -> metrics
    main_kind: str
    fused_minus_text: list[float] | None  # [difference, low, high]
    importance: list[tuple[str, float]]
    group_importance: dict[str, float]
    reliability: list[dict]
    confusion: list[list[int]]
    ece: float
    brier: float
    seconds: dict[str, float]
    labels: dict[str, int]
    undefined: dict[str, dict[str, int]]
    model: RewardModel | None = None
    bias: dict = field(default_factory=dict)  # pairwise: the participants' side bias (evaluate.participant_bias)
    repeats: int = 1  # cross-validations averaged in every figure

    def summary(self, top: int = 10) -> dict:
        out: dict = {"task": self.task, "protocol": self.protocol, "n_train": self.n_train, "n_eval": self.n_eval,
                     "participants": self.participants, "eval_participants": self.eval_participants,
                     "dropped_participants": len(self.dropped), "model": self.main_kind,
                     "repeats": self.repeats if self.n_eval == 0 else 1}
        main = self.results.get(self.main_kind, {})
        for s in SETS:
            r = main.get(s)
            out[f"{s}_acc"] = None if r is None else _r(r["acc"])
            out[f"{s}_acc_ci"] = None if r is None else [_r(x) for x in r["ci"]]
            out[f"{s}_auc"] = None if r is None else _r(r.get("auc"))
            if r is not None and "paper_acc" in r:
                out[f"paper_{s}_acc"] = _r(r["paper_acc"])
        if self.fused_minus_text is not None:
            out["fused_minus_text"] = _r(self.fused_minus_text[0])
            out["fused_minus_text_ci"] = [_r(x) for x in self.fused_minus_text[1:]]
        n_lab = sum(self.labels.values())
        # what always answering the commoner label scores: the floor every accuracy is read against
        out["majority_acc"] = _r(max(self.labels.values()) / n_lab) if n_lab else None
        out["by_model"] = {k: {s: {"acc": _r(r["acc"]), "ci": [_r(x) for x in r["ci"]], "auc": _r(r.get("auc")),
                                   **({"paper_acc": _r(r["paper_acc"])} if "paper_acc" in r else {}),
                                   **({"repeat_accs": [_r(a) for a in r["repeat_accs"]]} if "repeat_accs" in r
                                      else {})}
                               for s, r in v.items()} for k, v in self.results.items()}
        from ..features.registry import FEATURES

        out["top_features"] = [{"name": n, "drop": _r(d), "group": group_of(n),
                                "meaning": _meaning(n, FEATURES)} for n, d in self.importance[:top]]
        out["group_importance"] = {k: _r(v) for k, v in self.group_importance.items()}
        out["ece"] = _r(self.ece)
        out["brier"] = _r(self.brier)
        out["confusion"] = self.confusion
        out["labels"] = self.labels
        out["seconds"] = {k: round(v, 2) for k, v in self.seconds.items()}
        out["dropped"] = self.dropped
        if self.bias:
            out["participant_bias"] = {k: (_r(v) if isinstance(v, float) else v) for k, v in self.bias.items()}
        return out


def _meaning(name: str, features) -> str:
    if name.startswith("model="):
        return f"answer 1 (+1) or answer 2 (-1) was written by {name[6:]}"
    if name.startswith("emb_"):
        return f"principal component {name[4:]} of the answers' text embeddings (answer 1 minus answer 2)"
    if name == "gaze_last_look_signed_s":
        return "length of the last look, signed by the answer it was on (+ answer 1)"
    f = features.get(name)
    return f.meaning if f is not None else ""


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (NaN with one label only): unlike accuracy, not fooled by a
    majority label (pointwise ratings are mostly good)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan


def _r(x) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else round(float(x), 4)


def _report_progress(progress, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)


def train(data: Dataset, settings: TrainSettings | None = None, *, eval_data: Dataset | None = None,
          embeddings: dict | None = None, progress: Callable[[float, str], None] | None = None,
          cancel: Callable[[], bool] | None = None, log: Callable[[str], None] | None = None) -> TrainReport:
    """Evaluate every kind on every feature set, and fit the model to keep (see the module
    docstring). Raises :class:`~ifllm_lab.reward.model.ModelError` with a clear message
    when the data cannot train the task (no pairwise questions for a pairwise model, a
    single participant, one label only)."""
    s = settings or TrainSettings()
    s.check()
    log = log or (lambda m: None)
    t_start = time.perf_counter()
    level = "comparison" if s.task == "pairwise" else "response"
    table = data.table(level)
    rows, _y = labels(table, s.task) if len(table.get("session", ())) else (np.zeros(0, bool), None)
    if not rows.any():
        what = "pairwise questions with a preference" if s.task == "pairwise" else "answers rated 1-5"
        have = (f"{len(data.comparisons.get('session', ()))} pairwise questions, "
                f"{len(data.responses.get('session', ()))} answers")
        raise ModelError(f"a {s.task} model needs {what}; the data has none ({have})")
    table = subset(table, rows)
    dropped: dict[str, str] = {}
    if s.quality is not None:
        keep, dropped = quality_filter(table, s.quality)
        for p, why in dropped.items():
            log(f"participant {p} left out: {why}")
        if not keep.any():
            raise ModelError(f"the quality rule leaves no participant ({len(dropped)} dropped, e.g. "
                             f"{next(iter(dropped.values()))}); train without it (--all-participants)")
        table = subset(table, keep)
    n_part = len(np.unique(table["participant"]))
    if eval_data is None and n_part < 2:
        raise ModelError(f"participant-grouped cross-validation needs at least 2 participants; the data has "
                         f"{n_part} (give sessions of more participants, or a separate evaluation set)")
    eval_table = None
    if eval_data is not None:
        et = eval_data.table(level)
        erows, _ = labels(et, s.task) if len(et.get("session", ())) else (np.zeros(0, bool), None)
        if not erows.any():
            raise ModelError(f"the evaluation data has no {s.task} labels")
        eval_table = subset(et, erows)
    results: dict[str, dict[str, dict]] = {k: {} for k in s.kinds}
    oofs: dict[tuple[str, str], object] = {}
    steps = len(s.kinds) * len(s.sets) * (2 if s.paper_protocol and eval_data is None else 1) + 2
    step = 0
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    for kind in s.kinds:
        for fs in s.sets:
            if cancel is not None and cancel():
                raise InterruptedError("cancelled")
            _report_progress(progress, step / steps, f"{kind}: {fs} features")
            step += 1
            try:
                if eval_table is None:
                    reps = []
                    for rep in range(s.repeats):
                        oof, _ = cross_validate(table, s.task, kind, fs, folds=s.folds, seed=s.seed + rep,
                                                embeddings=embeddings, cancel=cancel)
                        reps.append(oof)
                    correct = np.mean([o.correct for o in reps], axis=0)  # each row: its share of hits
                    groups = reps[0].groups
                    r = {"acc": float(correct.mean()), "ci": accuracy_ci(correct, groups, n_boot=s.n_boot,
                                                                         seed=s.seed), "n": len(correct),
                         "auc": float(np.mean([_auc(o.y, o.p_raw) for o in reps]))}
                    if s.repeats > 1:
                        r["repeat_accs"] = [o.accuracy for o in reps]
                    oofs[(kind, fs)] = (correct, groups)
                    if s.paper_protocol:
                        _report_progress(progress, step / steps, f"{kind}: {fs} features, paper protocol")
                        step += 1
                        r["paper_acc"] = float(np.mean([
                            cross_validate(table, s.task, kind, fs, protocol="question", folds=s.folds,
                                           seed=s.seed + rep, embeddings=embeddings, cancel=cancel)[0].accuracy
                            for rep in range(s.repeats)]))
                else:
                    m = RewardModel(s.task, kind, fs, seed=s.seed).fit(table, embeddings)
                    p = m.raw_proba(m.design(eval_table, embeddings))
                    _er, y = labels(eval_table, s.task)
                    correct = ((p >= 0.5) == y).astype(np.float64)
                    g = np.asarray(eval_table["participant"]).astype(str)
                    r = {"acc": float(correct.mean()), "ci": accuracy_ci(correct, g, n_boot=s.n_boot, seed=s.seed),
                         "n": len(y), "auc": _auc(y, p)}
                    oofs[(kind, fs)] = (correct, g)
            except ModelError as exc:
                log(f"{kind} on {fs} features: {exc}")
                r = {"acc": math.nan, "ci": (math.nan, math.nan), "n": 0, "error": str(exc)}
            results[kind][fs] = r
            log(f"{kind} {fs}: {r['acc']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
                + (f", paper protocol {r['paper_acc']:.3f}" if "paper_acc" in r else ""))
    seconds["evaluate"] = time.perf_counter() - t0
    main = s.kinds[0]

    def correct_of(kind: str, fs: str):
        return oofs.get((kind, fs), (None, None))

    diff = None
    ca, g = correct_of(main, "fused")
    cb, _ = correct_of(main, "text")
    if ca is not None and cb is not None:
        diff = list(difference_ci(ca, cb, g, n_boot=s.n_boot, seed=s.seed))
    # the model that is kept: fitted on everything, calibrated on its out-of-fold scores
    keep_set = s.keep_set if s.keep_set in s.sets else s.sets[-1]
    if cancel is not None and cancel():
        raise InterruptedError("cancelled")
    _report_progress(progress, step / steps, f"fitting the {main} {keep_set} model on all the data")
    step += 1
    t0 = time.perf_counter()
    oof_keep, kept = cross_validate(table, s.task, main, keep_set, folds=s.folds, seed=s.seed, embeddings=embeddings,
                                    keep_models=True, cancel=cancel) if n_part >= 2 else (None, [])
    model = RewardModel(s.task, main, keep_set, seed=s.seed).fit(table, embeddings)
    if oof_keep is not None:
        model.platt = fit_platt(oof_keep.p_raw, oof_keep.y, symmetric=model.mirrored)
    seconds["fit"] = time.perf_counter() - t0
    importance: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    if s.importance and kept:
        _report_progress(progress, step / steps, "permutation importance")
        importance = permutation_importance(table, kept, s.task, embeddings=embeddings, seed=s.seed, cancel=cancel)
    seconds["importance"] = time.perf_counter() - t0
    groups_imp: dict[str, float] = {}
    for n, d in importance:
        groups_imp[group_of(n)] = groups_imp.get(group_of(n), 0.0) + d
    if eval_table is not None:
        p_eval = model.predict_proba(eval_table, embeddings)
        _er, y_eval = labels(eval_table, s.task)
        p_show, y_show = p_eval, y_eval
    elif oof_keep is not None:
        p_show, y_show = oof_keep.p, oof_keep.y
    else:
        p_show, y_show = np.zeros(0), np.zeros(0, np.int64)
    u, c = np.unique(labels(table, s.task)[1], return_counts=True)
    seconds["total"] = time.perf_counter() - t_start
    _report_progress(progress, 1.0, "done")
    return TrainReport(
        task=s.task, protocol="participant-grouped CV" if eval_table is None else "evaluation set",
        n_train=len(table["session"]), n_eval=0 if eval_table is None else len(eval_table["session"]),
        participants=n_part,
        eval_participants=0 if eval_table is None else len(np.unique(eval_table["participant"])),
        dropped=dropped, results=results, main_kind=main, fused_minus_text=diff, importance=importance,
        group_importance=groups_imp, reliability=reliability(p_show, y_show), confusion=confusion(p_show, y_show),
        ece=expected_calibration_error(p_show, y_show),
        brier=float(np.mean((p_show - y_show) ** 2)) if len(y_show) else math.nan,
        seconds=seconds, labels={str(int(k)): int(v) for k, v in zip(u, c)}, undefined=data.undefined, model=model,
        bias=participant_bias(table) if s.task == "pairwise" else {}, repeats=s.repeats)


def settings_dict(s: TrainSettings) -> dict:
    d = asdict(s)
    d["kinds"], d["sets"] = list(s.kinds), list(s.sets)
    return d


def _provenance(data, parts_key: str, sessions_key: str) -> dict:
    from ..session.provenance import sources_of_rows

    rows = []
    for table in (data.comparisons, data.responses):
        if "participant" in table and "session" in table:
            rows += [{"participant": p, "session": s} for p, s in zip(table["participant"].tolist(),
                                                                     table["session"].tolist())]
    src = sources_of_rows(rows)
    return {parts_key: src["participants"], sessions_key: src["sessions"]}


def train_job(ctx, sources: list[str], out_dir: str | None, settings: TrainSettings | None = None, *,
              eval_sources: list[str] | None = None, cache_dir: str | None = None, workers: int = 2,
              embeddings: bool = False) -> TrainReport:
    """Load the data, train, save the model to ``out_dir`` (when given): a job body."""
    from .data import load_dataset
    from .store import save_model

    s = settings or TrainSettings()
    s.check()

    def prog(lo: float, hi: float):
        return lambda f, m: ctx.progress(lo + (hi - lo) * f, m)

    ctx.log(f"training {s.task} reward models on {', '.join(sources)}")
    t0 = time.perf_counter()
    data = load_dataset(sources, cache_dir=cache_dir, workers=workers, progress=prog(0.0, 0.5),
                        cancel=lambda: ctx.cancelled, log=ctx.log)
    ev = None
    if eval_sources:
        ev = load_dataset(eval_sources, cache_dir=cache_dir, workers=workers, progress=prog(0.5, 0.6),
                          cancel=lambda: ctx.cancelled, log=ctx.log)
    extract_s = time.perf_counter() - t0
    emb = None
    emb_info = None
    if embeddings:
        from .text_embed import dataset_embeddings

        emb, emb_info = dataset_embeddings([data] + ([ev] if ev else []), s.task, cache_dir=cache_dir,
                                           progress=prog(0.6, 0.7), cancel=lambda: ctx.cancelled)
    ctx.check_cancel()
    report = train(data, s, eval_data=ev, embeddings=emb, progress=prog(0.7, 1.0), cancel=lambda: ctx.cancelled,
                   log=ctx.log)
    report.seconds["features"] = extract_s
    if out_dir and report.model is not None:
        from ..features.batch import registry_fingerprint

        save_model(report.model, out_dir, data={
            "fingerprint": data.fingerprint(), "sources": data.sources, "sessions": len(data.sessions),
            "participants": report.participants, "rows": report.n_train, "features": registry_fingerprint(),
            # whose data it was built from (a participant's erasure finds the models to rebuild)
            **_provenance(data, "participant_ids", "session_ids"),
            **(_provenance(ev, "eval_participant_ids", "eval_session_ids") if ev is not None else {})},
            metrics={**report.summary(top=30), "reliability": report.reliability}, extra={"settings": settings_dict(s), "embedding": emb_info})
        ctx.log(f"model saved to {out_dir}")
    return report
