"""The workbench's Reward models tab: train reward models on the data folder's sessions
(text-only against text + implicit feedback, participant-grouped cross-validation), see how
good they are and what they use, keep them in the data folder's ``.models`` folder and apply
one to the session of an open replay.

Everything long (loading and featurising the sessions, training, applying a model) runs as
a job through the workbench's ``run_job``: its progress and Cancel are in the status line.
The model kinds, feature sets and tasks on offer come from the reward layer's registries.
"""
from __future__ import annotations

import html
import math
import os
import shutil
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QBrush, QColor, QDesktopServices, QFont, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QFormLayout, QFrame, QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel,
    QMenu, QMessageBox, QPlainTextEdit, QScrollArea, QSizePolicy, QSpinBox, QSplitter, QStackedWidget, QTableWidget,
    QTableWidgetItem, QTabWidget, QTextBrowser, QToolTip, QVBoxLayout, QWidget,
)

from ...jobs import Job
from ...reward.model import KINDS, SETS, TASKS
from .. import style
from .forms import SessionChoice, beside, form_scroll, message_label, push_button, registry_combo, show_message

__all__ = ["RewardPanel", "MODELS_FOLDER", "headline", "accuracy_rows"]

MODELS_FOLDER = ".models"  #: where a data folder keeps its reward models (session scans skip dot-folders)
TOP_FEATURES = 15
WIDE_RESULTS_PX = 980  # from this width of the results area on, the cards sit two by two
LOG_LINE_CHARS = 160

#: a colour per feature set, in the registry's order (text, gaze, mouse, implicit, fused, ...)
_SET_PALETTE = ("#b48ead", "#5aa9e6", "#e0a83a", "#5cc46b", "#ef8a5e", "#d08770", "#88c0d0", "#a3be8c")
#: a colour per feature group (registry groups; others get the palette's next free colour)
_GROUP_COLOURS = {"text": "#b48ead", "gaze": "#5aa9e6", "mouse": "#e0a83a", "context": "#8fbcbb",
                  "quality": "#9a9a9a"}
_PLOT_BG = style.PANEL
_AXIS = style.TEXT_DIM
_CARD_STYLE = ("QFrame#card { background: #323232; border: 1px solid #474747; border-radius: 6px; }"
               " QLabel#card_title { font-weight: bold; color: #e6e6e6; }")


# -- numbers for people ----------------------------------------------------------------------
def _ok(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


def _pct(x, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f} %" if _ok(x) else "\u2013"


def _ci(ci) -> str:
    if not ci or len(ci) != 2 or not all(_ok(v) for v in ci):
        return "\u2013"
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _set_colour(name: str) -> QColor:
    names = list(SETS)
    i = names.index(name) if name in names else len(names)
    return QColor(_SET_PALETTE[i % len(_SET_PALETTE)])


def _group_colour(group: str) -> QColor:
    if group in _GROUP_COLOURS:
        return QColor(_GROUP_COLOURS[group])
    return QColor(_SET_PALETTE[(len(_GROUP_COLOURS) + sum(map(ord, group))) % len(_SET_PALETTE)])


def _kinds_in_order(names) -> list[str]:
    known = [k for k in KINDS if k in names]
    return known + sorted(k for k in names if k not in KINDS)


def _sets_in_order(names) -> list[str]:
    known = [s for s in SETS if s in names]
    return known + sorted(s for s in names if s not in SETS)


def accuracy_rows(summary: dict, results: dict | None = None) -> list[dict]:
    """One row per (model kind, feature set): ``kind, set, acc, ci, paper, n, error``.
    ``results`` (a :class:`~ifllm_lab.reward.train.TrainReport`'s) adds each row's size and
    why a combination could not be trained; without it (a saved model's metrics) ``n`` is
    the number of training rows."""
    by_model = summary.get("by_model") or {}
    out = []
    for kind in _kinds_in_order(by_model):
        sets = by_model[kind] or {}
        for s in _sets_in_order(sets):
            r = sets[s] or {}
            full = ((results or {}).get(kind) or {}).get(s) or {}
            acc = r.get("acc")
            out.append({"kind": kind, "set": s, "acc": acc if _ok(acc) else None, "ci": r.get("ci"),
                        "paper": r.get("paper_acc") if _ok(r.get("paper_acc")) else None,
                        "auc": r.get("auc") if _ok(r.get("auc")) else None,
                        "n": full.get("n", summary.get("n_eval") or summary.get("n_train")),
                        "error": full.get("error", "" if _ok(acc) else "not trained")})
    return out


def headline(summary: dict, folds: int | None = None) -> str:
    """The evaluation in one line, e.g. ``fused 61.2 % [55.0, 67.1] vs text 57.0 % [50.1,
    63.0] — difference +4.2 points [-1.3, 9.8] (participant-grouped 5-fold CV, 43
    participants)``."""
    main = summary.get("model") or ""
    sets = (summary.get("by_model") or {}).get(main) or {}

    def part(s: str) -> str:
        r = sets.get(s) or {}
        return f"{s} {_pct(r.get('acc'))} {_ci(r.get('ci'))}".rstrip(" \u2013")

    have = [s for s in _sets_in_order(sets) if _ok((sets[s] or {}).get("acc"))]
    if "fused" in have and "text" in have:
        line = f"{part('fused')} vs {part('text')}"
        d, dci = summary.get("fused_minus_text"), summary.get("fused_minus_text_ci")
        if _ok(d):
            line += f" \u2014 difference {100 * d:+.1f} points"
            if dci and len(dci) == 2 and all(_ok(v) for v in dci):
                line += f" [{100 * dci[0]:+.1f}, {100 * dci[1]:+.1f}]"
    elif have:
        best = max(have, key=lambda s: sets[s]["acc"])
        line = part(best) + (f" (best of {', '.join(have)})" if len(have) > 1 else "")
    else:
        line = "no feature set could be trained"
    n_part = summary.get("participants")
    if summary.get("protocol") == "evaluation set":
        how = f"evaluation set, {summary.get('eval_participants')} participants"
    else:
        k = min(int(folds), int(n_part)) if folds and n_part else folds
        how = f"participant-grouped {k}-fold CV" if k else "participant-grouped CV"
        if (summary.get("repeats") or 1) > 1:
            how += f" repeated {summary['repeats']} times"
        if n_part:
            how += f", {n_part} participants"
    return f"{main} \u00b7 {line} ({how})" if main else f"{line} ({how})"


# -- small widgets ---------------------------------------------------------------------------------
def bias_note(bias: dict) -> str:
    """One sentence on the participants' side bias (:func:`~ifllm_lab.reward.evaluate.participant_bias`),
    empty when there is too little to say."""
    if not bias or not bias.get("participants") or not _ok(bias.get("own_side_acc")):
        return ""
    lo, hi = bias.get("left_share_p10"), bias.get("left_share_p90")
    if not (_ok(lo) and _ok(hi)):
        return ""
    acc = bias["own_side_acc"]
    spread = (f"{100 * lo:.0f}\u2013{100 * hi:.0f} % of their choices (10th\u201390th percentile of the "
              f"{bias['participants']} with 5 or more)")
    if acc < 0.55:
        return (f"Participants pick the left answer in {spread}; their own other choices predict {100 * acc:.1f} %, "
                "near chance: knowing the participant adds little here.")
    return (f"Participants differ in picking the left answer: {spread}. Their own other choices alone predict "
            f"{100 * acc:.1f} %. With participants mixed (the paper's protocol) a model that is not mirrored "
            "(paper-forest) can learn who favours which side; on new participants it cannot.")


class _Card(QFrame):
    """A titled frame holding one result."""

    def __init__(self, title: str, body: QWidget, *, min_height: int, note: QWidget | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("card")
        self.setStyleSheet(_CARD_STYLE)
        self.title = QLabel(title, self)
        self.title.setObjectName("card_title")
        box = QVBoxLayout(self)
        box.setContentsMargins(10, 8, 10, 8)
        box.setSpacing(4)
        box.addWidget(self.title)
        box.addWidget(body, 1)
        if note is not None:
            box.addWidget(note)
        self.setMinimumHeight(min_height)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)


class _Cards(QWidget):
    """Result cards two by two when there is room, else one under the other."""

    def __init__(self, cards: list[QWidget], parent=None):
        super().__init__(parent)
        self.cards = cards
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(8)
        self.columns = 0
        self._arrange(2)

    def _arrange(self, columns: int) -> None:
        if columns == self.columns:
            return
        self.columns = columns
        for c in self.cards:
            self.grid.removeWidget(c)
        for i, c in enumerate(self.cards):
            self.grid.addWidget(c, i // columns, i % columns)
        for col in range(2):
            self.grid.setColumnStretch(col, 1 if col < columns else 0)
        for row in range(len(self.cards)):
            self.grid.setRowStretch(row, 1 if row < math.ceil(len(self.cards) / columns) else 0)

    def fit_width(self, width: int) -> None:
        self._arrange(2 if width >= WIDE_RESULTS_PX else 1)


class _Plot(pg.PlotWidget):
    """A plot in the workbench's colours whose items can have tooltips (rectangles in
    data coordinates, each with its text)."""

    def __init__(self, parent=None):
        super().__init__(parent, background=_PLOT_BG)
        self.setAntialiasing(True)
        self.tips: list[tuple[QRectF, str]] = []
        self.plotItem.setMenuEnabled(False)
        self.plotItem.hideButtons()
        vb = self.plotItem.getViewBox()
        vb.setMouseEnabled(False, False)
        self.tick_font = tick_font = QFont(style.FONT_FAMILY)
        tick_font.setPixelSize(12)
        for name in ("left", "bottom"):
            ax = self.plotItem.getAxis(name)
            ax.setPen(pg.mkPen(_AXIS))
            ax.setTextPen(pg.mkPen(style.TEXT))
            ax.setStyle(tickFont=tick_font)
            ax.enableAutoSIPrefix(False)
        self.setMinimumSize(220, 160)
        self.viewport().installEventFilter(self)

    def label(self, side: str, text: str) -> None:
        self.plotItem.setLabel(side, text, color=style.TEXT_DIM.name(), **{"font-size": "12px"})

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt name
        if obj is self.viewport() and event.type() == QEvent.Type.ToolTip:
            p = self.plotItem.vb.mapSceneToView(self.mapToScene(event.pos()))
            text = next((t for r, t in self.tips if r.contains(p)), "")
            if text:
                QToolTip.showText(event.globalPos(), text, self)
            else:
                QToolTip.hideText()
            return True
        return super().eventFilter(obj, event)


def _table(columns: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setHorizontalHeaderLabels(columns)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setAlternatingRowColors(True)
    t.setWordWrap(False)
    t.verticalHeader().setVisible(False)
    t.verticalHeader().setDefaultSectionSize(t.fontMetrics().height() + 8)
    return t


def _item(text: str, *, right: bool = False, tip: str = "", colour: QColor | None = None,
          bold: bool = False) -> QTableWidgetItem:
    it = QTableWidgetItem(text)
    if right:
        it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if tip:
        it.setToolTip(tip)
    if colour is not None:
        it.setForeground(QBrush(colour))
    if bold:
        f = it.font()
        f.setBold(True)
        it.setFont(f)
    return it


def _mono() -> QFont:
    f = QFont("DejaVu Sans Mono")
    f.setStyleHint(QFont.StyleHint.Monospace)
    f.setPixelSize(11)
    return f


# -- jobs (worker thread: no widget touched) ------------------------------------------------------
def _train_job(ctx, sources: list[str], out_dir: str, settings, *, cache_dir, embeddings: bool, workers: int = 2):
    from ...reward.train import train_job

    os.makedirs(os.path.dirname(out_dir), exist_ok=True)
    return train_job(ctx, sources, out_dir, settings, cache_dir=cache_dir, workers=workers, embeddings=embeddings)


def _apply_job(ctx, model_dir: str, session_path: str, *, cache_dir):
    from ...reward.predict import predict_sessions
    from ...reward.store import load_model

    ctx.progress(None, f"loading {os.path.basename(model_dir)}")
    model, info = load_model(model_dir)
    ctx.check_cancel()
    preds, _data = predict_sessions(model, info, [session_path], cache_dir=cache_dir, workers=1, top=3,
                                    progress=ctx.progress, cancel=lambda: ctx.cancelled, log=ctx.log)
    ctx.progress(1.0, f"{len(preds)} predictions for {os.path.basename(session_path)}")
    return model.task, preds


# -- the panel ------------------------------------------------------------------------------------
class RewardPanel(QWidget):
    """Needs the workbench's ``run_job`` and its :class:`SessionsPanel` (the data folder and
    its sessions); ``tabs``: the workbench's tab widget, to find the replay a model is
    applied to. ``cache_dir``: where session features are cached (default: the user's
    cache folder). Emits ``trained(model_dir)`` after a model was saved."""

    trained = Signal(str)
    applied = Signal(str)  # the session a model was applied to

    def __init__(self, run_job, sessions, *, tabs: QTabWidget | None = None, cache_dir: str | None = None,
                 parent=None):
        super().__init__(parent)
        self.setObjectName("reward")
        self._run_job = run_job
        self.sessions = sessions
        self.tabs = tabs
        self.cache_dir = cache_dir
        self.train_runner = None
        self.apply_runner = None
        self.last_report = None
        self.last_summary: dict | None = None
        self.last_model_dir = ""
        self._replay = None  # the replay tab shown last
        self._pending = None  # (settings, model folder, sessions) of the training under way
        self.models: list[tuple[str, dict | str]] = []  # the saved models listed: (folder, info or its problem)

        left = self._build_settings()
        right = self._build_results()
        self.splitter = beside(self, left, right, name="reward_splitter", form_width=left.minimumWidth())

        sessions.folder_changed.connect(lambda _f: self.refresh_models())
        if tabs is not None:
            tabs.currentChanged.connect(self._tab_changed)
        self.choice.changed.connect(self._update_train)
        self.choice.refresh()
        self.refresh_models()

    # -- building ------------------------------------------------------------------------------
    def _build_settings(self) -> QWidget:
        # data
        data = QGroupBox("Data", self)
        self.choice = SessionChoice(self.sessions, name="reward", all_text="All sessions in the data folder",
                                    empty="No sessions to train on.", studies=True, stacked=True, spacing=3,
                                    parent=data)
        c = self.choice  # its parts, as the panel's own
        self.use_selected, self.use_all, self.use_study, self.study_box = (c.use_selected, c.use_all, c.use_study,
                                                                           c.study_box)
        self.data_label = c.data_label
        QVBoxLayout(data).addWidget(self.choice)

        # models
        model = QGroupBox("Models", self)
        self.task_box = registry_combo(model, "reward_task", TASKS)
        self.task_box.currentIndexChanged.connect(lambda _i: self.task_box.setToolTip(
            TASKS.get(self.task_box.currentData(), "")))
        self.task_box.setToolTip(TASKS.get(self.task_box.currentData(), ""))
        kinds, self.kind_boxes = self._check_grid(model, "kind", {n: k.description for n, k in KINDS.items()},
                                                  lambda i: i == 0)
        self.main_label = QLabel("", model)
        self.main_label.setWordWrap(True)
        self.main_label.setStyleSheet(f"color: {style.TEXT_DIM.name()};")
        sets, self.set_boxes = self._check_grid(model, "set", SETS, lambda i: True)
        self.folds = QSpinBox(model)
        self.folds.setObjectName("reward_folds")
        self.folds.setRange(2, 20)
        self.folds.setValue(5)
        self.folds.setToolTip("cross-validation folds, grouped by participant (at most one per participant)")
        self.repeats = QSpinBox(model)
        self.repeats.setObjectName("reward_repeats")
        self.repeats.setRange(1, 20)
        self.repeats.setValue(1)
        self.repeats.setToolTip("run the cross-validation this many times on different random folds and average: "
                                "with a few dozen participants the folds alone move an accuracy by a few points")
        self.quality = QCheckBox("Leave out participants with poor gaze data", model)
        self.quality.setObjectName("reward_quality")
        self.quality.setChecked(True)
        self.quality.setToolTip("keep a participant only when the medians of their own turns pass the quality "
                                "rule: valid gaze share and coverage at least 50 %, last validation error at most "
                                "4\u00b0 (participants without gaze are left out)")
        self.embeddings = QCheckBox("Text embeddings (slow)", model)
        self.embeddings.setObjectName("reward_embeddings")
        self.embeddings.setToolTip("text models also see the answers' embeddings from the local LLM "
                                   "(slow the first time; cached after)")
        form = QFormLayout(model)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setVerticalSpacing(5)
        form.addRow("Task", self.task_box)
        form.addRow("Kinds", kinds)
        form.addRow("", self.main_label)
        form.addRow("Feature sets", sets)
        form.addRow("Folds", self.folds)
        form.addRow("Repeats", self.repeats)
        form.addRow(self.quality)
        form.addRow(self.embeddings)

        self.train_btn = push_button(self, "Train", "reward_train", self.train, default=True)
        self.status = message_label(self, "reward_status")
        self.log = QPlainTextEdit(self)
        self.log.setObjectName("reward_log")
        self.log.setReadOnly(True)
        self.log.setFont(_mono())
        self.log.setPlaceholderText("The training log appears here.")
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.log.setMinimumHeight(60)

        inner = QWidget(self)
        col = QVBoxLayout(inner)
        col.setContentsMargins(0, 0, 4, 0)
        col.addWidget(data)
        col.addWidget(model)
        col.addWidget(self.train_btn)
        col.addWidget(self.status)
        log_title = QLabel("Log", self)
        log_title.setStyleSheet(f"color: {style.TEXT_DIM.name()};")
        col.addWidget(log_title)
        col.addWidget(self.log, 1)
        scroll = form_scroll(self, inner, name="reward_settings", sideways=False)
        scroll.setMinimumWidth(inner.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 4)
        self.settings_scroll = scroll
        return scroll

    def _build_results(self) -> QWidget:
        self.pages = QTabWidget(self)
        self.pages.setObjectName("reward_pages")
        self.pages.setDocumentMode(True)

        # -- results
        results = QWidget(self)
        self.headline = QLabel("", results)
        self.headline.setObjectName("reward_headline")
        self.headline.setWordWrap(True)
        self.headline.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        f = QFont(style.FONT_FAMILY)
        f.setPixelSize(15)
        f.setBold(True)
        self.headline.setFont(f)
        self.subline = QLabel("", results)
        self.subline.setObjectName("reward_subline")
        self.subline.setWordWrap(True)
        self.subline.setStyleSheet(f"color: {style.TEXT_DIM.name()};")

        self.acc_table = _table(["Feature set", "Model", "Accuracy", "95 % interval", "Paper protocol", "n", "AUC"])
        self.acc_table.setObjectName("reward_accuracy")
        self.acc_table.horizontalHeaderItem(3).setToolTip(
            "bootstrap interval that resamples participants (their turns are not independent)")
        self.acc_table.horizontalHeaderItem(4).setToolTip(
            "the IFLLM paper's protocol: 5-fold CV over questions, participants mixed (optimistic for new "
            "participants)")
        self.acc_table.horizontalHeaderItem(5).setToolTip("labelled questions (pairwise) or answers (pointwise)")
        self.acc_table.horizontalHeaderItem(6).setToolTip(
            "area under the ROC curve of the same predictions: 0.5 is chance whatever the share of each label "
            "(pointwise ratings are mostly good, so accuracy alone flatters)")
        # numbers as wide as they need, the model's name takes the rest (not cut at 1024 px)
        self.acc_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.acc_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.acc_table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)

        self.ablation = _Plot(self)
        self.ablation.setObjectName("reward_ablation")
        self.ablation.label("left", "accuracy (%)")
        self.ablation_note = QLabel("", self)
        self.ablation_note.setStyleSheet(f"color: {style.TEXT_DIM.name()};")
        self.ablation_note.setWordWrap(True)

        self.importance = _Plot(self)
        self.importance.setObjectName("reward_importance")
        self.importance.label("bottom", "accuracy lost when shuffled (points)")
        self.importance_note = QLabel("", self)
        self.importance_note.setWordWrap(True)
        self.importance_note.setTextFormat(Qt.TextFormat.RichText)

        self.reliability = _Plot(self)
        self.reliability.setObjectName("reward_reliability")
        self.reliability.setAspectLocked(False)
        self.confusion = _table(["", ""])
        self.confusion.setObjectName("reward_confusion")
        self.confusion.setRowCount(2)
        self.confusion.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.confusion.setAlternatingRowColors(False)
        self.confusion.setWordWrap(True)
        self.confusion.verticalHeader().setVisible(True)
        self.confusion.verticalHeader().setDefaultSectionSize(46)
        self.confusion.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.confusion.horizontalHeader().setMinimumHeight(2 * self.confusion.fontMetrics().height() + 8)
        self.confusion.setFixedHeight(2 * 46 + 2 * self.confusion.fontMetrics().height() + 8 + 4)
        self.confusion.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.confusion.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.calibration_note = QLabel("", self)
        self.calibration_note.setWordWrap(True)
        self.calibration_note.setStyleSheet(f"color: {style.TEXT_DIM.name()};")
        self.confusion_title = conf_title = QLabel("", self)
        conf_title.setWordWrap(True)
        conf_title.setStyleSheet(f"color: {style.TEXT_DIM.name()};")
        calib = QWidget(self)
        cbox = QHBoxLayout(calib)
        cbox.setContentsMargins(0, 0, 0, 0)
        cbox.addWidget(self.reliability, 3)
        side = QVBoxLayout()
        side.addWidget(conf_title)
        side.addWidget(self.confusion)
        side.addWidget(self.calibration_note)
        side.addStretch(1)
        cbox.addLayout(side, 2)

        self.accuracy_note = QLabel("", self)
        self.accuracy_note.setObjectName("reward_bias_note")
        self.accuracy_note.setWordWrap(True)
        self.accuracy_note.setStyleSheet(f"color: {style.TEXT_DIM.name()};")
        self.accuracy_note.hide()
        self.card_accuracy = _Card("Accuracy by model and feature set", self.acc_table, min_height=210,
                                   note=self.accuracy_note)
        self.card_ablation = _Card("Feature-set ablation", self.ablation, min_height=260, note=self.ablation_note)
        self.card_importance = _Card(f"What the model uses: permutation importance (top {TOP_FEATURES})",
                                     self.importance, min_height=360, note=self.importance_note)
        self.card_calibration = _Card("Calibration", calib, min_height=280)
        self.cards = _Cards([self.card_accuracy, self.card_ablation, self.card_importance, self.card_calibration])
        self.cards_scroll = QScrollArea(self)
        self.cards_scroll.setObjectName("reward_cards")
        self.cards_scroll.setWidgetResizable(True)
        self.cards_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.cards_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.cards_scroll.setWidget(self.cards)
        self.cards_scroll.viewport().installEventFilter(self)

        self.empty = QLabel("No results yet.\n\nChoose the sessions and the models on the left and press Train, "
                            "or show the results of a saved model (Saved models).", self)
        self.empty.setWordWrap(True)
        self.empty.setObjectName("reward_empty")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet(f"color: {style.TEXT_DIM.name()}; font-size: 14px;")
        self.result_stack = QStackedWidget(self)
        self.result_stack.addWidget(self.empty)
        self.result_stack.addWidget(self.cards_scroll)
        rbox = QVBoxLayout(results)
        rbox.setContentsMargins(6, 6, 6, 0)
        rbox.addWidget(self.headline)
        rbox.addWidget(self.subline)
        rbox.addWidget(self.result_stack, 1)
        self.pages.addTab(results, "Results")

        # -- saved models
        saved = QWidget(self)
        self.models_table = _table(["Model", "Task", "Kind", "Feature set", "Fused", "Text", "Trained", "Sessions",
                                    "Participants", "Problem"])
        self.models_table.horizontalHeaderItem(9).setToolTip(
            "why a model cannot be used, or why it must be rebuilt (stale: built from data that was deleted)")
        self.models_table.horizontalHeaderItem(4).setToolTip("accuracy of the fused features in its evaluation")
        self.models_table.horizontalHeaderItem(5).setToolTip("accuracy of the text features in its evaluation")
        self.models_table.setObjectName("reward_models")
        self.models_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        mh = self.models_table.horizontalHeader()
        mh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        mh.setStretchLastSection(True)
        self.models_table.itemSelectionChanged.connect(self._model_selected)
        self.models_table.doubleClicked.connect(lambda _ix: self.show_selected())
        self.models_label = QLabel("", saved)
        self.models_label.setStyleSheet(f"color: {style.TEXT_DIM.name()};")
        self.models_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.models_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # a long path: cut
        self.show_btn = push_button(saved, "Show results", "reward_show", self.show_selected)
        self.apply_btn = push_button(saved, "Apply to open replay", "reward_apply", self.apply_selected)
        self.delete_btn = push_button(saved, "Delete…", "reward_delete", self.delete_selected)
        self.reveal_act = QAction("Show in folder", self)
        self.reveal_act.triggered.connect(self._reveal_selected)
        self.models_table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.models_table.customContextMenuRequested.connect(self._models_menu)
        self.replay_label = QLabel("", saved)
        self.replay_label.setObjectName("reward_replay_label")
        self.replay_label.setStyleSheet(f"color: {style.TEXT_DIM.name()};")
        self.replay_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        buttons = QHBoxLayout()
        for b in (self.show_btn, self.apply_btn, self.delete_btn):
            buttons.addWidget(b)
        buttons.addWidget(self.replay_label, 1)
        self.model_info = QTextBrowser(saved)
        self.model_info.setObjectName("reward_model_info")
        self.model_info.setPlaceholderText("Select a model to see what it is and what it was trained on.")
        msplit = QSplitter(Qt.Orientation.Vertical, saved)
        msplit.addWidget(self.models_table)
        msplit.addWidget(self.model_info)
        msplit.setStretchFactor(0, 3)
        msplit.setStretchFactor(1, 2)
        sbox = QVBoxLayout(saved)
        sbox.setContentsMargins(6, 6, 6, 0)
        sbox.addWidget(self.models_label)
        sbox.addLayout(buttons)
        sbox.addWidget(msplit, 1)
        self.pages.addTab(saved, "Saved models")
        self._clear_results()
        return self.pages

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt name
        if obj is self.cards_scroll.viewport() and event.type() == QEvent.Type.Resize:
            self.cards.fit_width(event.size().width())
        return False

    # -- data ----------------------------------------------------------------------------------
    @property
    def models_folder(self) -> str:
        return os.path.join(self.sessions.folder, MODELS_FOLDER) if self.sessions.folder else ""

    @property
    def sources(self) -> list[str]:
        """The paths of the sessions the Data choice stands for."""
        return self.choice.sources

    def chosen_rows(self) -> list:
        """The session rows the Data choice stands for (unreadable files left out)."""
        return self.choice.chosen_rows()

    def _check_grid(self, parent, prefix: str, items: dict[str, str], checked) -> tuple[QGridLayout,
                                                                                       dict[str, QCheckBox]]:
        """Two columns of check boxes, one per registry entry (its description as tooltip),
        ``checked(index)`` saying which start checked; every toggle re-checks Train."""
        grid = QGridLayout()
        grid.setSpacing(2)
        boxes: dict[str, QCheckBox] = {}
        for i, (name, what) in enumerate(items.items()):
            b = QCheckBox(name, parent)
            b.setObjectName(f"{prefix}_{name}")
            b.setToolTip(what)
            b.setChecked(checked(i))
            b.toggled.connect(lambda _on: self._update_train())
            boxes[name] = b
            grid.addWidget(b, i // 2, i % 2)
        return grid, boxes

    def _update_train(self) -> None:
        kinds = self.chosen_kinds()
        self.main_label.setText(f"main model: {kinds[0]} (the first checked)" if kinds else "check a model kind")
        busy = self.busy
        self.train_btn.setEnabled(bool(self.sources) and bool(kinds) and bool(self.chosen_sets()) and not busy)
        self.train_btn.setText("Training…" if busy else "Train")

    def chosen_kinds(self) -> list[str]:
        return [k for k, b in self.kind_boxes.items() if b.isChecked()]

    def chosen_sets(self) -> list[str]:
        return [s for s, b in self.set_boxes.items() if b.isChecked()]

    @property
    def busy(self) -> bool:
        return self.train_runner is not None and self.train_runner.running

    # -- training --------------------------------------------------------------------------------
    def settings(self):
        """The :class:`~ifllm_lab.reward.train.TrainSettings` the controls stand for."""
        from ...reward.data import QualityRule
        from ...reward.train import TrainSettings

        sets = tuple(self.chosen_sets())
        return TrainSettings(task=self.task_box.currentData(), kinds=tuple(self.chosen_kinds()), sets=sets,
                             keep_set="fused" if "fused" in sets else (sets[-1] if sets else "fused"),
                             folds=self.folds.value(), repeats=self.repeats.value(),
                             quality=QualityRule() if self.quality.isChecked() else None)

    def new_model_dir(self, task: str, kind: str) -> str:
        base = os.path.join(self.models_folder, f"{time.strftime('%Y%m%d-%H%M%S')}-{task}-{kind}")
        out, i = base, 1
        while os.path.exists(out):
            i += 1
            out = f"{base}-{i}"
        return out

    def train(self):
        """Train on the chosen sessions as a job; returns its runner (None when nothing to do)."""
        from ...reward.model import ModelError

        if self.busy:
            return None
        self.choice.refresh()
        if not self.sources:
            self._say(self.data_label.text(), bad=True)
            return None
        settings = self.settings()
        try:
            settings.check()
        except ModelError as exc:
            self._say(str(exc), bad=True)
            return None
        out = self.new_model_dir(settings.task, settings.kinds[0])
        self._pending = (settings, out, len(self.sources))
        self.log.clear()
        self._log(f"{len(self.sources)} sessions; {settings.task}; kinds {', '.join(settings.kinds)}; sets "
                  f"{', '.join(settings.sets)}; {settings.folds} folds"
                  + (f" x {settings.repeats} repeats" if settings.repeats > 1 else "") + "; quality rule "
                  f"{'on' if settings.quality is not None else 'off'}"
                  + ("; text embeddings" if self.embeddings.isChecked() else ""))
        self._say("Training\u2026 (progress and Cancel in the status line)")
        runner = self._run_job(
            Job(_train_job, list(self.sources), out, settings, cache_dir=self.cache_dir,
                embeddings=self.embeddings.isChecked(), name="reward-train"),
            "Training reward models", on_done=lambda report, o=out: self._trained(report, o),
            on_failed=self._train_failed)
        runner.logged.connect(self._log)
        runner.cancelled.connect(lambda _p: self._say("Training cancelled; nothing was saved."))
        runner.ended.connect(lambda _s: self._update_train())
        self.train_runner = runner
        self._update_train()
        return runner

    def _log(self, line: str) -> None:
        line = str(line)
        if "\n" in line:  # a failure's traceback stays in the job's log
            line = line.splitlines()[0]
        self.log.appendPlainText(line if len(line) <= LOG_LINE_CHARS else line[:LOG_LINE_CHARS - 1] + "\u2026")

    def _say(self, text: str, *, bad: bool = False, good: bool = False) -> None:
        show_message(self.status, text, bad=bad, good=good)

    def _train_failed(self, message: str) -> None:
        self._say(f"Training failed: {message}", bad=True)
        self._update_train()

    def _trained(self, report, out_dir: str) -> None:
        settings = self._pending[0] if self._pending else None
        self.last_report = report
        saved = os.path.isfile(os.path.join(out_dir, "model.json"))
        self.last_model_dir = out_dir if saved else ""
        self.show_summary(report.summary(top=TOP_FEATURES), report.reliability, results=report.results,
                          folds=settings.folds if settings else None)
        took = (report.seconds or {}).get("total", 0.0) + (report.seconds or {}).get("features", 0.0)
        dropped = len(report.dropped or {})
        msg = (f"Trained on {report.n_train} rows from {report.participants} participants in {took:.0f} s"
               + (f" ({dropped} left out by the quality rule)" if dropped else "") + ". ")
        msg += (f"Saved as {MODELS_FOLDER}/{os.path.basename(out_dir)} ({report.main_kind}, "
                f"{report.model.feature_set if report.model is not None else '?'} features)." if saved
                else "No model was saved.")
        self._say(msg, good=saved)
        self.refresh_models(select=out_dir if saved else None)
        self.pages.setCurrentIndex(0)
        self._update_train()
        if saved:
            self.trained.emit(out_dir)

    # -- results ---------------------------------------------------------------------------------
    def _clear_results(self) -> None:
        self.last_summary = None
        self.headline.setText("")
        self.subline.setText("")
        self.headline.hide()
        self.subline.hide()
        self.result_stack.setCurrentWidget(self.empty)

    def show_summary(self, summary: dict, reliability: list | None = None, *, results: dict | None = None,
                     folds: int | None = None, title: str = "") -> None:
        """Fill the results from a training summary (:meth:`TrainReport.summary`, or a saved
        model's ``metrics``); ``reliability``: the calibration bins (None: not known)."""
        self.last_summary = summary
        task = summary.get("task", "pairwise")
        line = (f"{title}: " if title else "") + headline(summary, folds)
        main_part, sep, how = line.rpartition(" (")
        if not sep:
            main_part, how = line, ""
        self.headline.setText(f"{html.escape(main_part)}" + (
            f" <span style='font-weight:normal; color:{style.TEXT_DIM.name()}'>({html.escape(how)}</span>"
            if how else ""))
        self.headline.setToolTip(line)
        self.headline.show()
        unit = "questions" if task == "pairwise" else "answers"
        bits = [f"{task}: {summary.get('n_train')} labelled {unit}, {summary.get('participants')} participants"]
        if summary.get("dropped_participants"):
            bits.append(f"{summary['dropped_participants']} left out by the quality rule")
        labels = summary.get("labels") or {}
        n1, n0 = int(labels.get("1", 0)), int(labels.get("0", 0))
        if n0 + n1:
            pos = "answer 1 chosen" if task == "pairwise" else "rated good"
            bits.append(f"{pos} in {n1} of {n0 + n1} ({100 * n1 / (n0 + n1):.0f} %)")
        if _ok(summary.get("ece")):
            bits.append(f"ECE {summary['ece']:.3f}")
        if _ok(summary.get("brier")):
            bits.append(f"Brier {summary['brier']:.3f}")
        self.subline.setText(" \u00b7 ".join(bits))
        self.subline.show()
        rows = accuracy_rows(summary, results)
        main = summary.get("model") or (rows[0]["kind"] if rows else "")
        self._fill_accuracy(rows, main)
        self._fill_bias(summary.get("participant_bias") or {})
        self._fill_ablation(rows, main)
        self._fill_importance(summary.get("top_features") or [])
        self._fill_calibration(reliability, summary.get("confusion"), task, summary)
        self.result_stack.setCurrentWidget(self.cards_scroll)

    def _fill_accuracy(self, rows: list[dict], main: str) -> None:
        t = self.acc_table
        t.setRowCount(len(rows))
        several = len({x["kind"] for x in rows}) > 1
        for i, r in enumerate(rows):
            is_main = r["kind"] == main
            err = r.get("error") or ""
            dim = style.TEXT_DIM if not is_main else None
            t.setItem(i, 0, _item(r["set"], tip=SETS.get(r["set"], ""), colour=_set_colour(r["set"]), bold=True))
            t.setItem(i, 1, _item(r["kind"] + (" (main)" if is_main and several else ""),
                                  tip=KINDS[r["kind"]].description if r["kind"] in KINDS else "", colour=dim))
            if r["acc"] is None:
                t.setItem(i, 2, _item("not trained", tip=err, colour=style.WARN))
                t.setItem(i, 3, _item(err, tip=err, colour=style.TEXT_DIM))
                t.setItem(i, 4, _item(""))
                t.setItem(i, 5, _item(""))
                t.setItem(i, 6, _item(""))
                continue
            t.setItem(i, 2, _item(_pct(r["acc"]), right=True, bold=is_main))
            t.setItem(i, 3, _item(_ci(r["ci"]), right=True, colour=dim))
            t.setItem(i, 4, _item(_pct(r["paper"]), right=True, colour=style.TEXT_DIM))
            t.setItem(i, 5, _item("" if r["n"] is None else str(r["n"]), right=True, colour=style.TEXT_DIM))
            t.setItem(i, 6, _item("" if r.get("auc") is None else f"{r['auc']:.3f}", right=True, colour=dim))
        # as tall as its rows (up to 16 of them), the card with it
        shown = min(max(len(rows), 1), 16)
        height = t.horizontalHeader().sizeHint().height() + shown * t.verticalHeader().defaultSectionSize() + 6
        t.setMinimumHeight(height)
        self.card_accuracy.setMinimumHeight(height + 44)

    def _fill_bias(self, bias: dict) -> None:
        """Under the accuracy table: how much the participants differ in picking the left
        answer, which the paper's protocol can learn and unseen participants hide."""
        note = bias_note(bias)
        self.accuracy_note.setText(note)
        self.accuracy_note.setVisible(bool(note))
        if note:
            lines = max(2, round(self.accuracy_note.fontMetrics().horizontalAdvance(note)
                                 / max(self.card_accuracy.width() - 24, 300)) + 1)
            self.card_accuracy.setMinimumHeight(self.acc_table.minimumHeight() + 44
                                                + lines * self.accuracy_note.fontMetrics().lineSpacing())

    def _fill_ablation(self, rows: list[dict], main: str) -> None:
        plot = self.ablation
        plot.clear()
        plot.tips = []
        mine = [r for r in rows if r["kind"] == main]
        self.card_ablation.title.setText(f"Feature-set ablation: {main}" if main else "Feature-set ablation")
        ticks = [(i, r["set"]) for i, r in enumerate(mine)]
        plot.plotItem.getAxis("bottom").setTicks([ticks])
        plot.plotItem.getAxis("left").setTicks([[(v, f"{v:g}") for v in range(0, 101, 20)]])
        have = [(i, r) for i, r in enumerate(mine) if r["acc"] is not None]
        top = 100.0
        plot.addItem(pg.InfiniteLine(pos=50.0, angle=0, pen=pg.mkPen(style.TEXT_DIM, width=1.3,
                                                                      style=Qt.PenStyle.DashLine)))
        if have:
            x = np.array([i for i, _ in have], dtype=float)
            y = np.array([100 * r["acc"] for _, r in have])
            brushes = [pg.mkBrush(_set_colour(r["set"])) for _, r in have]
            bars = pg.BarGraphItem(x=x, height=y, width=0.62, brushes=brushes, pen=pg.mkPen(QColor(0, 0, 0, 0)))
            bars.setZValue(-1)  # the chance line shows over the bars
            plot.addItem(bars)
            lo = np.array([100 * r["ci"][0] if r["ci"] and _ok(r["ci"][0]) else 100 * r["acc"] for _, r in have])
            hi = np.array([100 * r["ci"][1] if r["ci"] and _ok(r["ci"][1]) else 100 * r["acc"] for _, r in have])
            plot.addItem(pg.ErrorBarItem(x=x, y=y, top=hi - y, bottom=y - lo, beam=0.2,
                                         pen=pg.mkPen(style.TEXT, width=1.6)))
            font = QFont(style.FONT_FAMILY)
            font.setPixelSize(12)
            font.setBold(True)
            for (i, r), yi, h in zip(have, y, hi):
                # the value at the bar's base, clear of the whiskers (above a bar too short for it)
                inside = yi >= 10
                label = pg.TextItem(f"{yi:.1f}", color=QColor("#1b1b1b") if inside else style.TEXT,
                                    anchor=(0.5, 1.0))
                label.setFont(font)
                label.setPos(i, 1.5 if inside else h + 1.5)
                plot.addItem(label)
                plot.tips.append((QRectF(i - 0.35, 0, 0.7, max(h, yi) + 6),
                                  f"{r['set']}: {_pct(r['acc'])} {_ci(r['ci'])}\n{SETS.get(r['set'], '')}"))
            top = max(top, float(hi.max()))
        plot.setXRange(-0.6, max(len(mine), 1) - 0.4, padding=0)
        plot.setYRange(0, top + 4, padding=0)
        self.ablation_note.setText("Bars: accuracy of each feature set (%); whiskers: 95 % interval over "
                                   "participants; dashed: chance (50 %).")

    def _fill_importance(self, features: list[dict]) -> None:
        plot = self.importance
        plot.clear()
        plot.tips = []
        feats = list(features[:TOP_FEATURES])
        n = len(feats)
        axis = plot.plotItem.getAxis("left")
        # the most important at the top
        axis.setTicks([[(n - 1 - i, f["name"]) for i, f in enumerate(feats)]])
        metrics = QFontMetrics(plot.tick_font)
        width = max([metrics.horizontalAdvance(f["name"]) for f in feats] + [60])
        axis.setWidth(int(width) + 16)
        groups = []
        if feats:
            drops = np.array([100 * (f.get("drop") or 0.0) for f in feats])
            ys = np.array([n - 1 - i for i in range(n)], dtype=float)
            brushes = [pg.mkBrush(_group_colour(f.get("group", ""))) for f in feats]
            plot.addItem(pg.BarGraphItem(x0=np.minimum(drops, 0), y=ys, height=0.68, width=np.abs(drops),
                                         brushes=brushes, pen=pg.mkPen(QColor(0, 0, 0, 0))))
            span = max(float(np.max(np.abs(drops))), 1.0)
            for f, y, d in zip(feats, ys, drops):
                plot.tips.append((QRectF(-1e9, y - 0.45, 2e9, 0.9),
                                  f"{f['name']} ({f.get('group', '')}): {d:+.2f} points\n{f.get('meaning', '')}"))
                label = pg.TextItem(f"{d:+.1f}", color=style.TEXT_DIM, anchor=(0.0, 0.5))
                label.setPos(max(d, 0.0) + 0.015 * span, y)
                plot.addItem(label)
            plot.addItem(pg.InfiniteLine(pos=0.0, angle=90, pen=pg.mkPen(style.TEXT_DIM, width=1)))
            plot.setXRange(min(0.0, float(drops.min())) - 0.02 * span, span * 1.15, padding=0)
            plot.setYRange(-0.6, n - 0.4, padding=0)
            groups = list(dict.fromkeys(f.get("group", "") for f in feats))
        legend = "&nbsp;&nbsp;&nbsp;".join(
            f"<span style='color:{_group_colour(g).name()}'>&#9632;</span> {html.escape(g)}" for g in groups)
        if feats and all(abs(f.get("drop") or 0.0) < 1e-9 for f in feats):
            note = "No single feature costs accuracy when shuffled: the others carry the same information."
        elif feats:
            note = "Accuracy points lost when a feature's values are shuffled (hover a bar for its meaning)."
        else:
            note = "No importance measured."
        self.importance_note.setText(
            (f"{legend}&nbsp;&nbsp;&nbsp;" if legend else "")
            + f"<span style='color:{style.TEXT_DIM.name()}'>{html.escape(note)}</span>")

    def _fill_calibration(self, bins: list | None, confusion, task: str, summary: dict) -> None:
        plot = self.reliability
        plot.clear()
        plot.tips = []
        what = "P(answer 1 preferred)" if task == "pairwise" else "P(rated good)"
        plot.label("bottom", f"predicted {what}")
        plot.label("left", "observed share")
        plot.addItem(pg.PlotDataItem([0, 1], [0, 1], pen=pg.mkPen(style.TEXT_DIM, width=1,
                                                                    style=Qt.PenStyle.DashLine)))
        plot.setXRange(-0.06, 1.06, padding=0)
        plot.setYRange(-0.08, 1.1, padding=0)
        if bins:
            ok = [b for b in bins if _ok(b.get("predicted")) and _ok(b.get("observed")) and b.get("n")]
            if ok:
                nmax = max(b["n"] for b in ok)
                xs = [b["predicted"] for b in ok]
                ys = [b["observed"] for b in ok]
                sizes = [7 + 19 * math.sqrt(b["n"] / nmax) for b in ok]
                plot.addItem(pg.PlotDataItem(xs, ys, pen=pg.mkPen(QColor("#5aa9e6"), width=1.5)))
                plot.addItem(pg.ScatterPlotItem(xs, ys, size=sizes, brush=pg.mkBrush(90, 169, 230, 170),
                                                pen=pg.mkPen(QColor("#cfe6fa"), width=1)))
                for b, x, y, size in zip(ok, xs, ys, sizes):
                    above = y < 0.8
                    gap = 0.035 + 0.0025 * size  # clear of the point
                    t = pg.TextItem(str(b["n"]), color=style.TEXT_DIM, anchor=(0.5, 1.0) if above else (0.5, 0.0))
                    t.setPos(x, y + gap if above else y - gap)
                    plot.addItem(t)
                    tip = (f"{b['n']} rows predicted {b.get('low', 0):.1f}\u2013{b.get('high', 1):.1f}: "
                           f"mean predicted {x:.2f}, observed {y:.2f}")
                    plot.tips.append((QRectF(x - 0.04, y - 0.04, 0.08, 0.08), tip))
            note = "Points: bins of predicted probability, sized and labelled by their rows; dashed: perfect calibration."
        else:
            t = pg.TextItem("this model was saved without its calibration bins:\ntrain again to see them",
                            color=style.TEXT_DIM, anchor=(0.5, 0.5))
            t.setPos(0.5, 0.5)
            plot.addItem(t)
            note = ""
        if _ok(summary.get("ece")):
            note = (f"ECE {summary['ece']:.3f} \u00b7 Brier {summary.get('brier') or float('nan'):.3f}. " + note).strip()
        self.calibration_note.setText(note)
        # confusion: label 1 first
        pos, neg = ("answer 1", "answer 2") if task == "pairwise" else ("good", "not good")
        verb = "chose" if task == "pairwise" else "rated"
        self.confusion_title.setText(f"Confusion (rows: the participant's {'choice' if task == 'pairwise' else 'rating'};"
                                     " columns: the model's prediction)")
        t = self.confusion
        t.setHorizontalHeaderLabels([f"predicts\n{pos}", f"predicts\n{neg}"])
        t.setVerticalHeaderLabels([f"{verb} {pos}", f"{verb} {neg}"])
        try:
            (tn, fp), (fn, tp) = confusion
            cells = [[int(tp), int(fn)], [int(fp), int(tn)]]
        except (TypeError, ValueError):
            cells = None
        for i in range(2):
            row_total = sum(cells[i]) if cells else 0
            for j in range(2):
                if cells is None:
                    t.setItem(i, j, _item("\u2013"))
                    continue
                c = cells[i][j]
                share = c / row_total if row_total else 0.0
                it = _item(f"{c}\n{100 * share:.0f} %")
                it.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                it.setToolTip(f"{c} of {row_total} ({100 * share:.0f} % of the row)")
                base = QColor("#2f7d4a") if i == j else QColor("#8c3b35")
                bg = QColor(style.PANEL)
                a = 0.2 + 0.8 * share
                it.setBackground(QBrush(QColor(int(bg.red() * (1 - a) + base.red() * a),
                                               int(bg.green() * (1 - a) + base.green() * a),
                                               int(bg.blue() * (1 - a) + base.blue() * a))))
                f = it.font()
                f.setBold(i == j)
                it.setFont(f)
                t.setItem(i, j, it)

    # -- saved models ------------------------------------------------------------------------------
    def refresh_models(self, select: str | None = None) -> None:
        """List the models in the data folder's ``.models`` (a damaged one as a row with its problem)."""
        from ...reward.store import list_models
        from ...session.provenance import read_stale, stale_text

        folder = self.models_folder
        keep = select or self.selected_model()
        models = list_models(folder) if folder else []
        self.models = models
        t = self.models_table
        t.setSortingEnabled(False)
        t.setRowCount(len(models))
        for i, (path, info) in enumerate(reversed(models)):  # the newest first (names start with the time)
            name = os.path.basename(path)
            if isinstance(info, str):
                cells = [name, "", "", "", "", "", "", "", "", info]
                for j, text in enumerate(cells):
                    it = _item(text, tip=info, colour=style.BAD if j in (0, 9) else None)
                    it.setData(Qt.ItemDataRole.UserRole, path)
                    t.setItem(i, j, it)
                continue
            m = info.get("metrics") or {}
            d = info.get("data") or {}
            created = str(info.get("created", ""))
            when = created[:16].replace("T", " ")
            stale = read_stale(path)
            why = stale_text(stale) if stale else ""
            cells = [(name + ("  (stale)" if stale else ""), False), (str(info.get("task", "")), False),
                     (str(info.get("kind", "")), False), (str(info.get("feature_set", "")), False),
                     (_pct(m.get("fused_acc")), True), (_pct(m.get("text_acc")), True), (when, False),
                     (str(d.get("sessions", "")), True), (str(d.get("participants", "")), True), (why, False)]
            for j, (text, right) in enumerate(cells):
                it = _item(text, right=right, tip=(path + (f"\n{why}" if why else "")) if j == 0 else why if j == 9
                           else "", colour=style.WARN if stale and j in (0, 9) else None)
                it.setData(Qt.ItemDataRole.UserRole, path)
                t.setItem(i, j, it)
        n_bad = sum(isinstance(info, str) for _p, info in models)
        self.models_label.setToolTip(folder)
        self.models_label.setText(
            (f"{len(models)} model{'s' if len(models) != 1 else ''} in {folder}" if models else
             f"No saved models yet in {folder or 'the data folder'}: Train saves one.")
            + (f" ({n_bad} cannot be used)" if n_bad else ""))
        self.pages.setTabText(1, f"Saved models ({len(models)})" if models else "Saved models")
        if keep:
            self.select_model(keep)
        self._model_selected()

    def select_model(self, path: str) -> bool:
        for i in range(self.models_table.rowCount()):
            it = self.models_table.item(i, 0)
            if it is not None and it.data(Qt.ItemDataRole.UserRole) == path:
                self.models_table.selectRow(i)
                return True
        return False

    def selected_model(self) -> str:
        rows = self.models_table.selectionModel().selectedRows() if self.models_table.selectionModel() else []
        if not rows:
            return ""
        it = self.models_table.item(rows[0].row(), 0)
        return it.data(Qt.ItemDataRole.UserRole) if it is not None else ""

    def _info_of(self, path: str):
        return next((info for p, info in self.models if p == path), None)

    def _model_selected(self) -> None:
        path = self.selected_model()
        info = self._info_of(path) if path else None
        usable = isinstance(info, dict)
        self.show_btn.setEnabled(usable and bool(info.get("metrics")))
        self.apply_btn.setEnabled(usable and self.replay_target() is not None
                                  and not (self.apply_runner is not None and self.apply_runner.running))
        self.delete_btn.setEnabled(bool(path))
        self.reveal_act.setEnabled(bool(path))
        self._update_replay_label()
        if not path:
            self.model_info.clear()
        elif not usable:
            self.model_info.setHtml(f"<p><b>{html.escape(os.path.basename(path))}</b></p>"
                                    f"<p style='color:{style.BAD.name()}'>{html.escape(str(info))}</p>"
                                    f"<p>{html.escape(path)}</p>")
        else:
            self.model_info.setHtml(_model_html(path, info))

    def show_selected(self) -> None:
        path = self.selected_model()
        info = self._info_of(path)
        if not isinstance(info, dict) or not info.get("metrics"):
            return
        folds = (info.get("settings") or {}).get("folds")
        self.show_summary(info["metrics"], info["metrics"].get("reliability"), folds=folds, title=f"Saved model {os.path.basename(path)}")
        self.pages.setCurrentIndex(0)

    def delete_selected(self) -> None:
        path = self.selected_model()
        if not path:
            return
        answer = QMessageBox.question(
            self, "Delete reward model", f"Delete the model {os.path.basename(path)}?\n\n{path}\n\n"
            "Its folder is removed; this cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_model(path)

    def delete_model(self, path: str) -> bool:
        """Remove the model folder ``path`` (one listed in ``.models``); False when it is not one."""
        if os.path.abspath(path) not in {os.path.abspath(p) for p, _i in self.models}:
            return False
        try:
            shutil.rmtree(path)
        except OSError as exc:
            self._say(f"{path} could not be deleted: {exc.strerror or exc}", bad=True)
            return False
        self._say(f"Deleted {os.path.basename(path)}.")
        self.refresh_models()
        return True

    def _models_menu(self, pos) -> None:
        if not self.selected_model():
            return
        menu = QMenu(self)
        for text, slot, on in (("Show results", self.show_selected, self.show_btn.isEnabled()),
                               ("Apply to open replay", self.apply_selected, self.apply_btn.isEnabled()),
                               ("Delete…", self.delete_selected, True)):
            act = menu.addAction(text)
            act.triggered.connect(slot)
            act.setEnabled(on)
        menu.addSeparator()
        menu.addAction(self.reveal_act)
        menu.exec(self.models_table.viewport().mapToGlobal(pos))

    def _reveal_selected(self) -> None:
        path = self.selected_model()
        if path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(path))

    # -- applying to a replay ----------------------------------------------------------------------
    def _replays(self) -> list[QWidget]:
        if self.tabs is None:
            return []
        out = []
        for i in range(self.tabs.count()):
            w = self.tabs.widget(i)
            if w is not None and w.property("session_path") and hasattr(w, "set_predictions"):
                out.append(w)
        return out

    def _tab_changed(self, i: int) -> None:
        w = self.tabs.widget(i) if self.tabs is not None and i >= 0 else None
        if w is not None and w.property("session_path") and hasattr(w, "set_predictions"):
            self._replay = w
        self._model_selected()

    def replay_target(self):
        """The replay a model is applied to: the one shown last, else the last opened."""
        replays = self._replays()
        if self._replay is not None and any(r is self._replay for r in replays):
            return self._replay
        return replays[-1] if replays else None

    def _update_replay_label(self) -> None:
        target = self.replay_target()
        self.replay_label.setText(f"open replay: {os.path.basename(target.property('session_path'))}" if target
                                  else "no replay open (open a session from the Sessions tab)")

    def apply_selected(self):
        """Apply the selected model to the open replay's session, as a job; returns its runner."""
        path = self.selected_model()
        target = self.replay_target()
        if not path or target is None or not isinstance(self._info_of(path), dict):
            return None
        session = target.property("session_path")
        name = os.path.basename(path)
        self._say(f"Applying {name} to {os.path.basename(session)}\u2026")
        runner = self._run_job(Job(_apply_job, path, session, cache_dir=self.cache_dir, name="reward-apply"),
                               f"Applying {name}",
                               on_done=lambda res, v=target, n=name, s=session: self._applied(v, n, s, res),
                               on_failed=lambda msg: self._say(f"{name} could not be applied: {msg}", bad=True))
        runner.ended.connect(lambda _s: self._model_selected())
        self.apply_runner = runner
        self._model_selected()
        return runner

    def _applied(self, view, name: str, session: str, result) -> None:
        from ...reward.predict import accuracy_of

        task, preds = result
        if view not in self._replays():  # the tab was closed meanwhile
            self._say(f"{name}: the replay of {os.path.basename(session)} was closed.")
            return
        view.set_predictions(name, preds)
        acc = accuracy_of(preds) if task == "pairwise" else math.nan
        judged = sum(p.actual in (1, 2) for p in preds)
        self._say(f"{name} applied to {os.path.basename(session)}: {len(preds)} predictions"
                  + (f"; agrees with the participant on {round(acc * judged)} of {judged} questions "
                     f"({_pct(acc, 0)})" if _ok(acc) else "") + ". See the replay's Turn panel.", good=True)
        self.applied.emit(session)


def _model_html(path: str, info: dict) -> str:
    esc = html.escape
    m = info.get("metrics") or {}
    d = info.get("data") or {}
    s = info.get("settings") or {}
    v = info.get("versions") or {}
    dim = style.TEXT_DIM.name()

    def row(k, val) -> str:
        return f"<tr><td style='color:{dim}; padding-right:14px'>{esc(k)}</td><td>{val}</td></tr>"

    rows = [row("task", esc(f"{info.get('task')} \u2014 {TASKS.get(info.get('task'), '')}")),
            row("model", esc(f"{info.get('kind')} on the {info.get('feature_set')} features "
                             f"({len(info.get('design_columns') or [])} columns)")),
            row("trained", esc(str(info.get("created", "")))),
            row("data", esc(f"{d.get('sessions')} sessions, {d.get('participants')} participants, "
                            f"{d.get('rows')} rows; fingerprint {d.get('fingerprint', '')}")),
            row("evaluation", esc(headline(m, s.get("folds"))) if m else "\u2013")]
    if s:
        rows.append(row("settings", esc(f"kinds {', '.join(s.get('kinds') or [])}; sets "
                                        f"{', '.join(s.get('sets') or [])}; {s.get('folds')} folds"
                                        + (f" x {s['repeats']} repeats" if (s.get("repeats") or 1) > 1 else "")
                                        + "; seed "
                                        f"{s.get('seed')}; quality rule "
                                        f"{'on' if s.get('quality') else 'off'}")))
    dropped = m.get("dropped") or {}
    if dropped:
        rows.append(row("left out", "<br>".join(esc(f"{p}: {why}") for p, why in list(dropped.items())[:20])))
    if info.get("llms"):
        rows.append(row("answer models", esc(", ".join(info["llms"]))))
    if v:
        rows.append(row("made with", esc(", ".join(f"{k} {x}" for k, x in v.items()))))
    rows.append(row("folder", esc(path)))
    return f"<h3 style='margin-bottom:4px'>{esc(os.path.basename(path))}</h3><table cellspacing='2'>" \
           + "".join(rows) + "</table>"
