"""``ifllm-lab --self-test``: is this installation (a venv or the standalone bundle) whole?

Offscreen, in a temporary folder, in well under a minute: the face model loads and finds
the face in the bundled portrait; the bundled LLM answers a short prompt; a session file is
written, read back, replayed to a PNG and exported as CSV; the workbench window opens on
it and lists it. One line per check with its time; the exit status is 0 when every check
passed, else 1, and the first failing check is named last.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

__all__ = ["CHECKS", "run_self_test"]


def _face(tmp: str) -> str:
    import cv2

    from ..gaze.landmarks import FaceLandmarker
    from ..paths import data_file

    bgr = cv2.imread(str(data_file("synthetic", "face.png")))
    if bgr is None:
        raise RuntimeError("the bundled portrait (synthetic/face.png) cannot be read")
    img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    lm = FaceLandmarker(video=False)
    try:
        res = lm.detect(img)
    finally:
        lm.close()
    if res is None:
        raise RuntimeError("the face model found no face in the bundled portrait")
    return f"{len(res.points)} landmarks"


def _llm(tmp: str) -> str:
    from ..llm import ChatMessage, GenerationSettings
    from ..llm.llama import LlamaCppBackend

    b = LlamaCppBackend(n_ctx=512)
    try:
        r = b.generate([ChatMessage("user", "Say hello in one word.")], GenerationSettings(max_tokens=8, seed=1))
    finally:
        b.close()
    if r.finish_reason not in ("stop", "length") or not r.text.strip():
        raise RuntimeError(f"the LLM gave no answer ({r.error or r.finish_reason}: {r.error_detail or ''})")
    return f"{r.model}: {r.text.strip()[:30]!r}"


def _session(tmp: str) -> str:
    from ..session import SessionReader
    from ..synthetic.session import make_study_session

    path = os.path.join(tmp, "self-test.h5")
    make_study_session(path, "P-SELFTEST", turns=2, turn_s=15.0)
    with SessionReader(path) as r:
        if r.state != "complete" or len(r["turns"]) != 2 or not len(r["gaze"]):
            raise RuntimeError(f"the session read back is not the one written ({r.state}, "
                               f"{len(r['turns'])} turns)")
        return f"{len(r['gaze'])} gaze rows, {len(r['mouse'])} mouse rows, {os.path.getsize(path) // 1024} KB"


def _replay(tmp: str) -> str:
    from ..analysis.replay import ReplayData
    from .replay.export import export_png

    data = ReplayData(os.path.join(tmp, "self-test.h5"))
    out = os.path.join(tmp, "replay.png")
    export_png(data, out, data.t_start + 8.0, size=(640, 360))
    if not os.path.getsize(out):
        raise RuntimeError("the replay wrote an empty PNG")
    return f"PNG {os.path.getsize(out) // 1024} KB"


def _export(tmp: str) -> str:
    from ..session import SessionReader
    from ..session.export import export_csv

    with SessionReader(os.path.join(tmp, "self-test.h5")) as r:
        paths = export_csv(r, os.path.join(tmp, "csv"))
    return f"{len(paths)} files"


def _workbench(tmp: str) -> str:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from .workbench.window import Workbench

    app = QApplication.instance()
    settings = QSettings(os.path.join(tmp, "settings.ini"), QSettings.Format.IniFormat)
    win = Workbench(tmp, settings=settings, cache_dir=os.path.join(tmp, "cache"))
    try:
        win.resize(1280, 800)
        win.show()
        end = time.monotonic() + 20
        while time.monotonic() < end:
            app.processEvents()
            if win.sessions.model.rowCount() >= 1:
                break
            time.sleep(0.02)
        rows = win.sessions.model.rowCount()
        icon = not win.windowIcon().isNull()
    finally:
        win.close()
        app.processEvents()
    if rows < 1:
        raise RuntimeError("the workbench did not list the session file")
    if not icon:
        raise RuntimeError("the window has no icon (data/icons/ifllm-lab.png missing)")
    return f"{rows} session listed"


CHECKS: list[tuple[str, Callable[[str], str]]] = [
    ("face model", _face), ("LLM", _llm), ("session file", _session), ("replay", _replay),
    ("export", _export), ("workbench", _workbench),
]


def run_self_test(out=sys.stdout) -> int:
    """Run every check, print the report; 0 when all passed, 1 otherwise."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from .style import application

    _app = application()  # noqa: F841  (kept alive for the checks)
    tmp = tempfile.mkdtemp(prefix="ifllm-self-test-")
    failed = None
    t_all = time.perf_counter()
    try:
        for name, check in CHECKS:
            t0 = time.perf_counter()
            try:
                what = check(tmp)
                ok = True
            except Exception as exc:  # a check's failure is the report, not a crash
                what, ok = f"{type(exc).__name__}: {exc}", False
            print(f"{'ok  ' if ok else 'FAIL'}  {name:<13} {time.perf_counter() - t0:6.2f} s  {what}", file=out,
                  flush=True)
            if not ok and failed is None:
                failed = name
                if name in ("session file",):  # the checks after it read that file
                    break
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - t_all
    if failed:
        print(f"self-test failed at: {failed} ({total:.1f} s)", file=out)
        return 1
    print(f"self-test passed ({total:.1f} s)", file=out)
    return 0
