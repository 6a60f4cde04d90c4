"""The workbench's DPO jobs tab: fine-tune a language model on the preference pairs of the
data folder's sessions, follow the training live, compare runs and evaluate the tuned model.

- **New job** (left): where the pairs come from (the Sessions table's selection or all
  sessions; the participant's choice, a reward model's confident predictions, both, or
  the choice filled in by the model) and every setting of the job's spec
  (:class:`~ifllm_lab.dpo.job.JobSpec`), checked as it is typed. *Preview pairs* makes the
  pairs as a job (progress and Cancel in the status line) and counts them by label source
  and by reason left out; *Launch* writes them into a new job folder,
  ``<data>/.dpo-jobs/<name>/pairs.jsonl``, and starts the job in a process of its own (or
  on a cluster): closing the workbench does not stop it.
- **Jobs** (top right): every job folder of ``<data>/.dpo-jobs``, read from its files
  (``job.toml``, ``status.json``, ``metrics.jsonl``), so a reopened workbench finds its
  running jobs again. While one runs the list is read again every second.
- **The selected job**: loss, reward margin and reward accuracy curves, progress with the
  time left, the log's tail, Cancel / Resume / Evaluate / Open folder, the evaluation
  (win rate of the tuned over the base model, text statistics, answers side by side) and
  the Slurm script / ``accelerate launch`` command of its spec.
- **Several selected jobs**: their curves overlaid, one colour per job, and their final
  numbers side by side with the settings they differ in.

No training library is loaded here: jobs run in their own processes; whether the ``dpo``
extra is installed is asked of the import system without importing it.
"""
from __future__ import annotations

import html
import math
import os
import re
import shlex
import sys
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QFont, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox,
    QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMenu, QMessageBox, QPlainTextEdit, QProgressBar, QSizePolicy,
    QSpinBox, QSplitter, QStackedWidget, QTabWidget, QTextBrowser, QToolButton, QVBoxLayout, QWidget,
)

from ...dpo import job as dpo_job
from ...dpo.job import LOSSES, PRECISIONS, RUNS, Accelerate, JobSpec, Lora, Slurm, SpecError
from ...dpo.pairs import LABELS, REASONS, SOURCES
from ...jobs import Job
from ...session.provenance import read_stale, stale_text
from .. import style
from .forms import SessionChoice, beside, form_scroll, message_label, push_button, registry_combo, show_message
from .reward import MODELS_FOLDER, _ci, _item, _mono, _ok, _pct, _Plot, _table

__all__ = ["DpoPanel", "JOBS_FOLDER", "PAIRS_FILE", "missing_extra", "default_base_model", "smooth", "seconds_left",
           "duration", "tail_lines", "final_value", "spec_summary", "spec_differences", "win_rate_text", "model_label"]

JOBS_FOLDER = ".dpo-jobs"  #: where a data folder keeps its DPO jobs (session scans skip dot-folders)
PAIRS_FILE = "pairs.jsonl"  #: the job's pairs, in its folder
INSTALL = "pip install 'ifllm-lab[dpo]'"
TICK_MS = 1000  # how often the folders of running jobs are read
LOG_TAIL_LINES = 30
FINAL_STEPS = 10  # the compare table: mean of the last so many logged steps
SMOOTHING = 0.6
CANCEL_GRACE_S = 60.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_LIVE = ("queued", "running")

#: one colour per job in the compare view
_JOB_PALETTE = ("#5aa9e6", "#ef8a5e", "#5cc46b", "#b48ead", "#e0a83a", "#88c0d0", "#d08770", "#a3be8c")
_STATE_COLOURS = {"running": QColor("#5aa9e6"), "queued": QColor("#5aa9e6"), "done": style.GOOD,
                  "failed": style.BAD, "cancelled": style.WARN, "new": style.TEXT_DIM, "unreadable": style.BAD}
#: (metrics key, axis label, colour of the single job's curve)
CURVES = (("loss", "loss", "#5aa9e6"), ("rewards/margins", "reward margin", "#e0a83a"),
          ("rewards/accuracies", "reward accuracy", "#5cc46b"))
#: text statistics of the evaluation, in order, with their names for people
_TEXT_STATS = (("words", "words", "words per answer"), ("paragraphs", "paragraphs", "paragraphs per answer"),
               ("bullets", "bullets", "bullet points per answer"), ("headings", "headings", "headings per answer"),
               ("bold", "bold", "bold spans per answer"),
               ("markup_share", "markup", "share of the characters that are markdown markup"),
               ("flesch", "Flesch", "Flesch reading ease (higher: easier to read)"))
_DIM = style.TEXT_DIM.name()


# -- plain helpers ----------------------------------------------------------------------------------
def missing_extra() -> list[str]:
    """The modules of the ``dpo`` extra that are not installed (the worker's check)."""
    from ...dpo.worker import missing_extra as missing

    return missing()


def default_base_model() -> str:
    """The bundled SmolLM2 GGUF file, or "" when it is not installed."""
    from ...llm.llama import default_model_path
    from ...llm.types import LLMError

    try:
        return str(default_model_path())
    except LLMError:
        return ""


def duration(seconds: float | None) -> str:
    """``45 s``, ``3 min 07 s``, ``2 h 05 min``; an en dash when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "\u2013"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def seconds_left(last: dict) -> float | None:
    """The time left of a training from its last logged step: the mean time per step so far
    times the steps still to go (None before the first step or without a step count)."""
    step, total, elapsed = last.get("step"), last.get("max_steps"), last.get("elapsed_s")
    if not (_ok(step) and _ok(total) and _ok(elapsed)) or step <= 0 or total <= 0:
        return None
    return float(elapsed) / float(step) * max(float(total) - float(step), 0.0)


def smooth(values, weight: float) -> np.ndarray:
    """An exponential moving average with the start bias removed (as TensorBoard draws it);
    missing values stay missing and do not move the average."""
    y = np.asarray(values, dtype=np.float64)
    out = np.full(y.shape, np.nan)
    if not 0 < weight < 1:
        return y.copy()
    avg, n = 0.0, 0
    for i, v in enumerate(y):
        if not math.isfinite(v):
            continue
        avg = weight * avg + (1.0 - weight) * v
        n += 1
        out[i] = avg / (1.0 - weight ** n)
    return out


def final_value(rows: list[dict], key: str, n: int = FINAL_STEPS) -> float | None:
    """The mean of ``key`` over the last ``n`` logged steps that have it (None: none has)."""
    vals = [float(r[key]) for r in rows if _ok(r.get(key))][-n:]
    return sum(vals) / len(vals) if vals else None


def tail_lines(path: str, n: int = LOG_TAIL_LINES, max_bytes: int = 64 * 1024) -> list[str]:
    """The last ``n`` lines of a text file (read from its end; [] when there is none)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first one is cut
    return lines[-n:]


def _stat_key(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _num(x, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if _ok(x) else "\u2013"


def _local_time(t) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M") if t is not None else ""


def model_label(info: dict, path: str) -> str:
    """A reward model in a few words: ``implicit \u00b7 screened \u00b7 03-01 10:20`` (its folder
    in the tooltip)."""
    when = str(info.get("created", ""))[5:16].replace("T", " ")  # month, day and time: the year is long
    bits = [str(info.get("feature_set") or ""), str(info.get("kind") or ""), when]
    return " \u00b7 ".join(b for b in bits if b) or os.path.basename(path)


def win_rate_text(ev: dict | None) -> str:
    """``65.0 % [45.0, 85.0]`` of an evaluation, ``no judge`` without a reward model, an en
    dash before one."""
    if not ev:
        return "\u2013"
    if not _ok(ev.get("win_rate")):
        return "no judge"
    ci = ev.get("win_rate_ci")
    return _pct(ev["win_rate"]) + (f" {_ci(ci)}" if ci else "")


def spec_summary(spec: JobSpec, pairs: int | None = None) -> str:
    """The settings that tell runs apart, in one line."""
    bits = [spec.loss, f"\u03b2 {spec.beta:g}"]
    if spec.loss != "sigmoid":
        bits.append(f"smoothing {spec.label_smoothing:g}")
    if spec.loss == "robust+sft":
        bits.append(f"SFT {spec.sft_weight:g}")
    bits += [f"lr {spec.learning_rate:g}", f"LoRA r {spec.lora.r}" if spec.lora.enabled else "whole model",
             f"batch {spec.batch_size}\u00d7{spec.grad_accum}",
             f"{spec.max_steps} steps" if spec.max_steps > 0 else f"{spec.epochs:g} epoch{'s' if spec.epochs != 1 else ''}",
             spec.precision]
    if pairs is not None:
        bits.append(f"{pairs} pairs")
    bits += [f"base {os.path.basename(os.path.normpath(spec.base_model)) or spec.base_model}", f"run {spec.run}"]
    return " \u00b7 ".join(bits)


#: the settings the compare table names when the jobs differ in them
_DIFF_KEYS = (("loss", lambda s: s.loss), ("\u03b2", lambda s: f"{s.beta:g}"),
              ("smoothing", lambda s: f"{s.label_smoothing:g}"), ("SFT weight", lambda s: f"{s.sft_weight:g}"),
              ("lr", lambda s: f"{s.learning_rate:g}"),
              ("LoRA", lambda s: f"r {s.lora.r}, \u03b1 {s.lora.alpha}" if s.lora.enabled else "off"),
              ("batch", lambda s: f"{s.batch_size}\u00d7{s.grad_accum}"),
              ("length", lambda s: str(s.max_steps) + " steps" if s.max_steps > 0 else f"{s.epochs:g} epochs"),
              ("precision", lambda s: s.precision), ("max length", lambda s: str(s.max_length)),
              ("seed", lambda s: str(s.seed)), ("held out", lambda s: str(s.eval_prompts)),
              ("base", lambda s: os.path.basename(os.path.normpath(s.base_model))))


def spec_differences(specs: list[JobSpec | None]) -> list[str]:
    """For each spec, the settings in which the specs differ (``β 0.3 · lr 0.0001``)."""
    out: list[list[str]] = [[] for _ in specs]
    for name, get in _DIFF_KEYS:
        vals = [get(s) if s is not None else None for s in specs]
        if len({v for v in vals if v is not None}) > 1:
            for i, v in enumerate(vals):
                if v is not None:
                    out[i].append(f"{name} {v}")
    return [" \u00b7 ".join(bits) if bits else "same settings" for bits in out]


# -- jobs run in a worker thread (no widget touched) -------------------------------------------------
def _pairs_job(ctx, sources: list[str], *, labels: str, model_folder: str | None, min_confidence: float,
               all_participants: bool, cache_dir: str | None, workers: int = 2):
    from ...dpo.pairs import make_pairs

    rep = make_pairs(sources, labels=labels, model_folder=model_folder, min_confidence=min_confidence,
                     all_participants=all_participants, cache_dir=cache_dir, workers=workers,
                     progress=ctx.progress, cancel=lambda: ctx.cancelled, log=ctx.log)
    ctx.progress(1.0, f"{len(rep.pairs)} pairs")
    return rep


def _launch_job(ctx, spec: JobSpec, pairs: list) -> str:
    """Make the job's folder, write its pairs there and start it. A job that could not be
    started leaves nothing behind, but for a Slurm batch script that could not be submitted
    (it stays, to be submitted by hand)."""
    import shutil

    from ...dpo.job import launch
    from ...dpo.pairs import write_jsonl

    job_dir = os.path.abspath(spec.output_dir)
    try:
        os.makedirs(job_dir)
    except FileExistsError:
        raise SpecError(f"name = {spec.name!r}: {job_dir} exists already: choose another name") from None
    except OSError as exc:
        raise SpecError(f"output_dir = {job_dir!r}: cannot be made ({exc.strerror or exc})") from None
    try:
        ctx.progress(None, f"writing {len(pairs)} pairs")
        write_jsonl(pairs, spec.pairs)
        ctx.progress(None, "starting the job")
        folder = launch(spec)
        ctx.progress(1.0, f"{spec.name} started ({spec.run})")
        return folder
    except BaseException:
        if not os.path.isfile(os.path.join(job_dir, "slurm.sh")):
            shutil.rmtree(job_dir, ignore_errors=True)
        raise


def _resume_job(ctx, spec: JobSpec) -> str:
    from ...dpo.job import launch

    ctx.progress(None, "starting the job again")
    folder = launch(spec, resume=True)
    ctx.progress(1.0, f"{spec.name} resumed")
    return folder


def _cancel_job(ctx, folder: str, grace_s: float) -> str:
    from ...dpo.job import cancel

    ctx.progress(None, f"waiting up to {grace_s:g} s for the job to save a checkpoint and stop")
    state = cancel(folder, grace_s=grace_s)
    ctx.progress(1.0, f"{os.path.basename(folder)}: {state}")
    return state


def _eval_job(ctx, folder: str, reward_model: str | None) -> str:
    ctx.progress(None, "starting the evaluation")
    status = dpo_job.launch_eval(folder, reward_model=reward_model)
    ctx.progress(1.0, f"the evaluation of {os.path.basename(folder)} started (its progress: the Evaluation page)")
    return status


# -- one job folder ------------------------------------------------------------------------------------
class _Job:
    """What the tab knows of one job folder; its files are read again when they change."""

    def __init__(self, info):
        self.info = info
        self.folder = info.folder
        self.metrics: list[dict] = []
        self._metrics_key = None
        self.eval: dict | None = None
        self._eval_key = None
        self.eval_status = None  # the evaluation's JobStatus (None: never started)
        self._pairs: tuple | None = None

    @property
    def name(self) -> str:
        return self.info.spec.name if self.info.spec is not None else os.path.basename(self.folder)

    @property
    def state(self) -> str:
        return self.info.state

    @property
    def evaluating(self) -> bool:
        return self.eval_status is not None and not self.eval_status.finished \
            and self.eval_status.process_alive is not False

    @property
    def live(self) -> bool:
        """Something in the folder still changes: the job runs, or its evaluation, or a
        cluster job has not written its first status yet."""
        spec = self.info.spec
        return self.state in _LIVE or self.evaluating or (
            self.state == "new" and spec is not None and spec.run != "local")

    def reread(self) -> None:
        from ...dpo.job import job_info

        self.info = job_info(self.folder)
        self.read_eval()

    def read_eval(self) -> None:
        from ...jobs import JobStatusError, read_status

        try:
            self.eval_status = read_status(os.path.join(self.folder, getattr(dpo_job, "EVAL_DIR", "eval")))
        except JobStatusError:
            self.eval_status = None
        read = getattr(dpo_job, "read_eval", None)
        key = _stat_key(os.path.join(self.folder, getattr(dpo_job, "EVAL_FILE", "eval.json")))
        if key != self._eval_key:
            self._eval_key = key
            self.eval = read(self.folder) if read is not None and key is not None else None

    def load_metrics(self) -> list[dict]:
        key = _stat_key(os.path.join(self.folder, dpo_job.METRICS_FILE))
        if key != self._metrics_key:
            self._metrics_key = key
            self.metrics = dpo_job.read_metrics(self.folder) if key is not None else []
        return self.metrics

    def pairs(self) -> int | None:
        """How many pairs the job trains on (lines of its pairs file), None when unreadable."""
        spec = self.info.spec
        if spec is None:
            return None
        key = _stat_key(spec.pairs)
        if self._pairs is None or self._pairs[0] != key:
            n = None
            if key is not None:
                try:
                    with open(spec.pairs, "rb") as fh:
                        n = sum(1 for line in fh if line.strip())
                except OSError:
                    n = None
            self._pairs = (key, n)
        return self._pairs[1]


# -- widgets ----------------------------------------------------------------------------------------------
def _title(text: str, parent) -> QLabel:
    """The title of one side of the tab (bold)."""
    label = QLabel(text, parent)
    f = QFont(style.FONT_FAMILY)
    f.setPixelSize(14)
    f.setBold(True)
    label.setFont(f)
    return label


def _curve_plot(parent, ylabel: str) -> _Plot:
    p = _Plot(parent)
    p.label("bottom", "step")
    p.label("left", ylabel)
    p.setMinimumSize(120, 140)
    p.plotItem.showGrid(x=True, y=True, alpha=0.12)
    return p


def _curve_row(parent, name: str) -> tuple[dict[str, _Plot], QHBoxLayout]:
    """A plot per curve of ``CURVES`` (by its metrics key; named ``dpo_<name>_<metric>``) and
    the row that holds them side by side."""
    plots: dict[str, _Plot] = {}
    row = QHBoxLayout()
    row.setSpacing(6)
    for key, label, _colour in CURVES:
        p = _curve_plot(parent, label)
        p.setObjectName(f"dpo_{name}_{key.split('/')[-1]}")
        plots[key] = p
        row.addWidget(p, 1)
    return plots, row


def _draw_curves(plot: _Plot, key: str, series: list[tuple[str, str, np.ndarray, np.ndarray]], smoothing: float,
                 *, x_max: float | None = None, legend=None) -> None:
    """``series``: (name, colour, steps, values) per job. Each is drawn faint as logged and
    bold smoothed; the margin gets its zero line, the accuracy chance (0.5)."""
    plot.clear()
    if legend is not None:
        legend.clear()
    if key == "rewards/margins":
        plot.addItem(pg.InfiniteLine(pos=0.0, angle=0, pen=pg.mkPen(style.TEXT_DIM, width=1,
                                                                     style=Qt.PenStyle.DashLine)))
    elif key == "rewards/accuracies":
        plot.addItem(pg.InfiniteLine(pos=0.5, angle=0, pen=pg.mkPen(style.TEXT_DIM, width=1,
                                                                     style=Qt.PenStyle.DashLine)))
    have = [(n, c, x, y) for n, c, x, y in series if np.isfinite(y).any()]
    right = float(x_max) if _ok(x_max) and x_max > 0 else 0.0
    for name, colour, x, y in have:
        col = QColor(colour)
        if 0 < smoothing < 1:
            faint = QColor(col)
            faint.setAlpha(90)
            plot.addItem(pg.PlotDataItem(x, y, pen=pg.mkPen(faint, width=1), connect="finite"))
        line = pg.PlotDataItem(x, smooth(y, smoothing), pen=pg.mkPen(col, width=2), connect="finite")
        plot.addItem(line)
        if legend is not None:
            legend.addItem(line, name)
        right = max(right, float(np.nanmax(x)) if len(x) else 0.0)
    if not have:
        t = pg.TextItem("no steps logged yet", color=style.TEXT_DIM, anchor=(0.5, 0.5))
        t.setPos(0.5, 0.5)
        plot.addItem(t)
        plot.setXRange(0, 1, padding=0)
        plot.setYRange(0, 1, padding=0)
        return
    plot.setXRange(0, max(right, 1.0), padding=0.02)
    if key == "rewards/accuracies":
        plot.setYRange(0, 1.0, padding=0.04)
    else:
        plot.enableAutoRange(axis="y")


# -- the panel --------------------------------------------------------------------------------------------
class DpoPanel(QWidget):
    """Needs the workbench's ``run_job`` and its :class:`SessionsPanel` (the data folder, its
    sessions and their selection). ``cache_dir``: where session features are cached.
    ``missing``: the modules of the ``dpo`` extra taken as missing (default: asked of the
    import system, :func:`missing_extra`). Emits ``launched(job_dir)``."""

    launched = Signal(str)

    def __init__(self, run_job, sessions, *, cache_dir: str | None = None, missing: list[str] | None = None,
                 parent=None):
        super().__init__(parent)
        self.setObjectName("dpo")
        self._run_job = run_job
        self.sessions = sessions
        self.cache_dir = cache_dir
        self.missing: list[str] = list(missing_extra() if missing is None else missing)
        self.cancel_grace_s = CANCEL_GRACE_S
        self.preview_runner = None
        self.launch_runner = None
        self.preview_report = None
        self._preview_key = None
        self.jobs: list[_Job] = []
        self._by_folder: dict[str, _Job] = {}
        self._names: set[str] = set()
        self._cancelling: set[str] = set()
        self._starting: set[str] = set()  # resume or evaluation being started
        self._shown: str | None = None  # the folder the job view shows
        self._list_sized = False  # the list's height was set by hand (the splitter)
        self._log_key = None

        left = self._build_form()
        right = self._build_jobs()
        self.splitter = beside(self, left, right, name="dpo_splitter", form_width=self._form_width)

        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

        sessions.folder_changed.connect(lambda _f: self._folder_changed())
        self.choice.changed.connect(self._form_changed)
        self.choice.refresh()
        self.refresh_models()
        self.refresh_jobs()

    # -- building: the form ---------------------------------------------------------------------------
    def _spin(self, lo, hi, value, *, step=1, decimals: int | None = None, name: str = "", tip: str = ""):
        if decimals is None:
            w = QSpinBox(self)
        else:
            w = QDoubleSpinBox(self)
            w.setDecimals(decimals)
        w.setRange(lo, hi)
        w.setSingleStep(step)
        w.setValue(value)
        w.setObjectName(f"dpo_{name}")
        w.setToolTip(tip)
        w.setMinimumWidth(60)  # not as wide as the largest value allowed: the form stays narrow
        w.valueChanged.connect(lambda _v: self._form_changed())
        return w

    @staticmethod
    def _grid(rows: list[tuple]) -> QGridLayout:
        """Label, field, label, field per row (a row of one pair spans both halves when its
        second half is None)."""
        g = QGridLayout()
        g.setHorizontalSpacing(6)
        g.setVerticalSpacing(4)
        for i, row in enumerate(rows):
            g.addWidget(QLabel(row[0]), i, 0)
            if len(row) == 2 or row[2] is None:
                g.addWidget(row[1], i, 1, 1, 3)
                continue
            g.addWidget(row[1], i, 1)
            g.addWidget(QLabel(row[2]), i, 2)
            g.addWidget(row[3], i, 3)
        g.setColumnStretch(1, 1)
        g.setColumnStretch(3, 1)
        return g

    def _build_form(self) -> QWidget:
        # -- pairs
        pairs = QGroupBox("Preference pairs", self)
        self.choice = SessionChoice(self.sessions, name="dpo", parent=pairs)
        c = self.choice  # its parts, as the panel's own
        self.use_selected, self.use_all, self.data_label = c.use_selected, c.use_all, c.data_label
        self.labels_box = registry_combo(pairs, "dpo_labels", LABELS)
        self.labels_box.currentIndexChanged.connect(lambda _i: self._form_changed())
        self.label_model = QComboBox(pairs)
        self.label_model.setObjectName("dpo_label_model")
        self.label_model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.label_model.setMinimumContentsLength(12)
        self.label_model.setToolTip("the pairwise reward model whose confident predictions label the pairs (implicit, "
                                    "agree, fill; train one in the Reward models tab); use one trained on other "
                                    "participants")
        self.label_model.currentIndexChanged.connect(lambda _i: self._form_changed())
        self.min_conf = self._spin(0.5, 1.0, 0.7, step=0.05, decimals=2, name="min_confidence",
                                   tip="keep a reward model's label only when max(p, 1 - p) reaches this")
        self.quality = QCheckBox("Leave out participants with poor gaze data", pairs)
        self.quality.setObjectName("dpo_quality")
        self.quality.setChecked(True)
        self.quality.setToolTip("participants whose own gaze data fails the quality rule give no pairs")
        self.quality.toggled.connect(lambda _on: self._form_changed())
        self.preview_btn = push_button(pairs, "Preview pairs", "dpo_preview", self.preview)
        self.preview_label = QLabel("", pairs)
        self.preview_label.setObjectName("dpo_preview_label")
        self.preview_label.setWordWrap(True)
        self.preview_label.setTextFormat(Qt.TextFormat.RichText)
        self.preview_label.setToolTip("<br>".join(f"<b>{html.escape(k)}</b>: {html.escape(v)}"
                                                  for k, v in REASONS.items()))
        pform = QFormLayout()
        pform.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        pform.setVerticalSpacing(4)
        pform.addRow("Labels", self.labels_box)
        pform.addRow("Reward model", self.label_model)
        pform.addRow("Min. confidence", self.min_conf)
        pbox = QVBoxLayout(pairs)
        pbox.setSpacing(4)
        pbox.addWidget(self.choice)
        pbox.addLayout(pform)
        pbox.addWidget(self.quality)
        prow = QHBoxLayout()
        prow.addWidget(self.preview_btn)
        prow.addStretch(1)
        pbox.addLayout(prow)
        pbox.addWidget(self.preview_label)

        # -- the job: name, base model, where it runs
        jobg = QGroupBox("Job", self)
        self.name_edit = QLineEdit(jobg)
        self.name_edit.setObjectName("dpo_name")
        self.name_edit.setToolTip("names the job's folder in the data folder's .dpo-jobs")
        self.name_edit.textChanged.connect(lambda _t: self._form_changed())
        self.base_edit = QLineEdit(jobg)
        self.base_edit.setObjectName("dpo_base_model")
        self.base_edit.textChanged.connect(lambda t: (self.base_edit.setToolTip(
            f"{t}\n\na .gguf file (converted once), a model folder, or a hub name (cluster runs)"), self._form_changed()))
        self.base_edit.setText(default_base_model())
        self.base_btn = QToolButton(jobg)
        self.base_btn.setText("\u2026")
        self.base_btn.setToolTip("choose the base model")
        menu = QMenu(self.base_btn)
        menu.addAction("A .gguf file\u2026", self._choose_base_file)
        menu.addAction("A model folder\u2026", self._choose_base_folder)
        self.base_btn.setMenu(menu)
        self.base_btn.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        base_row = QHBoxLayout()
        base_row.setSpacing(3)
        base_row.addWidget(self.base_edit, 1)
        base_row.addWidget(self.base_btn)
        self.run_box = registry_combo(jobg, "dpo_run", RUNS)
        self.run_box.currentIndexChanged.connect(lambda _i: self._form_changed())
        self.procs = self._spin(1, 256, 1, name="processes", tip="accelerate: processes (GPUs) to train on")
        jform = QFormLayout()
        jform.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        jform.setVerticalSpacing(4)
        jform.addRow("Name", self.name_edit)
        jform.addRow("Base model", base_row)
        jform.addRow("Run", self.run_box)
        jform.addRow("Processes", self.procs)
        # a Slurm run's settings, shown for it only
        self.slurm_box = QWidget(jobg)
        self.s_partition = self._line("", "slurm_partition", "the Slurm partition (empty: the cluster's default)")
        self.s_account = self._line("", "slurm_account", "the Slurm account (empty: none)")
        self.s_gpus = self._spin(0, 64, 1, name="slurm_gpus", tip="GPUs per job (--gres=gpu:N)")
        self.s_cpus = self._spin(1, 512, 8, name="slurm_cpus", tip="CPUs per task")
        self.s_mem = self._line("64G", "slurm_mem", "memory (--mem)")
        self.s_time = self._line("04:00:00", "slurm_time", "time limit (--time)")
        self.s_python = self._line("python", "slurm_python", "the Python on the cluster that has ifllm-lab[dpo]")
        self.s_setup = self._line("", "slurm_setup", "shell lines run before the job, e.g. module load cuda; "
                                                     "source ~/venvs/lab/bin/activate")
        self.s_submit = QComboBox(self.slurm_box)
        self.s_submit.addItems(["sbatch", "submitit"])
        self.s_submit.currentIndexChanged.connect(lambda _i: self._form_changed())
        sgrid = self._grid([("Partition", self.s_partition, "Account", self.s_account),
                            ("GPUs", self.s_gpus, "CPUs", self.s_cpus),
                            ("Memory", self.s_mem, "Time", self.s_time),
                            ("Python", self.s_python, None), ("Setup", self.s_setup, None),
                            ("Submit with", self.s_submit, None)])
        sgrid.setContentsMargins(0, 0, 0, 0)
        self.slurm_box.setLayout(sgrid)
        jbox = QVBoxLayout(jobg)
        jbox.setSpacing(4)
        jbox.addLayout(jform)
        jbox.addWidget(self.slurm_box)

        # -- training
        train = QGroupBox("Training", self)
        self.loss_box = registry_combo(train, "dpo_loss", LOSSES)
        self.loss_box.setCurrentIndex(self.loss_box.findData("robust+sft"))
        self.loss_box.currentIndexChanged.connect(lambda _i: self._form_changed())
        self.beta = self._spin(0.0, 100.0, 0.1, step=0.05, decimals=3, name="beta",
                               tip="\u03b2: how far the tuned model may move from the base (smaller: further)")
        self.smoothing = self._spin(0.0, 0.99, 0.1, step=0.05, decimals=2, name="label_smoothing",
                                    tip="robust losses: the share of labels taken as flipped")
        self.sft_weight = self._spin(0.0, 100.0, 0.2, step=0.05, decimals=2, name="sft_weight",
                                     tip="robust+sft: the weight of the NLL of the chosen answers")
        self.lr_edit = self._line("5e-5", "learning_rate", "the optimiser's learning rate")
        self.epochs = self._spin(0.0, 1000.0, 1.0, step=0.5, decimals=2, name="epochs", tip="passes over the pairs")
        self.max_steps = self._spin(-1, 10_000_000, -1, name="max_steps",
                                    tip="optimiser steps to stop after (by epochs: the epochs decide)")
        self.max_steps.setSpecialValueText("by epochs")
        self.max_steps.setMinimumWidth(self.max_steps.fontMetrics().horizontalAdvance("by epochs") + 36)
        self.batch = self._spin(1, 4096, 2, name="batch_size", tip="pairs per device and step")
        self.accum = self._spin(1, 4096, 4, name="grad_accum", tip="gradient accumulation: batches per optimiser step")
        self.max_len = self._spin(16, 1_000_000, 1024, step=128, name="max_length",
                                  tip="tokens of prompt and answer kept")
        self.precision = QComboBox(train)
        self.precision.setObjectName("dpo_precision")
        self.precision.addItems(list(PRECISIONS))
        self.precision.currentIndexChanged.connect(lambda _i: self._form_changed())
        self.seed = self._spin(0, 2_147_483_647, 0, name="seed", tip="the random seed (data order, LoRA init)")
        self.save_steps = self._spin(1, 10_000_000, 50, name="save_steps", tip="a checkpoint every so many steps")
        tgrid = self._grid([("Loss", self.loss_box, None),
                            ("\u03b2", self.beta, "Smoothing", self.smoothing),
                            ("SFT weight", self.sft_weight, "Learn. rate", self.lr_edit),
                            ("Epochs", self.epochs, "Max steps", self.max_steps),
                            ("Batch", self.batch, "Accumulate", self.accum),
                            ("Max length", self.max_len, "Precision", self.precision),
                            ("Seed", self.seed, "Save every", self.save_steps)])
        self.lora_on = QCheckBox("LoRA adapter (off: tune the whole model)", train)
        self.lora_on.setObjectName("dpo_lora")
        self.lora_on.setChecked(True)
        self.lora_on.toggled.connect(lambda _on: self._form_changed())
        lora = Lora()
        self.lora_r = self._spin(1, 4096, lora.r, name="lora_r", tip="LoRA rank")
        self.lora_alpha = self._spin(1, 65536, lora.alpha, name="lora_alpha", tip="LoRA alpha (scale)")
        self.lora_dropout = self._spin(0.0, 0.99, lora.dropout, step=0.05, decimals=2, name="lora_dropout",
                                       tip="dropout on the LoRA layers")
        self.lora_targets = self._line(", ".join(lora.target_modules), "lora_targets",
                                       "the layers to adapt, by name, separated by commas")
        lgrid = self._grid([("Rank", self.lora_r, "Alpha", self.lora_alpha),
                            ("Dropout", self.lora_dropout, None), ("Layers", self.lora_targets, None)])
        tbox = QVBoxLayout(train)
        tbox.setSpacing(4)
        tbox.addLayout(tgrid)
        tbox.addWidget(self.lora_on)
        tbox.addLayout(lgrid)

        # -- evaluation
        evalg = QGroupBox("Evaluation", self)
        self.eval_prompts = self._spin(0, 100_000, 20, name="eval_prompts",
                                       tip="pairs kept out of training: their prompts are the evaluation's")
        self.eval_tokens = self._spin(1, 100_000, 192, step=32, name="eval_max_new_tokens",
                                      tip="the length limit of the evaluation's answers (tokens)")
        self.judge_box = QComboBox(evalg)
        self.judge_box.setObjectName("dpo_judge")
        self.judge_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.judge_box.setMinimumContentsLength(12)
        self.judge_box.setToolTip("a pairwise reward model on the text features that judges tuned against base "
                                  "answers (train one with the text feature set in the Reward models tab)")
        self.judge_box.currentIndexChanged.connect(lambda _i: self._form_changed())
        egrid = self._grid([("Held out", self.eval_prompts, "New tokens", self.eval_tokens),
                            ("Judge", self.judge_box, None)])
        QVBoxLayout(evalg).addLayout(egrid)

        inner = QWidget(self)
        col = QVBoxLayout(inner)
        col.setContentsMargins(0, 0, 4, 0)
        for g in (pairs, jobg, train, evalg):
            col.addWidget(g)
        col.addStretch(1)
        scroll = form_scroll(self, inner, name="dpo_form", sideways=True)
        self.form_scroll = scroll

        # -- launch: always in sight, under the form
        self.launch_msg = message_label(self, "dpo_launch_msg")
        self.launch_btn = push_button(self, "Launch", "dpo_launch", self.launch, default=True)
        self.extra_note = message_label(self, "dpo_extra_note", rich=True)
        self.extra_note.setStyleSheet(f"QLabel {{ color: {style.TEXT.name()}; background: #4a3b22; "
                                      f"border: 1px solid {style.WARN.name()}; border-radius: 4px; padding: 5px; }}")
        self.launch_stack = QStackedWidget(self)
        self.launch_stack.addWidget(self.launch_btn)
        self.launch_stack.addWidget(self.extra_note)

        left = QWidget(self)
        lbox = QVBoxLayout(left)
        lbox.setContentsMargins(0, 0, 0, 0)
        lbox.addWidget(_title("New job", left))
        lbox.addWidget(scroll, 1)
        lbox.addWidget(self.launch_msg)
        lbox.addWidget(self.launch_stack)
        # the form's own width to start with; on a small screen it may narrow (and scroll sideways)
        self._form_width = max(inner.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 6,
                               320)
        left.setMinimumWidth(240)
        self._new_name()
        return left

    def _line(self, text: str, name: str, tip: str) -> QLineEdit:
        w = QLineEdit(text, self)
        w.setObjectName(f"dpo_{name}")
        w.setToolTip(tip)
        w.textChanged.connect(lambda _t: self._form_changed())
        return w

    # -- building: the jobs, one job, the comparison ----------------------------------------------------
    def _build_jobs(self) -> QWidget:
        top = QWidget(self)
        self.jobs_label = QLabel("", top)
        self.jobs_label.setObjectName("dpo_jobs_label")
        self.jobs_label.setStyleSheet(f"color: {_DIM};")
        self.jobs_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # a long path: cut
        self.jobs_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        refresh = push_button(top, "Refresh", "dpo_refresh", self.refresh_jobs)
        head = QHBoxLayout()
        head.addWidget(_title("Jobs", top))
        head.addWidget(self.jobs_label, 1)
        head.addWidget(refresh)
        self.jobs_table = _table(["Job", "State", "Step", "Loss", "Margin", "Accuracy", "Win rate", "Started"])
        self.jobs_table.setObjectName("dpo_jobs")
        self.jobs_table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.jobs_table.horizontalHeaderItem(2).setToolTip("the last logged optimiser step, of all")
        self.jobs_table.horizontalHeaderItem(4).setToolTip("rewards/margins: chosen minus rejected reward")
        self.jobs_table.horizontalHeaderItem(5).setToolTip(
            "rewards/accuracies: share of the step's pairs whose chosen answer gets the higher reward")
        self.jobs_table.horizontalHeaderItem(6).setToolTip(
            "the evaluation: share of held-out prompts where the judge prefers the tuned model's answer")
        hh = self.jobs_table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.jobs_table.itemSelectionChanged.connect(self._selection_changed)
        tbox = QVBoxLayout(top)
        tbox.setContentsMargins(6, 0, 0, 0)
        tbox.addLayout(head)
        tbox.addWidget(self.jobs_table, 1)

        self.detail = QStackedWidget(self)
        self.empty = QLabel("", self)
        self.empty.setObjectName("dpo_empty")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet(f"color: {_DIM}; font-size: 14px;")
        self.job_page = self._build_job_page()
        self.compare_page = self._build_compare_page()
        for w in (self.empty, self.job_page, self.compare_page):
            self.detail.addWidget(w)

        split = QSplitter(Qt.Orientation.Vertical, self)
        split.setObjectName("dpo_right_splitter")
        split.addWidget(top)
        split.addWidget(self.detail)
        split.setStretchFactor(0, 0)  # the list as tall as its rows (up to 8), the job gets the rest
        split.setStretchFactor(1, 1)
        split.setCollapsible(1, False)
        split.setSizes([180, 600])
        split.splitterMoved.connect(lambda *_: setattr(self, "_list_sized", True))
        self._list_head = refresh.sizeHint().height() + tbox.spacing()
        self.right_splitter = split
        return split

    def _build_job_page(self) -> QWidget:
        page = QWidget(self)
        self.job_title = message_label(page, "dpo_job_title", rich=True)
        f = QFont(style.FONT_FAMILY)
        f.setPixelSize(15)
        self.job_title.setFont(f)
        self.cancel_btn = push_button(page, "Cancel", "dpo_cancel", self._cancel_clicked)
        self.resume_btn = push_button(page, "Resume", "dpo_resume", self.resume_selected)
        self.eval_btn = push_button(page, "Evaluate", "dpo_evaluate", self.evaluate_selected)
        self.open_btn = push_button(page, "Open folder", "dpo_open", self.open_selected)
        head = QHBoxLayout()
        head.addWidget(self.job_title, 1)
        for b in (self.cancel_btn, self.resume_btn, self.eval_btn, self.open_btn):
            head.addWidget(b)
        self.job_summary = QLabel("", page)
        self.job_summary.setObjectName("dpo_job_summary")
        self.job_summary.setWordWrap(True)
        self.job_summary.setStyleSheet(f"color: {_DIM};")
        self.job_summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar(page)
        self.progress.setObjectName("dpo_progress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setMinimumWidth(200)
        self.eta_label = QLabel("", page)
        self.eta_label.setObjectName("dpo_eta")
        self.eta_label.setWordWrap(True)
        prow = QHBoxLayout()
        prow.addWidget(self.progress, 1)
        prow.addWidget(self.eta_label, 2)
        self.job_message = message_label(page, "dpo_job_message")
        self.job_message.setMinimumWidth(10)

        self.job_tabs = QTabWidget(page)
        self.job_tabs.setObjectName("dpo_job_tabs")
        self.job_tabs.setDocumentMode(True)
        # curves
        curves = QWidget(page)
        self.smoothing_spin = QDoubleSpinBox(curves)
        self.smoothing_spin.setObjectName("dpo_smoothing")
        self.smoothing_spin.setRange(0.0, 0.99)
        self.smoothing_spin.setSingleStep(0.1)
        self.smoothing_spin.setDecimals(2)
        self.smoothing_spin.setValue(SMOOTHING)
        self.smoothing_spin.setToolTip("the weight of the moving average (0: the logged values only)")
        self.smoothing_spin.valueChanged.connect(lambda _v: self._redraw())
        note = QLabel("faint: as logged \u00b7 bold: moving average \u00b7 dashed: zero margin, chance", curves)
        note.setToolTip("the margin's dashed line is 0 (chosen and rejected equally rewarded); the accuracy's is "
                        "0.5 (chance)")
        note.setStyleSheet(f"color: {_DIM};")
        note.setWordWrap(True)
        crow = QHBoxLayout()
        crow.addWidget(QLabel("Smoothing", curves))
        crow.addWidget(self.smoothing_spin)
        crow.addWidget(note, 1)
        self.plots, plots_row = _curve_row(curves, "plot")
        cbox = QVBoxLayout(curves)
        cbox.setContentsMargins(0, 4, 0, 0)
        cbox.addLayout(crow)
        cbox.addLayout(plots_row, 1)
        self.job_tabs.addTab(curves, "Curves")
        # log
        logw = QWidget(page)
        self.log_which = QComboBox(logw)
        self.log_which.setObjectName("dpo_log_which")
        self.log_which.addItem("log.txt: the job's log", "log.txt")
        self.log_which.addItem("output.txt: the process's output (warnings, crashes)", "output.txt")
        self.log_which.currentIndexChanged.connect(lambda _i: self._show_log(force=True))
        self.log_view = QPlainTextEdit(logw)
        self.log_view.setObjectName("dpo_log")
        self.log_view.setReadOnly(True)
        self.log_view.setFont(_mono())
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.log_view.setPlaceholderText("Nothing logged yet.")
        lrow = QHBoxLayout()
        lrow.addWidget(self.log_which)
        lrow.addWidget(QLabel(f"(the last {LOG_TAIL_LINES} lines)", logw))
        lrow.addStretch(1)
        lbox = QVBoxLayout(logw)
        lbox.setContentsMargins(0, 4, 0, 0)
        lbox.addLayout(lrow)
        lbox.addWidget(self.log_view, 1)
        self.job_tabs.addTab(logw, "Log")
        # evaluation
        self.job_tabs.addTab(self._build_eval_page(page), "Evaluation")
        # run: the spec, the Slurm script, the accelerate command
        runw = QWidget(page)
        self.run_which = QComboBox(runw)
        self.run_which.setObjectName("dpo_run_which")
        self.run_which.addItem("job.toml: the job's spec", "spec")
        self.run_which.addItem("Slurm batch script", "slurm")
        self.run_which.addItem("accelerate launch command", "accelerate")
        self.run_which.currentIndexChanged.connect(lambda _i: self._show_run_text())
        self.copy_btn = push_button(runw, "Copy", "dpo_copy", self.copy_run_text)
        self.run_note = QLabel("", runw)
        self.run_note.setStyleSheet(f"color: {_DIM};")
        self.run_note.setWordWrap(True)
        self.run_text = QPlainTextEdit(runw)
        self.run_text.setObjectName("dpo_run_text")
        self.run_text.setReadOnly(True)
        self.run_text.setFont(_mono())
        self.run_text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        rrow = QHBoxLayout()
        rrow.addWidget(self.run_which)
        rrow.addWidget(self.copy_btn)
        rrow.addWidget(self.run_note, 1)
        rbox = QVBoxLayout(runw)
        rbox.setContentsMargins(0, 4, 0, 0)
        rbox.addLayout(rrow)
        rbox.addWidget(self.run_text, 1)
        self.job_tabs.addTab(runw, "Run")

        box = QVBoxLayout(page)
        box.setContentsMargins(6, 4, 0, 0)
        box.setSpacing(4)
        box.addLayout(head)
        box.addWidget(self.job_summary)
        box.addLayout(prow)
        box.addWidget(self.job_message)
        box.addWidget(self.job_tabs, 1)
        return page

    def _build_eval_page(self, parent) -> QWidget:
        w = QWidget(parent)
        self.eval_judge = QComboBox(w)
        self.eval_judge.setObjectName("dpo_eval_judge")
        self.eval_judge.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.eval_judge.setToolTip("the text reward model that compares the tuned and the base model's answers")
        self.eval_headline = message_label(w, "dpo_eval_headline", rich=True)
        jrow = QHBoxLayout()
        jrow.addWidget(QLabel("Judge", w))
        jrow.addWidget(self.eval_judge)
        jrow.addStretch(1)
        self.eval_stats = _table(["Text (mean)", "Base", "Tuned", "Change"])
        self.eval_stats.setObjectName("dpo_eval_stats")
        self.eval_stats.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        sh = self.eval_stats.horizontalHeader()
        sh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        sh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.eval_stats.setMinimumWidth(220)
        self.eval_answers = QTextBrowser(w)
        self.eval_answers.setObjectName("dpo_eval_answers")
        self.eval_answers.setOpenLinks(False)
        stats = QWidget(w)  # the table as tall as its rows, at the top
        sbox = QVBoxLayout(stats)
        sbox.setContentsMargins(0, 0, 0, 0)
        sbox.addWidget(self.eval_stats)
        sbox.addStretch(1)
        split = QSplitter(Qt.Orientation.Horizontal, w)
        split.addWidget(stats)
        split.addWidget(self.eval_answers)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([250, 900])
        self.eval_split = split
        box = QVBoxLayout(w)
        box.setContentsMargins(0, 4, 0, 0)
        box.addLayout(jrow)
        box.addWidget(self.eval_headline)
        box.addWidget(split, 1)
        return w

    def _build_compare_page(self) -> QWidget:
        page = QWidget(self)
        self.compare_title = QLabel("", page)
        self.compare_title.setObjectName("dpo_compare_title")
        self.compare_title.setWordWrap(True)
        self.compare_title.setTextFormat(Qt.TextFormat.RichText)
        self.compare_plots, row = _curve_row(page, "compare")
        self.compare_legend = self.compare_plots["loss"].plotItem.addLegend(
            offset=(-6, 6), labelTextColor=style.TEXT, brush=pg.mkBrush(38, 38, 38, 210),
            pen=pg.mkPen(style.PANEL_EDGE), labelTextSize="9pt")
        self.compare_table = _table(["Job", "State", "Steps", "Pairs", "Loss", "Margin", "Accuracy", "Win rate",
                                     "Differs in"])
        self.compare_table.setObjectName("dpo_compare_table")
        for col, what in ((4, "loss"), (5, "reward margin"), (6, "reward accuracy")):
            self.compare_table.horizontalHeaderItem(col).setToolTip(f"{what}: mean of the last {FINAL_STEPS} "
                                                                     "logged steps")
        ch = self.compare_table.horizontalHeader()
        ch.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        ch.setStretchLastSection(True)
        box = QVBoxLayout(page)
        box.setContentsMargins(6, 4, 0, 0)
        box.addWidget(self.compare_title)
        box.addLayout(row, 1)
        box.addWidget(self.compare_table)
        return page

    # -- the data folder and its sessions ------------------------------------------------------------
    @property
    def jobs_root(self) -> str:
        return os.path.join(self.sessions.folder, JOBS_FOLDER) if self.sessions.folder else ""

    @property
    def models_folder(self) -> str:
        return os.path.join(self.sessions.folder, MODELS_FOLDER) if self.sessions.folder else ""

    @property
    def sources(self) -> list[str]:
        """The paths of the sessions the pairs are made from."""
        return self.choice.sources

    def _folder_changed(self) -> None:
        self.preview_report = None
        self._preview_key = None
        self.preview_label.clear()
        self.choice.refresh()
        self.refresh_models()
        self.refresh_jobs()

    def refresh_models(self) -> None:
        """List the data folder's reward models: pairwise ones label pairs, pairwise ones on
        the text features (without embeddings) judge the evaluation."""
        from ...reward.store import list_models

        folder = self.models_folder
        models = [(p, i) for p, i in (list_models(folder) if folder else [])
                  if isinstance(i, dict) and i.get("task") == "pairwise"]
        models.reverse()  # the newest first (names start with the time)
        judges = [(p, i) for p, i in models if i.get("feature_set") == "text" and not i.get("embedding")]
        # for labels, models that see the implicit signals come first
        labellers = sorted(models, key=lambda m: m[1].get("feature_set") == "text")

        def fill(box: QComboBox, items, none: str) -> None:
            keep = box.currentData()
            box.blockSignals(True)
            box.clear()
            box.addItem(none, "")
            for path, info in items:
                box.addItem(model_label(info, path), path)
                box.setItemData(box.count() - 1, f"{info.get('kind')} on the {info.get('feature_set')} features\n"
                                                 f"{path}", Qt.ItemDataRole.ToolTipRole)
            i = box.findData(keep) if keep else -1
            box.setCurrentIndex(i if i >= 0 else (1 if items and box is not self.eval_judge else 0))
            box.blockSignals(False)

        fill(self.label_model, labellers, "(none)")
        fill(self.judge_box, judges, "(none: text statistics only)")
        fill(self.eval_judge, judges, "(none: text statistics only)")
        self._form_changed()

    # -- the form --------------------------------------------------------------------------------------
    def _new_name(self) -> None:
        base = f"dpo-{time.strftime('%Y%m%d-%H%M')}"
        name, i = base, 1
        root = self.jobs_root if hasattr(self, "sessions") and self.sessions.folder else ""
        while root and os.path.exists(os.path.join(root, name)):
            i += 1
            name = f"{base}-{i}"
        self.name_edit.setText(name)

    def _choose_base_file(self) -> None:
        start = os.path.dirname(self.base_edit.text()) or os.path.expanduser("~")
        path, _ = QFileDialog.getOpenFileName(self, "Base model: a GGUF file", start, "GGUF models (*.gguf)")
        if path:
            self.base_edit.setText(path)

    def _choose_base_folder(self) -> None:
        start = self.base_edit.text() if os.path.isdir(self.base_edit.text()) else os.path.expanduser("~")
        path = QFileDialog.getExistingDirectory(self, "Base model: a model folder (with config.json)", start)
        if path:
            self.base_edit.setText(path)

    def pairs_key(self) -> tuple:
        """What the pairs depend on: a preview of other settings is out of date."""
        labels = self.labels_box.currentData()
        if labels == "explicit":
            return tuple(self.sources), labels, "", None, not self.quality.isChecked()
        return (tuple(self.sources), labels, self.label_model.currentData() or "", round(self.min_conf.value(), 4),
                not self.quality.isChecked())

    def spec(self) -> JobSpec:
        """The spec the form stands for (its folder: ``<data>/.dpo-jobs/<name>``). Raises
        :class:`SpecError` for a name or a number that cannot be read."""
        if not self.sessions.folder:
            raise SpecError("no data folder: open one (File, Open data folder) to keep the jobs in")
        name = self.name_edit.text().strip()
        if not _NAME.match(name):
            raise SpecError(f"name = {name!r}: it names the job's folder: use letters, digits, '.', '_' and '-' "
                            "(a letter or digit first)")
        lr_text = self.lr_edit.text().strip()
        try:
            lr = float(lr_text)
        except ValueError:
            raise SpecError(f"learning_rate = {lr_text!r}: must be a number above 0") from None
        out = os.path.join(self.jobs_root, name)
        return JobSpec(
            base_model=self.base_edit.text().strip(), pairs=os.path.join(out, PAIRS_FILE), output_dir=out, name=name,
            loss=self.loss_box.currentData(), beta=self.beta.value(), label_smoothing=self.smoothing.value(),
            sft_weight=self.sft_weight.value(), epochs=self.epochs.value(), max_steps=self.max_steps.value(),
            batch_size=self.batch.value(), grad_accum=self.accum.value(), learning_rate=lr,
            precision=self.precision.currentText(), max_length=self.max_len.value(), seed=self.seed.value(),
            save_steps=self.save_steps.value(), run=self.run_box.currentData(),
            eval_prompts=self.eval_prompts.value(), eval_max_new_tokens=self.eval_tokens.value(),
            reward_model=self.judge_box.currentData() or "",
            lora=Lora(enabled=self.lora_on.isChecked(), r=self.lora_r.value(), alpha=self.lora_alpha.value(),
                      dropout=self.lora_dropout.value(),
                      target_modules=[t for t in re.split(r"[,\s]+", self.lora_targets.text()) if t]),
            accelerate=Accelerate(num_processes=self.procs.value()),
            slurm=Slurm(partition=self.s_partition.text().strip(), gpus=self.s_gpus.value(), cpus=self.s_cpus.value(),
                        mem=self.s_mem.text().strip(), time=self.s_time.text().strip(),
                        account=self.s_account.text().strip(), python=self.s_python.text().strip() or "python",
                        setup=self.s_setup.text().strip(), submit=self.s_submit.currentText()))

    def check_spec(self, spec: JobSpec) -> None:
        """Every check that can be made before the pairs are written (SpecError naming the
        key): the values, the base model here for a local run, a free job name."""
        spec.check(local_files=False)
        if spec.run != "slurm":
            try:
                spec.check(local_files=True)
            except SpecError as exc:
                if not str(exc).startswith("pairs = "):  # written at launch
                    raise
        if os.path.exists(spec.output_dir):
            raise SpecError(f"name = {spec.name!r}: {spec.output_dir} exists already: choose another name")

    def _missing_for(self, run: str) -> list[str]:
        """The extra's modules a run of this kind needs here and does not find."""
        return list(self.missing) if run in ("local", "accelerate") else []

    def set_missing(self, missing: list[str]) -> None:
        """Take these modules of the ``dpo`` extra as missing (after an install: [])."""
        self.missing = list(missing)
        self._form_changed()
        self._show_selection()

    @property
    def busy(self) -> bool:
        return any(r is not None and r.running for r in (self.preview_runner, self.launch_runner))

    def _form_changed(self) -> None:
        if not hasattr(self, "launch_btn"):
            return  # still being built
        labels = self.labels_box.currentData()
        uses_model = labels != "explicit"
        self.label_model.setEnabled(uses_model)
        self.min_conf.setEnabled(uses_model)
        loss = self.loss_box.currentData()
        self.smoothing.setEnabled(loss != "sigmoid")
        self.sft_weight.setEnabled(loss == "robust+sft")
        for w in (self.lora_r, self.lora_alpha, self.lora_dropout, self.lora_targets):
            w.setEnabled(self.lora_on.isChecked())
        run = self.run_box.currentData()
        self.slurm_box.setVisible(run == "slurm")
        self.procs.setEnabled(run != "local")
        # the preview
        previewing = self.preview_runner is not None and self.preview_runner.running
        can_preview = bool(self.sources) and (not uses_model or bool(self.label_model.currentData()))
        self.preview_btn.setEnabled(can_preview and not self.busy)
        self.preview_btn.setText("Making pairs\u2026" if previewing else "Preview pairs")
        self.preview_btn.setToolTip("" if can_preview else (
            "choose sessions first" if not self.sources else f"{labels} labels need a pairwise reward model"))
        stale = self.preview_report is not None and self._preview_key != self.pairs_key()
        self.preview_label.setEnabled(not stale)
        self._update_launch()

    def _say(self, text: str, *, bad: bool = False, good: bool = False) -> None:
        show_message(self.launch_msg, text, bad=bad, good=good)
        self.launch_msg.setVisible(bool(text))

    def _not_ready(self) -> str:
        """Why Launch cannot go on with the pairs ("" when it can)."""
        if self.preview_report is None:
            return "Preview the pairs first: Launch writes them into the job's folder."
        if self._preview_key != self.pairs_key():
            return "The pairs settings changed since the preview: preview them again."
        if not self.preview_report.pairs:
            return "The preview found no pairs to train on."
        return ""

    def _update_launch(self) -> None:
        run = self.run_box.currentData()
        missing = self._missing_for(run)
        self.launch_stack.setCurrentWidget(self.extra_note if missing else self.launch_btn)
        if missing:
            self.extra_note.setText(self._extra_text(missing))
        if self.launch_runner is not None and self.launch_runner.running:
            self.launch_btn.setEnabled(False)
            self.launch_btn.setText("Launching\u2026")
            return
        self.launch_btn.setText("Submit to Slurm" if run == "slurm" else "Launch")
        try:
            spec = self.spec()
            self.check_spec(spec)
        except SpecError as exc:
            self._say(str(exc), bad=True)
            self.launch_btn.setEnabled(False)
            return
        reason = self._not_ready()
        self.launch_btn.setEnabled(not reason and not self.busy)
        if reason:
            self._say(reason)
        elif missing:
            self._say("")
        elif run == "slurm":
            self._say(f"Submits the job with {spec.slurm.submit}: the cluster's {spec.slurm.python} needs "
                      f"ifllm-lab[dpo] and must see the job's folder, {JOBS_FOLDER}/{spec.name}.")
        else:
            self._say(f"Starts the job in {JOBS_FOLDER}/{spec.name}" + (
                " through accelerate launch." if run == "accelerate" else
                ", in a process of its own: it goes on when the workbench closes."))
        self.launch_msg.setToolTip(spec.output_dir)

    def _extra_text(self, missing: list[str]) -> str:
        py = html.escape(sys.executable)
        return (f"<b>Training here needs the dpo extra</b> (missing: {html.escape(', '.join(missing))}). Install it "
                f"into the Python that runs IFLLM Lab:<br><code>{py} -m {html.escape(INSTALL)}</code><br>"
                "then restart the workbench. Or set <b>Run</b> to <i>slurm</i> and give the cluster's Python that "
                "has it (<b>Python</b>).")

    # -- preview and launch ------------------------------------------------------------------------------
    def preview(self):
        """Make the pairs of the chosen sessions as a job; returns its runner (None when there
        is nothing to make them from)."""
        if self.busy:
            return None
        self.choice.refresh()
        if not self.preview_btn.isEnabled():
            self.preview_label.setText(f"<span style='color:{style.BAD.name()}'>"
                                       f"{html.escape(self.preview_btn.toolTip())}</span>")
            return None
        key = self.pairs_key()
        labels = self.labels_box.currentData()
        model = self.label_model.currentData() or None if labels != "explicit" else None
        self.preview_label.setText(f"<span style='color:{_DIM}'>Making the pairs of {len(self.sources)} "
                                   "sessions\u2026 (progress and Cancel in the status line)</span>")
        runner = self._run_job(
            Job(_pairs_job, list(self.sources), labels=labels, model_folder=model, min_confidence=self.min_conf.value(),
                all_participants=not self.quality.isChecked(), cache_dir=self.cache_dir, name="dpo-pairs"),
            "Making preference pairs", on_done=lambda rep, k=key: self._previewed(rep, k),
            on_failed=lambda msg: self.preview_label.setText(
                f"<span style='color:{style.BAD.name()}'>No pairs: {html.escape(msg)}</span>"))
        runner.cancelled.connect(lambda _p: self.preview_label.setText(
            f"<span style='color:{_DIM}'>The preview was cancelled.</span>"))
        runner.ended.connect(lambda _s: self._form_changed())
        self.preview_runner = runner
        self._form_changed()
        return runner

    def _previewed(self, report, key) -> None:
        self.preview_report = report
        self._preview_key = key
        self.preview_label.setText(self.preview_html(report.summary()))
        self._form_changed()

    @staticmethod
    def preview_html(s: dict) -> str:
        """The counts of a :meth:`PairsReport.summary` for the form."""
        n = s["pairs"]
        colour = style.TEXT.name() if n else style.BAD.name()
        lines = [f"<span style='color:{colour}'><b>{n} pair{'s' if n != 1 else ''}</b></span> from "
                 f"{s['participants']} participant{'s' if s['participants'] != 1 else ''} ({s['sessions']} sessions, "
                 f"{s['pairwise_questions']} pairwise questions)"]
        lines.append("by label: " + " \u00b7 ".join(f"{html.escape(src)} {s['by_source'].get(src, 0)}"
                                                    for src in SOURCES))
        dropped = s.get("dropped") or {}
        if dropped:
            lines.append(f"<span style='color:{_DIM}'>left out: " + " \u00b7 ".join(
                f"{html.escape(why)} {k}" for why, k in sorted(dropped.items(), key=lambda x: -x[1])) + "</span>")
        if s.get("dropped_participants"):
            lines.append(f"<span style='color:{_DIM}'>participants left out (gaze quality): "
                         + html.escape(", ".join(s["dropped_participants"])) + "</span>")
        if s.get("skipped"):
            lines.append(f"<span style='color:{style.WARN.name()}'>{len(s['skipped'])} files could not be read"
                         "</span>")
        return "<br>".join(lines)

    def launch(self):
        """Write the previewed pairs into a new job folder and start the job there, as a job;
        returns its runner. None when the form or the pairs are not ready: why is shown
        under the form and nothing is written."""
        if self.busy:
            return None
        try:
            spec = self.spec()
            self.check_spec(spec)
        except SpecError as exc:
            self._say(str(exc), bad=True)
            return None
        missing = self._missing_for(spec.run)
        if missing:
            self._say(f"The dpo extra is missing here ({', '.join(missing)}): {INSTALL}", bad=True)
            return None
        reason = self._not_ready()
        if reason:
            self._say(reason, bad=True)
            return None
        pairs = list(self.preview_report.pairs)
        runner = self._run_job(Job(_launch_job, spec, pairs, name="dpo-launch"), f"Launching {spec.name}",
                               on_done=lambda folder, n=spec.name: self._launched(folder, n),
                               on_failed=self._launch_failed)
        runner.ended.connect(lambda _s: self._form_changed())
        self.launch_runner = runner
        self._form_changed()
        self._say(f"Launching {spec.name}\u2026")
        return runner

    def _launched(self, folder: str, name: str) -> None:
        self._new_name()
        self.refresh_jobs()
        self.select_jobs([folder])
        self._form_changed()
        self._say(f"Launched {name}: its pairs, spec and log are in {folder}.", good=True)
        self.launched.emit(folder)

    def _launch_failed(self, message: str) -> None:
        self._form_changed()
        self._say(message, bad=True)
        self.refresh_jobs()  # a Slurm script that could not be submitted stays, with its folder

    # -- the jobs -----------------------------------------------------------------------------------------
    def _folder_names(self) -> set[str]:
        root = self.jobs_root
        try:
            return {n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, dpo_job.SPEC_FILE))}
        except OSError:
            return set()

    def refresh_jobs(self) -> None:
        """Read every job folder of ``<data>/.dpo-jobs`` again (the newest first)."""
        from ...dpo.job import list_jobs

        keep = self.selected_folders()
        root = self.jobs_root
        infos = list_jobs(root) if root else []
        jobs = []
        for info in infos:
            j = self._by_folder.get(info.folder) or _Job(info)
            j.info = info
            j.read_eval()
            jobs.append(j)
        self.jobs = jobs
        self._by_folder = {j.folder: j for j in jobs}
        self._names = self._folder_names()
        t = self.jobs_table
        t.blockSignals(True)
        t.setRowCount(len(jobs))
        for i, j in enumerate(jobs):
            self._fill_row(i, j)
        t.blockSignals(False)
        self.select_jobs([f for f in keep if f in self._by_folder], quiet=True)
        running = sum(j.state in _LIVE for j in jobs)
        if not root:
            self.jobs_label.setText("no data folder")
        elif jobs:
            self.jobs_label.setText(f"{len(jobs)} in the data folder's {JOBS_FOLDER}"
                                    + (f", {running} running" if running else "")
                                    + " \u00b7 Ctrl-click several to compare them")
        else:
            self.jobs_label.setText(f"none yet in the data folder's {JOBS_FOLDER}")
        self.jobs_label.setToolTip(root)
        self._fit_list()
        self._update_timer()
        self._show_selection(force=True)

    def _fit_list(self) -> None:
        """The jobs list as tall as its rows (3 to 8), unless its height was set by hand."""
        if self._list_sized:
            return
        t = self.jobs_table
        rows = min(max(t.rowCount(), 3), 8)
        want = (self._list_head + t.horizontalHeader().sizeHint().height()
                + rows * t.verticalHeader().defaultSectionSize() + 2 * t.frameWidth() + 4)
        total = sum(self.right_splitter.sizes()) or 800
        self.right_splitter.setSizes([want, max(total - want, 300)])

    def _fill_row(self, i: int, j: _Job) -> None:
        t = self.jobs_table
        info, last = j.info, j.info.last or {}
        st = info.status
        state = j.state
        text = state + (" \u00b7 evaluating" if j.evaluating else "")
        tip = info.problem or (getattr(st, "error", None) or getattr(st, "message", "") or "")
        if state == "new" and info.spec is not None and info.spec.run != "local":
            tip = tip or "no status yet: a cluster job writes it when it starts"
        step, total = last.get("step"), last.get("max_steps")
        stale = read_stale(j.folder)
        why = stale_text(stale) if stale else ""
        cells = [
            _item(j.name + ("  (stale)" if stale else ""), tip=j.folder + (f"\n{why}" if why else ""), bold=True,
                  colour=style.WARN if stale else None),
            _item(text, tip=tip, colour=_STATE_COLOURS.get(state, style.TEXT)),
            _item(f"{step} / {total}" if _ok(step) and _ok(total) else (str(step) if _ok(step) else "\u2013"),
                  right=True),
            _item(_num(last.get("loss"), 4), right=True),
            _item(_num(last.get("rewards/margins"), 3), right=True),
            _item(_pct(last.get("rewards/accuracies"), 0), right=True),
            _item(_pct(j.eval.get("win_rate"), 0) if j.eval and _ok(j.eval.get("win_rate")) else
                  ("no judge" if j.eval else ("evaluating\u2026" if j.evaluating else "\u2013")),
                  right=True, tip=f"{win_rate_text(j.eval)} on {j.eval.get('prompts')} held-out prompts"
                  if j.eval else ""),
            _item(_local_time(getattr(st, "started", None)), colour=style.TEXT_DIM),
        ]
        for c, it in enumerate(cells):
            it.setData(Qt.ItemDataRole.UserRole, j.folder)
            t.setItem(i, c, it)

    def _update_timer(self) -> None:
        if any(j.live for j in self.jobs) or self._cancelling or self._starting:
            if not self.timer.isActive():
                self.timer.start()
        else:
            self.timer.stop()

    def _tick(self) -> None:
        """Read the folders of the jobs that still change (while the tab is shown)."""
        if not self.isVisible():
            return
        if self._folder_names() != self._names:
            self.refresh_jobs()
            return
        changed = set()
        for i, j in enumerate(self.jobs):
            if j.live or j.folder in self._cancelling or j.folder in self._starting:
                j.reread()
                self._fill_row(i, j)
                changed.add(j.folder)
        self._update_timer()
        if changed & set(self.selected_folders()):
            self._show_selection()

    def _reread(self, folder: str) -> None:
        j = self._by_folder.get(folder)
        if j is None:
            return
        j.reread()
        self._fill_row(self.jobs.index(j), j)
        self._update_timer()
        if folder in self.selected_folders():
            self._show_selection(force=True)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt name
        super().showEvent(event)
        self.refresh_models()
        self.refresh_jobs()

    # -- selection ---------------------------------------------------------------------------------------
    def selected_folders(self) -> list[str]:
        sm = self.jobs_table.selectionModel()
        rows = sorted({ix.row() for ix in sm.selectedRows()}) if sm is not None else []
        out = []
        for r in rows:
            it = self.jobs_table.item(r, 0)
            if it is not None:
                out.append(it.data(Qt.ItemDataRole.UserRole))
        return out

    def selected_jobs(self) -> list[_Job]:
        return [self._by_folder[f] for f in self.selected_folders() if f in self._by_folder]

    def current_job(self) -> _Job | None:
        sel = self.selected_jobs()
        return sel[0] if len(sel) == 1 else None

    def select_jobs(self, folders: list[str], *, quiet: bool = False) -> bool:
        """Select the rows of these job folders (several: the comparison)."""
        want = {os.path.abspath(f) for f in folders}
        t = self.jobs_table
        sel = QItemSelection()
        for r in range(t.rowCount()):
            it = t.item(r, 0)
            if it is not None and it.data(Qt.ItemDataRole.UserRole) in want:
                sel.select(t.model().index(r, 0), t.model().index(r, t.columnCount() - 1))
        if quiet:
            t.blockSignals(True)
        t.selectionModel().select(sel, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                  | QItemSelectionModel.SelectionFlag.Rows)
        if quiet:
            t.blockSignals(False)
            t.viewport().update()
        else:
            self._show_selection(force=True)
        return not sel.isEmpty()

    def _selection_changed(self) -> None:
        self._show_selection(force=True)

    def _show_selection(self, force: bool = False) -> None:
        sel = self.selected_jobs()
        if not sel:
            self._shown = None
            root = self.jobs_root
            self.empty.setText(
                "Select a job to follow it: its curves, progress, log and evaluation.\n"
                "Select several (Ctrl-click) to compare them." if self.jobs else
                (f"No DPO jobs yet in {root}.\n\nPreview the pairs of the sessions with the form on the left, then "
                 "Launch: the job runs in a process of its own and shows here." if root else "Open a data folder."))
            self.detail.setCurrentWidget(self.empty)
        elif len(sel) == 1:
            self.show_job(sel[0], new=force and self._shown != sel[0].folder)
        else:
            self._shown = None
            self.show_compare(sel)

    # -- one job -----------------------------------------------------------------------------------------
    def show_job(self, j: _Job, *, new: bool = False) -> None:
        self.detail.setCurrentWidget(self.job_page)
        first = self._shown != j.folder
        self._shown = j.folder
        info, spec = j.info, j.info.spec
        st = info.status
        state = j.state
        colour = _STATE_COLOURS.get(state, style.TEXT).name()
        started = _local_time(getattr(st, "started", None))
        self.job_title.setText(f"<b>{html.escape(j.name)}</b> &nbsp;<span style='color:{colour}'>{state}</span>")
        self.job_title.setToolTip(j.folder)
        self.job_summary.setText((spec_summary(spec, j.pairs()) if spec is not None else info.problem)
                                 + (f" \u00b7 started {started}" if started else ""))
        metrics = j.load_metrics()
        last = metrics[-1] if metrics else (info.last or {})
        self._show_progress(j, last)
        # what the job says (its message, or why it stopped)
        error = info.problem or getattr(st, "error", None)
        if error and state != "done":
            self.job_message.setStyleSheet(f"color: {(style.WARN if state == 'cancelled' else style.BAD).name()};")
            self.job_message.setText(error)
        else:
            self.job_message.setStyleSheet(f"color: {_DIM};")
            msg = getattr(st, "message", "") or ""
            if (state in _LIVE and metrics) or state == "done":
                msg = ""  # the step and its numbers: the progress bar and the list say them
            if state == "new":
                msg = ("Not started: a cluster job writes its status when it starts there." if spec is not None
                       and spec.run != "local" else "Not started.")
            self.job_message.setText(msg)
        self.job_message.setVisible(bool(self.job_message.text()))
        self._update_buttons(j)
        self._draw_job(j)
        self._show_log(force=first)
        self._show_eval(j, first=first)
        if first:
            self._show_run(j)
        if new:
            self.job_tabs.setCurrentIndex(0)

    def _show_progress(self, j: _Job, last: dict) -> None:
        bar, state = self.progress, j.state
        st = j.info.status
        step, total = last.get("step"), last.get("max_steps")
        have_steps = _ok(step) and _ok(total) and total > 0
        fraction = (step / total) if have_steps else getattr(st, "fraction", None)
        if state == "done":
            fraction = 1.0
        if fraction is None or not _ok(fraction):
            if state in _LIVE:
                bar.setRange(0, 0)  # busy
                bar.setFormat(getattr(st, "message", "") or state)
            else:
                bar.setRange(0, 1000)
                bar.setValue(0)
                bar.setFormat(state)
        else:
            bar.setRange(0, 1000)
            bar.setValue(int(round(1000 * min(max(fraction, 0.0), 1.0))))
            pct = f"{100 * fraction:.0f} %"
            bar.setFormat(f"step {step} of {total} ({pct})" if have_steps else pct)
        elapsed = last.get("elapsed_s")
        per_step = (elapsed / step) if _ok(elapsed) and _ok(step) and step > 0 else None
        bits = []
        if state in _LIVE:
            left = seconds_left(last)
            if left is not None:
                bits.append(f"about {duration(left)} left")
            if _ok(elapsed):
                bits.append(f"{duration(elapsed)} elapsed")
            if per_step is not None:
                bits.append(f"{per_step:.1f} s per step")
        elif have_steps and _ok(elapsed):
            bits.append(f"{step} steps in {duration(elapsed)}" + (f" ({per_step:.1f} s per step)" if per_step else ""))
        self.eta_label.setText(" \u00b7 ".join(bits))
        self.eta_label.setToolTip(f"{last['tokens_per_s']:.0f} tokens/s at the last step"
                                  if _ok(last.get("tokens_per_s")) else "")

    def _update_buttons(self, j: _Job) -> None:
        state, spec = j.state, j.info.spec
        busy = j.folder in self._starting
        cancelling = j.folder in self._cancelling
        self.cancel_btn.setEnabled(state in _LIVE and not cancelling)
        self.cancel_btn.setText("Cancelling\u2026" if cancelling else "Cancel")
        self.cancel_btn.setToolTip("stop the job at the end of its step, with a checkpoint (Resume goes on from it)")
        missing = self._missing_for(spec.run) if spec is not None else []
        can_resume = state in ("cancelled", "failed") and spec is not None and not busy
        self.resume_btn.setEnabled(can_resume and not missing)
        self.resume_btn.setToolTip(
            f"needs the dpo extra here: {INSTALL}" if can_resume and missing else
            "go on from the last checkpoint" if state in ("cancelled", "failed") else
            "a cancelled or failed job can be resumed")
        launch_eval = getattr(dpo_job, "launch_eval", None)
        has_model = os.path.isdir(os.path.join(j.folder, "model"))
        why = ("evaluation not available in this version" if launch_eval is None else
               "the job must finish first" if state != "done" else
               "the job has no tuned model (model/)" if not has_model else
               "the evaluation is running" if j.evaluating else
               f"needs the dpo extra here: {INSTALL}" if self.missing else "")
        self.eval_btn.setEnabled(not why and not busy)
        self.eval_btn.setToolTip(why or "answer the held-out prompts with the base and the tuned model and let the "
                                        "judge compare them")
        self.eval_btn.setText("Evaluate again" if j.eval and not why else "Evaluate")

    def _draw_job(self, j: _Job) -> None:
        rows = j.metrics
        steps = np.array([float(r.get("step", i + 1)) for i, r in enumerate(rows)])
        total = next((r.get("max_steps") for r in reversed(rows) if _ok(r.get("max_steps"))), None)
        w = self.smoothing_spin.value()
        for key, _label, colour in CURVES:
            ys = np.array([float(r[key]) if _ok(r.get(key)) else np.nan for r in rows])
            _draw_curves(self.plots[key], key, [(j.name, colour, steps, ys)], w, x_max=total)

    def _redraw(self) -> None:
        sel = self.selected_jobs()
        if len(sel) == 1:
            self._draw_job(sel[0])
        elif sel:
            self.show_compare(sel)

    def _show_log(self, force: bool = False) -> None:
        j = self.current_job()
        if j is None:
            return
        which = self.log_which.currentData()
        path = os.path.join(j.folder, which)
        key = (j.folder, which, _stat_key(path))
        if key == self._log_key and not force:
            return
        self._log_key = key
        bar = self.log_view.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        self.log_view.setPlainText("\n".join(tail_lines(path)))
        if at_end or force:
            bar.setValue(bar.maximum())

    def _show_run(self, j: _Job) -> None:
        spec = j.info.spec
        kind = {"slurm": "slurm", "accelerate": "accelerate"}.get(spec.run if spec else "", "spec")
        self.run_which.blockSignals(True)
        self.run_which.setCurrentIndex(self.run_which.findData(kind))
        self.run_which.blockSignals(False)
        self._show_run_text()

    def run_page_text(self) -> str:
        """What the Run page shows for the selected job: its job.toml, the Slurm script or the
        accelerate command of its spec."""
        j = self.current_job()
        if j is None:
            return ""
        spec = j.info.spec
        which = self.run_which.currentData()
        if which == "spec" or spec is None:
            try:
                with open(os.path.join(j.folder, dpo_job.SPEC_FILE), encoding="utf-8") as fh:
                    return fh.read()
            except OSError as exc:
                return f"{exc.strerror or exc}"
        if which == "slurm":
            return dpo_job.slurm_script(spec, j.folder)
        return " ".join(shlex.quote(c) for c in dpo_job.accelerate_command(spec, j.folder))

    def _show_run_text(self) -> None:
        j = self.current_job()
        spec = j.info.spec if j is not None else None
        self.run_text.setPlainText(self.run_page_text() if j is not None else "")
        which = self.run_which.currentData()
        if spec is None:
            note = ""
        elif which == "slurm":
            note = ("the script this job was submitted with (slurm.sh in its folder)" if spec.run == "slurm" else
                    "to run this spec on a Slurm cluster: sbatch it there (the cluster must see the job folder)")
        elif which == "accelerate":
            note = ("the command this job runs with" if spec.run == "accelerate" else
                    "to run this spec on several GPUs: run it in the job folder")
        else:
            note = "the spec as run; a resumed or cluster run reads it from the job folder"
        self.run_note.setText(note)

    def copy_run_text(self) -> None:
        QGuiApplication.clipboard().setText(self.run_page_text())

    # -- the evaluation ------------------------------------------------------------------------------------
    def _show_eval(self, j: _Job, *, first: bool) -> None:
        spec = j.info.spec
        if first and spec is not None:
            i = self.eval_judge.findData(spec.reward_model) if spec.reward_model else -1
            self.eval_judge.setCurrentIndex(i if i >= 0 else (1 if self.eval_judge.count() > 1 else 0))
        ev, est = j.eval, j.eval_status
        if getattr(dpo_job, "launch_eval", None) is None:
            self._eval_message("evaluation not available in this version of IFLLM Lab")
            return
        if j.evaluating:
            frac = getattr(est, "fraction", None)
            self._eval_message(f"Evaluating\u2026 {html.escape(est.message or 'starting')}"
                               + (f" ({100 * frac:.0f} %)" if _ok(frac) else ""))
            return
        if ev is None:
            held = spec.eval_prompts if spec is not None else 0
            if est is not None and est.state in ("failed", "cancelled"):
                self._eval_message(f"The evaluation {est.state}: {html.escape(est.error or '')}", bad=True)
            elif j.state != "done":
                self._eval_message(f"Not evaluated: once the job is done, Evaluate answers its {held} held-out prompts "
                                   "with the base and the tuned model and lets the judge compare them.")
            else:
                self._eval_message(f"Not evaluated yet: Evaluate answers the {held} held-out prompts with the base "
                                   "and the tuned model and lets the judge compare them.")
            return
        self.eval_headline.setText(self.eval_html(ev))
        self.eval_split.show()
        self._fill_eval_stats(ev)
        self.eval_answers.setHtml(self.answers_html(ev))

    def _eval_message(self, text: str, *, bad: bool = False) -> None:
        colour = style.BAD.name() if bad else _DIM
        self.eval_headline.setText(f"<span style='color:{colour}'>{text}</span>")
        self.eval_split.hide()

    @staticmethod
    def eval_html(ev: dict) -> str:
        n = ev.get("prompts")
        judge = ev.get("reward_model")
        if _ok(ev.get("win_rate")):
            line = (f"The judge prefers the <b>tuned</b> model's answer on <b>{_pct(ev['win_rate'])}</b>"
                    + (f" {_ci(ev.get('win_rate_ci'))}" if ev.get("win_rate_ci") else "")
                    + f" of {n} held-out prompts")
            bits = [f"judge {html.escape(os.path.basename(str(judge)))}"] if judge else []
            if _ok(ev.get("mean_p")):
                bits.append(f"mean P(tuned preferred) {ev['mean_p']:.2f}")
            if bits:
                line += f" <span style='color:{_DIM}'>({'; '.join(bits)})</span>"
        else:
            line = f"{n} held-out prompts; no judge model, so no win rate: the text statistics below"
        tail = []
        if _ok(ev.get("longer_share")):
            tail.append(f"the tuned answer is longer in {_pct(ev['longer_share'], 0)}")
        if _ok(ev.get("seconds")):
            tail.append(f"took {duration(ev['seconds'])}")
        if tail:
            sep = " \u00b7 "
            line += f"<br><span style='color:{_DIM}'>{sep.join(tail)}</span>"
        return line

    def _fill_eval_stats(self, ev: dict) -> None:
        text = ev.get("text") or {}
        base, tuned = text.get("base") or {}, text.get("tuned") or {}
        rows = [(k, name, tip) for k, name, tip in _TEXT_STATS if k in base or k in tuned]
        t = self.eval_stats
        t.setRowCount(len(rows))
        for i, (k, name, tip) in enumerate(rows):
            b, u = base.get(k), tuned.get(k)
            share = k == "markup_share"
            fmt = (lambda x: _pct(x, 1)) if share else (lambda x: _num(x, 1))
            t.setItem(i, 0, _item(name, tip=tip))
            t.setItem(i, 1, _item(fmt(b), right=True, colour=style.TEXT_DIM))
            t.setItem(i, 2, _item(fmt(u), right=True, bold=True))
            d = (u - b) if _ok(u) and _ok(b) else None
            t.setItem(i, 3, _item("\u2013" if d is None else (f"{100 * d:+.1f} pts" if share else f"{d:+.1f}"),
                                  right=True, colour=style.TEXT_DIM))
        height = t.horizontalHeader().sizeHint().height() + len(rows) * t.verticalHeader().defaultSectionSize() + 4
        t.setMaximumHeight(height)

    @staticmethod
    def answers_html(ev: dict, limit: int = 50) -> str:
        """The answers of both models, side by side, one prompt after the other."""
        esc = html.escape
        out = ["<table width='100%' cellspacing='0' cellpadding='5' style='border-collapse:collapse'>",
               f"<tr><th width='50%' align='left' style='color:{_DIM}'>base</th>"
               f"<th width='50%' align='left' style='color:{_DIM}'>tuned</th></tr>"]
        for i, a in enumerate((ev.get("answers") or [])[:limit], 1):
            p = a.get("p_tuned")
            badge = ""
            if _ok(p):
                colour = style.GOOD.name() if p > 0.5 else (style.BAD.name() if p < 0.5 else _DIM)
                badge = f" &nbsp;<span style='color:{colour}'>P(tuned preferred) {p:.2f}</span>"
            out.append(f"<tr><td colspan='2' style='background:#3a3a3a'><b>{i}.</b> {esc(str(a.get('prompt', '')))}"
                       f"{badge}</td></tr>")
            out.append("<tr>" + "".join(
                f"<td valign='top' style='border-bottom:1px solid #4a4a4a'>"
                f"{esc(str(a.get(side, ''))).replace(chr(10), '<br>')}</td>" for side in ("base", "tuned")) + "</tr>")
        out.append("</table>")
        return "".join(out)

    # -- the comparison -----------------------------------------------------------------------------------
    def show_compare(self, jobs: list[_Job]) -> None:
        self.detail.setCurrentWidget(self.compare_page)
        self.compare_title.setText(
            f"<b>Comparing {len(jobs)} jobs</b> <span style='color:{_DIM}'>\u00b7 one colour per job \u00b7 the "
            f"table: mean of the last {FINAL_STEPS} logged steps</span>")
        w = self.smoothing_spin.value()
        colours = {j.folder: _JOB_PALETTE[i % len(_JOB_PALETTE)] for i, j in enumerate(jobs)}
        data = []
        for j in jobs:
            rows = j.load_metrics()
            steps = np.array([float(r.get("step", i + 1)) for i, r in enumerate(rows)])
            data.append((j, rows, steps))
        for key, _label, _colour in CURVES:
            series = [(j.name, colours[j.folder], steps,
                       np.array([float(r[key]) if _ok(r.get(key)) else np.nan for r in rows]))
                      for j, rows, steps in data]
            _draw_curves(self.compare_plots[key], key, series, w,
                         legend=self.compare_legend if key == "loss" else None)
        diffs = spec_differences([j.info.spec for j in jobs])
        t = self.compare_table
        t.setRowCount(len(jobs))
        for i, ((j, rows, _steps), diff) in enumerate(zip(data, diffs)):
            last = rows[-1] if rows else {}
            total = last.get("max_steps")
            cells = [
                _item("\u25a0 " + j.name, tip=j.folder, colour=QColor(colours[j.folder]), bold=True),
                _item(j.state, colour=_STATE_COLOURS.get(j.state, style.TEXT)),
                _item(f"{last.get('step')} / {total}" if rows and _ok(total) else str(len(rows)), right=True),
                _item("\u2013" if j.pairs() is None else str(j.pairs()), right=True),
                _item(_num(final_value(rows, "loss"), 4), right=True),
                _item(_num(final_value(rows, "rewards/margins"), 3), right=True),
                _item(_pct(final_value(rows, "rewards/accuracies"), 1), right=True),
                _item(win_rate_text(j.eval), right=True),
                _item(diff, tip=spec_summary(j.info.spec) if j.info.spec else "", colour=style.TEXT_DIM),
            ]
            for c, it in enumerate(cells):
                t.setItem(i, c, it)
        shown = min(max(len(jobs), 2), 8)  # as tall as its rows (up to 8): the plots take the rest
        t.setFixedHeight(t.horizontalHeader().sizeHint().height() + shown * t.verticalHeader().defaultSectionSize()
                         + 2 * t.frameWidth() + 2)

    # -- actions on the selected job ------------------------------------------------------------------------
    def open_selected(self) -> None:
        j = self.current_job()
        if j is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(j.folder))

    def _cancel_clicked(self) -> None:
        j = self.current_job()
        if j is None:
            return
        answer = QMessageBox.question(
            self, "Cancel DPO job", f"Stop {j.name}?\n\nIt saves a checkpoint at the end of its step and stops "
            "(Resume goes on from there); if it has not stopped within "
            f"{self.cancel_grace_s:g} s its processes are ended.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer == QMessageBox.StandardButton.Yes:
            self.cancel_job(j.folder)

    def cancel_job(self, folder: str):
        """Stop the job in ``folder`` (off the GUI thread: it waits for the job to stop);
        returns the runner."""
        j = self._by_folder.get(os.path.abspath(folder))
        if j is None or j.folder in self._cancelling:
            return None
        self._cancelling.add(j.folder)
        runner = self._run_job(Job(_cancel_job, j.folder, self.cancel_grace_s, name="dpo-cancel"),
                               f"Cancelling {j.name}")
        runner.ended.connect(lambda _s, f=j.folder: self._action_ended(f, self._cancelling))
        self._update_timer()
        if j.folder in self.selected_folders():
            self._update_buttons(j)
        return runner

    def resume_selected(self):
        """Start the selected cancelled or failed job again from its last checkpoint."""
        j = self.current_job()
        if j is None or j.info.spec is None or j.state not in ("cancelled", "failed"):
            return None
        return self._start(j, Job(_resume_job, j.info.spec, name="dpo-resume"), f"Resuming {j.name}")

    def evaluate_selected(self):
        """Start the evaluation of the selected finished job with the chosen judge."""
        j = self.current_job()
        if j is None or not self.eval_btn.isEnabled():
            return None
        judge = self.eval_judge.currentData() or None
        self.job_tabs.setCurrentIndex(2)
        return self._start(j, Job(_eval_job, j.folder, judge, name="dpo-eval"), f"Starting the evaluation of {j.name}")

    def _start(self, j: _Job, job: Job, what: str):
        self._starting.add(j.folder)
        self._update_buttons(j)
        runner = self._run_job(job, what, on_failed=lambda msg, f=j.folder: self._action_failed(f, msg))
        runner.ended.connect(lambda _s, f=j.folder: self._action_ended(f, self._starting))
        self._update_timer()
        return runner

    def _action_failed(self, folder: str, message: str) -> None:
        if folder in self.selected_folders():
            self.job_message.setStyleSheet(f"color: {style.BAD.name()};")
            self.job_message.setText(message)

    def _action_ended(self, folder: str, pending: set) -> None:
        pending.discard(folder)
        self._reread(folder)
