"""Reward models: which features they see, which estimator they are, and how they predict.

A :class:`RewardModel` is one scikit-learn estimator (from :data:`KINDS`, a registry like
the fixation detectors') over one feature set (from :data:`SETS`) for one task:

- ``pairwise``: one row per pairwise question; the label is "answer 1 preferred". Rows
  are mirrored for training (answer 2 as answer 1, label flipped) and predictions are
  averaged with the mirrored row's, so P(1 over 2) = 1 - P(2 over 1) exactly and a side
  bias can only be learnt from where the answers were shown (``d_ctx_shown_left``). One
  kind is not mirrored (``paper-forest``, the IFLLM paper's model, :attr:`Kind.mirror`):
  it can learn that a participant it recognises favours one side.
- ``pointwise``: one row per answer; the label is "rated good" (Likert 4-5 against 1-3).

Besides the registered features, a model can see which LLM wrote each answer
(``model=NAME``: +1 answer 1, -1 answer 2 in pairs; 0/1 per answer), the signed length of
the last look (``gaze_last_look_signed_s``) and, when the answers' embeddings are given,
their first principal components (``emb_1``...; fitted on the training answers only).
Probabilities are calibrated with a Platt scaling fitted on out-of-fold scores.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..features import extract as _extract  # noqa: F401  (registers every feature: groups and symmetry below)
from ..features.registry import FEATURES

__all__ = ["KINDS", "SETS", "TASKS", "Kind", "RewardModel", "ModelError", "labels", "llm_vocab", "set_columns", "group_of",
           "EMB_DIMS"]

TASKS = {"pairwise": "which of two answers the participant preferred",
         "pointwise": "whether the participant rated an answer good (Likert 4-5)"}

SETS = {
    "text": "the answers alone: length, formatting, readability, which LLM wrote each, where each was shown "
            "(and text embeddings when computed)",
    "gaze": "where the eyes went, with the gaze's quality",
    "mouse": "what the hand did",
    "implicit": "gaze + mouse + the turn's context and data quality",
    "fused": "text + implicit",
}
_SET_GROUPS = {"text": {"text"}, "gaze": {"gaze", "quality"}, "mouse": {"mouse"},
               "implicit": {"gaze", "mouse", "context", "quality"},
               "fused": {"text", "gaze", "mouse", "context", "quality"}}
EMB_DIMS = 16  #: principal components of the answer embeddings a text model sees
POSITION = ("ctx_shown_left", "ctx_answer1_side")  # where an answer was shown: known without watching


class ModelError(Exception):
    """A model cannot be trained or applied: the message says why."""


@dataclass(frozen=True)
class Kind:
    name: str
    description: str
    make: Callable[[int, int], object]  # (seed, number of design columns) -> unfitted scikit-learn estimator
    #: a setting chosen by cross-validation inside the training rows (grouped by participant):
    #: (parameter name of the estimator, candidate values); the value a fitted model chose is
    #: kept in :attr:`RewardModel.chosen`
    tune: tuple[str, tuple] | None = None
    #: pairs are mirrored (answer 2 as answer 1, label flipped) for training and prediction;
    #: False only to reproduce models that were not (their predictions are not antisymmetric)
    mirror: bool = True


def _logistic(seed: int, _n: int):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True),
                         StandardScaler(), LogisticRegression(C=0.05, max_iter=5000, random_state=seed))


def _boosting(seed: int, _n: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=8, min_samples_leaf=20,
                                          l2_regularization=1.0, random_state=seed)


def _forest(seed: int, _n: int):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    return make_pipeline(SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True),
                         RandomForestClassifier(n_estimators=300, min_samples_leaf=5, max_features="sqrt",
                                                n_jobs=1, random_state=seed))


def _paper_forest(seed: int, _n: int):
    from sklearn.ensemble import RandomForestClassifier

    # missing values go to whichever side of a split suits them (scikit-learn >= 1.4)
    return RandomForestClassifier(n_estimators=500, min_samples_leaf=3, max_features="sqrt", n_jobs=1,
                                  random_state=seed)


LINEAR = ("logistic", "screened")  #: kinds that cannot use features that do not change with the answers' order
SCREENED_KS = (1, 2, 3, 5, 8, 13)  #: how many features a screened logistic model may keep
SCREENED_K = 5  #: what it keeps when the training rows are too few to choose (under 3 participants)


def _screened(seed: int, n: int):
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True),
                         StandardScaler(), SelectKBest(f_classif, k=min(SCREENED_K, max(n, 1))),
                         LogisticRegression(C=0.1, max_iter=5000, random_state=seed))


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("screened", "logistic regression on the k features that tell the labels apart best in the training rows "
                     f"(an F test); k (one of {', '.join(map(str, SCREENED_KS))}) is chosen by a cross-validation "
                     "grouped by participant inside the training rows, so a weak signal is not drowned by many "
                     "noisy features", _screened, tune=("selectkbest__k", SCREENED_KS)),
    Kind("logistic", "L2-regularised logistic regression on all the set's standardised features", _logistic),
    Kind("boosting", "gradient-boosted trees (histogram-based; missing values handled by the trees)", _boosting),
    Kind("forest", "random forest, 300 trees", _forest),
    Kind("paper-forest", "the IFLLM paper's model: a random forest (500 trees) over every feature of the set, pairs not "
                         "mirrored, so it can learn which side a participant it recognises favours (it scores well "
                         "in the paper's protocol, where participants are mixed, and not on new participants)",
         _paper_forest, mirror=False),
)}


def group_of(column: str) -> str:
    """The feature group of a design column (``text`` for model identity and embeddings)."""
    if column.startswith(("model=", "emb_")):
        return "text"
    if column == "gaze_last_look_signed_s":
        return "gaze"
    f = FEATURES.get(column)
    return f.group if f is not None else "context"


def _antisymmetric(column: str) -> bool:
    """Changes sign when answers 1 and 2 swap places."""
    if column.startswith(("d_", "r_", "model=", "emb_")) or column == "gaze_last_look_signed_s":
        return True
    f = FEATURES.get(column)
    return f is not None and f.unit == "side"


def set_columns(table: dict[str, np.ndarray], task: str, feature_set: str, kind: str = "logistic") -> list[str]:
    """Registered feature columns of ``table`` in ``feature_set`` (without model identity
    and embeddings, which :class:`RewardModel` adds). A column with no value at all in the
    table is left out.

    Pairs: each answer feature enters once, as the log ratio of the two answers where it
    has one (scale-free), else as their difference; the comparison's own side features
    (which answer was looked at first and last, hovered last) as they are. Features that
    are the same whichever answer is which (the turn's context and data quality) can only
    tell a model how far to trust the rest, which trees can use (``boosting``,
    ``forest``) and a linear model cannot: they are left out of linear models (:data:`LINEAR`)."""
    if feature_set not in SETS:
        raise ModelError(f"unknown feature set {feature_set!r}: use one of {', '.join(SETS)}")
    groups = _SET_GROUPS[feature_set]

    def present(name: str) -> bool:
        return name in table and np.isfinite(table[name]).any()

    def wanted(f) -> bool:
        return f.group in groups or (feature_set == "text" and f.name in POSITION)

    out = []
    if task == "pointwise":
        return [n for n, f in FEATURES.items() if f.level == "response" and wanted(f) and present(n)]
    for name, f in FEATURES.items():
        if not wanted(f):
            continue
        if f.level == "response" and f.group in ("gaze", "mouse", "text"):
            pick = next((c for c in (f"r_{name}", f"d_{name}") if present(c)), None)
            if pick:
                out.append(pick)
        elif f.level == "comparison" and not name.startswith(("d_", "r_")) and present(name):
            if _antisymmetric(name) or kind not in LINEAR:
                out.append(name)
    if {"gaze_last_look", "gaze_last_look_s"} <= set(out):
        out.append("gaze_last_look_signed_s")
    return out


def llm_vocab(table: dict[str, np.ndarray], task: str) -> list[str]:
    """The answer models named in ``table`` (sorted)."""
    names = np.concatenate([table["model_1"], table["model_2"]]) if task == "pairwise" else table["model"]
    return sorted({str(m) for m in names.tolist() if str(m)})


def labels(table: dict[str, np.ndarray], task: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows with a label, label 0/1) for ``task``."""
    if task == "pairwise":
        if "preference" not in table:
            raise ModelError("a pairwise model needs pairwise questions (this data has none)")
        pref = np.asarray(table["preference"]).astype(np.int64)
        rows = (pref == 1) | (pref == 2)
        return rows, (pref == 1).astype(np.int64)
    if "likert" not in table:
        raise ModelError("a pointwise model needs answers rated 1-5 (this data has none)")
    lik = np.asarray(table["likert"]).astype(np.int64)
    rows = (lik >= 1) & (lik <= 5)
    return rows, (lik >= 4).astype(np.int64)


@dataclass
class RewardModel:
    """An unfitted or fitted reward model (see the module docstring)."""

    task: str
    kind: str
    feature_set: str
    seed: int = 0
    columns: list[str] = field(default_factory=list)  # registered features used
    llms: list[str] = field(default_factory=list)  # answer models seen in training (model= columns)
    emb_mean: np.ndarray | None = None  # embedding projection, fitted on the training answers
    emb_axes: np.ndarray | None = None
    platt: tuple[float, float] = (1.0, 0.0)  # calibration of the logit: a * logit + b
    estimator: object = None
    medians: np.ndarray | None = None  # each design column's training median (for "what moved it")
    chosen: dict = field(default_factory=dict)  # settings chosen inside the training rows (Kind.tune)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ModelError(f"unknown task {self.task!r}: use one of {', '.join(TASKS)}")
        if self.kind not in KINDS:
            raise ModelError(f"unknown model kind {self.kind!r}: use one of {', '.join(KINDS)}")
        if self.feature_set not in SETS:
            raise ModelError(f"unknown feature set {self.feature_set!r}: use one of {', '.join(SETS)}")

    @property
    def mirrored(self) -> bool:
        """Pairs mirrored for training and prediction (P(1 over 2) = 1 - P(2 over 1))."""
        return self.task == "pairwise" and KINDS[self.kind].mirror

    @property
    def uses_text(self) -> bool:
        return self.feature_set in ("text", "fused")

    @property
    def design_columns(self) -> list[str]:
        out = list(self.columns)
        if self.uses_text:
            out += [f"model={m}" for m in self.llms]
            if self.emb_axes is not None:
                out += [f"emb_{i + 1}" for i in range(len(self.emb_axes))]
        return out

    # -- the design matrix
    def _emb_rows(self, table, embeddings) -> np.ndarray | None:
        """Per row: the answer's embedding (pointwise) or answer 1's minus answer 2's."""
        if embeddings is None:
            return None
        sess, turn = table["session"], table["turn"]
        pair = self.task == "pairwise"
        out = []
        for i in range(len(sess)):
            key = (str(sess[i]), int(turn[i]))
            if pair:
                a, b = embeddings.get(key + (1,)), embeddings.get(key + (2,))
                out.append(None if a is None or b is None else a - b)
            else:
                out.append(embeddings.get(key + (int(table["response"][i]),)))
        dim = next((len(v) for v in out if v is not None), 0)
        if not dim:
            return None
        return np.array([v if v is not None else np.full(dim, np.nan) for v in out], dtype=np.float64)

    def design(self, table: dict[str, np.ndarray], embeddings: dict | None = None) -> np.ndarray:
        n = len(table["session"])
        cols = []
        for c in self.columns:
            if c == "gaze_last_look_signed_s":
                cols.append(table["gaze_last_look"] * table["gaze_last_look_s"])
            elif c in table:
                cols.append(np.asarray(table[c], dtype=np.float64))
            else:
                cols.append(np.full(n, np.nan))
        if self.uses_text:
            for m in self.llms:
                if self.task == "pairwise":
                    cols.append((table["model_1"] == m).astype(np.float64) - (table["model_2"] == m))
                else:
                    cols.append((table["model"] == m).astype(np.float64))
            if self.emb_axes is not None:
                e = self._emb_rows(table, embeddings)
                if e is None:
                    cols += [np.full(n, np.nan)] * len(self.emb_axes)
                else:
                    proj = (e - (0 if self.task == "pairwise" else self.emb_mean)) @ self.emb_axes.T
                    cols += list(proj.T)
        return np.column_stack(cols) if cols else np.zeros((n, 0))

    def _mirror(self, X: np.ndarray) -> np.ndarray:
        sign = np.array([-1.0 if _antisymmetric(c) else 1.0 for c in self.design_columns])
        return X * sign

    # -- fitting and predicting
    def fit(self, table: dict[str, np.ndarray], embeddings: dict | None = None) -> "RewardModel":
        rows, y = labels(table, self.task)
        if not rows.any():
            raise ModelError(f"no {self.task} labels to train on")
        table = {k: v[rows] for k, v in table.items()}
        y = y[rows]
        if len(np.unique(y)) < 2 and self.task == "pointwise":
            raise ModelError("every answer has the same rating class: nothing to tell apart")
        if not self.columns:
            self.columns = set_columns(table, self.task, self.feature_set, self.kind)
        if self.uses_text:
            if not self.llms:
                self.llms = llm_vocab(table, self.task)
            self._fit_embeddings(table, embeddings)
        if not self.design_columns:
            raise ModelError(f"the {self.feature_set} features are empty in this data (no "
                             f"{'/'.join(sorted(_SET_GROUPS[self.feature_set]))} data recorded)")
        X = self.design(table, embeddings)
        if self.mirrored:
            X, y = np.vstack([X, self._mirror(X)]), np.concatenate([y, 1 - y])
        self.medians = np.nan_to_num(np.nanmedian(np.where(np.isfinite(X), X, np.nan), axis=0)) \
            if len(X) else np.zeros(X.shape[1])
        groups = np.asarray(table["participant"]).astype(str) if "participant" in table else np.zeros(len(rows), str)
        if self.mirrored:
            groups = np.concatenate([groups, groups])  # a row and its mirror stay in one fold
        est = KINDS[self.kind].make(self.seed, X.shape[1])
        with warnings.catch_warnings():  # a column constant in the training rows is expected, not news
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            self.chosen = self._tune(est, X, y, groups)
            if self.chosen:
                est.set_params(**self.chosen)
            est.fit(X, y)
        self.estimator = est
        return self

    def _tune(self, est, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> dict:
        """The kind's tuned setting, chosen by a cross-validation grouped by participant inside
        the training rows: the simplest value (the first of the kind's list) whose mean AUC is
        within one standard error of the best one's (the "one standard error rule": with weak
        signals the best-scoring value is often a lucky one, and a simpler model is the safer
        bet); ``{}`` when the kind tunes nothing or the rows hold fewer than 3 participants or
        one label only."""
        tune = KINDS[self.kind].tune
        n_groups = len(np.unique(groups))
        if tune is None or n_groups < 3 or len(np.unique(y)) < 2:
            return {}
        from sklearn.base import clone
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import GroupKFold

        name, values = tune
        if name.endswith("__k"):
            values = tuple(v for v in values if v <= X.shape[1]) or (X.shape[1],)
        folds = list(GroupKFold(n_splits=min(4, n_groups)).split(X, y, groups))
        scores: list[tuple[float, float]] = []  # per value: mean AUC over the folds, its standard error
        for v in values:
            aucs = []
            for tr, te in folds:
                if len(np.unique(y[tr])) < 2 or len(np.unique(y[te])) < 2:
                    continue
                e = clone(est).set_params(**{name: v}).fit(X[tr], y[tr])
                aucs.append(roc_auc_score(y[te], e.predict_proba(X[te])[:, 1]))
            scores.append((float(np.mean(aucs)), float(np.std(aucs, ddof=1) / math.sqrt(len(aucs)))
                           if len(aucs) > 1 else 0.0) if aucs else (-np.inf, 0.0))
        # the simplest value within one standard error of the best (values go from simple to complex)
        top = max(range(len(values)), key=lambda i: scores[i][0])
        floor = scores[top][0] - scores[top][1]
        best = next(v for v, (m, _se) in zip(values, scores) if m >= floor)
        return {name: best.item() if hasattr(best, "item") else best}

    def _fit_embeddings(self, table, embeddings) -> None:
        self.emb_mean = self.emb_axes = None
        if not embeddings:
            return
        keys = set()
        for s, t in zip(table["session"].tolist(), table["turn"].tolist()):
            for r in ((1, 2) if self.task == "pairwise" else (0,)):
                keys.add((str(s), int(t), r))
        vecs = np.array([embeddings[k] for k in sorted(keys) if k in embeddings], dtype=np.float64)
        if len(vecs) < EMB_DIMS * 2:
            return
        mean = vecs.mean(axis=0)
        e = self._emb_rows(table, embeddings)
        # pairs: axes of the answer differences; answers: axes of the answers themselves
        basis = e[np.isfinite(e).all(axis=1)] if self.task == "pairwise" else vecs - mean
        if len(basis) < EMB_DIMS * 2:
            return
        _u, _s, vt = np.linalg.svd(basis, full_matrices=False)
        self.emb_mean, self.emb_axes = mean, vt[:EMB_DIMS]

    def raw_proba(self, X: np.ndarray) -> np.ndarray:
        """P(label 1) from the estimator alone (pairs: averaged with the mirrored row, unless
        the kind is not mirrored)."""
        if self.estimator is None:
            raise ModelError("the model is not trained")
        p = self.estimator.predict_proba(X)[:, 1]
        if self.mirrored:
            p = 0.5 * (p + 1.0 - self.estimator.predict_proba(self._mirror(X))[:, 1])
        return p

    def calibrate(self, p: np.ndarray) -> np.ndarray:
        a, b = self.platt
        z = a * _logit(p) + b
        return 1.0 / (1.0 + np.exp(-z))

    def predict_proba(self, table: dict[str, np.ndarray], embeddings: dict | None = None) -> np.ndarray:
        """Calibrated P(label 1) per row of ``table`` (pairs: answer 1 preferred)."""
        return self.calibrate(self.raw_proba(self.design(table, embeddings)))

    def moved_by(self, table: dict[str, np.ndarray], embeddings: dict | None = None, top: int = 3,
                 ) -> list[list[tuple[str, float]]]:
        """Per row: the ``top`` design columns whose value moved the probability most,
        each with how much (its probability minus that with the column at its training
        median)."""
        X = self.design(table, embeddings)
        base = self.calibrate(self.raw_proba(X))
        deltas = np.zeros_like(X)
        for j in range(X.shape[1]):
            Xj = X.copy()
            Xj[:, j] = self.medians[j]
            deltas[:, j] = base - self.calibrate(self.raw_proba(Xj))
        names = self.design_columns
        out = []
        for i in range(len(X)):
            order = np.argsort(-np.abs(deltas[i]))[:top]
            out.append([(names[j], float(deltas[i, j])) for j in order if abs(deltas[i, j]) > 1e-9])
        return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fit_platt(p: np.ndarray, y: np.ndarray, *, symmetric: bool = False) -> tuple[float, float]:
    """(a, b) so that sigmoid(a * logit(p) + b) fits ``y`` (a lightly regularised 1-D
    logistic regression); the identity when there is too little to fit. ``symmetric``
    (pairwise models): fitted on the rows and their mirrors with ``b = 0``, so the
    calibrated P(1 over 2) stays 1 - P(2 over 1) and the decision threshold stays at 0.5."""
    if len(p) < 10 or len(np.unique(y)) < 2:
        return 1.0, 0.0
    from sklearn.linear_model import LogisticRegression

    z = _logit(p)
    if symmetric:
        lr = LogisticRegression(C=1.0, fit_intercept=False).fit(np.concatenate([z, -z])[:, None],
                                                                np.concatenate([y, 1 - y]))
        return float(lr.coef_[0, 0]), 0.0
    lr = LogisticRegression(C=1.0).fit(z[:, None], y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def safe_mean(v) -> float:
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan
