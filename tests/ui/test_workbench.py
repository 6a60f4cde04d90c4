"""The researcher's workbench, offscreen, on the real IFLLM development data: the import
through the window, the sessions table against ``inspect``, broken and interrupted files,
replays in tabs, the studies and Run study, window state."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication, QMainWindow

from ifllm_lab.session import SessionMeta, SessionReader
from ifllm_lab.session.store import SessionStore

from tests.support.repo import RELEASE_ARCHIVE
from tests.support.screenshots import shots_folder
from tests.support.workbench import SIZES



def _scanned(qtbot, wb, scans: int = 1, timeout=120_000):
    qtbot.waitUntil(lambda: wb.sessions.scans >= scans, timeout=timeout)


def _shoot(wb, name: str, tmp_path: Path) -> None:
    shots = shots_folder(tmp_path)
    for size_name, size in SIZES.items():
        wb.resize(*size)
        for _ in range(5):
            QApplication.processEvents()  # what follows a resize (the columns' fit) runs first
            wb.repaint()
        assert wb.grab().save(str(shots / f"workbench-{name}-{size_name}.png"))
    wb.resize(*SIZES["large"])


def _inspect(path: str) -> dict:
    p = subprocess.run([sys.executable, "-m", "ifllm_lab", "inspect", "--json", path], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.slow
def test_import_through_the_window_then_every_session_in_the_table(make_wb, qtbot, imported, tmp_path):
    """The release imported from the window (most sessions already there from an earlier,
    stopped import: the window finishes it), with progress to the end; the table shows every
    session, and its figures agree with ``inspect``."""
    report0, out0 = imported
    data = tmp_path / "data"
    target = data / "ifllm-release"
    target.mkdir(parents=True)
    earlier = sorted(out0.glob("*.h5"))
    for p in earlier[:-30]:  # an earlier import that stopped 30 sessions short
        shutil.copy2(p, target / p.name)
    wb = make_wb(data)
    _scanned(qtbot, wb)
    assert wb.sessions.model.rowCount() == len(earlier) - 30
    fractions = []
    runner = wb.import_release(str(RELEASE_ARCHIVE))
    runner.progress.connect(lambda f, m: fractions.append(f))
    qtbot.waitUntil(lambda: wb.job_bar.isVisible(), timeout=10_000)
    _shoot(wb, "import", tmp_path)
    qtbot.waitUntil(lambda: not runner.running, timeout=600_000)
    report = wb.last_import
    assert report is not None and not report.not_imported, report and report.not_imported
    assert len(report.sessions) == 30 and len(report.skipped) == len(earlier) - 30
    seen = [f for f in fractions if not math.isnan(f)]
    assert seen and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert "30 sessions imported" in wb.import_message
    _scanned(qtbot, wb, scans=wb.sessions.scans + 1)
    qtbot.waitUntil(lambda: wb.sessions.model.rowCount() == len(earlier), timeout=60_000)
    assert wb.sessions.count_label.text() == f"{len(earlier)} sessions"
    # spot checks against inspect --json
    rows = {os.path.basename(r.path): r for r in wb.sessions.model.rows()}
    for name in [p.name for p in earlier][::41]:
        info = _inspect(str(target / name))
        row = rows[name]
        assert row.state == info["state"] and row.participant == info["participant"]
        assert row.turns == info["turns"] and row.duration_s == pytest.approx(info["duration_s"], abs=0.01)
        g = info["streams"].get("gaze")
        if g and g["count"] > 1:
            assert row.gaze_rate_hz == pytest.approx(g["rate_hz"], rel=1e-3)
    # filters and search
    wb.sessions.search.setText(earlier[0].stem)
    assert wb.sessions.shown_paths() == [str(target / earlier[0].name)]
    wb.sessions.search.clear()
    _shoot(wb, "sessions", tmp_path)
    # an imported pairwise task in a replay tab, at a moment with gaze on the answers
    pairwise = next(p for p in (target / "worker_4e81fa4e_task133.h5", *sorted(target.glob("*.h5"))) if p.exists())
    assert wb.sessions.select_path(str(pairwise))
    wb.sessions.actions["replay"].trigger()
    view = wb.tabs.currentWidget()
    assert view.property("session_path") == str(pairwise)
    qtbot.waitUntil(lambda: not view.background.running, timeout=120_000)
    view.seek(view.data.t_start + 0.6 * (view.data.t_end - view.data.t_start))
    qtbot.waitUntil(lambda: "No turn" not in view.turn_panel.toPlainText(), timeout=5_000)  # panels follow
    _shoot(wb, "replay-imported", tmp_path)


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """A recorded session, a truncated copy, and one interrupted by a crash."""
    d = tmp_path / "mixed" / "pilot"
    d.mkdir(parents=True)
    st = SessionStore(d / "P-GOOD.h5", SessionMeta(participant="P-GOOD", study="pilot", clock_start_unix=1.76e9,
                                                   screen_width_px=1280, screen_height_px=720))
    t = np.arange(0, 30, 1 / 60)
    st.append("gaze", {"t": t, "x": 640 + 100 * np.sin(t), "y": 360 + 50 * np.cos(t), "valid": np.ones(len(t), "u1")})
    st.append("mouse", {"t": np.arange(0, 30, 0.01), "x": np.full(3000, 600.0), "y": np.full(3000, 300.0)})
    st.append("turns", {"t": [1.0, 15.0], "t_end": [15.0, 30.0], "prompt": ["Why?", "How?"],
                        "response_1": ["Because.", "Like this."], "likert_1": [4, 5]})
    st.close(complete=True)
    data = (d / "P-GOOD.h5").read_bytes()
    (d / "P-CUT.h5").write_bytes(data[: len(data) // 2])
    live = SessionStore(d / "live.h5", SessionMeta(participant="P-CRASH", study="pilot"), swmr=True)
    live.append("mouse", {"t": np.arange(300) / 100.0, "x": np.arange(300.0), "y": np.arange(300.0)})
    live.flush()
    shutil.copyfile(d / "live.h5", d / "P-CRASH.h5")
    live.close()
    os.remove(d / "live.h5")
    return d.parent


def test_broken_and_interrupted_files_in_the_table(make_wb, qtbot, mixed_folder, tmp_path):
    wb = make_wb(mixed_folder)
    _scanned(qtbot, wb)
    panel = wb.sessions
    states = {r.participant or r.name: r for r in panel.model.rows()}
    cut = states["P-CUT.h5"]
    assert cut.state == "unreadable" and "truncated" in cut.problem
    assert panel.select_path(cut.path)
    assert "cannot be read" in panel.report.toPlainText() and "truncated" in panel.report.toPlainText()
    assert not panel.actions["replay"].isEnabled() and not panel.actions["csv"].isEnabled()
    crash = states["P-CRASH"]
    assert crash.state == "interrupted"
    panel.state_box.setCurrentIndex(panel.state_box.findData("interrupted"))
    assert panel.shown_paths() == [crash.path] and panel.count_label.text() == "1 of 3 sessions"
    assert panel.select_path(crash.path)
    assert panel.actions["close"].isEnabled() and panel.actions["recover"].isEnabled()
    qtbot.waitUntil(lambda: "not closed cleanly" in panel.report.toPlainText(), timeout=30_000)
    _shoot(wb, "interrupted", tmp_path)
    scans = panel.scans
    runner = panel.recover(crash.path, close=True)
    qtbot.waitUntil(lambda: not runner.running, timeout=60_000)
    assert runner.state == "done", runner.job.error
    _scanned(qtbot, wb, scans=scans + 1)
    panel.state_box.setCurrentIndex(0)
    assert panel.model.row_for(crash.path).state == "recovered"
    with SessionReader(crash.path) as r:
        assert r.state == "recovered" and len(r["mouse"]) == 300


def test_replays_open_in_tabs(make_wb, qtbot, mixed_folder, tmp_path):
    from ifllm_lab.ui.workbench.window import FIXED_TABS

    wb = make_wb(mixed_folder)
    _scanned(qtbot, wb)
    good = str(mixed_folder / "pilot" / "P-GOOD.h5")
    assert wb.sessions.select_path(good)
    wb.sessions.actions["replay"].trigger()
    assert wb.tabs.count() == FIXED_TABS + 1 and wb.tabs.currentWidget().property("session_path") == good
    view = wb.tabs.currentWidget()
    wb.sessions.open_replay.emit(good)  # the same session again: its tab, not a second one
    assert wb.tabs.count() == FIXED_TABS + 1 and wb.tabs.currentWidget() is view
    qtbot.wait(300)
    _shoot(wb, "replay", tmp_path)
    wb.close_tab(FIXED_TABS)
    assert wb.tabs.count() == FIXED_TABS
    wb.close_tab(0)  # the fixed tabs (sessions, studies, reward models, DPO jobs) stay
    assert wb.tabs.count() == FIXED_TABS


def test_studies_show_problems_and_run_study_starts_the_app(make_wb, qtbot, tmp_path, face_video):  # noqa: F811
    data = tmp_path / "data"
    data.mkdir()
    (data / "broken.toml").write_text('[study]\nname = "broken"\n[calibration]\npattern = "7-point"\n')
    (data / "pilot.toml").write_text(f'[study]\nname = "pilot"\nmode = "pointwise"\nquestions = 2\n'
                                     f'[camera]\nsource = "{face_video}"\n')
    from ifllm_lab.session import SessionMeta
    from ifllm_lab.session.store import SessionStore

    for who in ("p01", "p02"):  # two sessions this study recorded earlier
        SessionStore(str(data / f"{who}.h5"), SessionMeta(participant=who, study="pilot")).close()
    wb = make_wb(data)
    _scanned(qtbot, wb)
    studies = wb.studies
    wb.tabs.setCurrentWidget(studies)
    names = [studies.list.item(i).text().strip() for i in range(studies.list.count())]
    assert "broken" in names and "pilot" in names and "pairwise" in names  # the data folder's and the examples
    assert studies.select(str(data / "broken.toml"))
    assert "7-point" in studies.problems.text() and not studies.run_btn.isEnabled()
    assert studies.select(str(data / "pilot.toml"))
    summary = studies.summary.toPlainText()
    assert "pointwise" in summary and "2 per participant" in summary
    assert "2 (2 complete) from 2 participant(s)" in summary, summary
    assert "How natural did the conversation feel?" in summary  # the questionnaire's items, listed
    assert studies.problems.text() == "Ready to run." and studies.run_btn.isEnabled()
    _shoot(wb, "studies", tmp_path)
    cmd = studies.command(str(data / "pilot.toml"))
    assert cmd[-4:] == ["--screen", "0", "--data", str(data)]
    ended = []
    studies.session_ended.connect(ended.append)
    studies.run_selected(extra=["--check", "60", "--size", "800x600"])
    assert studies.running and not studies.run_btn.isEnabled()
    qtbot.waitUntil(lambda: bool(ended), timeout=180_000)
    assert ended == [0], studies.last_output[-2000:]
    assert '"ok": true' in studies.last_output
    assert studies.run_btn.isEnabled()


def test_window_state_and_recent_folders_are_remembered(make_wb, qtbot, mixed_folder, tmp_path):
    wb = make_wb(mixed_folder)
    _scanned(qtbot, wb)
    wb.resize(1100, 700)
    wb.sessions.splitter.setSizes([200, 400])
    sizes = wb.sessions.splitter.sizes()
    other = tmp_path / "other"
    other.mkdir()
    wb.sessions.set_folder(str(other))
    wb.close()
    again = make_wb(None, size=None)  # the same settings file: the last folder, the same geometry
    assert again.sessions.folder == str(other)
    assert again.recent_folders()[:2] == [str(other), str(mixed_folder)]
    probe = QMainWindow()  # what Qt itself restores from the saved bytes (clamped to this screen)
    qtbot.addWidget(probe)
    assert probe.restoreGeometry(again.settings.value("geometry"))
    assert again.size() == probe.size() and again.height() == 700
    assert again.sessions.splitter.sizes() == sizes
    assert "Qt" in again.about_text() and "MediaPipe" in again.about_text()


def test_room_goes_to_the_file_names(make_wb, qtbot, mixed_folder):
    """A wide window widens the File column (not the last one); a narrow one keeps every
    column at least its first width and scrolls."""
    wb = make_wb(mixed_folder)
    _scanned(qtbot, wb)
    table = wb.sessions.table
    header = table.horizontalHeader()
    wb.resize(1920, 1080)
    qtbot.waitUntil(lambda: header.sectionSize(0) > 600, timeout=5000)
    total = sum(header.sectionSize(c) for c in range(header.count()))
    assert abs(total - table.viewport().width()) <= 2
    assert header.sectionSize(header.count() - 1) < 200  # the state column keeps its width
    wb.resize(1024, 640)
    qtbot.waitUntil(lambda: header.sectionSize(0) == 230, timeout=5000)
    assert sum(header.sectionSize(c) for c in range(header.count())) > table.viewport().width()
