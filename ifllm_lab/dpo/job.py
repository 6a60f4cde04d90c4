"""DPO jobs: the spec (a TOML file), its checks, the job folder, and how a job is run here,
through ``accelerate launch`` or on a Slurm cluster. No torch here (the worker,
:mod:`ifllm_lab.dpo.worker`, is the only module that imports it).

A job is one folder (the spec's ``output_dir``)::

    job.toml          the spec, as run (a resumed or cluster run reads it from here)
    sources.json      whose data it trains on: the pairs file, its SHA-256, the participants'
                      pseudonyms and the session ids of its pairs
    STALE.json        only when data it was built from has been deleted (rebuild it)
    status.json       state, progress, error (ifllm_lab.jobs: written by the worker)
    log.txt           the job's log; output.txt: the worker's stdout and stderr
    metrics.jsonl     one JSON object per logged training step
    base/             a GGUF base model converted to a model folder (made once)
    checkpoints/      the trainer's checkpoints (resume reads the last one)
    model/            the tuned model: a LoRA adapter, or the whole model
    slurm.sh          the batch script of a Slurm run (with its log, slurm-*.out)

The spec::

    name = "smollm2-rdpo"
    base_model = "bundled"              # the app's SmolLM2 GGUF, a model folder, a .gguf file, a hub name
    pairs = "pairs.jsonl"                # from `ifllm-lab dpo export`
    output_dir = "jobs/smollm2-rdpo"
    loss = "robust+sft"                  # sigmoid | robust | robust+sft
    beta = 0.1
    label_smoothing = 0.1                # robust losses: the share of labels taken as flipped
    sft_weight = 0.2                     # robust+sft: weight of the NLL term
    epochs = 1.0
    max_steps = -1                       # > 0: stop after so many optimiser steps
    batch_size = 2
    grad_accum = 4
    learning_rate = 5e-5
    precision = "fp32"                   # fp32 | bf16 | fp16
    max_length = 1024
    seed = 0
    save_steps = 50
    run = "local"                        # local | accelerate | slurm

    [lora]                               # no [lora] table, or enabled = false: the whole model
    enabled = true
    r = 16
    alpha = 32
    dropout = 0.05
    target_modules = ["q_proj", "k_proj", "v_proj", "o_proj"]

    [accelerate]
    num_processes = 1
    [slurm]
    partition = "gpu"
    gpus = 1
    cpus = 8
    mem = "64G"
    time = "04:00:00"
    python = "python"                    # the Python with ifllm-lab[dpo] on the cluster
    submit = "sbatch"                    # sbatch | submitit
"""
from __future__ import annotations

import json
import math
import os
import re
import shlex
import sys
import tomllib
from dataclasses import asdict, dataclass, field, fields

__all__ = ["JobSpec", "Lora", "Accelerate", "Slurm", "SpecError", "LOSSES", "RUNS", "PRECISIONS", "load_spec",
           "spec_from_dict", "write_spec", "trl_config", "accelerate_command", "slurm_script", "worker_command",
           "SPEC_FILE", "METRICS_FILE", "read_metrics", "base_kind"]

BUNDLED = "bundled"  #: base_model value naming the app's own small model (SmolLM2-135M-Instruct GGUF)
SPEC_FILE = "job.toml"
METRICS_FILE = "metrics.jsonl"
HELDOUT_FILE = "heldout.jsonl"  # the pairs kept out of training, for the evaluation
EVAL_DIR = "eval"  # the evaluation's status folder
EVAL_FILE = "eval.json"
SOURCES_FILE = "sources.json"  # whose data the job trains on (participants and sessions of its pairs)
LOSSES = {
    "sigmoid": "the DPO loss",
    "robust": "robust DPO (rDPO): the DPO loss corrected for a share of flipped labels (label_smoothing)",
    "robust+sft": "rDPO plus the NLL of the chosen answers (TRL 1.x: loss_type ['robust', 'sft'] with "
                  "loss_weights [1, sft_weight])",
}
RUNS = {"local": "a child process on this machine", "accelerate": "accelerate launch (several processes or GPUs)",
        "slurm": "a Slurm batch job (sbatch, or submitit)"}
PRECISIONS = ("fp32", "bf16", "fp16")


class SpecError(ValueError):
    """A spec that cannot run: the message names the key and its value."""


@dataclass
class Lora:
    enabled: bool = True
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class Accelerate:
    num_processes: int = 1
    extra_args: list[str] = field(default_factory=list)


@dataclass
class Slurm:
    partition: str = ""
    gpus: int = 1
    cpus: int = 8
    mem: str = "64G"
    time: str = "04:00:00"
    account: str = ""
    python: str = "python"
    setup: str = ""  # shell lines run before the worker (module load ..., source venv)
    submit: str = "sbatch"  # sbatch | submitit


@dataclass
class JobSpec:
    base_model: str
    pairs: str
    output_dir: str
    name: str = ""
    loss: str = "robust+sft"
    beta: float = 0.1
    label_smoothing: float = 0.1
    sft_weight: float = 0.2
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 2
    grad_accum: int = 4
    learning_rate: float = 5e-5
    precision: str = "fp32"
    max_length: int = 1024
    seed: int = 0
    save_steps: int = 50
    run: str = "local"
    eval_prompts: int = 20  # pairs held out of training; their prompts are the evaluation's
    eval_max_new_tokens: int = 192
    reward_model: str = ""  # a text reward model folder that scores the evaluation's answers
    lora: Lora = field(default_factory=Lora)
    accelerate: Accelerate = field(default_factory=Accelerate)
    slurm: Slurm = field(default_factory=Slurm)

    def __post_init__(self):
        if not self.name:
            self.name = os.path.basename(os.path.normpath(self.output_dir)) or "dpo"

    def as_dict(self) -> dict:
        return asdict(self)

    def check(self, *, local_files: bool = True) -> None:
        """Raise :class:`SpecError` naming the first key whose value cannot run.
        ``local_files``: the base model (unless a hub name) and the pairs must exist here."""
        def bad(key, value, why):
            raise SpecError(f"{key} = {value!r}: {why}")

        if not str(self.base_model).strip():
            bad("base_model", self.base_model, "give a model folder, a .gguf file or a hub name")
        kind = base_kind(self.base_model)
        if local_files and kind != "hub":
            if not os.path.exists(self.base_model):
                bad("base_model", self.base_model, "no such model folder or file")
            if kind == "folder" and not os.path.isfile(os.path.join(self.base_model, "config.json")):
                bad("base_model", self.base_model, "the folder has no config.json: not a model folder")
        if kind == "hub" and self.run == "local" and local_files:
            bad("base_model", self.base_model, "no such model folder or .gguf file here (a hub name needs a "
                "cluster run or a model already downloaded: give its folder)")
        if local_files:
            if not os.path.isfile(self.pairs):
                bad("pairs", self.pairs, "no such pairs file (write one with ifllm-lab dpo export)")
            if os.path.getsize(self.pairs) == 0:
                bad("pairs", self.pairs, "the pairs file is empty")
        if not str(self.output_dir).strip():
            bad("output_dir", self.output_dir, "give the job's folder")
        if self.loss not in LOSSES:
            bad("loss", self.loss, f"use one of {', '.join(LOSSES)}")
        for key in ("beta", "learning_rate"):
            v = getattr(self, key)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                bad(key, v, "must be a number above 0")
        if not 0 <= self.label_smoothing < 0.5:
            bad("label_smoothing", self.label_smoothing, "must be at least 0 and below 0.5")
        if self.loss == "robust+sft" and not self.sft_weight > 0:
            bad("sft_weight", self.sft_weight, "must be above 0 for robust+sft")
        if not self.epochs > 0 and self.max_steps <= 0:
            bad("epochs", self.epochs, "must be above 0 (or set max_steps)")
        if self.reward_model and local_files and not os.path.isfile(os.path.join(self.reward_model, "model.json")):
            bad("reward_model", self.reward_model, "not a reward model folder (no model.json)")
        if not isinstance(self.eval_prompts, int) or self.eval_prompts < 0:
            bad("eval_prompts", self.eval_prompts, "must be a whole number of at least 0")
        for key in ("batch_size", "grad_accum", "max_length", "save_steps", "eval_max_new_tokens"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(key, v, "must be a whole number of at least 1")
        if not isinstance(self.max_steps, int) or self.max_steps == 0 or self.max_steps < -1:
            bad("max_steps", self.max_steps, "must be -1 (by epochs) or a whole number of at least 1")
        if self.precision not in PRECISIONS:
            bad("precision", self.precision, f"use one of {', '.join(PRECISIONS)}")
        if self.run not in RUNS:
            bad("run", self.run, f"use one of {', '.join(RUNS)}")
        if self.lora.enabled:
            if self.lora.r < 1:
                bad("lora.r", self.lora.r, "must be at least 1")
            if self.lora.alpha <= 0:
                bad("lora.alpha", self.lora.alpha, "must be above 0")
            if not 0 <= self.lora.dropout < 1:
                bad("lora.dropout", self.lora.dropout, "must be at least 0 and below 1")
            if not self.lora.target_modules:
                bad("lora.target_modules", self.lora.target_modules, "name the layers to adapt")
        if self.accelerate.num_processes < 1:
            bad("accelerate.num_processes", self.accelerate.num_processes, "must be at least 1")
        if self.slurm.submit not in ("sbatch", "submitit"):
            bad("slurm.submit", self.slurm.submit, "use sbatch or submitit")


_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def base_kind(base: str) -> str:
    """``gguf`` (a .gguf file), ``folder`` (a model folder) or ``hub`` (an ``owner/name``
    that is not a path here: a name to download, on a cluster)."""
    base = str(base)
    if base.lower().endswith(".gguf"):
        return "gguf"
    if os.path.exists(base) or os.path.isabs(base) or not _HUB_NAME.match(base):
        return "folder"
    return "hub"


def _section(cls, values, key):
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise SpecError(f"{key} = {values!r}: must be a table")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise SpecError(f"{key}.{unknown[0]} = {values[unknown[0]]!r}: not a setting of [{key}] "
                        f"(known: {', '.join(sorted(names))})")
    return cls(**values)


def spec_from_dict(d: dict, base_dir: str = ".") -> JobSpec:
    """A spec from a TOML table; relative paths are taken from ``base_dir`` (the spec
    file's folder). Unknown keys and wrong types are errors naming them."""
    top = {f.name: f for f in fields(JobSpec)}
    unknown = sorted(set(d) - set(top))
    if unknown:
        raise SpecError(f"{unknown[0]} = {d[unknown[0]]!r}: not a setting of a DPO job "
                        f"(known: {', '.join(sorted(top))})")
    for key in ("base_model", "pairs", "output_dir"):
        if key not in d:
            raise SpecError(f"{key} is missing: every DPO job needs base_model, pairs and output_dir")
    kw = dict(d)
    kw["lora"] = _section(Lora, d.get("lora"), "lora")
    kw["accelerate"] = _section(Accelerate, d.get("accelerate"), "accelerate")
    kw["slurm"] = _section(Slurm, d.get("slurm"), "slurm")
    types = {"beta": float, "label_smoothing": float, "sft_weight": float, "epochs": float, "learning_rate": float,
             "max_steps": int, "batch_size": int, "grad_accum": int, "max_length": int, "seed": int,
             "save_steps": int, "eval_prompts": int, "eval_max_new_tokens": int, "reward_model": str,
             "base_model": str, "pairs": str, "output_dir": str, "name": str, "loss": str,
             "precision": str, "run": str}
    for key, t in types.items():
        if key in kw:
            v = kw[key]
            ok = isinstance(v, t) and not isinstance(v, bool) or (t is float and isinstance(v, int)
                                                                   and not isinstance(v, bool))
            if not ok:
                raise SpecError(f"{key} = {v!r}: must be {'a number' if t in (int, float) else 'text'}")
            if t is float:
                kw[key] = float(v)
    for key in ("pairs", "output_dir") + (("reward_model",) if kw.get("reward_model") else ()):
        kw[key] = os.path.normpath(os.path.join(base_dir, os.path.expanduser(kw[key])))
    if kw["base_model"] == BUNDLED:
        from ..llm.llama import default_model_path

        kw["base_model"] = str(default_model_path())
    here = os.path.normpath(os.path.join(base_dir, os.path.expanduser(kw["base_model"])))
    if os.path.exists(here) or base_kind(kw["base_model"]) != "hub":
        kw["base_model"] = here
    return JobSpec(**kw)


def load_spec(path: str) -> JobSpec:
    """The spec in the TOML file ``path`` (checked for its keys and types; run
    :meth:`JobSpec.check` for its values)."""
    try:
        with open(path, "rb") as fh:
            d = tomllib.load(fh)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such job spec file") from None
    except IsADirectoryError:
        raise SpecError(f"{path} is a folder, not a job spec (TOML) file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise SpecError(f"{path} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path} is not a text (TOML) file") from None
    try:
        return spec_from_dict(d, os.path.dirname(os.path.abspath(path)))
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v), ensure_ascii=False)  # a TOML basic string is a JSON string


def spec_toml(spec: JobSpec) -> str:
    d = spec.as_dict()
    lines = [f"{k} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def write_spec(spec: JobSpec, path: str) -> str:
    from ..paths import write_text_atomic

    write_text_atomic(path, spec_toml(spec))
    return path


def read_metrics(job_dir: str) -> list[dict]:
    """The logged training steps of a job (a line being written is skipped)."""
    out = []
    try:
        with open(os.path.join(job_dir, METRICS_FILE), encoding="utf-8") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return out


# -- what the trainer is given ----------------------------------------------------------------
def trl_config(spec: JobSpec) -> dict:
    """The keyword arguments of TRL's ``DPOConfig`` for ``spec`` (plain values: the worker
    adds the output folder and the logging settings)."""
    loss = {"sigmoid": ["sigmoid"], "robust": ["robust"], "robust+sft": ["robust", "sft"]}[spec.loss]
    kw = {
        "beta": spec.beta, "loss_type": loss, "num_train_epochs": spec.epochs, "max_steps": spec.max_steps,
        "per_device_train_batch_size": spec.batch_size, "gradient_accumulation_steps": spec.grad_accum,
        "learning_rate": spec.learning_rate, "max_length": spec.max_length, "seed": spec.seed,
        "save_steps": spec.save_steps, "bf16": spec.precision == "bf16", "fp16": spec.precision == "fp16",
    }
    if spec.loss != "sigmoid":
        kw["label_smoothing"] = spec.label_smoothing
    if spec.loss == "robust+sft":
        kw["loss_weights"] = [1.0, spec.sft_weight]
    return kw


def lora_config(spec: JobSpec) -> dict | None:
    """The keyword arguments of peft's ``LoraConfig``, or None for the whole model."""
    if not spec.lora.enabled:
        return None
    return {"r": spec.lora.r, "lora_alpha": spec.lora.alpha, "lora_dropout": spec.lora.dropout,
            "target_modules": list(spec.lora.target_modules), "task_type": "CAUSAL_LM"}


def worker_command(job_dir: str, python: str | None = None) -> list[str]:
    """The command that runs a job folder's spec in the foreground (what every launcher runs)."""
    return [python or sys.executable, "-m", "ifllm_lab.dpo.worker", os.path.abspath(job_dir)]


def accelerate_command(spec: JobSpec, job_dir: str | None = None) -> list[str]:
    """``accelerate launch`` for the spec: the same worker reading the same ``job.toml``, so
    every setting is carried over as it is; the precision and process count also go to
    accelerate."""
    job_dir = os.path.abspath(job_dir or spec.output_dir)
    mixed = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[spec.precision]
    return ["accelerate", "launch", "--num_processes", str(spec.accelerate.num_processes), "--mixed_precision",
            mixed, *spec.accelerate.extra_args, "-m", "ifllm_lab.dpo.worker", job_dir]


def slurm_script(spec: JobSpec, job_dir: str | None = None) -> str:
    """A Slurm batch script that runs the spec (through ``accelerate launch`` when it asks
    for more than one process) and writes its log into the job folder."""
    job_dir = os.path.abspath(job_dir or spec.output_dir)
    s = spec.slurm
    lines = ["#!/bin/bash", f"#SBATCH --job-name={_slurm_word(spec.name)}",
             f"#SBATCH --output={job_dir}/slurm-%j.out", f"#SBATCH --cpus-per-task={s.cpus}",
             f"#SBATCH --mem={s.mem}", f"#SBATCH --time={s.time}"]
    if s.gpus:
        lines.append(f"#SBATCH --gres=gpu:{s.gpus}")
    if s.partition:
        lines.append(f"#SBATCH --partition={s.partition}")
    if s.account:
        lines.append(f"#SBATCH --account={s.account}")
    lines += ["", "set -euo pipefail", f"cd {shlex.quote(job_dir)}"]
    if s.setup.strip():
        lines += ["", s.setup.strip()]
    lines.append("")
    if spec.accelerate.num_processes > 1 or spec.run == "accelerate":
        cmd = [s.python, "-m", "accelerate.commands.launch", *accelerate_command(spec, job_dir)[2:]]
    else:
        cmd = worker_command(job_dir, s.python)
    lines.append(" ".join(shlex.quote(c) for c in cmd))
    return "\n".join(lines) + "\n"


def _slurm_word(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "dpo"


# -- running jobs ---------------------------------------------------------------------------
@dataclass
class JobInfo:
    """One job folder as the history lists it."""

    folder: str
    spec: JobSpec | None
    status: object  # ifllm_lab.jobs.JobStatus or None (never started)
    last: dict  # the last logged training step ({} before the first)
    problem: str = ""  # why the folder cannot be read as a job

    @property
    def state(self) -> str:
        if self.problem:
            return "unreadable"
        return self.status.state if self.status is not None else "new"


def job_info(folder: str) -> JobInfo:
    from ..jobs import JobStatusError, read_status

    folder = os.path.abspath(folder)
    try:
        spec = load_spec(os.path.join(folder, SPEC_FILE))
    except SpecError as exc:
        return JobInfo(folder, None, None, {}, str(exc))
    try:
        st = read_status(folder)
    except JobStatusError as exc:
        return JobInfo(folder, spec, None, {}, str(exc))
    m = read_metrics(folder)
    return JobInfo(folder, spec, st, m[-1] if m else {})


def list_jobs(root: str) -> list[JobInfo]:
    """Every job folder (one with a ``job.toml``) in ``root``, newest first."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    dirs = [os.path.join(root, n) for n in names if os.path.isfile(os.path.join(root, n, SPEC_FILE))]
    dirs.sort(key=lambda d: os.path.getmtime(os.path.join(d, SPEC_FILE)), reverse=True)
    return [job_info(d) for d in dirs]


def pairs_sources(pairs_path: str) -> dict:
    """What a pairs file was made from: ``{"pairs", "pairs_sha256", "participants",
    "sessions"}`` (the pseudonyms and session ids of its rows)."""
    import hashlib

    from ..session.provenance import sources_of_rows

    h = hashlib.sha256()
    rows = []
    with open(pairs_path, "rb") as fh:
        for line in fh:
            h.update(line)
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return {"pairs": os.path.abspath(pairs_path), "pairs_sha256": h.hexdigest(), **sources_of_rows(rows)}


def write_sources(pairs_path: str, job_dir: str) -> None:
    """``SOURCES_FILE`` in the job folder: whose data the job trains on (a participant's
    erasure finds the jobs to rebuild by it). Written at every launch and resume."""
    from ..paths import write_text_atomic

    try:
        src = pairs_sources(pairs_path)
    except OSError:
        return  # a cluster run whose pairs are not on this machine: the job records nothing
    write_text_atomic(os.path.join(job_dir, SOURCES_FILE), json.dumps(src, indent=1) + "\n")


def launch(spec: JobSpec, *, resume: bool = False) -> str:
    """Start the job of ``spec`` the way ``spec.run`` says; returns its folder. ``resume``:
    go on from the last checkpoint of the job already in the folder. A folder holding a
    running job, or (without ``resume``) any other job or files but the spec's own pairs
    file (written there first), is refused."""
    from ..jobs import read_status

    spec.check(local_files=spec.run == "local")
    job_dir = os.path.abspath(spec.output_dir)
    st = read_status(job_dir) if os.path.isdir(job_dir) else None
    if st is not None and not st.finished and st.process_alive is not False:
        raise SpecError(f"output_dir = {spec.output_dir!r}: its job is still running (pid {st.pid})")
    if resume:
        if st is None:
            raise SpecError(f"output_dir = {spec.output_dir!r}: no job to resume there")
    elif os.path.isdir(job_dir) and [n for n in os.listdir(job_dir)
                                     if os.path.join(job_dir, n) != os.path.abspath(spec.pairs)]:
        what = f"job {st.name!r} ({st.state})" if st is not None else "other files"
        raise SpecError(f"output_dir = {spec.output_dir!r} already holds {what}: resume it or choose a new folder")
    try:
        os.makedirs(job_dir, exist_ok=True)
    except OSError as exc:
        raise SpecError(f"output_dir = {spec.output_dir!r}: cannot be made ({exc.strerror or exc})") from None
    write_spec(spec, os.path.join(job_dir, SPEC_FILE))
    write_sources(spec.pairs, job_dir)
    if spec.run == "local":
        from ..jobs import start_child
        from .worker import run_job

        start_child(run_job, job_dir, resume=resume, status_dir=job_dir, name=spec.name)
    elif spec.run == "accelerate":
        _detached(accelerate_command(spec, job_dir) + (["--resume"] if resume else []), job_dir)
    else:
        submit_slurm(spec, job_dir, resume=resume)
    return job_dir


def _detached(cmd: list[str], job_dir: str) -> None:
    import subprocess

    from ..jobs.child import OUTPUT_FILE, _child_env

    with open(os.path.join(job_dir, OUTPUT_FILE), "ab") as out:
        try:
            subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=_child_env(),
                             start_new_session=True, cwd=job_dir)
        except FileNotFoundError:
            raise SpecError(f"run = 'accelerate': {cmd[0]} is not installed here (pip install "
                            "'ifllm-lab[dpo]')") from None


def submit_slurm(spec: JobSpec, job_dir: str, *, resume: bool = False) -> str:
    """Write ``slurm.sh`` into the job folder and submit it (sbatch, or submitit); returns
    the cluster's job id."""
    import subprocess

    from ..paths import write_text_atomic

    script = slurm_script(spec, job_dir)
    if resume:
        script = script.rstrip("\n") + " --resume\n"
    path = os.path.join(job_dir, "slurm.sh")
    write_text_atomic(path, script)
    os.chmod(path, 0o755)
    if spec.slurm.submit == "submitit":
        from .worker import DpoUnavailable, submit_with_submitit

        try:
            return submit_with_submitit(spec, job_dir, resume)
        except DpoUnavailable as exc:
            raise SpecError(f"slurm.submit = 'submitit': {exc}") from None
    try:
        p = subprocess.run(["sbatch", path], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise SpecError("run = 'slurm': sbatch is not on this machine; the batch script is "
                        f"{path} (submit it on the cluster with: sbatch {path})") from None
    if p.returncode != 0:
        raise SpecError(f"run = 'slurm': sbatch refused {path}: {(p.stderr or p.stdout).strip()[-300:]}")
    return p.stdout.strip().split()[-1] if p.stdout.strip() else ""


def launch_eval(job_dir: str, *, reward_model: str | None = None, prompts: int | None = None,
                max_new_tokens: int | None = None) -> str:
    """Start the evaluation of a finished job in a child process (status folder
    ``JOB_DIR/eval``): answers of the base and the tuned model to the held-out prompts
    (greedy), scored by the reward model, written to ``JOB_DIR/eval.json``. Returns the
    status folder."""
    from ..jobs import JobError, start_child
    from .worker import run_eval

    job_dir = os.path.abspath(job_dir)
    if not os.path.isdir(os.path.join(job_dir, "model")):
        raise SpecError(f"{job_dir}: the job has no tuned model yet (it must finish first)")
    if reward_model and not os.path.isfile(os.path.join(reward_model, "model.json")):
        raise SpecError(f"reward_model = {reward_model!r}: not a reward model folder (no model.json)")
    try:
        start_child(run_eval, job_dir, reward_model=reward_model, prompts=prompts, max_new_tokens=max_new_tokens,
                    status_dir=os.path.join(job_dir, EVAL_DIR), name="evaluation")
    except JobError as exc:
        raise SpecError(str(exc)) from None
    return os.path.join(job_dir, EVAL_DIR)


EXPORT_DIR = "export"  # the GGUF export's status folder


def launch_export(job_dir: str, out: str, *, converter: str | None = None, outtype: str = "q8_0") -> str:
    """Start writing the finished job's tuned model as one GGUF file ``out`` in a child
    process (status folder ``JOB_DIR/export``); returns the status folder."""
    from ..jobs import JobError, start_child
    from .converter import ConverterError, find_converter
    from .worker import export_gguf

    job_dir = os.path.abspath(job_dir)
    if not os.path.isdir(os.path.join(job_dir, "model")):
        raise SpecError(f"{job_dir}: the job has no tuned model yet (it must finish first)")
    if outtype not in ("f32", "f16", "bf16", "q8_0"):
        raise SpecError(f"outtype = {outtype!r}: use f32, f16, bf16 or q8_0")
    try:
        conv = find_converter(converter)
    except ConverterError as exc:
        raise SpecError(str(exc)) from None
    try:
        start_child(export_gguf, job_dir, os.path.abspath(out), conv, outtype,
                    status_dir=os.path.join(job_dir, EXPORT_DIR), name="GGUF export")
    except JobError as exc:
        raise SpecError(str(exc)) from None
    return os.path.join(job_dir, EXPORT_DIR)


def read_eval(job_dir: str) -> dict | None:
    """The job's ``eval.json`` (None before an evaluation finished)."""
    try:
        with open(os.path.join(job_dir, EVAL_FILE), encoding="utf-8") as fh:
            return json.load(fh)
    except (FileNotFoundError, ValueError):
        return None


def cancel(job_dir: str, *, grace_s: float = 60.0, poll_s: float = 0.5) -> str:
    """Ask the job to stop (it saves a checkpoint and stops within a step), wait up to
    ``grace_s``, then end its process tree; the job is marked cancelled either way. Returns
    its final state."""
    import signal
    import time

    from ..jobs import CANCELLED, read_status, request_cancel
    from ..jobs.status import StatusFile, utc_now

    request_cancel(job_dir)
    deadline = time.monotonic() + grace_s
    st = read_status(job_dir)
    while st is not None and not st.finished and time.monotonic() < deadline:
        if st.process_alive is None:  # on another machine: it reads the cancel file there
            return st.state
        time.sleep(poll_s)
        st = read_status(job_dir)
    if st is None:
        return "new"
    if st.finished and not (st.process_alive is False and st.error and "never finished" in st.error):
        return st.state
    if st.pid and st.process_alive is not False:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(st.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(2.0)
    sf = StatusFile(job_dir, st)
    sf.update(state=CANCELLED, ended=utc_now(), error=f"cancelled; the job did not stop within {grace_s:g} s "
                                                      "and its processes were ended", force=True)
    sf.close()
    return CANCELLED
