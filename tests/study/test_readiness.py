"""A study is checked for everything its session will need before a participant sits down:
patterns, the data folder (made, writable, room), the consent text, questionnaire items."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ifllm_lab.config import config_from_dict
from ifllm_lab.study.readiness import check_study

from tests.support.small_disk import small_disk


def _cfg(tmp_path: Path, study: dict | None = None, calibration: dict | None = None, source: str | None = None):
    data = {"study": {"data_folder": str(tmp_path / "data"), **(study or {})}, "calibration": calibration or {}}
    cfg = config_from_dict(data, "<test>")
    if source:
        cfg.source = source
    return cfg


def _keys(readiness) -> list[str]:
    return [p.key for p in readiness.problems]


def test_the_embedded_defaults_are_ready(tmp_path):
    r = check_study(_cfg(tmp_path))
    assert r.ok, r.summary()
    assert set(r.patterns) == {"pattern", "validation", "drift"} and r.patterns["pattern"].name == "9-point"
    assert "consent" in r.consent_source and len(r.consent_text) > 100
    assert not (tmp_path / "data").exists()  # checking made nothing that stays


def test_an_unknown_or_broken_pattern_is_named_with_its_setting(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    r = check_study(_cfg(tmp_path, calibration={"pattern": "7-point", "drift": str(broken)}))
    assert _keys(r) == ["calibration.pattern", "calibration.drift"]
    assert "7-point" in str(r.problems[0]) and "9-point" in str(r.problems[0])  # lists the known ones
    assert "not valid JSON" in str(r.problems[1])


def test_pattern_and_consent_paths_are_relative_to_the_study_file(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "mine.json").write_text(json.dumps({"name": "mine", "kind": "points", "purpose": "calibration",
                                                  "points": [[0.5, 0.5], [0.1, 0.1], [0.9, 0.9]],
                                                  "dwell_s": 1.0}))
    (folder / "consent.md").write_text("# Consent\n\nYou agree.\n", encoding="utf-8")
    toml = folder / "study.toml"
    toml.write_text("")
    r = check_study(_cfg(tmp_path, {"consent_file": "consent.md"}, {"pattern": "mine.json"}, source=str(toml)))
    assert r.ok, r.summary()
    assert r.patterns["pattern"].name == "mine" and r.consent_text.startswith("# Consent")


@pytest.mark.parametrize("where", ["proc", "file", "under-file"])
def test_a_data_folder_that_cannot_hold_sessions_is_named(tmp_path, where):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    folder = {"proc": "/proc/nope", "file": str(a_file), "under-file": str(a_file / "data")}[where]
    r = check_study(_cfg(tmp_path, {"data_folder": folder}))
    assert _keys(r) == ["study.data_folder"], r.summary()
    assert folder in str(r.problems[0]) or str(a_file) in str(r.problems[0])
    assert a_file.read_text() == "x"


def test_a_data_folder_with_no_room_for_a_session(tmp_path):
    with small_disk(tmp_path, "2m") as mnt:
        r = check_study(_cfg(tmp_path, {"data_folder": str(mnt / "data")}))
        assert _keys(r) == ["study.data_folder"]
        assert "MB free" in str(r.problems[0]) and "500 MB" in str(r.problems[0])
        assert os.listdir(mnt) == []  # the folders made to try it are gone again
        assert check_study(_cfg(tmp_path, {"data_folder": str(mnt / "data")}), min_free_mb=1).ok


def test_a_read_only_data_folder(tmp_path):
    with small_disk(tmp_path, "4m") as mnt:
        import subprocess

        (mnt / "study").mkdir()  # the study's folder exists, the disk is read-only
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        r = check_study(_cfg(tmp_path, {"data_folder": str(mnt)}), min_free_mb=1)
        assert _keys(r) == ["study.data_folder"]
        assert "is not writable: Read-only file system" in str(r.problems[0])
        r = check_study(_cfg(tmp_path, {"data_folder": str(mnt / "new")}), min_free_mb=1)
        assert "cannot be made: Read-only file system" in str(r.problems[0])


@pytest.mark.parametrize("content", [None, b"", b"\xff\xfe\x00bad", "folder"])
def test_a_consent_text_that_cannot_be_shown(tmp_path, content):
    p = tmp_path / "consent.md"
    if content == "folder":
        p.mkdir()
    elif content is not None:
        p.write_bytes(content)
    r = check_study(_cfg(tmp_path, {"consent_file": str(p)}))
    assert _keys(r) == ["study.consent_file"] and str(p) in str(r.problems[0])


def test_an_empty_questionnaire_item(tmp_path):
    r = check_study(_cfg(tmp_path, {"questionnaire": ["How was it? (1-5)", "  "]}))
    assert _keys(r) == ["study.questionnaire[1]"]
