"""Every command of the CLI against a shared set of hostile inputs and output places.

Each case must end with the documented exit status (2: bad input or an output place that
cannot be used; 1: a failure while working, such as a full disk), exactly one line on
stderr that names the path and the problem, no traceback, and nothing left behind at
the output place. A new command joins the tables below (a test fails until it does).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from ifllm_lab.cli import build_parser, main
from ifllm_lab.session import SessionMeta, SessionWriter
from ifllm_lab.session.store import SessionStore
from ifllm_lab.study.participant import pseudonym, pseudonym_key
from ifllm_lab.synthetic.session import make_study_session

from tests.support.child_process import child_env
from tests.support.small_disk import small_disk

# -- hostile inputs -------------------------------------------------------------------------
INPUTS = ("missing", "empty", "folder", "random", "foreign_hdf5", "truncated")


def _session(path: Path, *, complete: bool = True) -> Path:
    w = SessionWriter(path, SessionMeta(participant="P-HOSTILE", study="cli", screen_width_px=1280,
                                        screen_height_px=720), flush_interval=0.05)
    t = np.arange(0, 4, 1 / 30)
    w.put_rows("gaze", {"t": t, "x": 640 + 200 * np.sin(t), "y": 360 + 100 * np.cos(t),
                        "valid": np.ones(len(t), "u1")})
    w.put_rows("mouse", {"t": t, "x": 600 + t, "y": 300 + t})
    w.close(complete=complete)
    return path


def _interrupted(folder: Path) -> Path:
    """A session as a killed recorder leaves it: a copy taken while it was being written."""
    live = folder / "live.h5"
    st = SessionStore(live, SessionMeta(participant="P-CRASH"), swmr=True)
    st.append("mouse", {"t": np.arange(200) / 100.0})
    st.flush()
    shutil.copyfile(live, folder / "interrupted.h5")
    st.close()
    live.unlink()
    return folder / "interrupted.h5"


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    good = _session(d / "good.h5")
    (d / "empty.h5").write_bytes(b"")
    (d / "folder.h5").mkdir()
    (d / "random.h5").write_bytes(np.random.default_rng(3).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    with h5py.File(d / "foreign_hdf5.h5", "w") as f:
        f["data"] = np.arange(10)
    data = good.read_bytes()
    (d / "truncated.h5").write_bytes(data[: len(data) // 2])
    study = d / "study"  # pairwise sessions of three participants, to train a reward model on
    study.mkdir()
    for i in range(3):
        make_study_session(str(study / f"p{i}.h5"), f"P{i}", turns=4, signal=0.8, seed=i)
    rights = d / "rights"  # a data folder with a pseudonym key and one session of the code LAB-01
    (rights / "pilot").mkdir(parents=True)
    make_study_session(str(rights / "pilot" / f"{pseudonym('LAB-01', pseudonym_key(rights))}_1.h5"),
                       pseudonym("LAB-01", pseudonym_key(rights)), turns=1, seed=0)
    return {"dir": d, "good": good, "interrupted": _interrupted(d), "study": study, "rights": rights,
            **{name: d / f"{name}.h5" for name in INPUTS}}


# command -> argv for an input file and an output place (a path that does not exist yet)
INPUT_COMMANDS = {
    "inspect": lambda i, o: ["inspect", i],
    "export-csv": lambda i, o: ["export", i, "--format", "csv", "--out", o],
    "export-bids": lambda i, o: ["export", i, "--format", "bids", "--out", o],
    "recover": lambda i, o: ["recover", i],
    "recover-out": lambda i, o: ["recover", i, "--out", o + ".h5"],
    "recover-close": lambda i, o: ["recover", i, "--close"],
    "replay": lambda i, o: ["replay", i],
    "replay-export": lambda i, o: ["replay", i, "--export", o + ".png"],
    "import-ifllm": lambda i, o: ["import-ifllm", i, "--out", o],
    "app": lambda i, o: ["app", "--study", i, "--check", "1"],
    "bench-replay": lambda i, o: ["bench", "replay", i],
    "bench-llm": lambda i, o: ["bench", "llm", "--model", i],
    "bench-gaze": lambda i, o: ["bench", "gaze", "--video", i],
    "bench-workbench": lambda i, o: ["bench", "workbench", i, "--files", "3"],
    "bench-dpo": lambda i, o: ["bench", "dpo", i, "--steps", "1", "--prompts", "1"],
    "bench-reward": lambda i, o: ["bench", "reward", i],
    "lab": lambda i, o: ["lab", i, "--screenshot", o + ".png"],
    "features": lambda i, o: ["features", i, "--out", o + ".csv", "--quiet"],
    "reward-train": lambda i, o: ["reward", "train", "--data", i, "--out", o, "--quiet"],
    "reward-predict": lambda i, o: ["reward", "predict", i, i, "--quiet"],
    "reward-models": lambda i, o: ["reward", "models", i],
    "dpo-export": lambda i, o: ["dpo", "export", "--sessions", i, "--out", o + ".jsonl", "--quiet"],
    "dpo-run": lambda i, o: ["dpo", "run", i, "--out", o, "--quiet"],
    "dpo-resume": lambda i, o: ["dpo", "resume", i, "--quiet"],
    "dpo-cancel": lambda i, o: ["dpo", "cancel", i],
    "dpo-eval": lambda i, o: ["dpo", "eval", i, "--quiet"],
    "dpo-export-gguf": lambda i, o: ["dpo", "export-gguf", i, "--out", o + ".gguf", "--quiet"],
    "dpo-jobs": lambda i, o: ["dpo", "jobs", i],
    "dpo-script": lambda i, o: ["dpo", "script", i],
    "participant-find": lambda i, o: ["participant", "find", "LAB-01", "--data", i],
    "participant-export": lambda i, o: ["participant", "export", "LAB-01", "--data", i, "--out", o],
    "participant-delete": lambda i, o: ["participant", "delete", "LAB-01", "--data", i, "--yes"],
}
# what is not bad input for a command: (command, input) -> exit status
NOT_HOSTILE = {
    ("recover", "folder"): 0,  # an (empty) data folder: "No interrupted sessions found."
    ("app", "empty"): None,  # an empty study file is the embedded defaults: not run here
    ("lab", "folder"): None,  # an (empty) data folder: the workbench opens on it
    # an (empty) data folder: nobody was recorded there, so nothing is found (and nothing written)
    ("participant-find", "folder"): 0,
    ("participant-export", "folder"): 0,
    ("participant-delete", "folder"): 0,
}
# commands that take no input file (their bad places are output places, below)
NO_INPUT = {"bench record", "bench analysis", "bench answers", "bench study"}


def _subcommands() -> set[str]:
    names = set()
    parser = build_parser()
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            what = [a for a in sub._actions if a.dest == "what"]
            names |= {f"{name} {c}" for c in what[0].choices} if what else {name}
    return names


def test_every_command_is_in_the_tables():
    def command_of(key: str) -> str:  # "export-csv" -> "export", "bench-llm" -> "bench llm"
        if key.startswith("bench-"):
            return "bench " + key.split("-", 1)[1]
        return max((c for c in _subcommands() if key == c or key.startswith(c + "-")), key=len, default=key)

    covered = {command_of(k) for k in [*INPUT_COMMANDS, *OUTPUT_COMMANDS]} | NO_INPUT
    assert _subcommands() - covered == set()
    assert covered <= _subcommands()  # no table entry names a command that is gone


def _run(capfd, argv: list[str]) -> tuple[int, list[str], str]:
    capfd.readouterr()
    rc = main(argv)
    out, err = capfd.readouterr()
    return rc, [ln for ln in err.splitlines() if ln.strip()], out


def _check_one_line(lines: list[str], path: str) -> None:
    assert not any("Traceback" in ln for ln in lines), lines
    assert len(lines) == 1 and lines[0].startswith("ifllm-lab: "), lines
    assert path in lines[0] or os.path.basename(path) in lines[0], lines


@pytest.mark.parametrize("kind", INPUTS)
@pytest.mark.parametrize("command", sorted(INPUT_COMMANDS))
def test_a_hostile_input_gets_one_line_and_exit_2(capfd, places, tmp_path, command, kind):
    expected = NOT_HOSTILE.get((command, kind), 2)
    if expected is None:
        pytest.skip(f"{kind} is a valid input of {command}")
    path = str(places[kind])
    out = tmp_path / "out"
    before = sorted(os.listdir(places["dir"]))
    rc, lines, _ = _run(capfd, INPUT_COMMANDS[command](path, str(out)))
    assert rc == expected, (rc, lines)
    if expected == 2:
        _check_one_line(lines, path)
    assert sorted(os.listdir(places["dir"])) == before  # the input side is untouched
    assert not list(tmp_path.glob("out*")), list(tmp_path.glob("out*"))  # no output left behind


# -- unreadable inputs: as an ordinary user (root reads everything) ----------------------------------
UNREADABLE_COMMANDS = ["inspect", "export-csv", "recover", "recover-close", "replay", "import-ifllm", "app",
                       "bench-replay", "bench-llm", "features"]


@pytest.fixture(scope="module")
def as_nobody(places):
    """(run, folder): run the CLI as the user 'nobody' on files in a folder it may enter."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the CLI as another user")
    d = Path(tempfile.mkdtemp(prefix="ifllm-unreadable-"))
    d.chmod(0o777)
    env = child_env()
    env["HOME"] = str(d)

    def run(argv):
        return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                               sys.executable, "-m", "ifllm_lab", *argv], capture_output=True, text=True,
                              env=env, cwd=str(d), timeout=120)

    probe = run(["--version"])
    if probe.returncode != 0:
        shutil.rmtree(d)
        pytest.skip(f"the user 'nobody' cannot run the app from this checkout: {probe.stderr.strip()[-200:]}")
    shutil.copyfile(places["good"], d / "unreadable.h5")
    (d / "unreadable.h5").chmod(0)
    (d / "locked").mkdir()
    shutil.copyfile(places["interrupted"], d / "locked" / "interrupted.h5")
    (d / "locked").chmod(0)
    yield run, d
    (d / "locked").chmod(0o755)
    shutil.rmtree(d)


@pytest.mark.parametrize("command", UNREADABLE_COMMANDS)
def test_an_unreadable_file_gets_one_line_and_exit_2(as_nobody, command):
    run, d = as_nobody
    path = str(d / "unreadable.h5")
    p = run(INPUT_COMMANDS[command](path, str(d / "out")))
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2, (p.returncode, lines)
    _check_one_line(lines, path)
    assert "permission" in lines[0]
    assert not (d / "out").exists() and not (d / "out.h5").exists()


@pytest.mark.parametrize("argv", [["recover", "{d}/locked"], ["inspect", "{d}/locked/interrupted.h5"],
                                  ["import-ifllm", "{d}/locked", "--out", "{d}/out"]])
def test_an_unreadable_folder_gets_one_line_and_exit_2(as_nobody, argv):
    run, d = as_nobody
    p = run([a.format(d=d) for a in argv])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2, (p.returncode, lines)
    _check_one_line(lines, str(d / "locked") if "interrupted" not in argv[1] else argv[1].format(d=d))
    assert "No interrupted sessions" not in p.stdout and not (d / "out").exists()


# -- output places that cannot be used ------------------------------------------------------------
OUTPUT_COMMANDS = {
    "export-csv": lambda p, o: ["export", p["good"], "--format", "csv", "--out", o],
    "export-bids": lambda p, o: ["export", p["good"], "--format", "bids", "--out", o],
    "recover-out": lambda p, o: ["recover", p["interrupted"], "--out", o + ".h5"],
    "replay-export": lambda p, o: ["replay", p["good"], "--export", o + ".png", "--at", "1"],
    "bench-record": lambda p, o: ["bench", "record", "--seconds", "0.3", "--flood-rows", "20000", "--folder", o],
    "import-ifllm": lambda p, o: ["import-ifllm", p["release"], "--out", o],
    "bench-analysis": lambda p, o: ["bench", "analysis", "--samples", "3000", "--snapshots", "5", "--repeats", "1",
                                    "--folder", o],
    "bench-workbench": lambda p, o: ["bench", "workbench", p["good"], "--files", "2", "--folder", o],
    "features": lambda p, o: ["features", p["good"], "--out", o + ".csv", "--quiet"],
    "reward-train": lambda p, o: ["reward", "train", "--data", p["study"], "--out", o, "--quiet", "--folds", "2",
                                  "--sets", "text,fused", "--no-paper", "--no-importance"],
    "dpo-export": lambda p, o: ["dpo", "export", "--sessions", p["study"], "--out", o + ".jsonl", "--quiet"],
    "participant-export": lambda p, o: ["participant", "export", "LAB-01", "--data", p["rights"], "--out", o],
}
FOLDER_OUTPUTS = {"export-csv", "export-bids", "bench-record", "import-ifllm", "bench-analysis",
                  "bench-workbench", "reward-train", "participant-export"}  # they take a folder


def _output(place: str, base: Path) -> tuple[str, int]:
    """(output path, expected exit status) for a kind of bad output place under ``base``."""
    if place == "missing-parent":
        return str(base / "no-such-folder" / "out"), 2
    if place == "a-file":
        (base / "a-file").write_text("keep me")
        return str(base / "a-file"), 2
    if place == "read-only":
        return str(base / "out"), 2
    return str(base / "out"), 1  # full


@pytest.mark.parametrize("place", ["missing-parent", "a-file", "read-only", "full"])
@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_an_output_place_that_cannot_be_used(capfd, places, tmp_path, command, place):
    if command == "import-ifllm" and place == "full":
        pytest.skip("a full disk during an import is tested with the importer (a whole release)")
    if place == "a-file" and command not in FOLDER_OUTPUTS:
        pytest.skip("a file name that exists is replaced or refused by the command itself")
    p = dict(places)
    p = {k: str(v) for k, v in p.items()}
    if command == "import-ifllm":
        p["release"] = str(places["dir"] / "release")
        (places["dir"] / "release").mkdir(exist_ok=True)
        (places["dir"] / "release" / "query_logs_table.csv").write_text("user_id,task_id\n")
    if place in ("read-only", "full"):
        with small_disk(tmp_path, "1m") as mnt:
            if place == "read-only":
                subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
            else:
                with open(mnt / "filler", "wb") as f:
                    try:
                        while True:
                            f.write(b"\0" * 65536)
                            f.flush()
                    except OSError:
                        pass
            before = sorted(os.listdir(mnt))
            out, status = _output(place, mnt)
            rc, lines, _ = _run(capfd, OUTPUT_COMMANDS[command](p, out))
            assert rc == status, (rc, lines)
            _check_one_line(lines, str(mnt) if command == "bench-record" and place == "read-only" else out)
            assert sorted(os.listdir(mnt)) == before  # nothing left behind
        return
    out, status = _output(place, tmp_path)
    before = sorted(os.listdir(tmp_path))
    rc, lines, _ = _run(capfd, OUTPUT_COMMANDS[command](p, out))
    assert rc == status, (rc, lines)
    _check_one_line(lines, out if place != "missing-parent" else str(Path(out).parent))
    assert sorted(os.listdir(tmp_path)) == before
    if place == "a-file":
        assert Path(out).read_text() == "keep me"
