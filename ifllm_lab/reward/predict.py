"""A saved reward model applied to sessions: per turn, what it predicts and why."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .model import ModelError, RewardModel

__all__ = ["TurnPrediction", "predict_sessions", "predict_dataset"]


@dataclass
class TurnPrediction:
    """One prediction. Pairwise: ``p`` = P(answer 1 preferred), ``predicted`` 1 or 2,
    ``actual`` the participant's choice (1, 2, 0 tie, -1 none). Pointwise: ``p`` =
    P(rated good) for answer ``response``, ``actual`` its Likert rating (-1 none).
    ``moved_by``: the features that moved ``p`` most, each with how much."""

    session: str
    participant: str
    turn: int
    response: int
    p: float
    predicted: int
    actual: int
    moved_by: list[tuple[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"session": self.session, "participant": self.participant, "turn": self.turn,
                "response": self.response, "p": None if not math.isfinite(self.p) else round(self.p, 4),
                "predicted": self.predicted, "actual": self.actual,
                "moved_by": [{"feature": n, "by": round(d, 4)} for n, d in self.moved_by]}


def predict_dataset(model: RewardModel, data, embeddings: dict | None = None, top: int = 3) -> list[TurnPrediction]:
    level = "comparison" if model.task == "pairwise" else "response"
    table = data.table(level)
    n = len(table.get("session", ()))
    if not n:
        other = "pointwise answers only" if model.task == "pairwise" else "no answers"
        raise ModelError(f"this is a {model.task} model and the sessions have {other}: nothing to predict")
    p = model.predict_proba(table, embeddings)
    moved = model.moved_by(table, embeddings, top=top)
    out = []
    for i in range(n):
        if model.task == "pairwise":
            pred, actual, resp = (1 if p[i] >= 0.5 else 2), int(table["preference"][i]), 0
        else:
            pred, actual, resp = int(p[i] >= 0.5), int(table["likert"][i]), int(table["response"][i])
        out.append(TurnPrediction(str(table["session"][i]), str(table["participant"][i]), int(table["turn"][i]),
                                  resp, float(p[i]), pred, actual, moved[i]))
    return out


def predict_sessions(model: RewardModel, info: dict, sources: list[str], *, cache_dir: str | None = None,
                     workers: int = 2, top: int = 3, progress=None, cancel=None,
                     log=None) -> tuple[list[TurnPrediction], object]:
    """(predictions, the dataset) for the sessions in ``sources``."""
    from .data import load_dataset

    data = load_dataset(sources, cache_dir=cache_dir, workers=workers, progress=progress, cancel=cancel, log=log)
    emb = None
    if model.emb_axes is not None:
        from .text_embed import dataset_embeddings

        emb, got = dataset_embeddings([data], model.task, cache_dir=cache_dir, cancel=cancel)
        want = (info.get("embedding") or {}).get("model")
        if want and got.get("model") != want:
            raise ModelError(f"the model was trained on embeddings of another LLM ({want}); this app embeds with "
                             f"{got.get('model')}")
    return predict_dataset(model, data, emb, top=top), data


def accuracy_of(preds: list[TurnPrediction]) -> float:
    ok = [(p.predicted == p.actual) for p in preds if p.actual in (1, 2)]
    return float(np.mean(ok)) if ok else math.nan


def score_text_pairs(model: RewardModel, answers_1: list[str], answers_2: list[str]) -> np.ndarray:
    """P(answer 1 preferred over answer 2) for answers nobody has read yet (generated ones),
    from a pairwise model that sees only what the texts give: a model on the ``text``
    feature set. Both answers count as shown in the same place and written by an LLM the
    model has not seen."""
    from ..features.extract import text_comparison
    from ..features.registry import FEATURES

    if model.task != "pairwise":
        raise ModelError(f"scoring two answers needs a pairwise model; this one is {model.task}")
    if model.feature_set != "text" or model.emb_axes is not None:
        why = "embeddings" if model.feature_set == "text" else f"the {model.feature_set} features"
        raise ModelError(f"generated answers have no gaze or mouse data: score them with a text model (feature set "
                         f"'text', without embeddings); this one uses {why}")
    n = len(answers_1)
    rows = [text_comparison(a, b) for a, b in zip(answers_1, answers_2)]
    table: dict[str, np.ndarray] = {"session": np.array(["generated"] * n), "turn": np.arange(n),
                                    "model_1": np.array([""] * n), "model_2": np.array([""] * n)}
    for name in (rows[0] if rows else {}):
        table[name] = np.array([r[name] for r in rows], dtype=np.float64)
    for c in model.columns:
        if c not in table:
            if c not in FEATURES:
                raise ModelError(f"the model uses {c!r}, which this version does not compute")
            table[c] = np.zeros(n) if FEATURES[c].unit == "side" else np.full(n, np.nan)
    return model.predict_proba(table)
