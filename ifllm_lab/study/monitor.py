"""The live monitor's figures, without Qt: what the researcher sees while a session runs.

A :class:`MonitorFeed` is attached to a session's :class:`~ifllm_lab.session.writer.SessionWriter`
as a tap (:meth:`~ifllm_lab.session.writer.SessionWriter.add_tap`): it sees every row the
session writes, in the producer's thread, and only appends it to a queue of its own. The
monitor window calls :meth:`MonitorFeed.update` a few times a second (its GUI thread); that
drains the queue and returns a :class:`MonitorState`, a copy of every figure:

* gaze: rows and valid rows in all, and over the last ``window_s`` seconds the rate (Hz,
  camera rows, i.e. ``frame >= 0``), the valid share and the dropped camera frames (gaps in
  the ``frame`` numbers); per-second bins of the last ``history_s`` seconds for sparklines;
* the last gaze validation (mean accuracy and precision in degrees over the points of the
  newest validation run, as ``calibration/points`` holds them; pass or fail from the
  ``calibration_done`` phase) and the last drift check (``drift_done``: offset, action);
* the flow: the current turn (``turn`` phases), turns finished (``turns`` rows), the last
  phase and the app's stage, whether the session is paused or ended;
* the LLM: tokens/s while an answer streams (:meth:`MonitorFeed.token`) and of each
  finished answer (the token times of the ``turns`` row's settings);
* the participant's screen: the newest layout snapshot's answer and line boxes, the
  cursor, the gaze trail and the fixations of the last ``fixation_s`` seconds (I-DT);
* the session file's size and the free disk space (read at most once a second);
* the camera: a small copy of the newest frame (at most ``camera_hz`` a second) with its
  face landmarks (:meth:`MonitorFeed.camera`, called in the tracker thread);
* with a reward model (:class:`TurnPredictor`), after each rated turn the predicted
  preference beside the participant's choice.

Times are seconds on the session clock; positions are px of the participant's screen.
Nothing here blocks a producer: a tap is one ``deque.append``.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
import math
import os
import queue
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..gaze.geometry import ScreenGeometry
from ..session.schema import CalibrationPhase, LayoutLevel, SessionMeta

log = logging.getLogger(__name__)

__all__ = ["MonitorFeed", "MonitorState", "CameraShot", "Prediction", "TurnPredictor", "MONITOR_STREAMS",
           "model_folder"]

#: the streams the monitor taps
MONITOR_STREAMS = ("gaze", "mouse", "layout", "phases", "turns", "calibration/points", "log")
#: what a prediction also needs (kept only for the turn under way)
_TURN_STREAMS = ("gaze", "mouse", "scroll", "layout", "phases")

LEAD_S = 3.0  # a prediction's rows start this long before its turn's question
LATE_S = 0.5  # ... and end this long after the participant left the turn


@dataclass
class CameraShot:
    """A small copy of one camera frame: ``image`` (h, w, 3) RGB uint8 as the camera saw it
    (not mirrored), ``points`` the face landmarks in the copy's px (n, 2), None without a
    face; ``scale`` copy px per camera px."""

    t: float
    frame: int
    image: np.ndarray
    points: np.ndarray | None
    scale: float


@dataclass
class Prediction:
    """The reward model's reading of one finished turn. Pairwise: ``p`` = P(answer 1
    preferred), ``predicted`` 1 or 2, ``actual`` the participant's preference (1, 2, 0 tie,
    -1 none); ``shown_left`` which answer was on the left. Pointwise: ``p`` = P(rated good),
    ``predicted`` 1 good / 0 not, ``actual`` the Likert rating. ``error``: why there is none."""

    turn: int
    mode: str
    p: float = math.nan
    predicted: int = -1
    actual: int = -1
    shown_left: int = 1
    moved_by: list = field(default_factory=list)
    error: str = ""
    seconds: float = math.nan

    @property
    def agrees(self) -> bool | None:
        if self.error or not math.isfinite(self.p):
            return None
        if self.mode == "pairwise":
            return None if self.actual not in (1, 2) else self.predicted == self.actual
        return None if self.actual < 1 else self.predicted == int(self.actual >= 4)


@dataclass
class MonitorState:
    """Every figure of the monitor at one moment (see the module docstring); a copy."""

    t: float = math.nan  # session time the figures are for
    attached: bool = False
    path: str = ""
    participant: str = ""
    study: str = ""
    screen_px: tuple[int, int] = (0, 0)
    # gaze
    window_s: float = 5.0
    gaze_rows: int = 0  # every gaze row so far
    gaze_valid: int = 0
    camera_rows: int = 0  # rows with a camera frame (frame >= 0)
    dropped_total: int = 0  # camera frames missing between rows
    gaze_rate_hz: float = math.nan  # over the last window_s
    valid_share: float = math.nan
    dropped: int = 0
    history_t: np.ndarray = field(default_factory=lambda: np.zeros(0))  # bin ends (s)
    history_rate: np.ndarray = field(default_factory=lambda: np.zeros(0))  # Hz
    history_valid: np.ndarray = field(default_factory=lambda: np.zeros(0))  # share 0..1
    history_dropped: np.ndarray = field(default_factory=lambda: np.zeros(0))  # frames
    # calibration
    validation_deg: float = math.nan
    validation_precision_deg: float = math.nan
    validation_run: int = -1
    validation_passed: bool | None = None
    validations: int = 0
    drift_deg: float = math.nan
    drift_action: str = ""
    # flow
    turn: int = -1  # the turn under way or last begun (0-based), -1 none yet
    mode: str = ""
    turns_done: int = 0  # turns rows written
    questions: int = 0
    phase: str = ""
    stage: str = ""
    paused: bool = False
    recalibration_requested: bool = False
    ended: bool = False
    end_reason: str = ""
    counts: dict = field(default_factory=dict)  # rows seen per stream
    # LLM
    answering: bool = False
    live_tokens: int = 0
    live_tokens_per_s: float = math.nan
    last_tokens_per_s: float = math.nan  # the last finished answers' mean
    last_first_token_s: float = math.nan
    # screen
    gaze_point: tuple[float, float] | None = None
    trail: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    fixations: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # x, y, duration s
    cursor: tuple[float, float] | None = None
    answer_boxes: list = field(default_factory=list)  # (response, x0, y0, x1, y1)
    line_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    prompt_box: tuple | None = None
    swapped: bool = False
    # file
    file_bytes: int = -1
    free_bytes: int = -1
    # camera
    camera: CameraShot | None = None
    # messages and predictions
    warnings: list = field(default_factory=list)  # (t, text), newest last
    predictions: list = field(default_factory=list)  # Prediction, in turn order
    model_name: str = ""
    model_error: str = ""


def model_folder(setting: str, study_source: str = "") -> str:
    """The reward model folder a study's ``monitor_model`` names: ``~`` expanded, a
    relative path taken from the study file's folder (the working folder without one)."""
    if not setting:
        return ""
    p = os.path.expanduser(setting)
    if not os.path.isabs(p) and study_source and os.path.isfile(study_source):
        p = os.path.join(os.path.dirname(os.path.abspath(study_source)), p)
    return os.path.abspath(p)


def _json(text) -> dict:
    try:
        d = json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def _f(v, default=math.nan) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return default
    return v


def _columns(entry, names) -> dict[str, np.ndarray] | None:
    """Columns of a ``put_rows`` entry (a structured array or a mapping of columns)."""
    try:
        if isinstance(entry, np.ndarray):
            return {n: entry[n] for n in names if n in (entry.dtype.names or ())}
        return {n: np.asarray(entry[n]) for n in names if n in entry}
    except (KeyError, ValueError, TypeError):
        return None


class MonitorFeed:
    """Rolling figures of one session at a time, fed by writer taps (see the module docstring).

    Args:
        window_s: the "last seconds" of the gaze figures.
        history_s: how far back the per-second bins go.
        fixation_s: how far back the gaze trail and the fixations go.
        camera_hz: camera copies kept per second at most.
        camera_width: width of a camera copy, px at most.
        now: the session clock's ``now()`` (default: the attached writer's clock).
    """

    def __init__(self, *, window_s: float = 5.0, history_s: float = 30.0, fixation_s: float = 3.0,
                 camera_hz: float = 5.0, camera_width: int = 320, now=None):
        self.window_s = float(window_s)
        self.history_s = float(max(history_s, window_s))
        self.fixation_s = float(fixation_s)
        self.camera_interval = 1.0 / camera_hz if camera_hz > 0 else math.inf
        self.camera_width = int(camera_width)
        self._now = now
        self._inbox: collections.deque = collections.deque()
        self._tokens: collections.deque = collections.deque(maxlen=4096)  # (session t) of streamed pieces
        self._shot: CameraShot | None = None
        self._last_shot_t = -math.inf
        self.writer = None
        self.predictor: TurnPredictor | None = None
        self._reset(None, "")

    # -- attaching --------------------------------------------------------------------
    def _reset(self, meta: SessionMeta | None, path: str, questions: int = 0) -> None:
        self.state = MonitorState(window_s=self.window_s, path=path, questions=questions)
        self.meta = meta
        if meta is not None:
            self.state.participant, self.state.study = meta.participant, meta.study
            self.state.screen_px = (int(meta.screen_width_px), int(meta.screen_height_px))
        self.geometry = None
        try:
            if meta is not None:
                self.geometry = ScreenGeometry(meta.screen_width_px, meta.screen_height_px, meta.screen_width_mm,
                                               meta.screen_height_mm, meta.viewing_distance_mm)
        except ValueError:
            self.geometry = None
        n = int(self.history_s * 120) + 256
        self._gaze = collections.deque(maxlen=n)  # (t, x, y, valid, frame)
        self._last_frame = -1
        self._val_points: dict[int, list[tuple[float, float]]] = {}  # validation run -> (accuracy, precision)
        self._snapshot = -1
        self._turn_rows: dict[str, list] = {}  # prediction: the turn under way's rows
        self._cal_rows: list = []  # prediction: every calibration/points entry
        self._turns_rows: list = []  # prediction: every turns row
        self._first_gaze = None  # prediction: the session's first gaze row (anchors the fixation grid)
        self._lead: collections.deque = collections.deque()  # prediction: (t, stream, row) of the last seconds
        self._pending: list[dict] = []  # prediction: finished turns still taking their late rows
        self._io_t = -math.inf
        self._tokens.clear()

    def attach(self, writer, meta: SessionMeta | None = None, *, questions: int = 0) -> None:
        """Start following the session ``writer`` records (``meta``: its metadata, default
        the writer's own). Call it before the session writes its first rows to see them all."""
        self.detach()
        meta = meta if meta is not None else writer.store.meta
        self._inbox.clear()
        self._reset(meta, os.fspath(writer.path), questions)
        self.writer = writer
        self.state.attached = True
        streams = MONITOR_STREAMS + (("scroll",) if self.predictor is not None else ())
        writer.add_tap([s for s in streams if s in writer.store.specs], self.tap)
        if self.predictor is not None:
            self.predictor.begin(meta)

    def detach(self) -> None:
        """Stop following the writer (the figures stay as they were)."""
        if self.writer is not None:
            self.writer.remove_tap(self.tap)
            self.writer = None
        self.state.attached = False

    def close(self) -> None:
        self.detach()
        if self.predictor is not None:
            self.predictor.close()

    # -- producers' side (any thread; return at once) ---------------------------------
    def tap(self, stream: str, entry) -> None:
        """A writer tap: queue the row (see :meth:`SessionWriter.add_tap`)."""
        self._inbox.append((stream, entry))

    def token(self, t: float | None = None) -> None:
        """One piece of an answer was shown (session time ``t``, default now)."""
        self._tokens.append(self.now() if t is None else float(t))

    def camera(self, frame, sample=None) -> None:
        """A processed camera frame and its gaze sample (tracker thread): keeps a small copy
        at most ``camera_hz`` times a second."""
        t = float(frame.t)
        if t - self._last_shot_t < self.camera_interval and t >= self._last_shot_t:
            return
        self._last_shot_t = t
        img = np.asarray(frame.image)
        if img.ndim != 3 or img.shape[1] < 2:
            return
        step = max(1, int(math.ceil(img.shape[1] / self.camera_width)))
        small = np.ascontiguousarray(img[::step, ::step, :3])
        points = None
        face = getattr(sample, "face", None) if sample is not None else None
        if face is not None and getattr(face, "points", None) is not None:
            points = np.asarray(face.points, dtype=np.float32)[:, :2] / step
        self._shot = CameraShot(t, int(frame.index), small, points, 1.0 / step)

    # -- the monitor's side (its GUI thread) ------------------------------------------
    def now(self) -> float:
        if self._now is not None:
            return float(self._now())
        w = self.writer
        return float(w.clock.now()) if w is not None else math.nan

    def update(self, now: float | None = None) -> MonitorState:
        """Take in the rows queued since the last call and return the figures (a copy)."""
        st = self.state
        q = self._inbox
        for _ in range(len(q)):
            stream, entry = q.popleft()
            st.counts[stream] = st.counts.get(stream, 0) + _n_rows(entry)
            try:
                getattr(self, "_on_" + stream.replace("/", "_"), _ignore)(entry)
            except Exception:  # a row the monitor cannot read must not stop it
                log.exception("monitor: a %s row", stream)
            if self.predictor is not None:
                self._keep_for_prediction(stream, entry)
        t = self.now() if now is None else float(now)
        if not math.isfinite(t):
            t = self._gaze[-1][0] if self._gaze else math.nan
        if self._pending:
            self._submit_due(t, everything=st.ended)
        st.t = t
        self._gaze_figures(t)
        self._llm_figures(t)
        self._disk_figures()
        st.camera = self._shot
        if self.predictor is not None:
            st.predictions = self.predictor.results()
            st.model_name, st.model_error = self.predictor.name, self.predictor.error
        return dataclasses.replace(st, counts=dict(st.counts), answer_boxes=list(st.answer_boxes),
                                   warnings=list(st.warnings), predictions=list(st.predictions))

    # -- rows -------------------------------------------------------------------------
    def _on_gaze(self, entry) -> None:
        st = self.state
        if isinstance(entry, tuple):  # a GazeSample row: t, x, y, valid, confidence, frame, ...
            rows = [(entry[0], entry[1], entry[2], entry[3], entry[5] if len(entry) > 5 else -1)]
        else:
            rows = _tuples(entry, ("t", "x", "y", "valid", "frame"))
        for r in rows:
            t, x, y, valid, frame = float(r[0]), float(r[1]), float(r[2]), int(r[3]), int(r[4])
            st.gaze_rows += 1
            st.gaze_valid += valid == 1
            gap = 0
            if frame >= 0:
                st.camera_rows += 1
                if self._last_frame >= 0 and frame > self._last_frame + 1:
                    gap = frame - self._last_frame - 1
                    st.dropped_total += gap
                self._last_frame = frame
            self._gaze.append((t, x, y, valid == 1, frame, gap))

    def _on_mouse(self, entry) -> None:
        if isinstance(entry, tuple):
            x, y = float(entry[2]), float(entry[3])
        else:
            c = _columns(entry, ("x", "y"))
            if not c or not len(c.get("x", ())):
                return
            x, y = float(c["x"][-1]), float(c["y"][-1])
        if math.isfinite(x) and math.isfinite(y):
            self.state.cursor = (x, y)

    def _on_layout(self, entry) -> None:
        c = _columns(entry, ("snapshot", "turn", "response", "level", "x0", "y0", "x1", "y1"))
        if not c or not len(c.get("snapshot", ())):
            return
        snap = int(np.max(c["snapshot"]))
        if snap < self._snapshot:
            return
        last = c["snapshot"] == snap
        level, resp = c["level"][last].astype(int), c["response"][last].astype(int)
        box = np.column_stack([c[k][last].astype(np.float64) for k in ("x0", "y0", "x1", "y1")])
        st = self.state
        self._snapshot = snap
        sel = (level == int(LayoutLevel.RESPONSE)) & (resp >= 0)
        st.answer_boxes = [(int(r), *map(float, b)) for r, b in zip(resp[sel], box[sel])]
        st.line_boxes = box[(level == int(LayoutLevel.LINE))]
        pr = np.flatnonzero(resp < 0)
        st.prompt_box = tuple(map(float, box[pr].min(axis=0)[:2])) + tuple(map(float, box[pr].max(axis=0)[2:])) \
            if len(pr) else None

    def _on_phases(self, entry) -> None:
        rows = [entry] if isinstance(entry, tuple) else _tuples(entry, ("t", "name", "detail"))
        st = self.state
        for r in rows:
            name, d = str(r[1]), _json(r[2])
            st.phase = name
            if name == "stage":
                st.stage = str(d.get("stage", ""))
            elif name == "turn":
                st.turn = int(d.get("turn", st.turn + 1))
                st.mode = str(d.get("mode", ""))
                st.swapped = bool(d.get("swapped") or False)
                st.answering = True
                t0 = float(r[0])
                while self._tokens and self._tokens[0] < t0:  # the pieces of earlier answers
                    self._tokens.popleft()
            elif name == "answers":
                st.answering = False
            elif name == "calibration_done":
                rep = d.get("report") or {}
                st.validation_passed = bool(d.get("passed")) if "passed" in d else None
                if not self._val_points and rep:  # no per-point rows: the report's figures
                    st.validation_deg = _f(rep.get("mean_accuracy_deg"))
                    st.validation_precision_deg = _f(rep.get("mean_precision_deg"))
            elif name == "drift_done":
                st.drift_deg, st.drift_action = _f(d.get("offset_deg")), str(d.get("action") or "")
            elif name == "pause":
                st.paused = True
            elif name == "resume":
                st.paused = False
            elif name == "recalibration_requested":
                st.recalibration_requested = True
            elif name == "recalibration":
                st.recalibration_requested = False
            elif name == "end":
                st.ended, st.end_reason, st.answering, st.paused = True, str(d.get("reason", "")), False, False

    def _on_turns(self, entry) -> None:
        rows = [entry] if isinstance(entry, tuple) else _tuples(entry, ("t", "turn", "settings"))
        st = self.state
        for r in rows:
            st.turns_done += 1
            settings = _json(r[-1])
            rates, firsts = [], []
            for key in ("response_1", "response_2"):
                rec = settings.get(key) or {}
                times = [v for v in (rec.get("token_times") or []) if isinstance(v, (int, float))]
                n = rec.get("completion_tokens") or len(times)
                if len(times) >= 2 and times[-1] > times[0]:
                    rates.append((n - 1) / (times[-1] - times[0]))
                if rec.get("t_first_token") is not None and rec.get("t_request") is not None:
                    firsts.append(_f(rec["t_first_token"]) - _f(rec["t_request"]))
            if rates:
                st.last_tokens_per_s = float(np.mean(rates))
            if firsts:
                st.last_first_token_s = float(np.mean(firsts))
            st.answering = False

    def _on_calibration_points(self, entry) -> None:
        c = _columns(entry, ("phase", "run", "accuracy_deg", "precision_deg"))
        if not c or not len(c.get("phase", ())):
            return
        st = self.state
        val = c["phase"].astype(int) == int(CalibrationPhase.VALIDATION)
        for run, acc, prec in zip(c["run"][val], c["accuracy_deg"][val], c["precision_deg"][val]):
            self._val_points.setdefault(int(run), []).append((float(acc), float(prec)))
        if not self._val_points:
            return
        last = max(self._val_points)
        pts = np.array(self._val_points[last], dtype=np.float64)
        acc, prec = pts[:, 0], pts[:, 1]
        st.validation_run = last
        st.validations = len(self._val_points)
        st.validation_deg = float(np.mean(acc[np.isfinite(acc)])) if np.isfinite(acc).any() else math.nan
        st.validation_precision_deg = float(np.mean(prec[np.isfinite(prec)])) if np.isfinite(prec).any() else math.nan

    def _on_log(self, entry) -> None:
        rows = [entry] if isinstance(entry, tuple) else _tuples(entry, ("t", "level", "source", "message"))
        for r in rows:
            if int(r[1]) >= 30:
                self.state.warnings = (self.state.warnings + [(float(r[0]), f"{r[2]}: {r[3]}")])[-8:]

    # -- figures ----------------------------------------------------------------------
    def _gaze_figures(self, t: float) -> None:
        st, g = self.state, self._gaze
        if not g or not math.isfinite(t):
            return
        while len(g) > 1 and g[0][0] < t - self.history_s - 1.0:
            g.popleft()
        a = np.array(g, dtype=np.float64)  # t, x, y, valid, frame, gap
        cam = a[:, 4] >= 0
        w = (a[:, 0] > t - self.window_s) & (a[:, 0] <= t)
        n = int(np.count_nonzero(w & cam))
        st.gaze_rate_hz = n / self.window_s
        nw = int(np.count_nonzero(w))
        st.valid_share = float(np.count_nonzero(w & (a[:, 3] > 0)) / nw) if nw else math.nan
        st.dropped = int(a[w, 5].sum())
        # per-second bins ending at t
        edges = t - np.arange(int(self.history_s), -1, -1, dtype=np.float64)
        idx = np.searchsorted(edges, a[:, 0], side="left")  # bin i covers (edges[i-1], edges[i]]
        ok = (idx >= 1) & (idx < len(edges))
        nb = len(edges) - 1
        rows = np.bincount(idx[ok] - 1, minlength=nb).astype(np.float64)
        cams = np.bincount(idx[ok & cam] - 1, minlength=nb).astype(np.float64)
        valid = np.bincount(idx[ok] - 1, weights=a[ok, 3], minlength=nb)
        drop = np.bincount(idx[ok] - 1, weights=a[ok, 5], minlength=nb)
        st.history_t = edges[1:] - t
        st.history_rate = cams
        with np.errstate(invalid="ignore", divide="ignore"):
            st.history_valid = np.where(rows > 0, valid / np.maximum(rows, 1), np.nan)
        st.history_dropped = drop
        # the screen: newest valid point, the trail and fixations of the last seconds
        recent = a[(a[:, 0] > t - self.fixation_s) & (a[:, 3] > 0)]
        recent = recent[np.isfinite(recent[:, 1]) & np.isfinite(recent[:, 2])]
        st.trail = recent[:, 1:3].copy()
        st.gaze_point = (float(recent[-1, 1]), float(recent[-1, 2])) if len(recent) and \
            recent[-1, 0] > t - 0.5 else None
        st.fixations = _fixations(recent[:, 0], recent[:, 1], recent[:, 2], self._px_per_deg())

    def _px_per_deg(self) -> float:
        g = self.geometry
        if g is None:
            return 40.0
        return float(g.viewing_distance_mm * math.tan(math.radians(1.0)) / g.mm_per_px_x)

    def _llm_figures(self, t: float) -> None:
        st = self.state
        tok = self._tokens
        st.live_tokens = len(tok)
        recent = [x for x in list(tok) if x > t - 2.0]
        if len(recent) >= 2 and recent[-1] > recent[0]:
            st.live_tokens_per_s = (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)
        elif not st.answering:
            st.live_tokens_per_s = math.nan

    def _disk_figures(self) -> None:
        now = time.monotonic()
        if now - self._io_t < 1.0 or not self.state.path:
            return
        self._io_t = now
        path = self.state.path
        try:
            self.state.file_bytes = os.path.getsize(path)
        except OSError:
            pass
        try:
            self.state.free_bytes = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
        except OSError:
            pass

    def refresh_disk(self) -> None:
        """Read the file size and the free space at the next :meth:`update`."""
        self._io_t = -math.inf

    # -- predictions ------------------------------------------------------------------
    def set_predictor(self, predictor: "TurnPredictor | None") -> None:
        self.predictor = predictor

    def _keep_for_prediction(self, stream: str, entry) -> None:
        """Collect what a turn's prediction needs: from ``LEAD_S`` before its ``turn`` phase
        to ``LATE_S`` after its ``turns`` row (rows captured before the participant left the
        turn reach the writer a little later)."""
        t = _first_t(entry)
        if stream == "calibration/points":
            self._cal_rows.append(entry)
            return
        if stream == "gaze" and self._first_gaze is None:
            self._first_gaze = entry
        for p in self._pending:
            if stream in p["rows"] and t <= p["deadline"]:
                p["rows"][stream].append(entry)
        if stream in ("gaze", "mouse") and isinstance(entry, tuple):
            lead = self._lead
            lead.append((t, stream, entry))
            while lead and lead[0][0] < t - LEAD_S:
                lead.popleft()
        if stream == "phases" and isinstance(entry, tuple) and str(entry[1]) == "turn":
            self._turn_rows = {s: [] for s in _TURN_STREAMS}
            for lt, ls, le in self._lead:
                if lt >= t - LEAD_S:
                    self._turn_rows[ls].append(le)
        if stream == "turns":
            self._turns_rows.append(entry)
            if not isinstance(entry, tuple):
                return
            rows = {"turns": list(self._turns_rows), "calibration/points": list(self._cal_rows)}
            rows.update(self._turn_rows)
            first = self._first_gaze
            if first is not None and rows.get("gaze") and _first_t(first) < _first_t(rows["gaze"][0]):
                rows["gaze"].insert(0, first)
            t_end = _f(entry[16], t)
            self._pending.append({"turn": int(entry[1]), "mode": "pairwise" if int(entry[2]) == 1 else "pointwise",
                                  "rows": rows, "deadline": (t_end if math.isfinite(t_end) else t) + LATE_S})
            self._turn_rows = {}
            return
        if stream in self._turn_rows:
            self._turn_rows[stream].append(entry)

    def _submit_due(self, now: float, everything: bool = False) -> None:
        keep = []
        for p in self._pending:
            if everything or not math.isfinite(now) or now >= p["deadline"]:
                self.predictor.submit(p["turn"], p["mode"], p["rows"])
            else:
                keep.append(p)
        self._pending = keep


def _first_t(entry) -> float:
    """The time of a queued entry's (first) row."""
    try:
        if isinstance(entry, tuple):
            return float(entry[0])
        col = entry["t"]
        return float(col[0]) if len(col) else math.inf
    except (KeyError, IndexError, TypeError, ValueError):
        return math.inf


def _ignore(entry) -> None:
    return None


def _n_rows(entry) -> int:
    if isinstance(entry, tuple):
        return 1
    if isinstance(entry, np.ndarray):
        return len(entry)
    try:
        return len(next(iter(entry.values()), ()))
    except (AttributeError, TypeError):
        return 0


def _tuples(entry, names) -> list[tuple]:
    """The rows of a ``put_rows`` entry as tuples of ``names`` (in that order)."""
    c = _columns(entry, names)
    if not c or any(n not in c for n in names):
        return []
    return list(zip(*(c[n].tolist() if hasattr(c[n], "tolist") else list(c[n]) for n in names)))


def _fixations(t: np.ndarray, x: np.ndarray, y: np.ndarray, px_per_deg: float, dispersion_deg: float = 1.5,
               min_s: float = 0.1) -> np.ndarray:
    """Fixations (x, y, duration s) of a short run of valid samples: a quick I-DT
    (Salvucci & Goldberg's dispersion ``(max x - min x) + (max y - min y)``, in degrees
    through one px-per-degree factor), enough for a live display; analysis uses
    :func:`ifllm_lab.analysis.events.idt`."""
    out = []
    n = len(t)
    limit = dispersion_deg * px_per_deg
    i = 0
    while i < n:
        j = i
        x0 = x1 = x[i]
        y0 = y1 = y[i]
        while j + 1 < n and t[j + 1] - t[j] < 0.15:
            nx0, nx1 = min(x0, x[j + 1]), max(x1, x[j + 1])
            ny0, ny1 = min(y0, y[j + 1]), max(y1, y[j + 1])
            if (nx1 - nx0) + (ny1 - ny0) > limit:
                break
            x0, x1, y0, y1 = nx0, nx1, ny0, ny1
            j += 1
        if t[j] - t[i] >= min_s:
            out.append((float(np.mean(x[i:j + 1])), float(np.mean(y[i:j + 1])), float(t[j] - t[i])))
            i = j + 1
        else:
            i += 1
    return np.array(out, dtype=np.float64).reshape(-1, 3)


# ======================================================================================
# The reward model's reading of each turn
# ======================================================================================

class TurnPredictor:
    """Applies a saved reward model to each finished turn, in a thread of its own.

    The turn's rows (from the ``turn`` phase to its ``turns`` row: gaze, mouse, scroll,
    layout, phases; with every ``calibration/points`` and ``turns`` row so far) are
    written into a small session file of their own in a temporary folder and its features
    computed by :func:`ifllm_lab.features.extract.session_features`, exactly as for a
    recorded session; the session file being recorded is never opened. ``results()``
    gives the predictions so far (turn order)."""

    def __init__(self, model_dir: str):
        self.model_dir = model_dir
        self.name = os.path.basename(os.path.normpath(model_dir)) if model_dir else ""
        self.error = ""
        self.model = None
        self.info: dict = {}
        self._meta: SessionMeta | None = None
        self._results: list[Prediction] = []
        self._lock = threading.Lock()
        self._jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="monitor-predict", daemon=True)
        self._thread.start()
        self._jobs.put(("load", None))

    def begin(self, meta: SessionMeta | None) -> None:
        """A new session: its metadata (screen geometry, source) goes into every turn's file."""
        self._meta = dataclasses.replace(meta, extra=dict(meta.extra or {})) if meta is not None else None
        with self._lock:
            self._results = []

    def submit(self, turn: int, mode: str, rows: dict[str, list]) -> None:
        self._jobs.put(("turn", (self._meta, turn, mode, rows)))

    def results(self) -> list[Prediction]:
        with self._lock:
            return sorted(self._results, key=lambda p: p.turn)

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait until every submitted turn is done (tests, benchmarks)."""
        done = threading.Event()
        self._jobs.put(("mark", done))
        return done.wait(timeout)

    def close(self) -> None:
        self._jobs.put(("stop", None))

    # -- worker thread ----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            kind, job = self._jobs.get()
            if kind == "stop":
                return
            if kind == "mark":
                job.set()
                continue
            try:
                if kind == "load":
                    self._load()
                elif kind == "turn":
                    self._add(self._predict(*job))
            except Exception as exc:  # the monitor shows it; the session goes on
                log.exception("monitor prediction")
                if kind == "turn":
                    self._add(Prediction(job[1], job[2], error=f"{type(exc).__name__}: {exc}"))
                else:
                    self.error = str(exc)

    def _add(self, p: Prediction) -> None:
        with self._lock:
            self._results = [r for r in self._results if r.turn != p.turn] + [p]

    def _load(self) -> None:
        from ..reward.store import load_model

        self.model, self.info = load_model(self.model_dir)
        if self.model.emb_axes is not None:
            self.error = "the model uses text embeddings, which the monitor does not compute"
            self.model = None
            return
        self.name = f"{self.name} ({self.model.task}, {self.model.feature_set}, {self.model.kind})"

    def _predict(self, meta: SessionMeta | None, turn: int, mode: str, rows: dict[str, list]) -> Prediction:
        from ..features.extract import session_features
        from ..features.table import rows_to_table
        from ..session.writer import SessionWriter

        t0 = time.perf_counter()
        out = Prediction(turn, mode)
        model = self.model
        if model is None:
            out.error = self.error or "no reward model"
            return out
        if (model.task == "pairwise") != (mode == "pairwise"):
            out.error = f"a {model.task} model; this turn is {mode}"
            return out
        meta = dataclasses.replace(meta or SessionMeta(), extra=dict((meta.extra or {}) if meta else {}))
        with tempfile.TemporaryDirectory(prefix="ifllm-monitor-") as tmp:
            path = os.path.join(tmp, "turn.h5")
            w = SessionWriter(path, meta, streams=None, flush_interval=1.0, min_free_mb=0)
            try:
                for stream, entries in rows.items():
                    for e in entries:
                        if isinstance(e, tuple):
                            w.put(stream, e)
                        else:
                            w.put_rows(stream, e)
            finally:
                w.close()
            sf = session_features(path)
        level = "comparison" if model.task == "pairwise" else "response"
        recs = [r for r in (sf.comparisons if level == "comparison" else sf.responses) if int(r["turn"]) == turn]
        if not recs:
            out.error = "no features for this turn: " + "; ".join(f"{k}: {v}" for k, v in sf.undefined.items())
            return out
        table = rows_to_table(recs, level)
        p = model.predict_proba(table)
        moved = model.moved_by(table, top=3)
        if level == "comparison":
            out.p = float(p[0])
            out.predicted = 1 if out.p >= 0.5 else 2
            out.actual = int(recs[0]["preference"])
            out.shown_left = 2 if _swapped(rows.get("turns", []), turn) else 1
        else:
            out.p = float(p[0])
            out.predicted = int(out.p >= 0.5)
            out.actual = int(recs[0]["likert"])
        out.moved_by = list(moved[0]) if moved else []
        out.seconds = time.perf_counter() - t0
        return out


def _swapped(turn_rows: list, turn: int) -> bool:
    for r in turn_rows:
        if isinstance(r, tuple) and int(r[1]) == turn:
            return int(r[12]) == 1
    return False
