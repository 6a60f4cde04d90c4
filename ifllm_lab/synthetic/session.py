"""A synthetic recorded session for replay benchmarks and tests: gaze that reads two answers
line by line, a wandering mouse, one pairwise turn every few minutes with its layout and
scroll rows, written with the real :class:`~ifllm_lab.session.SessionWriter`."""
from __future__ import annotations

import os
import time

import numpy as np

from ..session import SessionMeta, SessionWriter
from ..session.schema import CalibrationPhase, MouseKind

_WORDS = ("the model answers with a short list of steps that the reader can follow while the "
          "gaze moves along each line from left to right and back to the start of the next one "
          "so that fixations land on words and regressions appear now and then").split()


def _layout_rows(t: float, snap: int, turn: int, panels: dict, texts: dict, line_h: float, word_px: float,
                 ) -> tuple[dict, dict[int, list]]:
    """Layout rows (response, paragraph, line and word boxes) of answers laid out word by
    word in their panels, and each answer's word centres."""
    cols = {c: [] for c in ("t", "snapshot", "turn", "response", "level", "index", "x0", "y0", "x1", "y1",
                            "scroll_y", "char_start", "char_end", "text")}
    centres: dict[int, list] = {}
    for resp, (px0, py0, px1, py1) in panels.items():
        text = texts[resp]
        words = text.split(" ")
        x, y, line, char = px0 + 20, py0 + 20, 0, 0
        centres[resp] = []

        def add(level, index, x0, y0, x1, y1, c0, c1, txt=""):
            for name, v in (("t", t), ("snapshot", snap), ("turn", turn), ("response", resp), ("level", level),
                            ("index", index), ("x0", x0), ("y0", y0), ("x1", x1), ("y1", y1), ("scroll_y", 0.0),
                            ("char_start", c0), ("char_end", c1), ("text", txt)):
                cols[name].append(v)

        add(0, 0, px0, py0, px1, py1, 0, len(text))
        add(1, 0, px0 + 20, py0 + 20, px1 - 20, py1 - 20, 0, len(text))
        line_start = 0
        for i, word in enumerate(words):
            wpx = word_px * len(word)
            if x + wpx > px1 - 20:
                add(2, line, px0 + 20, y, x, y + line_h, line_start, char - 1)
                line += 1
                x, y, line_start = px0 + 20, y + line_h, char
            add(3, i, x, y, x + wpx, y + line_h, char, char + len(word), word)
            centres[resp].append((x + wpx / 2, y + line_h / 2))
            x += wpx + word_px
            char += len(word) + 1
        add(2, line, px0 + 20, y, x, y + line_h, line_start, len(text))
    return cols, centres


def make_replay_session(path: str, seconds: float = 3600.0, gaze_hz: float = 60.0, mouse_hz: float = 1000.0,
                        turn_s: float = 300.0, seed: int = 0) -> dict:
    """Write a synthetic recorded session for replay benchmarks: ``gaze_hz`` gaze that reads
    two answers line by line (fixations of 150-350 ms with saccades, a blink now and
    then), ``mouse_hz`` cursor moves, one pairwise turn every ``turn_s`` with its layout
    (response, paragraph, line and word boxes) and scroll rows."""
    rng = np.random.default_rng(seed)
    W, H = 1920, 1080
    meta = SessionMeta(participant="P-SYNTHETIC", study="bench-replay", session_id="synthetic",
                       screen_width_px=W, screen_height_px=H, screen_width_mm=527.0, screen_height_mm=297.0,
                       viewing_distance_mm=600.0, extra={"synthetic": True})
    t0 = time.perf_counter()
    n_turns = max(1, int(seconds // turn_s))
    panels = {1: (80.0, 200.0, 930.0, 1000.0), 2: (990.0, 200.0, 1840.0, 1000.0)}
    line_h, word_px = 36.0, 11.0
    with SessionWriter(path, meta, flush_interval=1.0) as w:
        # layout + turns
        snap = 0
        word_centres = {}
        for k in range(n_turns):
            tt = k * turn_s
            texts = {resp: " ".join(_WORDS[(k * 7 + resp * 13 + i) % len(_WORDS)] for i in range(160))
                     for resp in panels}
            cols, by_resp = _layout_rows(tt + 2.0, snap, k, panels, texts, line_h, word_px)
            centres = by_resp[1] + by_resp[2]
            word_centres[k] = np.array(centres)
            w.put_rows("layout", {c: (np.array(v, dtype=object) if c == "text" else np.array(v))
                                  for c, v in cols.items()})
            snap += 1
            w.put("turns", (tt, k, 1, f"question {k + 1}", texts[1], texts[2], "model-a", "model-b",
                            int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(0, 3)), -1,
                            int(rng.integers(0, 2)), tt + 1.0, tt + 20.0, tt + turn_s - 10.0, tt + turn_s,
                            "{}"))
            w.put("phases", (tt, "turn", f'{{"turn": {k}}}'))
            w.put_rows("scroll", {"t": np.array([tt + 2.0, tt + 120.0]), "turn": np.array([k, k]),
                                  "view": np.array([1, 1]), "x": np.zeros(2), "y": np.array([0.0, 0.0]),
                                  "max_y": np.array([400.0, 400.0])})
        # gaze: fixations on successive words, 150-350 ms each
        n_g = int(seconds * gaze_hz)
        tg = np.arange(n_g) / gaze_hz
        gx = np.empty(n_g, np.float32)
        gy = np.empty(n_g, np.float32)
        i = 0
        while i < n_g:
            k = min(int(tg[i] // turn_s), n_turns - 1)
            cs = word_centres[k]
            j = int((tg[i] % turn_s) * 3.5) % len(cs)
            if rng.random() < 0.1:
                j = max(0, j - int(rng.integers(1, 6)))  # a regression
            d = int(gaze_hz * rng.uniform(0.15, 0.35))
            gx[i:i + d] = cs[j, 0] + rng.normal(0, 8, min(d, n_g - i))
            gy[i:i + d] = cs[j, 1] + rng.normal(0, 8, min(d, n_g - i))
            i += d
        valid = np.ones(n_g, np.uint8)
        blinks = rng.integers(0, n_g - 20, int(seconds / 4))
        for b in blinks:
            valid[b:b + int(0.15 * gaze_hz)] = 0
        gx[valid == 0] = np.nan
        gy[valid == 0] = np.nan
        step = 100_000
        for a in range(0, n_g, step):
            s = slice(a, a + step)
            m = len(tg[s])
            w.put_rows("gaze", {"t": tg[s], "x": gx[s], "y": gy[s], "valid": valid[s],
                                "confidence": np.ones(m, np.float32), "frame": np.arange(a, a + m)})
        # mouse: a smooth wandering cursor
        n_m = int(seconds * mouse_hz)
        for a in range(0, n_m, 500_000):
            m = min(500_000, n_m - a)
            tm = (a + np.arange(m)) / mouse_hz
            mx = W / 2 + 600 * np.sin(tm * 0.31) * np.cos(tm * 0.07)
            my = H / 2 + 350 * np.sin(tm * 0.23 + 1.0)
            kind = np.zeros(m, np.uint8)
            kind[::5000] = int(MouseKind.PRESS)
            w.put_rows("mouse", {"t": tm, "kind": kind, "x": mx.astype(np.float32), "y": my.astype(np.float32)})
    return {"file": path, "seconds": seconds, "gaze_rows": n_g, "mouse_rows": n_m, "turns": n_turns,
            "write_s": round(time.perf_counter() - t0, 2), "mb": round(os.path.getsize(path) / 1e6, 1)}


def make_study_session(path: str, participant: str, *, turns: int = 8, signal: float = 0.8, turn_s: float = 40.0,
                       gaze_hz: float = 30.0, mouse_hz: float = 60.0, seed: int = 0) -> list[int]:
    """Write a synthetic recorded pairwise session of ``participant`` whose eyes and hand
    give the choice away as much as ``signal`` says (0: not at all, 1: fully): the gaze
    reads both answers, and the preferred one gets ``0.5 + 0.2 * signal`` of the reading
    time on average (give or take 0.12, so that no signal is perfect) and, with probability
    ``0.5 + 0.5 * signal``, the cursor's last rest; the answers' lengths and models do not depend on the
    choice. Returns each turn's preference (1 or 2)."""
    rng = np.random.default_rng(seed)
    W, H = 1920, 1080
    meta = SessionMeta(participant=participant, study="synthetic-study", session_id=os.path.basename(path)[:-3],
                       screen_width_px=W, screen_height_px=H, screen_width_mm=527.0, screen_height_mm=297.0,
                       viewing_distance_mm=600.0, extra={"synthetic": True})
    panels = {1: (80.0, 200.0, 930.0, 1000.0), 2: (990.0, 200.0, 1840.0, 1000.0)}
    prefs = []
    with SessionWriter(path, meta, flush_interval=1.0) as w:
        for i, (px, py) in enumerate(((480.0, 270.0), (1440.0, 270.0), (960.0, 540.0), (480.0, 810.0),
                                      (1440.0, 810.0))):  # one validation run, ~0.8 degrees
            w.put("calibration/points", (0.0, int(CalibrationPhase.VALIDATION), 0, i, px, py, px + 30.0, py,
                                         30.0, 12.0, 0.8, 0.3, 30))
        for k in range(turns):
            tt = k * turn_s
            texts = {r: " ".join(_WORDS[int(i)] for i in rng.integers(0, len(_WORDS), int(rng.integers(40, 140))))
                     for r in panels}
            cols, centres = _layout_rows(tt + 2.0, k, k, panels, texts, 36.0, 11.0)
            w.put_rows("layout", {c: (np.array(v, dtype=object) if c == "text" else np.array(v))
                                  for c, v in cols.items()})
            pref = int(rng.integers(1, 3))
            prefs.append(pref)
            models = ("model-a", "model-b") if rng.random() < 0.5 else ("model-b", "model-a")
            t_done, t_rated = tt + 3.0, tt + turn_s - 4.0
            w.put("turns", (tt, k, 1, f"question {k + 1}", texts[1], texts[2], models[0], models[1],
                            4 if pref == 1 else 2, 4 if pref == 2 else 2, pref, -1, 0, tt + 1.0, t_done, t_rated,
                            tt + turn_s, "{}"))
            w.put("phases", (tt, "turn", f'{{"turn": {k}}}'))
            # gaze: reads answer 1 then 2 then goes back and forth; the preferred one gets more time
            share = float(np.clip(0.5 + 0.2 * signal * (1 if pref == 1 else -1) + rng.normal(0, 0.12), 0.1, 0.9))
            tg = np.arange(t_done, t_rated, 1 / gaze_hz)
            on1 = ((tg - t_done) / (t_rated - t_done) * 4 % 1.0) < share
            gx, gy = np.empty(len(tg)), np.empty(len(tg))
            for resp, sel in ((1, on1), (2, ~on1)):
                c = np.array(centres[resp])
                j = (np.cumsum(sel) // 6) % len(c)
                gx[sel], gy[sel] = c[j[sel], 0], c[j[sel], 1]
            gx += rng.normal(0, 10, len(tg))
            gy += rng.normal(0, 10, len(tg))
            w.put_rows("gaze", {"t": tg, "x": gx.astype(np.float32), "y": gy.astype(np.float32),
                                "valid": np.ones(len(tg), np.uint8), "confidence": np.ones(len(tg), np.float32),
                                "frame": np.arange(len(tg))})
            # mouse: wanders, then rests on the preferred answer (or, without signal, on either)
            tm = np.arange(tt + 1.0, t_rated + 2.0, 1 / mouse_hz)
            rest = pref if rng.random() < 0.5 + 0.5 * signal else 3 - pref
            x0, y0, x1, y1 = panels[rest]
            goal = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
            start = np.array([W / 2, 100.0])
            f = np.clip((tm - tm[0]) / (t_rated - tm[0]), 0, 1)[:, None]
            xy = start + (goal - start) * f + rng.normal(0, 3, (len(tm), 2))
            kind = np.zeros(len(tm), np.uint8)
            kind[-int(mouse_hz):: int(mouse_hz) // 2] = int(MouseKind.PRESS)
            w.put_rows("mouse", {"t": tm, "kind": kind, "x": xy[:, 0].astype(np.float32),
                                 "y": xy[:, 1].astype(np.float32)})
    return prefs
