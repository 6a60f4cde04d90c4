"""The workbench's DPO jobs tab, offscreen, on job folders written the way the worker writes
them (``job.toml``, ``status.json``, ``metrics.jsonl``, ``log.txt``, ``eval.json``): a
running job followed live until it is done, a bad spec refused in one line, the pairs
previewed from real sessions, jobs compared, the evaluation shown, the missing ``dpo``
extra explained, and Cancel ending a real process. Nothing is trained here (tests/dpo run
real jobs)."""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtGui import QTextDocument

from ifllm_lab.dpo.job import JobSpec, write_spec
from ifllm_lab.jobs.status import JobStatus, StatusFile, append_log, process_start_token, utc_now
from ifllm_lab.ui.workbench import dpo as dpo_ui
from ifllm_lab.ui.workbench.dpo import FINAL_STEPS, JOBS_FOLDER, smooth


def _rows(steps, *, total: int = 40, s_per_step: float = 3.0, beta: float = 0.1) -> list[dict]:
    """Logged steps as the worker writes them: the loss falls, the margin grows."""
    return [{"step": s, "epoch": round(s / total, 4), "loss": round(0.69 * math.exp(-s / 25) + 0.01 * (s % 3), 5),
             "rewards/margins": round(beta * 10 * s / total + 0.02 * (s % 4), 5),
             "rewards/accuracies": [0.5, 0.625, 0.75, 0.875][s % 4], "rewards/chosen": 0.1, "rewards/rejected": -0.2,
             "grad_norm": 1.5, "learning_rate": 5e-5, "tokens_per_s": 800.0, "elapsed_s": s_per_step * s,
             "max_steps": total} for s in steps]


def _write_rows(folder: Path, rows: list[dict], mode: str = "w") -> None:
    with open(folder / "metrics.jsonl", mode, encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


def _job(data: Path, name: str, *, state: str, rows: list[dict], pid: int | None = None, pairs: int = 24,
         error: str | None = None, **spec_kw) -> tuple[Path, JobStatus]:
    """A job folder as the worker leaves it; ``pid``: the process that runs it (alive or not)."""
    folder = data / JOBS_FOLDER / name
    folder.mkdir(parents=True)
    (folder / "pairs.jsonl").write_text("".join(json.dumps({"prompt": [], "chosen": [], "rejected": []}) + "\n"
                                                for _ in range(pairs)))
    spec = JobSpec(base_model=str(data / "base.gguf"), pairs=str(folder / "pairs.jsonl"), output_dir=str(folder),
                   name=name, max_steps=rows[-1]["max_steps"] if rows else -1, **spec_kw)
    write_spec(spec, str(folder / "job.toml"))
    _write_rows(folder, rows)
    st = JobStatus(name=name, state=state, fraction=0.0, message="training", started=utc_now(), pid=pid,
                   host=socket.gethostname(), pid_start=process_start_token(pid) if pid else None, error=error,
                   ended=None if state in ("queued", "running") else utc_now())
    StatusFile(str(folder), st).close()
    return folder, st


def _plain(rich: str) -> str:
    doc = QTextDocument()
    doc.setHtml(rich)
    return doc.toPlainText()


def _curves(plot) -> list[pg.PlotDataItem]:
    return [it for it in plot.plotItem.items if isinstance(it, pg.PlotDataItem)]


def _cells(table, row: int) -> list[str]:
    return [table.item(row, c).text() for c in range(table.columnCount())]


@pytest.fixture
def data(tmp_path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "base.gguf").write_bytes(b"GGUF")  # a base model file that exists (its contents are not read here)
    return d


def _panel(make_wb, data: Path):
    wb = make_wb(data)
    wb.tabs.setCurrentWidget(wb.dpo)
    assert wb.tabs.tabText(wb.tabs.indexOf(wb.dpo)) == "DPO jobs"
    return wb, wb.dpo


def test_a_running_job_is_followed_live_until_it_is_done(make_wb, qtbot, data):
    rows = _rows(range(1, 11))
    live, st = _job(data, "live", state="running", rows=rows, pid=os.getpid())  # this process: alive
    _job(data, "earlier", state="done", rows=_rows(range(1, 41)), pid=999_999)
    for k in range(35):
        append_log(str(live), f"line {k}")
    wb, panel = _panel(make_wb, data)
    t = panel.jobs_table
    assert t.rowCount() == 2
    row = {t.item(i, 0).text(): i for i in range(2)}["live"]
    cells = _cells(t, row)
    assert cells[1:6] == ["running", "10 / 40", f"{rows[-1]['loss']:.4f}", f"{rows[-1]['rewards/margins']:.3f}",
                          f"{100 * rows[-1]['rewards/accuracies']:.0f} %"]
    assert panel.timer.isActive()  # a job runs: its folder is read every second

    assert panel.select_jobs([str(live)])
    assert panel.detail.currentWidget() is panel.job_page
    assert "live" in panel.job_title.text() and "running" in panel.job_title.text()
    assert panel.cancel_btn.isEnabled() and not panel.resume_btn.isEnabled() and not panel.eval_btn.isEnabled()
    # the curves: every logged step (faint) and their moving average (bold)
    for key in ("loss", "rewards/margins", "rewards/accuracies"):
        raw, smoothed = _curves(panel.plots[key])
        x, y = raw.getData()
        assert list(x) == list(range(1, 11)) and np.allclose(y, [r[key] for r in rows])
        assert np.allclose(smoothed.getData()[1], smooth([r[key] for r in rows], panel.smoothing_spin.value()))
    # progress: 10 of 40 steps in 30 s, 3 s a step, 30 to go
    assert panel.progress.value() == 250 and panel.progress.format() == "step 10 of 40 (25 %)"
    assert panel.eta_label.text() == "about 1 min 30 s left \u00b7 30 s elapsed \u00b7 3.0 s per step"
    # the log's tail
    shown = panel.log_view.toPlainText().splitlines()
    assert len(shown) == dpo_ui.LOG_TAIL_LINES and shown[-1].endswith("line 34") and shown[0].endswith("line 5")

    # a second workbench on the same data folder finds the running job from its folder alone
    other = make_wb(data, settings_name="other.ini")
    other.tabs.setCurrentWidget(other.dpo)
    assert "running" in [other.dpo.jobs_table.item(i, 1).text() for i in range(2)]

    # the job goes on and finishes: the list and the view follow
    more = _rows(range(11, 41))
    _write_rows(live, more, mode="a")
    StatusFile(str(live), replace(st, state="done", fraction=1.0, ended=utc_now())).close()
    qtbot.waitUntil(lambda: t.item(row, 1).text() == "done", timeout=10_000)
    assert _cells(t, row)[2:4] == ["40 / 40", f"{more[-1]['loss']:.4f}"]
    assert "done" in panel.job_title.text()
    x, _y = _curves(panel.plots["loss"])[0].getData()
    assert list(x) == list(range(1, 41))
    assert panel.progress.value() == 1000 and panel.progress.format() == "step 40 of 40 (100 %)"
    assert panel.eta_label.text() == "40 steps in 2 min 00 s (3.0 s per step)"
    assert not panel.cancel_btn.isEnabled()
    assert not panel.timer.isActive()  # nothing runs any more


def test_a_bad_spec_is_refused_in_one_line_and_nothing_is_launched(make_wb, qtbot, data, tmp_path):
    _wb, panel = _panel(make_wb, data)
    panel.base_edit.setText(str(data / "base.gguf"))
    jobs = data / JOBS_FOLDER

    def refused(message: str) -> None:
        assert panel.launch_msg.text() == message
        assert not panel.launch_btn.isEnabled()
        assert panel.launch() is None
        assert panel.launch_msg.text() == message and "\n" not in message
        assert not jobs.exists()

    panel.beta.setValue(0.0)
    refused("beta = 0.0: must be a number above 0")
    panel.beta.setValue(0.1)
    panel.smoothing.setValue(0.5)
    refused("label_smoothing = 0.5: must be at least 0 and below 0.5")
    panel.smoothing.setValue(0.1)
    panel.lr_edit.setText("fast")
    refused("learning_rate = 'fast': must be a number above 0")
    panel.lr_edit.setText("5e-5")
    panel.lora_targets.setText("")
    refused("lora.target_modules = []: name the layers to adapt")
    panel.lora_targets.setText("q_proj, v_proj")
    missing = str(tmp_path / "nowhere.gguf")
    panel.base_edit.setText(missing)
    refused(f"base_model = {missing!r}: no such model folder or file")
    panel.base_edit.setText(str(data / "base.gguf"))
    panel.name_edit.setText("../escape")
    assert panel.launch_msg.text().startswith("name = '../escape': it names the job's folder")
    assert panel.launch() is None
    panel.name_edit.setText("rdpo-1")
    # the spec is good; without pairs there is still nothing to launch
    assert panel.launch_msg.text() == "Preview the pairs first: Launch writes them into the job's folder."
    assert panel.launch() is None and not jobs.exists()
    spec = panel.spec()
    assert (spec.loss, spec.beta, spec.lora.enabled, spec.lora.target_modules) == ("robust+sft", 0.1, True,
                                                                                    ["q_proj", "v_proj"])
    assert spec.output_dir == str(jobs / "rdpo-1") and spec.pairs == str(jobs / "rdpo-1" / "pairs.jsonl")


def test_preview_counts_the_pairs_of_the_chosen_sessions(make_wb, qtbot, data):
    from ifllm_lab.synthetic.session import make_study_session

    for i in range(3):
        make_study_session(str(data / f"p{i}.h5"), f"P{i}", turns=4, signal=0.9, seed=40 + i)
    wb, panel = _panel(make_wb, data)
    qtbot.waitUntil(lambda: wb.sessions.scans >= 1, timeout=60_000)
    panel.set_missing([])  # the extra taken as installed: the Launch button shows (nothing is launched here)
    panel.base_edit.setText(str(data / "base.gguf"))
    assert panel.use_all.text() == "All sessions (3)" and panel.data_label.text().startswith("3 sessions, 3 partic")
    assert not panel.label_model.isEnabled()  # explicit labels need no reward model
    runner = panel.preview()
    assert runner is not None and wb.shown_runner() is runner  # progress and Cancel in the status line
    qtbot.waitUntil(lambda: not runner.running, timeout=60_000)
    assert runner.state == "done", runner.job.error
    summary = panel.preview_report.summary()
    assert summary["pairs"] == 12 and summary["by_source"]["explicit"] == 12
    text = _plain(panel.preview_label.text())
    assert text.startswith("12 pairs from 3 participants (3 sessions, 12 pairwise questions)")
    assert "by label: explicit 12 \u00b7 implicit 0 \u00b7 both agree 0" in text
    assert panel.launch_btn.isEnabled() and panel.launch_btn.isVisible()
    assert panel.launch_msg.text().startswith(f"Starts the job in {JOBS_FOLDER}/")
    # other sessions: the preview is out of date, Launch waits for a new one
    panel.use_selected.setChecked(True)
    assert wb.sessions.select_path(str(data / "p0.h5"))
    assert panel.use_selected.text() == "Selected sessions (1)"
    assert panel.launch_msg.text() == "The pairs settings changed since the preview: preview them again."
    assert not panel.launch_btn.isEnabled() and panel.launch() is None
    assert not (data / JOBS_FOLDER).exists()
    # implicit labels need a pairwise reward model: there is none in the data folder
    panel.labels_box.setCurrentIndex(panel.labels_box.findData("implicit"))
    assert panel.label_model.isEnabled() and not panel.preview_btn.isEnabled()
    assert panel.preview() is None and "need a pairwise reward model" in _plain(panel.preview_label.text())


def test_jobs_compared_and_an_evaluation_shown(make_wb, qtbot, data):
    a_rows, b_rows = _rows(range(1, 41)), _rows(range(1, 26), beta=0.3)
    a, _ = _job(data, "beta-01", state="done", rows=a_rows, pid=999_999)
    b, _ = _job(data, "beta-03", state="cancelled", rows=b_rows, pid=999_998, beta=0.3, pairs=30,
                error="cancelled at step 25; the last checkpoint is in checkpoints (resume goes on from it)")
    (a / "model").mkdir()
    answers = [{"prompt": "Why is the sky blue?", "base": "Scattering.", "tuned": "Rayleigh <b>scattering</b>.",
                "p_tuned": 0.8},
               {"prompt": "Name a prime.", "base": "Seven.", "tuned": "Two, the only even one.", "p_tuned": 0.3}]
    (a / "eval.json").write_text(json.dumps({
        "prompts": 4, "reward_model": str(data / ".models" / "text-judge"), "win_rate": 0.65,
        "win_rate_ci": [0.45, 0.85], "mean_p": 0.61, "longer_share": 0.5,
        "text": {"base": {"words": 10.0, "paragraphs": 1.0, "bullets": 0.0, "headings": 0.0, "bold": 0.0,
                          "markup_share": 0.0, "flesch": 60.0},
                 "tuned": {"words": 14.5, "paragraphs": 1.5, "bullets": 1.0, "headings": 0.0, "bold": 0.5,
                           "markup_share": 0.02, "flesch": 55.0}},
        "answers": answers, "seconds": 42.0}))
    _wb, panel = _panel(make_wb, data)
    panel.set_missing([])
    assert not panel.timer.isActive()  # nothing runs
    assert panel.select_jobs([str(a), str(b)])
    assert panel.detail.currentWidget() is panel.compare_page
    assert "Comparing 2 jobs" in _plain(panel.compare_title.text())
    for key in ("loss", "rewards/margins", "rewards/accuracies"):
        curves = _curves(panel.compare_plots[key])
        assert len(curves) == 4  # per job: as logged and smoothed
        lengths = sorted(len(c.getData()[0]) for c in curves)
        assert lengths == [25, 25, 40, 40]
        colours = {c.opts["pen"].color().name() for c in curves[1::2]}
        assert len(colours) == 2  # one colour per job
    legend = [label.text for _sample, label in panel.compare_legend.items]
    assert sorted(legend) == ["beta-01", "beta-03"]
    t = panel.compare_table
    rows = {t.item(i, 0).text().split(" ", 1)[1]: _cells(t, i) for i in range(t.rowCount())}
    assert set(rows) == {"beta-01", "beta-03"}
    last_loss = np.mean([r["loss"] for r in a_rows][-FINAL_STEPS:])
    assert rows["beta-01"][1:5] == ["done", "40 / 40", "24", f"{last_loss:.4f}"]
    assert rows["beta-03"][1:4] == ["cancelled", "25 / 40", "30"]
    assert rows["beta-01"][7] == "65.0 % [45.0, 85.0]" and rows["beta-03"][7] == "\u2013"
    assert rows["beta-01"][8] == "\u03b2 0.1" and rows["beta-03"][8] == "\u03b2 0.3"

    # one of them alone: its evaluation
    assert panel.select_jobs([str(a)])
    assert panel.detail.currentWidget() is panel.job_page
    list_row = {panel.jobs_table.item(i, 0).text(): i for i in range(2)}["beta-01"]
    assert panel.jobs_table.item(list_row, 6).text() == "65 %"
    assert panel.eval_btn.isEnabled() and panel.eval_btn.text() == "Evaluate again"
    headline = _plain(panel.eval_headline.text())
    assert "tuned model's answer on 65.0 % [45.0, 85.0] of 4 held-out prompts" in headline
    assert "judge text-judge" in headline and "longer in 50 %" in headline
    stats = {panel.eval_stats.item(i, 0).text(): _cells(panel.eval_stats, i)[1:]
             for i in range(panel.eval_stats.rowCount())}
    assert stats["words"] == ["10.0", "14.5", "+4.5"] and stats["markup"] == ["0.0 %", "2.0 %", "+2.0 pts"]
    shown = panel.eval_answers.toPlainText()
    for a_ in answers:
        for side in ("prompt", "base", "tuned"):
            assert a_[side] in shown  # as written, markup included
    assert "P(tuned preferred) 0.80" in shown
    # the cancelled one can be resumed; the Run page has its spec and the scripts
    assert panel.select_jobs([str(b)])
    assert panel.resume_btn.isEnabled() and not panel.eval_btn.isEnabled()
    assert panel.job_message.text().startswith("cancelled at step 25")
    assert "beta = 0.3" in panel.run_page_text()
    panel.run_which.setCurrentIndex(panel.run_which.findData("slurm"))
    assert panel.run_text.toPlainText().startswith("#!/bin/bash") and str(b) in panel.run_text.toPlainText()
    panel.run_which.setCurrentIndex(panel.run_which.findData("accelerate"))
    assert panel.run_text.toPlainText().startswith("accelerate launch --num_processes 1")


def test_without_the_dpo_extra_the_tab_says_how_to_add_it(make_wb, qtbot, data, monkeypatch):
    monkeypatch.setattr(dpo_ui, "missing_extra", lambda: ["torch", "trl"])
    failed, _ = _job(data, "oom", state="failed", rows=_rows(range(1, 6)), pid=999_999,
                     error="out of memory at step 5: lower batch_size or max_length")
    _wb, panel = _panel(make_wb, data)
    assert panel.missing == ["torch", "trl"]
    assert panel.launch_stack.currentWidget() is panel.extra_note and not panel.launch_btn.isVisible()
    note = _plain(panel.extra_note.text())
    assert "needs the dpo extra (missing: torch, trl)" in note
    assert f"{sys.executable} -m pip install 'ifllm-lab[dpo]'" in note and "slurm" in note
    # the jobs are still listed and shown; what needs the extra here says so
    assert panel.jobs_table.rowCount() == 1 and panel.select_jobs([str(failed)])
    assert panel.job_message.text() == "out of memory at step 5: lower batch_size or max_length"
    assert not panel.resume_btn.isEnabled() and "pip install 'ifllm-lab[dpo]'" in panel.resume_btn.toolTip()
    # a cluster run needs it on the cluster only
    panel.run_box.setCurrentIndex(panel.run_box.findData("slurm"))
    assert panel.launch_stack.currentWidget() is panel.launch_btn and panel.launch_btn.text() == "Submit to Slurm"


def test_cancel_ends_the_jobs_process_off_the_gui_thread(make_wb, qtbot, data):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    try:
        folder, _ = _job(data, "stuck", state="running", rows=_rows(range(1, 4)), pid=proc.pid)
        wb, panel = _panel(make_wb, data)
        panel.cancel_grace_s = 0.5  # the process never reads the cancel file: it is ended after this
        assert panel.select_jobs([str(folder)]) and panel.cancel_btn.isEnabled()
        runner = panel.cancel_job(str(folder))
        assert wb.shown_runner() is runner and runner.running  # the window stays free while it waits
        assert not panel.cancel_btn.isEnabled() and panel.cancel_btn.text() == "Cancelling\u2026"
        qtbot.waitUntil(lambda: not runner.running, timeout=60_000)
        assert runner.state == "done" and runner.job.result == "cancelled", runner.job.error
        assert proc.wait(10) != 0
        assert panel.jobs_table.item(0, 1).text() == "cancelled"
        assert "did not stop within 0.5 s" in panel.job_message.text()
        assert panel.resume_btn.isEnabled() == (not panel.missing)
        assert panel.cancel_btn.text() == "Cancel" and not panel.cancel_btn.isEnabled()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
