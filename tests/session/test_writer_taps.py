"""Taps on the session writer: they see the rows of their streams as the producers queue
them, and a failing tap is dropped without touching the recording."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from ifllm_lab.session import SessionReader
from ifllm_lab.session.schema import SessionMeta
from ifllm_lab.session.writer import SessionWriter


def test_a_tap_sees_every_accepted_row_of_its_streams(tmp_path):
    seen = []
    w = SessionWriter(tmp_path / "s.h5", SessionMeta(session_id="taps"))

    def tap(stream, item):
        seen.append((stream, item, threading.current_thread().name))

    with pytest.raises(KeyError):
        w.add_tap(["gaze", "no-such-stream"], tap)
    w.add_tap(["gaze", "phases"], tap)
    w.put("gaze", (0.1, 1.0, 2.0))
    w.put("mouse", (0.2, 0, 1.0, 2.0))  # not tapped
    batch = {"t": np.array([0.3, 0.4]), "x": np.array([3.0, 4.0])}
    w.put_rows("gaze", batch)
    done = threading.Thread(target=w.put, args=("phases", (0.5, "turn", "{}")), name="producer")
    done.start()
    done.join()
    w.remove_tap(tap)
    w.put("gaze", (0.6, 5.0, 6.0))  # after removal
    w.close()
    assert w.put("phases", (0.7, "late", "{}")) is False  # refused rows are not tapped either
    assert [s for s, _, _ in seen] == ["gaze", "gaze", "phases"]
    assert seen[0][1] == (0.1, 1.0, 2.0) and seen[0][2] == threading.current_thread().name
    np.testing.assert_array_equal(seen[1][1]["x"], [3.0, 4.0])
    assert seen[2][1][1] == "turn" and seen[2][2] == "producer"  # in the producer's own thread


def test_a_failing_tap_is_dropped_and_recording_goes_on(tmp_path, caplog):
    calls = []
    good = []

    def bad(stream, item):
        calls.append(item)
        raise RuntimeError("the consumer broke")

    w = SessionWriter(tmp_path / "s.h5", SessionMeta(session_id="taps"))
    w.add_tap(["mouse"], bad)
    w.add_tap(["mouse"], lambda stream, item: good.append(item))
    for i in range(100):
        assert w.put("mouse", (i / 100, 0, float(i), 0.0))
    w.close()
    assert len(calls) == 1 and len(good) == 100  # dropped at its first fault; the other tap goes on
    assert sum("tap on the mouse stream failed" in r.getMessage() for r in caplog.records) == 1
    with SessionReader(tmp_path / "s.h5") as r:
        assert len(r["mouse"]) == 100 and r.state == "complete"
        assert ["RuntimeError('the consumer broke')" in m for m in r["log"].column("message")] == [True]
