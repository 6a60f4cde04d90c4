"""CSV and BIDS export of real session files (made with SessionStore, no mocks)."""
from __future__ import annotations

import csv
import gzip
import json
import math
import os

import numpy as np
import pytest

from ifllm_lab import __version__
from ifllm_lab.session import SessionMeta, SessionReader, SessionStore
from ifllm_lab.session.export import bids_label, export_bids, export_csv
from ifllm_lab.session.schema import STREAMS, CalibrationPhase

N_GAZE = 301
RATE_HZ = 30.0
NAN_ROWS = (5, 17, 300)

TURN_TEXT = {
    "prompt": ['What is 1,5 + "2"?', "Explain\nnewlines, please", "Ünïcödé — 日本語 😀"],
    "response_1": ['It is "3,5".\r\nDone, really.', "line1\nline2\n\nline4", ""],
    "model_1": ["m,1", 'm"2', "m3"],
    "response_2": ["", "lone\rcarriage return", "tab\there;semicolon"],
}


def _meta(**kw) -> SessionMeta:
    base = dict(
        participant="P-01 x", study="Gaze Study #2", session_id="s-1", screen_width_px=1920,
        screen_height_px=1080, screen_width_mm=520.0, screen_height_mm=290.0, viewing_distance_mm=600.0,
        clock_start_unix=1_700_000_000.25, extra={"camera": "cam0", "notes": "a, \"b\"", "n": [1, 2]},
    )
    base.update(kw)
    return SessionMeta(**base)


def _gaze(n: int = N_GAZE) -> dict:
    rng = np.random.default_rng(7)
    # irregular webcam timing around 30 Hz, with microsecond-level fractions
    dt = 1 / RATE_HZ + rng.uniform(-0.004, 0.004, n)
    dt[::50] = 0.1  # occasional dropped frames must not move the median rate
    t = 2.000001 + np.concatenate([[0.0], np.cumsum(dt[1:])])
    x = rng.uniform(0, 1920, n).astype(np.float32)
    y = rng.uniform(0, 1080, n).astype(np.float32)
    conf = rng.uniform(0, 1, n).astype(np.float32)
    valid = np.ones(n, np.uint8)
    for i in NAN_ROWS:
        x[i] = y[i] = conf[i] = np.nan
        valid[i] = 0
    return {"t": t, "x": x, "y": y, "valid": valid, "confidence": conf, "frame": np.arange(n)}


def make_session(path, meta=None, gaze=True, calibration=True) -> dict:
    g = _gaze()
    with SessionStore(path, meta or _meta()) as st:
        if gaze:
            st.append("gaze", g)
        st.append("mouse", {"t": [0.5, 0.7, 1.25], "kind": [0, 1, 2], "x": [10.5, 11.0, np.nan], "y": [20, 21, 22]})
        st.append("turns", {"t": [1.0, 5.0, 9.0], "turn": [0, 1, 2], **TURN_TEXT})
        if calibration:
            st.append("calibration/points", {
                "t": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
                "phase": [CalibrationPhase.CALIBRATION] * 2 + [CalibrationPhase.VALIDATION] * 5,
                "run": [1, 1, 1, 1, 2, 2, 2],
                "point": [0, 1, 0, 1, 0, 1, 2],
                "accuracy_deg": [np.nan, np.nan, 5.0, 6.0, 1.0, 2.5, np.nan],
            })
    return g


@pytest.fixture
def session(tmp_path):
    path = tmp_path / "s.h5"
    gaze = make_session(path)
    return path, gaze


def _read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


# -- CSV ----------------------------------------------------------------------------


def test_csv_files_one_per_stream(session, tmp_path):
    path, _ = session
    out = tmp_path / "csv"
    files = export_csv(path, out)
    with SessionReader(path) as r:
        expected = {n.replace("/", "_") + ".csv" for n in r.stream_names} | {"session.json"}
    assert {os.path.basename(f) for f in files} == expected
    assert "calibration_points.csv" in expected
    assert all(os.path.isfile(f) for f in files)
    # an empty stream still gets its header
    header, rows = _read_csv(out / "layout.csv")
    assert header == list(STREAMS["layout"].column_names) and rows == []


def test_csv_gaze_round_trip_in_blocks(session, tmp_path):
    path, g = session
    out = tmp_path / "csv"
    export_csv(path, out, block_rows=7)  # many blocks, last one partial
    header, rows = _read_csv(out / "gaze.csv")
    assert header == list(STREAMS["gaze"].column_names)
    assert len(rows) == N_GAZE
    col = {name: i for i, name in enumerate(header)}
    t = np.array([float(r[col["t"]]) for r in rows])
    np.testing.assert_allclose(t, g["t"], rtol=0, atol=1e-9)
    assert np.array_equal(t, g["t"])  # shortest repr: exact
    for i, r in enumerate(rows):
        if i in NAN_ROWS:
            assert r[col["x"]] == r[col["y"]] == r[col["confidence"]] == ""
            assert r[col["valid"]] == "0"
        else:
            assert np.float32(float(r[col["x"]])) == g["x"][i]
            assert np.float32(float(r[col["confidence"]])) == g["confidence"][i]
            assert r[col["valid"]] == "1"
        assert int(r[col["frame"]]) == i
        # columns the test never wrote carry the schema's fill value
        assert r[col["raw_x"]] == "" and r[col["page_ms"]] == ""


def test_csv_text_round_trip(session, tmp_path):
    path, _ = session
    out = tmp_path / "csv"
    export_csv(path, out)
    header, rows = _read_csv(out / "turns.csv")
    assert header == list(STREAMS["turns"].column_names)
    assert len(rows) == 3
    for name, values in TURN_TEXT.items():
        assert [r[header.index(name)] for r in rows] == values
    assert [float(r[0]) for r in rows] == [1.0, 5.0, 9.0]
    assert [r[header.index("likert_1")] for r in rows] == ["-1"] * 3

    header, rows = _read_csv(out / "mouse.csv")
    assert [r[header.index("x")] for r in rows] == ["10.5", "11.0", ""]
    assert [r[header.index("kind")] for r in rows] == ["0", "1", "2"]


def test_session_json(session, tmp_path):
    path, _ = session
    export_csv(path, tmp_path / "csv")
    info = json.loads((tmp_path / "csv" / "session.json").read_text(encoding="utf-8"))
    meta = info["meta"]
    assert meta["participant"] == "P-01 x"
    assert meta["screen_width_mm"] == 520.0 and meta["viewing_distance_mm"] == 600.0
    assert meta["clock_start_unix"] == 1_700_000_000.25
    assert meta["extra"] == {"camera": "cam0", "notes": 'a, "b"', "n": [1, 2]}
    assert info["attrs"]["format"] == "ifllm-lab-session"
    assert info["attrs"]["complete"] is True
    assert info["attrs"]["app_version"] == __version__
    assert info["streams"]["gaze"]["rows"] == N_GAZE
    assert info["streams"]["calibration/points"]["file"] == "calibration_points.csv"
    assert info["problems"] == []


def test_csv_leaves_a_passed_reader_open(session, tmp_path):
    path, _ = session
    with SessionReader(path) as r:
        export_csv(r, tmp_path / "csv")
        assert len(r["gaze"]) == N_GAZE  # still usable


# -- BIDS ---------------------------------------------------------------------------


def _bids_paths(root, sub="P01x", ses="s1", task="GazeStudy2"):
    folder = root / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "beh"
    stem = f"sub-{sub}_" + (f"ses-{ses}_" if ses else "") + f"task-{task}_recording-eye1_physio"
    return folder / f"{stem}.tsv.gz", folder / f"{stem}.json"


def test_bids_layout_and_names(session, tmp_path):
    path, _ = session
    root = tmp_path / "bids"
    files = export_bids(path, root)
    tsv, side = _bids_paths(root)
    assert sorted(files) == sorted([str(root / "dataset_description.json"), str(tsv), str(side)])
    desc = json.loads((root / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] == "1.10.0"
    assert desc["DatasetType"] == "raw"
    assert desc["Name"] == "Gaze Study #2"
    assert desc["GeneratedBy"] == [{"Name": "IFLLM Lab", "Version": __version__}]


def test_bids_tsv_has_no_header_and_all_rows(session, tmp_path):
    path, g = session
    root = tmp_path / "bids"
    export_bids(path, root, block_rows=11)
    tsv, _ = _bids_paths(root)
    with gzip.open(tsv, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[-1] == ""  # newline-terminated
    rows = [ln.split("\t") for ln in lines[:-1]]
    assert len(rows) == N_GAZE
    assert all(len(r) == 5 for r in rows)
    assert float(rows[0][0]) == g["t"][0]  # first line is data, not a header
    np.testing.assert_allclose([float(r[0]) for r in rows], g["t"], rtol=0, atol=1e-9)
    for i, r in enumerate(rows):
        if i in NAN_ROWS:
            assert r[1] == r[2] == r[4] == "n/a"
            assert r[3] == "0"
        else:
            assert np.float32(float(r[1])) == g["x"][i]
            assert np.float32(float(r[2])) == g["y"][i]
            assert r[3] == "1"
            assert "n/a" not in r


def test_bids_sidecar(session, tmp_path):
    path, g = session
    root = tmp_path / "bids"
    export_bids(path, root)
    _, side_path = _bids_paths(root)
    side = json.loads(side_path.read_text())
    assert side["Columns"] == ["timestamp", "x_coordinate", "y_coordinate", "valid", "confidence"]
    assert "pupil_size" not in side["Columns"]
    assert side["SamplingFrequency"] == pytest.approx(RATE_HZ, rel=0.02)
    assert side["SamplingFrequency"] == pytest.approx(1 / np.median(np.diff(g["t"])), rel=1e-6)
    assert side["StartTime"] == 0
    assert side["PhysioType"] == "eyetrack"
    assert side["RecordedEye"] == "cyclopean"
    assert side["SampleCoordinateSystem"] == "gaze-on-screen"
    assert side["SampleCoordinateUnits"] == "pixel"
    assert side["EnvironmentCoordinates"] == "top-left"
    assert side["Manufacturer"] == "IFLLM Lab webcam tracker"
    assert side["timestamp"]["Units"] == "s"
    assert side["x_coordinate"]["Units"] == side["y_coordinate"]["Units"] == "pixel"
    assert all(c in side and side[c]["Description"] for c in side["Columns"])
    screen = side["StimulusPresentation"]
    assert screen["ScreenSize"] == pytest.approx([0.52, 0.29])
    assert screen["ScreenResolution"] == [1920, 1080]
    assert screen["ScreenDistance"] == pytest.approx(0.6)
    assert screen["ScreenOrigin"] == ["top", "left"]
    # latest validation run (2): mean and max of 1.0 and 2.5 (its NaN point ignored)
    assert side["AverageCalibrationError"] == pytest.approx(1.75)
    assert side["MaximalCalibrationError"] == pytest.approx(2.5)
    assert side["CalibrationUnit"] == "deg"
    assert side["CalibrationCount"] == 1


def test_bids_imported_session_without_geometry(tmp_path):
    path = tmp_path / "imp.h5"
    meta = SessionMeta(participant="", study="", session_id="", source="ifllm-release")
    make_session(path, meta, calibration=False)
    root = tmp_path / "bids"
    files = export_bids(path, root)
    tsv, side_path = _bids_paths(root, sub="01", ses="", task="study")
    assert str(tsv) in files and str(side_path) in files
    assert not (root / "sub-01" / "ses-").exists()
    side = json.loads(side_path.read_text())
    assert side["Manufacturer"] == "WebGazer"
    assert "ScreenSize" not in side["StimulusPresentation"]
    assert "ScreenResolution" not in side["StimulusPresentation"]
    assert "ScreenDistance" not in side["StimulusPresentation"]
    assert "AverageCalibrationError" not in side and "CalibrationUnit" not in side


@pytest.mark.parametrize(
    ("text", "fallback", "label"),
    [("P-01 x", "01", "P01x"), ("sub_07/ä", "01", "sub07a"), ("", "01", "01"), ("-- !", "study", "study"),
     ("Gaze Study #2", "study", "GazeStudy2")],
)
def test_bids_label(text, fallback, label):
    assert bids_label(text, fallback) == label


def test_bids_two_sessions_share_one_dataset(tmp_path):
    root = tmp_path / "bids"
    make_session(tmp_path / "a.h5", _meta(session_id="1"))
    make_session(tmp_path / "b.h5", _meta(session_id="2"))
    first = export_bids(tmp_path / "a.h5", root)
    (root / "dataset_description.json").write_text('{"Name": "edited", "BIDSVersion": "1.10.0"}')
    second = export_bids(tmp_path / "b.h5", root)
    assert str(root / "dataset_description.json") in first
    assert str(root / "dataset_description.json") not in second  # an existing one is kept
    assert json.loads((root / "dataset_description.json").read_text())["Name"] == "edited"
    for ses in ("1", "2"):
        tsv, side = _bids_paths(root, ses=ses)
        assert tsv.is_file() and side.is_file()


def test_bids_without_gaze_raises_and_writes_nothing(tmp_path):
    path = tmp_path / "nogaze.h5"
    make_session(path, gaze=False)
    root = tmp_path / "bids"
    with pytest.raises(ValueError, match="no gaze samples to export"):
        export_bids(path, root)
    assert not root.exists() or not any(root.iterdir())


def test_bids_without_gaze_stream_raises(tmp_path):
    path = tmp_path / "mouseonly.h5"
    with SessionStore(path, _meta(), streams=["mouse"]) as st:
        st.append("mouse", {"t": [0.1], "x": [1.0], "y": [2.0]})
    with pytest.raises(ValueError, match="no gaze samples to export"):
        export_bids(path, tmp_path / "bids")
    # CSV export still works: just the streams the file has
    files = export_csv(path, tmp_path / "csv")
    assert sorted(os.path.basename(f) for f in files) == ["mouse.csv", "session.json"]
    assert math.isclose(float(_read_csv(tmp_path / "csv" / "mouse.csv")[1][0][0]), 0.1)
