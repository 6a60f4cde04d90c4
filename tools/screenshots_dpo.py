"""Screenshots of the workbench's DPO jobs tab for the README (no display needed).

Writes synthetic recorded pairwise sessions and trains two small reward models on them
(one on the implicit signals that labels pairs, one on the text that judges the
evaluation), then makes four DPO job folders the way the worker leaves them, with 60
steps of realistic loss / margin / accuracy curves: one running (its status names this
process, so it reads as alive), one done with its evaluation (``eval.json``), one
cancelled and one failed with its reason. Opens the workbench, previews the pairs of the
sessions from the tab, and saves::

    docs/workbench-dpo-1024.png     the tab at 1024 x 640, the running job live
    docs/workbench-dpo-1920.png     the same at 1920 x 1080
    docs/workbench-dpo-compare.png  three jobs compared (1920 x 1080)

Run from the repository root: ``python tools/screenshots_dpo.py [--out docs]``
(``--extra-views DIR`` also saves the evaluation, log and run pages there for review).
"""
from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.workbench_shots import finish, grab, open_workbench, parser, run  # noqa: E402

STUDY = "pilot-dpo"
STEPS = 60

ANSWERS = [
    ("How do I keep basil fresh after buying it?",
     "Keep the basil in a glass of water on the counter and cover it loosely with a plastic bag. Change the water "
     "every day or two.",
     "To keep basil fresh:\n\n- **Trim the stems** and stand them in a glass of water, like cut flowers.\n- Keep it "
     "on the counter, out of direct sun: the fridge turns the leaves black.\n- Cover loosely with a bag and change "
     "the water every two days.\n\nIt keeps for about a week this way.", 0.78),
    ("What is the difference between weather and climate?",
     "Weather is what happens in the atmosphere over hours or days, like rain or wind. Climate is the average of "
     "the weather in a place over many years.",
     "**Weather** is the state of the atmosphere at one time and place: today's rain, tomorrow's wind.\n\n"
     "**Climate** is the pattern of weather over decades, e.g. the average summer temperature of a region.\n\n"
     "In short: weather is what you get, climate is what you expect.", 0.71),
    ("Explain in two sentences why the sky is blue.",
     "Sunlight is scattered by the molecules in the air, and blue light is scattered much more than red light "
     "because its wavelength is shorter. So blue light reaches our eyes from every direction of the sky.",
     "Air molecules scatter short wavelengths of sunlight far more than long ones (Rayleigh scattering). Blue light "
     "is therefore spread across the whole sky and reaches us from every direction, so the sky looks blue.", 0.46),
    ("Give me three tips for a first job interview.",
     "Prepare by reading about the company, arrive on time, and ask a question at the end of the interview.",
     "1. **Research the company**: know what it does and why you want to work there.\n2. **Practise your "
     "answers** to common questions aloud, with examples from your experience.\n3. **Ask a question at the end**: "
     "it shows interest, e.g. what a typical week in the role looks like.", 0.83),
]


# -- realistic training logs ----------------------------------------------------------------------------
def training_rows(steps: int, *, seed: int, beta: float, lr_scale: float = 1.0, sft_weight: float = 0.2,
                  total: int = STEPS, batch: int = 8, s_per_step: float = 4.3) -> list[dict]:
    """What the worker logs per step for a LoRA rDPO + NLL run on a small model: the loss
    falls from about ln 2 + the NLL term, the margin grows, the accuracy (over the step's
    ``batch`` pairs) rises from chance."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    t = 0.0
    for s in range(1, steps + 1):
        x = s / total
        learn = 1.0 - math.exp(-3.2 * x * lr_scale)
        margin = (0.2 + 1.5 * learn) * (beta / 0.1) ** 0.35 + rng.normal(0, 0.28)
        acc_p = min(0.5 + 0.33 * learn + 0.03 * (beta / 0.1 - 1), 0.97)
        acc = float(rng.binomial(batch, acc_p)) / batch
        dpo = math.log1p(math.exp(-margin)) * 0.92 + 0.02
        nll = 1.85 - 0.35 * learn + rng.normal(0, 0.07)
        chosen = -0.05 + 0.35 * learn + rng.normal(0, 0.12)
        t += s_per_step + rng.normal(0, 0.25)
        rows.append({"step": s, "epoch": round(s / total * 2, 4), "loss": round(dpo + sft_weight * nll, 5),
                     "rewards/chosen": round(chosen, 5), "rewards/rejected": round(chosen - margin, 5),
                     "rewards/margins": round(margin, 5), "rewards/accuracies": acc,
                     "logps/chosen": round(-180 + 20 * learn + rng.normal(0, 6), 3),
                     "logps/rejected": round(-182 - 25 * learn + rng.normal(0, 6), 3),
                     "grad_norm": round(abs(rng.normal(2.4 - 1.2 * learn, 0.4)), 4),
                     "learning_rate": 5e-5 * lr_scale * (1 - (s - 1) / total),
                     "tokens_per_s": round(880 + rng.normal(0, 40), 2), "elapsed_s": round(t, 3),
                     "max_steps": total, "rss_peak_mb": 1710.4})
    return rows


def make_job(root: Path, name: str, *, state: str, rows: list[dict], started_min_ago: float, pairs: list,
             error: str | None = None, message: str = "", alive: bool = False, eval_data: dict | None = None,
             lora: bool = True, **spec_kw) -> Path:
    from ifllm_lab.dpo.job import JobSpec, write_spec
    from ifllm_lab.dpo.pairs import write_jsonl
    from ifllm_lab.jobs.status import JobStatus, StatusFile, append_log, process_start_token, utc_now

    d = root / name
    d.mkdir(parents=True)
    write_jsonl(pairs, str(d / "pairs.jsonl"))
    spec = JobSpec(pairs=str(d / "pairs.jsonl"), output_dir=str(d), name=name, **spec_kw)
    spec.lora.enabled = lora
    write_spec(spec, str(d / "job.toml"))
    with open(d / "metrics.jsonl", "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    started = utc_now() - timedelta(minutes=started_min_ago)
    append_log(str(d), f"started {name}")
    append_log(str(d), f"converting {os.path.basename(spec.base_model)} to a model folder (once)")
    append_log(str(d), f"{len(pairs) - spec.eval_prompts} pairs from {spec.pairs} ({spec.eval_prompts} held out for "
                       f"the evaluation); loss {spec.loss}, beta {spec.beta}; "
                       + (f"LoRA r={spec.lora.r}" if lora else "the whole model"))
    for r in rows:
        if r["step"] % 5 == 0 or r is rows[-1]:
            append_log(str(d), f"step {r['step']} of {r['max_steps']}: loss {r['loss']:.4f}, margin "
                               f"{r['rewards/margins']:.4f}, accuracy {r['rewards/accuracies']:.3f}, grad norm "
                               f"{r['grad_norm']:.3f}")
    if error:
        append_log(str(d), f"{state}: {error}")
    last = rows[-1] if rows else {}
    fraction = last.get("step", 0) / max(last.get("max_steps", 1), 1)
    pid = os.getpid() if alive else 999_999
    st = JobStatus(name=name, state=state, fraction=1.0 if state == "done" else fraction,
                   message=message or (f"step {last['step']} of {last['max_steps']}" if last else ""),
                   started=started, ended=None if alive else started + timedelta(seconds=last.get("elapsed_s", 30)),
                   pid=pid, host=socket.gethostname(), pid_start=process_start_token(pid) if alive else None,
                   error=error)
    StatusFile(str(d), st).close()
    if state == "done":
        (d / "model").mkdir()
        (d / "model" / "adapter_config.json").write_text("{}")
    if eval_data is not None:
        (d / "eval.json").write_text(json.dumps(eval_data, indent=1))
    return d


def eval_json(judge: str) -> dict:
    return {"prompts": 20, "reward_model": judge, "max_new_tokens": 192, "win_rate": 0.65, "win_rate_ci": [0.45, 0.85],
            "mean_p": 0.612, "longer_share": 0.7,
            "text": {"base": {"words": 71.4, "paragraphs": 1.6, "bullets": 0.4, "headings": 0.0, "bold": 0.1,
                              "markup_share": 0.004, "flesch": 61.8},
                     "tuned": {"words": 104.9, "paragraphs": 3.2, "bullets": 2.1, "headings": 0.1, "bold": 1.3,
                               "markup_share": 0.036, "flesch": 57.2}},
            "answers": [{"prompt": p, "base": b, "tuned": t, "p_tuned": pt} for p, b, t, pt in ANSWERS],
            "seconds": 212.6}


# -- the window ------------------------------------------------------------------------------------------
def train_reward_models(data: Path, cache: Path) -> tuple[str, str]:
    """A text model (the judge) and an implicit one (labels), as the Reward models tab saves them."""
    from ifllm_lab.jobs import Job
    from ifllm_lab.reward.train import TrainSettings, train_job

    out = []
    for when, sets, keep in (("20260301-101500", ("text",), "text"), ("20260301-102000", ("implicit",), "implicit")):
        folder = data / ".models" / f"{when}-pairwise-logistic-{keep}"
        settings = TrainSettings(kinds=("logistic",), sets=sets, keep_set=keep, folds=3, quality=None,
                                 importance=False, paper_protocol=False, n_boot=200)
        job = Job(train_job, [str(data / STUDY)], str(folder), settings, cache_dir=str(cache), workers=2,
                  name="reward")
        if job.run() != "done":
            raise SystemExit(f"the {keep} reward model could not be trained: {job.error}")
        out.append(str(folder))
    return out[0], out[1]


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--extra-views", metavar="DIR", help="also save the evaluation, log, run and missing-extra views")
    ap.add_argument("--participants", type=int, default=8)
    return run(shoot, ap.parse_args(argv), prefix="ifllm-dpo-shots-")


def shoot(args, out: Path, tmp: Path) -> int:
    from ifllm_lab.dpo.pairs import make_pairs
    from ifllm_lab.llm.llama import default_model_path
    from ifllm_lab.synthetic.session import make_study_session

    data = tmp / "lab-data"
    (data / STUDY).mkdir(parents=True)
    for i in range(args.participants):
        who = f"P{i + 1:02d}"
        for k, signal in enumerate((0.8, 0.3)):
            make_study_session(str(data / STUDY / f"{who}-{k + 1}.h5"), who, turns=8, signal=signal,
                               seed=300 + 10 * i + k)
    judge, labeller = train_reward_models(data, tmp / "cache")
    pairs = make_pairs([str(data / STUDY)], cache_dir=str(tmp / "cache"), workers=2).pairs
    base = str(default_model_path())
    common = dict(base_model=base, max_steps=STEPS, eval_prompts=12, reward_model=judge)
    jobs = data / ".dpo-jobs"
    done = make_job(jobs, "smollm2-rdpo-sft", state="done", rows=training_rows(STEPS, seed=1, beta=0.1),
                    started_min_ago=95, pairs=pairs, message="step 60 of 60", eval_data=eval_json(judge), **common)
    running = make_job(jobs, "smollm2-rdpo-beta03", state="running", rows=training_rows(34, seed=2, beta=0.3),
                       started_min_ago=3, pairs=pairs, alive=True, beta=0.3, **common)
    cancelled = make_job(jobs, "smollm2-rdpo-lr2e-4", state="cancelled",
                         rows=training_rows(25, seed=3, beta=0.1, lr_scale=4.0), started_min_ago=60, pairs=pairs,
                         error=f"cancelled at step 25; the last checkpoint is in {jobs}/smollm2-rdpo-lr2e-4/"
                               "checkpoints (resume goes on from it)", learning_rate=2e-4, **common)
    make_job(jobs, "smollm2-full-sigmoid", state="failed", rows=training_rows(12, seed=4, beta=0.1, sft_weight=0.0),
             started_min_ago=130, pairs=pairs, error="out of memory at step 12: lower batch_size or max_length (now 8 "
             "and 2048), or use LoRA", loss="sigmoid", batch_size=8, max_length=2048, lora=False, **common)
    os.utime(jobs / "smollm2-full-sigmoid" / "job.toml", (time.time() - 7800, time.time() - 7800))
    os.utime(done / "job.toml", (time.time() - 5700, time.time() - 5700))
    os.utime(cancelled / "job.toml", (time.time() - 3600, time.time() - 3600))

    app, wb = open_workbench(data, tmp)
    panel = wb.dpo
    wb.tabs.setCurrentWidget(panel)
    panel.labels_box.setCurrentIndex(panel.labels_box.findData("agree"))
    panel.label_model.setCurrentIndex(panel.label_model.findData(labeller))
    panel.min_conf.setValue(0.6)
    finish(app, panel.preview(), "preview", panel.preview_label.text, 300)
    panel.name_edit.setText("smollm2-rdpo-fill")
    panel.select_jobs([str(running)])
    grab(app, wb, (1024, 640), out / "workbench-dpo-1024.png")
    grab(app, wb, (1920, 1080), out / "workbench-dpo-1920.png")
    panel.select_jobs([str(done), str(running), str(cancelled)])
    grab(app, wb, (1920, 1080), out / "workbench-dpo-compare.png")

    if args.extra_views:
        extra = Path(args.extra_views)
        extra.mkdir(parents=True, exist_ok=True)
        panel.select_jobs([str(done)])
        panel.job_tabs.setCurrentIndex(2)
        grab(app, wb, (1024, 640), extra / "dpo-eval-1024.png")
        grab(app, wb, (1920, 1080), extra / "dpo-eval-1920.png")
        panel.select_jobs([str(jobs / "smollm2-full-sigmoid")])
        panel.job_tabs.setCurrentIndex(1)
        grab(app, wb, (1024, 640), extra / "dpo-log-1024.png")
        panel.select_jobs([str(running)])
        panel.job_tabs.setCurrentIndex(3)
        panel.run_which.setCurrentIndex(panel.run_which.findData("slurm"))
        grab(app, wb, (1024, 640), extra / "dpo-run-1024.png")
        panel.set_missing(["torch", "trl", "peft"])
        panel.job_tabs.setCurrentIndex(0)
        grab(app, wb, (1024, 640), extra / "dpo-missing-extra-1024.png")
    wb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
