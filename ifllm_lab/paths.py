"""Where the app's bundled files are: ``resources/``, ``calibration/`` and ``studies/``
beside the package (a source checkout or an editable install) or inside a PyInstaller
bundle (``sys._MEIPASS``)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def bundled(*parts: str) -> Path:
    """The bundled file ``parts`` (the first base that has it; else the checkout's path)."""
    bases = [Path(getattr(sys, "_MEIPASS", REPO_ROOT)), REPO_ROOT]
    for base in bases:
        p = base.joinpath(*parts)
        if p.exists():
            return p
    return REPO_ROOT.joinpath(*parts)


def default_consent_path() -> Path:
    return bundled("resources", "consent", "consent.md")


def unreadable_file(path: str | os.PathLike, what: str = "file") -> str | None:
    """Why ``path`` cannot be read as a ``what`` (one sentence naming it), or None when it can."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return f"{path}: no such file."
    if os.path.isdir(path):
        return f"{path} is a folder, not a {what}."
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        return f"{path}: no permission to read it (check its owner and mode)."
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror or exc}."
    return None
