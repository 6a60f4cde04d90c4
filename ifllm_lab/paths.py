"""Where the app's bundled files are: one folder of package data, ``ifllm_lab/data/``.

It holds the face model (``models/face_landmarker.task`` and its ``NOTICE``), the default
consent text (``consent/``), the calibration and validation patterns (``calibration/``),
the example studies (``studies/``) and the face photo of the synthetic videos
(``synthetic/``). :func:`data_file` finds any file in it, wherever the app runs:

* a source checkout or an editable install: the checkout's ``ifllm_lab/data/`` (the
  top-level ``resources/models``, ``resources/consent``, ``calibration`` and ``studies``
  are links into it, for people browsing the repository; the app never reads them);
* an installed wheel: the installed package's ``data/`` (package data);
* a PyInstaller bundle: ``ifllm_lab/data/`` under ``sys._MEIPASS`` (the spec collects it
  with ``collect_data_files("ifllm_lab")``).
"""
from __future__ import annotations

import os
import sys
from importlib.resources import files
from pathlib import Path

#: The package data folder's name inside the ``ifllm_lab`` package.
DATA_FOLDER = "data"


def data_dir() -> Path:
    """The package data folder (``ifllm_lab/data/``) of this installation or bundle."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        bundled = Path(frozen) / "ifllm_lab" / DATA_FOLDER
        if bundled.is_dir():
            return bundled
    package = files("ifllm_lab")
    if isinstance(package, Path):  # a package on the file system (always, unless zipped)
        return package / DATA_FOLDER
    return Path(__file__).resolve().parent / DATA_FOLDER


def data_file(*parts: str) -> Path:
    """The bundled file or folder ``parts`` under :func:`data_dir`, e.g.
    ``data_file("models", "face_landmarker.task")``. The path is returned whether or not
    it exists, so that an error can name where it was expected."""
    return data_dir().joinpath(*parts)


def default_consent_path() -> Path:
    """The bundled default consent text (Markdown)."""
    return data_file("consent", "consent.md")


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


def probe_write(folder: str | os.PathLike) -> None:
    """Make and remove a small file in ``folder``: OSError (permission, a read-only or full
    disk) when files cannot be written there."""
    import tempfile

    fd, probe = tempfile.mkstemp(prefix=".ifllm-write-check-", dir=os.fspath(folder))
    os.close(fd)
    os.remove(probe)


def install_folder(tmp: str, folder: str) -> None:
    """Move the finished folder ``tmp`` to ``folder``, replacing a folder there: the old one
    is moved aside first and removed after, so ``folder`` is never half of either."""
    old = None
    if os.path.exists(folder):
        old = f"{folder}.old-{os.getpid()}"
        os.replace(folder, old)
    os.replace(tmp, folder)
    if old:
        import shutil

        shutil.rmtree(old, ignore_errors=True)


def fsync_path(path: str | os.PathLike, *, directory: bool = False) -> None:
    """Flush a file, or a folder's entries (``directory``: a rename or removal in it), to the
    disk; best effort: a path that cannot be opened or synced is left as it is."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike, text: str, *, sync: bool = False) -> None:
    """Write ``text`` (UTF-8) to a temporary file beside ``path`` and rename it over
    ``path``: a reader sees the old file or the new one, never half of one. ``sync``
    flushes it to the disk first. OSError when it cannot be written (nothing is left
    behind)."""
    import threading

    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
