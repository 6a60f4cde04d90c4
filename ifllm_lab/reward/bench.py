"""``ifllm-lab bench reward``: how long the reward models take on a dataset, step by step.

Three measured steps on the same sessions (default: the IFLLM development data):

1. **features, cold**: every feature of every session computed again (the feature cache
   neither read nor written), in ``workers`` processes;
2. **features, cached**: the same load when the feature cache holds them (what a second
   training in the workbench pays);
3. **training**: :func:`~ifllm_lab.reward.train.train` with the default settings (the
   ``screened`` kind on every feature set, participant-grouped CV with the paper's
   protocol beside it, permutation importance, the kept model fitted and calibrated),
   ``repeats`` times, with its own breakdown.

A release that is not imported yet is imported (and the feature cache filled) first; that
time is reported apart (``prepare_s``) since it is paid once per release.
"""
from __future__ import annotations

import resource
import statistics
import sys
import time

__all__ = ["bench_reward"]


def _peak_mb(who: int) -> float:
    kb = resource.getrusage(who).ru_maxrss
    return round(kb / (1024.0 * 1024.0) if sys.platform == "darwin" else kb / 1024.0, 1)


def bench_reward(data: list[str], *, workers: int = 2, repeats: int = 1, cache_dir: str | None = None,
                 progress=None) -> dict:
    """The figures above as one dict (seconds, rows, peak memory in MB)."""
    from .data import load_dataset
    from .train import TrainSettings, train

    say = progress or (lambda m: None)
    t0 = time.perf_counter()
    say("importing and filling the feature cache (once)")
    load_dataset(data, cache_dir=cache_dir, workers=workers)
    prepare = time.perf_counter() - t0
    say("features, cold")
    t0 = time.perf_counter()
    cold = load_dataset(data, cache_dir=cache_dir, workers=workers, feature_cache=False)
    features_cold = time.perf_counter() - t0
    say("features, cached")
    t0 = time.perf_counter()
    ds = load_dataset(data, cache_dir=cache_dir, workers=workers)
    features_cached = time.perf_counter() - t0
    if len(cold.comparisons.get("session", ())) != len(ds.comparisons.get("session", ())):
        raise RuntimeError("the cached features differ from the ones computed again: clear the feature cache")
    settings = TrainSettings()
    runs, report = [], None
    for i in range(max(1, repeats)):
        say(f"training, run {i + 1}")
        t0 = time.perf_counter()
        report = train(ds, settings)
        runs.append(time.perf_counter() - t0)
    s = report.summary()
    return {
        "sessions": len(ds.sessions), "pairwise_rows": s["n_train"], "participants": s["participants"],
        "workers": workers, "kinds": list(settings.kinds), "sets": list(settings.sets),
        "prepare_s": round(prepare, 2), "features_cold_s": round(features_cold, 2),
        "features_cached_s": round(features_cached, 2),
        "train_s": round(statistics.median(runs), 2), "train_runs_s": [round(r, 2) for r in runs],
        "train_steps_s": {k: round(v, 2) for k, v in report.seconds.items()},
        "cold_total_s": round(features_cold + statistics.median(runs), 2),
        "fused_acc": s["fused_acc"], "text_acc": s["text_acc"],
        "peak_rss_mb": _peak_mb(resource.RUSAGE_SELF), "peak_rss_workers_mb": _peak_mb(resource.RUSAGE_CHILDREN),
    }
