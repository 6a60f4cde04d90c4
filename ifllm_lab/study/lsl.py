"""Lab Streaming Layer (LSL) streams of a session: gaze, mouse and event markers.

With ``lsl = true`` in a study's ``[study]`` section, a session publishes three LSL
outlets from the moment the participant agrees until the session ends, so that a lab
recording EEG, eye trackers or video with LabRecorder has the session in the same XDF
file:

* ``IFLLM-Gaze`` (type ``Gaze``, nominal rate = the camera's fps, float32):
  :data:`GAZE_CHANNELS`, as the ``gaze`` rows of the session file.
* ``IFLLM-Mouse`` (type ``Mouse``, irregular, float32): :data:`MOUSE_CHANNELS`, every
  ``mouse`` row (moves, presses, releases, wheel, the cursor poll).
* ``IFLLM-Markers`` (type ``Markers``, irregular, one string channel): one marker per
  ``phases`` row (consent, every stage, turn start, answers complete, turn end with the
  ratings, questionnaire items, the session end, the clock readings), written
  ``name {"key": value, ...}``: the phase name, a space and its small details as JSON
  (the conversation's text, prompts and answers, stays in the session file).

Each stream's ``source_id`` is ``ifllm-lab:<session id>:<gaze|mouse|markers>`` and its
description (``desc``) holds ``session`` (id, study, participant pseudonym, app version,
``clock_start_unix``), ``clock`` (the offset below), ``screen`` and the channels (label,
unit, type).

Clocks: every sample is pushed with its row's own time, converted from the session clock
to LSL's clock (``pylsl.local_clock``)::

    lsl_time = session_t + offset_s        session_t = lsl_time - offset_s

``offset_s`` is measured when the streams open (:func:`measure_offset`: paired readings
of both clocks, the tightest kept) and recorded in the session file: the metadata's
``extra["lsl"]`` and a ``phases`` row ``lsl_clock`` (``when = "start"``), plus a ``log``
line. It is measured again when the session ends (``lsl_clock`` with ``when = "end"`` and
``drift_s``, the end offset minus the start one); samples are always pushed with the start
offset, and a long session with a drift can be corrected linearly between the two.

Rows reach the streams through a tap on the session writer
(:meth:`~ifllm_lab.session.writer.SessionWriter.add_tap`): a producer only appends to a
queue; the publisher's own thread converts the rows and pushes them (at most every few
ms), so LSL never slows the camera, the window or the file. A failing outlet is logged
once and dropped; the recording goes on.

``pylsl`` is imported only when a study turns LSL on (:func:`load_pylsl`); a missing or
broken pylsl / liblsl is reported by the study's readiness check before a session starts.
"""
from __future__ import annotations

import collections
import json
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from ..session.schema import STREAMS, MouseButton, MouseKind

log = logging.getLogger(__name__)

GAZE_NAME, MOUSE_NAME, MARKER_NAME = "IFLLM-Gaze", "IFLLM-Mouse", "IFLLM-Markers"

#: (column of the session's ``gaze`` stream, unit, channel type), in channel order
GAZE_CHANNELS: tuple[tuple[str, str, str], ...] = (
    ("x", "pixels", "ScreenX"),
    ("y", "pixels", "ScreenY"),
    ("valid", "bool", "Valid"),
    ("confidence", "normalized", "Confidence"),
    ("raw_x", "pixels", "ScreenX"),
    ("raw_y", "pixels", "ScreenY"),
    ("left_openness", "ratio", "EyeOpenness"),
    ("right_openness", "ratio", "EyeOpenness"),
    ("face_distance_mm", "millimeters", "Distance"),
    ("frame", "index", "FrameIndex"),
)
#: (column of the session's ``mouse`` stream, unit, channel type), in channel order
MOUSE_CHANNELS: tuple[tuple[str, str, str], ...] = (
    ("x", "pixels", "ScreenX"),
    ("y", "pixels", "ScreenY"),
    ("kind", "code", "MouseKind"),
    ("buttons", "bitmask", "MouseButton"),
    ("delta_x", "degrees", "Wheel"),
    ("delta_y", "degrees", "Wheel"),
    ("aoi_response", "code", "AOI"),
    ("aoi_paragraph", "index", "AOI"),
    ("aoi_word", "index", "AOI"),
)

#: the session streams the publisher reads
TAPPED_STREAMS = ("gaze", "mouse", "phases")

#: phase details never sent in a marker (the conversation's text stays in the file)
MARKER_OMIT = frozenset({"prompt", "texts"})
#: text values longer than this are left out of a marker
MARKER_TEXT_MAX = 80

NOT_INSTALLED = ("LSL streaming is on (lsl = true) but the pylsl package is not installed: install it "
                 "(pip install pylsl) or set lsl = false in the study's [study] section")


class LslUnavailable(RuntimeError):
    """pylsl (or the liblsl library it loads) cannot be used; the message says why and
    what to do."""


def unavailable_message(exc: BaseException) -> str:
    """What the researcher reads when ``import pylsl`` (or its first call) failed with ``exc``."""
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in ("pylsl", ""):
        return NOT_INSTALLED
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return ("LSL streaming is on (lsl = true) but pylsl cannot load the LSL library (liblsl): "
            f"{first} ({type(exc).__name__}). Reinstall pylsl (its wheel carries liblsl), or point the "
            "PYLSL_LIB environment variable at a liblsl file, or set lsl = false in the study's [study] section")


def load_pylsl():
    """The ``pylsl`` module, imported now and checked (its clock and library version are
    read), or :class:`LslUnavailable` with a message for the researcher."""
    try:
        import pylsl

        pylsl.local_clock()
        pylsl.library_version()
    except Exception as exc:  # ImportError, RuntimeError / OSError from loading liblsl, ...
        raise LslUnavailable(unavailable_message(exc)) from exc
    return pylsl


def lsl_problem() -> str:
    """Why LSL streams cannot be published here ("" when they can)."""
    try:
        load_pylsl()
    except LslUnavailable as exc:
        return str(exc)
    return ""


# -- clocks ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ClockOffset:
    """``lsl_time = session_t + offset_s``, measured at session time ``session_t``."""

    offset_s: float
    uncertainty_s: float  # half the widest bracket among the readings kept
    session_t: float
    lsl_t: float
    readings: int

    def to_dict(self) -> dict:
        return asdict(self)


def measure_offset(session_now: Callable[[], float], lsl_now: Callable[[], float],
                   readings: int = 25) -> ClockOffset:
    """The offset between two clocks from ``readings`` paired readings.

    Each reading brackets one LSL clock read between two session clock reads; its offset
    is taken at the bracket's middle. The third of the readings with the narrowest
    brackets (the ones no thread switch or interrupt widened) are kept and their median
    offset is the result; the uncertainty is half the widest bracket kept."""
    if readings < 1:
        raise ValueError("readings must be at least 1")
    rows = []
    for _ in range(readings):
        a = session_now()
        lt = lsl_now()
        b = session_now()
        mid = 0.5 * (a + b)
        rows.append((b - a, lt - mid, mid, lt))
    rows.sort(key=lambda r: r[0])
    kept = rows[: max(1, readings // 3)]
    offsets = sorted(r[1] for r in kept)
    k = len(offsets)
    median = offsets[k // 2] if k % 2 else 0.5 * (offsets[k // 2 - 1] + offsets[k // 2])
    best = kept[0]
    return ClockOffset(offset_s=float(median), uncertainty_s=float(kept[-1][0] / 2), session_t=float(best[2]),
                       lsl_t=float(best[3]), readings=readings)


# -- markers ---------------------------------------------------------------------------
def _small(value):
    """``value`` without long texts (None when nothing is left worth sending)."""
    if isinstance(value, str):
        return value if len(value) <= MARKER_TEXT_MAX else None
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in MARKER_OMIT:
                continue
            s = _small(v)
            if s is not None:
                out[k] = s
        return out or None
    if isinstance(value, list):  # a short list of numbers or short texts
        plain = all(v is None or isinstance(v, (bool, int, float)) or (isinstance(v, str) and len(v) <= MARKER_TEXT_MAX)
                    for v in value)
        return value if plain and len(json.dumps(value)) <= 4 * MARKER_TEXT_MAX else None
    return value


def marker_text(name: str, detail: str) -> str:
    """The marker for a ``phases`` row: ``name`` and, after a space, its small details as
    compact JSON (``turn {"turn":2,"mode":"pairwise","swapped":false}``)."""
    try:
        d = json.loads(detail) if detail else {}
    except ValueError:
        d = {}
    small = _small(d) if isinstance(d, dict) else None
    if not small:
        return name
    return f"{name} {json.dumps(small, ensure_ascii=False, separators=(',', ':'), default=str)}"


# -- rows to samples -------------------------------------------------------------------
class _Columns:
    """Which columns of a session stream become channels, and how a queued writer entry
    (a row tuple, a structured array or a mapping of columns) becomes samples."""

    def __init__(self, stream: str, names: tuple[str, ...]):
        spec = STREAMS[stream]
        order = spec.column_names
        self.names = names
        self.index = [order.index(n) for n in names]
        self.fill = [float(spec.column(n).default()) for n in names]

    def from_tuple(self, row: tuple) -> list[float]:
        n = len(row)
        return [float(row[i]) if i < n and row[i] is not None else f for i, f in zip(self.index, self.fill)]

    def from_batch(self, item) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(item, np.ndarray):
            have = item.dtype.names or ()
            n = len(item)

            def get(c):
                return item[c] if c in have else None
        else:
            n = len(next(iter(item.values()), ()))
            get = item.get
        t = get("t")
        if t is None:  # no times: nothing to put on the LSL clock
            return np.empty(0), np.empty((0, len(self.names)))
        values = np.empty((n, len(self.names)), dtype=np.float64)
        for j, (c, f) in enumerate(zip(self.names, self.fill)):
            col = get(c)
            values[:, j] = f if col is None else np.asarray(col, dtype=np.float64)
        return np.asarray(t, dtype=np.float64), values


# -- the publisher ---------------------------------------------------------------------
class LslPublisher:
    """The LSL outlets of one session, fed by a tap on its writer.

    Args:
        session_id, study, participant: what the streams belong to (in each ``desc``).
        session_now: the session clock (seconds since the session start).
        gaze_rate_hz: the gaze stream's nominal rate (the camera's frames per second).
        screen_px: the participant's screen in px (in each ``desc``).
        app_version: written into each ``desc``.
        extra: more ``session`` details for the ``desc`` (e.g. ``part`` of a continued session).
        interval_s: the publisher's thread pushes what was queued at most this often.

    Raises :class:`LslUnavailable` when pylsl cannot be used, and pylsl's own errors when
    an outlet cannot be made (nothing is left open then).
    """

    def __init__(self, *, session_id: str, study: str, participant: str, session_now: Callable[[], float],
                 gaze_rate_hz: float, screen_px: tuple[int, int], app_version: str, extra: dict | None = None,
                 interval_s: float = 0.005):
        self.lsl = load_pylsl()
        self.session_now = session_now
        self.session_id = session_id
        self.interval_s = float(interval_s)
        self.offset = measure_offset(session_now, self.lsl.local_clock)
        self._gaze = _Columns("gaze", tuple(c for c, _, _ in GAZE_CHANNELS))
        self._mouse = _Columns("mouse", tuple(c for c, _, _ in MOUSE_CHANNELS))
        session = {"id": session_id, "study": study, "participant": participant, "app": "ifllm-lab",
                   "app_version": app_version, **{k: str(v) for k, v in (extra or {}).items()}}
        self._session_desc = session
        self._screen = (int(screen_px[0]), int(screen_px[1]))
        self.outlets: dict[str, object] = {}
        try:
            self.outlets["gaze"] = self._outlet(GAZE_NAME, "Gaze", GAZE_CHANNELS, float(gaze_rate_hz),
                                                self.lsl.cf_float32, "gaze")
            self.outlets["mouse"] = self._outlet(MOUSE_NAME, "Mouse", MOUSE_CHANNELS, self.lsl.IRREGULAR_RATE,
                                                 self.lsl.cf_float32, "mouse")
            self.outlets["phases"] = self._outlet(MARKER_NAME, "Markers", (("marker", "", "Marker"),),
                                                  self.lsl.IRREGULAR_RATE, self.lsl.cf_string, "markers")
        except BaseException:
            self.outlets.clear()
            raise
        self.pushed = {s: 0 for s in TAPPED_STREAMS}
        self.skipped = 0  # rows that could not be turned into a sample
        self.failed: dict[str, str] = {}  # session stream -> why its outlet was dropped
        self._queue: collections.deque = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._bad_rows_logged = False
        self._thread = threading.Thread(target=self._run, name="lsl-publisher", daemon=True)
        self._thread.start()

    # -- outlets ---------------------------------------------------------------------------
    def source_id(self, what: str) -> str:
        return f"ifllm-lab:{self.session_id}:{what}"

    def _outlet(self, name: str, kind: str, channels, rate: float, fmt: int, what: str):
        lsl = self.lsl
        info = lsl.StreamInfo(name, kind, len(channels), rate, fmt, self.source_id(what))
        desc = info.desc()
        desc.append_child_value("manufacturer", "IFLLM Lab")
        s = desc.append_child("session")
        for k, v in self._session_desc.items():
            s.append_child_value(k, str(v))
        c = desc.append_child("clock")
        c.append_child_value("offset_s", repr(self.offset.offset_s))
        c.append_child_value("uncertainty_s", repr(self.offset.uncertainty_s))
        c.append_child_value("conversion", "lsl_time = session_t + offset_s")
        c.append_child_value("session_clock", "seconds since the session start (monotonic), the t of the session file")
        sc = desc.append_child("screen")
        sc.append_child_value("width_px", str(self._screen[0]))
        sc.append_child_value("height_px", str(self._screen[1]))
        chs = desc.append_child("channels")
        for label, unit, ctype in channels:
            ch = chs.append_child("channel")
            ch.append_child_value("label", label)
            if unit:
                ch.append_child_value("unit", unit)
            ch.append_child_value("type", ctype)
        if what == "mouse":
            codes = desc.append_child("codes")
            for enum in (MouseKind, MouseButton):
                e = codes.append_child(enum.__name__)
                for m in enum:
                    e.append_child_value(m.name.lower(), str(int(m)))
        if what == "markers":
            desc.append_child_value("format", 'phase name, then its details as JSON: name {"key":value}')
        return lsl.StreamOutlet(info)

    # -- the tap (any producer thread) ------------------------------------------------------
    def tap(self, stream: str, item) -> None:
        """Queue one writer entry for the streams (never blocks, never raises)."""
        if self._closed:
            return
        self._queue.append((stream, item))
        if not self._wake.is_set():
            self._wake.set()

    # -- the publisher's thread --------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(0.5)
                stopping = self._stop.is_set()
                self._wake.clear()
                self._push_pending()
                if stopping:
                    self._push_pending()
                    return
                if self.interval_s > 0:
                    self._stop.wait(self.interval_s)  # let rows gather into chunks
        except Exception:  # never die silently; the session file does not depend on this
            log.exception("LSL publishing stopped")
            self.failed.update({s: "the publisher stopped" for s in TAPPED_STREAMS if s not in self.failed})

    def _push_pending(self) -> None:
        q = self._queue
        grouped: dict[str, list] = {}
        for _ in range(len(q)):
            stream, item = q.popleft()
            grouped.setdefault(stream, []).append(item)
        for stream, items in grouped.items():
            if stream in self.failed or stream not in self.outlets:
                continue
            try:
                if stream == "phases":
                    self._push_markers(items)
                else:
                    self._push_numeric(stream, items)
            except Exception as exc:
                self.failed[stream] = repr(exc)
                log.error("LSL stream for %s stopped (the session file is not affected): %r", stream, exc)

    def _bad_row(self, stream: str, exc: BaseException) -> None:
        self.skipped += 1
        if not self._bad_rows_logged:
            self._bad_rows_logged = True
            log.warning("a %s row could not be sent to LSL and was skipped: %r", stream, exc)

    def _push_numeric(self, stream: str, items: list) -> None:
        cols = self._gaze if stream == "gaze" else self._mouse
        times: list = []
        rows: list = []
        pieces: list[tuple[np.ndarray, np.ndarray]] = []
        for item in items:
            if isinstance(item, tuple):
                try:
                    values = cols.from_tuple(item)
                    t = float(item[0])
                except (TypeError, ValueError, IndexError) as exc:
                    self._bad_row(stream, exc)
                    continue
                times.append(t)
                rows.append(values)
            else:
                if rows:
                    pieces.append((np.array(times), np.array(rows, dtype=np.float64)))
                    times, rows = [], []
                try:
                    pieces.append(cols.from_batch(item))
                except (TypeError, ValueError, KeyError) as exc:
                    self._bad_row(stream, exc)
        if rows:
            pieces.append((np.array(times), np.array(rows, dtype=np.float64)))
        if not pieces:
            return
        t = np.concatenate([p[0] for p in pieces])
        values = np.concatenate([p[1] for p in pieces])
        ok = np.isfinite(t)
        if not ok.all():
            self.skipped += int((~ok).sum())
            t, values = t[ok], values[ok]
        if not len(t):
            return
        self.outlets[stream].push_chunk(values.astype(np.float32), (t + self.offset.offset_s).tolist())
        self.pushed[stream] += len(t)

    def _push_markers(self, items: list) -> None:
        outlet = self.outlets["phases"]
        off = self.offset.offset_s
        for item in items:
            if isinstance(item, tuple):
                entries = [item]
            elif isinstance(item, np.ndarray):
                entries = list(zip(item["t"], item["name"], item["detail"] if "detail" in item.dtype.names
                                   else [""] * len(item)))
            else:
                n = len(item.get("t", ()))
                entries = list(zip(item.get("t", ()), item.get("name", [""] * n), item.get("detail", [""] * n)))
            for row in entries:
                try:
                    t = float(row[0])
                    text = marker_text(str(row[1]), str(row[2]) if len(row) > 2 else "")
                except (TypeError, ValueError, IndexError) as exc:
                    self._bad_row("phases", exc)
                    continue
                if not math.isfinite(t):
                    self.skipped += 1
                    continue
                outlet.push_sample([text], t + off)
                self.pushed["phases"] += 1

    # -- clocks and the end ----------------------------------------------------------------
    def measure(self) -> ClockOffset:
        """A new reading of the offset (e.g. at the session's end, for the drift)."""
        return measure_offset(self.session_now, self.lsl.local_clock)

    def info(self) -> dict:
        """What the session metadata records about the streams."""
        return {
            "clock_offset_s": self.offset.offset_s,
            "clock_uncertainty_s": self.offset.uncertainty_s,
            "clock_measured_at_s": self.offset.session_t,
            "conversion": "lsl_time = session_t + clock_offset_s",
            "streams": {GAZE_NAME: self.source_id("gaze"), MOUSE_NAME: self.source_id("mouse"),
                        MARKER_NAME: self.source_id("markers")},
            "pylsl": getattr(self.lsl, "__version__", ""),
            "liblsl": int(self.lsl.library_version()),
        }

    def close(self, linger_s: float = 2.0) -> dict:
        """Push everything queued, stop the thread and close the outlets ``linger_s`` later
        (in the background: a recorder gets the last samples still in flight). Returns the
        counts pushed, skipped and the streams that failed."""
        if not self._closed:
            self._closed = True
            self._stop.set()
            self._wake.set()
            self._thread.join()
            outlets = list(self.outlets.values())
            self.outlets = {}
            if linger_s > 0 and outlets:
                timer = threading.Timer(linger_s, outlets.clear)
                timer.daemon = True
                timer.start()
            else:
                outlets.clear()
        return {"pushed": dict(self.pushed), "skipped": self.skipped, "failed": dict(self.failed)}
