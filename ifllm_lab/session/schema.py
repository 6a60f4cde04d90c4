"""The session file schema: one place for every group, column, dtype and code.

A session file is HDF5. Each *stream* is a group holding one resizable, chunked,
compressed 1-D dataset per column; all columns of a stream have the same length,
and row ``i`` of the stream is element ``i`` of every column. Column-wise storage
lets a reader load only ``t`` to find a time range and then read just those rows.

Every stream has ``t``: seconds on the session clock (monotonic, 0 = session start;
the wall-clock time of ``t == 0`` is the root attribute ``clock_start_unix``).
Screen positions are pixels in the screen frame (origin top left, x right, y down)
unless a column's doc says otherwise.

Text columns are stored without variable-length HDF5 strings (which are not safe
under single-writer/multiple-reader mode): the UTF-8 bytes go into one append-only
``/text_heap`` uint8 dataset and the column holds ``(offset, length)`` pairs as a
``(n, 2)`` uint64 dataset. The reader turns them back into ``str``.

Version history
---------------
1: first release. Later additions that older readers skip and newer readers find absent
in older files: ``layout/style`` (answers rendered as Markdown).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

FORMAT_NAME = "ifllm-lab-session"
SCHEMA_VERSION = 1
TEXT_HEAP = "text_heap"
META_GROUP = "meta"

TEXT = "text"  # dtype marker for a UTF-8 text column


class MouseKind(enum.IntEnum):
    """``mouse/kind`` codes."""

    MOVE = 0
    PRESS = 1
    RELEASE = 2
    DOUBLE_CLICK = 3
    WHEEL = 4
    POLL = 5  # cursor position read on a timer (or the IFLLM release's sampled position)
    ENTER = 6
    LEAVE = 7


class MouseButton(enum.IntFlag):
    """``mouse/buttons`` bit mask."""

    NONE = 0
    LEFT = 1
    RIGHT = 2
    MIDDLE = 4
    BACK = 8
    FORWARD = 16


class TurnMode(enum.IntEnum):
    POINTWISE = 0
    PAIRWISE = 1


class LayoutLevel(enum.IntEnum):
    RESPONSE = 0
    PARAGRAPH = 1
    LINE = 2
    WORD = 3
    PROMPT = 4


class EventKind(enum.IntEnum):
    FIXATION = 0
    SACCADE = 1
    BLINK = 2
    GAP = 3


class CalibrationPhase(enum.IntEnum):
    CALIBRATION = 0
    VALIDATION = 1
    DRIFT_CHECK = 2


class LogLevel(enum.IntEnum):
    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


class KeyKind(enum.IntEnum):
    PRESS = 0
    RELEASE = 1


class WindowKind(enum.IntEnum):
    GEOMETRY = 0
    FOCUS_IN = 1
    FOCUS_OUT = 2
    SHOWN = 3
    HIDDEN = 4


class Response(enum.IntEnum):
    """Which answer a per-response row belongs to."""

    SINGLE = 0  # the one answer of a pointwise turn
    FIRST = 1  # response 1 (shown left unless ``turns/swapped``)
    SECOND = 2  # response 2


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # numpy dtype string, or TEXT
    doc: str = ""
    fill: object = None  # value a writer uses when a row omits this column

    @property
    def is_text(self) -> bool:
        return self.dtype == TEXT

    def default(self):
        if self.fill is not None:
            return self.fill
        if self.is_text:
            return ""
        kind = np.dtype(self.dtype).kind
        if kind == "f":
            return np.nan
        if kind == "i":
            return -1
        return 0


@dataclass(frozen=True)
class StreamSpec:
    name: str  # HDF5 group path, e.g. "gaze" or "calibration/points"
    columns: tuple[Column, ...]
    doc: str = ""
    chunk_rows: int = 16384
    extra: bool = False  # True for streams only some sessions have (imported data)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"stream {self.name!r} has no column {name!r}")

    @property
    def row_dtype(self) -> np.dtype:
        """Structured dtype of one row as readers return it (text columns are objects)."""
        return np.dtype([(c.name, object if c.is_text else c.dtype) for c in self.columns])


def _t(doc: str = "seconds on the session clock") -> Column:
    return Column("t", "f8", doc)


_REL_COLUMNS = (
    _t(),
    Column("response", "i1", "Response code: 0 single answer, 1 response 1 (left), 2 response 2 (right)"),
    Column("x", "f4", "px relative to the response box's top left; -1 when outside it"),
    Column("y", "f4", "px relative to the response box's top left; -1 when outside it"),
    Column("char_index", "i4", "index of the character under the point in the response text; -1 none"),
    Column("snippet", TEXT, "text of the rendered line around the point (about 10 characters each side)"),
    Column("valid", "i1", "1 tracker reported a good face, 0 not, -1 unknown"),
    Column("page_ms", "f8", "source page's own clock: ms since page load"),
)

STREAMS: dict[str, StreamSpec] = {
    s.name: s
    for s in (
        StreamSpec(
            "gaze",
            (
                _t("seconds on the session clock (frame capture time)"),
                Column("x", "f4", "gaze point, screen px"),
                Column("y", "f4", "gaze point, screen px"),
                Column("valid", "u1", "1 when the sample is usable (face found, eyes open, calibrated)"),
                Column("confidence", "f4", "0..1"),
                Column("frame", "i8", "camera frame index; -1 when not from a camera"),
                Column("raw_x", "f4", "calibrated point before smoothing, screen px"),
                Column("raw_y", "f4", "calibrated point before smoothing, screen px"),
                Column("left_iris_x", "f4", "left iris centre in the eye frame (0 outer corner .. 1 inner)"),
                Column("left_iris_y", "f4", "left iris centre in the eye frame (0 upper lid .. 1 lower lid)"),
                Column("right_iris_x", "f4", "right iris centre in the eye frame"),
                Column("right_iris_y", "f4", "right iris centre in the eye frame"),
                Column("left_openness", "f4", "eye opening / eye width, unitless"),
                Column("right_openness", "f4", "eye opening / eye width, unitless"),
                Column("head_yaw", "f4", "degrees"),
                Column("head_pitch", "f4", "degrees"),
                Column("head_roll", "f4", "degrees"),
                Column("face_distance_mm", "f4", "camera-to-face distance estimate, mm"),
                Column("page_ms", "f8", "imported sessions: source page's clock, ms since page load"),
            ),
            "estimated point of gaze on screen, one row per camera frame",
        ),
        StreamSpec(
            "mouse",
            (
                _t(),
                Column("kind", "u1", "MouseKind code"),
                Column("x", "f4", "cursor, screen px"),
                Column("y", "f4", "cursor, screen px"),
                Column("buttons", "u1", "MouseButton bit mask held (for press/release: the button)"),
                Column("delta_x", "f4", "wheel: horizontal angle delta, degrees (Qt angleDelta / 8)"),
                Column("delta_y", "f4", "wheel: vertical angle delta, degrees"),
                Column("aoi_response", "i1", "Response code under the cursor, -1 none (or the prompt, when aoi_word >= 0)"),
                Column("aoi_paragraph", "i4", "paragraph index under the cursor, -1 none"),
                Column("aoi_word", "i4", "word index (in its response) under the cursor, -1 none"),
                Column("page_ms", "f8", "imported sessions: source page's clock, ms since page load"),
            ),
            "every mouse event over the app, plus timer-polled cursor positions",
            chunk_rows=32768,
        ),
        StreamSpec(
            "scroll",
            (
                _t(),
                Column("turn", "i4", "turn index"),
                Column("view", "i1", "Response code of the scrolled view"),
                Column("x", "f4", "horizontal scroll offset, px"),
                Column("y", "f4", "vertical scroll offset, px"),
                Column("max_y", "f4", "largest vertical offset, px"),
            ),
            "scroll position of each response view whenever it changes",
        ),
        StreamSpec(
            "turns",
            (
                _t("seconds: when the question was sent"),
                Column("turn", "i4", "0-based turn index in the session"),
                Column("mode", "u1", "TurnMode code"),
                Column("prompt", TEXT, "the participant's question as typed"),
                Column("response_1", TEXT, "first answer"),
                Column("response_2", TEXT, "second answer (pairwise), empty otherwise"),
                Column("model_1", TEXT, "model name of response 1"),
                Column("model_2", TEXT, "model name of response 2"),
                Column("likert_1", "i1", "1..5, -1 none"),
                Column("likert_2", "i1", "1..5, -1 none"),
                Column("preference", "i1", "pairwise: 1 response 1, 2 response 2, 0 tie, -1 none"),
                Column("vs_previous", "i1", "pointwise: 1 better than the previous answer, 0 worse, -1 none"),
                Column("swapped", "i1", "pairwise: 1 when response 1 was shown on the right, 0 left, -1 n/a"),
                Column("t_first_token", "f8", "seconds: first answer token shown"),
                Column("t_done", "f8", "seconds: all answers complete"),
                Column("t_rated", "f8", "seconds: ratings submitted"),
                Column("t_end", "f8", "seconds: turn left (next question or session end)"),
                Column("settings", TEXT, "JSON: sampling settings, seeds, token timings, source extras"),
            ),
            "one row per question and its answers",
            chunk_rows=256,
        ),
        StreamSpec(
            "layout",
            (
                _t("seconds: when this geometry became current"),
                Column("snapshot", "i4", "layout snapshot id; all boxes of one render share it"),
                Column("turn", "i4", "turn index"),
                Column("response", "i1", "Response code, -1 for the prompt"),
                Column("level", "u1", "LayoutLevel code"),
                Column("index", "i4", "index of the box within its response at its level"),
                Column("x0", "f4", "box left, screen px at the snapshot's scroll state"),
                Column("y0", "f4", "box top, screen px"),
                Column("x1", "f4", "box right, screen px"),
                Column("y1", "f4", "box bottom, screen px"),
                Column("scroll_y", "f4", "vertical scroll offset of the view when measured, px"),
                Column("char_start", "i4", "first character index in the response text"),
                Column("char_end", "i4", "one past the last character index"),
                Column("text", TEXT, "the box's text as shown (words only; empty for larger boxes); "
                                     "char_start:char_end index the raw answer, markup included"),
                Column("style", "u2", "Markdown style bits (ifllm_lab.analysis.markdown): 1 bold, 2 italic, "
                                      "4 code, 8 strike, 16 link, bits 8-10 heading level, 2048 code block, "
                                      "4096 list item, 8192 quote, 16384 table, 32768 table header; 0 plain "
                                      "(absent in files written before answers were rendered)", fill=0),
            ),
            "screen boxes of every response, paragraph, line and word per render",
            chunk_rows=16384,
        ),
        StreamSpec(
            "calibration/points",
            (
                _t("seconds: when the target appeared"),
                Column("phase", "u1", "CalibrationPhase code"),
                Column("run", "i4", "calibration/validation run number"),
                Column("point", "i4", "target index within the pattern"),
                Column("target_x", "f4", "screen px"),
                Column("target_y", "f4", "screen px"),
                Column("mean_x", "f4", "mean gaze estimate, screen px"),
                Column("mean_y", "f4", "mean gaze estimate, screen px"),
                Column("accuracy_px", "f4", "distance of the mean estimate from the target, px"),
                Column("precision_px", "f4", "RMS sample-to-sample distance, px"),
                Column("accuracy_deg", "f4", "accuracy, degrees of visual angle"),
                Column("precision_deg", "f4", "precision, degrees of visual angle"),
                Column("n_samples", "i4", "samples used"),
            ),
            "per-target results of calibration, validation and drift checks",
            chunk_rows=1024,
        ),
        StreamSpec(
            "calibration/samples",
            (
                _t(),
                Column("phase", "u1", "CalibrationPhase code"),
                Column("run", "i4", "run number"),
                Column("point", "i4", "target index"),
                Column("target_x", "f4", "screen px"),
                Column("target_y", "f4", "screen px"),
                Column("x", "f4", "gaze estimate, screen px (NaN before a model exists)"),
                Column("y", "f4", "gaze estimate, screen px"),
                Column("used", "u1", "1 when the sample entered the fit or the report"),
            ),
            "every sample collected while a target was shown",
        ),
        StreamSpec(
            "calibration/models",
            (
                _t(),
                Column("run", "i4", "run number"),
                Column("kind", TEXT, "regression kind"),
                Column("params", TEXT, "JSON: the fitted model's parameters"),
            ),
            "fitted calibration models",
            chunk_rows=64,
        ),
        StreamSpec(
            "events",
            (
                _t("seconds: event onset"),
                Column("kind", "u1", "EventKind code"),
                Column("duration", "f4", "seconds"),
                Column("x", "f4", "fixation centroid / saccade start, screen px"),
                Column("y", "f4", "fixation centroid / saccade start, screen px"),
                Column("x_end", "f4", "saccade end, screen px"),
                Column("y_end", "f4", "saccade end, screen px"),
                Column("detector", TEXT, "algorithm and thresholds"),
            ),
            "fixations, saccades, blinks and gaps when computed",
        ),
        StreamSpec(
            "phases",
            (_t(), Column("name", TEXT, "phase entered: consent, calibration, turn, questionnaire, ..."),
             Column("detail", TEXT, "JSON details")),
            "phase changes of the session flow",
            chunk_rows=256,
        ),
        StreamSpec(
            "keys",
            (_t(), Column("kind", "u1", "KeyKind code"), Column("field", TEXT, "input field name")),
            "keystroke timing in the question box (no key identities)",
            chunk_rows=4096,
        ),
        StreamSpec(
            "window",
            (
                _t(),
                Column("kind", "u1", "WindowKind code"),
                Column("x", "f4", "window left, screen px"),
                Column("y", "f4", "window top, screen px"),
                Column("width", "f4", "px"),
                Column("height", "f4", "px"),
            ),
            "focus, visibility and geometry of the app window",
            chunk_rows=256,
        ),
        StreamSpec(
            "log",
            (_t(), Column("level", "u1", "LogLevel code"), Column("source", TEXT, "component"),
             Column("message", TEXT, "")),
            "warnings, dropped frames, faults",
            chunk_rows=1024,
        ),
        StreamSpec(
            "gaze_rel",
            _REL_COLUMNS,
            "imported sessions: gaze relative to each response box, with the text under it",
            extra=True,
        ),
        StreamSpec(
            "mouse_rel",
            _REL_COLUMNS,
            "imported sessions: cursor relative to each response box, with the text under it",
            extra=True,
        ),
    )
}

CORE_STREAMS = tuple(n for n, s in STREAMS.items() if not s.extra)


def stream_spec(name: str) -> StreamSpec:
    try:
        return STREAMS[name]
    except KeyError:
        raise KeyError(f"unknown stream {name!r}; known: {', '.join(STREAMS)}") from None


@dataclass
class SessionMeta:
    """What a session is: stored as attributes of the root and of ``/meta``.

    ``screen_*`` geometry lets analysis convert px to degrees of visual angle.
    ``extra`` holds anything else (study config, camera, LLM settings, source
    details) as JSON-serialisable values.
    """

    participant: str = ""
    study: str = ""
    session_id: str = ""
    source: str = "ifllm-lab"  # "ifllm-lab" when recorded, "ifllm-release" when imported
    screen_width_px: int = 0
    screen_height_px: int = 0
    screen_width_mm: float = 0.0
    screen_height_mm: float = 0.0
    viewing_distance_mm: float = 0.0
    clock_start_unix: float = 0.0  # wall-clock (UTC epoch seconds) of t == 0
    extra: dict = field(default_factory=dict)
