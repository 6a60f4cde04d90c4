"""A participant's data rights on a real data folder: find lists exactly their files and the
artefacts built from them, export copies them with a summary, delete removes them and
nothing else, writes the record and marks what must be rebuilt stale; a killed deletion
finishes when run again; an unknown code finds nothing and names no one."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ifllm_lab.cli import main
from ifllm_lab.features.batch import _cache_file
from ifllm_lab.session.provenance import STALE_FILE, read_stale, stale_path
from ifllm_lab.study.participant import KEY_FILE
from ifllm_lab.study.rights import DELETION_LOG, PAUSE_ENV, PENDING_DIR

from tests.support.child_process import ChildLines, child_env, kill_child
from tests.support.participant_data import CODE, build_lab_data, cache_home

PSEUDONYM = re.compile(r"P-[A-Z2-7]{10}")


def _run(capfd, argv: list[str]) -> tuple[int, str, str]:
    capfd.readouterr()
    rc = main(argv)
    out, err = capfd.readouterr()
    return rc, out, err


def test_find_export_delete(tmp_path, capfd):
    lab = build_lab_data(tmp_path)
    data = str(lab.data)
    s1 = lab.theirs[0]
    catalog_cache = next(lab.cache.glob("catalog-*.json"))
    # what the artefacts record about whose data they hold
    info = json.loads((lab.data / ".models" / "rm" / "model.json").read_text())
    assert info["data"]["participant_ids"] == sorted([lab.pseudonym, *lab.others])
    assert len(info["data"]["session_ids"]) == 3
    src = json.loads((lab.data / ".dpo-jobs" / "tuned" / "sources.json").read_text())
    assert src["participants"] == sorted([lab.pseudonym, *lab.others]) and len(src["pairs_sha256"]) == 64
    assert json.loads((lab.theirs[0].parent.parent / "exports" / "first-csv" / "session.json").read_text())[
        "source"] == str(s1)
    with cache_home(lab.cache):
        # -- find: exactly their files, and what was built from them
        rc, out, _ = _run(capfd, ["participant", "find", CODE.upper(), "--data", data, "--json"])
        assert rc == 0
        found = json.loads(out)
        assert found["found"] and found["pseudonym"] == lab.pseudonym
        assert {f["path"] for f in found["files"]} == {str(p) for p in lab.theirs}
        kinds = {os.path.basename(f["path"]): f["kind"] for f in found["files"]}
        assert kinds[s1.name] == "session" and kinds[s1.with_suffix(".camera.avi").name] == "video"
        assert kinds[s1.with_suffix(".camera.frames.csv").name] == "frame times"
        assert sorted(k for k in kinds.values() if k in ("part", "recovered")) == ["part", "recovered"]
        assert all(f["size"] == os.path.getsize(f["path"]) for f in found["files"])
        holds = {d["path"]: d["holds"] for d in found["derived"]}
        assert holds == {**{str(p): "contains" for p in lab.mixed}, **{str(p): "may contain" for p in lab.may}}
        assert set(found["caches"]) == {str(catalog_cache), _cache_file(str(lab.cache / "features"), str(s1))}
        rc, out, _ = _run(capfd, ["participant", "find", CODE, "--data", data])
        assert "must be rebuilt" in out and "May contain their data" in out
        assert set(PSEUDONYM.findall(out)) == {lab.pseudonym}  # nobody else's pseudonym is shown

        # -- export: copies of their files, their rows of shared tables, a summary
        out_dir = tmp_path / "request"
        rc, out, err = _run(capfd, ["participant", "export", CODE, "--data", data, "--out", str(out_dir)])
        assert rc == 0, err
        for p in lab.theirs:
            copy = out_dir / "files" / p.relative_to(lab.data)
            assert copy.read_bytes() == p.read_bytes(), p
        rows = (out_dir / "rows" / "tables" / "features.csv").read_text().splitlines()
        assert len(rows) == 1 + 8 and all(lab.pseudonym in r for r in rows[1:])
        pairs = [json.loads(line) for line in (out_dir / "rows" / "pairs" / "pairs.jsonl").read_text().splitlines()]
        assert pairs and {p["participant"] for p in pairs} == {lab.pseudonym}
        summary = (out_dir / "summary.txt").read_text()
        assert "Studies: pilot, synthetic-study." in summary
        assert "started 2025-12-05" in summary and "Camera video: kept" in summary
        assert "reward model" in summary and "mouse movements and clicks" in summary
        assert set(PSEUDONYM.findall(summary)) == {lab.pseudonym}
        listing = json.loads((out_dir / "files.json").read_text())
        assert len(listing["files"]) == len(lab.theirs) + 2
        assert not any(o in (out_dir / "files.json").read_text() for o in lab.others)

        # -- delete: their files go, nothing else changes but markers, the record and caches
        before = lab.all_files()
        rc, out, err = _run(capfd, ["participant", "delete", CODE, "--data", data, "--yes"])
        assert rc == 0, err
        assert "Must be rebuilt without them (marked stale): 4" in out
        after = lab.all_files()
    feature_cache = Path(_cache_file(str(lab.cache / "features"), str(s1)))
    assert set(before) - set(after) == set(lab.theirs) | {feature_cache}
    markers = {Path(stale_path(p)) for p in lab.mixed + lab.may}
    assert set(after) - set(before) == markers | {lab.data / DELETION_LOG}
    assert {p for p in set(before) & set(after) if before[p] != after[p]} == {catalog_cache}
    assert not (lab.data / PENDING_DIR).exists()
    # folders the deletion emptied go; a study folder and a shared BIDS root stay
    assert not (lab.data / "exports" / "first-csv").exists()
    assert not (lab.data / "exports" / "bids" / ("sub-" + lab.pseudonym.replace("-", ""))).exists()
    assert (lab.data / "exports" / "bids" / "dataset_description.json").exists() and (lab.data / "pilot").is_dir()
    # the record: pseudonym, times, names and hashes, no data
    lines = (lab.data / DELETION_LOG).read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["pseudonym"] == lab.pseudonym and record["finished_utc"] >= record["started_utc"]
    assert {f["name"]: f["sha256"] for f in record["files"]} == {
        str(p.relative_to(lab.data)): before[p] for p in lab.theirs}
    assert {d["path"]: d["holds"] for d in record["marked_stale"]} == {
        **{str(p.relative_to(lab.data)): "contains" for p in lab.mixed},
        **{str(p.relative_to(lab.data)): "may contain" for p in lab.may}}
    assert "question 1" not in lines[0] and not any(o in lines[0] for o in lab.others)
    # the markers say why and point at the record, without naming anyone
    for p in lab.mixed:
        m = read_stale(p)
        assert m["deletions"][0]["record"] == record["record"] and m["deletions"][0]["holds"] == "contains"
        assert lab.pseudonym not in Path(stale_path(p)).read_text()
    assert (lab.data / ".models" / "rm" / STALE_FILE).is_file()
    assert read_stale(lab.data / ".models" / "rm-elsewhere") is None
    # the catalog cache keeps the others' rows only
    rows = json.loads(catalog_cache.read_text())["rows"]
    assert rows and not any(r["participant"] == lab.pseudonym for r in rows)
    # the listings show the stale marker
    rc, out, _ = _run(capfd, ["reward", "models", str(lab.data / ".models")])
    marked = {line.split()[0]: "stale:" in line for line in out.splitlines()}
    assert marked == {str(lab.data / ".models" / n): n != "rm-elsewhere" for n in ("rm", "rm-elsewhere", "rm-old")}
    rc, out, _ = _run(capfd, ["dpo", "jobs", str(lab.data / ".dpo-jobs")])
    assert len(out.splitlines()) == 2 and all("stale:" in line for line in out.splitlines())
    # none of their files is left; what still holds their rows until it is rebuilt says so, marked stale
    with cache_home(lab.cache):
        rc, out, _ = _run(capfd, ["participant", "find", CODE, "--data", data])
    assert rc == 0 and "Their files: none left." in out
    listed = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(listed) == len(lab.mixed) + len(lab.may) and all(line.endswith("[stale]") for line in listed)


def test_an_unknown_code_finds_nothing_and_names_no_one(tmp_path, capfd):
    lab = build_lab_data(tmp_path, artefacts=False)
    data = str(lab.data)
    before = lab.all_files()
    with cache_home(lab.cache):
        for code in ("lab-99", "LAB 7", "P-" + lab.pseudonym[2:]):
            for argv in (["find", code], ["find", code, "--json"], ["export", code, "--out", str(tmp_path / "x")],
                         ["delete", code, "--yes"]):
                rc, out, err = _run(capfd, ["participant", *argv, "--data", data])
                assert rc == 0, err
                assert "Nothing found" in out or json.loads(out) == {"folder": data, "found": False}
                assert not PSEUDONYM.search(out + err.replace(code, "")), (argv, out, err)
        # a code that cannot be one: one line, no pseudonym
        rc, out, err = _run(capfd, ["participant", "find", "../etc", "--data", data])
        assert rc == 2 and err.startswith("ifllm-lab: ") and not PSEUDONYM.search(out + err)
    assert lab.all_files() == before and not (tmp_path / "x").exists()
    # a folder where nobody was recorded has no key: nothing is found, and no key is made
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, out, _ = _run(capfd, ["participant", "find", CODE, "--data", str(empty)])
    assert rc == 0 and "Nothing found" in out and not (empty / KEY_FILE).exists()


@pytest.mark.parametrize("pause", ["first", "last"])
def test_a_killed_deletion_finishes_when_run_again(tmp_path, capfd, pause):
    """Killed (SIGKILL) after the first file, or after the last one but before the record:
    the journal stays, nothing is reported done, and running it again finishes."""
    lab = build_lab_data(tmp_path, artefacts=False)
    before = lab.all_files()
    env = child_env()
    env["XDG_CACHE_HOME"] = str(lab.cache.parent)
    env[PAUSE_ENV] = "1" if pause == "first" else str(len(lab.theirs))
    proc = subprocess.Popen([sys.executable, "-m", "ifllm_lab", "participant", "delete", CODE, "--data",
                             str(lab.data), "--yes"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        ChildLines(proc.stderr).wait_for("deletion paused", timeout=300)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        kill_child(proc)
    left = [p for p in lab.theirs if p.exists()]
    assert len(left) == (len(lab.theirs) - 1 if pause == "first" else 0)
    assert not (lab.data / DELETION_LOG).exists()  # not reported done
    journal = json.loads((lab.data / PENDING_DIR / f"{lab.pseudonym}.json").read_text())
    assert {e["path"] for e in journal["files"]} == {str(p) for p in lab.theirs}

    with cache_home(lab.cache):
        rc, out, _ = _run(capfd, ["participant", "find", CODE, "--data", str(lab.data)])
        assert rc == 0 and "interrupted deletion of this participant is pending" in out
        rc, out, err = _run(capfd, ["participant", "delete", CODE, "--data", str(lab.data), "--yes"])
    assert rc == 0, err
    assert out.splitlines()[-4].startswith("Finished the interrupted deletion") or \
        "Finished the interrupted deletion" in out
    assert not any(p.exists() for p in lab.theirs) and not (lab.data / PENDING_DIR).exists()
    records = [json.loads(line) for line in (lab.data / DELETION_LOG).read_text().splitlines()]
    assert len(records) == 1 and records[0]["record"] == journal["record"]
    # every file is in the record with the hash it had before the first attempt
    assert {f["name"]: f["sha256"] for f in records[0]["files"]} == {
        str(p.relative_to(lab.data)): before[p] for p in lab.theirs}
    # the others' sessions are untouched
    after = lab.all_files()
    assert all(after[p] == h for p, h in before.items() if p in after and p.parent.name == "pilot")
    assert {p for p in before if p not in after and p.parent.name == "pilot"} == {
        p for p in lab.theirs if p.parent.name == "pilot"}


def test_a_pairs_dataset_records_whose_pairs_it_holds(tmp_path, capfd):
    """A Hugging Face dataset folder cannot be read without the training libraries: the
    participants of its pairs are written beside its files, and find reads them."""
    pytest.importorskip("datasets", reason="the dpo extra is not installed")
    from ifllm_lab.dpo.pairs import HF_SOURCES_FILE, make_pairs, write_hf

    lab = build_lab_data(tmp_path, artefacts=False)
    sessions = sorted(str(p) for p in (lab.data / "pilot").glob("*.h5") if "2025120" in p.name)
    rep = make_pairs(sessions, all_participants=True, cache_dir=str(lab.cache), workers=1)
    folder = write_hf(rep.pairs, str(lab.data / "pairs-hf"))
    assert json.loads((Path(folder) / HF_SOURCES_FILE).read_text())["participants"] == sorted(
        {p.participant for p in rep.pairs})
    with cache_home(lab.cache):
        rc, out, _ = _run(capfd, ["participant", "find", CODE, "--data", str(lab.data), "--json"])
    derived = {d["path"]: (d["kind"], d["holds"]) for d in json.loads(out)["derived"]}
    assert derived == {folder: ("pairs dataset", "contains")}
