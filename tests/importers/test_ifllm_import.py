"""The IFLLM importer on the real development data, checked against the CSVs themselves."""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from ifllm_lab.importers.ifllm.release import import_release
from ifllm_lab.session import SessionReader
from ifllm_lab.session.inspect import summarize

from tests.support.release_piece import release_piece

ABS = {"abs_gaze.csv": "gaze", "abs_mouse.csv": "mouse"}
REL = {
    "rel_gaze.csv": "gaze_rel", "rel_gaze_one.csv": "gaze_rel", "rel_gaze_two.csv": "gaze_rel",
    "rel_mouse.csv": "mouse_rel", "rel_mouse_left.csv": "mouse_rel", "rel_mouse_right.csv": "mouse_rel",
}


def _distinct_lines(path: Path) -> set[str]:
    """Independent count: distinct non-empty physical lines of a behaviour file."""
    text = path.read_bytes().decode("utf-8", "replace")
    return {line.rstrip("\r") for line in text.split("\n") if line.rstrip("\r")}


def _task_folders(root: Path) -> list[tuple[str, str, Path]]:
    return [(w.name, t.name, t) for w in sorted((root / "user_behavior").iterdir()) for t in sorted(w.iterdir())]


def _queries(root: Path) -> list[dict]:
    with open(root / "query_logs_table.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_every_task_folder_imported_with_exact_distinct_counts(imported, release_root):
    report, out = imported
    by_key = {(s.worker, s.task): s for s in report.sessions}
    folders = _task_folders(release_root)
    assert len(folders) == 288
    duplicates_abs_gaze = 0
    for worker, task, folder in folders:
        session = by_key[(worker, task)]
        expected: dict[str, int] = defaultdict(int)
        for f in folder.iterdir():
            lines = _distinct_lines(f)
            expected[(ABS | REL)[f.name]] += len(lines)
            if f.name == "abs_gaze.csv":
                n_all = sum(1 for line in f.read_text(encoding="utf-8").split("\n") if line)
                duplicates_abs_gaze += n_all - len(lines)
        with SessionReader(session.path) as r:
            for stream, n in expected.items():
                assert len(r[stream]) == n, (worker, task, stream)
            assert r.complete
    assert report.totals()["files"]["abs_gaze.csv"]["duplicates"] == duplicates_abs_gaze > 500_000
    assert report.totals()["malformed_rows"] <= 1  # only the question with timestamp 0000-00-00


@pytest.mark.slow
def test_pairwise_abs_gaze_duplicates_are_the_reported_ones(imported, release_root):
    report, _ = imported
    session = next(s for s in report.sessions if s.worker == "worker_01e1127e" and s.task == "183")
    c = session.files["abs_gaze.csv"]
    # the collection site wrote each pairwise gaze row twice: exactly 2x the mouse rows
    assert c.rows == 2 * session.files["abs_mouse.csv"].rows
    assert c.duplicates == c.rows // 2 and c.written == c.rows // 2


@pytest.mark.slow
def test_inspect_succeeds_on_every_imported_file(imported):
    report, out = imported
    files = sorted(Path(out).glob("*.h5"))
    assert len(files) == len(report.sessions) == 332
    for f in files:
        s = summarize(f)
        assert s["schema"] == 1 and s["source"] == "ifllm-release"
        assert set(s["streams"]) >= {"gaze", "mouse", "turns"}
    one = summarize(Path(out) / "worker_01e1127e_task183.h5")
    assert one["streams"]["gaze"]["count"] == 1150
    assert one["streams"]["mouse"]["count"] == 1150
    assert 3.5 < one["streams"]["gaze"]["rate_hz"] < 5.0
    assert one["turns"] == 4
    assert one["duration_s"] > 260


@pytest.mark.slow
def test_turns_match_query_table(imported, release_root):
    report, out = imported
    queries = _queries(release_root)
    assert sum(s.turns for s in report.sessions) == len(queries)
    by_id = {q["query_ID"]: q for q in queries}
    seen = 0
    for s in report.sessions[:60]:
        with SessionReader(s.path) as r:
            turns = r["turns"].read()
        for row in turns:
            q = by_id[json.loads(row["settings"])["source_query_id"]]
            assert row["prompt"] == q["user_query"]
            assert row["response_1"] == q["llm_response_1"] and row["response_2"] == q["llm_response_2"]
            assert row["model_1"] == "".join(q["llm_name_1"].split())  # line breaks inside a name removed
            assert row["likert_1"] == (int(float(q["likert_1"])) if q["likert_1"] else -1)
            if q["llm_response_2"]:
                assert row["mode"] == 1
                assert row["preference"] == (int(float(q["preference"])) if q["preference"] else -1)
            else:
                assert row["mode"] == 0 and row["preference"] == -1
                assert row["vs_previous"] == (int(float(q["preference"])) if q["preference"] else -1)
            seen += 1
        assert np.all(np.diff(turns["t"]) >= 0)
    assert seen > 150


@pytest.mark.slow
def test_clock_and_timezone_offset(imported, release_root):
    report, out = imported
    offsets = {s.utc_offset_hours for s in report.sessions if s.files and s.turns}
    assert offsets == {0, 4}  # December+ tasks logged in UTC, September tasks in US Eastern daylight time
    s = next(s for s in report.sessions if s.utc_offset_hours == 4)
    folder = release_root / "user_behavior" / s.worker / s.task
    first_epoch = min(int(line.split(",")[-1]) for f in folder.iterdir()
                      for line in f.read_text(encoding="utf-8").split("\n") if line)
    with SessionReader(s.path) as r:
        assert r.meta.clock_start_unix == pytest.approx(first_epoch / 1000, abs=1e-6)
        for name in ("gaze", "mouse", "gaze_rel", "mouse_rel"):
            t = r[name].t
            assert np.all(np.diff(t) >= 0) and t[0] >= 0
        turns = r["turns"].read(columns=["t", "settings"])
        gaze_t = r["gaze"].t
    # questions fall inside the recording once the 4 h offset is removed
    local = dt.datetime.strptime(json.loads(turns["settings"][0])["query_timestamp_local"], "%Y-%m-%d %H:%M:%S")
    utc = local.replace(tzinfo=dt.timezone.utc).timestamp() - 4 * 3600
    assert turns["t"][0] == pytest.approx(utc - first_epoch / 1000, abs=1e-3)
    assert gaze_t[0] <= turns["t"][0] <= gaze_t[-1]


@pytest.mark.slow
def test_relative_rows_keep_text_and_char_index(imported, release_root):
    report, _ = imported
    s = next(s for s in report.sessions if s.worker == "worker_4e81fa4e" and s.task == "114")
    # this file has snippets with unescaped quotes and commas, e.g. line 925
    with SessionReader(s.path) as r:
        rel = r["gaze_rel"].read()
    hit = rel[(rel["page_ms"] == 107200.20000005)]
    assert len(hit) == 1
    assert hit["snippet"][0] == 'Astroworld" tour, wh'
    assert hit["char_index"][0] == 1194 and hit["x"][0] == pytest.approx(315.94)
    assert hit["valid"][0] == 1 and hit["response"][0] == 0
    outside = rel[rel["x"] == -1]
    assert len(outside) and np.all(outside["char_index"] == -1)


def _small_release(release_root: Path, dest: Path, worker: str, task: str) -> Path:
    return release_piece(release_root, dest, [worker], [task])


def test_a_model_name_broken_across_lines_is_mended_and_reported(release_root, tmp_path):
    # the release's one such row: query 456 names "deepseek-ai/\r\nDeepSeek-V3"
    root = _small_release(release_root, tmp_path / "src", "worker_998a6ee4", "87")
    report = import_release(str(root), str(tmp_path / "out"), jobs=1)
    notes = [p.reason for p in report.all_problems() if "line breaks" in p.reason]
    assert notes == ["query 456: llm_name_2 'deepseek-ai/\\r\\nDeepSeek-V3' had line breaks; stored as "
                     "'deepseek-ai/DeepSeek-V3'"]
    with SessionReader(report.sessions[0].path) as r:
        names = set(r["turns"].read()["model_2"]) | set(r["turns"].read()["model_1"])
    assert "deepseek-ai/DeepSeek-V3" in names and not any("\n" in n for n in names)


def test_malformed_rows_are_reported_and_do_not_stop_the_import(release_root, tmp_path):
    root = _small_release(release_root, tmp_path / "src", "worker_01e1127e", "183")
    folder = root / "user_behavior" / "worker_01e1127e" / "183"
    good_mouse = len(_distinct_lines(folder / "abs_mouse.csv"))
    with open(folder / "abs_mouse.csv", "a", encoding="utf-8") as fh:
        fh.write("12,not-a-number,100,1765701338575\n")
        fh.write("1,2,3\n")
    with open(folder / "rel_gaze_one.csv", "a", encoding="utf-8") as fh:
        fh.write('10,20,"broken "quote, here",7,99999.5,1,1765701600000\n')  # recoverable
        fh.write("garbage without fields\n")
    out = tmp_path / "out"
    report = import_release(str(root), str(out), jobs=1)
    problems = report.all_problems()
    files = sorted((p.file.rsplit("/", 1)[-1], p.line) for p in problems)
    n_mouse = sum(1 for line in (folder / "abs_mouse.csv").read_text().split("\n") if line)
    assert ("abs_mouse.csv", n_mouse - 1) in files and ("abs_mouse.csv", n_mouse) in files
    assert any(f == "rel_gaze_one.csv" for f, _ in files)
    assert len(problems) == 3
    with SessionReader(report.sessions[0].path) as r:
        assert len(r["mouse"]) == good_mouse
        rel = r["gaze_rel"].read()
        assert 'broken "quote, here' in set(rel["snippet"])
    # a second import into the same folder keeps the complete session; --overwrite imports it again
    path = report.sessions[0].path
    mtime = os.stat(path).st_mtime_ns
    again = import_release(str(root), str(out), jobs=1)
    assert again.sessions == [] and again.skipped == [path] and not again.not_imported
    assert os.stat(path).st_mtime_ns == mtime
    again = import_release(str(root), str(out), jobs=1, overwrite=True)
    assert [s.path for s in again.sessions] == [path] and again.skipped == []
    assert sorted(os.listdir(out)) == [os.path.basename(path)]  # no lock, no partial file left


def test_cli_import_reports_counts(release_root, tmp_path):
    root = _small_release(release_root, tmp_path / "src", "worker_01e1127e", "183")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "ifllm_lab", "import-ifllm", str(root), "--out", str(out),
                           "--json", "--jobs", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["totals"]["streams"]["gaze"] == 1150
    assert data["totals"]["duplicates_dropped"] == 1150
    proc = subprocess.run([sys.executable, "-m", "ifllm_lab", "inspect", "--json",
                           str(out / "worker_01e1127e_task183.h5")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["streams"]["gaze_rel"]["count"] == 2300


def test_not_a_release_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "ifllm_lab", "import-ifllm", str(tmp_path / "empty"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "not an IFLLM release" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.tar.xz"
    bad.write_bytes(b"\xfd7zXZ\x00 not really")
    proc = subprocess.run([sys.executable, "-m", "ifllm_lab", "import-ifllm", str(bad), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "cannot be unpacked" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------
# faults: a full disk, a killed import, output places that cannot be used
# ---------------------------------------------------------------------------------------
def _subset_archive(release_root: Path, dest: Path, workers: int = 6) -> tuple[Path, int]:
    """(a .tar.xz of the release's first ``workers`` workers, the number of sessions in it)."""
    import tarfile

    names = sorted(os.listdir(release_root / "user_behavior"))[:workers]
    root = release_piece(release_root, dest, names)
    with open(root / "query_logs_table.csv", encoding="utf-8", newline="") as fh:
        keys = {(r["user_id"], r["task_id"]) for r in csv.DictReader(fh)}
    keys |= {(w, t) for w in names for t in os.listdir(root / "user_behavior" / w)}
    archive = dest / "subset.tar.xz"
    with tarfile.open(archive, "w:xz", preset=0) as tar:
        tar.add(root, arcname="ifllm")
    shutil.rmtree(root)
    return archive, len(keys)


def _cli(args, tmpdir: Path, timeout=300):
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.run([sys.executable, "-m", "ifllm_lab", "import-ifllm", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def _all_complete(folder: Path) -> list[str]:
    names = sorted(os.listdir(folder))
    assert not [n for n in names if not n.endswith(".h5")], names  # no partial files, no lock
    for n in names:
        with SessionReader(folder / n) as r:
            assert r.state == "complete", (n, r.problems)
    return names


@pytest.mark.slow
def test_an_import_stopped_by_a_full_disk_finishes_when_run_again(release_root, tmp_path):
    from tests.support.small_disk import small_disk

    archive, n_sessions = _subset_archive(release_root, tmp_path / "src")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    with small_disk(tmp_path, "1200k") as mnt:
        out = mnt / "sessions"
        p = _cli([archive, "--out", out, "--jobs", "2"], tmpdir)
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        print(p.stdout[-1500:], lines)
        assert p.returncode == 1, (p.returncode, lines)
        assert len(lines) == 1 and "were not imported" in lines[0] and "the disk is full" in lines[0], lines
        assert "run the same command again" in lines[0] and "Traceback" not in p.stdout
        kept = _all_complete(out)  # every file under a final name is a whole session
        assert 0 < len(kept) < n_sessions - 2, (kept, n_sessions)
        for name in kept:  # and inspect agrees
            q = subprocess.run([sys.executable, "-m", "ifllm_lab", "inspect", "--json", str(out / name)],
                               capture_output=True, text=True, timeout=60)
            assert q.returncode == 0 and json.loads(q.stdout)["state"] == "complete", q.stderr
        assert "NOT imported" in p.stdout
        assert os.listdir(tmpdir) == []  # the unpacked release is gone
        # the same command on a larger disk finishes the set and keeps what was there
        subprocess.run(["mount", "-o", "remount,size=400m", str(mnt)], check=True)
        p = _cli([archive, "--out", out, "--jobs", "2"], tmpdir)
        assert p.returncode == 0, p.stderr
        assert f"already imported (kept): {len(kept)} sessions" in p.stdout
        assert len(_all_complete(out)) == n_sessions
        assert os.listdir(tmpdir) == []


@pytest.mark.slow
def test_a_killed_import_leaves_no_session_file_half_written(release_root, tmp_path):
    import signal
    import time

    archive, n_sessions = _subset_archive(release_root, tmp_path / "src", workers=4)
    tmpdir, out = tmp_path / "tmp", tmp_path / "out"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen([sys.executable, "-m", "ifllm_lab", "import-ifllm", str(archive), "--out", str(out),
                             "--jobs", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(n.endswith(".partial") for n in
                                                  (os.listdir(out) if out.is_dir() else [])):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = sorted(os.listdir(out))
    assert any(n.endswith(".partial") for n in left), left  # killed while writing one
    assert os.listdir(tmpdir), "the killed import left its unpacked release"
    _all_complete_but = [n for n in left if n.endswith(".h5")]
    for n in _all_complete_but:
        with SessionReader(out / n) as r:
            assert r.state == "complete"
    # the next run removes the leftovers and finishes
    p = _cli([archive, "--out", out, "--jobs", "1"], tmpdir)
    assert p.returncode == 0, p.stderr
    assert len(_all_complete(out)) == n_sessions
    assert os.listdir(tmpdir) == []


@pytest.mark.parametrize("place", ["a-file", "missing-parent"])
def test_a_bad_output_place_is_refused_before_unpacking(tmp_path, place):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    if place == "a-file":
        out = tmp_path / "a-file"
        out.write_text("keep me")
    else:
        out = tmp_path / "no-such-folder" / "out"
    from tests.support.repo import RELEASE_ARCHIVE

    p = _cli([RELEASE_ARCHIVE, "--out", out], tmpdir, timeout=30)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and str(out) in lines[0], lines
    assert os.listdir(tmpdir) == []  # nothing was unpacked
    assert place != "a-file" or out.read_text() == "keep me"


def test_one_import_at_a_time_into_a_folder(release_root, tmp_path):
    from ifllm_lab.importers.ifllm.release import LOCK_FILE, ImportTargetError, _write_mark

    root = _small_release(release_root, tmp_path / "src", "worker_01e1127e", "183")
    out = tmp_path / "out"
    out.mkdir()
    _write_mark(str(out / LOCK_FILE))  # a live import (this process) holds the folder
    with pytest.raises(ImportTargetError, match="another import"):
        import_release(str(root), str(out), jobs=1)
    assert sorted(os.listdir(out)) == [LOCK_FILE]
    (out / LOCK_FILE).write_text("1 1")  # a process id that lives on, started at another time
    (out / "worker_x_task1.h5.partial").write_bytes(b"half")  # and the leftovers of a killed import
    report = import_release(str(root), str(out), jobs=1)
    assert len(report.sessions) == 1 and sorted(os.listdir(out)) == ["worker_01e1127e_task183.h5"]
