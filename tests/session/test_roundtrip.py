"""Session file round trips: every stream and column written by the real writer (and the
importer's SessionStore path) reads back exactly; fills, time ranges, metadata, the
clean-close mark and compaction; errors for folders that cannot be written."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from ifllm_lab.session import (
    STREAMS,
    SessionFileError,
    SessionMeta,
    SessionReader,
    SessionStore,
    SessionWriteError,
    SessionWriter,
)
from ifllm_lab.session.schema import CORE_STREAMS, LogLevel

TRICKY_TEXT = [
    "",
    "plain ascii",
    "Grüße, naïve café — ‘single’ “double” 日本語 🙂 עברית",
    'say "hi" and \'bye\' \\ backslash',
    "line one\nline two\r\nline three\n",
    "\ttab, comma; semicolon|pipe",
    '{"json": [1, 2.5, {"k": "v"}], "ü": null}',
    "x" * 5000,
    "nul\x00inside",
    "  leading and trailing spaces  ",
]

N_ROWS = 40


def column_values(stream: str, col, n: int, rng: np.random.Generator):
    """n values of the column's dtype, with the awkward ones (limits, NaN, inf) first."""
    if col.is_text:
        shift = (len(stream) + len(col.name)) % len(TRICKY_TEXT)
        return [TRICKY_TEXT[(i + shift) % len(TRICKY_TEXT)] for i in range(n)]
    if col.name == "t":
        return np.cumsum(rng.uniform(0.001, 0.02, n)).astype("f8")
    dt = np.dtype(col.dtype)
    if dt.kind == "f":
        v = (rng.standard_normal(n) * 1000).astype(dt)
        fi = np.finfo(dt)
        special = [0.0, np.inf, -np.inf, np.nan, fi.max, fi.tiny, -fi.max]
        v[: min(n, 7)] = special[:n]
        return v
    info = np.iinfo(dt)
    v = rng.integers(info.min, info.max, n, endpoint=True, dtype=dt)
    v[: min(n, 3)] = [info.min, info.max, 0][:n]
    return v


def expected_columns(stream: str, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {c.name: column_values(stream, c, n, rng) for c in STREAMS[stream].columns}


def as_tuples(stream: str, cols: dict) -> list[tuple]:
    names = STREAMS[stream].column_names
    lists = [cols[c] if isinstance(cols[c], list) else cols[c].tolist() for c in names]
    return list(zip(*lists))


def assert_column_equal(stream: str, col, got, want) -> None:
    where = f"{stream}/{col.name}"
    if col.is_text:
        assert got.dtype == object, where
        assert list(got) == list(want), where
    else:
        assert got.dtype == np.dtype(col.dtype), where
        np.testing.assert_array_equal(got, np.asarray(want, dtype=col.dtype), err_msg=where)


# -- every stream, every column ---------------------------------------------------------
@pytest.fixture(scope="module")
def written_session(tmp_path_factory):
    """One session with N_ROWS rows in every stream (core and extra), written with put()."""
    path = tmp_path_factory.mktemp("roundtrip") / "all.h5"
    expected = {name: expected_columns(name, N_ROWS, seed=i) for i, name in enumerate(STREAMS)}
    w = SessionWriter(path, SessionMeta(participant="P01"), streams=list(STREAMS), flush_interval=0.05)
    for name, cols in expected.items():
        for row in as_tuples(name, cols):
            assert w.put(name, row)
    stats = w.close()
    assert w.error is None
    return path, expected, stats


@pytest.mark.parametrize("stream", list(STREAMS))
def test_every_column_round_trips_exactly(written_session, stream):
    path, expected, stats = written_session
    assert stats.streams[stream].written == N_ROWS and stats.streams[stream].lost == 0
    with SessionReader(path) as r:
        s = r[stream]
        assert len(s) == N_ROWS
        assert s.columns == STREAMS[stream].column_names
        rows = s.read()
        for col in STREAMS[stream].columns:
            assert_column_equal(stream, col, rows[col.name], expected[stream][col.name])
            # column() reads the same values as read()
            assert_column_equal(stream, col, s.column(col.name), expected[stream][col.name])
        # a partial read is the matching slice
        part = s.read(5, 9)
        for col in STREAMS[stream].columns:
            assert_column_equal(stream, col, part[col.name], expected[stream][col.name][5:9])


def test_core_streams_are_created_by_default(tmp_path):
    path = tmp_path / "default.h5"
    SessionWriter(path, SessionMeta()).close()
    with SessionReader(path) as r:
        assert r.stream_names == list(CORE_STREAMS)
        assert "gaze_rel" not in r
        with pytest.raises(KeyError, match="gaze_rel"):
            r["gaze_rel"]
        assert all(len(r[n]) == 0 for n in CORE_STREAMS)


# -- batches and fills ---------------------------------------------------------------
def test_batches_structured_array_and_dict_keep_order_and_fill(tmp_path):
    path = tmp_path / "batches.h5"
    w = SessionWriter(path, SessionMeta(), flush_interval=0.05)
    w.put("mouse", (0.0, 1, 10.0, 20.0, 1, 0.5, -0.5, 2, 3, 4, 99.0))
    arr = np.zeros(3, dtype=[("t", "f8"), ("x", "f4"), ("aoi_word", "i4")])
    arr["t"] = [0.1, 0.2, 0.3]
    arr["x"] = [1.5, 2.5, 3.5]
    arr["aoi_word"] = [7, 8, 9]
    assert w.put_rows("mouse", arr)
    assert w.put_rows("mouse", {"t": [0.4, 0.5], "kind": [4, 4], "delta_y": [15.0, -15.0]})
    w.put("mouse", (0.6, 2))
    # text columns in batches (object arrays and lists), with the rest filled
    log = np.empty(2, dtype=[("t", "f8"), ("message", object)])
    log["t"] = [1.0, 2.0]
    log["message"] = ["first ü", 'second "q"\n']
    assert w.put_rows("log", log)
    assert w.put_rows("turns", {"t": [5.0], "prompt": ["Was ist\nHDF5?"], "likert_1": [4]})
    stats = w.close()
    assert w.error is None
    assert stats.streams["mouse"].written == 7 and stats.streams["log"].written == 2

    with SessionReader(path) as r:
        m = r["mouse"].read()
        np.testing.assert_array_equal(m["t"], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
        np.testing.assert_array_equal(m["x"], np.array([10.0, 1.5, 2.5, 3.5, np.nan, np.nan, np.nan], "f4"))
        np.testing.assert_array_equal(m["aoi_word"], [4, 7, 8, 9, -1, -1, -1])
        np.testing.assert_array_equal(m["kind"], [1, 0, 0, 0, 4, 4, 2])
        np.testing.assert_array_equal(m["delta_y"], np.array([-0.5, np.nan, np.nan, np.nan, 15, -15, np.nan], "f4"))
        np.testing.assert_array_equal(m["buttons"], [1, 0, 0, 0, 0, 0, 0])
        np.testing.assert_array_equal(m["aoi_response"], [2, -1, -1, -1, -1, -1, -1])
        np.testing.assert_array_equal(m["page_ms"][1:], np.full(6, np.nan))

        lg = r["log"].read()
        assert list(lg["message"]) == ["first ü", 'second "q"\n']
        assert list(lg["source"]) == ["", ""]
        np.testing.assert_array_equal(lg["level"], [0, 0])

        t = r["turns"].read()
        assert t["prompt"][0] == "Was ist\nHDF5?"
        assert t["likert_1"][0] == 4
        assert (t["response_1"][0], t["response_2"][0], t["settings"][0]) == ("", "", "")
        assert (t["turn"][0], t["likert_2"][0], t["preference"][0]) == (-1, -1, -1)
        assert t["mode"][0] == 0
        assert np.isnan(t["t_done"][0])


@pytest.mark.parametrize("stream", CORE_STREAMS)
def test_omitted_trailing_columns_take_fill_values(tmp_path, stream):
    spec = STREAMS[stream]
    cols = expected_columns(stream, 3, seed=7)
    full = as_tuples(stream, cols)
    half = len(spec.columns) // 2
    path = tmp_path / "fill.h5"
    w = SessionWriter(path, SessionMeta(), flush_interval=0.05)
    w.put(stream, full[0][:1])  # only t
    w.put(stream, full[1][: max(1, half)])
    w.put(stream, full[2])  # rows of several widths in one batch
    w.close()
    assert w.error is None
    with SessionReader(path) as r:
        rows = r[stream].read()
    assert len(rows) == 3
    for i, width in enumerate((1, max(1, half), len(spec.columns))):
        for j, col in enumerate(spec.columns):
            got = rows[col.name][i]
            if j < width:
                want = cols[col.name][i]
            else:
                want = col.default()
                # the documented fills: NaN, -1, 0 and ""
                kind = "T" if col.is_text else np.dtype(col.dtype).kind
                assert {"T": want == "", "f": want != want, "i": want == -1, "u": want == 0}[kind], col.name
            if col.is_text:
                assert got == want, (stream, col.name, i)
            elif isinstance(want, float) and np.isnan(want):
                assert np.isnan(got), (stream, col.name, i)
            else:
                assert got == np.asarray(want, dtype=col.dtype), (stream, col.name, i)


def test_log_helper_records_a_row(tmp_path):
    path = tmp_path / "log.h5"
    w = SessionWriter(path, SessionMeta(), flush_interval=0.05)
    assert w.log(LogLevel.WARNING, "camera", "dropped 3 frames — ü")
    w.close()
    with SessionReader(path) as r:
        rows = r["log"].read()
    assert len(rows) == 1
    assert rows["level"][0] == 30 and rows["source"][0] == "camera"
    assert rows["message"][0] == "dropped 3 frames — ü"
    assert 0.0 <= rows["t"][0] < 5.0


# -- time ranges ------------------------------------------------------------------------
def test_between_and_index_range_edges(tmp_path):
    t = [0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.5]
    path = tmp_path / "range.h5"
    w = SessionWriter(path, SessionMeta(), flush_interval=0.05)
    w.put_rows("mouse", {"t": t, "x": np.arange(len(t), dtype="f4"), "aoi_paragraph": np.arange(len(t))})
    w.put("gaze", (3.25, 1.0, 2.0))
    w.close()
    with SessionReader(path) as r:
        s = r["mouse"]
        np.testing.assert_array_equal(s.t, t)
        # [t0, t1): t0 inclusive (both rows at 1.0), t1 exclusive
        assert s.index_range(0.5, 1.5) == (1, 4)
        np.testing.assert_array_equal(s.between(0.5, 1.5)["aoi_paragraph"], [1, 2, 3])
        assert s.index_range(1.0, 1.0) == (2, 2) and len(s.between(1.0, 1.0)) == 0
        assert s.index_range(1.0, 1.0000001) == (2, 4)
        assert s.index_range(-5.0, 0.0) == (0, 0)
        assert s.index_range(-5.0, 1e-9) == (0, 1)
        assert s.index_range(2.5, 99.0) == (6, 7)
        assert s.index_range(2.6, 99.0) == (7, 7) and len(s.between(2.6, 99.0)) == 0
        assert s.index_range(0.0, 99.0) == (0, 7)
        sel = s.between(0.9, 2.1, columns=("t", "x"))
        assert sel.dtype.names == ("t", "x")
        np.testing.assert_array_equal(sel["t"], [1.0, 1.0, 1.5, 2.0])
        np.testing.assert_array_equal(sel["x"], np.array([2, 3, 4, 5], "f4"))
        info = s.info()
        assert (info.count, info.t_first, info.t_last) == (7, 0.0, 2.5)
        assert info.rate_hz == pytest.approx(6 / 2.5)
        assert r["scroll"].info().count == 0
        assert r.duration() == 3.25


# -- metadata, clean close, compaction ------------------------------------------------------------
def test_meta_round_trip_complete_and_compacted(tmp_path):
    path = tmp_path / "meta.h5"
    meta = SessionMeta(
        participant="P-07 Jürgen",
        study="pilot \"A\"\nline 2",
        session_id="2026-11-23_P07",
        screen_width_px=2560,
        screen_height_px=1440,
        screen_width_mm=596.7,
        screen_height_mm=335.6,
        viewing_distance_mm=650.0,
        extra={"camera": {"index": 0, "fps": 30.0}, "models": ["smollm2", "qwen"], "ü": "日本", "flag": True,
               "none": None},
    )
    w = SessionWriter(path, meta, flush_interval=0.05)
    for i in range(2000):
        w.put("mouse", (i / 1000.0, 0, float(i % 1920), float(i % 1080)))
    w.put("gaze", (2.5, 100.0, 200.0, 1))
    w.close()
    assert w.error is None
    assert w.store.compacted
    assert not os.path.exists(str(path) + ".compacting")

    with SessionReader(path) as r:
        assert r.complete
        assert r.problems == []
        assert not r.live_or_crashed
        got = r.meta
        assert got == SessionMeta(**{**meta.__dict__, "clock_start_unix": w.clock.unix_start})
        assert got.clock_start_unix > 1.7e9
        a = r.attrs
        assert a["format"] == "ifllm-lab-session" and a["schema"] == 1 and a["complete"] is True
        assert a["duration_s"] == 2.5
        assert r.schema == 1
    with h5py.File(path, "r") as f:
        assert f["mouse/x"].compression == "gzip"
        assert f["mouse/t"].compression == "gzip"
        assert f["text_heap"].compression == "gzip"
        assert f["turns/prompt"].compression == "gzip"
        assert f["mouse/t"].shape == (2000,)


def test_store_without_swmr_round_trips(tmp_path):
    """The importer's path: SessionStore directly, compressed from the start, extra streams."""
    path = tmp_path / "imported.h5"
    meta = SessionMeta(participant="imp", source="ifllm-release", extra={"release": "dev"})
    names = ["gaze", "mouse", "turns", "gaze_rel", "log"]
    expected = {name: expected_columns(name, 25, seed=100 + i) for i, name in enumerate(names)}
    with SessionStore(path, meta, streams=names) as st:
        assert st.swmr is False
        for name, cols in expected.items():
            assert st.append(name, cols) == 25
        with pytest.raises(KeyError):
            st.append("layout", {"t": [1.0]})  # not created in this file
        with pytest.raises(KeyError, match="bogus"):
            st.append("mouse", {"t": [1.0], "bogus": [1]})
    assert st.closed and not st.compacted
    with h5py.File(path, "r") as f:
        assert f["gaze/x"].compression == "gzip"
    with SessionReader(path) as r:
        assert r.complete and r.problems == []
        assert r.stream_names == [n for n in STREAMS if n in names]
        assert r.meta.extra == {"release": "dev"} and r.meta.source == "ifllm-release"
        for name in names:
            rows = r[name].read()
            for col in STREAMS[name].columns:
                assert_column_equal(name, col, rows[col.name], expected[name][col.name])


def test_store_marked_incomplete_when_closed_by_an_exception(tmp_path):
    path = tmp_path / "aborted.h5"
    with pytest.raises(ZeroDivisionError):
        with SessionStore(path, SessionMeta()) as st:
            st.append("mouse", {"t": [0.0, 1.0]})
            1 / 0
    with SessionReader(path) as r:
        assert not r.complete and r.state == "ended_early"
        assert any("ended before it was complete" in p for p in r.problems)
        assert len(r["mouse"]) == 2


# -- folders that cannot be written ----------------------------------------------------------
def _assert_no_writer_thread():
    import threading

    assert not [t for t in threading.enumerate() if t.name == "session-writer" and t.is_alive()]


def test_writer_on_missing_folder(tmp_path):
    path = tmp_path / "no" / "such" / "folder" / "s.h5"
    with pytest.raises(SessionWriteError) as err:
        SessionWriter(path, SessionMeta())
    msg = str(err.value)
    assert str(path) in msg and "does not exist" in msg
    assert not path.parent.exists()
    _assert_no_writer_thread()


def test_writer_when_the_folder_is_a_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("I am not a folder")
    path = blocker / "s.h5"
    with pytest.raises(SessionWriteError) as err:
        SessionWriter(path, SessionMeta())
    assert str(path) in str(err.value)
    assert blocker.read_text() == "I am not a folder"


@pytest.fixture
def unwritable_folder(tmp_path):
    """A folder this process cannot create files in, even as root."""
    d = tmp_path / "locked"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o500)
        yield d
        d.chmod(0o700)
        return
    # root ignores permission bits: use a read-only mount, else a kernel file system
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(d)], capture_output=True
    ).returncode == 0
    try:
        if mounted:
            yield d
        elif os.path.isdir("/proc/self"):
            yield Path("/proc/self")
        else:
            pytest.skip("no way to make an unwritable folder as root here (mount not permitted, no /proc)")
    finally:
        if mounted:
            subprocess.run(["umount", str(d)], check=True)


def test_writer_on_unwritable_folder(unwritable_folder):
    path = unwritable_folder / "s.h5"
    with pytest.raises(SessionWriteError) as err:
        SessionWriter(path, SessionMeta())
    msg = str(err.value)
    assert str(path) in msg
    assert "not writable" in msg or "Cannot create session file" in msg
    assert not path.exists()
    _assert_no_writer_thread()


def test_writer_refuses_to_overwrite(tmp_path):
    path = tmp_path / "exists.h5"
    path.write_bytes(b"precious")
    with pytest.raises(SessionWriteError, match="already exists"):
        SessionWriter(path, SessionMeta())
    assert path.read_bytes() == b"precious"


# -- rows for streams that do not exist -----------------------------------------------------
def test_unknown_stream_raises_key_error_and_recording_goes_on(tmp_path):
    path = tmp_path / "unknown.h5"
    w = SessionWriter(path, SessionMeta(), streams=["mouse", "log"], flush_interval=0.05)
    with pytest.raises(KeyError):
        w.put("no_such_stream", (1.0,))
    with pytest.raises(KeyError):
        w.put_rows("no_such_stream", {"t": [1.0]})
    with pytest.raises(KeyError):
        w.put("gaze", (1.0, 2.0, 3.0))  # a schema stream this file does not have
    assert w.put("mouse", (1.0, 0, 5.0))
    w.close()
    assert w.error is None
    with SessionReader(path) as r:
        assert r.stream_names == ["mouse", "log"]
        assert len(r["mouse"]) == 1
    with pytest.raises(SessionFileError):
        SessionReader(path.with_name("never-written.h5"))


def test_bad_rows_are_refused_in_the_producer_and_recording_goes_on(tmp_path):
    w = SessionWriter(tmp_path / "s.h5", SessionMeta())
    with pytest.raises(KeyError, match="no column"):
        w.put_rows("mouse", {"t": [0.1], "colour": [1]})
    with pytest.raises(ValueError, match="unequal length"):
        w.put_rows("mouse", {"t": [0.1, 0.2], "x": [1.0]})
    with pytest.raises(ValueError, match="values for 6 columns"):
        w.put("window", (0.1, 0, 1.0, 2.0, 3.0, 4.0, 5.0))
    assert w.put("mouse", (0.3, 0, 5.0, 6.0))
    w.close()
    assert w.error is None
    with SessionReader(tmp_path / "s.h5") as r:
        assert len(r["mouse"]) == 1
