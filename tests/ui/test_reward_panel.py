"""The workbench's Reward models tab, offscreen, on synthetic recorded sessions whose gaze and
cursor give the participant's choice away: a real training job from the window, its results,
the saved model in the data folder, a model applied to an open replay, a training that
cannot work (one participant), damaged and newer-format model folders."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtWidgets import QApplication

from ifllm_lab.session import SessionMeta
from ifllm_lab.session.store import SessionStore
from ifllm_lab.ui.workbench.reward import MODELS_FOLDER

from tests.support.screenshots import shots_folder
from tests.support.workbench import SIZES

STUDY = "synthetic-study"  # the study make_study_session writes


def _study_session(path: Path, participant: str, *, seed: int, signal: float = 0.9, turns: int = 8) -> None:
    """One synthetic pairwise session (``make_study_session``)."""
    from ifllm_lab.synthetic.session import make_study_session

    make_study_session(str(path), participant, turns=turns, signal=signal, seed=seed)


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory) -> Path:
    """Six participants' pairwise sessions of one study (8 questions each, signal 0.9) and
    one session of another study."""
    root = tmp_path_factory.mktemp("reward-data")
    d = root / STUDY
    d.mkdir()
    for i in range(6):
        _study_session(d / f"p{i:02d}.h5", f"P{i:02d}", seed=100 + i)
    st = SessionStore(root / "pilot-01.h5", SessionMeta(participant="Q01", study="pilot"))
    st.append("mouse", {"t": np.arange(0, 5, 0.01), "x": np.full(500, 300.0), "y": np.full(500, 200.0)})
    st.close(complete=True)
    return root


@pytest.fixture(scope="module")
def one_participant(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("reward-one")
    for k in range(2):
        _study_session(d / f"solo-{k}.h5", "P-SOLO", seed=7 + k, turns=6)
    return d


def _scanned(qtbot, wb, scans: int = 1) -> None:
    qtbot.waitUntil(lambda: wb.sessions.scans >= scans, timeout=120_000)


def _shoot(wb, name: str, tmp_path: Path) -> None:
    shots = shots_folder(tmp_path)
    for size_name, size in SIZES.items():
        wb.resize(*size)
        for _ in range(5):
            QApplication.processEvents()
            wb.repaint()
        assert wb.grab().save(str(shots / f"workbench-{name}-{size_name}.png"))
    wb.resize(*SIZES["large"])


def _items(plot, kind) -> list:
    return [it for it in plot.plotItem.items if isinstance(it, kind)]


def _percent(text: str) -> float:
    assert text.endswith(" %"), text
    return float(text[:-2]) / 100


def test_train_results_saved_model_and_replay(make_wb, qtbot, study_folder, tmp_path):
    wb = make_wb(study_folder)
    _scanned(qtbot, wb)
    panel = wb.reward
    wb.tabs.setCurrentWidget(panel)
    assert wb.tabs.tabText(wb.tabs.indexOf(panel)) == "Reward models"
    # the choices come from the reward layer's registries
    from ifllm_lab.reward.model import KINDS, SETS, TASKS

    assert [panel.task_box.itemData(i) for i in range(panel.task_box.count())] == list(TASKS)
    assert list(panel.kind_boxes) == list(KINDS) and list(panel.set_boxes) == list(SETS)
    assert panel.chosen_kinds() == [next(iter(KINDS))] and panel.chosen_sets() == list(SETS)
    assert panel.folds.value() == 5 and panel.quality.isChecked() and not panel.embeddings.isChecked()
    assert panel.repeats.value() == 1
    # data: all sessions, the study's, the selected ones
    assert panel.data_label.text().startswith("7 sessions, 7 participants")
    panel.study_box.setCurrentIndex(panel.study_box.findData(STUDY))
    assert panel.use_study.isChecked()
    assert panel.data_label.text().startswith("6 sessions, 6 participants, 48 rated questions")
    assert len(panel.sources) == 6 and all(f"{os.sep}{STUDY}{os.sep}" in p for p in panel.sources)
    panel.use_selected.setChecked(True)
    assert "No session selected" in panel.data_label.text() and not panel.train_btn.isEnabled()
    assert wb.sessions.select_path(str(study_folder / STUDY / "p00.h5"))
    assert panel.data_label.text().startswith("1 session, 1 participant")
    assert panel.use_selected.text() == "Selected sessions (1)"
    panel.use_study.setChecked(True)

    panel.folds.setValue(3)
    panel.repeats.setValue(2)
    assert panel.train_btn.isEnabled()
    runner = panel.train()
    assert runner is not None and not panel.train_btn.isEnabled()
    qtbot.waitUntil(lambda: not runner.running, timeout=600_000)
    assert runner.state == "done", runner.job.error
    assert panel.train_btn.isEnabled()

    # the accuracy table: one row per kind x feature set, accuracies in [0, 1]
    t = panel.acc_table
    assert t.rowCount() == len(SETS)
    rows = {t.item(i, 0).text(): i for i in range(t.rowCount())}
    assert set(rows) == set(SETS)
    for i in range(t.rowCount()):
        assert t.item(i, 1).text().startswith(next(iter(KINDS)))
        assert 0.0 <= _percent(t.item(i, 2).text()) <= 1.0
        assert t.item(i, 3).text().startswith("[") and int(t.item(i, 5).text()) == 48
        assert 0.0 <= float(t.item(i, 6).text()) <= 1.0  # AUC
    assert _percent(t.item(rows["implicit"], 2).text()) > 0.7  # the eyes and the hand give it away
    summary = panel.last_summary
    assert summary["implicit_acc"] > 0.7 and summary["participants"] == 6
    text = panel.headline.text()
    assert "fused" in text and " vs text " in text and "difference" in text
    assert "participant-grouped 3-fold CV repeated 2 times, 6 participants" in text
    assert summary["repeats"] == 2 and all(len(r["repeat_accs"]) == 2 for r in summary["by_model"][
        next(iter(KINDS))].values())
    # under the table: the participants' side bias, from the same summary
    bias = summary["participant_bias"]
    assert bias["participants"] == 6 and bias["pairs"] == 48
    assert panel.accuracy_note.isVisibleTo(panel) and "left answer" in panel.accuracy_note.text()
    assert f"{100 * bias['own_side_acc']:.1f} %" in panel.accuracy_note.text()
    # the plots
    assert len(_items(panel.ablation, pg.BarGraphItem)) == 1 and len(_items(panel.ablation, pg.ErrorBarItem)) == 1
    chance = [it for it in _items(panel.ablation, pg.InfiniteLine) if it.value() == 50.0]
    assert chance and chance[0].pen.style() == pg.QtCore.Qt.PenStyle.DashLine
    assert len(_items(panel.importance, pg.BarGraphItem)) == 1
    assert 0 < len(panel.importance.tips) <= 15 and all("\n" in tip for _r, tip in panel.importance.tips)
    assert _items(panel.reliability, pg.ScatterPlotItem)
    conf = [[int(panel.confusion.item(i, j).text().split()[0]) for j in range(2)] for i in range(2)]
    assert sum(map(sum, conf)) == 48 and conf[0][0] + conf[1][1] > 0.7 * 48
    # the model folder, and the saved models list
    models = Path(study_folder) / MODELS_FOLDER
    made = [p for p in models.iterdir() if p.is_dir()]
    assert len(made) == 1 and (made[0] / "model.json").is_file() and (made[0] / "estimator.skops").is_file()
    assert made[0].name.endswith(f"-pairwise-{next(iter(KINDS))}")
    assert panel.models_table.rowCount() == 1 and panel.models_table.item(0, 0).text() == made[0].name
    assert panel.selected_model() == str(made[0])
    assert panel.models_table.item(0, 3).text() == "fused" and panel.models_table.item(0, 4).text().endswith(" %")
    assert "Saved as" in panel.status.text()
    _scanned(qtbot, wb, scans=wb.sessions.scans)  # the model folder is no session
    assert all(MODELS_FOLDER not in r.path for r in wb.sessions.model.rows())
    _shoot(wb, "reward", tmp_path)

    # a saved model's results come back from its folder
    panel.show_selected()
    assert "Saved model" in panel.headline.text() and panel.acc_table.rowCount() == len(SETS)

    # applied to an open replay: the turn panel says what it predicts and why
    assert not panel.apply_btn.isEnabled()  # no replay open yet
    view = wb.open_replay(str(study_folder / STUDY / "p00.h5"))
    assert view is not None
    wb.tabs.setCurrentWidget(panel)
    assert panel.replay_target() is view and "p00.h5" in panel.replay_label.text()
    assert panel.select_model(str(made[0])) and panel.apply_btn.isEnabled()
    runner = panel.apply_selected()
    qtbot.waitUntil(lambda: not runner.running, timeout=120_000)
    assert runner.state == "done", runner.job.error
    assert "applied to p00.h5" in panel.status.text()
    wb.tabs.setCurrentWidget(view)
    view.seek(view.data.turns[2].t + 1.0)
    qtbot.waitUntil(lambda: "turn 3" in view.turn_panel.toPlainText().lower(), timeout=5_000)
    panel_text = view.turn_panel.toPlainText()
    assert f"Reward model {made[0].name}" in panel_text and "P(answer 1 preferred) = " in panel_text
    assert "predicts answer" in panel_text and "chose answer" in panel_text and "moved by:" in panel_text
    shots = shots_folder(tmp_path)
    view.grab().save(str(shots / "workbench-reward-replay.png"))
    view.set_predictions("", [])
    assert "Reward model" not in view.turn_panel.toPlainText()

    # deleted: the folder goes, the list follows
    wb.tabs.setCurrentWidget(panel)
    assert panel.delete_model(str(made[0]))
    assert not made[0].exists() and panel.models_table.rowCount() == 0


def test_one_participant_fails_with_its_message(make_wb, qtbot, one_participant):
    wb = make_wb(one_participant)
    _scanned(qtbot, wb)
    panel = wb.reward
    assert panel.data_label.text().startswith("2 sessions, 1 participant")
    panel.folds.setValue(3)
    runner = panel.train()
    qtbot.waitUntil(lambda: not runner.running, timeout=300_000)
    assert runner.state == "failed"
    assert panel.status.text().startswith("Training failed:") and "at least 2 participants" in panel.status.text()
    models = one_participant / MODELS_FOLDER
    assert not models.exists() or not [p for p in models.iterdir()]
    assert panel.models_table.rowCount() == 0 and panel.train_btn.isEnabled()
    assert panel.result_stack.currentWidget() is panel.empty  # no results shown


def test_cancel_from_the_status_line_saves_nothing(make_wb, qtbot, study_folder):
    wb = make_wb(study_folder)
    _scanned(qtbot, wb)
    panel = wb.reward
    models = Path(study_folder) / MODELS_FOLDER
    before = set(models.iterdir()) if models.is_dir() else set()
    runner = panel.train()
    assert wb.shown_runner() is runner
    qtbot.waitUntil(lambda: wb.cancel_btn.isVisible(), timeout=60_000)  # its progress is in the status line
    wb.cancel_job()
    qtbot.waitUntil(lambda: not runner.running, timeout=120_000)
    assert runner.state == "cancelled"
    assert panel.status.text() == "Training cancelled; nothing was saved." and panel.train_btn.isEnabled()
    assert (set(models.iterdir()) if models.is_dir() else set()) == before


def test_damaged_and_newer_models_show_as_rows(make_wb, qtbot, tmp_path):
    data = tmp_path / "data"
    models = data / MODELS_FOLDER
    (models / "20260101-000000-pairwise-logistic").mkdir(parents=True)
    (models / "20260101-000000-pairwise-logistic" / "model.json").write_text("{garbage")
    (models / "20260102-000000-pairwise-boosting").mkdir()
    (models / "20260102-000000-pairwise-boosting" / "model.json").write_text(
        json.dumps({"format": 99, "versions": {"ifllm_lab": "9.0"}}))
    wb = make_wb(data)
    _scanned(qtbot, wb)
    panel = wb.reward
    t = panel.models_table
    assert t.rowCount() == 2
    problems = {t.item(i, 0).text(): t.item(i, 9).text() for i in range(2)}
    assert "cannot be read" in problems["20260101-000000-pairwise-logistic"]
    assert "update IFLLM Lab" in problems["20260102-000000-pairwise-boosting"]
    assert "2 cannot be used" in panel.models_label.text()
    assert panel.select_model(str(models / "20260101-000000-pairwise-logistic"))
    assert not panel.show_btn.isEnabled() and not panel.apply_btn.isEnabled() and panel.delete_btn.isEnabled()
    assert "cannot be read" in panel.model_info.toPlainText()
    assert panel.delete_model(str(models / "20260101-000000-pairwise-logistic")) and t.rowCount() == 1
    assert not panel.delete_model(str(data))  # only a listed model folder is ever removed
    assert data.is_dir()
    other = tmp_path / "other"
    other.mkdir()
    wb.sessions.set_folder(str(other))  # another data folder: its models
    assert t.rowCount() == 0 and "No saved models yet" in panel.models_label.text()


def test_the_side_bias_note_says_what_the_paper_protocol_can_learn():
    from ifllm_lab.ui.workbench.reward import bias_note

    strong = {"participants": 27, "own_side_acc": 0.582, "left_share_p10": 0.19, "left_share_p90": 0.85}
    assert bias_note(strong).startswith("Participants differ in picking the left answer: 19\u201385 %")
    assert "predict 58.2 %" in bias_note(strong)
    assert "(the paper's protocol) a model that is not mirrored" in bias_note(strong)
    weak = {**strong, "own_side_acc": 0.49}
    assert "near chance" in bias_note(weak) and "paper's protocol" not in bias_note(weak)
    assert bias_note({}) == "" and bias_note({**strong, "participants": 0}) == ""
