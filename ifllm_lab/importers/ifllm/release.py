"""Import the public IFLLM release into session files (one per worker and task).

The release (arXiv 2606.20482) holds, per worker and task, WebGazer gaze and
sampled mouse positions as CSV files without headers, plus three tables
(questions with answers and ratings, tasks, worker demographics). See
``shared/data/README.md`` of the project for the format; the facts used here:

- ``abs_gaze.csv`` / ``abs_mouse.csv``: x, y (page px), ms since page load, UTC
  epoch ms. Pairwise tasks wrote every ``abs_gaze.csv`` row twice: exact
  duplicate rows are dropped (in every file) and counted in the report.
- ``rel_*.csv``: x, y relative to a response box (-1, -1 outside), the text of the
  rendered line around the point (wrapped in quotes but never escaped, so quotes
  and commas inside it break CSV parsing), the character index, ms since page load, ``validate`` (missing in
  older files), UTC epoch ms. Each physical line is one row; the parser reads the
  numeric fields from both ends, so broken quoting inside the text loses nothing.
- ``query_timestamp`` is the server's local wall time; the behaviour files are
  UTC. The offset is derived per task as the whole number of hours that puts the
  task's questions inside its recording.

Every session uses one clock: ``t`` = seconds since the earliest timestamp of
the task (behaviour rows or questions); ``clock_start_unix`` is that instant.
The absolute gaze and mouse samples are the ``gaze`` and ``mouse`` streams; the
per-response relative samples are ``gaze_rel`` and ``mouse_rel``. Questions are
``turns`` (``t`` = when the question was logged, ``t_end`` = the next question or
the end of the recording).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field

import numpy as np

from ...paths import probe_write
from ...session.schema import MouseKind, Response, SessionMeta, TurnMode
from ...session.store import SessionStore, SessionWriteError

STUDY_NAME = "IFLLM release"
SOURCE = "ifllm-release"

ABS_FILES = {"abs_gaze.csv": "gaze", "abs_mouse.csv": "mouse"}
REL_FILES = {
    "rel_gaze.csv": ("gaze_rel", Response.SINGLE),
    "rel_gaze_one.csv": ("gaze_rel", Response.FIRST),
    "rel_gaze_two.csv": ("gaze_rel", Response.SECOND),
    "rel_mouse.csv": ("mouse_rel", Response.SINGLE),
    "rel_mouse_left.csv": ("mouse_rel", Response.FIRST),
    "rel_mouse_right.csv": ("mouse_rel", Response.SECOND),
}
BEHAVIOUR_FILES = tuple(ABS_FILES) + tuple(REL_FILES)

PARTIAL_SUFFIX = ".partial"  # a session file being written: NAME.h5.partial
TEMP_PREFIX = "ifllm-import-"  # an unpacked release in the temporary folder
OWNER_FILE = "importer.pid"  # inside it: the process that unpacked it
LOCK_FILE = ".ifllm-import.lock"  # in the output folder while an import writes there

_NUM = r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_ABS_RE = re.compile(rf"^({_NUM}),({_NUM}),({_NUM}),(\d+)$")
_REL7_RE = re.compile(rf"^({_NUM}),({_NUM}),(.*),(-?\d*),({_NUM}),(-?\d+),(\d+)$", re.S)
_REL6_RE = re.compile(rf"^({_NUM}),({_NUM}),(.*),(-?\d*),({_NUM}),(\d+)$", re.S)


@dataclass
class RowProblem:
    file: str  # path relative to the release root
    line: int  # 1-based line number
    reason: str
    text: str  # the row (shortened)


@dataclass
class FileCount:
    rows: int = 0  # non-empty lines
    duplicates: int = 0  # exact duplicate lines dropped
    malformed: int = 0  # lines that could not be parsed (listed in problems)
    written: int = 0

    @property
    def distinct(self) -> int:
        return self.rows - self.duplicates


@dataclass
class SessionResult:
    worker: str
    task: str
    path: str
    turns: int
    counts: dict[str, int]  # stream -> rows written
    files: dict[str, FileCount]  # behaviour file name -> counts
    utc_offset_hours: int | None
    problems: list[RowProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class NotImported:
    worker: str
    task: str
    path: str
    reason: str


@dataclass
class ImportReport:
    source: str
    out_dir: str
    sessions: list[SessionResult] = field(default_factory=list)  # imported now
    problems: list[RowProblem] = field(default_factory=list)  # table-level problems
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # paths imported completely before: kept
    not_imported: list[NotImported] = field(default_factory=list)
    stopped: str | None = None  # why the import stopped before the end (a full disk, cancelled)

    def totals(self) -> dict:
        files: dict[str, Counter] = defaultdict(Counter)
        streams: Counter = Counter()
        for s in self.sessions:
            streams.update(s.counts)
            for name, c in s.files.items():
                files[name].update(rows=c.rows, duplicates=c.duplicates, malformed=c.malformed, written=c.written)
        return {
            "sessions": len(self.sessions),
            "sessions_with_behaviour": sum(1 for s in self.sessions if s.files),
            "turns": sum(s.turns for s in self.sessions),
            "streams": dict(streams),
            "files": {k: dict(v) for k, v in sorted(files.items())},
            "duplicates_dropped": sum(v["duplicates"] for v in files.values()),
            "malformed_rows": sum(v["malformed"] for v in files.values())
            + sum(1 for p in self.problems),
            "already_imported": len(self.skipped),
            "not_imported": len(self.not_imported),
        }

    def all_problems(self) -> list[RowProblem]:
        out = list(self.problems)
        for s in self.sessions:
            out.extend(s.problems)
        return out

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "out_dir": self.out_dir,
            "totals": self.totals(),
            "notes": self.notes + [f"{s.worker}/{s.task}: {n}" for s in self.sessions for n in s.notes],
            "problems": [asdict(p) for p in self.all_problems()],
            "stopped": self.stopped,
            "already_imported": list(self.skipped),
            "not_imported": [asdict(n) for n in self.not_imported],
            "sessions": [
                {"worker": s.worker, "task": s.task, "path": s.path, "turns": s.turns, "counts": s.counts,
                 "utc_offset_hours": s.utc_offset_hours,
                 "files": {k: {**asdict(v), "distinct": v.distinct} for k, v in s.files.items()}}
                for s in self.sessions
            ],
        }


class ReleaseFormatError(Exception):
    """The source is not an IFLLM release (message says what is missing)."""


class ImportTargetError(Exception):
    """The output folder cannot take the session files (message says why)."""


class ImportStopped(Exception):
    """The import could not go on (the temporary folder is full); nothing was imported."""


# -- source location ------------------------------------------------------------------
def find_release_root(folder: str) -> str:
    """The folder holding ``query_logs_table.csv`` (``folder`` itself or one level down)."""
    try:
        names = sorted(os.listdir(folder))
    except PermissionError:
        raise ReleaseFormatError(f"{folder}: no permission to read it.") from None
    except OSError as exc:
        raise ReleaseFormatError(f"{folder} cannot be read: {exc.strerror or exc}") from None
    candidates = [folder] + [os.path.join(folder, d) for d in names if os.path.isdir(os.path.join(folder, d))]
    for c in candidates:
        if os.path.isfile(os.path.join(c, "query_logs_table.csv")):
            return c
    raise ReleaseFormatError(
        f"{folder} is not an IFLLM release: no query_logs_table.csv in it or in a folder directly below it."
    )


def _extract(archive: str, into: str) -> str:
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(into, filter="data")
    except PermissionError:
        raise ReleaseFormatError(f"{archive}: no permission to read it.") from None
    except OSError as exc:
        if _is_disk_full(str(exc)):
            raise ImportStopped(f"cannot unpack {archive} into {into}: the disk is full (point TMPDIR at a "
                                "folder with room, or unpack the release yourself and import its folder)") from None
        raise ReleaseFormatError(f"{archive} cannot be unpacked: {exc.strerror or exc}") from None
    except tarfile.ReadError:
        raise ReleaseFormatError(f"{archive} cannot be unpacked: it is not a tar archive (the release is a "
                                 "folder or its .tar.xz)") from None
    except (tarfile.TarError, EOFError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ReleaseFormatError(f"{archive} cannot be unpacked: {first} (is it cut short?)") from None
    return find_release_root(into)


# -- table parsing ----------------------------------------------------------------------
def _read_table(root: str, name: str, problems: list[RowProblem]) -> list[dict]:
    path = os.path.join(root, name)
    if not os.path.isfile(path):
        problems.append(RowProblem(name, 0, "table missing from the release", ""))
        return []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = []
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                problems.append(RowProblem(name, reader.line_num, "wrong number of fields", str(row)[:200]))
                continue
            rows.append(row)
        return rows


def _float_or_none(s: str) -> float | None:
    try:
        return float(s) if s.strip() else None
    except ValueError:
        return None


def _int_code(s: str, allowed: dict[float, int]) -> int | None:
    v = _float_or_none(s)
    if v is None:
        return -1
    return allowed.get(v)


def _parse_local(ts: str) -> float | None:
    """``query_timestamp`` read as if it were UTC (the offset is applied later)."""
    try:
        return dt.datetime.strptime(ts.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp()
    except ValueError:
        return None


# -- behaviour file parsing -------------------------------------------------------------
def _read_lines(path: str) -> list[str]:
    with open(path, "rb") as fh:
        data = fh.read()
    text = data.decode("utf-8", "replace")
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _distinct(lines: list[str], count: FileCount) -> list[tuple[int, str]]:
    """Non-empty lines with exact duplicates removed (first kept), with 1-based line numbers."""
    seen: set[str] = set()
    out = []
    for i, line in enumerate(lines, 1):
        if not line:
            continue
        count.rows += 1
        if line in seen:
            count.duplicates += 1
            continue
        seen.add(line)
        out.append((i, line))
    return out


def parse_abs(path: str, rel_name: str, count: FileCount, problems: list[RowProblem]) -> np.ndarray:
    """Rows of an ``abs_*.csv`` file as an (n, 4) float64 array: x, y, page_ms, epoch_ms."""
    rows = []
    for lineno, line in _distinct(_read_lines(path), count):
        m = _ABS_RE.match(line)
        if m is None:
            count.malformed += 1
            problems.append(RowProblem(rel_name, lineno, "expected x,y,page_ms,epoch_ms", line[:200]))
            continue
        rows.append(m.groups())
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _unquote(field_text: str) -> str:
    """The collection site wrapped the text in quotes without escaping quotes inside
    it (``"ng the "Always On""`` is the text ``ng the "Always On"``): strip the outer pair only."""
    if len(field_text) >= 2 and field_text[0] == '"' and field_text[-1] == '"':
        return field_text[1:-1]
    return field_text


def _rel_format(lines: Iterable[tuple[int, str]]) -> int:
    """6 or 7 fields: decided by the well-formed CSV rows among the first ones."""
    widths = Counter()
    for _, line in list(lines)[:50]:
        try:
            widths[len(next(csv.reader(io.StringIO(line))))] += 1
        except (csv.Error, StopIteration):
            continue
    return 6 if widths[6] > widths[7] else 7


def parse_rel(path: str, rel_name: str, count: FileCount, problems: list[RowProblem]) -> dict:
    """Rows of a ``rel_*.csv`` file as column arrays (x, y, snippet, char_index, page_ms, valid, epoch_ms)."""
    distinct = _distinct(_read_lines(path), count)
    width = _rel_format(distinct)
    pattern = _REL7_RE if width == 7 else _REL6_RE
    xs, ys, snippets, chars, page, valid, epoch = [], [], [], [], [], [], []
    for lineno, line in distinct:
        m = pattern.match(line)
        if m is None:
            count.malformed += 1
            problems.append(RowProblem(rel_name, lineno, f"expected {width} fields with a numeric tail", line[:200]))
            continue
        g = m.groups()
        xs.append(g[0])
        ys.append(g[1])
        snippets.append(_unquote(g[2]))
        chars.append(g[3] or "-1")
        page.append(g[4])
        if width == 7:
            valid.append(g[5])
            epoch.append(g[6])
        else:
            valid.append("-1")
            epoch.append(g[5])
    return {
        "x": np.array(xs, dtype=np.float64),
        "y": np.array(ys, dtype=np.float64),
        "snippet": snippets,
        "char_index": np.array(chars, dtype=np.int64),
        "page_ms": np.array(page, dtype=np.float64),
        "valid": np.array(valid, dtype=np.int64),
        "epoch_ms": np.array(epoch, dtype=np.int64),
        "width": width,
    }


# -- one task -------------------------------------------------------------------------
def _utc_offset_hours(query_times: list[float], t_first: float | None, t_last: float | None) -> int | None:
    """Whole hours h such that ``local - h`` puts the most questions inside the recording."""
    if not query_times or t_first is None:
        return None
    def score(h: int):
        inside = sum(t_first - 60 <= q - h * 3600 <= t_last + 600 for q in query_times)
        return inside, -abs(h)
    best = max(range(-14, 15), key=score)
    return best if score(best)[0] > 0 else None


def _pairwise_code(s: str) -> int | None:
    return _int_code(s, {1.0: 1, 2.0: 2, 0.0: 0})


def _session_file_name(worker: str, task: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", worker)
    return f"{safe}_task{task}.h5"


def import_task(root: str, worker: str, task: str, queries: list[dict], task_row: dict | None,
                person: dict | None, out_dir: str, overwrite: bool = False) -> SessionResult:
    """Write one session file for ``worker``/``task``; returns what was written."""
    folder = os.path.join(root, "user_behavior", worker, task)
    problems: list[RowProblem] = []
    notes: list[str] = []
    files: dict[str, FileCount] = {}
    abs_data: dict[str, np.ndarray] = {}
    rel_data: dict[str, list[tuple[Response, dict]]] = defaultdict(list)
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            rel_name = f"user_behavior/{worker}/{task}/{name}"
            path = os.path.join(folder, name)
            if name in ABS_FILES:
                files[name] = FileCount()
                abs_data[ABS_FILES[name]] = parse_abs(path, rel_name, files[name], problems)
            elif name in REL_FILES:
                files[name] = FileCount()
                stream, response = REL_FILES[name]
                rel_data[stream].append((response, parse_rel(path, rel_name, files[name], problems)))
            else:
                notes.append(f"file {name} is not part of the release format; not imported")
    else:
        notes.append("the release has no behaviour files for this task (questions only)")

    # clock: earliest behaviour timestamp, or the earliest question
    epochs = [a[:, 3] for a in abs_data.values() if len(a)]
    epochs += [d["epoch_ms"] for rows in rel_data.values() for _, d in rows if len(d["epoch_ms"])]
    b_first = min(float(e.min()) for e in epochs) / 1000 if epochs else None
    b_last = max(float(e.max()) for e in epochs) / 1000 if epochs else None

    queries = sorted(queries, key=lambda r: int(r["query_ID"]) if r["query_ID"].isdigit() else 0)
    local = [_parse_local(r["query_timestamp"]) for r in queries]
    offset = _utc_offset_hours([q for q in local if q is not None], b_first, b_last)
    if offset is None:
        offset = 0
        if queries and epochs:
            notes.append("no whole-hour offset puts the questions inside the recording; assumed UTC")
    q_utc = [None if q is None else q - offset * 3600 for q in local]
    starts = [q for q in q_utc if q is not None]
    if b_first is not None:
        starts.append(b_first)
    t0 = min(starts) if starts else 0.0

    def t_of_epoch_ms(ms: np.ndarray) -> np.ndarray:
        return ms / 1000.0 - t0

    # turns
    turn_rows = defaultdict(list)
    last_t = 0.0
    qt_list = []
    for i, (row, q) in enumerate(zip(queries, q_utc)):
        if q is None:
            problems.append(RowProblem("query_logs_table.csv", 0,
                                       f"query {row['query_ID']}: unusable query_timestamp "
                                       f"{row['query_timestamp']!r}; placed at the previous question's time",
                                       row["user_query"][:200]))
            t = last_t
        else:
            t = q - t0
        last_t = t
        qt_list.append(t)
    end_of_recording = (b_last - t0) if b_last is not None else (qt_list[-1] if qt_list else 0.0)
    for i, row in enumerate(queries):
        pairwise = bool(row["llm_response_2"].strip())
        pref = _pairwise_code(row["preference"]) if pairwise else -1
        vs_prev = _int_code(row["preference"], {1.0: 1, 0.0: 0}) if not pairwise else -1
        if pref is None or vs_prev is None:
            problems.append(RowProblem("query_logs_table.csv", 0,
                                       f"query {row['query_ID']}: preference {row['preference']!r} is not a "
                                       f"{'pairwise' if pairwise else 'pointwise'} code; stored as none", ""))
            pref = -1 if pref is None else pref
            vs_prev = -1 if vs_prev is None else vs_prev
        names = []
        for key in ("llm_name_1", "llm_name_2"):  # a model name is one word: line breaks in it are damage
            name = "".join(row[key].split()) if any(c in row[key] for c in "\r\n") else row[key].strip()
            if name != row[key]:
                problems.append(RowProblem("query_logs_table.csv", 0,
                                           f"query {row['query_ID']}: {key} {row[key]!r} had line breaks; stored "
                                           f"as {name!r}", ""))
            names.append(name)
        likert = []
        for key in ("likert_1", "likert_2"):
            v = _float_or_none(row[key])
            likert.append(int(v) if v is not None and 1 <= v <= 5 else -1)
        t_end = qt_list[i + 1] if i + 1 < len(qt_list) else max(end_of_recording, qt_list[i])
        settings = {
            "source_query_id": row["query_ID"],
            "query_timestamp_local": row["query_timestamp"],
            "utc_offset_hours": offset,
            "adjustment": row["adjustment"],
            "bullet_point_instruction": row["adjustment"].strip() in ("1", "1.0"),
        }
        for key, value in (("t", qt_list[i]), ("turn", i), ("mode", int(TurnMode.PAIRWISE if pairwise else TurnMode.POINTWISE)),
                           ("prompt", row["user_query"]), ("response_1", row["llm_response_1"]),
                           ("response_2", row["llm_response_2"]), ("model_1", names[0]),
                           ("model_2", names[1]), ("likert_1", likert[0]), ("likert_2", likert[1]),
                           ("preference", pref), ("vs_previous", vs_prev), ("swapped", 0 if pairwise else -1),
                           ("t_end", t_end), ("settings", json.dumps(settings, ensure_ascii=False))):
            turn_rows[key].append(value)

    # relative streams: the response files of one stream merged in time order
    rel_streams = {}
    for stream, parts in rel_data.items():
        cols = defaultdict(list)
        for response, d in parts:
            n = len(d["x"])
            cols["t"].append(t_of_epoch_ms(d["epoch_ms"].astype(np.float64)))
            cols["response"].append(np.full(n, int(response), dtype=np.int8))
            for key in ("x", "y", "char_index", "valid", "page_ms"):
                cols[key].append(d[key])
            cols["snippet"].append(np.array(d["snippet"], dtype=object))
        merged = {k: np.concatenate(v) for k, v in cols.items()}
        order = np.argsort(merged["t"], kind="stable")
        rel_streams[stream] = {k: v[order] for k, v in merged.items()}

    # validity of absolute gaze from the relative files (same page clock), where known
    gaze_valid_by_page: dict[float, int] = {}
    if "gaze_rel" in rel_streams:
        rs = rel_streams["gaze_rel"]
        for pm, v in zip(rs["page_ms"].tolist(), rs["valid"].tolist()):
            if v >= 0:
                gaze_valid_by_page[pm] = min(v, gaze_valid_by_page.get(pm, 1))

    meta = SessionMeta(
        participant=worker, study=STUDY_NAME, session_id=f"{worker}_task{task}", source=SOURCE,
        clock_start_unix=t0,
        extra={
            "task_id": task,
            "task_mode": "pairwise" if task.isdigit() and int(task) % 2 else "pointwise",
            "utc_offset_hours": offset,
            "task": task_row or {},
            "worker": person or {},
            "tracker": "WebGazer (ridge, Kalman), browser, page px",
            "mouse_sampling": "position sampled in the gaze callback (not every event)",
        },
    )
    path = os.path.join(out_dir, _session_file_name(worker, task))
    if os.path.exists(path) and not overwrite:
        raise SessionWriteError(f"Cannot record to {path}: the file already exists.")
    # written under a partial name and renamed when closed: a file under its final name is
    # always complete, whatever stops the import (a full disk, a killed process)
    partial = path + PARTIAL_SUFFIX
    try:
        counts = _write_session(partial, meta, abs_data, rel_streams, gaze_valid_by_page, turn_rows,
                                bool(queries), problems, notes, max([end_of_recording] + qt_list), t_of_epoch_ms)
        os.replace(partial, path)
    except BaseException:
        _remove(partial)
        raise
    for name, c in files.items():
        c.written = c.distinct - c.malformed
    return SessionResult(worker, task, path, len(queries), counts, files, offset, problems, notes)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _write_session(path, meta, abs_data, rel_streams, gaze_valid_by_page, turn_rows, has_turns, problems, notes,
                   duration_s, t_of_epoch_ms) -> dict[str, int]:
    streams = ["gaze", "mouse", "turns", "log", "gaze_rel", "mouse_rel"]
    counts: dict[str, int] = {}
    store = SessionStore(path, meta, streams=streams, swmr=False, overwrite=True)
    try:
        if "gaze" in abs_data:
            a = abs_data["gaze"]
            order = np.argsort(a[:, 3], kind="stable")
            a = a[order]
            valid = np.array([gaze_valid_by_page.get(pm, 1) for pm in a[:, 2].tolist()], dtype=np.uint8)
            counts["gaze"] = store.append("gaze", {
                "t": t_of_epoch_ms(a[:, 3]), "x": a[:, 0], "y": a[:, 1], "valid": valid,
                "page_ms": a[:, 2], "frame": np.full(len(a), -1)})
        if "mouse" in abs_data:
            a = abs_data["mouse"]
            a = a[np.argsort(a[:, 3], kind="stable")]
            counts["mouse"] = store.append("mouse", {
                "t": t_of_epoch_ms(a[:, 3]), "kind": np.full(len(a), int(MouseKind.POLL)),
                "x": a[:, 0], "y": a[:, 1], "page_ms": a[:, 2]})
        for stream, cols in rel_streams.items():
            counts[stream] = store.append(stream, cols)
        counts["turns"] = store.append("turns", turn_rows) if has_turns else 0
        log_rows = [(0.0, 30, "import", f"{p.file}:{p.line}: {p.reason}") for p in problems]
        log_rows += [(0.0, 20, "import", n) for n in notes]
        if log_rows:
            store.append("log", {k: [r[i] for r in log_rows] for i, k in enumerate(("t", "level", "source", "message"))})
    except BaseException:
        try:
            store.close(complete=False)
        except SessionWriteError:
            pass  # the first error is the one to report
        raise
    store.close(complete=True, duration_s=duration_s)
    return counts


# -- the whole release ---------------------------------------------------------------------
def _process_mark(pid: int) -> str:
    """``PID`` plus, where the system tells it, the process's start time: a mark that a new
    process which happens to get the same id does not match."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return f"{pid} {fh.read().rsplit(')', 1)[1].split()[19]}"
    except (OSError, IndexError):
        return str(pid)


def _write_mark(path: str) -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(_process_mark(os.getpid()))


def _owner_alive(path: str) -> tuple[bool, int]:
    """(whether the process marked in ``path`` still runs, its id)."""
    try:
        with open(path, encoding="ascii") as fh:
            mark = fh.read().strip()
        pid = int(mark.split()[0])
    except (OSError, ValueError, IndexError):
        return False, 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, pid
    except PermissionError:  # another user's live process
        pass
    except OverflowError:
        return False, pid
    return (" " not in mark or _process_mark(pid) == mark), pid


def remove_stale_temp(folder: str | None = None, *, older_than_s: float = 600.0) -> list[str]:
    """Remove unpacked releases that killed imports left in the temporary folder: those whose
    owner process is gone (or, without an owner file, that are older than ``older_than_s``).
    Returns the folders removed."""
    folder = folder or tempfile.gettempdir()
    removed = []
    try:
        names = [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]
    except OSError:
        return removed
    now = time.time()
    for name in names:
        path = os.path.join(folder, name)
        try:
            if not os.path.isdir(path) or os.path.islink(path):
                continue
            owner = os.path.join(path, OWNER_FILE)
            if os.path.exists(owner):
                if _owner_alive(owner)[0]:
                    continue
            elif now - os.path.getmtime(path) < older_than_s:
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            removed.append(path)
    return removed


def check_output_folder(out_dir: str) -> None:
    """Raise :class:`ImportTargetError` unless ``out_dir`` is a writable folder or can be made
    as one (its parent exists and is writable). Makes nothing."""
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise ImportTargetError(f"{out_dir} is a file, not a folder for the session files")
        where = out_dir
    else:
        where = os.path.dirname(os.path.abspath(out_dir))
        if not os.path.isdir(where):
            raise ImportTargetError(f"{out_dir}: the folder it would go in ({where}) does not exist")
    try:
        probe_write(where)
    except OSError as exc:
        raise ImportTargetError(f"{out_dir}: cannot write in {where}: {exc.strerror or exc}") from None


class _OutputLock:
    """One import at a time into a folder: a lock file holding the importer's process id.
    A lock whose process is gone (a killed import) is taken over."""

    def __init__(self, out_dir: str):
        self.path = os.path.join(out_dir, LOCK_FILE)

    def __enter__(self):
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                alive, pid = _owner_alive(self.path)
                if alive:
                    raise ImportTargetError(f"{os.path.dirname(self.path)}: another import (process {pid}) is "
                                            "writing into this folder; wait for it to finish or stop it") from None
                _remove(self.path)  # left by a killed import
                continue
            os.close(fd)
            _write_mark(self.path)
            return self
        raise ImportTargetError(f"{self.path}: cannot take the folder's import lock")

    def __exit__(self, *exc):
        _remove(self.path)


def _existing(path: str) -> str:
    """What an existing file under a session's final name is: ``complete`` (a whole session
    imported from the release: kept), ``foreign`` (a readable session from elsewhere: never
    replaced without ``overwrite``) or ``broken`` (unreadable or incomplete: imported again)."""
    from ...session.reader import SessionFileError, SessionReader

    try:
        with SessionReader(path) as r:
            if r.meta.source != SOURCE:
                return "foreign"
            return "complete" if r.state == "complete" else "broken"
    except SessionFileError:
        return "broken"


def _is_disk_full(text: str) -> bool:
    return any(k in text for k in ("disk is full", "No space", "ENOSPC", "errno = 28", "Errno 28"))


class _InProcess:
    """The executor for ``jobs=1``: runs each task when it is submitted."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future


def import_release(src: str, out_dir: str, *, jobs: int | None = None, overwrite: bool = False,
                   progress: Callable[[int, int, str], None] | None = None,
                   cancel: Callable[[], bool] | None = None) -> ImportReport:
    """Import an IFLLM release folder or its ``.tar.xz`` into ``out_dir``.

    Malformed rows never stop the import: each is listed in the report's problems. A
    session file exists under its final name only when it is complete (it is written
    under ``NAME.h5.partial`` and renamed when closed). Sessions already imported
    completely are kept (``report.skipped``), so running the import again finishes an
    import that a full disk, a cancel or a killed process stopped; ``overwrite`` imports
    every session again. A full disk stops the import: what was not imported, and why, is
    in ``report.not_imported`` and ``report.stopped``. ``cancel`` is polled between
    sessions.

    Raises :class:`ReleaseFormatError` when ``src`` is not a release and
    :class:`ImportTargetError` when ``out_dir`` cannot take the files, before any work.
    """
    src, out_dir = os.fspath(src), os.fspath(out_dir)
    check_output_folder(out_dir)
    if not os.path.exists(src):
        raise ReleaseFormatError(f"{src}: no such file or folder.")
    if not os.access(src, os.R_OK):
        raise ReleaseFormatError(f"{src}: no permission to read it.")
    remove_stale_temp()
    tmp = None
    try:
        if os.path.isdir(src):
            root = find_release_root(src)
        else:
            tmp = tempfile.mkdtemp(prefix=TEMP_PREFIX)
            _write_mark(os.path.join(tmp, OWNER_FILE))
            root = _extract(src, tmp)
        report = ImportReport(source=src, out_dir=os.path.abspath(out_dir))
        queries = _read_table(root, "query_logs_table.csv", report.problems)
        tasks = _read_table(root, "task_table.csv", report.problems)
        people = _read_table(root, "record_info_table.csv", report.problems)
        by_task: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for row in queries:
            by_task[(row["user_id"], row["task_id"])].append(row)
        task_rows: dict[tuple[str, str], dict] = {}
        for row in tasks:
            key = (row["user_id"], row["task_id"])
            if key in task_rows:
                report.notes.append(f"task_table.csv: {key[0]}/{key[1]} listed more than once; first row kept")
                continue
            task_rows[key] = row
        person = {row["user_id"]: row for row in people}
        behaviour = os.path.join(root, "user_behavior")
        folders = set()
        if os.path.isdir(behaviour):
            for worker in sorted(os.listdir(behaviour)):
                wdir = os.path.join(behaviour, worker)
                if os.path.isdir(wdir):
                    folders.update((worker, t) for t in os.listdir(wdir) if os.path.isdir(os.path.join(wdir, t)))
        keys = sorted(folders | set(by_task), key=lambda k: (k[0], int(k[1]) if k[1].isdigit() else 0, k[1]))
        made = not os.path.exists(out_dir)
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as exc:
            raise ImportTargetError(f"{out_dir} cannot be made: {exc.strerror or exc}") from None
        with _OutputLock(out_dir):
            for name in os.listdir(out_dir):  # left by a killed import
                if name.endswith(".h5" + PARTIAL_SUFFIX):
                    _remove(os.path.join(out_dir, name))
            work = []
            for w, t in keys:
                path = os.path.join(out_dir, _session_file_name(w, t))
                replace = overwrite
                if os.path.exists(path) and not overwrite:
                    state = _existing(path)
                    if state == "complete":
                        report.skipped.append(path)
                        continue
                    if state == "foreign":
                        report.not_imported.append(NotImported(
                            w, t, path, "a session that was not imported from the IFLLM release has this name; "
                            "move it away or use --overwrite"))
                        continue
                    replace = True  # broken or incomplete: imported again
                work.append((root, w, t, by_task.get((w, t), []), task_rows.get((w, t)), person.get(w), out_dir,
                             replace))
            _run(work, report, jobs, progress, cancel)
        if made and not os.listdir(out_dir):
            os.rmdir(out_dir)
        return report
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _run(work: list[tuple], report: ImportReport, jobs: int | None, progress, cancel) -> None:
    """Import ``work`` with ``jobs`` processes, a few sessions ahead of the results, so that a
    full disk or a cancel stops it after the sessions already under way."""
    jobs = max(1, jobs or min(len(work), os.cpu_count() or 1) or 1)
    pending = list(reversed(work))
    in_flight: dict[Future, tuple] = {}
    done_count = 0
    with (ProcessPoolExecutor(jobs) if jobs > 1 and len(work) > 1 else _InProcess()) as pool:
        while pending or in_flight:
            while pending and report.stopped is None and len(in_flight) < 2 * jobs:
                if cancel is not None and cancel():
                    report.stopped = "cancelled"
                    break
                args = pending.pop()
                in_flight[pool.submit(import_task, *args)] = args
            if not in_flight:
                break
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                args = in_flight.pop(future)
                worker, task, out_dir = args[1], args[2], args[6]
                path = os.path.join(out_dir, _session_file_name(worker, task))
                try:
                    result = future.result()
                except BrokenProcessPool:
                    reason = "the import process was killed"
                    report.stopped = report.stopped or reason
                except Exception as exc:  # one session's failure: reported, the rest go on
                    reason = str(exc) if isinstance(exc, SessionWriteError) else f"{type(exc).__name__}: {exc}"
                    if _is_disk_full(reason):
                        reason = "the disk is full"
                        report.stopped = report.stopped or reason
                else:
                    report.sessions.append(result)
                    done_count += 1
                    if progress:
                        progress(done_count, len(work), result.path)
                    continue
                report.not_imported.append(NotImported(worker, task, path, reason))
    for args in reversed(pending):
        report.not_imported.append(NotImported(args[1], args[2], os.path.join(
            args[6], _session_file_name(args[1], args[2])), f"not started: the import stopped ({report.stopped})"))
    report.sessions.sort(key=lambda r: r.path)
