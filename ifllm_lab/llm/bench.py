"""``bench_llm()``: how fast the local model answers here (seconds, tokens, tokens/s)."""
from __future__ import annotations

import os
import statistics
import time

from .llama import LlamaCppBackend
from .types import ChatMessage, GenerationSettings

SHORT_QUESTION = "Write a short paragraph about why people like cats."
LONG_FILLER = ("Gaze tracking records where a person looks while reading an answer on the screen. " * 40)


def bench_llm(model_path: str | None = None, n_threads: int | None = None, runs: int = 3,
              max_tokens: int = 128, n_ctx: int = 2048) -> dict:
    """Load the model, then time ``runs`` answers to a short question and one long prompt.

    Returns a JSON-ready dict: ``load_s``; ``first_token_s`` (median seconds from
    request to first piece, short prompt); ``decode_tokens_per_s`` (median, after
    the first piece); ``long_prompt_tokens`` and ``long_first_token_s`` with
    ``prompt_tokens_per_s`` (prompt evaluation rate); plus per-run details.
    Sampling is fixed (seed 1000 + run) and ``max_tokens`` bounds each answer.
    """
    clock = time.perf_counter
    backend = LlamaCppBackend(model_path, n_ctx=n_ctx, n_threads=n_threads, clock=clock)
    try:
        t0 = clock()
        backend.load()
        load_s = clock() - t0
        # warm-up (first decode allocates buffers), not counted
        backend.generate([ChatMessage("user", "Hi")], GenerationSettings(max_tokens=4, seed=1))
        per_run = []
        for i in range(runs):
            r = backend.generate([ChatMessage("user", SHORT_QUESTION)],
                                 GenerationSettings(max_tokens=max_tokens, seed=1000 + i, temperature=0.7))
            per_run.append({"first_token_s": r.first_token_latency_s, "tokens_per_s": r.tokens_per_s,
                            "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
                            "pieces": len(r.token_times), "duration_s": r.duration_s,
                            "finish_reason": r.finish_reason})
        long_r = backend.generate([ChatMessage("user", "Summarize in one sentence: " + LONG_FILLER)],
                                  GenerationSettings(max_tokens=2, seed=7))
        long_ft = long_r.first_token_latency_s
        rates = [p["tokens_per_s"] for p in per_run if p["tokens_per_s"]]
        firsts = [p["first_token_s"] for p in per_run if p["first_token_s"] is not None]
        return {
            "model": backend.name,
            "model_path": str(backend.model_path),
            "model_bytes": os.path.getsize(backend.model_path),
            "cpu_count": os.cpu_count(),
            "n_threads": backend.n_threads,
            "n_ctx": n_ctx,
            "load_s": load_s,
            "first_token_s": statistics.median(firsts) if firsts else None,
            "decode_tokens_per_s": statistics.median(rates) if rates else None,
            "long_prompt_tokens": long_r.prompt_tokens,
            "long_first_token_s": long_ft,
            "prompt_tokens_per_s": (long_r.prompt_tokens / long_ft) if long_ft else None,
            "runs": per_run,
        }
    finally:
        backend.close()


if __name__ == "__main__":  # python -m ifllm_lab.llm.bench [n_threads]
    import json
    import sys

    print(json.dumps(bench_llm(n_threads=int(sys.argv[1]) if len(sys.argv) > 1 else None), indent=2))
