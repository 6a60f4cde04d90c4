"""The answers' embeddings from the local llama.cpp model, for the text models.

Each answer's text is embedded once (:func:`~ifllm_lab.features.embed.embed_texts`, cached
by text) and keyed ``(session, turn, response)`` like the feature rows."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .data import Dataset

__all__ = ["dataset_embeddings", "task_texts", "texts_embeddings"]


def texts_embeddings(texts: dict[tuple[str, int, int], str], *, cache_dir: str | None = None,
                     model_path: str | None = None, progress: Callable[[float, str], None] | None = None,
                     cancel: Callable[[], bool] | None = None) -> tuple[dict, dict]:
    """({key: vector}, {"model": fingerprint}) for the answers in ``texts``."""
    import os

    from ..features.embed import embed_texts, embedding_fingerprint

    keys = sorted(texts)
    unique = sorted({texts[k] for k in keys})
    emb_cache = os.path.join(cache_dir, "embeddings") if cache_dir else None

    def step(done: int, total: int) -> None:
        if progress is not None:
            progress(done / max(total, 1), f"embedding answers: {done} of {total}")

    vecs = embed_texts(unique, model_path=model_path, cache_dir=emb_cache, progress=step, cancel=cancel)
    where = {t: i for i, t in enumerate(unique)}
    out = {k: np.asarray(vecs[where[texts[k]]], dtype=np.float64) for k in keys}
    return out, {"model": embedding_fingerprint(model_path)}


def task_texts(d: Dataset, task: str | None = None) -> dict[tuple[str, int, int], str]:
    """The answers of ``d`` that a ``task`` model reads: a pairwise model only the answers of
    pairwise questions (embedding the others would cost model time for nothing); ``None``:
    every answer."""
    if task != "pairwise":
        return dict(d.texts)
    pairs = set(zip(d.comparisons.get("session", np.zeros(0)).tolist(),
                    d.comparisons.get("turn", np.zeros(0)).tolist()))
    return {k: v for k, v in d.texts.items() if (k[0], int(k[1])) in pairs}


def dataset_embeddings(datasets: list[Dataset], task: str | None = None, **kwargs) -> tuple[dict, dict]:
    """Embeddings of the answers of ``datasets`` that a ``task`` model reads (:func:`task_texts`)."""
    texts: dict = {}
    for d in datasets:
        texts.update(task_texts(d, task))
    return texts_embeddings(texts, **kwargs)
