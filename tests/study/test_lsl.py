"""Lab Streaming Layer: a study with ``lsl = true`` publishes its gaze, mouse and phases as
LSL streams. Real pylsl inlets in this process receive them; every sample carries its
session row's time on LSL's clock (through the offset recorded in the file), the streams
say which session they belong to, and a study without LSL never imports pylsl. A missing
or broken pylsl is a readiness problem with a clear message, and the session is recorded
without the streams."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pylsl
import pytest

from ifllm_lab.config import config_from_dict
from ifllm_lab.gaze.tracker import GazeSample
from ifllm_lab.session import SessionClock, SessionReader
from ifllm_lab.session.schema import MouseKind
from ifllm_lab.study.lsl import GAZE_CHANNELS, MOUSE_CHANNELS, marker_text, measure_offset
from ifllm_lab.study.readiness import check_lsl
from ifllm_lab.study.session import Backends, StudySession

from tests.support.child_process import child_env

WAIT_S = 20.0  # LSL resolves and connects in ms here; a busy machine may need seconds


def _inlet(source_id: str) -> pylsl.StreamInlet:
    found = pylsl.resolve_byprop("source_id", source_id, 1, WAIT_S)
    assert found, f"no LSL stream {source_id} within {WAIT_S} s"
    inlet = pylsl.StreamInlet(found[0], max_buflen=60, processing_flags=0)
    inlet.open_stream(WAIT_S)  # subscribed: everything pushed from now on arrives
    return inlet


def _pull(inlet: pylsl.StreamInlet, n: int) -> tuple[list, list]:
    """Pull until ``n`` samples arrived (or WAIT_S passed without reaching them)."""
    samples, stamps = [], []
    deadline = time.monotonic() + WAIT_S
    while len(samples) < n and time.monotonic() < deadline:
        s, t = inlet.pull_chunk(timeout=0.2)
        samples += s
        stamps += t
    return samples, stamps


def _config(tmp_path, lsl: bool):
    return config_from_dict({"study": {"name": "lsl-study", "mode": "pairwise", "questions": 2,
                                       "data_folder": str(tmp_path), "lsl": lsl},
                             "llm": [{"name": "small", "max_tokens": 4, "seed": 7}]})


def test_lsl_streams_carry_the_session_rows_on_the_lsl_clock(tmp_path):
    cfg = _config(tmp_path, lsl=True)
    assert check_lsl(cfg) == []  # pylsl and liblsl load here
    clock = SessionClock()
    backends = Backends(cfg, clock=clock.now)
    inlets = {}
    try:
        s = StudySession(cfg, tmp_path / "lsl.h5", "P-LSLTEST", clock, (1280, 720), backends, seed=5)
        sid = s.session_id
        for what in ("gaze", "mouse", "markers"):
            inlets[what] = _inlet(f"ifllm-lab:{sid}:{what}")
        phases_before = s.writer.stats.streams["phases"].sent  # written before anyone could listen

        # what the app writes: the tracker thread's gaze, the window's mouse, the flow's phases
        def tracker():
            for i in range(300):
                s.writer.put("gaze", GazeSample(t=clock.now(), frame=i, x=100.0 + i, y=50.0 + i / 2, raw_x=99.0 + i,
                                                raw_y=51.0, valid=i % 7 != 0, confidence=0.5 + (i % 5) / 10).row())
                time.sleep(0.0005)

        gaze_thread = threading.Thread(target=tracker)
        gaze_thread.start()
        s.consent("consent text", "builtin")
        turn = s.begin_turn("Name a colour.")
        for i in range(400):  # moves with every column, presses with some left out (their fill values)
            if i % 50 == 0:
                s.writer.put("mouse", (clock.now(), int(MouseKind.PRESS), 10.0 + i, 20.0, 1))
            else:
                s.writer.put("mouse", (clock.now(), int(MouseKind.MOVE), 10.0 + i, 20.0 + i, 0, np.nan, np.nan,
                                       i % 3 - 1, i % 4, i % 9))
        now = clock.now()
        s.writer.put_rows("mouse", {"t": np.array([now, now + 1e-4]), "kind": np.array([4, 4]),
                                    "x": np.array([5.0, 6.0]), "y": np.array([7.0, 8.0]),
                                    "delta_y": np.array([15.0, -15.0])})
        s.generate(turn)  # the real model: "answers" from the LLM thread
        s.phase("stage", stage="rating")
        s.finish_turn(turn, likert={1: 4, 2: 2}, preference=1, t_rated=clock.now())
        gaze_thread.join()
        s.writer.put_rows("gaze", {"t": clock.now() + np.arange(3) / 30, "x": np.array([1.0, 2.0, 3.0]),
                                   "y": np.array([4.0, 5.0, 6.0]), "valid": np.array([1, 1, 0], np.uint8)})
        s.questionnaire(0, "How natural did the conversation feel? (1-5)", 4)
        outlets = dict(s.lsl.outlets)  # a recorder stays connected until it has everything
        publisher = s.lsl
        stats = s.close()
        assert s.lsl is None and not s.writer._taps  # the tap is off the writer, the publisher closed
        publisher.tap("phases", (1e9, "late", "{}"))  # a late row is ignored, not queued
        assert not publisher._queue
    finally:
        backends.close()
    assert stats["lsl"]["failed"] == {} and stats["lsl"]["skipped"] == 0

    with SessionReader(tmp_path / "lsl.h5") as r:
        lsl_meta = r.meta.extra["lsl"]
        offset = lsl_meta["clock_offset_s"]
        phases = r["phases"].read()
        gaze = r["gaze"].read()
        mouse = r["mouse"].read()
        messages = list(r["log"].column("message"))

    # the offset is in the file: metadata, a phase at the start and one at the end (drift)
    clock_rows = [json.loads(p["detail"]) for p in phases if p["name"] == "lsl_clock"]
    assert [c["when"] for c in clock_rows] == ["start", "end"]
    assert clock_rows[0]["offset_s"] == offset
    assert clock_rows[1]["drift_s"] == pytest.approx(clock_rows[1]["offset_s"] - offset)
    assert any(m.startswith("LSL streams open") for m in messages)
    assert any(m.startswith("LSL clock offset at the end") for m in messages)
    assert lsl_meta["streams"]["IFLLM-Markers"] == f"ifllm-lab:{sid}:markers"
    # ... and it is the offset: LSL's clock read now, against the session clock converted
    best = measure_offset(clock.now, pylsl.local_clock, readings=60)
    assert abs(best.offset_s - offset) < 1e-3 + best.uncertainty_s

    # every marker written while the inlet listened, in order, 1 ms or better
    expected = phases[phases_before:]
    assert [p["name"] for p in expected][-2:] == ["lsl_clock", "end"]
    samples, stamps = _pull(inlets["markers"], len(expected))
    assert [m[0] for m in samples] == [marker_text(p["name"], p["detail"]) for p in expected]
    marker_error = np.abs(np.array(stamps) - (expected["t"] + offset))
    assert marker_error.max() < 1e-3
    names = [m[0].split(" ", 1)[0] for m in samples]
    assert names[:2] == ["consent", "turn"] and {"answers", "turn_end", "questionnaire"} <= set(names)
    assert "Name a colour." not in "".join(m[0] for m in samples)  # the conversation stays in the file
    turn_end = json.loads(next(m[0] for m in samples if m[0].startswith("turn_end ")).split(" ", 1)[1])
    assert turn_end == {"turn": 0, "likert": {"1": 4, "2": 2}, "preference": 1}

    # every gaze and mouse row, with its values and its time
    for what, rows, channels in (("gaze", gaze, GAZE_CHANNELS), ("mouse", mouse, MOUSE_CHANNELS)):
        samples, stamps = _pull(inlets[what], len(rows))
        assert len(samples) == len(rows), what
        assert np.abs(np.array(stamps) - (rows["t"] + offset)).max() < 1e-3, what
        want = np.column_stack([rows[c].astype(np.float32) for c, _, _ in channels])
        np.testing.assert_array_equal(np.array(samples, dtype=np.float32), want, err_msg=what)
    assert len(gaze) == 303 and len(mouse) == 402

    # the streams say whose they are
    info = inlets["markers"].info(WAIT_S)
    assert (info.name(), info.type(), info.channel_format()) == ("IFLLM-Markers", "Markers", pylsl.cf_string)
    session = info.desc().child("session")
    assert (session.child_value("id"), session.child_value("study"), session.child_value("participant")) == (
        sid, "lsl-study", "P-LSLTEST")
    assert float(info.desc().child("clock").child_value("offset_s")) == offset
    ginfo = inlets["gaze"].info(WAIT_S)
    assert ginfo.nominal_srate() == cfg.camera.fps and ginfo.source_id() == f"ifllm-lab:{sid}:gaze"
    ch = ginfo.desc().child("channels").child("channel")
    labels = []
    while not ch.empty():
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling()
    assert labels == [c for c, _, _ in GAZE_CHANNELS]
    print(f"LSL marker timestamp error: max {marker_error.max() * 1e9:.1f} ns over {len(expected)} markers; "
          f"offset {offset:.9f} s +- {lsl_meta['clock_uncertainty_s'] * 1e6:.2f} us; end drift "
          f"{clock_rows[1]['drift_s'] * 1e6:+.3f} us")
    for inlet in inlets.values():
        inlet.close_stream()
    del outlets


def test_markers_keep_small_details_and_leave_the_conversation_out():
    assert marker_text("turn", json.dumps({"turn": 2, "mode": "pairwise", "swapped": False, "prompt": "hi"})) == \
        'turn {"turn":2,"mode":"pairwise","swapped":false}'
    answers = {"turn": 1, "texts": {"1": "a long answer"}, "models": {"1": "m"}, "finish": {"1": "stop"}}
    assert marker_text("answers", json.dumps(answers)) == 'answers {"turn":1,"models":{"1":"m"},"finish":{"1":"stop"}}'
    assert marker_text("stage", json.dumps({"note": "x" * 200})) == "stage"
    assert marker_text("end", "") == "end" and marker_text("odd", "not json") == "odd"


def _run(code: str, env: dict | None = None) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env=env or child_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


SESSION = """
    import json, sys
    {prelude}
    from ifllm_lab.config import config_from_dict
    from ifllm_lab.session import SessionClock, SessionReader
    from ifllm_lab.study.readiness import check_study
    from ifllm_lab.study.session import Backends, StudySession

    folder = {folder!r}
    cfg = config_from_dict({{"study": {{"name": "s", "data_folder": folder, "lsl": {lsl}}}}})
    problems = [(p.key, p.message) for p in check_study(cfg).problems]
    clock = SessionClock()
    s = StudySession(cfg, folder + "/s.h5", "P-X", clock, (800, 600), Backends(cfg, clock=clock.now))
    s.consent("text", "builtin")
    s.writer.put("mouse", (clock.now(), 0, 1.0, 2.0))
    opened = s.lsl is not None
    taps = dict(s.writer._taps)
    s.close()
    with SessionReader(folder + "/s.h5") as r:
        result = dict(problems=problems, opened=opened, taps=sorted(taps), state=r.state, mouse=len(r["mouse"]),
                      lsl_meta="lsl" in r.meta.extra, phases=list(r["phases"].column("name")),
                      log=list(r["log"].column("message")), pylsl_loaded="pylsl" in sys.modules)
    print(json.dumps(result))
"""


def test_a_study_without_lsl_imports_no_pylsl_and_opens_nothing(tmp_path):
    r = _run(SESSION.format(prelude="", folder=str(tmp_path), lsl="False"))
    assert r["problems"] == [] and not r["opened"] and r["taps"] == []
    assert not r["pylsl_loaded"] and not r["lsl_meta"] and "lsl_clock" not in r["phases"]
    assert r["state"] == "complete" and r["mouse"] == 1


def test_a_missing_pylsl_is_a_clear_readiness_problem_and_loses_nothing(tmp_path):
    # the import system's own way of saying a module cannot be imported
    r = _run(SESSION.format(prelude="sys.modules['pylsl'] = None", folder=str(tmp_path), lsl="True"))
    assert len(r["problems"]) == 1
    key, message = r["problems"][0]
    assert key == "study.lsl"
    assert "pylsl package is not installed" in message and "pip install pylsl" in message and "lsl = false" in message
    # a session started anyway is recorded whole, without the streams, the reason in its log
    assert not r["opened"] and r["state"] == "complete" and r["mouse"] == 1 and not r["lsl_meta"]
    assert any("could not be opened" in m and "not installed" in m for m in r["log"])


def test_a_broken_liblsl_is_a_clear_readiness_problem(tmp_path):
    broken = tmp_path / "liblsl.so"
    broken.write_bytes(b"this is not a shared library\n")
    env = child_env()
    env["PYLSL_LIB"] = str(broken)  # pylsl finds this file first and cannot load it
    folder = tmp_path / "data"
    folder.mkdir()
    r = _run(SESSION.format(prelude="", folder=str(folder), lsl="True"), env=env)
    assert len(r["problems"]) == 1
    key, message = r["problems"][0]
    assert key == "study.lsl" and "cannot load the LSL library (liblsl)" in message
    assert str(broken) in message and "PYLSL_LIB" in message and "lsl = false" in message
    assert not r["opened"] and r["state"] == "complete" and r["mouse"] == 1
