"""llama.cpp's Hugging Face to GGUF converter, for exporting a tuned model that the study
app can chat with.

The converter (``convert_hf_to_gguf.py`` with its ``conversion`` package and ``gguf-py``,
MIT licence) is part of llama.cpp's sources, not of any wheel. :func:`fetch_converter`
takes it once from the source package of the installed ``llama-cpp-python`` on PyPI (the
same llama.cpp that runs the app's models) into the user's data folder; nothing is
fetched while a model is exported. :func:`find_converter` looks, in order, at the folder
given, ``$IFLLM_LLAMA_CPP`` (a llama.cpp checkout) and that data folder.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

__all__ = ["ConverterError", "find_converter", "fetch_converter", "converter_home", "SCRIPT"]

SCRIPT = "convert_hf_to_gguf.py"
_KEEP = (SCRIPT, "conversion/", "gguf-py/", "LICENSE")


class ConverterError(RuntimeError):
    """The converter is missing or cannot be fetched: the message says what to do."""


def _llama_cpp_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama-cpp-python")
    except PackageNotFoundError:
        raise ConverterError("llama-cpp-python is not installed, so there is no llama.cpp to match") from None


def converter_home() -> str:
    from platformdirs import user_data_dir

    return os.path.join(user_data_dir("ifllm-lab", appauthor=False), f"llama.cpp-{_llama_cpp_version()}")


def _is_converter(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, SCRIPT)) and os.path.isdir(os.path.join(folder, "gguf-py"))


def find_converter(folder: str | None = None) -> str:
    """The llama.cpp folder holding the converter; raises :class:`ConverterError` saying how
    to get one."""
    if folder:
        if _is_converter(folder):
            return os.path.abspath(folder)
        raise ConverterError(f"{folder} holds no llama.cpp converter ({SCRIPT} and gguf-py/)")
    env = os.environ.get("IFLLM_LLAMA_CPP")
    if env and _is_converter(env):
        return os.path.abspath(env)
    try:
        home = converter_home()
    except ConverterError:
        home = ""
    if home and _is_converter(home):
        return home
    raise ConverterError("llama.cpp's GGUF converter is not here yet: run 'ifllm-lab dpo get-converter' once "
                         "(it takes it from the llama-cpp-python source package on PyPI), or point "
                         "--converter or $IFLLM_LLAMA_CPP at a llama.cpp checkout")


def fetch_converter(dest: str | None = None, log=print) -> str:
    """Download the installed llama-cpp-python's source package from PyPI and keep its
    llama.cpp converter in ``dest`` (default :func:`converter_home`); returns ``dest``."""
    ver = _llama_cpp_version()
    dest = os.path.abspath(dest or converter_home())
    if _is_converter(dest):
        return dest
    tmp = tempfile.mkdtemp(prefix="ifllm-llama-cpp-")
    try:
        log(f"downloading the llama-cpp-python {ver} source package (about 75 MB) for its converter")
        p = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            "--disable-pip-version-check", f"llama-cpp-python=={ver}", "-d", tmp],
                           capture_output=True, text=True)
        archives = [f for f in os.listdir(tmp) if f.endswith(".tar.gz")]
        if p.returncode != 0 or not archives:
            raise ConverterError(f"the llama-cpp-python {ver} source package could not be downloaded: "
                                 f"{(p.stderr or p.stdout).strip()[-300:]}")
        part = dest + ".partial"
        shutil.rmtree(part, ignore_errors=True)
        with tarfile.open(os.path.join(tmp, archives[0]), "r:gz") as tar:
            for m in tar.getmembers():
                rel = m.name.split("/vendor/llama.cpp/", 1)
                if len(rel) == 2 and rel[1].startswith(_KEEP) and (m.isfile() or m.isdir()):
                    m.name = rel[1]
                    tar.extract(m, part, filter="data")
        if not _is_converter(part):
            raise ConverterError(f"the llama-cpp-python {ver} source package holds no {SCRIPT}")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(part, dest)
        return dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
