"""Helpers for tests that run a real session writer in a child process."""
from __future__ import annotations

import os
import queue
import subprocess
import threading
import time

from .repo import REPO


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no .pyc writes under a file size limit
    return env


class ChildLines:
    """Reads a child's stdout lines on a thread (so that waiting never blocks on the pipe)."""

    def __init__(self, stream):
        self.q: queue.Queue = queue.Queue()
        self.all: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"child printed no {prefix!r} line in {timeout} s; got {self.all[-5:]}")
            if line is None:
                raise AssertionError(f"child ended before printing {prefix!r}; got {self.all[-5:]}")
            self.all.append(line)
            if line.startswith(prefix):
                return line

    def drain(self, timeout: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                break
            self.all.append(line)
        return self.all


def kill_child(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
