"""The DPO worker: runs one job folder's spec with TRL's ``DPOTrainer``. The only module of
the app that imports torch, transformers, trl and peft (the ``dpo`` extra), and only inside
its functions, so that naming :func:`run_job` for a child process costs nothing.

It runs as a job (:mod:`ifllm_lab.jobs`): in a child process started by
:func:`ifllm_lab.dpo.job.launch` (``status.json``, ``log.txt`` and the cancel file in the
job folder), or in the foreground as ``python -m ifllm_lab.dpo.worker JOB_DIR [--resume]``
(what ``accelerate launch`` and a Slurm script run). Each logged step is a line of
``metrics.jsonl``: step, epoch, loss, rewards/chosen, rewards/rejected, rewards/margins,
rewards/accuracies, logps/chosen, logps/rejected, grad_norm, learning_rate, tokens_per_s,
elapsed_s. A cancel stops training at the end of the current step, after a checkpoint is
saved; ``--resume`` goes on from the last checkpoint.
"""
from __future__ import annotations

import json
import os
import sys
import time

from .job import (
    EVAL_FILE, HELDOUT_FILE, METRICS_FILE, SPEC_FILE, SpecError, base_kind, load_spec, lora_config, trl_config,
)

__all__ = ["run_job", "run_eval", "main", "DpoUnavailable", "load_base", "MISSING_EXTRA", "split_heldout",
           "EXTRA_MODULES", "missing_extra"]

MISSING_EXTRA = "DPO needs torch, transformers, trl and peft: pip install 'ifllm-lab[dpo]'"
LOGGED = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
          "logps/rejected", "grad_norm", "learning_rate")


EXTRA_MODULES = ("torch", "transformers", "trl", "peft")  #: what the ``dpo`` extra brings that a job needs


def missing_extra() -> list[str]:
    """The modules of the ``dpo`` extra that are not installed (found without importing them)."""
    import importlib.util

    out = []
    for name in EXTRA_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(name)
    return out


class DpoUnavailable(RuntimeError):
    """The ``dpo`` extra is not installed in this Python."""


def _import_stack():
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401
    except ImportError as exc:
        raise DpoUnavailable(f"{MISSING_EXTRA} ({exc.name or exc} is missing)") from None


def load_base(spec, job_dir: str, log=print):
    """(model folder or hub name to load, tokenizer). A GGUF file is converted once into
    ``JOB_DIR/base`` (transformers reads GGUF through ``gguf_file=``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kind = base_kind(spec.base_model)
    if kind == "gguf":
        out = os.path.join(job_dir, "base")
        if not os.path.isfile(os.path.join(out, "config.json")):
            log(f"converting {spec.base_model} into a model folder ({out})")
            folder, name = os.path.split(os.path.abspath(spec.base_model))
            try:
                tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
                model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
            except Exception as exc:
                raise SpecError(f"base_model = {spec.base_model!r}: not a GGUF model transformers can read "
                                f"({type(exc).__name__}: {str(exc)[:200]})") from None
            # the weights come dequantized but the model stays marked as GGUF-quantized, which
            # cannot be saved: the same weights go into a plain model of the same config
            cfg = model.config
            if hasattr(cfg, "quantization_config"):
                delattr(cfg, "quantization_config")
            plain = AutoModelForCausalLM.from_config(cfg)
            plain.load_state_dict(model.state_dict())
            del model
            tmp = out + ".partial"
            plain.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            if os.path.isdir(out):
                import shutil

                shutil.rmtree(out)
            os.replace(tmp, out)
        src = out
    else:
        src = spec.base_model
    try:
        tok = AutoTokenizer.from_pretrained(src)
    except Exception as exc:
        raise SpecError(f"base_model = {spec.base_model!r}: its tokenizer cannot be loaded "
                        f"({type(exc).__name__}: {str(exc)[:200]})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return src, tok


def _rows(path: str) -> list[dict]:
    from .pairs import PairsError, read_jsonl

    try:
        rows = read_jsonl(path)
    except PairsError as exc:
        raise SpecError(f"pairs = {path!r}: {exc}") from None
    if not rows:
        raise SpecError(f"pairs = {path!r}: the file holds no pairs")
    return rows


def split_heldout(rows: list[dict], n: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows): ``n`` pairs (at most a fifth of them) drawn with
    ``seed`` and kept out of training, with every other pair of the same prompt text."""
    import random

    n = min(n, len(rows) // 5)
    if n <= 0:
        return rows, []
    key = [json.dumps(r["prompt"], sort_keys=True) for r in rows]
    order = sorted(set(key))
    random.Random(seed).shuffle(order)
    held_keys = set(order[:n])
    return ([r for r, k in zip(rows, key) if k not in held_keys],
            [r for r, k in zip(rows, key) if k in held_keys][:n])


def run_job(ctx, job_dir: str, resume: bool = False) -> dict:
    """Run the spec in ``job_dir``; returns where the tuned model is and the last metrics.
    ``ctx``: an :class:`ifllm_lab.jobs.JobContext`."""
    from ..jobs import JobCancelled

    job_dir = os.path.abspath(job_dir)
    spec = load_spec(os.path.join(job_dir, SPEC_FILE))
    spec.check(local_files=True)
    ctx.progress(0.0, "loading torch and TRL")
    _import_stack()
    import torch
    from transformers import AutoModelForCausalLM, TrainerCallback
    from transformers.trainer_utils import get_last_checkpoint
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(spec.seed)
    ctx.progress(0.0, "loading the base model")
    src, tok = load_base(spec, job_dir, ctx.log)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[spec.precision]
    try:
        model = AutoModelForCausalLM.from_pretrained(src, dtype=dtype)
    except Exception as exc:
        raise SpecError(f"base_model = {spec.base_model!r}: the model cannot be loaded "
                        f"({type(exc).__name__}: {str(exc)[:300]})") from None
    from datasets import Dataset

    rows, held = split_heldout(_rows(spec.pairs), spec.eval_prompts, spec.seed)
    if not resume or not os.path.exists(os.path.join(job_dir, HELDOUT_FILE)):
        with open(os.path.join(job_dir, HELDOUT_FILE), "w", encoding="utf-8") as fh:
            for r in held:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    train = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    ctx.log(f"{len(train)} pairs from {spec.pairs} ({len(held)} held out for the evaluation); base {src}; "
            f"loss {spec.loss}, beta {spec.beta}; "
            f"{'LoRA r=' + str(spec.lora.r) if spec.lora.enabled else 'the whole model'}")
    ckpt_dir = os.path.join(job_dir, "checkpoints")
    cuda = torch.cuda.is_available()
    config = DPOConfig(output_dir=ckpt_dir, logging_steps=1, save_strategy="steps", save_total_limit=2,
                       report_to=[], disable_tqdm=True, use_cpu=not cuda, dataloader_num_workers=0,
                       **trl_config(spec))
    peft_config = None
    if spec.lora.enabled:
        from peft import LoraConfig

        peft_config = LoraConfig(**lora_config(spec))
    metrics_path = os.path.join(job_dir, METRICS_FILE)
    last: dict = {}

    class Progress(TrainerCallback):
        def __init__(self):
            self.t0 = time.monotonic()
            self.t_last, self.tokens_last = self.t0, 0.0

        def on_step_end(self, args, state, control, **kw):
            if ctx.cancelled:  # save this step and stop
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            if "loss" not in logs:
                return
            now = time.monotonic()
            tokens = float(logs.get("num_tokens", 0.0))
            row = {"step": state.global_step, "epoch": round(float(logs.get("epoch", state.epoch or 0.0)), 4),
                   **{k: float(logs[k]) for k in LOGGED if k in logs},
                   "tokens_per_s": round((tokens - self.tokens_last) / max(now - self.t_last, 1e-6), 2),
                   "elapsed_s": round(now - self.t0, 3), "max_steps": state.max_steps, "rss_peak_mb": _peak_mb()}
            self.t_last, self.tokens_last = now, tokens
            last.clear()
            last.update(row)
            with open(metrics_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            done = state.global_step / max(state.max_steps, 1)
            ctx.progress(min(done, 1.0), f"step {state.global_step} of {state.max_steps}: loss {row['loss']:.4f}, "
                                         f"margin {row.get('rewards/margins', float('nan')):.4f}")

    trainer = DPOTrainer(model=model, args=config, train_dataset=train, processing_class=tok,
                         peft_config=peft_config, callbacks=[Progress()])
    start_from = None
    if resume:
        start_from = get_last_checkpoint(ckpt_dir) if os.path.isdir(ckpt_dir) else None
        ctx.log(f"resuming from {start_from}" if start_from else "no checkpoint to resume from: starting over")
    elif os.path.exists(metrics_path):
        os.remove(metrics_path)
    ctx.progress(0.0, "training")
    try:
        trainer.train(resume_from_checkpoint=start_from)
    except (MemoryError, torch.OutOfMemoryError):
        raise MemoryError(f"out of memory at step {trainer.state.global_step}: lower batch_size or max_length "
                          f"(now {spec.batch_size} and {spec.max_length}), or use LoRA") from None
    out = os.path.join(job_dir, "model")
    if ctx.cancelled:
        raise JobCancelled(f"cancelled at step {trainer.state.global_step}; the last checkpoint is in {ckpt_dir} "
                           "(resume goes on from it)", partial={"step": trainer.state.global_step, "last": last})
    ctx.progress(1.0, "saving the tuned model")
    trainer.save_model(out)
    tok.save_pretrained(out)
    with open(os.path.join(out, "ifllm_dpo.json"), "w", encoding="utf-8") as fh:
        json.dump({"base_model": spec.base_model, "base_folder": src, "lora": spec.lora.enabled,
                   "steps": trainer.state.global_step, "last": last}, fh, indent=1)
    return {"model": out, "steps": trainer.state.global_step, "last": last, "lora": spec.lora.enabled}


def export_gguf(ctx, job_dir: str, out: str, converter: str, outtype: str = "q8_0") -> dict:
    """The tuned model as one GGUF file that llama.cpp (and so the study app) runs: a LoRA
    adapter is merged into its base first (``JOB_DIR/merged``), then llama.cpp's converter
    writes ``out`` (beside it first, moved into place when whole)."""
    import subprocess

    from ..llm.gguf import inspect_gguf

    job_dir = os.path.abspath(job_dir)
    spec = load_spec(os.path.join(job_dir, SPEC_FILE))
    tuned_dir = os.path.join(job_dir, "model")
    with open(os.path.join(tuned_dir, "ifllm_dpo.json"), encoding="utf-8") as fh:
        info = json.load(fh)
    _import_stack()
    if info.get("lora"):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        ctx.progress(0.1, "merging the LoRA adapter into the base model")
        src, tok = load_base(spec, job_dir, ctx.log)
        merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(src), tuned_dir).merge_and_unload()
        folder = os.path.join(job_dir, "merged")
        merged.save_pretrained(folder)
        tok.save_pretrained(folder)
        del merged
    else:
        folder = tuned_dir
    ctx.progress(0.5, "converting to GGUF (llama.cpp's converter)")
    out = os.path.abspath(out)
    tmp = f"{out}.partial-{os.getpid()}"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(converter, "gguf-py"), converter, env.get("PYTHONPATH", "")])
    p = subprocess.run([sys.executable, os.path.join(converter, "convert_hf_to_gguf.py"), folder, "--outfile", tmp,
                        "--outtype", outtype], capture_output=True, text=True, env=env)
    if p.returncode != 0 or not os.path.isfile(tmp):
        try:
            os.remove(tmp)
        except OSError:
            pass
        tail = [ln for ln in (p.stderr or p.stdout).strip().splitlines() if ln.strip()][-1:]
        raise RuntimeError(f"llama.cpp's converter failed on {folder}: {tail[0] if tail else p.returncode}")
    os.replace(tmp, out)
    g = inspect_gguf(out)
    ctx.log(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB, {outtype})")
    return {"gguf": out, "bytes": os.path.getsize(out), "outtype": outtype,
            "architecture": g.metadata.get("general.architecture"), "tensors": g.n_tensors}


def write_hf_dataset(rows: list[dict], folder: str) -> str:
    """``rows`` as a Hugging Face ``datasets`` folder, written beside ``folder`` and moved
    into place (a failed write leaves nothing)."""
    import shutil

    from ..paths import install_folder

    try:
        import datasets
    except ImportError:
        raise DpoUnavailable(f"a Hugging Face dataset needs the 'datasets' package: {MISSING_EXTRA}") from None
    folder = os.path.abspath(folder)
    tmp = f"{folder}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        datasets.Dataset.from_list(rows).save_to_disk(tmp)
        install_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def submit_with_submitit(spec, job_dir: str, resume: bool = False) -> str:
    """Submit the job folder to Slurm through submitit; returns the cluster's job id."""
    try:
        import submitit
    except ImportError:
        raise DpoUnavailable(f"submitit is not installed: {MISSING_EXTRA}") from None
    ex = submitit.AutoExecutor(folder=os.path.join(job_dir, "submitit"), cluster="slurm")
    ex.update_parameters(name=spec.name, slurm_partition=spec.slurm.partition or None,
                         gpus_per_node=spec.slurm.gpus, cpus_per_task=spec.slurm.cpus, slurm_mem=spec.slurm.mem,
                         slurm_time=spec.slurm.time, slurm_account=spec.slurm.account or None)
    return str(ex.submit(main, [job_dir] + (["--resume"] if resume else [])).job_id)


def _peak_mb() -> float:
    """This process's peak resident memory so far (MB)."""
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024, 1)


def _stats(texts: list[str]) -> dict:
    from ..features.text import text_features

    keys = ("text_words", "text_paragraphs", "text_bullets", "text_headings", "text_bold", "text_markup_share",
            "text_flesch")
    vals = [text_features(t) for t in texts]
    out = {}
    for k in keys:
        v = [x[k] for x in vals if x[k] == x[k]]
        out[k.removeprefix("text_")] = round(sum(v) / len(v), 4) if v else None
    return out


def _generate(model, tok, prompts: list[list[dict]], max_new_tokens: int, seed: int, ctx, what: str) -> list[str]:
    import torch

    out = []
    model.eval()
    for i, messages in enumerate(prompts):
        ctx.check_cancel()
        torch.manual_seed(seed + i)
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)
        with torch.no_grad():
            gen = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id or tok.eos_token_id)
        out.append(tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip())
        ctx.progress(None, f"{what}: answer {i + 1} of {len(prompts)}")
    return out


def run_eval(ctx, job_dir: str, reward_model: str | None = None, prompts: int | None = None,
             max_new_tokens: int | None = None) -> dict:
    """Answers of the base and the tuned model to the job's held-out prompts (greedy, one
    fixed seed per prompt), the reward model's P(tuned preferred over base) per prompt and
    the win rate with a bootstrap interval, and text statistics of both; written to
    ``JOB_DIR/eval.json``."""
    import numpy as np

    job_dir = os.path.abspath(job_dir)
    t0 = time.monotonic()
    spec = load_spec(os.path.join(job_dir, SPEC_FILE))
    reward_model = reward_model or spec.reward_model or None
    scorer = None
    if reward_model:
        from ..reward.model import ModelError
        from ..reward.predict import score_text_pairs
        from ..reward.store import ModelFileError, load_model

        try:
            rm, _info = load_model(reward_model)
            score_text_pairs(rm, ["a"], ["b"])  # refuses a model that needs gaze or mouse
        except (ModelFileError, ModelError) as exc:
            raise SpecError(f"reward_model = {reward_model!r}: {exc}") from None
        scorer = rm
    try:
        with open(os.path.join(job_dir, HELDOUT_FILE), encoding="utf-8") as fh:
            held = [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        raise SpecError(f"{job_dir}: no held-out prompts ({HELDOUT_FILE}); the job kept none (eval_prompts = "
                        f"{spec.eval_prompts})") from None
    held = held[: prompts or len(held)]
    if not held:
        raise SpecError(f"{job_dir}: no held-out prompts to evaluate on (eval_prompts = {spec.eval_prompts})")
    ctx.progress(0.0, "loading torch")
    _import_stack()
    import torch
    from transformers import AutoModelForCausalLM

    src, tok = load_base(spec, job_dir, ctx.log)
    with open(os.path.join(job_dir, "model", "ifllm_dpo.json"), encoding="utf-8") as fh:
        info = json.load(fh)
    n_tok = max_new_tokens or spec.eval_max_new_tokens
    msgs = [r["prompt"] for r in held]
    torch.manual_seed(spec.seed)
    base = AutoModelForCausalLM.from_pretrained(src)
    base_answers = _generate(base, tok, msgs, n_tok, spec.seed, ctx, "base model")
    if info.get("lora"):
        from peft import PeftModel

        tuned = PeftModel.from_pretrained(base, os.path.join(job_dir, "model"))
    else:
        del base
        tuned = AutoModelForCausalLM.from_pretrained(os.path.join(job_dir, "model"))
    tuned_answers = _generate(tuned, tok, msgs, n_tok, spec.seed, ctx, "tuned model")
    p = None
    if scorer is not None:
        p = np.asarray(score_text_pairs(scorer, tuned_answers, base_answers), dtype=np.float64)
    wins = None if p is None else np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, 0.5))
    ci = None
    if wins is not None and len(wins) > 1:
        rng = np.random.default_rng(spec.seed)
        boots = wins[rng.integers(0, len(wins), size=(2000, len(wins)))].mean(axis=1)
        ci = [round(float(x), 4) for x in np.quantile(boots, [0.025, 0.975])]
    longer = [len(a.split()) > len(b.split()) for a, b in zip(tuned_answers, base_answers)]
    out = {"prompts": len(held), "reward_model": reward_model, "max_new_tokens": n_tok,
           "win_rate": None if wins is None else round(float(wins.mean()), 4), "win_rate_ci": ci,
           "mean_p": None if p is None else round(float(p.mean()), 4),
           "longer_share": round(sum(longer) / len(longer), 4),
           "text": {"base": _stats(base_answers), "tuned": _stats(tuned_answers)},
           "answers": [{"prompt": m[-1]["content"], "base": b, "tuned": t,
                        "p_tuned": None if p is None else round(float(p[i]), 4)}
                       for i, (m, b, t) in enumerate(zip(msgs, base_answers, tuned_answers))],
           "seconds": round(time.monotonic() - t0, 2), "rss_peak_mb": _peak_mb()}
    from ..paths import write_text_atomic

    write_text_atomic(os.path.join(job_dir, EVAL_FILE), json.dumps(out, ensure_ascii=False, indent=1))
    return {k: v for k, v in out.items() if k != "answers"}


class _Quiet:
    """The job context of a process that is not the job's main one (accelerate's ranks > 0)."""

    name = "dpo"
    cancelled = False

    def progress(self, *a, **k):
        pass

    def log(self, m):
        pass

    def partial(self, v):
        pass

    def check_cancel(self):
        pass


def main(argv: list[str] | None = None) -> int:
    """``python -m ifllm_lab.dpo.worker JOB_DIR [--resume]``: the job in the foreground."""
    from ..jobs import DONE, Job, read_status

    argv = sys.argv[1:] if argv is None else argv
    args = [a for a in argv if a != "--resume"]
    if len(args) != 1:
        print("usage: python -m ifllm_lab.dpo.worker JOB_DIR [--resume]", file=sys.stderr)
        return 2
    folder = os.path.abspath(args[0])
    resume = "--resume" in argv
    if int(os.environ.get("RANK", "0")) != 0:
        run_job(_Quiet(), folder, resume)
        return 0
    try:
        name = load_spec(os.path.join(folder, SPEC_FILE)).name
    except SpecError as exc:
        print(f"ifllm-lab: {exc}", file=sys.stderr)
        return 2
    Job(run_job, folder, resume=resume, name=name, status_dir=folder).run()
    st = read_status(folder)
    if st is not None and st.state != DONE:
        print(f"ifllm-lab: the DPO job {st.state}: {st.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
