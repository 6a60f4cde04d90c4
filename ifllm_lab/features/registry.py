"""The feature registry: every implicit-feedback feature with its unit, meaning, the data
it needs and the level it is computed at.

A module that computes features declares them where it computes them::

    DWELL = feature("gaze_dwell_s", "gaze", "s", "time the valid gaze spent on the answer",
                    needs=("gaze", "layout"))

and returns values keyed by those names. :func:`check_values` refuses a value whose name
is not registered, so the table and the docs (``docs/features.md``, written from this
registry by ``ifllm-lab features --docs``) never disagree.

``needs`` names what a session must have for the feature to be defined (see
:data:`NEEDS`); a session without it gets NaN for the feature and the reason in the
extractor's ``undefined`` report, never a zero that means "nothing happened".
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Feature", "FEATURES", "GROUPS", "LEVELS", "NEEDS", "feature", "check_values", "features_of",
           "docs_table"]

GROUPS = {
    "gaze": "where the eyes went (fixations, dwell, reading)",
    "mouse": "what the hand did (hover, movement, trajectory)",
    "text": "the answer's own text (length, formatting, readability)",
    "context": "the question, the turn and the decision's timing",
    "quality": "how far the session's gaze can be trusted",
}
LEVELS = {
    "response": "one value per answer of a turn",
    "comparison": "one value per pairwise question (answer 1 against answer 2)",
}
NEEDS = {
    "gaze": "gaze samples",
    "fixations": "fixations detected from the gaze",
    "layout": "the answers' text geometry (recorded, or rebuilt for imported sessions)",
    "words": "word-level geometry with a validation error small enough for words (<= 1.5 deg)",
    "mouse": "cursor positions",
    "mouse_events": "cursor events as they happened (recorded sessions; imported ones were sampled)",
    "clicks": "button presses",
    "scroll": "scroll positions",
    "validation": "a gaze validation in degrees",
    "timing": "when the answer appeared and when it was rated",
    "pairwise": "a pairwise question (two answers)",
}


@dataclass(frozen=True)
class Feature:
    """One feature: ``name`` (snake_case, unique), ``group`` (a key of :data:`GROUPS`),
    ``unit`` ("s", "px", "px/s", "count", "share" for 0..1, "chars", ...), ``meaning``
    (one line), ``needs`` (keys of :data:`NEEDS`), ``level`` (a key of :data:`LEVELS`)."""

    name: str
    group: str
    unit: str
    meaning: str
    needs: tuple[str, ...] = ()
    level: str = "response"


FEATURES: dict[str, Feature] = {}


def feature(name: str, group: str, unit: str, meaning: str, *, needs: tuple[str, ...] = (),
            level: str = "response") -> str:
    """Register a feature and return its name (the key its value goes under)."""
    if group not in GROUPS:
        raise ValueError(f"feature {name}: unknown group {group!r}; known: {', '.join(GROUPS)}")
    if level not in LEVELS:
        raise ValueError(f"feature {name}: unknown level {level!r}; known: {', '.join(LEVELS)}")
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise ValueError(f"feature {name}: unknown needs {unknown}; known: {', '.join(NEEDS)}")
    f = Feature(name, group, unit, meaning, tuple(needs), level)
    old = FEATURES.get(name)
    if old is not None and old != f:
        raise ValueError(f"feature {name} is registered twice, differently: {old} and {f}")
    FEATURES[name] = f
    return name


def check_values(values: dict[str, float], level: str) -> dict[str, float]:
    """``values`` unchanged when every key is a registered feature of ``level``."""
    for k in values:
        f = FEATURES.get(k)
        if f is None:
            raise KeyError(f"{k!r} is not a registered feature")
        if f.level != level:
            raise KeyError(f"{k!r} is a {f.level} feature, not a {level} one")
    return values


def features_of(*, level: str | None = None, group: str | None = None) -> list[Feature]:
    """Registered features in registration order, optionally of one level and group."""
    return [f for f in FEATURES.values() if (level is None or f.level == level) and (group is None or f.group == group)]


def docs_table() -> str:
    """The registry as Markdown: one table per level, grouped."""
    out = ["# Implicit-feedback features", "",
           "Written from the feature registry (`ifllm_lab/features/registry.py`) by "
           "`ifllm-lab features --docs docs/features.md`; do not edit by hand.", "",
           "A feature whose data a session lacks is left empty (NaN), never zero, and the "
           "extractor says why.", "", "What the *needs* column means:", ""]
    out += [f"- `{k}`: {v}" for k, v in NEEDS.items()]
    for level, what in LEVELS.items():
        out += ["", f"## {level.capitalize()} features ({what})", "",
                "| name | group | unit | meaning | needs |", "|---|---|---|---|---|"]
        for f in features_of(level=level):
            needs = ", ".join(f"`{n}`" for n in f.needs) or "-"
            out.append(f"| `{f.name}` | {f.group} | {f.unit} | {f.meaning.replace('|', '/')} | {needs} |")
    return "\n".join(out) + "\n"
