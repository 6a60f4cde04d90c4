"""A data folder as a lab has it after some weeks, for the participant-rights tests: real
session files of three participants (written by the real session writer), one
participant's kept camera video, an interrupted session with its recovered copy and its
continuation part, CSV and BIDS exports, feature tables, a pairs file, reward models and
DPO job folders, and the user's caches (the catalog's and the features')."""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ifllm_lab.camera.sources import Frame
from ifllm_lab.camera.video_log import VideoLog
from ifllm_lab.config import config_from_dict
from ifllm_lab.session import SessionMeta, SessionWriter
from ifllm_lab.session.recovery import continuation_meta, recover, resume_info
from ifllm_lab.session.store import SessionStore
from ifllm_lab.study.participant import pseudonym, pseudonym_key
from ifllm_lab.study.session import session_path, study_folder
from ifllm_lab.synthetic.session import make_study_session

CODE = "lab-07"  # the participant who asks
OTHER_CODES = ("lab-08", "lab-09")
T0 = 1_764_835_862.0  # 2025-12-04 08:11:02 UTC: the sessions' start times follow from it


@dataclass
class LabData:
    data: Path
    cache: Path
    pseudonym: str
    others: list[str]
    theirs: list[Path] = field(default_factory=list)  # the participant's own files
    mixed: list[Path] = field(default_factory=list)  # built from their data with others': must be rebuilt
    may: list[Path] = field(default_factory=list)  # do not record whose data they hold
    unrelated: list[Path] = field(default_factory=list)  # artefacts of the others only

    def all_files(self) -> dict[Path, str]:
        """Every file under the data folder and the cache: path -> SHA-256."""
        import hashlib

        out = {}
        for root in (self.data, self.cache):
            for base, _dirs, files in os.walk(root):
                for f in files:
                    p = Path(base) / f
                    out[p] = hashlib.sha256(p.read_bytes()).hexdigest()
        return out


@contextmanager
def cache_home(cache: Path):
    """The user's cache folder set to ``cache`` (what the commands use by default)."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache.parent)
    try:
        yield
    finally:
        if old is None:
            del os.environ["XDG_CACHE_HOME"]
        else:
            os.environ["XDG_CACHE_HOME"] = old


def _interrupted(path: Path, participant: str, session_id: str) -> None:
    """A session as a killed recorder leaves it (a copy taken while it was being written)."""
    live = path.with_name(".live-" + path.name)
    st = SessionStore(live, SessionMeta(participant=participant, study="pilot", session_id=session_id,
                                        screen_width_px=1920, screen_height_px=1080, clock_start_unix=T0 + 86400),
                      swmr=True)
    t = np.arange(300) / 60.0
    st.append("mouse", {"t": t, "x": 500 + t, "y": 400 + t})
    st.append("gaze", {"t": t, "x": 900 + t, "y": 500 + t, "valid": np.ones(len(t), "u1")})
    st.flush()
    shutil.copyfile(live, path)
    st.close()
    live.unlink()


def _video(stem: Path) -> None:
    """A few frames of kept camera video with its frame-time CSV, by the app's own writer."""
    log = VideoLog(stem.with_name(stem.name + ".camera.avi"), fps=10)
    for i in range(6):
        img = np.full((48, 64, 3), 40 * i, np.uint8)
        log.put(Frame(image=img, t=i / 10, index=i))
    assert log.close()["frames"] == 6


def build_lab_data(base: Path, *, artefacts: bool = True) -> LabData:
    """The data folder under ``base`` (``artefacts=False``: sessions, video, exports and the
    catalog cache only: quick)."""
    from ifllm_lab.cli import main
    from ifllm_lab.session.catalog import SessionCatalog
    from ifllm_lab.session.export import export_bids, export_csv

    data, cache = base / "data", base / "cache" / "ifllm-lab"
    key = pseudonym_key(data)
    me = pseudonym(CODE, key)
    others = [pseudonym(c, key) for c in OTHER_CODES]
    cfg = config_from_dict({"study": {"name": "pilot", "data_folder": str(data)}})
    study = study_folder(cfg)
    study.mkdir(parents=True)
    lab = LabData(data, cache, me, others)

    # their first session (complete, camera video kept), and one that a crash interrupted,
    # closed as a recovered copy and continued in a part file
    s1 = session_path(cfg, me, when=T0)
    make_study_session(str(s1), me, turns=4, signal=0.8, seed=0)
    _video(s1.with_suffix(""))
    s2 = session_path(cfg, me, when=T0 + 86400)
    _interrupted(s2, me, "second")
    recovered = Path(recover(s2).out)
    info = resume_info(s2)
    w = SessionWriter(info.next_path, continuation_meta(info), flush_interval=0.05)
    w.put_rows("mouse", {"t": np.arange(60) / 60.0, "x": np.full(60, 300.0), "y": np.full(60, 200.0)})
    w.close()
    lab.theirs += [s1, s1.with_suffix(".camera.avi"), s1.with_suffix(".camera.frames.csv"), s2, recovered,
                   Path(info.next_path)]
    # the others' sessions
    o = []
    for i, p in enumerate(others):
        path = session_path(cfg, p, when=T0 + 3600 * (i + 1))
        make_study_session(str(path), p, turns=4, signal=0.8, seed=i + 1)
        o.append(path)
    # exports: CSV of their first session; a BIDS dataset with their session and another's
    lab.theirs += [Path(f) for f in export_csv(str(s1), data / "exports" / "first-csv")]
    bids = data / "exports" / "bids"
    export_bids(str(s1), bids)
    export_bids(str(o[0]), bids)
    lab.theirs += [p for p in (bids / ("sub-" + me.replace("-", ""))).rglob("*") if p.is_file()]
    # the workbench's catalog cache of the folder
    list(SessionCatalog(data, cache_dir=str(cache)).scan())
    if not artefacts:
        return lab

    with cache_home(cache):
        from ifllm_lab.dpo.job import spec_from_dict, write_sources, write_spec
        from ifllm_lab.dpo.pairs import make_pairs, write_jsonl
        from ifllm_lab.features.table import read_table, write_table

        tables = data / "tables"
        tables.mkdir()
        assert main(["features", str(s1), *map(str, o), "--out", str(tables / "features.csv"), "--quiet",
                     "--workers", "1"]) == 0
        t = read_table(str(tables / "features.csv"))
        mine = t["participant"] == me
        write_table({k: v[mine] for k, v in t.items()}, str(tables / "lab-07-only.csv"))
        write_table({k: v[~mine] for k, v in t.items()}, str(tables / "others.csv"))
        lab.theirs.append(tables / "lab-07-only.csv")
        lab.mixed.append(tables / "features.csv")
        lab.unrelated.append(tables / "others.csv")

        models = data / ".models"
        models.mkdir()
        assert main(["reward", "train", "--data", str(s1), *map(str, o), "--out", str(models / "rm"), "--quiet",
                     "--folds", "2", "--sets", "text,fused", "--no-paper", "--no-importance", "--workers", "1"]) == 0
        lab.mixed.append(models / "rm")
        # models saved before they recorded their participants: one on this folder, one on
        # data elsewhere
        for name, sources in (("rm-old", [str(study)]), ("rm-elsewhere", ["/srv/releases/ifllm-dev.tar.xz"])):
            shutil.copytree(models / "rm", models / name)
            info_path = models / name / "model.json"
            info = json.loads(info_path.read_text())
            for k in ("participant_ids", "session_ids"):
                info["data"].pop(k)
            info["data"]["sources"] = sources
            info_path.write_text(json.dumps(info))
        lab.may.append(models / "rm-old")
        lab.unrelated.append(models / "rm-elsewhere")

        pairs_dir = data / "pairs"
        pairs_dir.mkdir()
        rep = make_pairs([str(s1), *map(str, o)], all_participants=True, cache_dir=str(cache), workers=1)
        write_jsonl(rep.pairs, str(pairs_dir / "pairs.jsonl"))
        write_jsonl([p for p in rep.pairs if p.participant != me], str(pairs_dir / "others.jsonl"))
        assert any(p.participant == me for p in rep.pairs)
        lab.mixed.append(pairs_dir / "pairs.jsonl")
        lab.unrelated.append(pairs_dir / "others.jsonl")

        # DPO jobs as a launch leaves them before the worker starts: the spec and the
        # record of its pairs' sources; and an older job, from before jobs recorded them
        jobs = data / ".dpo-jobs"
        for name, pairs, record in (("tuned", pairs_dir / "pairs.jsonl", True),
                                    ("older", pairs_dir / "others.jsonl", False)):
            spec = spec_from_dict({"base_model": "bundled", "pairs": str(pairs), "output_dir": str(jobs / name),
                                   "name": name})
            (jobs / name).mkdir(parents=True)
            write_spec(spec, str(jobs / name / "job.toml"))
            if record:
                write_sources(str(pairs), str(jobs / name))
        lab.mixed.append(jobs / "tuned")
        lab.may.append(jobs / "older")
    return lab
