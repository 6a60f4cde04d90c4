"""``ifllm-lab bench dpo``: a real DPO run on the bundled small model, measured.

Pairs from the sessions (default: the IFLLM development data), LoRA DPO (rDPO + NLL) of
SmolLM2-135M-Instruct from its bundled GGUF for a fixed number of steps in a child
process, then the evaluation on the held-out prompts, scored by a text reward model
trained on the same sessions. Reports the seconds per step, the peak memory of the
training and the evaluation processes, the loss / margin / accuracy curves and the win
rate of tuned over base. No torch here: the job runs in its own process.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time

__all__ = ["bench_dpo"]


def _wait(folder: str, progress) -> object:
    from ..jobs import read_status

    while True:
        st = read_status(folder)
        if st is not None and st.finished:
            return st
        if st is not None and progress:
            progress(st.fraction, st.message)
        time.sleep(0.5)


def bench_dpo(data: list[str], *, steps: int = 20, eval_prompts: int = 20, max_new_tokens: int = 96,
              batch_size: int = 2, max_length: int = 512, folder: str | None = None, base_model: str | None = None,
              workers: int = 2, progress=None) -> dict:
    import numpy as np

    from ..jobs import DONE
    from ..llm.llama import default_model_path
    from ..reward.data import load_dataset
    from ..reward.store import save_model
    from ..reward.train import TrainSettings, train
    from .job import EVAL_DIR, JobSpec, launch, launch_eval, read_eval, read_metrics
    from .pairs import make_pairs, write_jsonl

    work = tempfile.mkdtemp(prefix="ifllm-bench-dpo-", dir=folder)
    try:
        t0 = time.perf_counter()
        rep = make_pairs(data, workers=workers)
        pairs = write_jsonl(rep.pairs, os.path.join(work, "pairs.jsonl"))
        t_pairs = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = load_dataset(data, workers=workers)
        tr = train(ds, TrainSettings(kinds=("screened",), sets=("text",), keep_set="text", paper_protocol=False,
                                     importance=False, n_boot=200))
        rm = save_model(tr.model, os.path.join(work, "text-reward-model"))
        t_reward = time.perf_counter() - t0
        spec = JobSpec(base_model=base_model or str(default_model_path()), pairs=pairs,
                       output_dir=os.path.join(work, "job"), name="bench-dpo", loss="robust+sft", max_steps=steps,
                       batch_size=batch_size, grad_accum=1, learning_rate=5e-5, max_length=max_length,
                       save_steps=max(steps, 1), eval_prompts=eval_prompts, eval_max_new_tokens=max_new_tokens,
                       reward_model=rm)
        t0 = time.perf_counter()
        job = launch(spec)
        st = _wait(job, progress)
        t_job = time.perf_counter() - t0
        if st.state != DONE:
            raise RuntimeError(f"the DPO job {st.state}: {st.error}")
        m = read_metrics(job)
        el = np.array([r["elapsed_s"] for r in m])
        per_step = np.diff(np.concatenate([[0.0], el]))[1:]  # the first step also warms up
        t0 = time.perf_counter()
        launch_eval(job)
        st = _wait(os.path.join(job, EVAL_DIR), progress)
        t_eval = time.perf_counter() - t0
        if st.state != DONE:
            raise RuntimeError(f"the evaluation {st.state}: {st.error}")
        ev = read_eval(job)

        def curve(key):
            return [round(float(r[key]), 4) for r in m if key in r]

        return {
            "base_model": os.path.basename(spec.base_model), "pairs": len(rep.pairs),
            "pairs_by_source": dict(rep.by_source), "train_pairs": len(rep.pairs) - ev["prompts"], "steps": len(m),
            "batch_size": batch_size, "max_length": max_length, "lora_r": spec.lora.r, "loss": spec.loss,
            "pairs_s": round(t_pairs, 2), "reward_model_s": round(t_reward, 2),
            "job_s": round(t_job, 2), "first_step_s": round(float(el[0]), 2) if len(el) else None,
            "step_s_median": round(float(np.median(per_step)), 3) if len(per_step) else None,
            "step_s_range": [round(float(per_step.min()), 3), round(float(per_step.max()), 3)] if len(per_step)
            else None,
            "tokens_per_s_median": round(float(np.median([r["tokens_per_s"] for r in m[1:]] or [0])), 1),
            "train_rss_peak_mb": m[-1].get("rss_peak_mb") if m else None,
            "loss_curve": curve("loss"), "margin_curve": curve("rewards/margins"),
            "accuracy_curve": curve("rewards/accuracies"),
            "eval_prompts": ev["prompts"], "eval_max_new_tokens": ev["max_new_tokens"], "eval_s": round(t_eval, 2),
            "eval_rss_peak_mb": ev.get("rss_peak_mb"), "win_rate": ev["win_rate"], "win_rate_ci": ev["win_rate_ci"],
            "mean_p_tuned": ev["mean_p"], "tuned_longer_share": ev["longer_share"],
            "text_base": ev["text"]["base"], "text_tuned": ev["text"]["tuned"],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
