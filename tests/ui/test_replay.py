"""Session replay (Qt offscreen): the window on a synthetic recorded session and on real
imported IFLLM sessions, headless PNG / MP4 export, bad files, the benchmark command."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import pyqtgraph as pg
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from ifllm_lab.analysis.replay import ReplayData
from ifllm_lab.session import SessionFileError
from ifllm_lab.synthetic.session import make_replay_session
from ifllm_lab.ui.replay.export import export_mp4, export_png, qimage_to_rgb
from ifllm_lab.ui.replay.stimulus import GAZE, Overlays, StimulusRenderer, render_image
from ifllm_lab.ui.replay.window import ReplayWindow

from tests.support.child_process import child_env
from tests.support.screenshots import shots_folder

CLI = [sys.executable, "-m", "ifllm_lab"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("replay") / "synthetic.h5"
    make_replay_session(str(path), seconds=240, turn_s=120)
    return str(path)


@pytest.fixture(scope="module")
def real_sessions(imported):
    """(pairwise, pointwise) imported sessions with the most gaze rows."""
    from ifllm_lab.session import SessionReader

    _, out = imported
    best = {}
    for p in sorted(Path(out).glob("*.h5")):
        with SessionReader(p) as r:
            if "gaze_rel" not in r or not len(r["gaze_rel"]) or not len(r["turns"]):
                continue
            mode = int(r["turns"].column("mode")[0])
            n = len(r["gaze"])
        if n > best.get(mode, (0, None))[0]:
            best[mode] = (n, str(p))
    return best[1][1], best[0][1]


def _colour_pixels(rgb: np.ndarray, colour, tol: int = 40) -> int:
    c = np.array([colour.red(), colour.green(), colour.blue()])
    return int(np.sum(np.all(np.abs(rgb.astype(int) - c) < tol, axis=2)))


def test_window_on_a_recorded_session(qtbot, synthetic, tmp_path):
    data = ReplayData(synthetic)
    win = ReplayWindow(data)
    qtbot.addWidget(win)
    win.resize(1600, 900)
    win.show()
    qtbot.waitExposed(win)
    with qtbot.waitSignal(win.fixations_ready, timeout=60_000):
        pass
    assert win.events is not None and len(win.events.fixations()) > 100
    win.seek(150.0)
    assert win.t == pytest.approx(150.0) and "turn 2" in win.time_label.text()
    assert win.timeline.cursors[0].value() == pytest.approx(150.0)
    assert win.timeline.cursors[0].value() == pytest.approx(150.0)
    qtbot.waitUntil(lambda: "question 2" in win.turn_panel.toPlainText(), timeout=2000)  # panels follow
    assert win.metrics_table.rowCount() >= 2  # per response AOI rows
    # keys: Right = +1 s, Shift+Right = +10 s, PgDown = next turn, ] = faster, Space = play
    QTest.keyClick(win, Qt.Key.Key_Right)
    assert win.t == pytest.approx(151.0)
    QTest.keyClick(win, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert win.t == pytest.approx(161.0)
    QTest.keyClick(win, Qt.Key.Key_PageUp)
    assert win.t == pytest.approx(data.turns[1].t)
    QTest.keyClick(win, Qt.Key.Key_BracketRight)
    assert win.speed == 2.0
    QTest.keyClick(win, Qt.Key.Key_H)
    assert win.overlays.heatmap and win.overlay_boxes["heatmap"].isChecked()
    t_before = win.t
    QTest.keyClick(win, Qt.Key.Key_Space)
    qtbot.wait(500)
    QTest.keyClick(win, Qt.Key.Key_Space)
    assert not win.playing and 0.6 < win.t - t_before < 1.6  # 2x for ~0.5 s
    # scrub on the timeline plot: a press and a drag move the time
    plot = win.timeline.plots[0]
    x = int(plot.mapFromScene(plot.plotItem.vb.mapViewToScene(pg.Point(60.0, 0))).x())
    QTest.mousePress(plot.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 40))
    QTest.mouseRelease(plot.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 40))
    assert abs(win.t - 60.0) < 1.0
    win.grab().save(str(shots_folder(tmp_path) / "replay-synthetic.png"))
    win.close()
    data.close()


def test_png_export_has_the_overlays(synthetic, tmp_path, qapp):
    data = ReplayData(synthetic)
    try:
        out = tmp_path / "frame.png"
        info = export_png(data, out, 100.0, size=(960, 540), overlays=Overlays.parse("all"))
        img = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
        assert img.shape == (540, 960, 3) and info["t"] == 100.0
        r = StimulusRenderer(data)
        bare = qimage_to_rgb(render_image(r, 100.0, (960, 540), Overlays.parse("text")))
        gaze_only = qimage_to_rgb(render_image(r, 100.0, (960, 540), Overlays.parse("text,gaze")))
        assert _colour_pixels(gaze_only, GAZE) > 30 and _colour_pixels(bare, GAZE) == 0
        assert np.mean(np.any(img != bare, axis=2)) > 0.002  # the overlays changed the picture
        assert np.mean(np.any(bare != bare[0, 0], axis=2)) > 0.02  # the text itself is drawn
    finally:
        data.close()


def test_mp4_export_frames_and_size(synthetic, tmp_path, qapp):
    data = ReplayData(synthetic)
    try:
        out = tmp_path / "clip.mp4"
        info = export_mp4(data, out, t0=30.0, t1=33.0, fps=20, size=(640, 360))
        assert info["frames"] == 61
        cap = cv2.VideoCapture(str(out))
        n, sizes, moving = 0, set(), []
        prev = None
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            n += 1
            sizes.add(frame.shape[:2])
            if prev is not None:
                moving.append(np.mean(np.abs(frame.astype(int) - prev)) > 0.05)
            prev = frame.astype(int)
        cap.release()
        assert n == 61 and sizes == {(360, 640)} and np.mean(moving) > 0.8  # the overlays move
    finally:
        data.close()


def test_cli_replay_export_and_bad_files(synthetic, tmp_path):
    p = subprocess.run(CLI + ["replay", synthetic, "--export", str(tmp_path / "a.png"), "--at", "12.5",
                              "--size", "800x450"], capture_output=True, text=True, env=child_env(), timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.strip().splitlines()[-1])["size"] == [800, 450]
    assert cv2.imread(str(tmp_path / "a.png")).shape == (450, 800, 3)
    # a truncated file: a clear message, exit 2, no traceback
    cut = tmp_path / "cut.h5"
    data = Path(synthetic).read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    p = subprocess.run(CLI + ["replay", str(cut), "--export", str(tmp_path / "b.png")], capture_output=True,
                       text=True, env=child_env(), timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr and str(cut) in p.stderr
    with pytest.raises(SessionFileError):
        ReplayData(cut)
    p = subprocess.run(CLI + ["replay", str(tmp_path / "missing.h5")], capture_output=True, text=True,
                       env=child_env(), timeout=60)
    assert p.returncode == 2 and "no such file" in p.stderr
    p = subprocess.run(CLI + ["replay", synthetic, "--export", str(tmp_path / "x.gif")], capture_output=True,
                       text=True, env=child_env(), timeout=120)
    assert p.returncode == 2 and ".png or .mp4" in p.stderr


def test_bench_replay_prints_json(tmp_path):
    p = subprocess.run(CLI + ["bench", "replay", "--seconds", "120", "--json", "--folder", str(tmp_path)],
                       capture_output=True, text=True, env=child_env(), timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    for key in ("open_s", "seek_p95_ms", "render_fps"):
        assert out[key] > 0, out
    assert out["gaze_rows"] == 120 * 60 and out["mouse_rows"] == 120 * 1000


def test_window_on_real_imported_sessions(qtbot, real_sessions, tmp_path):
    shots = shots_folder(tmp_path)
    for name, path in zip(("pairwise", "pointwise"), real_sessions):
        data = ReplayData(path)
        assert data.imported
        win = ReplayWindow(data)
        qtbot.addWidget(win)
        win.resize(1600, 900)
        win.show()
        with qtbot.waitSignal(win.fixations_ready, timeout=120_000):
            pass
        turn = data.turns[0]
        win.seek(turn.t + min(20.0, 0.5 * (turn.t_end - turn.t)) if np.isfinite(turn.t_end) else turn.t + 10.0)
        win.set_overlay("aoi", True)
        qtbot.wait(50)
        assert data.layout() is not None
        assert len(win.events.fixations()) > 10
        win.grab().save(str(shots / f"replay-ifllm-{name}.png"))
        win.close()
        data.close()


def test_an_unfinished_session_opens_with_what_is_wrong(qtbot, tmp_path):
    """A recording that ended before it was complete opens, and says so (the truncated case,
    which cannot be opened at all, is refused with a message: see the CLI test)."""
    from ifllm_lab.session import SessionMeta, SessionWriter

    path = tmp_path / "unfinished.h5"
    w = SessionWriter(path, SessionMeta(participant="P-X", screen_width_px=1280, screen_height_px=720))
    t = np.arange(0, 20, 1 / 30)
    w.put_rows("gaze", {"t": t, "x": 640 + 100 * np.sin(t), "y": 360 + 50 * np.cos(t), "valid": np.ones(len(t), "u1")})
    w.close(complete=False)
    data = ReplayData(path)
    win = ReplayWindow(data)
    qtbot.addWidget(win)
    win.show()
    assert win.banner.isVisible() and "ended before it was complete" in win.banner.text()
    assert "no turns" not in win.banner.text()  # missing streams are simply empty
    win.seek(10.0)
    assert win.t == pytest.approx(10.0)
    assert "ended before it was complete" in win.quality_panel.toPlainText()
    win.close()
    data.close()


def test_stages_are_bands_on_the_timeline(qtbot, tmp_path):
    from ifllm_lab.session import SessionMeta, SessionWriter

    path = tmp_path / "stages.h5"
    with SessionWriter(path, SessionMeta(participant="P-S", screen_width_px=1280, screen_height_px=720)) as w:
        t = np.arange(0, 60, 1 / 30)
        w.put_rows("gaze", {"t": t, "x": 640 + 0 * t, "y": 360 + 0 * t, "valid": np.ones(len(t), "u1")})
        for ts, stage in ((0.0, "consent"), (5.0, "calibration"), (20.0, "chat"), (50.0, "questionnaire")):
            w.put("phases", (ts, "stage", json.dumps({"stage": stage})))
    data = ReplayData(path)
    win = ReplayWindow(data, detect=False)
    qtbot.addWidget(win)
    bands = win.timeline.stage_bands
    assert [b.stage for b in bands] == ["consent", "calibration", "chat", "questionnaire"]
    assert [tuple(round(v, 3) for v in b.getRegion()) for b in bands] == [
        (0.0, 5.0), (5.0, 20.0), (20.0, 50.0), (50.0, round(data.t_end, 3))]
    win.close()
    data.close()


def test_mouse_rows_kept_after_speed_are_the_file_rows(synthetic):
    """After the cursor-speed pass keeps every mouse row, windows come from memory and
    are the same rows the file gives."""
    data = ReplayData(synthetic)
    try:
        rng = np.random.default_rng(3)
        spans = [(t, t + w) for t, w in zip(rng.uniform(data.t_start, data.t_end, 12), rng.uniform(0.01, 3, 12))]
        from_file = [data.mouse_window(a, b) for a, b in spans]
        data.mouse_speed()
        assert data._mouse_rows is not None
        for (a, b), want in zip(spans, from_file):
            got = data.mouse_window(a, b)
            assert len(got["t"]) == len(want["t"]) > 0
            for col in ("t", "x", "y", "kind"):
                assert got[col].dtype == want[col].dtype
                np.testing.assert_array_equal(got[col], want[col])
    finally:
        data.close()


def test_aoi_dwell_per_word_matches_a_direct_sum(real_sessions):
    """The AOI overlay's dwell (kept per turn, summed per frame) equals the dwell summed
    sample by sample from the layout's own mapping."""
    from ifllm_lab.session.schema import LayoutLevel

    data = ReplayData(real_sessions[0])
    try:
        r = StimulusRenderer(data)
        layout = data.layout()
        turn = data.turns[0]
        end = turn.t_end if np.isfinite(turn.t_end) else data.t_end
        checked = 0
        for t in np.linspace(turn.t + 1.0, end - 0.01, 5):
            boxes = layout.boxes_at(float(t))
            words = boxes[boxes["level"] == int(LayoutLevel.WORD)]
            got = r._dwell(float(t), words)
            g = data.gaze_window(turn.t, end)
            v = g["valid"]
            tt, xx, yy = g["t"][v], g["x"][v], g["y"][v]
            m = layout.map_points(tt, xx, yy)
            dt = np.clip(np.diff(tt, append=tt[-1]), 0, 0.1)
            upto = tt <= t
            want = np.zeros(len(words))
            for i, w in enumerate(words):
                on = upto & (m["response"] == w["response"]) & (m["word"] == w["index"])
                want[i] = dt[on].sum()
            np.testing.assert_allclose(got, want, atol=1e-9)
            checked += int((want > 0).sum())
        assert checked > 10  # the gaze did land on words
    finally:
        data.close()
