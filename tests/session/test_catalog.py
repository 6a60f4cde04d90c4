"""The session catalog (the workbench's table) on real files: imported IFLLM sessions,
recorded sessions with a validation, and broken files."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ifllm_lab.session import SessionMeta
from ifllm_lab.session.catalog import SessionCatalog, catalog_row, session_files
from ifllm_lab.session.schema import CalibrationPhase
from ifllm_lab.session.store import SessionStore


@pytest.fixture(scope="module")
def folder(imported, tmp_path_factory):
    """A data folder: 40 imported sessions in a study folder, a recorded one with two
    validations, an interrupted copy, a truncated file and random bytes."""
    _, out = imported
    d = tmp_path_factory.mktemp("catalog")
    (d / "ifllm").mkdir()
    for p in sorted(out.glob("*.h5"))[:40]:
        shutil.copy2(p, d / "ifllm" / p.name)
    st = SessionStore(d / "recorded.h5", SessionMeta(participant="P-REC", study="pilot", clock_start_unix=1.7e9))
    t = np.arange(0, 60, 1 / 60)
    st.append("gaze", {"t": t, "x": np.full(len(t), 500.0), "y": np.full(len(t), 400.0),
                       "valid": (np.arange(len(t)) % 10 != 0).astype("u1")})
    st.append("mouse", {"t": np.arange(0, 60, 1 / 100)})
    for run, acc in ((1, [2.0, 2.2]), (3, [0.5, 0.7, 0.6])):
        n = len(acc)
        st.append("calibration/points", {"t": np.arange(n, dtype=float), "phase": [int(CalibrationPhase.VALIDATION)] * n,
                                         "run": [run] * n, "point": list(range(n)), "accuracy_deg": acc})
    st.append("calibration/points", {"t": [5.0], "phase": [int(CalibrationPhase.DRIFT_CHECK)], "run": [4],
                                     "point": [0], "accuracy_deg": [9.0]})
    st.append("turns", {"t": [1.0, 20.0, 40.0], "likert_1": [4, -1, 2]})
    st.close(complete=True)
    live = SessionStore(d / "live.h5", SessionMeta(participant="P-CRASH"), swmr=True)
    live.append("mouse", {"t": np.arange(100) / 100.0})
    live.flush()
    shutil.copyfile(d / "live.h5", d / "interrupted.h5")
    live.close()
    os.remove(d / "live.h5")
    data = (d / "recorded.h5").read_bytes()
    (d / "truncated.h5").write_bytes(data[: len(data) // 2])
    (d / "random.h5").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (d / "ifllm" / "worker_x_task1.h5.partial").write_bytes(b"being imported")
    return d


def test_rows_agree_with_inspect(folder):
    for path in session_files(folder / "ifllm")[::10]:
        row = catalog_row(path)
        info = json.loads(subprocess.run([sys.executable, "-m", "ifllm_lab", "inspect", "--json", path],
                                         capture_output=True, text=True, check=True).stdout)
        assert row.state == info["state"] == "complete"
        assert row.participant == info["participant"] and row.study == info["study"] == "IFLLM release"
        assert row.turns == info["turns"]
        gaze = info["streams"].get("gaze")
        if gaze and gaze["count"] > 1:
            assert row.gaze_rate_hz == pytest.approx(gaze["rate_hz"], rel=1e-3)
        assert row.duration_s == pytest.approx(info["duration_s"], abs=0.01)


def test_recorded_session_row(folder):
    row = catalog_row(folder / "recorded.h5")
    assert row.state == "complete" and row.participant == "P-REC" and row.study == "pilot"
    assert row.started_utc == "2023-11-14 22:13"
    assert row.gaze_rate_hz == pytest.approx(60.0, rel=1e-3) and row.mouse_rate_hz == pytest.approx(100.0, rel=1e-3)
    assert row.gaze_valid == pytest.approx(0.9, abs=1e-3)
    assert row.validation_deg == pytest.approx(0.6)  # the last validation run, not the drift check
    assert (row.turns, row.turns_rated) == (3, 2)


def test_broken_files_are_rows_with_their_reason(folder):
    rows = {os.path.basename(p): catalog_row(p) for p in session_files(folder)}
    assert "worker_x_task1.h5.partial" not in rows  # a file being imported is no session yet
    assert rows["truncated.h5"].state == "unreadable" and "truncated" in rows["truncated.h5"].problem
    assert rows["random.h5"].state == "unreadable" and "not HDF5" in rows["random.h5"].problem
    assert rows["interrupted.h5"].state == "interrupted" and rows["interrupted.h5"].participant == "P-CRASH"


def test_scan_uses_the_cache_and_reads_only_what_changed(folder, tmp_path):
    cat = SessionCatalog(folder, cache_dir=str(tmp_path))
    seen = []
    batches = list(cat.scan(progress=lambda done, total: seen.append((done, total))))
    n = len(session_files(folder))
    assert sum(len(b) for b in batches) == n == len(cat.rows) and cat.files_read == n
    assert seen[-1] == (n, n) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    again = SessionCatalog(folder, cache_dir=str(tmp_path))
    list(again.scan())
    assert again.files_read == 1  # only the interrupted file, which may still be recording
    assert {p: r.to_json() for p, r in again.rows.items()} == {p: r.to_json() for p, r in cat.rows.items()}
    target = folder / "recorded.h5"
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    third = SessionCatalog(folder, cache_dir=str(tmp_path))
    list(third.scan())
    assert third.files_read == 2


def test_scan_in_two_processes_gives_the_same_rows_and_cancel_stops_it(folder, tmp_path):
    one = SessionCatalog(folder, cache_dir=str(tmp_path / "a"))
    list(one.scan())
    two = SessionCatalog(folder, cache_dir=str(tmp_path / "b"))
    list(two.scan(workers=2, batch=4, processes_from=0))
    assert {p: r.to_json() for p, r in two.rows.items()} == {p: r.to_json() for p, r in one.rows.items()}
    stop = SessionCatalog(folder, cache_dir=str(tmp_path / "c"))
    calls = []
    list(stop.scan(batch=4, cancel=lambda: len(calls.append(1) or calls) > 2))
    assert 0 < len(stop.rows) < len(one.rows)
    resumed = SessionCatalog(folder, cache_dir=str(tmp_path / "c"))  # the cache kept what was read
    list(resumed.scan())
    expected = sum(1 for p in one.rows if p not in stop.rows or stop.rows[p].state == "interrupted")
    assert resumed.files_read == expected
