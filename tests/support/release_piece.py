"""A piece of the real IFLLM release for tests: some workers (all their tasks, or some),
their behaviour folders and the three tables cut to them."""
from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

TABLES = ("query_logs_table.csv", "task_table.csv", "record_info_table.csv")


def release_piece(release_root: Path, dest: Path, workers: Iterable[str],
                  tasks: Iterable[str] | None = None) -> Path:
    """``dest/ifllm``: the release holding ``workers``' tasks (only ``tasks`` when given).
    Table rows without a task (the workers' own) are kept for those workers."""
    workers = list(workers)
    tasks = None if tasks is None else set(tasks)
    root = dest / "ifllm"
    for w in workers:
        src = release_root / "user_behavior" / w
        for task in sorted(os.listdir(src)):
            if (src / task).is_dir() and (tasks is None or task in tasks):
                shutil.copytree(src / task, root / "user_behavior" / w / task)
    for table in TABLES:
        with open(release_root / table, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        keep = [r for r in rows if r["user_id"] in workers
                and (tasks is None or r.get("task_id") is None or r["task_id"] in tasks)]
        root.mkdir(parents=True, exist_ok=True)
        with open(root / table, "w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
            w.writeheader()
            w.writerows(keep)
    return root
