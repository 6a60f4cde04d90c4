"""Is a study ready to run? Everything a session will need, checked before a participant
sits down (plain Python; the setup page and ``ifllm-lab app --check`` show the result).

:func:`check_study` loads what the session will use and says what is wrong with it:

* the calibration, validation and drift patterns exist and parse;
* the data folder (and the study's folder in it) exists or can be made, is a folder, is
  writable (a real file is created and removed: permission bits alone do not tell for
  root, special file systems or read-only mounts) and has room for a session;
* the consent text reads as UTF-8 text and is not empty;
* every questionnaire item has text;
* with ``lsl = true``, pylsl and the liblsl library it loads can be used (pylsl is not
  imported otherwise).

Models and servers are checked where they are loaded (:class:`~ifllm_lab.study.session.Backends`),
the camera where it starts (the setup page shows both, with a retry).
Paths in a study file (patterns, consent text) are relative to that file.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import StudyConfig
from ..gaze.calibration import Pattern, load_pattern
from ..paths import default_consent_path, probe_write
from .lsl import lsl_problem
from .session import study_folder

#: Free space (MB) a session needs on the data folder's disk. The recorder stops cleanly
#: below 100 MB (``SessionWriter.min_free_mb``) and records uncompressed until the file is
#: closed: about 350 MB an hour at 60 Hz gaze and a 120 Hz cursor poll (``ifllm-lab bench
#: record``: 2,070 MB an hour at 1 kHz mouse, scaled to 180 rows a second).
SESSION_ROOM_MB = 500.0

PATTERN_KEYS = ("pattern", "validation", "drift")


@dataclass(frozen=True)
class StudyProblem:
    """One thing that stops a session: the setting (``calibration.pattern``) and why."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass
class StudyReadiness:
    """What :func:`check_study` found: the loaded resources and the problems."""

    problems: list[StudyProblem] = field(default_factory=list)
    patterns: dict[str, Pattern] = field(default_factory=dict)  # "pattern" | "validation" | "drift"
    consent_text: str = ""
    consent_source: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """The problems in one paragraph for the researcher ("" when ready)."""
        return "; ".join(str(p) for p in self.problems)


def study_relative(config: StudyConfig, value: str) -> Path:
    """``value`` (a path from the study file) as a path: ``~`` expanded, relative to the
    study file's folder when the study came from a file."""
    p = Path(os.path.expanduser(value))
    if not p.is_absolute() and config.source and os.path.isfile(config.source):
        p = Path(config.source).parent / p
    return p


def _pattern_ref(config: StudyConfig, value: str) -> str:
    """A pattern name (``9-point``) stays a name; a path is made relative to the study file."""
    if value.endswith(".json") or "/" in value or os.sep in value:
        return str(study_relative(config, value))
    return value


def check_patterns(config: StudyConfig, out: StudyReadiness) -> None:
    c = config.calibration
    for key in PATTERN_KEYS:
        value = getattr(c, key)
        try:
            out.patterns[key] = load_pattern(_pattern_ref(config, value))
        except (OSError, ValueError) as exc:
            out.problems.append(StudyProblem(f"calibration.{key}", str(exc)))


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_folder(folder: Path, key: str, min_free_mb: float) -> list[StudyProblem]:
    """Problems of ``folder`` as the place for session files (none when it can hold one).

    A missing folder is made to try it and removed again (only what this made)."""
    if folder.exists() and not folder.is_dir():
        return [StudyProblem(key, f"{folder} is a file, not a folder")]
    base = _nearest_existing(folder)
    if not base.is_dir():
        return [StudyProblem(key, f"{folder} cannot be made: {base} is a file, not a folder")]
    made: list[Path] = []
    try:
        missing = []
        p = folder
        while p != base:
            missing.append(p)
            p = p.parent
        for p in reversed(missing):
            try:
                p.mkdir()
            except OSError as exc:
                return [StudyProblem(key, f"{folder} cannot be made: {exc.strerror or exc} ({p})")]
            made.append(p)
        try:
            probe_write(folder)
        except OSError as exc:
            return [StudyProblem(key, f"{folder} is not writable: {exc.strerror or exc}")]
        try:
            free_mb = shutil.disk_usage(folder).free / 1e6
        except OSError as exc:
            return [StudyProblem(key, f"the free space of {folder} cannot be read: {exc.strerror or exc}")]
        if free_mb < min_free_mb:
            return [StudyProblem(key, f"{folder} has {free_mb:.0f} MB free; a session needs at least "
                                      f"{min_free_mb:.0f} MB (free some space or choose another data folder)")]
        return []
    finally:
        for p in reversed(made):
            try:
                p.rmdir()
            except OSError:
                pass


def check_consent(config: StudyConfig, out: StudyReadiness) -> None:
    value = config.study.consent_file
    p = study_relative(config, value) if value else default_consent_path()
    out.consent_source = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        out.problems.append(StudyProblem("study.consent_file", f"{p} does not exist"))
        return
    except IsADirectoryError:
        out.problems.append(StudyProblem("study.consent_file", f"{p} is a folder, not a text file"))
        return
    except UnicodeDecodeError:
        out.problems.append(StudyProblem("study.consent_file", f"{p} is not UTF-8 text"))
        return
    except OSError as exc:
        out.problems.append(StudyProblem("study.consent_file", f"{p} cannot be read: {exc.strerror or exc}"))
        return
    if not text.strip():
        out.problems.append(StudyProblem("study.consent_file", f"{p} is empty"))
        return
    out.consent_text = text


def check_lsl(config: StudyConfig, problem: Callable[[], str] = lsl_problem) -> list[StudyProblem]:
    """With ``lsl = true``: why the LSL streams cannot be published (``problem()`` imports
    and tries pylsl); nothing is imported when the study does not use LSL."""
    if not config.study.lsl:
        return []
    msg = problem()
    return [StudyProblem("study.lsl", msg)] if msg else []


def check_study(config: StudyConfig, *, min_free_mb: float = SESSION_ROOM_MB) -> StudyReadiness:
    """Everything a session of ``config`` will need, loaded and checked (see the module).

    Never raises for a bad study: every problem is in the result, named by its setting."""
    out = StudyReadiness()
    check_patterns(config, out)
    out.problems += check_folder(study_folder(config), "study.data_folder", min_free_mb)
    check_consent(config, out)
    for i, item in enumerate(config.study.questionnaire):
        if not item.strip():
            out.problems.append(StudyProblem(f"study.questionnaire[{i}]", "the question has no text"))
    out.problems += check_lsl(config)
    return out
