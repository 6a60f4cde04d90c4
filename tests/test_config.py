"""Study files: defaults, TOML and JSON, and clear errors naming file and key."""
from __future__ import annotations

import json

import pytest

from ifllm_lab.config import ConfigError, load_config


def test_defaults_run_the_embedded_setup():
    cfg = load_config(None)
    assert cfg.study.mode == "pairwise" and cfg.study.keep_video is False
    assert cfg.camera.source == "0" and cfg.calibration.pattern == "9-point"
    assert len(cfg.llm) == 1 and cfg.llm[0].backend == "llama" and cfg.llm[0].model_path == ""
    assert cfg.screen.viewing_distance_mm == 600.0


def test_toml_study(tmp_path):
    f = tmp_path / "pilot.toml"
    f.write_text('''
[study]
name = "pilot"
mode = "mixed"
questions = 3
data_folder = "~/data"

[screen]
width_mm = 300
height_mm = 200
viewing_distance_mm = 650

[camera]
source = 2

[calibration]
pattern = "13-point"
max_mean_deg = 1.2

[[llm]]
name = "a"
temperature = 0.2
seed = 7

[[llm]]
name = "b"
backend = "openai"
base_url = "http://127.0.0.1:8080"
model = "x"
''', encoding="utf-8")
    cfg = load_config(f)
    assert cfg.study.mode == "mixed" and cfg.study.questions == 3
    assert cfg.screen.width_mm == 300.0 and isinstance(cfg.screen.width_mm, float)
    assert cfg.camera.source == "2"
    assert cfg.calibration.pattern == "13-point" and cfg.calibration.max_mean_deg == 1.2
    assert [m.name for m in cfg.llm] == ["a", "b"] and cfg.llm[0].seed == 7 and cfg.llm[1].backend == "openai"
    assert str(cfg.data_folder).endswith("data") and "~" not in str(cfg.data_folder)
    assert cfg.to_dict()["llm"][1]["model"] == "x"


def test_json_study(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"study": {"mode": "pointwise"}, "llm": {"name": "only"}}), encoding="utf-8")
    cfg = load_config(f)
    assert cfg.study.mode == "pointwise" and cfg.llm[0].name == "only"


@pytest.mark.parametrize("text, words", [
    ('[study]\nmode = "both"', ["study.mode", "pointwise"]),
    ('[study]\nquestons = 3', ["unknown setting", "questons"]),
    ('[screen]\nwidth_mm = "wide"', ["screen.width_mm", "number"]),
    ('[screen]\nviewing_distance_mm = 0', ["viewing_distance_mm", "positive"]),
    ('[calibration]\nmax_mean_deg = 3\nmax_point_deg = 2', ["max_mean_deg"]),
    ('[[llm]]\nbackend = "openai"', ["base_url"]),
    ('[[llm]]\nname = "x"\n[[llm]]\nname = "x"', ["names must differ"]),
    ('[extras]\na = 1', ["unknown section", "extras"]),
    ('[study\nmode = 1', ["not valid TOML"]),
])
def test_bad_files_say_where_and_why(tmp_path, text, words):
    f = tmp_path / "bad.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    msg = str(err.value)
    assert str(f) in msg
    for w in words:
        assert w in msg


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
