"""Session files under faults: a recorder killed with SIGKILL, a full disk (file size limit
and a real full tmpfs), and damaged or foreign files given to the reader."""
from __future__ import annotations

import contextlib
import json
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

from ifllm_lab.session import SessionFileError, SessionMeta, SessionReader, SessionStore, SessionWriter

from tests.support.child_process import ChildLines, child_env, kill_child
from tests.support.small_disk import small_disk

UNCLEAN = "not closed cleanly"


# -- SIGKILL ---------------------------------------------------------------------------
RECORD_1KHZ = r"""
import sys, time
from ifllm_lab.session import SessionMeta, SessionWriter

w = SessionWriter(sys.argv[1], SessionMeta(participant="killed"))  # default flush interval
print("READY", flush=True)
i = 0
last_report = -1.0
next_due = time.monotonic()
while True:
    t = w.clock.now()
    assert w.put("mouse", (t, 5, float(i), 0.0, 0, 0.0, 0.0, -1, i, -1))  # x and aoi_paragraph = row index
    i += 1
    if t - last_report >= 0.1:
        print(f"PUT {i} {t:.6f}", flush=True)
        last_report = t
    next_due += 0.001
    delay = next_due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
"""


@pytest.mark.slow
def test_sigkill_leaves_a_readable_file_up_to_the_last_flush(tmp_path):
    path = tmp_path / "killed.h5"
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORD_1KHZ, str(path)], cwd=tmp_path, env=child_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        out = ChildLines(proc.stdout)
        out.wait_for("READY", timeout=30)
        t_ready = time.monotonic()

        # live read while the recorder runs (SWMR)
        time.sleep(1.2)
        with SessionReader(path) as live:
            assert live.live_or_crashed and not live.complete
            assert any(UNCLEAN in p for p in live.problems)
            n_live = len(live["mouse"])
            assert n_live > 0
            np.testing.assert_array_equal(live["mouse"].column("aoi_paragraph"), np.arange(n_live))
        assert proc.poll() is None, "the recorder must still be running during the live read"

        time.sleep(max(0.0, 2.5 - (time.monotonic() - t_ready)))
        last_put = out.wait_for("PUT", timeout=5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        puts = [line for line in out.drain() if line.startswith("PUT")]
        n_put, t_put = int(puts[-1].split()[1]), float(puts[-1].split()[2])
        assert puts[-1] == last_put or float(last_put.split()[2]) <= t_put
    finally:
        kill_child(proc)

    with SessionReader(path) as r:  # must not raise
        assert not r.complete
        assert any(UNCLEAN in p for p in r.problems), r.problems
        assert r.meta.participant == "killed"
        m = r["mouse"]
        n = len(m)
        assert n_live <= n <= n_put
        rows = m.read()
        # consecutive rows, no holes
        np.testing.assert_array_equal(rows["aoi_paragraph"], np.arange(n))
        np.testing.assert_array_equal(rows["x"], np.arange(n, dtype="f4"))
        assert (rows["kind"] == 5).all()
        assert (np.diff(rows["t"]) > 0).all()
        # everything up to the last flush (every 0.5 s) is there
        assert t_put - rows["t"][-1] < 1.0, (t_put, rows["t"][-1])
        assert rows["t"][-1] > 1.0


# -- full disk ---------------------------------------------------------------------------
RECORD_UNTIL_FULL = r"""
import json, resource, signal, sys, time
import numpy as np
from ifllm_lab.session import SessionMeta, SessionWriter

path, limit, min_free_mb = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
errors = []
w = SessionWriter(path, SessionMeta(participant="full"), flush_interval=0.05, on_error=errors.append,
                  min_free_mb=min_free_mb)
if limit:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
mouse = w.stats.streams["mouse"]
samples = []  # (rows written, flushes), read in that order
i = 0
deadline = time.monotonic() + 30
while w.error is None and time.monotonic() < deadline:
    n = 2000
    idx = np.arange(i, i + n)
    w.put_rows("mouse", {"t": w.clock.now() + idx * 1e-9, "x": idx.astype("f4"), "aoi_paragraph": idx})
    w.put("log", (w.clock.now(), 20, "test", f"row {i}"))
    i += n
    written = mouse.written
    samples.append((written, w.stats.flushes))
    time.sleep(0.004)
time.sleep(0.2)
lost_before = mouse.lost
after_put = w.put("mouse", (w.clock.now(), 0, 1.0))
after_rows = w.put_rows("mouse", {"t": [1.0, 2.0]})
stats = w.close()
# rows are durable when a flush finished after they were seen written
durable = max([wr for wr, fl in samples if fl < stats.flushes] or [0])
print("RESULT " + json.dumps(dict(
    error=w.error, errors=errors, after_put=after_put, after_rows=after_rows, lost_before=lost_before,
    lost=mouse.lost, written=mouse.written, sent=mouse.sent, put=i, durable=durable, flushes=stats.flushes,
    timed_out=time.monotonic() >= deadline,
)), flush=True)
"""


def _record_until_full(path: Path, limit: int, min_free_mb: float = 0.0) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", RECORD_UNTIL_FULL, str(path), str(limit), str(min_free_mb)], cwd=path.parent,
        env=child_env(),
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "Fatal Python error" not in proc.stderr, proc.stderr[-3000:]
    result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert result, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads(result[-1][len("RESULT "):])
    res["stderr"] = proc.stderr
    return res


def _check_stopped_cleanly(path: Path, res: dict, reason: str, problem: str = UNCLEAN) -> None:
    assert not res["timed_out"], "the limit was never hit"
    err = res["error"]
    assert err and "stopped" in err and reason in err, err
    assert str(path.name) in err
    assert res["errors"] == [err], "on_error must be called exactly once, with the message"
    assert res["after_put"] is False and res["after_rows"] is False
    assert res["lost"] == res["lost_before"] + 3  # the 1 + 2 rows put after the failure
    assert res["sent"] == res["put"] + 3
    assert res["sent"] == res["written"] + res["lost"], "every row sent is counted written or lost"
    assert res["durable"] > 0, "no flush succeeded before the failure: limit too small for this test"
    assert not os.path.exists(str(path) + ".compacting")

    with SessionReader(path) as r:
        assert not r.complete
        assert any(problem in p for p in r.problems), r.problems
        assert r.meta.participant == "full"
        m = r["mouse"]
        n = len(m)
        d = res["durable"]
        assert d <= n <= res["written"]
        # every row up to the last successful flush is there, in order
        np.testing.assert_array_equal(m.column("aoi_paragraph", 0, d), np.arange(d))
        np.testing.assert_array_equal(m.column("x", 0, d), np.arange(d, dtype="f4"))
        assert (np.diff(m.column("t", 0, d)) > 0).all()
        assert len(r["log"]) > 0
        assert r["log"].read(0, 1)["message"][0] == "row 0"


@pytest.mark.slow
def test_file_size_limit_stops_recording_cleanly(tmp_path):
    path = tmp_path / "limited.h5"
    limit = 6_000_000
    res = _record_until_full(path, limit)
    _check_stopped_cleanly(path, res, "size limit")
    assert os.path.getsize(path) <= limit


@contextlib.contextmanager
def _tmpfs(tmp_path: Path, size: str):
    """A real small disk; the session file lived on it only (nothing left after unmounting)."""
    with small_disk(tmp_path, size) as mnt:
        yield mnt
    assert list(mnt.iterdir()) == []


@pytest.mark.slow
def test_full_tmpfs_stops_recording_cleanly(tmp_path):
    with _tmpfs(tmp_path, "2m") as mnt:
        path = mnt / "full.h5"
        res = _record_until_full(path, 0)
        _check_stopped_cleanly(path, res, "disk is full")
        st = os.statvfs(mnt)
        assert st.f_bavail * st.f_frsize < 256 * 1024, "the tmpfs should be (nearly) full"


@pytest.mark.slow
def test_nearly_full_disk_stops_before_a_write_fails(tmp_path):
    with _tmpfs(tmp_path, "24m") as mnt:
        path = mnt / "full.h5"
        res = _record_until_full(path, 0, min_free_mb=16)
        # stopped before a write failed: the file is closed, as a session that ended early
        _check_stopped_cleanly(path, res, "nearly full", problem="ended before it was complete")
        st = os.statvfs(mnt)
        assert st.f_bavail * st.f_frsize > 4_000_000, "stopped with room to spare"
        with SessionReader(path) as r:  # closed normally: every row written is readable
            assert len(r["mouse"]) == res["written"]
            assert not any("shorter" in p for p in r.problems)


# -- bad files for the reader --------------------------------------------------------------------
@pytest.fixture(scope="module")
def closed_session(tmp_path_factory) -> Path:
    """A real, cleanly closed (compacted) session with numbers and text in several streams."""
    path = tmp_path_factory.mktemp("good") / "good.h5"
    w = SessionWriter(path, SessionMeta(participant="good"), flush_interval=0.05)
    rng = np.random.default_rng(3)
    n = 20000
    w.put_rows("mouse", {"t": np.arange(n) / 1000.0, "x": rng.uniform(0, 1920, n).astype("f4"),
                         "y": rng.uniform(0, 1080, n).astype("f4"), "aoi_paragraph": np.arange(n)})
    w.put_rows("gaze", {"t": np.arange(n // 30) / 30.0, "x": rng.normal(900, 50, n // 30),
                        "y": rng.normal(500, 50, n // 30), "valid": np.ones(n // 30, "u1")})
    for k in range(30):
        w.put("turns", (float(k), k, 0, f"Frage {k}: warum?\n" * 20, "Antwort " * 200))
    w.close()
    assert w.error is None and w.store.compacted
    return path


@pytest.fixture(scope="module")
def crashed_session(tmp_path_factory) -> Path:
    """A copy of a SWMR session file taken while it was open (as a SIGKILL leaves it)."""
    d = tmp_path_factory.mktemp("crashed")
    st = SessionStore(d / "open.h5", SessionMeta(participant="crashed"), swmr=True)
    n = 20000
    st.append("mouse", {"t": np.arange(n) / 1000.0, "aoi_paragraph": np.arange(n)})
    st.append("turns", {"t": [1.0, 2.0], "prompt": ["eins", "zwei ü"]})
    st.flush()
    shutil.copyfile(d / "open.h5", d / "crashed.h5")
    st.close()
    with SessionReader(d / "crashed.h5") as r:
        assert not r.complete and len(r["mouse"]) == n
    return d / "crashed.h5"


def _expect_error(path, *words: str) -> str:
    with pytest.raises(SessionFileError) as err:
        SessionReader(path)
    msg = str(err.value)
    assert str(path) in msg
    for word in words:
        assert word in msg, msg
    return msg


def test_random_bytes(tmp_path):
    p = tmp_path / "random.h5"
    p.write_bytes(np.random.default_rng(1).integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes())
    _expect_error(p, "not HDF5", "not an IFLLM Lab session")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.h5"
    p.write_bytes(b"")
    _expect_error(p, "not HDF5", "empty")


def test_folder(tmp_path):
    p = tmp_path / "folder.h5"
    p.mkdir()
    _expect_error(p, "folder")


def test_missing_path(tmp_path):
    _expect_error(tmp_path / "missing.h5", "no such file")


def test_hdf5_file_that_is_not_a_session(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["data"] = np.arange(10)
    _expect_error(p, "not an IFLLM Lab session")


def test_hdf5_signature_then_garbage(tmp_path):
    p = tmp_path / "garbage.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _expect_error(p, "cannot be opened as HDF5")


def test_newer_schema(tmp_path, closed_session):
    p = tmp_path / "future.h5"
    shutil.copyfile(closed_session, p)
    with h5py.File(p, "r+") as f:
        f.attrs["schema"] = 99
    msg = _expect_error(p, "newer", "99")
    assert "Update IFLLM Lab" in msg


def test_session_mark_missing(tmp_path, closed_session):
    p = tmp_path / "unmarked.h5"
    shutil.copyfile(closed_session, p)
    with h5py.File(p, "r+") as f:
        del f.attrs["format"]
    _expect_error(p, "not an IFLLM Lab session")


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99])
def test_truncated_closed_session(tmp_path, closed_session, fraction):
    p = tmp_path / f"cut{fraction}.h5"
    data = closed_session.read_bytes()
    p.write_bytes(data[: int(len(data) * fraction)])
    _expect_error(p, "truncated")


def test_truncated_closed_session_at_many_sizes(tmp_path, closed_session):
    """Cut anywhere (inside the superblock too): always SessionFileError, never another type."""
    data = closed_session.read_bytes()
    p = tmp_path / "cut.h5"
    cuts = list(range(0, 64, 3)) + list(np.linspace(64, len(data) - 1, 40).astype(int))
    for cut in cuts:
        p.write_bytes(data[:cut])
        with pytest.raises(SessionFileError) as err:
            SessionReader(p)
        msg = str(err.value)
        assert any(w in msg for w in ("truncated", "not HDF5")), (cut, msg)


@pytest.mark.slow
def test_truncated_crashed_session_fails_fast_or_opens(tmp_path, crashed_session):
    """A cut copy of a file left open by a recorder: SWMR mode skips the end-of-file check and
    retries checksum failures, which used to hang the reader for hours. Now: SessionFileError
    within seconds, or the file opens, says it is shorter than its index, and reads."""
    data = crashed_session.read_bytes()
    cuts = [20, 30, 45, 100, 4096, len(data) // 20, len(data) // 2, int(len(data) * 0.9), len(data) - 100]
    dirs = []
    for cut in cuts:
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / "s.h5").write_bytes(data[:cut])
        dirs.append(d / "s.h5")
    code = (
        "import sys, time\nfrom ifllm_lab.session import SessionReader, SessionFileError\n"
        "for p in sys.argv[1:]:\n    t0 = time.monotonic()\n"
        "    try:\n        r = SessionReader(p)\n        [r[n].read() for n in r.stream_names]\n"
        "        out = 'OPENED ' + ' | '.join(r.problems)\n"
        "    except SessionFileError as e:\n        out = 'SessionFileError ' + str(e)\n"
        "    print(f'{time.monotonic() - t0:.2f} {out}', flush=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *map(str, dirs)], env=child_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == len(cuts), proc.stdout
    for cut, line in zip(cuts, lines):
        seconds, outcome = line.split(" ", 1)
        assert float(seconds) < 5.0, (cut, line)
        if outcome.startswith("OPENED"):
            assert "shorter than its own index" in outcome and UNCLEAN in outcome, (cut, line)
        else:
            assert outcome.startswith("SessionFileError") and ("truncated" in outcome or "not HDF5" in outcome), (
                cut, line)
    assert any(line.split(" ", 1)[1].startswith("SessionFileError") for line in lines)


def test_crashed_session_opens_with_problem(crashed_session):
    with SessionReader(crashed_session) as r:
        assert r.live_or_crashed and not r.complete
        assert any(UNCLEAN in p for p in r.problems)
        assert not any("shorter" in p for p in r.problems)
        np.testing.assert_array_equal(r["mouse"].column("aoi_paragraph"), np.arange(20000))
        assert list(r["turns"].column("prompt")) == ["eins", "zwei ü"]


def test_one_column_shorter_reads_to_the_shortest(tmp_path, closed_session):
    p = tmp_path / "short-column.h5"
    shutil.copyfile(closed_session, p)
    with SessionReader(closed_session) as r:
        full = r["mouse"].read()
    with h5py.File(p, "r+") as f:
        f["mouse/y"].resize((12345,))
    with SessionReader(p) as r:
        s = r["mouse"]
        assert len(s) == 12345
        assert s.column_lengths()["x"] == 20000 and s.column_lengths()["y"] == 12345
        rows = s.read()
        assert len(rows) == 12345
        for name in full.dtype.names:
            np.testing.assert_array_equal(rows[name], full[name][:12345])
        assert len(s.t) == 12345
        assert s.index_range(0, 1e9) == (0, 12345)
        assert len(r["gaze"]) == len(r["gaze"].t) > 0  # other streams untouched
