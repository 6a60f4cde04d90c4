"""A participant's data rights: find, export and delete everything of one participant.

Sessions are stored under a keyed-hash pseudonym (:mod:`ifllm_lab.study.participant`), so
only the data folder's key turns the code a participant was given into the name their files
carry. Plain Python (the ``participant`` commands and the workbench's Participant dialog
drive it; both run it off the GUI thread).

What :func:`find_participant` finds, under the data folder (and any further folders given,
e.g. where exports or models were written):

* **Their files** (copied by an export, removed by a deletion): every session file whose
  root attributes name the pseudonym, every file whose name starts with ``<pseudonym>_``
  (the app names a session's files so: the session, its part files ``_part2.h5``,
  recovered copies ``.recovered.h5``, backups ``.h5.bak``, the kept camera video
  ``.camera.avi`` and its frame times ``.camera.frames.csv``), the video a session's
  ``video`` phase names, CSV export folders whose ``session.json`` names the pseudonym
  (the files it lists), the ``sub-<pseudonym without '-'>/`` folder of a BIDS export,
  and feature tables and pair files holding only this participant's rows.
* **Built from their data** (listed as "must be rebuilt"; marked stale by a deletion, never
  deleted): feature tables and pair files that mix this participant's rows with others'
  (an export copies only their rows), reward model folders whose ``model.json`` lists the
  pseudonym among its participants, DPO jobs whose ``sources.json`` (or, for older jobs,
  pairs file or held-out pairs) holds it.
* **May contain their data**: artefacts that do not record whose data they were built
  from (reward models and DPO jobs made before they recorded it, dataset folders without
  ``ifllm-sources.json``), unless their recorded sources lie provably elsewhere. They are
  listed and marked stale like the others, never ignored.
* **Cache entries**: the workbench's catalog rows and the cached features of their session
  files in the user's cache folder (removed by a deletion).

A code that is wrong or unknown finds nothing, and nothing about anyone else is shown.

Deletion (:func:`delete_participant`) is crash-safe: it first writes a journal
(``.deletions-pending/<pseudonym>.json`` in the data folder) naming every file with its
size and SHA-256, then marks the derived artefacts stale, removes the cache entries and the
files, checks that none is left, appends the deletion record to ``participant-deletions.jsonl``
in the data folder, and only then removes the journal. Run again after an interruption (a
kill, a power cut), it picks up the journal and finishes; it never reports done while a
file is left. The record holds the pseudonym, the times, each file's name, size and
SHA-256, and the artefacts marked stale: no recorded data.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from .. import __version__
from ..paths import fsync_path, write_text_atomic
from ..session.export import bids_label
from ..session.provenance import mark_stale, read_stale
from .participant import existing_key, normalise_code, pseudonym

__all__ = ["Found", "Derived", "SessionSummary", "Findings", "RightsError", "find_participant",
           "export_participant", "delete_participant", "pending_deletions", "DELETION_LOG", "PENDING_DIR",
           "format_findings", "summary_text"]

DELETION_LOG = "participant-deletions.jsonl"  #: the data folder's deletion records, one JSON object a line
PENDING_DIR = ".deletions-pending"  #: journals of deletions under way
#: a pause point to check crash safety: the deletion waits (for a kill) after this many files
PAUSE_ENV = "IFLLM_LAB_DELETE_PAUSE_AFTER"

CONTAINS, MAY_CONTAIN = "contains", "may contain"
_SESSION_KINDS = ("session", "part", "recovered")
_KIND_ORDER = ("session", "part", "recovered", "backup", "video", "frame times", "file", "CSV export", "BIDS export",
               "feature table", "pairs")
_FEATURE_ID_COLUMNS = {"session", "participant", "study", "turn"}


class RightsError(Exception):
    """A request that cannot be carried out as asked; the message says why."""


@dataclass
class Found:
    """One file holding this participant's data (copied by an export, removed by a deletion)."""

    path: str  # absolute
    kind: str  # session, part, recovered, backup, video, frame times, CSV export, BIDS export, feature table, pairs
    size: int
    session: str = ""  # the session file it belongs to (file name), when known


@dataclass
class Derived:
    """An artefact built from this participant's data together with others' (or that may be)."""

    path: str  # absolute: a file or a folder
    kind: str  # feature table, pairs, pairs dataset, reward model, DPO job
    holds: str  # CONTAINS or MAY_CONTAIN
    why: str  # one line for people
    size: int = 0
    rows: int = 0  # this participant's rows (tables and pair files)
    stale: bool = False  # already marked stale


@dataclass
class SessionSummary:
    """What one of their session files recorded, for the plain-language summary."""

    name: str
    kind: str
    study: str = ""
    started_unix: float = 0.0
    duration_s: float = 0.0
    questions: int = 0
    rated: int = 0
    streams: dict[str, int] = field(default_factory=dict)
    consent: bool = False
    questionnaire: int = 0
    state: str = ""
    problem: str = ""


@dataclass
class Findings:
    folder: str  # the data folder (absolute)
    roots: list[str]  # every folder searched (the data folder first)
    pseudonym: str  # "" when the data folder has no key (nobody was recorded there)
    files: list[Found] = field(default_factory=list)
    derived: list[Derived] = field(default_factory=list)
    caches: list[str] = field(default_factory=list)  # cache files holding rows of their sessions
    sessions: list[SessionSummary] = field(default_factory=list)
    pending: dict | None = None  # the journal of an interrupted deletion of this participant

    @property
    def found(self) -> bool:
        """Anything of this participant (files, or artefacts known to hold their data)."""
        return bool(self.files) or any(d.holds == CONTAINS for d in self.derived) or self.pending is not None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def relative(self, path: str) -> str:
        """``path`` relative to the data folder when inside it, else as it is."""
        return _relative(path, self.folder)

    def as_dict(self) -> dict:
        if not self.found:
            return {"folder": self.folder, "found": False}
        return {"folder": self.folder, "found": True, "pseudonym": self.pseudonym, "bytes": self.size,
                "files": [asdict(f) for f in self.files], "derived": [asdict(d) for d in self.derived],
                "caches": list(self.caches), "sessions": [asdict(s) for s in self.sessions],
                "pending_deletion": self.pending is not None}


def _relative(path: str, folder: str) -> str:
    rel = os.path.relpath(path, folder)
    return path if rel.startswith("..") else rel


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([os.path.abspath(path), os.path.abspath(folder)]) == os.path.abspath(folder)
    except ValueError:
        return False


def _size(path: str) -> int:
    if os.path.isdir(path):
        total = 0
        for base, _dirs, files in os.walk(path):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(base, f))
                except OSError:
                    pass
        return total
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def human_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- finding -----------------------------------------------------------------------------------
def pseudonym_of(folder: str | os.PathLike, code: str) -> str:
    """The pseudonym ``code`` has in the data folder ``folder``; "" when the folder has no key.
    RightsError for a code that cannot be one (the message says why)."""
    from .participant import ParticipantCodeError

    try:
        normalise_code(code)
        key = existing_key(folder)
    except ParticipantCodeError as exc:
        raise RightsError(str(exc)) from None
    return pseudonym(code, key) if key is not None else ""


def _check_folder(folder: str, what: str) -> str:
    folder = os.path.abspath(os.fspath(folder))
    if not os.path.exists(folder):
        raise RightsError(f"{folder}: no such {what}")
    if not os.path.isdir(folder):
        raise RightsError(f"{folder} is a file, not a {what}")
    try:
        os.listdir(folder)
    except OSError as exc:
        raise RightsError(f"{folder}: the {what} cannot be read: {exc.strerror or exc}") from None
    return folder


def find_participant(folder: str | os.PathLike, code: str, *, also: Iterable[str] = (),
                     cache_dirs: Iterable[str] | None = None,
                     progress: Callable[[str], None] | None = None,
                     cancel: Callable[[], bool] | None = None) -> Findings:
    """Everything of the participant with ``code`` under the data folder ``folder`` and the
    folders ``also`` (see the module doc). ``cache_dirs``: the cache folders to look in
    (default: the user's). Reads only; RightsError for a folder or code that cannot be used."""
    folder = _check_folder(folder, "data folder")
    roots = [folder] + [_check_folder(a, "folder") for a in also]
    roots = list(dict.fromkeys(roots))
    pseud = pseudonym_of(folder, code)
    res = Findings(folder, roots, pseud)
    if not pseud:
        return res
    res.pending = _read_journal(folder, pseud)
    finder = _Finder(res, progress or (lambda m: None), cancel or (lambda: False))
    for root in roots:
        finder.walk(root)
    finder.finish()
    res.caches = _cache_files(res, list(cache_dirs) if cache_dirs is not None else [_default_cache_dir()])
    res.files.sort(key=lambda f: (_KIND_ORDER.index(f.kind) if f.kind in _KIND_ORDER else len(_KIND_ORDER), f.path))
    res.derived = sorted({d.path: d for d in res.derived}.values(), key=lambda d: (d.holds != CONTAINS, d.path))
    return res


def _default_cache_dir() -> str:
    from ..session.catalog import default_cache_dir

    return default_cache_dir()


class _Finder:
    def __init__(self, res: Findings, progress, cancel):
        self.res = res
        self.p = res.pseudonym
        self.bids_label = "sub-" + bids_label(self.p, "")
        self.progress = progress
        self.cancel = cancel
        self.seen: set[str] = set()
        self.legacy: list[tuple[str, str, list]] = []  # (path, kind, recorded sources): decided at the end
        self.visited = 0

    def add(self, path: str, kind: str, session: str = "") -> None:
        path = os.path.abspath(path)
        if path in self.seen or not os.path.isfile(path):
            return
        self.seen.add(path)
        self.res.files.append(Found(path, kind, _size(path), session))

    def walk(self, root: str) -> None:
        for base, dirs, files in os.walk(root):
            if self.cancel():
                raise InterruptedError("cancelled")
            dirs.sort()
            if os.path.abspath(base) == os.path.join(self.res.folder, PENDING_DIR):
                dirs[:] = []
                continue
            names = set(files)
            self.visited += 1
            if self.visited % 50 == 0:
                self.progress(f"looking through {base}")
            if "model.json" in names and self.reward_model(base):
                dirs[:] = []
                continue
            if "job.toml" in names:
                self.dpo_job(base)
                dirs[:] = []
                continue
            if "dataset_info.json" in names and "state.json" in names:
                self.pairs_dataset(base)
                dirs[:] = []
                continue
            if os.path.basename(base) == self.bids_label and self._in_bids(base, root):
                for b, _d, fs in os.walk(base):
                    for f in sorted(fs):
                        self.add(os.path.join(b, f), "BIDS export")
                dirs[:] = []
                continue
            if "session.json" in names:
                self.csv_export(base, names)
            for f in sorted(files):
                self.file(os.path.join(base, f), f)

    def _in_bids(self, path: str, root: str) -> bool:
        d = os.path.dirname(path)
        while _inside(d, root):
            if os.path.isfile(os.path.join(d, "dataset_description.json")):
                return True
            if d == root:
                break
            d = os.path.dirname(d)
        return False

    def file(self, path: str, name: str) -> None:
        if os.path.abspath(path) in self.seen or name.endswith(".STALE.json"):
            return
        if name.startswith(self.p + "_"):  # the app names every file of a session so
            self.add(path, _kind_by_name(name), _session_of(name))
            if name.endswith(".h5"):
                self.session_file(path, named=True)
            return
        if ".tmp-" in name or ".partial" in name:
            return  # being written
        if name.endswith(".h5"):
            self.session_file(path, named=False)
        elif name.endswith((".csv", ".parquet")):
            self.table(path)
        elif name.endswith(".jsonl"):
            self.pairs_file(path)

    def session_file(self, path: str, *, named: bool) -> None:
        from ..session import SessionReader

        try:
            with SessionReader(path, check_streams=False) as r:
                if r.meta.participant != self.p:
                    return
                if not named:
                    self.add(path, _kind_by_name(os.path.basename(path)), os.path.basename(path))
                video = _video_phase(r)
        except Exception:  # an unreadable file is theirs only by its name (handled by the caller)
            return
        folder, name = os.path.split(path)
        stem = name[:-3]
        if stem.endswith(".recovered"):
            stem = stem[: -len(".recovered")]
        for sib, kind in ((f"{stem}.camera.avi", "video"), (f"{stem}.camera.frames.csv", "frame times")):
            self.add(os.path.join(folder, sib), kind, name)
        for sib, kind in video:
            if sib and os.path.basename(sib) == sib:
                self.add(os.path.join(folder, sib), kind, name)

    def csv_export(self, base: str, names: set[str]) -> None:
        try:
            with open(os.path.join(base, "session.json"), encoding="utf-8") as fh:
                info = json.load(fh)
            who = {str((info.get("attrs") or {}).get("participant", "")),
                   str((info.get("meta") or {}).get("participant", ""))}
        except (OSError, ValueError, AttributeError):
            return
        if self.p not in who:
            return
        src = os.path.basename(str(info.get("source", "")))
        for s in (info.get("streams") or {}).values():
            f = s.get("file") if isinstance(s, dict) else None
            if isinstance(f, str) and f in names and os.path.basename(f) == f:
                self.add(os.path.join(base, f), "CSV export", src)
        self.add(os.path.join(base, "session.json"), "CSV export", src)

    # tables with a participant column: theirs alone, mixed, or not theirs
    def _rows(self, path: str, kind: str, theirs: int, total: int, others: int) -> None:
        if not theirs:
            return
        if others == 0:
            self.add(path, kind)
            return
        self.res.derived.append(Derived(
            os.path.abspath(path), kind, CONTAINS,
            f"{theirs} of its {total} rows are this participant's, with rows of {others} other participant"
            f"{'s' if others != 1 else ''}", _size(path), theirs, read_stale(path) is not None))

    def table(self, path: str) -> None:
        try:
            col = _participant_column(path)
        except ImportError:
            if path.lower().endswith(".parquet"):
                self.derived(path, "feature table", MAY_CONTAIN, "a Parquet table this installation cannot read "
                             "(no pyarrow)")
            return
        except Exception:
            return
        if col is None:
            return
        parts = set(col)
        self._rows(path, "feature table", sum(1 for v in col if v == self.p), len(col), len(parts - {self.p}))

    def pairs_file(self, path: str) -> None:
        rows = _pairs_participants(path)
        if rows is None:
            return
        self._rows(path, "pairs", sum(1 for v in rows if v == self.p), len(rows), len(set(rows) - {self.p}))

    def reward_model(self, base: str) -> bool:
        """False when ``base`` is not a reward model folder (another tool's model.json)."""
        try:
            with open(os.path.join(base, "model.json"), encoding="utf-8") as fh:
                info = json.load(fh)
            if info.get("what") != "IFLLM Lab reward model":
                return False
            data = info.get("data") or {}
        except (OSError, ValueError, AttributeError, UnicodeDecodeError):
            return False
        parts = data.get("participant_ids")
        if isinstance(parts, list):
            parts = set(parts) | set(data.get("eval_participant_ids") or [])
            if self.p in parts:
                self.derived(base, "reward model", CONTAINS,
                             f"trained on data of {len(parts)} participants, this one among them")
            return True
        self.legacy.append((base, "reward model", list(data.get("sources") or [])))
        return True

    def dpo_job(self, base: str) -> None:
        src = os.path.join(base, "sources.json")
        try:
            with open(src, encoding="utf-8") as fh:
                parts = json.load(fh).get("participants")
        except (OSError, ValueError, AttributeError):
            parts = None
        if isinstance(parts, list):
            if self.p in parts:
                self.derived(base, "DPO job", CONTAINS,
                             f"trained on pairs of {len(parts)} participants, this one among them")
            return
        # an older job: what its pairs hold now (the file may have changed since it ran)
        seen = set()
        for f in (_job_pairs(base), os.path.join(base, "heldout.jsonl")):
            rows = _pairs_participants(f) if f else None
            seen |= set(rows or ())
        if self.p in seen:
            self.derived(base, "DPO job", CONTAINS, "its pairs hold this participant's data")
        else:
            self.legacy.append((base, "DPO job", []))

    def pairs_dataset(self, base: str) -> None:
        try:
            with open(os.path.join(base, "dataset_info.json"), encoding="utf-8") as fh:
                if "label_source" not in fh.read():
                    return  # some other dataset
        except OSError:
            return
        try:
            with open(os.path.join(base, "ifllm-sources.json"), encoding="utf-8") as fh:
                parts = json.load(fh).get("participants")
        except (OSError, ValueError, AttributeError):
            parts = None
        if isinstance(parts, list):
            if self.p in parts:
                if set(parts) == {self.p}:
                    for b, _d, fs in os.walk(base):
                        for f in sorted(fs):
                            self.add(os.path.join(b, f), "pairs")
                else:
                    self.derived(base, "pairs dataset", CONTAINS,
                                 f"pairs of {len(parts)} participants, this one among them")
            return
        self.legacy.append((base, "pairs dataset", []))

    def derived(self, path: str, kind: str, holds: str, why: str) -> None:
        self.res.derived.append(Derived(os.path.abspath(path), kind, holds, why, _size(path), 0,
                                        read_stale(path) is not None))

    def finish(self) -> None:
        """Artefacts that do not record whose data they hold: "may contain", unless every
        source they name is provably elsewhere (absolute, and neither inside nor around a
        searched folder or one of this participant's files)."""
        own = [f.path for f in self.res.files]
        for path, kind, sources in self.legacy:
            if sources and all(os.path.isabs(s) and not any(_inside(s, r) or _inside(r, s) for r in self.res.roots)
                               and not any(_inside(f, s) for f in own) for s in sources):
                continue
            self.derived(path, kind, MAY_CONTAIN,
                         "made before IFLLM Lab recorded whose data an artefact holds: it may hold this "
                         "participant's data")


def _kind_by_name(name: str) -> str:
    if name.endswith(".recovered.h5"):
        return "recovered"
    if name.endswith(".h5"):
        stem = name[:-3]
        return "part" if "_part" in stem and stem.rsplit("_part", 1)[1].isdigit() else "session"
    if name.endswith(".camera.avi"):
        return "video"
    if name.endswith(".frames.csv"):
        return "frame times"
    if name.endswith(".bak"):
        return "backup"
    return "file"


def _session_of(name: str) -> str:
    for suffix in (".recovered.h5", ".h5.bak", ".camera.frames.csv", ".camera.avi", ".h5"):
        if name.endswith(suffix):
            return name[: -len(suffix)] + ".h5"
    return ""


def _video_phase(r) -> list[tuple[str, str]]:
    """(file, kind) named by the session's ``video`` phases."""
    out = []
    if "phases" not in r or not len(r["phases"]):
        return out
    ph = r["phases"].read(columns=["name", "detail"])
    for name, detail in zip(ph["name"], ph["detail"]):
        if str(name) != "video":
            continue
        try:
            d = json.loads(str(detail))
        except ValueError:
            continue
        if isinstance(d, dict):
            out += [(str(d.get("file", "")), "video"), (str(d.get("frames_csv", "")), "frame times")]
    return out


def _participant_column(path: str) -> list[str] | None:
    """The ``participant`` column of a feature table (CSV or Parquet), or None when the
    file is not one (no ``session`` / ``participant`` / ``study`` / ``turn`` columns)."""
    if path.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        if not _FEATURE_ID_COLUMNS <= set(schema.names):
            return None
        return [str(v) for v in pq.read_table(path, columns=["participant"])["participant"].to_pylist()]
    with open(path, newline="", encoding="utf-8") as fh:
        rd = csv.reader(fh)
        header = next(rd, None)
        if not header or not _FEATURE_ID_COLUMNS <= set(header):
            return None
        j = header.index("participant")
        return [row[j] for row in rd if len(row) > j]


def _pairs_participants(path: str) -> list[str] | None:
    """The ``participant`` of every row of a pairs file, or None when it is not one."""
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict) or "chosen" not in row or "participant" not in row:
                    return None
                out.append(str(row["participant"]))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return out


def _job_pairs(job_dir: str) -> str | None:
    import tomllib

    try:
        with open(os.path.join(job_dir, "job.toml"), "rb") as fh:
            pairs = tomllib.load(fh).get("pairs")
    except (OSError, ValueError):
        return None
    if not isinstance(pairs, str):
        return None
    return pairs if os.path.isabs(pairs) else os.path.join(job_dir, pairs)


def _cache_files(res: Findings, cache_dirs: list[str]) -> list[str]:
    """Cache files with rows of their sessions: catalog caches (rows naming the pseudonym
    or one of their files) and cached features of their session files."""
    from ..features.batch import _cache_file

    own = {f.path for f in res.files}
    out = []
    for d in cache_dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            if not (n.startswith("catalog-") and n.endswith(".json")):
                continue
            p = os.path.join(d, n)
            try:
                with open(p, encoding="utf-8") as fh:
                    rows = json.load(fh).get("rows") or []
            except (OSError, ValueError, AttributeError):
                continue
            if any(isinstance(r, dict) and (r.get("participant") == res.pseudonym or r.get("path") in own)
                   for r in rows):
                out.append(p)
        for f in sorted(own):
            if f.endswith(".h5"):
                c = _cache_file(os.path.join(d, "features"), f)
                if os.path.isfile(c):
                    out.append(c)
    return out


def _session_summaries(res: Findings) -> list[SessionSummary]:
    from ..session import SessionReader

    out = []
    for f in res.files:
        if f.kind not in _SESSION_KINDS:
            continue
        s = SessionSummary(os.path.basename(f.path), f.kind)
        try:
            with SessionReader(f.path, check_streams=False) as r:
                m = r.meta
                s.study, s.started_unix, s.state = m.study, float(m.clock_start_unix or 0.0), r.state
                s.duration_s = float(r.attrs.get("duration_s", 0.0) or 0.0) or float(r.duration())
                s.streams = {n: len(r[n]) for n in r.stream_names if len(r[n])}
                if "turns" in r and len(r["turns"]):
                    s.questions = len(r["turns"])
                    s.rated = int(sum(1 for v in r["turns"].column("likert_1") if v >= 0))
                if "phases" in r and len(r["phases"]):
                    names = [str(n) for n in r["phases"].column("name")]
                    s.consent = "consent" in names
                    s.questionnaire = names.count("questionnaire")
        except Exception as exc:  # an unreadable file is still theirs: say so
            s.problem = f"cannot be read: {exc}"
        out.append(s)
    return out


# -- a plain-language summary --------------------------------------------------------------------
_STREAM_WORDS = {
    "gaze": "where the eyes looked on the screen (estimated from the webcam)",
    "mouse": "mouse movements and clicks",
    "scroll": "scrolling",
    "turns": "the questions typed, the answers shown and the ratings given",
    "layout": "where each word of the answers was on the screen",
    "keys": "the timing of key presses in the question box (not the keys themselves)",
    "phases": "the steps of the session (consent, calibration, each question, questionnaire)",
    "calibration/points": "the eye-tracking calibration and its accuracy",
    "calibration/samples": "the eye-tracking calibration samples",
    "calibration/models": "the eye-tracking calibration model",
    "events": "fixations and eye movements computed from the gaze",
    "window": "the position and focus of the study window",
    "log": "technical messages of the recording",
}


def _when(unix: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(unix)) if unix > 0 else "an unknown time"


def summary_text(res: Findings) -> str:
    """What was recorded of this participant, when, in which studies, and what was built
    from it, in plain language (the export's ``summary.txt``)."""
    sessions = res.sessions or _session_summaries(res)
    lines = [f"Data held about participant {res.pseudonym}",
             "=" * (26 + len(res.pseudonym)), "",
             "Your participant code is not stored anywhere; your data is filed under the pseudonym above, "
             "which only this lab's installation can work out from your code.", ""]
    studies = sorted({s.study for s in sessions if s.study})
    lines.append(f"Studies: {', '.join(studies) if studies else 'none recorded'}.")
    lines.append(f"Sessions: {len([s for s in sessions if s.kind == 'session'])} "
                 f"(with {len([s for s in sessions if s.kind == 'part'])} continuation part(s) after an "
                 f"interruption and {len([s for s in sessions if s.kind == 'recovered'])} recovered copy(ies)).")
    lines.append("")
    for s in sessions:
        lines.append(f"- {s.name} ({s.kind}): study {s.study or '?'}, started {_when(s.started_unix)}, "
                     f"{s.duration_s / 60:.1f} minutes, {s.questions} question(s), {s.rated} rated.")
        if s.problem:
            lines.append(f"  This file {s.problem}.")
        if s.consent:
            lines.append("  Your consent is recorded in it (its time and the text's fingerprint).")
        if s.questionnaire:
            lines.append(f"  {s.questionnaire} questionnaire answer(s).")
        for name, n in s.streams.items():
            lines.append(f"  {_STREAM_WORDS.get(name, name)}: {n} record(s)")
    videos = [f for f in res.files if f.kind == "video"]
    lines += ["", ("Camera video: kept for " + ", ".join(os.path.basename(v.path) for v in videos) + ".")
              if videos else "Camera video: none was kept (only what the app computed from it)."]
    exports = [f for f in res.files if f.kind in ("CSV export", "BIDS export")]
    if exports:
        lines.append(f"Exports of your sessions: {len(exports)} file(s) (CSV / BIDS copies of the above).")
    tables = [f for f in res.files if f.kind in ("feature table", "pairs")]
    if tables:
        lines.append(f"Tables made from your sessions only: {len(tables)}.")
    if res.derived:
        lines += ["", "Built from your data together with other participants' (these hold numbers computed from "
                      "many people and are rebuilt without yours when you ask for deletion):"]
        for d in res.derived:
            lines.append(f"- {d.kind}: {res.relative(d.path)} ({d.holds} your data; {d.why})")
    lines += ["", f"Made by IFLLM Lab {__version__} on {_when(time.time())}.", ""]
    return "\n".join(lines)


def format_findings(res: Findings) -> str:
    """The report of ``find`` for people; for nothing found, that alone (no pseudonym)."""
    if not res.found:
        return f"Nothing found for this code in {res.folder}."
    out = [f"Participant {res.pseudonym} in {res.folder}"]
    if res.pending is not None:
        out.append("An interrupted deletion of this participant is pending: run the deletion again to finish it.")
    out.append(f"Their files ({len(res.files)}, {human_size(res.size)}):" if res.files else "Their files: none left.")
    for f in res.files:
        out.append(f"  {f.kind:<14} {res.relative(f.path)}  {human_size(f.size)}")
    must = [d for d in res.derived if d.holds == CONTAINS]
    may = [d for d in res.derived if d.holds == MAY_CONTAIN]
    if must:
        out.append(f"Built from their data with others' (must be rebuilt after a deletion) ({len(must)}):")
        out += [f"  {d.kind:<14} {res.relative(d.path)}  {d.why}" + ("  [stale]" if d.stale else "") for d in must]
    if may:
        out.append(f"May contain their data (marked stale by a deletion) ({len(may)}):")
        out += [f"  {d.kind:<14} {res.relative(d.path)}" + ("  [stale]" if d.stale else "") for d in may]
    if res.caches:
        out.append(f"Cache entries of their sessions: {len(res.caches)} file(s) (removed by a deletion)")
    return "\n".join(out)


# -- export --------------------------------------------------------------------------------------
def _export_name(res: Findings, path: str) -> str:
    for i, root in enumerate(res.roots):
        if _inside(path, root):
            rel = os.path.relpath(path, root)
            return rel if i == 0 else os.path.join(f"elsewhere-{i}", rel)
    return os.path.join("elsewhere", path.lstrip(os.sep))


def export_participant(res: Findings, out: str | os.PathLike, *,
                       progress: Callable[[float, str], None] | None = None,
                       cancel: Callable[[], bool] | None = None) -> list[str]:
    """Copy everything of the participant into ``out`` (an empty or new folder): their files
    under ``files/`` (paths as in the data folder), their rows of mixed tables and pair files
    under ``rows/``, ``summary.txt`` (plain language) and ``files.json`` (each file with its
    size and SHA-256). Returns the files written."""
    progress = progress or (lambda f, m: None)
    cancel = cancel or (lambda: False)
    if not res.found:
        raise RightsError("nothing found for this code; nothing to export")
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    if os.listdir(out):
        raise RightsError(f"{out} is not empty: export into a new or empty folder")
    written, listing = [], []
    total = max(len(res.files) + len(res.derived), 1)
    for i, f in enumerate(res.files):
        if cancel():
            raise InterruptedError("cancelled")
        progress(i / total, f"copying {os.path.basename(f.path)}")
        dst = os.path.join(out, "files", _export_name(res, f.path))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(f.path, dst)
        written.append(dst)
        listing.append({"file": os.path.relpath(dst, out), "kind": f.kind, "bytes": f.size, "sha256": sha256_of(dst)})
    for j, d in enumerate(res.derived):
        progress((len(res.files) + j) / total, f"their rows of {os.path.basename(d.path)}")
        if d.holds != CONTAINS or not d.rows:
            continue
        name = _export_name(res, d.path)
        if d.kind == "feature table":
            dst = os.path.join(out, "rows", os.path.splitext(name)[0] + ".csv")
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            _table_rows(d.path, res.pseudonym, dst)
        else:
            dst = os.path.join(out, "rows", name)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            _pairs_rows(d.path, res.pseudonym, dst)
        written.append(dst)
        listing.append({"file": os.path.relpath(dst, out), "kind": f"their rows of a {d.kind}",
                        "bytes": os.path.getsize(dst), "sha256": sha256_of(dst)})
    res.sessions = res.sessions or _session_summaries(res)
    summary = os.path.join(out, "summary.txt")
    with open(summary, "w", encoding="utf-8") as fh:
        fh.write(summary_text(res))
    files_json = os.path.join(out, "files.json")
    with open(files_json, "w", encoding="utf-8") as fh:
        json.dump({"pseudonym": res.pseudonym, "exported_utc": _utc(), "app_version": __version__,
                   "files": listing,
                   "built_from_their_data": [{"path": res.relative(d.path), "kind": d.kind, "holds": d.holds}
                                             for d in res.derived]}, fh, indent=1, ensure_ascii=False)
    written += [summary, files_json]
    progress(1.0, f"{len(written)} files exported")
    return written


def _table_rows(path: str, p: str, dst: str) -> None:
    from ..features.table import read_table, write_table

    t = read_table(path)
    keep = [i for i, v in enumerate(t["participant"].tolist()) if str(v) == p]
    write_table({k: v[keep] for k, v in t.items()}, dst)


def _pairs_rows(path: str, p: str, dst: str) -> None:
    with open(path, encoding="utf-8") as src, open(dst, "w", encoding="utf-8") as fh:
        for line in src:
            if line.strip() and str(json.loads(line).get("participant")) == p:
                fh.write(line if line.endswith("\n") else line + "\n")


# -- delete --------------------------------------------------------------------------------------
def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _journal_path(folder: str, pseud: str) -> str:
    return os.path.join(folder, PENDING_DIR, f"{pseud}.json")


def _read_journal(folder: str, pseud: str) -> dict | None:
    try:
        with open(_journal_path(folder, pseud), encoding="utf-8") as fh:
            d = json.load(fh)
        return d if isinstance(d, dict) else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"record": uuid.uuid4().hex, "files": [], "derived": [], "caches": [], "damaged": True}


def pending_deletions(folder: str | os.PathLike) -> int:
    """How many deletions in ``folder`` were interrupted and wait to be finished."""
    try:
        return len([n for n in os.listdir(os.path.join(os.fspath(folder), PENDING_DIR)) if n.endswith(".json")])
    except OSError:
        return 0


def _logged(folder: str, record: str) -> bool:
    try:
        with open(os.path.join(folder, DELETION_LOG), encoding="utf-8") as fh:
            return any(json.loads(line).get("record") == record for line in fh if line.strip())
    except (OSError, ValueError):
        return False


@dataclass
class DeletionReport:
    record: dict
    log_path: str
    resumed: bool  # an interrupted deletion was finished

    @property
    def files(self) -> int:
        return len(self.record.get("files", []))

    def summary(self) -> str:
        r = self.record
        must = [d for d in r.get("marked_stale", []) if d.get("holds") == CONTAINS]
        may = [d for d in r.get("marked_stale", []) if d.get("holds") == MAY_CONTAIN]
        lines = [("Finished the interrupted deletion: " if self.resumed else "Deleted: ")
                 + f"{self.files} files of participant {r['pseudonym']} "
                 f"({human_size(sum(f['bytes'] for f in r.get('files', [])))})."]
        if must:
            lines.append(f"Must be rebuilt without them (marked stale): {len(must)}")
            lines += [f"  {d['kind']}: {d['path']}" for d in must]
        if may:
            lines.append(f"May have held their data (marked stale): {len(may)}")
            lines += [f"  {d['kind']}: {d['path']}" for d in may]
        if r.get("cache_files"):
            lines.append(f"Cache entries removed from {r['cache_files']} file(s).")
        lines.append(f"The deletion record (names and SHA-256 of the files, no data) is in {self.log_path}.")
        return "\n".join(lines)


def delete_participant(res: Findings, *, progress: Callable[[float, str], None] | None = None) -> DeletionReport:
    """Delete the participant's files found in ``res``, mark what was built from their data
    stale, remove their cache entries and write the deletion record (see the module doc).
    Finishes an interrupted deletion of the same participant. RightsError when nothing was
    found, when a file is still being recorded, or when files are left (the journal stays
    then, and running it again goes on)."""
    from ..session.recovery import in_use

    progress = progress or (lambda f, m: None)
    if not res.found:
        raise RightsError("nothing found for this code; nothing deleted")
    folder, pseud = res.folder, res.pseudonym
    journal = res.pending
    resumed = journal is not None
    for f in res.files:
        if f.path.endswith(".h5"):
            busy = in_use(f.path)
            if busy:
                raise RightsError(f"{f.path} is still being recorded ({busy}): stop that session first; "
                                  "nothing was deleted")
    # 1. the journal: every file with its hash, before anything is touched
    planned = {e["path"]: e for e in (journal or {}).get("files", []) if isinstance(e, dict) and "path" in e}
    for i, f in enumerate(res.files):
        progress(0.3 * i / max(len(res.files), 1), f"hashing {os.path.basename(f.path)}")
        planned[f.path] = {"path": f.path, "name": res.relative(f.path), "kind": f.kind, "bytes": f.size,
                           "sha256": sha256_of(f.path)}
    derived = {d["path"]: d for d in (journal or {}).get("derived", []) if isinstance(d, dict) and "path" in d}
    for d in res.derived:
        derived.setdefault(d.path, {"path": d.path, "name": res.relative(d.path), "kind": d.kind, "holds": d.holds})
    caches = sorted(set((journal or {}).get("caches", [])) | set(res.caches))
    record_id = (journal or {}).get("record") or uuid.uuid4().hex
    started = (journal or {}).get("started_utc") or _utc()
    journal = {"format": "ifllm-lab-deletion-journal", "record": record_id, "pseudonym": pseud,
               "started_utc": started, "files": sorted(planned.values(), key=lambda e: e["path"]),
               "derived": sorted(derived.values(), key=lambda e: e["path"]), "caches": caches}
    jpath = _journal_path(folder, pseud)
    os.makedirs(os.path.dirname(jpath), exist_ok=True)
    write_text_atomic(jpath, json.dumps(journal, indent=1, ensure_ascii=False) + "\n", sync=True)
    fsync_path(os.path.dirname(jpath), directory=True)

    # 2. what was built from their data: stale before the data goes
    for d in journal["derived"]:
        if os.path.exists(d["path"]):
            mark_stale(d["path"], record=record_id, holds=d["holds"], deleted_utc=started)
    # 3. cache entries (summaries and features of their sessions)
    own = {e["path"] for e in journal["files"]}
    for c in caches:
        _clean_cache(c, pseud, own)
    # 4. the files
    pause = int(os.environ.get(PAUSE_ENV, "0") or 0)
    removed = 0
    dirs = set()
    for i, e in enumerate(journal["files"]):
        progress(0.3 + 0.6 * i / max(len(journal["files"]), 1), f"deleting {os.path.basename(e['path'])}")
        dirs.add(os.path.dirname(e["path"]))
        try:
            os.remove(e["path"])
            removed += 1
        except FileNotFoundError:
            continue
        if pause and removed == pause:
            print(f"deletion paused after {removed} file(s)", file=sys.stderr, flush=True)
            time.sleep(3600)
    for d in sorted(dirs, key=len, reverse=True):
        fsync_path(d, directory=True)
        _remove_empty_export_dirs(d, res.roots)
    # 5. nothing may be left before the record says done
    left = [e["path"] for e in journal["files"] if os.path.lexists(e["path"])]
    if left:
        raise RightsError(f"{len(left)} file(s) could not be deleted (e.g. {left[0]}); run the deletion again "
                          "(its journal is kept)")
    record = {"record": record_id, "pseudonym": pseud, "started_utc": started, "finished_utc": _utc(),
              "app_version": __version__,
              "files": [{"name": e["name"], "kind": e["kind"], "bytes": e["bytes"], "sha256": e["sha256"]}
                        for e in journal["files"]],
              "marked_stale": [{"path": d["name"], "kind": d["kind"], "holds": d["holds"]}
                               for d in journal["derived"]],
              "cache_files": len(caches)}
    log_path = os.path.join(folder, DELETION_LOG)
    if not _logged(folder, record_id):
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    os.remove(jpath)
    try:
        os.rmdir(os.path.dirname(jpath))
    except OSError:
        pass
    progress(1.0, f"{len(record['files'])} files deleted")
    return DeletionReport(record, log_path, resumed)


def _remove_empty_export_dirs(d: str, roots: list[str]) -> None:
    """Folders emptied by the deletion (an export folder, a BIDS subject's tree) go too; a
    data or study folder is kept."""
    while any(_inside(d, r) and d != r for r in roots):
        name = os.path.basename(d)
        parent = os.path.dirname(d)
        is_root_child = any(os.path.abspath(parent) == r for r in roots)
        if is_root_child and not name.startswith("sub-"):
            return  # a study folder (or any folder right under a searched one): kept
        try:
            os.rmdir(d)
        except OSError:
            return
        d = parent


def _clean_cache(path: str, pseud: str, own: set[str]) -> None:
    name = os.path.basename(path)
    if name.startswith("catalog-"):
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            rows = data.get("rows") or []
        except FileNotFoundError:
            return
        except (OSError, ValueError, AttributeError):
            _remove(path)  # a damaged cache only costs time
            return
        keep = [r for r in rows if not (isinstance(r, dict) and (r.get("participant") == pseud or r.get("path") in own))]
        if len(keep) != len(rows):
            data["rows"] = keep
            write_text_atomic(path, json.dumps(data), sync=True)
    else:
        _remove(path)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
