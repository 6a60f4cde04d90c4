"""Which participants' data a derived artefact was built from, and the stale marker.

Derived artefacts (reward model folders, DPO pair files and jobs) record the participant
pseudonyms and session ids of the sessions they were built from (:func:`sources_of_rows`),
so that a participant's data can be traced into them when that participant asks for it to
be deleted (:mod:`ifllm_lab.study.rights`). An artefact built from data that has since been
deleted is marked stale: ``STALE.json`` inside its folder, or ``<file>.STALE.json`` beside a
file. The marker names the deletion record (in the data folder's deletion log) and why the
artefact must be rebuilt; it never names the participant. Listings (``reward models``,
``dpo jobs``, the workbench's tabs) read it with :func:`read_stale`.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable

from ..paths import write_text_atomic

__all__ = ["STALE_FILE", "stale_path", "read_stale", "mark_stale", "stale_text", "sources_of_rows"]

STALE_FILE = "STALE.json"


def stale_path(artefact: str | os.PathLike) -> str:
    """Where the stale marker of ``artefact`` (a folder or a file) lives."""
    artefact = os.fspath(artefact)
    if os.path.isdir(artefact):
        return os.path.join(artefact, STALE_FILE)
    return artefact + "." + STALE_FILE


def read_stale(artefact: str | os.PathLike) -> dict | None:
    """The stale marker of ``artefact`` (``{"reason", "deletions": [...]}``), or None when it
    has none. A marker that cannot be read still counts as stale."""
    path = stale_path(artefact)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
        if isinstance(d, dict):
            return d
    except (OSError, ValueError):
        pass
    return {"reason": f"{os.path.basename(path)} marks it stale (the marker cannot be read)", "deletions": []}


def stale_text(marker: dict) -> str:
    """One line for a listing: why the artefact must be rebuilt."""
    n = len(marker.get("deletions") or [])
    when = (marker.get("deletions") or [{}])[-1].get("deleted_utc", "")
    base = marker.get("reason") or "built from data that was deleted"
    return f"stale: {base}" + (f" ({n} deletions, last {when})" if n > 1 else f" ({when})" if when else "")


def mark_stale(artefact: str | os.PathLike, *, record: str, holds: str, deleted_utc: str | None = None) -> str:
    """Mark ``artefact`` stale for the deletion ``record`` (its id in the deletion log);
    ``holds`` is ``"contains"`` (built from the deleted data) or ``"may contain"`` (it does
    not record whose data it was built from). Marking it again for the same record changes
    nothing. Returns the marker's path."""
    path = stale_path(artefact)
    marker = read_stale(artefact) or {}
    deletions = [d for d in (marker.get("deletions") or []) if isinstance(d, dict)]
    if not any(d.get("record") == record for d in deletions):
        deletions.append({"record": record, "holds": holds,
                          "deleted_utc": deleted_utc or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    contains = any(d.get("holds") == "contains" for d in deletions)
    marker = {
        "format": "ifllm-lab-stale",
        "stale": True,
        "reason": ("built from data of a participant whose data was deleted: rebuild it" if contains else
                   "may hold data of a participant whose data was deleted (it does not record whose data it "
                   "was built from): rebuild it"),
        "deletions": deletions,
    }
    write_text_atomic(path, json.dumps(marker, indent=1) + "\n", sync=True)
    return path


def sources_of_rows(rows: Iterable[dict], *, participant: str = "participant", session: str = "session") -> dict:
    """``{"participants": [...], "sessions": [...]}``: the sorted distinct pseudonyms and
    session ids of ``rows`` (dicts, e.g. feature rows or preference pairs)."""
    parts, sessions = set(), set()
    for r in rows:
        p, s = r.get(participant), r.get(session)
        if p not in (None, ""):
            parts.add(str(p))
        if s not in (None, ""):
            sessions.add(str(s))
    return {"participants": sorted(parts), "sessions": sorted(sessions)}
