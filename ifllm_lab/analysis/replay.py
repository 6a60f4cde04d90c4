"""What a replay needs of a session, loaded so that opening is quick and seeking is cheap.

:class:`ReplayData` opens a session file and loads at once only what is small or needed
for every frame: the gaze stream (t, x, y, valid), the turns, phases, scroll rows, the
calibration results and the log. The mouse stream (up to 1 kHz: 3.6 million rows an
hour) keeps only its time column in memory; positions are read for the time window a
frame shows (a few thousand rows, from HDF5 chunks that stay in h5py's chunk cache while
playing). Fixations and the text layout are computed on first use (:meth:`fixations`,
:meth:`layout`), so a window can show the file at once and add them when they are ready.

No Qt here: the replay window (``ifllm_lab.ui.replay``), the headless exporter and the
benchmark all use this.
"""
from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from ..session.reader import SessionFileError, SessionReader
from ..session.schema import CalibrationPhase, LogLevel

__all__ = ["ReplayData", "TurnInfo", "Quality", "SessionFileError"]


@dataclass
class TurnInfo:
    """One turn as the side panel shows it."""

    turn: int
    t: float
    t_end: float
    mode: str
    prompt: str
    responses: dict[int, str]
    models: dict[int, str]
    likert: dict[int, int]
    preference: int
    swapped: int
    settings: dict = field(default_factory=dict)

    def preference_text(self) -> str:
        if self.mode != "pairwise":
            return ""
        return {1: "response 1", 2: "response 2", 0: "tie", -1: "none"}.get(self.preference, str(self.preference))


@dataclass
class Quality:
    """Data quality figures for the side panel."""

    validation_deg: float = math.nan  # mean accuracy of the last validation, degrees
    validation_precision_deg: float = math.nan
    gaze_hz: float = math.nan
    valid_fraction: float = math.nan
    gaps: int = 0  # gaze gaps longer than 1 s
    dropped_frames: int = 0
    warnings: int = 0
    errors: int = 0
    problems: list[str] = field(default_factory=list)


class ReplayData:
    """A session opened for replay (see the module docstring).

    Raises :class:`~ifllm_lab.session.reader.SessionFileError` when the file cannot be
    read as a session at all; a file that can be read in part opens, with what is wrong
    in :attr:`problems`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.reader = SessionReader(self.path)
        r = self.reader
        self.meta = r.meta
        self.problems: list[str] = list(r.problems)
        self.imported = self.meta.source == "ifllm-release"
        self._lock = threading.Lock()
        self._layout = None
        self._fixations = None
        # gaze: small (60 Hz: 216k rows an hour), loaded whole
        g = r["gaze"] if "gaze" in r else None
        if g is not None and len(g):
            self.gaze_t = np.asarray(g.t, dtype=np.float64)
            self.gaze_x = g.column("x").astype(np.float64)
            self.gaze_y = g.column("y").astype(np.float64)
            valid = g.column("valid")
            self.gaze_valid = (valid > 0) & np.isfinite(self.gaze_x) & np.isfinite(self.gaze_y)
        else:
            self.gaze_t = self.gaze_x = self.gaze_y = np.zeros(0)
            self.gaze_valid = np.zeros(0, bool)
            self.problems.append("no gaze samples")
        # mouse: only the clock in memory
        self._mouse = r["mouse"] if "mouse" in r and len(r["mouse"]) else None
        self.mouse_t = np.asarray(self._mouse.t, dtype=np.float64) if self._mouse is not None else np.zeros(0)
        self._mouse_cache: tuple[int, int, dict] | None = None
        self._mouse_rows: dict[str, np.ndarray] | None = None  # every row's x, y, kind once read
        self._speed: dict[float, tuple[np.ndarray, np.ndarray]] = {}  # bin -> (centres, px/s)
        self.turns = self._load_turns()
        self.phases = self._load_phases()
        sc = r["scroll"] if "scroll" in r else None
        self.scroll = sc.read() if sc is not None and len(sc) else None
        t_all = [a[[0, -1]] for a in (self.gaze_t, self.mouse_t) if len(a)]
        if self.turns:
            t_all.append(np.array([self.turns[0].t, max(tt.t_end for tt in self.turns if math.isfinite(tt.t_end))
                                   if any(math.isfinite(tt.t_end) for tt in self.turns) else self.turns[-1].t]))
        if t_all:
            both = np.concatenate(t_all)
            both = both[np.isfinite(both)]
            self.t_start, self.t_end = float(both.min()), float(both.max())
        else:
            self.t_start = self.t_end = 0.0
        w, h = int(self.meta.screen_width_px or 0), int(self.meta.screen_height_px or 0)
        if w <= 0 or h <= 0:  # imported sessions: page px; take the extent of what was recorded
            xs = self.gaze_x[np.isfinite(self.gaze_x)]
            ys = self.gaze_y[np.isfinite(self.gaze_y)]
            w = int(max(1280, np.percentile(xs, 99.5) + 40)) if len(xs) else 1280
            h = int(max(720, np.percentile(ys, 99.5) + 40)) if len(ys) else 720
        self.screen_px = (w, h)

    # -- basics -------------------------------------------------------------------------
    @property
    def duration(self) -> float:
        return max(0.0, self.t_end - self.t_start)

    def close(self) -> None:
        self.reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _load_turns(self) -> list[TurnInfo]:
        r = self.reader
        if "turns" not in r or not len(r["turns"]):
            return []
        rows = r["turns"].read()
        out = []
        for i, row in enumerate(rows):
            try:
                settings = json.loads(row["settings"]) if row["settings"] else {}
            except (ValueError, TypeError):
                settings = {}
            t_end = float(row["t_end"])
            if not math.isfinite(t_end):
                t_end = float(rows["t"][i + 1]) if i + 1 < len(rows) else float("nan")
            pairwise = int(row["mode"]) == 1
            out.append(TurnInfo(
                turn=int(row["turn"]), t=float(row["t"]), t_end=t_end, mode="pairwise" if pairwise else "pointwise",
                prompt=str(row["prompt"]),
                responses={1: str(row["response_1"]), 2: str(row["response_2"])} if pairwise
                else {0: str(row["response_1"])},
                models={1: str(row["model_1"]), 2: str(row["model_2"])} if pairwise else {0: str(row["model_1"])},
                likert={1: int(row["likert_1"]), 2: int(row["likert_2"])} if pairwise else {0: int(row["likert_1"])},
                preference=int(row["preference"]), swapped=int(row["swapped"]), settings=settings))
        return out

    def _load_phases(self) -> list[tuple[float, str, dict]]:
        r = self.reader
        if "phases" not in r or not len(r["phases"]):
            return []
        ph = r["phases"]
        out = []
        for t, n, d in zip(ph.t, ph.column("name"), ph.column("detail")):
            try:
                detail = json.loads(d) if d else {}
            except ValueError:
                detail = {}
            out.append((float(t), str(n), detail))
        return out

    def turn_at(self, t: float) -> TurnInfo | None:
        """The turn under way at ``t`` (from its question to the next one), else None."""
        cur = None
        for tt in self.turns:
            if tt.t <= t:
                cur = tt
            else:
                break
        if cur is None:
            return None
        if math.isfinite(cur.t_end) and t > cur.t_end + 1e-9:
            nxt = [x for x in self.turns if x.t > cur.t]
            if not nxt or t < nxt[0].t:
                return cur if t <= cur.t_end + 5.0 else None
        return cur

    # -- windows of samples -----------------------------------------------------------
    def gaze_window(self, t0: float, t1: float) -> dict[str, np.ndarray]:
        i0, i1 = np.searchsorted(self.gaze_t, [t0, t1])
        return {"t": self.gaze_t[i0:i1], "x": self.gaze_x[i0:i1], "y": self.gaze_y[i0:i1],
                "valid": self.gaze_valid[i0:i1]}

    def mouse_window(self, t0: float, t1: float) -> dict[str, np.ndarray]:
        """Mouse rows with ``t0 <= t < t1``: t, x, y, kind (read from the file; the
        last block read is kept, so frames that move forward in small steps cost little)."""
        if self._mouse is None:
            z = np.zeros(0)
            return {"t": z, "x": z, "y": z, "kind": z.astype(np.uint8)}
        i0, i1 = (int(v) for v in np.searchsorted(self.mouse_t, [t0, t1]))
        kept = self._mouse_rows
        if kept is not None:  # every row, kept by mouse_speed()
            return {"t": self.mouse_t[i0:i1], "x": kept["x"][i0:i1], "y": kept["y"][i0:i1],
                    "kind": kept["kind"][i0:i1]}
        c = self._mouse_cache
        if c is None or i0 < c[0] or i1 > c[1]:
            # read a block with some margin on both sides
            span = max(i1 - i0, 1)
            b0, b1 = max(0, i0 - span), min(len(self.mouse_t), i1 + 2 * span + 256)
            with self._lock:
                cols = {n: self._mouse.column(n, b0, b1) for n in ("x", "y", "kind")}
            self._mouse_cache = c = (b0, b1, cols)
        b0, _, cols = c
        s = slice(i0 - b0, i1 - b0)
        out = {n: v[s] for n, v in cols.items()}
        out["t"] = self.mouse_t[i0:i1]
        return out

    def mouse_speed(self, bin_s: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """(bin centres, px/s) of the cursor over the whole session, for the timeline
        (reads x and y of every row once; cached)."""
        if bin_s in self._speed:
            return self._speed[bin_s]
        if self._mouse is None or len(self.mouse_t) < 2:
            return self._speed.setdefault(bin_s, (np.zeros(0), np.zeros(0)))
        # read in blocks: another thread (the window drawing mouse trails) gets the file
        # between blocks instead of waiting for one 3.6-million-row read. The rows are
        # kept (9 bytes each, 32 MB for an hour at 1 kHz): a seek then draws its trail
        # without reading the file
        n, block = len(self.mouse_t), 262_144
        cols = {}
        for a in range(0, n, block):
            b = min(n, a + block)
            with self._lock:
                part = {c: self._mouse.column(c, a, b) for c in ("x", "y", "kind")}
            if not cols:
                cols = {c: np.empty(n, v.dtype) for c, v in part.items()}
            for c, v in part.items():
                cols[c][a:b] = v
        self._mouse_rows = cols
        x, y = cols["x"].astype(np.float64), cols["y"].astype(np.float64)
        t = self.mouse_t
        d = np.hypot(np.diff(x), np.diff(y))
        d[~np.isfinite(d)] = 0.0
        edges = np.arange(self.t_start, self.t_end + bin_s, bin_s)
        if len(edges) < 2:
            edges = np.array([self.t_start, self.t_start + bin_s])
        dist, _ = np.histogram(t[1:], bins=edges, weights=d)
        return self._speed.setdefault(bin_s, ((edges[:-1] + edges[1:]) / 2, dist / bin_s))

    def scroll_series(self) -> tuple[np.ndarray, np.ndarray]:
        if self.scroll is None:
            return np.zeros(0), np.zeros(0)
        return self.scroll["t"].astype(np.float64), self.scroll["y"].astype(np.float64)

    # -- lazily computed -----------------------------------------------------------------
    def layout(self, wait: bool = True):
        """The text layout over time (:class:`ifllm_lab.analysis.aoi.LayoutTimeline`), or
        None when the session has none (a problem is added once). An imported session's
        layout is rebuilt by the reconstruction its importer registered
        (:mod:`ifllm_lab.analysis.sources`). That takes a second or more: with
        ``wait=False`` this returns None until another thread's call has built it (the
        window draws without text meanwhile)."""
        if not wait and self._layout is None:
            return None
        with self._lock:
            if self._layout is None:
                try:
                    from .aoi import LayoutTimeline

                    self._layout = LayoutTimeline.for_session(self.reader)
                except Exception as exc:  # a partial file: replay without text
                    self._layout = False
                    self.problems.append(f"the text layout cannot be rebuilt: {exc}")
            return self._layout or None

    def fixations(self, method: str = "idt", **params):
        """Fixations and saccades (:class:`ifllm_lab.analysis.events.Events`), detected on
        first use with the session's geometry (cached per method and parameters)."""
        key = (method, tuple(sorted(params.items())))
        with self._lock:
            if self._fixations is not None and self._fixations[0] == key:
                return self._fixations[1]
        from .events import detect

        ev = detect(self.reader, method=method, **params)
        with self._lock:
            self._fixations = (key, ev)
        return ev

    # -- quality ---------------------------------------------------------------------------
    def quality(self) -> Quality:
        q = Quality(problems=list(self.problems))
        r = self.reader
        if "calibration/points" in r and len(r["calibration/points"]):
            pts = r["calibration/points"].read(columns=["t", "phase", "run", "accuracy_deg", "precision_deg"])
            val = pts[pts["phase"] == int(CalibrationPhase.VALIDATION)]
            if len(val):
                last = val[val["run"] == val["run"].max()]
                q.validation_deg = float(np.nanmean(last["accuracy_deg"]))
                q.validation_precision_deg = float(np.nanmean(last["precision_deg"]))
        if self.imported:
            acc = (self.meta.extra or {}).get("task", {}).get("accuracy") if isinstance(self.meta.extra, dict) else None
            if acc is not None:
                q.problems.append(f"WebGazer calibration precision of the task: {acc} %")
        if len(self.gaze_t) > 1:
            span = self.gaze_t[-1] - self.gaze_t[0]
            q.gaze_hz = (len(self.gaze_t) - 1) / span if span > 0 else math.nan
            q.valid_fraction = float(self.gaze_valid.mean())
            q.gaps = int(np.sum(np.diff(self.gaze_t) > 1.0))
        if "log" in r and len(r["log"]):
            levels = r["log"].column("level")
            q.warnings = int(np.sum((levels >= int(LogLevel.WARNING)) & (levels < int(LogLevel.ERROR))))
            q.errors = int(np.sum(levels >= int(LogLevel.ERROR)))
            msgs = r["log"].column("message")
            for m in msgs:
                if "frames dropped" in m:
                    try:
                        q.dropped_frames += int(m.split("gaze: ")[-1].split(" frames")[0])
                    except ValueError:
                        pass
        return q
