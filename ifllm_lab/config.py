"""Typed study settings, read from a TOML or JSON file.

A study file says everything a session needs; every value has a default, so an empty
file (or none) runs the embedded defaults: the bundled small LLM, the bundled face
model, the camera at index 0, a 9-point calibration. Units are in the names (``_mm``,
``_px``, ``_deg``, ``_s``).

Example (TOML)::

    [study]
    name = "pilot"
    mode = "pairwise"          # pointwise | pairwise | mixed
    questions = 5
    data_folder = "~/ifllm-data"

    [screen]
    width_mm = 531
    height_mm = 299
    viewing_distance_mm = 600

    [camera]
    source = "0"               # a camera index, a video file or an image folder

    [calibration]
    pattern = "9-point"
    max_mean_deg = 1.5

    [[llm]]
    name = "small"
    backend = "llama"          # llama | openai
    temperature = 0.7

Errors name the file, the key and what is allowed (:class:`ConfigError`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("pointwise", "pairwise", "mixed")
ANSWER_FORMATS = ("markdown", "plain")
BACKENDS = ("llama", "openai")


class ConfigError(ValueError):
    """A study file that cannot be used; the message says where and why."""


@dataclass
class StudySettings:
    name: str = "study"
    mode: str = "pairwise"  # pointwise | pairwise | mixed
    questions: int = 5  # questions per participant
    data_folder: str = "~/ifllm-data"
    keep_video: bool = False  # raw camera video is never stored unless a study turns it on
    lsl: bool = False  # publish gaze, mouse and event markers as Lab Streaming Layer streams (pylsl)
    answers: str = "markdown"  # markdown: answers rendered as chat apps show them | plain: the text as written
    consent_file: str = ""  # Markdown/plain text; default: the bundled consent text
    monitor_model: str = ""  # a reward model folder: the live monitor shows its prediction after each turn
    instructions: str = ""
    questionnaire: list[str] = field(default_factory=lambda: [
        "How natural did the conversation feel? (1-5)",
        "How much did you trust the answers? (1-5)",
    ])


@dataclass
class ScreenSettings:
    """Physical screen geometry; px of 0 means "the screen the app runs on"."""

    width_px: int = 0
    height_px: int = 0
    width_mm: float = 531.0  # a 24" 16:9 monitor
    height_mm: float = 299.0
    viewing_distance_mm: float = 600.0


@dataclass
class CameraSettings:
    source: str = "0"  # camera index, video file or image folder
    width_px: int = 640
    height_px: int = 480
    fps: float = 30.0


@dataclass
class CalibrationSettings:
    pattern: str = "9-point"
    validation: str = "validation-9"
    drift: str = "drift-centre"
    max_mean_deg: float = 1.5  # validation passes when the mean accuracy is at most this
    max_point_deg: float = 2.5  # ... and every point is at most this
    drift_small_deg: float = 1.0  # drift below this: nothing to do
    drift_large_deg: float = 2.0  # drift at or above this: recalibrate; between: correct
    drift_check_every: int = 1  # questions between drift checks (0 = never)


@dataclass
class LLMSettings:
    name: str = "small"
    backend: str = "llama"  # llama | openai
    model_path: str = ""  # llama: a .gguf file; empty = the bundled SmolLM2-135M-Instruct
    chat_format: str = ""  # llama: empty = the model's own chat template
    base_url: str = ""  # openai: e.g. http://127.0.0.1:8080
    model: str = ""  # openai: model name on the server
    api_key_env: str = ""  # openai: name of the environment variable holding the key
    system_prompt: str = "You are a helpful assistant."
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None  # None: a new seed per answer (always recorded)
    timeout_s: float = 60.0


@dataclass
class StudyConfig:
    study: StudySettings = field(default_factory=StudySettings)
    screen: ScreenSettings = field(default_factory=ScreenSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    llm: list[LLMSettings] = field(default_factory=lambda: [LLMSettings()])
    source: str = ""  # the file it was read from

    @property
    def data_folder(self) -> Path:
        return Path(os.path.expanduser(self.study.data_folder))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_SECTIONS = {"study": StudySettings, "screen": ScreenSettings, "camera": CameraSettings,
             "calibration": CalibrationSettings}


def _convert(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a table of settings, not {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    out = {}
    defaults = cls()
    for key, value in values.items():
        default = getattr(defaults, key)
        name = f"{where}.{key}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be true or false, not {value!r}")
        elif isinstance(default, int) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be a whole number, not {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name} must be a number, not {value!r}")
            value = float(value)
        elif isinstance(default, str):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "source":
                value = str(value)  # camera index written as a number
            if not isinstance(value, str):
                raise ConfigError(f"{name} must be text, not {value!r}")
        elif isinstance(default, list):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{name} must be a list of texts")
        elif key == "seed":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{name} must be a whole number or left out")
        out[key] = value
    return cls(**out)


def _check(cfg: StudyConfig, where: str) -> None:
    s = cfg.study
    if s.mode not in MODES:
        raise ConfigError(f"{where}: study.mode must be one of {', '.join(MODES)}, not {s.mode!r}")
    if s.questions < 1:
        raise ConfigError(f"{where}: study.questions must be at least 1")
    if s.answers not in ANSWER_FORMATS:
        raise ConfigError(f"{where}: study.answers must be one of {', '.join(ANSWER_FORMATS)}, not {s.answers!r}")
    g = cfg.screen
    for key in ("width_mm", "height_mm", "viewing_distance_mm"):
        if getattr(g, key) <= 0:
            raise ConfigError(f"{where}: screen.{key} must be positive (millimetres)")
    if g.width_px < 0 or g.height_px < 0:
        raise ConfigError(f"{where}: screen px must be 0 (use the display) or positive")
    c = cfg.calibration
    if not 0 < c.max_mean_deg <= c.max_point_deg:
        raise ConfigError(f"{where}: calibration needs 0 < max_mean_deg <= max_point_deg")
    if not 0 <= c.drift_small_deg <= c.drift_large_deg:
        raise ConfigError(f"{where}: calibration needs 0 <= drift_small_deg <= drift_large_deg")
    if not cfg.llm:
        raise ConfigError(f"{where}: at least one [[llm]] is needed")
    names = [m.name for m in cfg.llm]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: [[llm]] names must differ ({', '.join(names)})")
    for m in cfg.llm:
        if m.backend not in BACKENDS:
            raise ConfigError(f"{where}: llm {m.name!r}: backend must be one of {', '.join(BACKENDS)}")
        if m.backend == "openai" and not (m.base_url and m.model):
            raise ConfigError(f"{where}: llm {m.name!r}: an openai backend needs base_url and model")
        if m.max_tokens < 1 or not 0 <= m.temperature <= 2:
            raise ConfigError(f"{where}: llm {m.name!r}: max_tokens >= 1 and 0 <= temperature <= 2")


def config_from_dict(data: dict, where: str = "<settings>") -> StudyConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a table of sections")
    unknown = sorted(set(data) - set(_SECTIONS) - {"llm"})
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)}; "
                          f"known: {', '.join(list(_SECTIONS) + ['llm'])}")
    parts = {k: _convert(cls, data.get(k, {}), f"{where}: {k}") for k, cls in _SECTIONS.items()}
    llm_data = data.get("llm", None)
    if llm_data is None:
        llms = [LLMSettings()]
    else:
        if isinstance(llm_data, dict):
            llm_data = [llm_data]
        if not isinstance(llm_data, list):
            raise ConfigError(f"{where}: llm must be a list of [[llm]] tables")
        llms = [_convert(LLMSettings, d, f"{where}: llm[{i}]") for i, d in enumerate(llm_data)]
    cfg = StudyConfig(llm=llms, source=where, **parts)
    _check(cfg, where)
    return cfg


def load_config(path: str | os.PathLike | None) -> StudyConfig:
    """Read a study file (``.toml`` or ``.json``); None gives the embedded defaults."""
    if path is None:
        return config_from_dict({}, "<defaults>")
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"study file {p} is a folder, not a .toml or .json file")
    if not p.is_file():
        raise ConfigError(f"study file {p} not found")
    try:
        text = p.read_text(encoding="utf-8")
    except PermissionError:
        raise ConfigError(f"study file {p}: no permission to read it") from None
    except UnicodeDecodeError:
        raise ConfigError(f"study file {p} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"study file {p} cannot be read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"study file {p} is not valid {'JSON' if p.suffix.lower() == '.json' else 'TOML'}: "
                          f"{exc}") from exc
    return config_from_dict(data, str(p))
