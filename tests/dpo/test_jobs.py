"""DPO jobs: the spec and its checks, the cluster scripts, and real TRL runs on a tiny
model in a child process (finished, cancelled and resumed, failed)."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from ifllm_lab.cli import main
from ifllm_lab.dpo.job import (
    SPEC_FILE, JobSpec, SpecError, accelerate_command, cancel, job_info, launch, list_jobs, load_spec, read_metrics,
    slurm_script, spec_from_dict, trl_config, write_spec,
)
from ifllm_lab.jobs import CANCELLED, DONE, FAILED, read_status


def _spec_file(tmp_path: Path, text: str) -> str:
    (tmp_path / "pairs.jsonl").write_text('{"prompt": [], "chosen": [], "rejected": []}\n')
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "config.json").write_text("{}")
    p = tmp_path / "job.toml"
    p.write_text('base_model = "model"\npairs = "pairs.jsonl"\noutput_dir = "jobs/a"\n' + text)
    return str(p)


# -- the spec -----------------------------------------------------------------------------------
@pytest.mark.parametrize("line, key, value", [
    ("beta = 0", "beta", "0.0"),
    ("beta = -0.5", "beta", "-0.5"),
    ("learning_rate = 0", "learning_rate", "0.0"),
    ('loss = "ipo"', "loss", "'ipo'"),
    ("label_smoothing = 0.6", "label_smoothing", "0.6"),
    ("batch_size = 0", "batch_size", "0"),
    ("max_steps = 0", "max_steps", "0"),
    ('precision = "fp8"', "precision", "'fp8'"),
    ('run = "cloud"', "run", "'cloud'"),
    ("[lora]\nr = 0", "lora.r", "0"),
    ("[lora]\nrank = 8", "lora.rank", "8"),
    ("epochs_total = 2", "epochs_total", "2"),
    ('beta = "high"', "beta", "'high'"),
])
def test_a_bad_setting_is_named_with_its_value(tmp_path, line, key, value):
    path = _spec_file(tmp_path, line)
    with pytest.raises(SpecError) as err:
        load_spec(path).check()
    msg = str(err.value)  # unknown keys and types are found reading the file, bad values by check()
    assert msg.startswith((f"{key} = {value}", f"{path}: {key} = {value}")), msg


def test_missing_files_and_an_empty_pairs_file_are_named(tmp_path):
    spec = load_spec(_spec_file(tmp_path, ""))
    spec.check()  # the good one
    (tmp_path / "pairs.jsonl").write_text("")
    with pytest.raises(SpecError, match=r"^pairs = .*pairs.jsonl': the pairs file is empty"):
        spec.check()
    spec.pairs = str(tmp_path / "none.jsonl")
    with pytest.raises(SpecError, match="no such pairs file"):
        spec.check()
    spec.base_model = str(tmp_path / "no-model")
    with pytest.raises(SpecError, match=r"^base_model = .*no-model': no such model folder"):
        spec.check()
    (tmp_path / "empty-folder").mkdir()
    spec.base_model = str(tmp_path / "empty-folder")
    with pytest.raises(SpecError, match="no config.json"):
        spec.check()
    with pytest.raises(SpecError, match="^pairs is missing"):
        spec_from_dict({"base_model": "x", "output_dir": "y"})
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(str(Path(_spec_file(tmp_path, "beta = = 1"))))


def test_the_spec_round_trips_and_paths_are_taken_from_its_folder(tmp_path):
    spec = load_spec(_spec_file(tmp_path, 'loss = "robust"\nbeta = 0.2\n[slurm]\npartition = "gpu"\n'))
    assert spec.pairs == str(tmp_path / "pairs.jsonl") and spec.output_dir == str(tmp_path / "jobs" / "a")
    assert spec.base_model == str(tmp_path / "model") and spec.name == "a"
    write_spec(spec, str(tmp_path / "again.toml"))
    again = load_spec(str(tmp_path / "again.toml"))
    assert again == spec
    hub = spec_from_dict({"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "pairs": "p.jsonl",
                          "output_dir": "o", "run": "slurm"}, str(tmp_path))
    assert hub.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"  # a hub name stays a name
    with pytest.raises(SpecError, match="hub name needs a cluster run"):
        JobSpec(**{**hub.__dict__, "run": "local"}).check(local_files=True)


def test_the_losses_go_to_trl_as_its_1x_api_wants():
    base = dict(base_model="m", pairs="p", output_dir="o")
    assert trl_config(JobSpec(**base, loss="sigmoid"))["loss_type"] == ["sigmoid"]
    assert "label_smoothing" not in trl_config(JobSpec(**base, loss="sigmoid"))
    r = trl_config(JobSpec(**base, loss="robust", label_smoothing=0.2))
    assert r["loss_type"] == ["robust"] and r["label_smoothing"] == 0.2 and "loss_weights" not in r
    rs = trl_config(JobSpec(**base, loss="robust+sft", sft_weight=0.3, beta=0.05))
    assert rs["loss_type"] == ["robust", "sft"] and rs["loss_weights"] == [1.0, 0.3] and rs["beta"] == 0.05
    assert "rpo_alpha" not in rs


def test_the_slurm_script_and_the_accelerate_command_carry_the_settings(tmp_path):
    spec = load_spec(_spec_file(tmp_path, 'name = "rdpo smol"\nrun = "slurm"\n[accelerate]\nnum_processes = 4\n'
                                          '[slurm]\npartition = "gpu-a100"\ngpus = 4\ncpus = 16\nmem = "128G"\n'
                                          'time = "08:00:00"\naccount = "lab42"\npython = "/opt/venv/bin/python"\n'
                                          'setup = "module load cuda/12.4"\n'))
    script = slurm_script(spec)
    for line in ("#SBATCH --job-name=rdpo_smol", "#SBATCH --gres=gpu:4", "#SBATCH --partition=gpu-a100",
                 "#SBATCH --cpus-per-task=16", "#SBATCH --mem=128G", "#SBATCH --time=08:00:00",
                 "#SBATCH --account=lab42", f"#SBATCH --output={spec.output_dir}/slurm-%j.out",
                 "module load cuda/12.4"):
        assert line in script.splitlines(), line
    last = script.strip().splitlines()[-1]
    assert last.startswith("/opt/venv/bin/python -m accelerate.commands.launch --num_processes 4 "
                           "--mixed_precision no -m ifllm_lab.dpo.worker ") and last.endswith(spec.output_dir)
    path = tmp_path / "slurm.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    bf = JobSpec(**{**spec.__dict__, "precision": "bf16"})
    assert accelerate_command(bf)[:6] == ["accelerate", "launch", "--num_processes", "4", "--mixed_precision", "bf16"]
    # the worker reads the same job.toml, so every other setting is carried over as it is
    assert accelerate_command(bf)[-3:] == ["-m", "ifllm_lab.dpo.worker", spec.output_dir]
    # the CLI prints the same script
    assert main(["dpo", "script", str(tmp_path / "job.toml")]) == 0


# -- real runs ------------------------------------------------------------------------------------
def _write(tmp_path: Path, tiny_model: Path, pairs_file: Path, name: str, **kw) -> JobSpec:
    spec = JobSpec(base_model=str(tiny_model), pairs=str(pairs_file), output_dir=str(tmp_path / "jobs" / name),
                   batch_size=2, grad_accum=1, learning_rate=1e-3, max_length=256, save_steps=1, **kw)
    spec.lora.r, spec.lora.alpha, spec.lora.target_modules = 4, 8, ["q_proj", "v_proj"]
    return spec


def _wait(job_dir: str, timeout: float = 300) -> object:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = read_status(job_dir)
        if st is not None and st.finished:
            return st
        time.sleep(0.5)
    raise AssertionError(f"the job in {job_dir} did not end in {timeout} s: {read_status(job_dir)}")


@pytest.fixture(scope="module")
def lora_job(tmp_path_factory, tiny_model, pairs_file) -> tuple[JobSpec, str]:
    tmp_path = tmp_path_factory.mktemp("lora")
    spec = _write(tmp_path, tiny_model, pairs_file, "lora", max_steps=3, eval_prompts=2, eval_max_new_tokens=8)
    job = launch(spec)
    st = _wait(job)
    assert st.state == DONE, (st.error, (Path(job) / "output.txt").read_text()[-2000:])
    return spec, job


def test_a_lora_dpo_run_finishes_with_its_metrics_and_adapter(lora_job, tiny_model):
    spec, job = lora_job
    tmp_path = Path(job).parent.parent
    rows = read_metrics(job)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        for k in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                  "logps/chosen", "logps/rejected", "grad_norm", "learning_rate", "tokens_per_s"):
            assert isinstance(r[k], float), (k, r)
        assert r["tokens_per_s"] > 0 and r["max_steps"] == 3
    # the adapter loads onto the base and changes it only through LoRA weights
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model)), os.path.join(job, "model"))
    assert any("lora_A" in n for n, _ in tuned.named_parameters())
    info = json.loads((Path(job) / "model" / "ifllm_dpo.json").read_text())
    assert info["steps"] == 3 and info["lora"] is True
    [listed] = list_jobs(str(tmp_path / "jobs"))
    assert listed.state == DONE and listed.last["step"] == 3 and listed.spec.name == "lora"
    # a second launch into the same folder is refused: resume it or choose another
    with pytest.raises(SpecError, match="already holds job 'lora' \\(done\\)"):
        launch(spec)


@pytest.fixture(scope="module")
def text_models(piece, tmp_path_factory) -> tuple[str, str]:
    """(a pairwise reward model on the text features, one on the fused features) trained on
    the imported sessions."""
    from ifllm_lab.reward.data import load_dataset
    from ifllm_lab.reward.store import save_model
    from ifllm_lab.reward.train import TrainSettings, train

    data = load_dataset([str(piece[0])], cache_dir=str(tmp_path_factory.mktemp("rm-cache")), workers=1)
    out = []
    for keep in ("text", "fused"):
        rep = train(data, TrainSettings(kinds=("logistic",), sets=(keep,), keep_set=keep, folds=2,
                                        paper_protocol=False, importance=False, n_boot=100, quality=None))
        out.append(save_model(rep.model, str(tmp_path_factory.mktemp("rm") / keep)))
    return out[0], out[1]


def test_the_evaluation_scores_base_and_tuned_answers_to_held_out_prompts(lora_job, text_models, capsys):
    from ifllm_lab.dpo.job import HELDOUT_FILE, read_eval

    spec, job = lora_job
    text_model, fused_model = text_models
    held = [json.loads(x) for x in Path(job, HELDOUT_FILE).read_text().splitlines()]
    assert len(held) == 2
    assert main(["dpo", "eval", job, "--reward-model", text_model, "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    ev = read_eval(job)
    assert summary["prompts"] == ev["prompts"] == 2 and "answers" not in summary
    assert [a["prompt"] for a in ev["answers"]] == [h["prompt"][-1]["content"] for h in held]
    for a in ev["answers"]:
        assert a["base"] and a["tuned"] and 0.0 <= a["p_tuned"] <= 1.0
    assert ev["win_rate"] in (0.0, 0.25, 0.5, 0.75, 1.0) and ev["win_rate_ci"][0] <= ev["win_rate"]
    assert set(ev["text"]["base"]) == set(ev["text"]["tuned"]) and ev["text"]["tuned"]["words"] > 0
    # a model that needs gaze cannot score generated answers: the evaluation says so
    assert main(["dpo", "eval", job, "--reward-model", fused_model, "--quiet"]) == 1
    assert "score them with a text model" in capsys.readouterr().err


def test_a_whole_model_run_saves_a_loadable_model(tmp_path, tiny_model, pairs_file):
    spec = _write(tmp_path, tiny_model, pairs_file, "full", max_steps=2, loss="sigmoid")
    spec.lora.enabled = False
    job = launch(spec)
    st = _wait(job)
    assert st.state == DONE, st.error
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(os.path.join(job, "model"))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model))
    changed = [n for (n, p), (_, q) in zip(m.named_parameters(), base.named_parameters()) if not (p == q).all()]
    assert changed  # DPO moved the weights themselves


def test_a_cancelled_job_stops_at_a_checkpoint_and_resumes(tmp_path, tiny_model, pairs_file, capsys):
    spec = _write(tmp_path, tiny_model, pairs_file, "long", max_steps=400)
    job = launch(spec)
    t0 = time.monotonic()
    while not read_metrics(job):
        assert time.monotonic() - t0 < 240, read_status(job)
        time.sleep(0.5)
    assert cancel(job, grace_s=120) == CANCELLED
    st = read_status(job)
    assert st.state == CANCELLED and "resume goes on from it" in (st.error or ""), st
    stopped = read_metrics(job)[-1]["step"]
    ckpts = sorted(os.listdir(os.path.join(job, "checkpoints")))
    assert f"checkpoint-{stopped}" in ckpts or f"checkpoint-{stopped + 1}" in ckpts, (stopped, ckpts)
    assert stopped < 400 and not os.path.exists(os.path.join(job, "model"))
    # resume: the same job goes on from its checkpoint to a nearer end
    again = load_spec(os.path.join(job, SPEC_FILE))
    again.max_steps = stopped + 3
    write_spec(again, os.path.join(job, SPEC_FILE))
    assert main(["dpo", "resume", job, "--wait", "--quiet"]) == 0
    steps = [r["step"] for r in read_metrics(job)]
    assert steps[-1] == stopped + 3 and steps.count(stopped + 2) == 1, steps
    assert job_info(job).state == DONE and os.path.isdir(os.path.join(job, "model"))


def test_a_broken_model_folder_fails_the_job_with_the_reason(tmp_path, pairs_file, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", "hidden_size": "wide"')
    spec_path = tmp_path / "job.toml"
    spec_path.write_text(f'base_model = "{broken}"\npairs = "{pairs_file}"\noutput_dir = "{tmp_path / "job"}"\n')
    rc = main(["dpo", "run", str(spec_path), "--wait", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "failed" in err and "base_model" in err, err
    st = read_status(str(tmp_path / "job"))
    assert st.state == FAILED and str(broken) in st.error


def test_the_bundled_gguf_base_model_is_converted_once_into_a_model_folder(tmp_path, pairs_file):
    pytest.importorskip("trl", reason="the dpo extra is not installed")
    from transformers import AutoModelForCausalLM

    from ifllm_lab.dpo.worker import load_base
    from ifllm_lab.llm.llama import default_model_path

    spec = JobSpec(base_model=str(default_model_path()), pairs=str(pairs_file), output_dir=str(tmp_path / "job"))
    spec.check()
    logged = []
    src, tok = load_base(spec, str(tmp_path / "job"), logged.append)
    assert src == str(tmp_path / "job" / "base") and len(logged) == 1 and "converting" in logged[0]
    model = AutoModelForCausalLM.from_pretrained(src)
    assert model.config.model_type == "llama" and model.num_parameters() > 100_000_000
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>assistant" in text  # SmolLM2's own chat template came along
    before = os.path.getmtime(os.path.join(src, "config.json"))
    load_base(spec, str(tmp_path / "job"), logged.append)  # the second time: the folder as it is
    assert len(logged) == 1 and os.path.getmtime(os.path.join(src, "config.json")) == before


def test_the_tuned_model_exports_to_gguf_and_the_study_backend_chats_with_it(lora_job, tmp_path):
    from ifllm_lab.dpo.converter import ConverterError, find_converter
    from ifllm_lab.llm import ChatMessage, GenerationSettings
    from ifllm_lab.llm.llama import LlamaCppBackend

    try:
        find_converter()
    except ConverterError as exc:
        pytest.skip(str(exc))  # CI fetches it while installing (.ci/run)
    _spec, job = lora_job
    out = tmp_path / "tuned.gguf"
    assert main(["dpo", "export-gguf", job, "--out", str(out), "--outtype", "f16", "--quiet"]) == 0
    assert out.is_file() and not list(tmp_path.glob("*.partial*"))
    assert read_status(os.path.join(job, "export")).state == DONE
    b = LlamaCppBackend(str(out), n_ctx=256)  # what the study app runs for llm.model_path = that file
    try:
        r = b.generate([ChatMessage("user", "Hello")], GenerationSettings(max_tokens=6, seed=1))
    finally:
        b.close()
    assert r.finish_reason in ("stop", "length"), (r.error, r.error_detail)
    assert r.model == "tuned.gguf" or "tuned" in r.model


def test_the_example_spec_runs_as_shipped(pairs_file, capsys):
    from ifllm_lab.llm.llama import default_model_path

    from tests.support.repo import REPO

    path = REPO / "examples" / "dpo" / "smollm2-rdpo.toml"
    spec = load_spec(str(path))
    assert spec.base_model == str(default_model_path()) and spec.loss == "robust+sft" and spec.lora.enabled
    spec.pairs = str(pairs_file)  # what `dpo run ... --pairs FILE` does
    spec.check()
    assert main(["dpo", "script", str(path)]) == 0
    assert "-m ifllm_lab.dpo.worker" in capsys.readouterr().out
