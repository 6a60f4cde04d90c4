"""Fixtures of the DPO tests: imported IFLLM sessions and a tiny model built here."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ifllm_lab.importers.ifllm.release import import_release

from tests.support.release_piece import release_piece

# three workers whose pairwise tasks have questions left without a choice
PIECE = {"worker_6129fc84": "29", "worker_19651352": "79", "worker_efe70ff2": "207"}


@pytest.fixture(scope="session")
def piece(release_root, tmp_path_factory) -> tuple[Path, list[dict]]:
    """(folder of the imported sessions, the release's question rows of those tasks)."""
    base = tmp_path_factory.mktemp("dpo-piece")
    root = release_piece(release_root, base, PIECE, tasks=set(PIECE.values()))
    out = base / "sessions"
    import_release(str(root), str(out))
    with open(root / "query_logs_table.csv", encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if PIECE.get(r["user_id"]) == r["task_id"]]
    return out, rows



@pytest.fixture(scope="session")
def pairs_file(piece, tmp_path_factory) -> Path:
    """The piece's explicit pairs, exported by the app."""
    from ifllm_lab.dpo.pairs import make_pairs, write_jsonl

    folder, _rows = piece
    rep = make_pairs([str(folder)], all_participants=True, cache_dir=str(tmp_path_factory.mktemp("pairs-cache")),
                     workers=1)
    return Path(write_jsonl(rep.pairs, str(tmp_path_factory.mktemp("pairs") / "pairs.jsonl")))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny Llama-style model (2 layers, 32 wide, random weights) with the real tokenizer
    and chat template of the bundled SmolLM2 GGUF, saved as a model folder: nothing
    downloaded."""
    pytest.importorskip("trl", reason="the dpo extra is not installed")
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ifllm_lab.llm.llama import default_model_path

    gguf = Path(default_model_path())
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    out = tmp_path_factory.mktemp("tiny-model") / "tiny"
    LlamaForCausalLM(cfg).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out
