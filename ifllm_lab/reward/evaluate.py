"""How good a reward model is, measured honestly.

- :func:`cross_validate`: out-of-fold probabilities under one of two protocols:
  ``participant`` (grouped: no participant's turns in both the training and the test
  part of a fold; the question a lab asks of a model meant for new participants) or
  ``question`` (the IFLLM paper's protocol: 5-fold CV over questions, participants mixed,
  reported beside it so the two can be compared).
- :func:`accuracy_ci` / :func:`difference_ci`: bootstrap intervals that resample
  participants, not rows (a participant's turns are not independent).
- :func:`reliability`, :func:`confusion`, :func:`permutation_importance`: the numbers
  behind the workbench's calibration plot, confusion matrix and importance bars.
- :func:`participant_bias`: how much participants differ in choosing the left answer, and
  how well that alone predicts their choices: what a model that is not mirrored can learn
  from participants it has seen in the paper's protocol, and no model can in the grouped one.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .model import KINDS, ModelError, RewardModel, _logit, fit_platt, labels, llm_vocab, set_columns

__all__ = ["PROTOCOLS", "Oof", "cross_validate", "accuracy_ci", "difference_ci", "reliability", "confusion",
           "permutation_importance", "expected_calibration_error", "participant_bias"]

PROTOCOLS = {"participant": "grouped by participant: every test participant is unseen",
             "question": "the IFLLM paper's: 5-fold over questions, participants mixed"}


@dataclass
class Oof:
    """Out-of-fold results: per labelled row its probability (raw and calibrated), label,
    participant; ``folds`` used."""

    p_raw: np.ndarray
    p: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    folds: int
    fold_of: np.ndarray

    @property
    def correct(self) -> np.ndarray:
        return ((self.p >= 0.5).astype(np.int64) == self.y).astype(np.float64)

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self.y) else math.nan


def _splits(y: np.ndarray, groups: np.ndarray, protocol: str, folds: int, seed: int):
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if protocol == "participant":
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise ModelError(f"grouped cross-validation needs at least 2 participants (this data has {n_groups})")
        k = min(folds, n_groups)
        return list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(y, y, groups)), k
    if protocol == "question":
        k = min(folds, int(np.bincount(y).min()) if len(np.unique(y)) > 1 else 0)
        if k < 2:
            raise ModelError("cross-validation over questions needs at least 2 rows of each label")
        return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(y, y)), k
    raise ModelError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")


def cross_validate(table: dict[str, np.ndarray], task: str, kind: str, feature_set: str, *,
                   protocol: str = "participant", folds: int = 5, seed: int = 0, embeddings: dict | None = None,
                   columns: list[str] | None = None, cancel: Callable[[], bool] | None = None,
                   keep_models: bool = False) -> tuple[Oof, list[tuple[RewardModel, np.ndarray]]]:
    """Out-of-fold predictions for every labelled row of ``table``; with ``keep_models``
    also each fold's model and its test rows (indices into the labelled rows). The
    calibrated probabilities use a Platt scaling fitted, per fold, on the other folds'
    out-of-fold scores (so they too are out of sample)."""
    rows, y_all = labels(table, task)
    t = {k: v[rows] for k, v in table.items()}
    y = y_all[rows]
    groups = np.asarray(t["participant"]).astype(str)
    if len(np.unique(y)) < 2:
        raise ModelError(f"every labelled {task} row has the same label: nothing to tell apart")
    splits, k = _splits(y, groups, protocol, folds, seed)
    columns = list(columns or set_columns(t, task, feature_set, kind))  # one design for every fold
    llms = llm_vocab(t, task)
    p = np.full(len(y), np.nan)
    fold_of = np.zeros(len(y), np.int64)
    kept = []
    for f, (tr, te) in enumerate(splits):
        if cancel is not None and cancel():
            raise InterruptedError("cancelled")
        m = RewardModel(task, kind, feature_set, seed=seed, columns=list(columns), llms=list(llms))
        m.fit({kk: v[tr] for kk, v in t.items()}, embeddings)
        p[te] = m.raw_proba(m.design({kk: v[te] for kk, v in t.items()}, embeddings))
        fold_of[te] = f
        if keep_models:
            kept.append((m, te))
    p_cal = np.empty_like(p)
    for f in range(k):
        te = fold_of == f
        a, b = fit_platt(p[~te], y[~te], symmetric=task == "pairwise" and KINDS[kind].mirror)
        z = a * _logit(p[te]) + b
        p_cal[te] = 1.0 / (1.0 + np.exp(-z))
    return Oof(p, p_cal, y, groups, k, fold_of), kept


def _per_group(correct: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _u, inv = np.unique(groups, return_inverse=True)
    return np.bincount(inv, weights=correct), np.bincount(inv).astype(np.float64)


def accuracy_ci(correct: np.ndarray, groups: np.ndarray, *, level: float = 0.95, n_boot: int = 2000,
                seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy, resampling participants."""
    if not len(correct):
        return math.nan, math.nan
    hits, n = _per_group(np.asarray(correct, np.float64), groups)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(n), size=(n_boot, len(n)))
    acc = hits[idx].sum(axis=1) / np.maximum(n[idx].sum(axis=1), 1)
    lo, hi = np.quantile(acc, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def difference_ci(correct_a: np.ndarray, correct_b: np.ndarray, groups: np.ndarray, *, level: float = 0.95,
                  n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(accuracy of a minus b, low, high): paired bootstrap over participants."""
    ha, n = _per_group(np.asarray(correct_a, np.float64), groups)
    hb, _ = _per_group(np.asarray(correct_b, np.float64), groups)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(n), size=(n_boot, len(n)))
    tot = np.maximum(n[idx].sum(axis=1), 1)
    d = (ha[idx].sum(axis=1) - hb[idx].sum(axis=1)) / tot
    lo, hi = np.quantile(d, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float((ha.sum() - hb.sum()) / max(n.sum(), 1)), float(lo), float(hi)


def participant_bias(table: dict[str, np.ndarray], *, min_pairs: int = 5) -> dict:
    """Side bias of the participants of a pairwise ``table`` (rows with a preference).

    Returns ``{}`` without pairwise labels, else: ``pairs``; ``left_share``, the share of
    choices of the answer shown on the left; ``participants`` (those with at least
    ``min_pairs`` choices) and ``left_share_p10`` / ``_p50`` / ``_p90``, the spread of their
    own left shares; ``own_side_acc``, the accuracy of predicting every choice by the side
    the same participant chose more often in their *other* pairs (half a hit on a tie, a
    participant with one pair: half). When participants differ, ``own_side_acc`` is well
    above 50 % and a model that is not mirrored (``paper-forest``), evaluated with
    participants mixed (the paper's protocol), can score it by recognising the participant;
    on unseen participants it is out of reach."""
    if "preference" not in table or "participant" not in table:
        return {}
    pref = np.asarray(table["preference"]).astype(np.int64)
    rows = (pref == 1) | (pref == 2)
    if not rows.any():
        return {}
    side = np.asarray(table.get("ctx_answer1_side", np.ones(len(pref))), np.float64)[rows]
    first_left = ~(side < 0)  # answer 1 on the left, or the side not known (imported: always left)
    left = (pref[rows] == 1) == first_left
    groups = np.asarray(table["participant"]).astype(str)[rows]
    _u, inv = np.unique(groups, return_inverse=True)
    n = np.bincount(inv).astype(np.float64)
    k = np.bincount(inv, weights=left.astype(np.float64))
    # the participant's other pairs: their left share without this pair
    others_n = n[inv] - 1
    others_left = k[inv] - left
    with np.errstate(invalid="ignore", divide="ignore"):
        lean = np.where(others_n > 0, others_left / np.maximum(others_n, 1), 0.5)
    hit = np.where(lean == 0.5, 0.5, ((lean > 0.5) == left).astype(np.float64))
    enough = n >= min_pairs
    out = {"pairs": int(rows.sum()), "left_share": float(left.mean()), "participants": int(enough.sum()),
           "own_side_acc": float(hit.mean())}
    shares = k[enough] / n[enough]
    for q in (10, 50, 90):
        out[f"left_share_p{q}"] = float(np.percentile(shares, q)) if len(shares) else math.nan
    return out


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict]:
    """Per probability bin: its range, the mean predicted probability, the observed share
    of label 1, and the row count (empty bins left out)."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            out.append({"low": float(edges[b]), "high": float(edges[b + 1]), "predicted": float(p[sel].mean()),
                        "observed": float(y[sel].mean()), "n": int(sel.sum())})
    return out


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    rel = reliability(p, y, bins)
    n = sum(r["n"] for r in rel)
    return float(sum(r["n"] * abs(r["predicted"] - r["observed"]) for r in rel) / n) if n else math.nan


def confusion(p: np.ndarray, y: np.ndarray) -> list[list[int]]:
    """[[true 0 predicted 0, true 0 predicted 1], [true 1 predicted 0, true 1 predicted 1]]."""
    pred = (p >= 0.5).astype(np.int64)
    return [[int(((y == a) & (pred == b)).sum()) for b in (0, 1)] for a in (0, 1)]


def permutation_importance(table: dict[str, np.ndarray], kept: list[tuple[RewardModel, np.ndarray]], task: str, *,
                           embeddings: dict | None = None, repeats: int = 3, seed: int = 0,
                           cancel: Callable[[], bool] | None = None) -> list[tuple[str, float]]:
    """Mean drop of out-of-fold accuracy when one design column's values are shuffled
    among a fold's test rows (each fold's own model), largest first."""
    rows, y_all = labels(table, task)
    t = {k: v[rows] for k, v in table.items()}
    y = y_all[rows]
    if not kept:
        return []
    names = kept[0][0].design_columns
    rng = np.random.default_rng(seed)
    drops = np.zeros(len(names))
    total = 0
    for m, te in kept:
        if m.design_columns != names:  # folds saw different columns (a column empty in one fold)
            continue
        X = m.design({k: v[te] for k, v in t.items()}, embeddings)
        base = ((m.raw_proba(X) >= 0.5) == y[te]).mean()
        for j in range(len(names)):
            if cancel is not None and cancel():
                raise InterruptedError("cancelled")
            d = 0.0
            for _ in range(repeats):
                Xp = X.copy()
                Xp[:, j] = rng.permutation(Xp[:, j])
                d += base - ((m.raw_proba(Xp) >= 0.5) == y[te]).mean()
            drops[j] += d / repeats * len(te)
        total += len(te)
    drops /= max(total, 1)
    order = np.argsort(-drops)
    return [(names[j], float(drops[j])) for j in order]
