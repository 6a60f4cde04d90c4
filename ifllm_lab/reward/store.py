"""Reward-model folders: plain files a lab can read, share and check.

``DIR/model.json``
    the format, what the model is (task, estimator kind, feature set, the design's
    columns, the answer models it knows, the calibration), the versions it was made with,
    the training data's fingerprint and size and whose data it was (``participant_ids``,
    ``session_ids``: a participant's erasure finds the models to rebuild by them), the
    quality rule and who it dropped, and the metrics of its evaluation. ``STALE.json``
    beside it: data it was built from has since been deleted (rebuild it).
``DIR/estimator.skops``
    the fitted scikit-learn estimator in skops' format, which loads only the types it is
    allowed to (scikit-learn and numpy ones here), never arbitrary pickled code.
``DIR/embedding.npz``
    the answer-embedding projection, when the model uses embeddings.

A folder is written beside its final name and moved into place when complete.
"""
from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time

import numpy as np

from ..paths import install_folder
from .model import KINDS, ModelError, RewardModel

__all__ = ["FORMAT", "save_model", "load_model", "read_info", "list_models", "ModelFileError"]

FORMAT = 1  #: the model folder format this version writes and the newest it reads
_ALLOWED = ("sklearn.", "numpy.", "builtins.", "scipy.")


class ModelFileError(ModelError):
    """A model folder that cannot be used (missing, damaged, from a newer version)."""


def _versions() -> dict[str, str]:
    import sklearn
    import skops

    from .. import __version__

    return {"ifllm_lab": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "scikit_learn": sklearn.__version__, "skops": skops.__version__}


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        return _clean(v.item())
    return v


def save_model(model: RewardModel, folder: str, *, data: dict | None = None, metrics: dict | None = None,
               extra: dict | None = None) -> str:
    """Write ``model`` (fitted) to ``folder`` (replacing a model folder there)."""
    import skops.io as sio

    if model.estimator is None:
        raise ModelError("the model is not trained")
    folder = os.path.abspath(folder)
    tmp = f"{folder}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    info = {
        "format": FORMAT, "what": "IFLLM Lab reward model", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "task": model.task, "kind": model.kind, "feature_set": model.feature_set, "seed": model.seed,
        "columns": model.columns, "llms": model.llms, "design_columns": model.design_columns,
        "platt": list(model.platt), "medians": [float(x) for x in model.medians], "chosen": model.chosen,
        "embedding": None if model.emb_axes is None else {"dims": int(len(model.emb_axes)),
                                                          **((extra or {}).get("embedding") or {})},
        "versions": _versions(), "data": data or {}, "metrics": metrics or {},
        **{k: v for k, v in (extra or {}).items() if k != "embedding"},
    }
    try:
        os.makedirs(tmp)
        sio.dump(model.estimator, os.path.join(tmp, "estimator.skops"))
        if model.emb_axes is not None:
            np.savez(os.path.join(tmp, "embedding.npz"), mean=model.emb_mean, axes=model.emb_axes)
        with open(os.path.join(tmp, "model.json"), "w", encoding="utf-8") as fh:
            json.dump(_clean(info), fh, indent=1, ensure_ascii=False)
        if os.path.exists(folder) and not os.path.isfile(os.path.join(folder, "model.json")) and os.listdir(folder):
            raise ModelFileError(f"{folder} exists and is not a reward model folder; choose another name")
        install_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_info(folder: str) -> dict:
    """``model.json`` of a model folder, checked for its format."""
    path = os.path.join(folder, "model.json")
    if not os.path.isdir(folder):
        raise ModelFileError(f"{folder} is a file, not a reward model folder" if os.path.exists(folder)
                             else f"{folder}: no such reward model folder")
    try:
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
    except FileNotFoundError:
        raise ModelFileError(f"{folder} is not a reward model folder (no model.json in it)") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} cannot be read: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("format"), int):
        raise ModelFileError(f"{path} is not a reward model description (no format number)")
    if info["format"] > FORMAT:
        made = (info.get("versions") or {}).get("ifllm_lab", "a newer version")
        raise ModelFileError(f"{folder} was written by IFLLM Lab {made} in model format {info['format']}; this "
                             f"version reads format {FORMAT} and older: update IFLLM Lab to use it")
    return info


def load_model(folder: str) -> tuple[RewardModel, dict]:
    """(the model, its ``model.json``)."""
    import skops.io as sio

    info = read_info(folder)
    try:
        model = RewardModel(info["task"], info["kind"], info["feature_set"], seed=int(info.get("seed", 0)),
                            columns=list(info["columns"]), llms=list(info.get("llms", [])),
                            platt=tuple(info.get("platt", (1.0, 0.0))), chosen=dict(info.get("chosen") or {}),
                            medians=np.array(info["medians"], dtype=np.float64))
    except (KeyError, TypeError, ValueError, ModelError) as exc:
        raise ModelFileError(f"{folder}/model.json is damaged or unknown: {exc}") from None
    est_path = os.path.join(folder, "estimator.skops")
    try:
        untrusted = sio.get_untrusted_types(file=est_path)
        bad = [t for t in untrusted if not t.startswith(_ALLOWED)]
        if bad:
            raise ModelFileError(f"{est_path} holds types a reward model never has ({', '.join(bad[:3])}); "
                                 "it was not loaded")
        model.estimator = sio.load(est_path, trusted=untrusted)
    except ModelFileError:
        raise
    except FileNotFoundError:
        raise ModelFileError(f"{folder}: estimator.skops is missing") from None
    except Exception as exc:  # a damaged or foreign file: skops raises many kinds
        raise ModelFileError(f"{est_path} cannot be loaded: {type(exc).__name__}: {exc}") from None
    if info.get("embedding"):
        try:
            with np.load(os.path.join(folder, "embedding.npz")) as z:
                model.emb_mean, model.emb_axes = z["mean"], z["axes"]
        except (OSError, KeyError, ValueError) as exc:
            raise ModelFileError(f"{folder}: embedding.npz cannot be read: {exc}") from None
    if model.design_columns != info.get("design_columns", model.design_columns):
        raise ModelFileError(f"{folder}/model.json: its column list does not match the model")
    if model.kind not in KINDS:
        raise ModelFileError(f"{folder}: unknown model kind {model.kind!r}")
    return model, info


def list_models(folder: str) -> list[tuple[str, dict | str]]:
    """Every model folder directly in ``folder``: (path, its info, or why it cannot be read)."""
    out = []
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return out
    for n in names:
        p = os.path.join(folder, n)
        if os.path.isdir(p) and ".partial-" not in n and ".old-" not in n \
                and os.path.isfile(os.path.join(p, "model.json")):
            try:
                out.append((p, read_info(p)))
            except ModelFileError as exc:
                out.append((p, str(exc)))
    return out
