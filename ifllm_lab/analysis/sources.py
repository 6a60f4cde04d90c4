"""Where a session was recorded, and what analysis does differently for it.

Every session file names its source in ``meta.source``: ``"ifllm-lab"`` for the sessions
this app records. Analysis treats all sessions alike except in two places that depend on
how a session was recorded:

* **Text layout.** This app records every box (the ``layout`` stream); a session imported
  from elsewhere may carry none, and its importer knows how to rebuild it from what that
  source did record (:meth:`~ifllm_lab.analysis.aoi.LayoutTimeline.for_session`).
* **Event detection defaults.** The detectors' defaults suit this app's webcam gaze;
  another tracker may need others (:func:`~ifllm_lab.analysis.events.detect`).

An importer declares both for its sessions by registering a :class:`SessionSource` when
its package is imported (``import ifllm_lab.importers.ifllm`` registers the IFLLM
release). Analysis never imports an importer itself: whatever opens imported sessions for
analysis (the replay window, a command, a test) imports the importer's package first.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["RECORDED", "SessionSource", "is_foreign", "missing_hint", "register", "registered", "source_of"]

RECORDED = "ifllm-lab"  #: ``meta.source`` of the sessions this app records


@dataclass(frozen=True)
class SessionSource:
    """What analysis needs to know of the sessions of one source.

    Attributes:
        name: their ``meta.source``.
        label: how detector descriptions name the source's defaults
            (``"...; <label> defaults"``).
        streams: streams that only this source's sessions have: a file holding one of them
            is taken to come from this source whatever its ``meta.source`` says.
        reconstruct_layout: ``f(reader, **options) -> LayoutTimeline`` that rebuilds the
            text layout of a session that has no ``layout`` stream rows; None if the
            source cannot.
        detector_defaults: per detector name (``"idt"``, ``"ivt"``), parameters that
            :func:`~ifllm_lab.analysis.events.detect` uses unless the caller gives them.
    """

    name: str
    label: str = ""
    streams: tuple[str, ...] = ()
    reconstruct_layout: Callable | None = None
    detector_defaults: Mapping[str, Mapping] = field(default_factory=dict)


_SOURCES: dict[str, SessionSource] = {}


def register(source: SessionSource) -> SessionSource:
    """Register (or replace) how analysis treats the sessions of ``source.name``."""
    if not source.name or source.name == RECORDED:
        raise ValueError(f"cannot register a session source named {source.name!r}")
    _SOURCES[source.name] = source
    return source


def registered() -> Mapping[str, SessionSource]:
    """Every registered source by name (read-only)."""
    return MappingProxyType(_SOURCES)


def source_of(reader) -> SessionSource | None:
    """The registered source of a session: by its ``meta.source``, else by a stream only
    that source has; None for this app's own sessions and unknown sources."""
    name = reader.meta.source
    if name in _SOURCES:
        return _SOURCES[name]
    for source in _SOURCES.values():
        if any(s in reader for s in source.streams):
            return source
    return None


def is_foreign(reader) -> bool:
    """True when the session was not recorded by this app (whether or not its source is
    registered)."""
    return reader.meta.source not in (RECORDED, "")


def missing_hint(reader) -> str:
    """What to do about a session whose source is not registered, for error messages."""
    if not is_foreign(reader):
        return "it was recorded by this app, whose layout stream is the only geometry it has"
    return (f"sessions from {reader.meta.source!r} are analysed with the help of their importer: import its "
            "package (under ifllm_lab.importers) before opening them")
