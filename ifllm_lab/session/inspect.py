"""Summary and validity checks of a session file (``ifllm-lab inspect``)."""
from __future__ import annotations

import os

import numpy as np

from .reader import SessionReader

GAP_S = 1.0  # a gaze or mouse pause longer than this is reported as a gap
INVALID_WARN = 0.2  # report when more than this fraction of gaze samples is invalid


def _stream_problems(name: str, stream) -> list[str]:
    problems = []
    lengths = stream.column_lengths()
    if len(set(lengths.values())) > 1:
        problems.append(
            f"{name}: columns of unequal length ({min(lengths.values())}..{max(lengths.values())} rows); "
            f"the {len(stream)} complete rows are used"
        )
    if not len(stream):
        return problems
    t = stream.t
    if np.isnan(t).any():
        problems.append(f"{name}: {int(np.isnan(t).sum())} rows without a time")
    back = int(np.sum(np.diff(t) < 0))
    if back:
        problems.append(f"{name}: time goes backwards {back} times (rows out of order)")
    if t[0] < 0:
        problems.append(f"{name}: {int(np.sum(t < 0))} rows before the session start (t < 0)")
    return problems


def _gap_summary(name: str, t: np.ndarray) -> list[str]:
    if len(t) < 2:
        return []
    d = np.diff(t)
    gaps = d[d > GAP_S]
    if not len(gaps):
        return []
    return [f"{name}: {len(gaps)} gaps over {GAP_S:g} s (longest {gaps.max():.1f} s, {gaps.sum():.1f} s in all)"]


def summarize(path: str | os.PathLike) -> dict:
    """Everything ``inspect`` prints, as a JSON-ready dict.

    ``streams`` maps each stream to ``{"count", "rate_hz", "t_first", "t_last"}``;
    ``problems`` lists validity issues in words (empty when none were found).
    """
    with SessionReader(path) as r:
        meta = r.meta
        problems = list(r.problems)
        streams = {}
        for name in r.stream_names:
            s = r.stream(name)
            info = s.info()
            streams[name] = {
                "count": info.count,
                "rate_hz": round(info.rate_hz, 3),
                "t_first": None if info.count == 0 else round(info.t_first, 6),
                "t_last": None if info.count == 0 else round(info.t_last, 6),
            }
            problems += _stream_problems(name, s)
        for name in ("gaze", "mouse"):
            if name in r and len(r[name]):
                problems += _gap_summary(name, r[name].t)
        if "gaze" in r and len(r["gaze"]):
            # before the first calibration model no sample can be valid: judge from then on
            t0 = None
            if "calibration/models" in r and len(r["calibration/models"]):
                t0 = float(r["calibration/models"].t[0])
            g = r["gaze"]
            start = int(np.searchsorted(g.t, t0, side="right")) if t0 is not None else 0
            valid = g.column("valid", start)
            since = " since the first calibration" if t0 is not None else ""
            bad = 1.0 - float(np.mean(valid > 0)) if len(valid) else 1.0
            if bad > INVALID_WARN:
                problems.append(f"gaze: {bad:.0%} of samples{since} are invalid (face lost, blinks, "
                                f"tracker warnings)")
        elif "gaze" in r:
            problems.append("gaze: no samples")
        n_turns = len(r["turns"]) if "turns" in r else 0
        if n_turns:
            turns = r["turns"].read(columns=["t", "t_end", "likert_1"])
            ends = turns["t_end"]
            if np.any(ends[~np.isnan(ends)] < turns["t"][~np.isnan(ends)]):
                problems.append("turns: a turn ends before it starts")
            unrated = int(np.sum(turns["likert_1"] < 0))
            if unrated:
                problems.append(f"turns: {unrated} of {n_turns} without a Likert rating")
        else:
            problems.append("turns: none")
        if "log" in r and len(r["log"]):
            levels = r["log"].column("level")
            n_err = int(np.sum(levels >= 40))
            n_warn = int(np.sum((levels >= 30) & (levels < 40)))
            if n_err or n_warn:
                problems.append(f"log: {n_err} errors and {n_warn} warnings recorded (see the log stream)")
        duration = float(r.attrs.get("duration_s", 0.0)) or r.duration()
        return {
            "file": os.path.abspath(r.path),
            "schema": r.schema,
            "app_version": r.attrs.get("app_version", ""),
            "participant": meta.participant,
            "study": meta.study,
            "session_id": meta.session_id,
            "source": meta.source,
            "complete": r.complete,
            "state": r.state,
            "clock_start_unix": meta.clock_start_unix,
            "duration_s": round(duration, 3),
            "streams": streams,
            "turns": n_turns,
            "problems": problems,
        }


STATE_TEXT = {
    "complete": "closed cleanly",
    "ended_early": "closed cleanly, ended before it was complete",
    "recovered": "recovered copy of an interrupted recording",
    "interrupted": "NOT closed cleanly",
}


def format_summary(s: dict) -> str:
    """The human-readable form of :func:`summarize`."""
    lines = [
        f"{s['file']}",
        f"  schema {s['schema']} (written by IFLLM Lab {s['app_version']}), source {s['source']}",
        f"  participant {s['participant'] or '-'}   study {s['study'] or '-'}   session {s['session_id'] or '-'}",
        f"  duration {s['duration_s']:.1f} s   turns {s['turns']}   "
        f"{STATE_TEXT.get(s.get('state', ''), 'closed cleanly' if s['complete'] else 'NOT closed cleanly')}",
        "  streams:",
    ]
    for name, st in s["streams"].items():
        rate = f"{st['rate_hz']:.1f} Hz" if st["rate_hz"] else ""
        lines.append(f"    {name:<22}{st['count']:>10}  {rate}")
    if s["problems"]:
        lines.append("  problems:")
        lines += [f"    - {p}" for p in s["problems"]]
    else:
        lines.append("  problems: none found")
    return "\n".join(lines)
