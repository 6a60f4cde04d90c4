"""``ifllm-lab bench study``: a simulated participant runs a whole study twice, the window
alone and with the live monitor beside it, and the GUI thread's stalls are reported for
both (real app, real camera pipeline on a rendered face video, the bundled LLM)."""
from __future__ import annotations

import json

from ifllm_lab.cli import main


def test_bench_study_reports_the_stalls_alone_and_with_the_monitor(qapp, tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "study", "--questions", "1", "--folder", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["runs"] == 1 and r["questions"] == 1
    for mode in ("alone", "monitor"):
        (mx,), (p99,), (p999,) = r[f"{mode}_stall_ms_max"], r[f"{mode}_stall_ms_p99"], r[f"{mode}_stall_ms_p999"]
        assert 0 < p99 <= p999 <= mx
        assert r[f"{mode}_session_s"][0] > 0
    assert r["monitor_refresh_ms_max"] > 0
    assert not out.exists()  # the benchmark's files are removed
