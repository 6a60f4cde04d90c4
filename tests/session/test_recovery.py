"""Interrupted sessions: recorders killed with SIGKILL, then found, recovered, closed and resumed
(ifllm_lab.session.recovery). Real writer subprocesses and real files throughout."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ifllm_lab.session import SessionMeta, SessionReader, SessionWriter
from ifllm_lab.session.recovery import (
    RecoveryError,
    close_interrupted,
    continuation_meta,
    find_interrupted,
    format_interrupted,
    in_use,
    recover,
    resume_info,
)

from tests.support.child_process import ChildLines, child_env, kill_child

N_TURNS = 3

# A recorder as the app runs one: turns with text, a turn under way (scroll rows of turn 3,
# no turns row yet), 1 kHz mouse, 30 Hz gaze, log. Killed from outside while recording.
RECORD = r"""
import sys, time
from ifllm_lab.session import SessionMeta, SessionWriter

meta = SessionMeta(participant="P07", study="pilot", session_id="P07-s1", screen_width_px=1920,
                   screen_height_px=1080, extra={"camera": "cam0"})
w = SessionWriter(sys.argv[1], meta, flush_interval=0.05)
w.put("phases", (w.clock.now(), "turn", "{}"))
for k in range(3):
    w.put("turns", (w.clock.now(), k, 0, f"Frage {k}: warum ü?", "Antwort " * 50, "", "m1"))
w.put("scroll", (w.clock.now(), 3, 0, 0.0, 10.0, 100.0))
w.log(20, "test", "started")
i = 0
while True:
    t = w.clock.now()
    w.put("mouse", (t, 5, float(i), 0.0, 0, 0.0, 0.0, -1, i, -1))
    if i % 33 == 0:
        w.put("gaze", (t, 900.0, 500.0, 1, 0.9, i // 33))
    i += 1
    if i == 300:
        print("READY", flush=True)
    if i % 10 == 0:
        print(f"PUT {i} {t:.6f}", flush=True)
    time.sleep(0.001)
"""

# A store whose last write was cut short: a mouse batch with a bad column leaves t, kind
# and x 7 rows longer than the other columns; the text store loses its last 3 bytes, so
# the last log row's message lies past its end. Flushed, then the process kills itself.
TORN = r"""
import os, signal, sys
import numpy as np
from ifllm_lab.session import SessionMeta, SessionStore

st = SessionStore(sys.argv[1], SessionMeta(participant="torn"), swmr=True)
n = 5000
st.append("mouse", {"t": np.arange(n) / 1000.0, "x": np.arange(n, dtype="f4"), "aoi_paragraph": np.arange(n)})
st.append("log", {"t": [0.1, 0.2], "level": [20, 20], "source": ["a", "b"], "message": ["eins", "zwei"]})
try:
    st.append("mouse", {"t": np.arange(n, n + 7) / 1000.0, "kind": np.zeros(7), "x": np.zeros(7), "y": np.zeros(6)})
except ValueError:
    pass
heap = st._f["text_heap"]
heap.resize((heap.shape[0] - 3,))
st.flush()
print("FLUSHED", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _start(path: Path) -> tuple[subprocess.Popen, ChildLines]:
    proc = subprocess.Popen([sys.executable, "-c", RECORD, str(path)], cwd=path.parent, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = ChildLines(proc.stdout)
    try:
        out.wait_for("READY", timeout=30)
    except BaseException:
        kill_child(proc)
        raise
    return proc, out


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> tuple[Path, float]:
    """(file left by a recorder killed with SIGKILL while recording, last t it reported putting)."""
    path = tmp_path_factory.mktemp("killed") / "session.h5"
    proc, out = _start(path)
    try:
        time.sleep(0.6)  # several flushes (every 0.05 s)
        out.wait_for("PUT", timeout=5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        last = [line for line in out.drain() if line.startswith("PUT")][-1]
    finally:
        kill_child(proc)
    with SessionReader(path) as r:
        assert r.live_or_crashed and not r.complete
        assert len(r["turns"]) == N_TURNS and len(r["mouse"]) > 300
    return path, float(last.split()[2])


def _copy(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


def _fingerprint(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns


def _readable(path: Path) -> dict[str, np.ndarray]:
    with SessionReader(path) as r:
        return {name: r[name].read() for name in r.stream_names}


def _assert_rows_equal(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.dtype.names == b.dtype.names, what
    assert len(a) == len(b), (what, len(a), len(b))
    for col in a.dtype.names:
        np.testing.assert_array_equal(a[col], b[col], err_msg=f"{what}/{col}")


def _assert_clean_copy(out: Path, original_rows: dict[str, np.ndarray], source: Path) -> None:
    """``out`` opens plainly, is gzip-compressed, holds exactly ``original_rows`` plus one log row."""
    with h5py.File(out, "r") as f:  # the plain open: fails on a file still marked open for writing
        assert not f.swmr_mode
        datasets = []
        f.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        assert len(datasets) > 50
        plain = [ds.name for ds in datasets if ds.compression != "gzip"]
        assert plain == [], plain
        attrs = dict(f.attrs)
    assert attrs["complete"] == False  # noqa: E712 (numpy bool)
    assert attrs["recovered_from"] == str(source)
    recovered = dt.datetime.fromisoformat(attrs["recovered_utc"])
    assert abs((dt.datetime.now(dt.timezone.utc) - recovered).total_seconds()) < 120
    t_last = max(float(rows["t"].max()) for rows in original_rows.values() if len(rows))
    assert attrs["duration_s"] == pytest.approx(t_last)

    rows = _readable(out)
    assert set(rows) == set(original_rows)
    for name, orig in original_rows.items():
        if name == "log":
            _assert_rows_equal(rows[name][:-1], orig, name)
        else:
            _assert_rows_equal(rows[name], orig, name)
    last = rows["log"][-1]
    assert last["level"] == 30 and last["source"] == "recovery"
    assert "interrupted" in last["message"] and f"{t_last:.3f}" in last["message"]
    assert last["t"] == pytest.approx(t_last)
    with SessionReader(out) as r:
        assert not r.live_or_crashed and not r.complete
        assert r.meta.participant == "P07" and r.meta.extra == {"camera": "cam0"}


def _closed_session(path: Path) -> Path:
    w = SessionWriter(path, SessionMeta(participant="done"), flush_interval=0.05)
    w.put("turns", (0.5, 0, 0, "q", "a"))
    w.put_rows("mouse", {"t": np.arange(100) / 100.0})
    w.close()
    assert w.error is None
    return path


# -- finding -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_find_interrupted_lists_killed_and_unreadable_not_clean(tmp_path, killed):
    src, _ = killed
    top = _copy(src, tmp_path / "session.h5")
    sub = _copy(src, tmp_path / "P08" / "other.h5")
    deep = _copy(src, tmp_path / "P09" / "deeper" / "hidden.h5")
    _closed_session(tmp_path / "clean.h5")
    junk = tmp_path / "random.h5"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp_path / "notes.txt").write_text("not a session")
    fingerprints = {p: _fingerprint(p) for p in (top, sub, junk)}

    items = find_interrupted(tmp_path)
    by_path = {i.path: i for i in items}
    assert set(by_path) == {str(top), str(sub), str(junk)}

    bad = by_path[str(junk)]
    assert not bad.readable and "not HDF5" in bad.error and bad.size_bytes == 4096
    assert "unreadable" in bad.summary

    with SessionReader(src) as r:
        rows = {n: len(r[n]) for n in r.stream_names}
        duration = r.duration()
    for p in (top, sub):
        item = by_path[str(p)]
        assert item.readable and item.error is None
        assert (item.participant, item.study, item.session_id) == ("P07", "pilot", "P07-s1")
        assert item.turns == N_TURNS
        assert item.rows == rows and item.rows["mouse"] > 300 and item.rows["gaze"] > 0
        assert item.t_last == pytest.approx(duration) and item.t_last > 0.5
        assert item.size_bytes == os.path.getsize(p)
        assert item.writer_open and not item.in_use and item.in_use_detail == ""
        assert item.recovered_copy is None
        assert any("not closed cleanly" in x for x in item.problems)
        assert "P07" in item.summary and "interrupted" in item.summary and "3 turns" in item.summary
    assert {p: _fingerprint(p) for p in (top, sub, junk)} == fingerprints, "listing changes no file"

    assert {i.path for i in find_interrupted(tmp_path, depth=0)} == {str(top), str(junk)}
    assert str(deep) in {i.path for i in find_interrupted(tmp_path, depth=2)}

    text = format_interrupted(items)
    assert "2 interrupted sessions" in text and "1 unreadable file" in text
    for p in (top, sub, junk):
        assert str(p) in text
    assert format_interrupted([]) == "No interrupted sessions found."
    with pytest.raises(NotADirectoryError):
        find_interrupted(junk)


# -- recovering ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_recover_makes_a_clean_compressed_copy_and_leaves_the_original(tmp_path, killed):
    src, t_put = killed
    path = _copy(src, tmp_path / "session.h5")
    before = _fingerprint(path)
    original_rows = _readable(path)

    report = recover(path)

    out = tmp_path / "session.recovered.h5"
    assert report.out == str(out) and out.is_file()
    assert _fingerprint(path) == before, "the original must stay byte-identical"
    assert sorted(os.listdir(tmp_path)) == ["session.h5", "session.recovered.h5"]
    _assert_clean_copy(out, original_rows, path)
    assert report.rows == {n: len(v) for n, v in original_rows.items()}
    assert report.trimmed == []
    assert report.t_last == pytest.approx(max(float(v["t"].max()) for v in original_rows.values() if len(v)))
    # rows up to the last flush (every 0.05 s) before the kill are kept; rows are reported every 10
    assert -0.5 < t_put - report.t_last < 1.0, (t_put, report.t_last)
    assert report.size_before == before[1] and report.size_after == os.path.getsize(out)
    assert report.size_after < report.size_before / 2, "compressed"
    assert "recovered" in report.summary and str(out) in report.summary

    # the copy is not listed; the original is, pointing at its copy
    items = find_interrupted(tmp_path)
    assert [i.path for i in items] == [str(path)]
    assert items[0].recovered_copy == str(out) and "recovered copy" in items[0].summary

    with pytest.raises(RecoveryError) as err:
        recover(path)
    assert err.value.reason == "exists" and str(out) in str(err.value)
    with pytest.raises(RecoveryError) as err:
        recover(out, tmp_path / "again.h5")
    assert err.value.reason == "recovered"
    assert not (tmp_path / "again.h5").exists()
    other = recover(path, tmp_path / "elsewhere" / ".." / "second.h5")
    assert other.out == str(tmp_path / "second.h5")
    assert _fingerprint(path) == before


@pytest.mark.slow
def test_recover_refuses_a_live_recording(tmp_path):
    path = tmp_path / "live.h5"
    proc, _ = _start(path)
    try:
        time.sleep(0.2)
        [item] = find_interrupted(tmp_path)
        assert item.in_use and f"process {proc.pid} " in item.in_use_detail
        assert "RECORDING NOW" in item.summary and "still recording" in format_interrupted([item])
        assert f"process {proc.pid} " in in_use(path)
        for call in (recover, close_interrupted, resume_info):
            with pytest.raises(RecoveryError) as err:
                call(path)
            assert err.value.reason == "in_use", call
            assert "still being recorded" in str(err.value)
        assert sorted(os.listdir(tmp_path)) == ["live.h5"], "nothing written beside a live file"
        assert proc.poll() is None, "the recorder must still run during the checks"
    finally:
        kill_child(proc)
    assert proc.returncode == -signal.SIGKILL
    # killed now: no longer in use, and the very file the recorder left recovers
    [item] = find_interrupted(tmp_path)
    assert not item.in_use and item.writer_open and in_use(path) == ""
    report = recover(path)
    assert report.rows["mouse"] > 300 and report.rows["turns"] == N_TURNS


def test_recover_refuses_a_complete_session(tmp_path):
    path = _closed_session(tmp_path / "clean.h5")
    before = _fingerprint(path)
    for call in (recover, close_interrupted):
        with pytest.raises(RecoveryError) as err:
            call(path)
        assert err.value.reason == "complete" and "closed cleanly" in str(err.value)
    assert sorted(os.listdir(tmp_path)) == ["clean.h5"]
    assert _fingerprint(path) == before
    assert find_interrupted(tmp_path) == []


def test_a_session_closed_as_incomplete_is_listed_and_recovers(tmp_path):
    """Closed by its recorder but not marked complete (the recording ended by an error)."""
    path = tmp_path / "early.h5"
    w = SessionWriter(path, SessionMeta(participant="early"), flush_interval=0.05)
    w.put("turns", (0.5, 0, 0, "q", "a"))
    w.put_rows("mouse", {"t": np.arange(100) / 100.0})
    w.close(complete=False)
    [item] = find_interrupted(tmp_path)
    assert item.participant == "early" and item.turns == 1 and item.rows["mouse"] == 100
    assert not item.writer_open and not item.in_use and "ended early" in item.summary
    report = recover(path)
    with SessionReader(report.out) as r:
        assert len(r["mouse"]) == 100 and len(r["log"]) == 1
        assert "ended without being marked complete" in r["log"].read()["message"][-1]


def test_recover_refuses_an_unreadable_file(tmp_path):
    junk = tmp_path / "random.h5"
    junk.write_bytes(np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(RecoveryError) as err:
        recover(junk)
    assert err.value.reason == "unreadable" and "not HDF5" in str(err.value)
    assert sorted(os.listdir(tmp_path)) == ["random.h5"]


@pytest.mark.slow
def test_recover_trims_a_write_cut_short(tmp_path):
    path = tmp_path / "torn.h5"
    proc = subprocess.run([sys.executable, "-c", TORN, str(path)], env=child_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert "FLUSHED" in proc.stdout
    with SessionReader(path) as r:
        assert r.live_or_crashed
        lengths = r["mouse"].column_lengths()
        assert lengths["t"] == lengths["x"] == 5007 and lengths["y"] == 5000
        mouse = r["mouse"].read()
        log = r["log"].read()
    before = _fingerprint(path)

    report = recover(path)

    assert _fingerprint(path) == before
    trims = {t.stream: t for t in report.trimmed}
    assert set(trims) == {"mouse", "log"}
    assert trims["mouse"].kept == 5000 and trims["mouse"].dropped == 7
    assert trims["mouse"].column_lengths["t"] == 5007 and "unequal length" in trims["mouse"].reason
    assert trims["log"].kept == 1 and trims["log"].dropped == 1 and "text store" in trims["log"].reason
    assert "mouse: kept 5000 rows, dropped 7" in report.summary
    assert report.rows["mouse"] == 5000 and report.rows["log"] == 1
    with h5py.File(report.out, "r") as f:
        assert {f["mouse"][k].shape[0] for k in f["mouse"]} == {5000}
        assert {f["log"][k].shape[0] for k in f["log"]} == {2}
    with SessionReader(report.out) as r:
        _assert_rows_equal(r["mouse"].read(), mouse, "mouse")
        got = r["log"].read()
        assert list(got["message"][:1]) == list(log["message"][:1]) == ["eins"]
        assert got["source"][1] == "recovery"


# -- closing ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_close_interrupted_leaves_one_clean_file(tmp_path, killed):
    src, _ = killed
    path = _copy(src, tmp_path / "session.h5")
    original_rows = _readable(path)
    size_before = os.path.getsize(path)

    report = close_interrupted(path)

    assert os.listdir(tmp_path) == ["session.h5"], "no .bak, no copy, no temporary file"
    assert report.replaced and report.backup_removed and report.out == str(path)
    assert report.size_before == size_before and report.size_after == os.path.getsize(path) < size_before / 2
    assert "closed" in report.summary
    _assert_clean_copy(path, original_rows, path)
    assert find_interrupted(tmp_path) == []
    with pytest.raises(RecoveryError) as err:
        close_interrupted(path)
    assert err.value.reason == "recovered"
    assert os.listdir(tmp_path) == ["session.h5"]


@pytest.mark.slow
def test_close_interrupted_keeps_an_earlier_backup(tmp_path, killed):
    src, _ = killed
    path = _copy(src, tmp_path / "session.h5")
    bak = tmp_path / "session.h5.bak"
    bak.write_bytes(b"left by an earlier attempt")
    before = _fingerprint(path)
    with pytest.raises(RecoveryError) as err:
        close_interrupted(path)
    assert err.value.reason == "backup_exists" and str(bak) in str(err.value)
    assert bak.read_bytes() == b"left by an earlier attempt"
    assert _fingerprint(path) == before
    assert sorted(os.listdir(tmp_path)) == ["session.h5", "session.h5.bak"]


# -- resuming ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_info_and_continuation_meta_link_a_new_part(tmp_path, killed):
    src, _ = killed
    path = _copy(src, tmp_path / "session.h5")
    before = _fingerprint(path)
    with SessionReader(path) as r:
        duration = r.duration()
        turns = len(r["turns"])
        old_meta = r.meta

    info = resume_info(path)

    assert _fingerprint(path) == before
    assert info.next_turn == turns == N_TURNS
    assert info.aborted_turn == 3, "scroll rows of turn 3 without its turns row: a turn under way"
    assert (info.session_id, info.participant, info.study) == ("P07-s1", "P07", "pilot")
    assert info.t_last == pytest.approx(duration)
    assert info.clock_start_unix == old_meta.clock_start_unix > 0
    assert info.path == str(path) and info.part == 1 and info.next_part == 2
    assert info.next_path == str(tmp_path / "session_part2.h5")

    meta = continuation_meta(info)
    assert (meta.session_id, meta.participant, meta.study) == ("P07-s1", "P07", "pilot")
    assert meta.extra["continues"] == str(path)
    assert meta.extra["part"] == 2 and meta.extra["first_turn"] == N_TURNS
    assert meta.extra["continues_t_last"] == pytest.approx(duration)
    assert meta.extra["camera"] == "cam0" and old_meta.extra == {"camera": "cam0"}
    assert (meta.screen_width_px, meta.screen_height_px) == (1920, 1080)

    # the app records the next part with it; that part links back and continues the numbering
    w = SessionWriter(info.next_path, meta, flush_interval=0.05)
    w.put("turns", (0.5, info.next_turn, 0, "weiter", "ja"))
    w.close()
    assert w.error is None
    with SessionReader(info.next_path) as r:
        assert r.complete and r.meta.extra["continues"] == str(path) and r.meta.session_id == "P07-s1"
    info2 = resume_info(info.next_path)
    assert info2.part == 2 and info2.next_part == 3 and info2.next_turn == N_TURNS + 1
    assert info2.next_path == str(tmp_path / "session_part3.h5")
    assert continuation_meta(info2).extra["continues"] == info.next_path

    # closing the first part keeps its path, so the link stays valid and resume_info still works
    close_interrupted(path)
    assert resume_info(path).next_path == str(tmp_path / "session_part3.h5"), "part 2 exists: skip it"
