"""Where the app's bundled files are: ``resources/``, ``calibration/`` and ``studies/``
beside the package (a source checkout or an editable install) or inside a PyInstaller
bundle (``sys._MEIPASS``)."""
from __future__ import annotations

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
